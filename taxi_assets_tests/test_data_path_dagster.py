"""The data path through the real Dagster machinery: materialize, checks, storage."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from taxi_assets.assets import cleaning as cleaning_assets
from taxi_assets.cleaning import clean_probes
from taxi_assets.definitions import ASSET_MODULES
from taxi_assets.frames import RAW_PROBES_SCHEMA
from taxi_assets.jobs import DATA_PATH_GROUPS
from taxi_assets.partitions import daily_partitions
from taxi_assets.service_area import CENTRAL_TOKYO
from taxi_assets.settings import PipelineSettings
from taxi_assets.sources.base import ProbeDelivery, ProbeSource
from taxi_assets.sources.simulated import SimulatedProbeSource
from taxi_assets_tests.conftest import SMALL_FLEET
from taxi_assets_tests.probe_builders import TOKYO_STATION, raw_probes

DAY = "2026-04-29"
ALL_ASSETS = dg.load_assets_from_modules(list(ASSET_MODULES))
DATA_PATH = dg.AssetSelection.groups(*DATA_PATH_GROUPS)
ASSETS = (
    "raw_probes",
    "weather",
    "clean_probes",
    "rejected_probes",
    "trip_events",
    "cell_demand",
    "clean_probes_statistics",
    "cell_demand_statistics",
    "training_features",
    "training_features_statistics",
)


def materialize_day(resources: dict, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        ALL_ASSETS,
        selection=DATA_PATH,
        partition_key=DAY,
        resources=resources,
        instance=instance,
        raise_on_error=False,
    )


def stored(data_dir: Path, asset: str) -> pl.DataFrame:
    return pl.read_parquet(data_dir / asset / f"{DAY}.parquet")


def materialized_assets(result: dg.ExecuteInProcessResult) -> set[str]:
    return {event.asset_key.to_user_string() for event in result.get_asset_materialization_events()}


def test_one_day_materializes_with_metadata_and_passing_checks(
    small_city_resources: dict, instance: dg.DagsterInstance, data_dir: Path
) -> None:
    result = materialize_day(small_city_resources, instance)
    assert result.success
    assert materialized_assets(result) == set(ASSETS)

    evaluations = result.get_asset_check_evaluations()
    assert len(evaluations) == 15
    assert all(e.passed for e in evaluations), [e for e in evaluations if not e.passed]
    (share,) = [e for e in evaluations if e.check_name == "quarantine_share"]
    # Shares are numbers on every run (the UI plots them), failing or not.
    assert 0 < share.metadata["quarantined_share"].value < 0.05
    assert share.metadata["share_duplicate"].value > 0
    assert share.metadata["share_unknown_status"].value == 0
    assert "every reason within its limit" in (share.description or "")

    raw, clean, rejected = (
        stored(data_dir, a) for a in ("raw_probes", "clean_probes", "rejected_probes")
    )
    assert raw.height == clean.height + rejected.height
    assert rejected.height > 0 and set(rejected["reason"].cast(pl.String)) >= {"duplicate"}

    metadata = {
        e.asset_key.to_user_string(): e.materialization.metadata
        for e in result.get_asset_materialization_events()
    }
    assert metadata["clean_probes"]["raw_rows"].value == raw.height
    assert metadata["rejected_probes"]["rejected_duplicate"].value == int(
        (rejected["reason"] == "duplicate").sum()
    )
    demand = stored(data_dir, "cell_demand")
    assert (
        metadata["cell_demand"]["street_hail_pickups"].value == demand["street_hail_pickups"].sum()
    )
    assert metadata["cell_demand"]["cells"].value == 1520
    assert metadata["raw_probes"]["vehicles"].value > 0
    assert "ts_min" in metadata["clean_probes"]

    # The instance keeps the partition's materialization, as the UI shows it.
    status = instance.get_status_by_partition(dg.AssetKey("cell_demand"), [DAY], daily_partitions)
    assert status is not None


def test_the_cleaning_in_vehicle_shards_stores_what_the_whole_day_gives(
    small_city_resources: dict, instance: dg.DagsterInstance, data_dir: Path
) -> None:
    resources = {**small_city_resources, "settings": PipelineSettings(vehicle_shards=3)}
    result = dg.materialize(
        ALL_ASSETS,
        selection=dg.AssetSelection.assets("raw_probes", "clean_probes", "rejected_probes"),
        partition_key=DAY,
        resources=resources,
        instance=instance,
    )
    expected = clean_probes(stored(data_dir, "raw_probes"), date.fromisoformat(DAY), CENTRAL_TOKYO)
    assert_frame_equal(stored(data_dir, "clean_probes"), expected.clean)
    assert_frame_equal(stored(data_dir, "rejected_probes"), expected.rejected)
    (clean_event,) = [
        e
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey("clean_probes")
    ]
    metadata = clean_event.materialization.metadata
    assert metadata["vehicle_shards"].value == 3 and metadata["peak_rss_mib"].value > 0
    # Progress is logged per shard.
    messages = [record.user_message for record in instance.all_logs(result.run_id)]
    assert [m for m in messages if ": shard " in m and "kept" in m][-1].count("shard 3/3") == 1


def test_rematerializing_a_partition_replaces_it_with_the_same_result(
    small_city_resources: dict, instance: dg.DagsterInstance, data_dir: Path
) -> None:
    assert materialize_day(small_city_resources, instance).success
    first = {asset: stored(data_dir, asset) for asset in ASSETS}
    assert materialize_day(small_city_resources, instance).success
    for asset in ASSETS:
        assert_frame_equal(stored(data_dir, asset), first[asset])
        # One file per partition, no temporary leftovers beside it.
        assert sorted(p.name for p in (data_dir / asset).iterdir()) == [f"{DAY}.parquet"]


class SourceWithoutHeading(ProbeSource):
    """A source with a bug: it drops a column the raw contract requires."""

    def read_probes(self, day: date) -> ProbeDelivery:
        probes = SimulatedProbeSource(fleet_size=10).read_probes(day).probes
        return ProbeDelivery(probes.drop("heading"))

    def read_weather(self, day: date) -> pl.DataFrame:
        return SimulatedProbeSource(fleet_size=10).read_weather(day)


def test_contract_breaking_frame_fails_its_check_and_blocks_downstream(
    small_city_resources: dict, instance: dg.DagsterInstance
) -> None:
    resources = {**small_city_resources, "probe_source": SourceWithoutHeading()}
    result = materialize_day(resources, instance)
    assert not result.success
    failed = [e for e in result.get_asset_check_evaluations() if not e.passed]
    assert [(e.asset_key.to_user_string(), e.check_name) for e in failed] == [
        ("raw_probes", "contract")
    ]
    assert failed[0].metadata["failure_count"].value >= 1
    assert "heading" in failed[0].metadata["failure_cases_sample"].value
    assert materialized_assets(result) == {"raw_probes", "weather"}


def test_cleaning_that_breaks_the_clean_contract_blocks_trips_and_demand(
    small_city_resources: dict, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_clean = cleaning_assets.combine_shards

    def clean_with_a_bug(*args, **kwargs):
        result = real_clean(*args, **kwargs)
        broken = result.clean.with_columns(lat=pl.lit(0.0))
        return type(result)(broken, result.rejected, result.out_of_order_rows)

    monkeypatch.setattr(cleaning_assets, "combine_shards", clean_with_a_bug)
    result = materialize_day(small_city_resources, instance)
    assert not result.success
    failed = {
        (e.asset_key.to_user_string(), e.check_name)
        for e in result.get_asset_check_evaluations()
        if not e.passed
    }
    assert failed == {("clean_probes", "contract")}
    assert "trip_events" not in materialized_assets(result)
    assert "cell_demand" not in materialized_assets(result)


def test_raw_probes_match_the_source_schema(
    small_city_resources: dict, instance: dg.DagsterInstance, data_dir: Path
) -> None:
    result = dg.materialize(
        ALL_ASSETS,
        partition_key=DAY,
        resources=small_city_resources,
        instance=instance,
        selection="raw_probes",
    )
    assert result.success
    assert stored(data_dir, "raw_probes").schema == RAW_PROBES_SCHEMA


class SourceThatTimesOutOnce(ProbeSource):
    """A source whose first call fails like a dropped connection (state in a marker file,
    because resources are immutable)."""

    marker: str

    def read_probes(self, day: date) -> ProbeDelivery:
        marker = Path(self.marker)
        if not marker.exists():
            marker.write_text("failed once")
            raise ConnectionError("probe feed timed out")
        return SimulatedProbeSource(fleet_size=10).read_probes(day)

    def read_weather(self, day: date) -> pl.DataFrame:
        return SimulatedProbeSource(fleet_size=10).read_weather(day)


def test_a_transient_source_error_is_retried(
    small_city_resources: dict, instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    source = SourceThatTimesOutOnce(marker=str(tmp_path / "marker"))
    result = dg.materialize(
        ALL_ASSETS,
        partition_key=DAY,
        resources={**small_city_resources, "probe_source": source},
        instance=instance,
        selection="raw_probes",
    )
    assert result.success
    retried = [
        e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY
    ]
    assert len(retried) == 1


def test_cleaning_that_loses_rows_fails_rows_conserved_and_blocks_downstream(
    small_city_resources: dict, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_clean = cleaning_assets.combine_shards

    def clean_that_drops_rejects(*args, **kwargs):
        result = real_clean(*args, **kwargs)
        return type(result)(result.clean, result.rejected.head(0), result.out_of_order_rows)

    monkeypatch.setattr(cleaning_assets, "combine_shards", clean_that_drops_rejects)
    result = materialize_day(small_city_resources, instance)
    assert not result.success
    failed = [e for e in result.get_asset_check_evaluations() if not e.passed]
    assert [(e.asset_key.to_user_string(), e.check_name) for e in failed] == [
        ("clean_probes", "rows_conserved")
    ]
    assert failed[0].metadata["unaccounted_rows"].value > 0
    assert "trip_events" not in materialized_assets(result)


class FeedWithItsOwnHabits(ProbeSource):
    """The small simulated city as a real feed delivers it: text ids, a few absurd pings,
    and (optionally) an occupancy flag 0/1 instead of the vacant/occupied words."""

    occupancy_flag: bool = False

    def read_probes(self, day: date) -> ProbeDelivery:
        probes = SimulatedProbeSource(fleet_size=SMALL_FLEET, seed=7).read_probes(day).probes
        probes = probes.with_columns(("T-" + pl.col("vehicle_id").str.zfill(4)).alias("vehicle_id"))
        if self.occupancy_flag:
            probes = probes.with_columns(pl.col("status").replace({"vacant": "0", "occupied": "1"}))
        noon = probes["ts"].min() + (probes["ts"].max() - probes["ts"].min()) / 2
        odd = raw_probes(
            [
                ("odd-1", noon, *TOKYO_STATION, 301.0),  # an absurd speed
                ("-1", noon, *TOKYO_STATION),  # an integer feed's placeholder id
                ("odd-2", noon, *TOKYO_STATION, None),  # no speed
                ("odd-3", noon, *TOKYO_STATION, 20.0, 90.0, "hired"),  # a word nobody mapped
            ]
        )
        return ProbeDelivery(pl.concat([probes, odd]))

    def read_weather(self, day: date) -> pl.DataFrame:
        return SimulatedProbeSource(fleet_size=SMALL_FLEET, seed=7).read_weather(day)


def test_a_few_absurd_pings_are_quarantined_and_the_day_passes(
    small_city_resources: dict, instance: dg.DagsterInstance, data_dir: Path
) -> None:
    resources = {**small_city_resources, "probe_source": FeedWithItsOwnHabits()}
    result = materialize_day(resources, instance)
    assert result.success, [e for e in result.get_asset_check_evaluations() if not e.passed]
    assert materialized_assets(result) == set(ASSETS)
    rejected = stored(data_dir, "rejected_probes")
    odd = rejected.filter(pl.col("vehicle_id").is_in(["-1", "odd-1", "odd-2", "odd-3"]))
    assert sorted(odd.select("vehicle_id", pl.col("reason").cast(pl.String)).rows()) == [
        ("-1", "invalid_value"),
        ("odd-1", "invalid_value"),
        ("odd-2", "missing_value"),
        ("odd-3", "unknown_status"),
    ]
    assert stored(data_dir, "trip_events")["vehicle_id"].str.starts_with("T-").all()


def test_a_feed_with_its_own_status_words_is_blocked_until_they_are_mapped(
    small_city_resources: dict, instance: dg.DagsterInstance, data_dir: Path
) -> None:
    resources = {**small_city_resources, "probe_source": FeedWithItsOwnHabits(occupancy_flag=True)}
    result = materialize_day(resources, instance)
    assert not result.success
    failed = [e for e in result.get_asset_check_evaluations() if not e.passed]
    assert [(e.asset_key.to_user_string(), e.check_name) for e in failed] == [
        ("clean_probes", "quarantine_share")
    ]
    description = failed[0].description or ""
    assert description.startswith("Too many pings quarantined: overall ")
    assert "unknown_status" in description and "> 5.00%" in description
    assert failed[0].metadata["share_unknown_status"].value > 0.5
    assert "trip_events" not in materialized_assets(result)

    mapped = PipelineSettings(status_mapping={"0": "vacant", "1": "occupied"})
    result = materialize_day({**resources, "settings": mapped}, instance)
    assert result.success
    assert (
        stored(data_dir, "clean_probes")["status"]
        .cast(pl.String)
        .is_in(["vacant", "occupied", "dispatched", "off_duty"])
        .all()
    )
    assert (stored(data_dir, "rejected_probes")["reason"] == "unknown_status").sum() == 1
