"""Settings every stage of the data path must agree on, as one Dagster resource."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
from pydantic import Field, field_validator

from taxi_assets.calendar import validate_bucket_minutes
from taxi_assets.cleaning import CleaningRules, normalised_status_mapping
from taxi_assets.frames import MAX_PHYSICAL_SPEED_KMH, PROBE_STATUSES
from taxi_assets.mesh import CELLS_PER_FIRST_MESH, MeshLevel
from taxi_assets.model.blessing import BlessingRules
from taxi_assets.quarantine import (
    DEFAULT_MAX_SHARE,
    DEFAULT_MAX_SHARE_BY_REASON,
    DEFAULT_MAX_SHARE_PER_REASON,
    QuarantineLimits,
)
from taxi_assets.service_area import CENTRAL_TOKYO, ServiceArea
from taxi_assets.shards import PINGS_PER_SHARD
from taxi_assets.trips import TripRules
from taxi_assets.validation.drift import DriftThresholds
from taxi_assets.validation.schema import VALIDATION_DIR_ENV, configured_validation_dir
from taxi_assets.validation.thresholds import load_drift_thresholds, merged_thresholds
from taxi_assets.weather import (
    FROM_PROBE_SOURCE,
    WEATHER_SOURCE_ENV,
    WEATHER_SOURCES,
    validate_weather_source,
)


class PipelineSettings(dg.ConfigurableResource):
    """The service area, the time bucket and the cleaning rules of the data path.

    Invalid values fail when the code location loads, naming the setting at fault.
    """

    bucket_minutes: int = Field(
        default=15, description="Width of a demand time bucket; must divide 1440."
    )
    lat_min: float = Field(default=CENTRAL_TOKYO.lat_min, description="Service area south edge.")
    lat_max: float = Field(default=CENTRAL_TOKYO.lat_max, description="Service area north edge.")
    lon_min: float = Field(default=CENTRAL_TOKYO.lon_min, description="Service area west edge.")
    lon_max: float = Field(default=CENTRAL_TOKYO.lon_max, description="Service area east edge.")
    mesh_level: str = Field(
        default=CENTRAL_TOKYO.mesh_level,
        description="JIS X 0410 level of demand cells: second, third, half (500 m), quarter.",
    )
    # Read from the environment at start-up like the other deployment choices (a feed
    # without weather is a property of the deployment, not of one run).
    weather_source: str = Field(
        default_factory=lambda: os.environ.get(WEATHER_SOURCE_ENV) or FROM_PROBE_SOURCE,
        description=f"Where hourly rain comes from: one of {list(WEATHER_SOURCES)} "
        f"(default {WEATHER_SOURCE_ENV}, else {FROM_PROBE_SOURCE!r}); 'none' for a feed "
        "without weather (the features then carry rain as missing).",
    )
    max_implied_speed_kmh: float = Field(
        default=CleaningRules.max_implied_speed_kmh,
        description="Pings implying a faster move than this are GPS jumps.",
    )
    max_occupied_minutes: float = Field(
        default=CleaningRules.max_occupied_minutes,
        description="An 'occupied' run longer than this is a stuck meter flag.",
    )
    max_dispatched_minutes: float = Field(
        default=CleaningRules.max_dispatched_minutes,
        description="A 'dispatched' run longer than this is a stuck flag.",
    )
    clock_skew_min_share: float = Field(
        default=CleaningRules.clock_skew_min_share,
        description="Share of a vehicle's pings outside the day that marks its clock as skewed.",
    )
    # Real-feed physics: defaults hold from 10 s to 120 s pings (DESIGN.md, real feeds).
    max_jump_run_minutes: float = Field(
        default=CleaningRules.max_jump_run_minutes,
        description="Longest run of displaced pings between two impossible moves (a GPS step).",
    )
    max_vacant_gap_pings: int = Field(
        default=TripRules.max_vacant_gap_pings,
        description="Vacant runs this short inside a fare are meter flaps (0: off).",
    )
    max_vacant_gap_intervals: float = Field(
        default=TripRules.max_vacant_gap_intervals,
        description="... and with the occupied pings around them at most this many of the "
        "vehicle's median ping intervals apart.",
    )
    min_fare_pings: int = Field(
        default=TripRules.min_fare_pings,
        description="Occupied runs with fewer pings are meter flaps, not fares.",
    )
    min_fare_seconds: float = Field(
        default=TripRules.min_fare_seconds,
        description="Occupied runs ending sooner are meter flaps, not fares (0: off).",
    )
    max_pickup_gap_s: float = Field(
        default=TripRules.max_pickup_gap_s,
        description="A pickup counts only if the last non-occupied ping is this close before "
        "the first occupied one (taxis re-entering the area occupied are no pickups).",
    )
    max_speed_kmh: float = Field(
        default=CleaningRules.max_speed_kmh,
        description="A reported speed above this is quarantined as invalid_value; at most "
        f"{MAX_PHYSICAL_SPEED_KMH:g}, the CleanProbes contract's bound.",
    )
    status_mapping: dict[str, str] = Field(
        default_factory=lambda: {status: status for status in PROBE_STATUSES},
        description="The feed's status words (case-insensitive, surrounding spaces ignored) "
        "to vacant/occupied/dispatched/off_duty, e.g. {'0': 'vacant', '1': 'occupied'} for "
        "an occupancy flag. The four statuses always map to themselves unless listed; "
        "other values are quarantined as unknown_status.",
    )
    vehicle_shards: int = Field(
        default=0,
        ge=0,
        description="The cleaning runs in this many shards of vehicles, read one at a time "
        "(exact: every rule is per vehicle), so a big day is never in memory whole; 0 "
        f"(default) is one shard per {PINGS_PER_SHARD:,} pings.",
    )
    max_quarantined_share: float = Field(
        default=DEFAULT_MAX_SHARE,
        description="quarantine_share fails the day above this share of its pings quarantined.",
    )
    max_quarantined_share_per_reason: float = Field(
        default=DEFAULT_MAX_SHARE_PER_REASON,
        description="... or above this share for any one reason not listed below.",
    )
    max_quarantined_share_by_reason: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_MAX_SHARE_BY_REASON),
        description="Per-reason limits that replace the one above, merged with the defaults "
        "(outside_service_area and duplicate are larger by nature in real feeds).",
    )

    @field_validator("bucket_minutes")
    @classmethod
    def _bucket_tiles_the_day(cls, value: int) -> int:
        return validate_bucket_minutes(value)

    @field_validator("weather_source")
    @classmethod
    def _known_weather_source(cls, value: str) -> str:
        return validate_weather_source(value)

    @field_validator("mesh_level")
    @classmethod
    def _known_mesh_level(cls, value: str) -> str:
        if value not in CELLS_PER_FIRST_MESH:
            raise ValueError(
                f"mesh_level={value!r} is unknown: choose one of {sorted(CELLS_PER_FIRST_MESH)}"
            )
        return value

    @field_validator("max_speed_kmh")
    @classmethod
    def _within_the_contract(cls, value: float) -> float:
        if not 0 < value <= MAX_PHYSICAL_SPEED_KMH:
            raise ValueError(
                f"max_speed_kmh={value!r} must be in (0, {MAX_PHYSICAL_SPEED_KMH:g}]: above the "
                "CleanProbes contract's bound, cleaning would keep pings the contract refuses"
            )
        return value

    @field_validator("status_mapping")
    @classmethod
    def _known_statuses(cls, value: dict[str, str]) -> dict[str, str]:
        normalised_status_mapping(value)
        return value

    @field_validator(
        "max_quarantined_share",
        "max_quarantined_share_per_reason",
    )
    @classmethod
    def _a_share(cls, value: float) -> float:
        if not 0 <= value <= 1:
            raise ValueError(f"must be a share in [0, 1], got {value!r}")
        return value

    @field_validator("max_quarantined_share_by_reason")
    @classmethod
    def _known_reasons(cls, value: dict[str, float]) -> dict[str, float]:
        QuarantineLimits(by_reason=value)
        return value

    def quarantine_limits(self) -> QuarantineLimits:
        return QuarantineLimits(
            max_share=self.max_quarantined_share,
            max_share_per_reason=self.max_quarantined_share_per_reason,
            # Merged: overriding one reason keeps the others' defaults.
            by_reason={**DEFAULT_MAX_SHARE_BY_REASON, **self.max_quarantined_share_by_reason},
        )

    def service_area(self) -> ServiceArea:
        mesh_level: MeshLevel = self.mesh_level  # type: ignore[assignment]
        return ServiceArea(self.lat_min, self.lat_max, self.lon_min, self.lon_max, mesh_level)

    def cleaning_rules(self) -> CleaningRules:
        return CleaningRules(
            max_implied_speed_kmh=self.max_implied_speed_kmh,
            max_occupied_minutes=self.max_occupied_minutes,
            max_dispatched_minutes=self.max_dispatched_minutes,
            clock_skew_min_share=self.clock_skew_min_share,
            max_jump_run_minutes=self.max_jump_run_minutes,
            trips=TripRules(
                max_vacant_gap_pings=self.max_vacant_gap_pings,
                max_vacant_gap_intervals=self.max_vacant_gap_intervals,
                min_fare_pings=self.min_fare_pings,
                min_fare_seconds=self.min_fare_seconds,
                max_pickup_gap_s=self.max_pickup_gap_s,
            ),
            max_speed_kmh=self.max_speed_kmh,
            status_mapping=normalised_status_mapping(self.status_mapping),
        )


class ValidationSettings(dg.ConfigurableResource):
    """Where the deployment keeps its schemas and drift thresholds, and run-time overrides.

    The folder (``validation_dir``) holds ``<asset>.json`` schemas and
    ``drift_thresholds.json``, calibrated on the feed's own days; the package's committed
    folder (from the simulator) is the default. Overrides set here win over the folder's
    values; ``per_feature_thresholds`` merges with the folder's per-feature thresholds.
    Every distance is recorded either way.
    """

    validation_dir: str = Field(
        default_factory=lambda: os.environ.get(VALIDATION_DIR_ENV) or "",
        description=f"Folder of the schemas and drift_thresholds.json (default "
        f"{VALIDATION_DIR_ENV}, else the package's committed taxi_assets/validation/schemas).",
    )
    numeric_js_threshold: float | None = Field(
        default=None,
        description="Jensen-Shannon divergence (base 2) allowed per numeric feature "
        "(default: the folder's).",
    )
    categorical_linf_threshold: float | None = Field(
        default=None,
        description="L-infinity distance allowed per categorical feature (default: the folder's).",
    )
    row_count_ratio_min: float | None = Field(
        default=None, description="Lowest rows today / reference day (default: the folder's)."
    )
    row_count_ratio_max: float | None = Field(
        default=None, description="Highest rows today / reference day (default: the folder's)."
    )
    per_feature_thresholds: dict[str, float] = Field(
        default_factory=dict,
        description="Threshold overrides by feature name (JS or L-infinity by its kind), "
        "merged over the folder's calibrated ones.",
    )
    use_calibrated_per_feature: bool = Field(
        default=True,
        description="Apply the folder's per-feature thresholds (false: only the defaults and "
        "per_feature_thresholds).",
    )
    ignored_features: list[str] = Field(
        default_factory=list,
        description="Features never compared between days, added to the folder's list "
        "(identifiers, calendar, weather).",
    )
    drift_lookback_days: int = Field(
        default=14,
        ge=1,
        description="When the previous day is not stored, drift compares with the latest "
        "validated day at most this many days back.",
    )

    # bench/calibrate_skew.py: normal ticks across a day stayed below 0.013; supply counted
    # twice (0.15), trips no longer derived live (0.145) and stored history missing (1.0)
    # crossed. Half the live feed (0.022) does not: the nightly drift checks catch that.
    skew_js_threshold: float = Field(
        default=0.03,
        description="Jensen-Shannon divergence allowed between a forecast tick's features "
        "and the production model's training features at the same time of day.",
    )

    def folder(self) -> Path:
        """The validation folder this deployment uses."""
        return configured_validation_dir(self.validation_dir or None)

    def thresholds(self) -> DriftThresholds:
        """The folder's drift thresholds with this resource's overrides on top."""
        return merged_thresholds(
            load_drift_thresholds(self.folder()).thresholds,
            {
                "numeric_js": self.numeric_js_threshold,
                "categorical_linf": self.categorical_linf_threshold,
                "row_count_ratio_min": self.row_count_ratio_min,
                "row_count_ratio_max": self.row_count_ratio_max,
            },
            self.per_feature_thresholds,
            self.ignored_features,
            self.use_calibrated_per_feature,
        )


class EvaluationSettings(dg.ConfigurableResource):
    """How models are judged and gated, and when a live forecast counts as degraded.

    A resource rather than run config: the rules a model is blessed under are the
    deployment's. A run whose config changes them is refused (see assets/model.py), and
    every evaluation and deployment records the rules' fingerprint. MAE is reported but
    gates nothing (see blessing.py).
    """

    max_rmse: float | None = Field(default=None, description="Absolute bound on RMSE (None: none).")
    max_poisson_deviance: float | None = Field(
        default=None, description="Absolute bound on the mean Poisson deviance."
    )
    production_tolerance: float = Field(
        default=0.02, description="How much worse than production a candidate may be overall."
    )
    slice_tolerance: float = Field(
        default=0.10, description="How much worse than production it may be on any slice."
    )
    slice_min_rows: int = Field(
        default=400, description="Slices with fewer rows are too noisy to block a release."
    )
    compared_metrics: list[str] = Field(
        default_factory=lambda: ["rmse", "poisson_deviance"],
        description="Metrics compared with the production model and the baselines "
        "(rmse, poisson_deviance; MAE is never gated).",
    )
    must_beat_baselines: bool = Field(
        default=True,
        description="The candidate must beat both simple baselines on the compared metrics "
        "overall, and stay within slice_tolerance of them in every judged slice.",
    )
    mape_min_pickups: int = Field(
        default=10, description="MAPE counts only rows with at least this many street hails."
    )
    busiest_cells: int = Field(
        default=50, description="How many of the busiest cells form the 'busiest' slice."
    )
    forecast_tolerance: float = Field(
        default=0.3,
        description="Live forecasts may have this much higher RMSE or Poisson deviance than "
        "the model's own evaluation on the same hours before forecast_accuracy fails.",
    )

    def rules(self) -> BlessingRules:
        return BlessingRules(
            max_rmse=self.max_rmse,
            max_poisson_deviance=self.max_poisson_deviance,
            production_tolerance=self.production_tolerance,
            slice_tolerance=self.slice_tolerance,
            slice_min_rows=self.slice_min_rows,
            compared_metrics=tuple(self.compared_metrics),
            must_beat_baselines=self.must_beat_baselines,
        )
