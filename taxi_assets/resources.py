"""Resources per environment, chosen in one place.

Settings come from environment variables so that ``dagster dev``, the CLI and the tests
pick the same code path with different folders:

- ``TAXI_ASSETS_ENV``: ``local`` (the embedded default; production arrives with the
  production backends).
- ``TAXI_ASSETS_DATA_DIR``: folder of asset partitions (default ``data``).
- ``TAXI_ASSETS_PROBE_SOURCE``: ``simulator`` (default) or ``landing``.
- ``TAXI_ASSETS_LANDING_DIR``: the landing folder, when the source is ``landing``.
- ``TAXI_ASSETS_ARTIFACTS_DIR``: models, evaluations, the production pointer and
  forecast ticks (default ``<data dir>/artifacts``).
- ``TAXI_ASSETS_SIM_FLEET_SIZE``, ``TAXI_ASSETS_SIM_SEED``: the simulated city.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from taxi_assets.registry import ArtifactStore
from taxi_assets.settings import EvaluationSettings, PipelineSettings, ValidationSettings
from taxi_assets.sources.base import ProbeSource
from taxi_assets.sources.landing import LandingFolderProbeSource
from taxi_assets.sources.simulated import SimulatedProbeSource
from taxi_assets.storage import PartitionedParquetIOManager, StoredPartitions

ENVIRONMENTS = ("local",)
PROBE_SOURCES = ("simulator", "landing")


class SettingsError(ValueError):
    """The environment's settings are missing or invalid; the message lists all of them."""


def probe_source_from_env(env: Mapping[str, str]) -> ProbeSource:
    kind = env.get("TAXI_ASSETS_PROBE_SOURCE", "simulator")
    if kind == "simulator":
        return SimulatedProbeSource(
            fleet_size=_int_setting(env, "TAXI_ASSETS_SIM_FLEET_SIZE", 1000),
            seed=_int_setting(env, "TAXI_ASSETS_SIM_SEED", 42),
        )
    if kind == "landing":
        landing_dir = env.get("TAXI_ASSETS_LANDING_DIR")
        if not landing_dir:
            raise SettingsError(
                "TAXI_ASSETS_PROBE_SOURCE=landing needs TAXI_ASSETS_LANDING_DIR (the folder "
                "holding probes/<day>/ and weather/)"
            )
        return LandingFolderProbeSource(landing_dir=landing_dir)
    raise SettingsError(
        f"TAXI_ASSETS_PROBE_SOURCE={kind!r} is unknown: choose one of {', '.join(PROBE_SOURCES)}"
    )


def _int_setting(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a whole number") from None


def resources_for_environment(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    env = os.environ if env is None else env
    name = env.get("TAXI_ASSETS_ENV", "local")
    if name not in ENVIRONMENTS:
        raise SettingsError(
            f"TAXI_ASSETS_ENV={name!r} is unknown: choose one of {', '.join(ENVIRONMENTS)}"
        )
    data_dir = env.get("TAXI_ASSETS_DATA_DIR", "data")
    return local_resources(
        data_dir,
        env.get("TAXI_ASSETS_ARTIFACTS_DIR", f"{data_dir}/artifacts"),
        probe_source_from_env(env),
    )


def local_resources(data_dir: str, artifacts_dir: str, probe_source: ProbeSource) -> dict[str, Any]:
    """Every resource of the embedded environment, with files under the given folders."""
    return {
        "io_manager": PartitionedParquetIOManager(base_dir=data_dir),
        "stored": StoredPartitions(base_dir=data_dir),
        "artifacts": ArtifactStore(base_dir=artifacts_dir),
        "probe_source": probe_source,
        "settings": PipelineSettings(),
        "validation": ValidationSettings(),
        "evaluation": EvaluationSettings(),
    }
