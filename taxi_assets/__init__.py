"""taxi_assets: taxi GPS probes to street-hail demand, as Dagster software-defined assets."""

import warnings

from dagster import BetaWarning, PreviewWarning

# We opt into two beta APIs knowingly (code references, and partition mappings that allow
# a missing previous day) and one preview API (partitioned check specs, so a check result
# is recorded per day and training can ask which days passed); their warnings would only
# be noise in every run and test.
warnings.filterwarnings("ignore", category=BetaWarning)
warnings.filterwarnings("ignore", category=PreviewWarning)
