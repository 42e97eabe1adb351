"""taxi_assets: taxi GPS probes to street-hail demand, as Dagster software-defined assets."""

import warnings

from dagster import BetaWarning

# We opt into two beta APIs knowingly (code references, and partition mappings that allow
# a missing previous day); their warnings would only be noise in every run and test.
warnings.filterwarnings("ignore", category=BetaWarning)
