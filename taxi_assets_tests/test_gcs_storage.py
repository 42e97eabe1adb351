"""Asset partitions and model artifacts on GCS, through the same storage code as a folder.

Everything runs against gcp-storage-emulator on loopback (``gcs_emulator.py``): real
materializations through our IO manager, ``StoredPartitions``, and the ``ArtifactStore`` with
a real CatBoost model and the real ``production_model`` asset. google-cloud-storage's own
client is the independent witness of what is in the bucket. (No ``from __future__ import
annotations`` here: Dagster reads the test assets' annotations at runtime.)
"""

import base64
import io
import json
import traceback
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import polars as pl
import pytest
from google.auth import jwt
from polars.testing import assert_frame_equal

from taxi_assets.assets.model import production_model
from taxi_assets.calendar import day_window_utc
from taxi_assets.cloud_paths import StorageSettingError, storage_root
from taxi_assets.features import build_features
from taxi_assets.frames import WEATHER_SCHEMA
from taxi_assets.model.registry import NO_POINTER, ArtifactStore, PointerConflict, RegistryError
from taxi_assets.model.training import TrainedModel, TrainingParams, train_model
from taxi_assets.settings import EvaluationSettings
from taxi_assets.storage import (
    PartitionedParquetIOManager,
    StoredPartitions,
    create_exclusively,
    write_atomically,
    write_parquet_atomically,
)
from taxi_assets_tests.gcs_emulator import (
    GcsEmulator,
    loopback_token_endpoint,
    running_gcs_emulator,
    service_account_key,
)
from taxi_assets_tests.test_registry_and_training import DAYS, synthetic_cell_demand

LETTERS = dg.StaticPartitionsDefinition(["a", "b", "c"])


@pytest.fixture(scope="module")
def emulator() -> Iterator[GcsEmulator]:
    with running_gcs_emulator() as running:
        yield running


@pytest.fixture
def prefix(request: pytest.FixtureRequest) -> str:
    """A folder of the bucket for this test alone."""
    return request.node.name.replace("[", "-").replace("]", "")


# Asset partitions -----------------------------------------------------------------------------


class CountsConfig(dg.Config):
    values: list[int]


@dg.asset(partitions_def=LETTERS)
def counts(config: CountsConfig) -> pl.DataFrame:
    return pl.DataFrame({"x": config.values})


@dg.asset(partitions_def=LETTERS)
def doubled(counts: pl.LazyFrame) -> pl.DataFrame:
    assert isinstance(counts, pl.LazyFrame)
    return counts.select(pl.col("x") * 2).collect()


@dg.asset(ins={"counts": dg.AssetIn(metadata={"allow_missing_partitions": True})})
def totals(counts: dict[str, pl.LazyFrame]) -> pl.DataFrame:
    """Every stored partition of ``counts``, one row each (missing ones skipped)."""
    return pl.DataFrame(
        {"key": list(counts), "total": [frame.collect()["x"].sum() for frame in counts.values()]}
    )


def _io_manager(emulator: GcsEmulator, prefix: str) -> PartitionedParquetIOManager:
    return PartitionedParquetIOManager(
        base_dir=emulator.url(prefix, "partitions"), gcs_endpoint_url=emulator.endpoint_url
    )


def _materialize(
    assets: list,
    emulator: GcsEmulator,
    prefix: str,
    partition: str | None,
    values: list[int] | None = None,
) -> dg.ExecuteInProcessResult:
    """``values``: the rows of ``counts`` when it is materialized (not a source) here."""
    run_config = {} if values is None else {"ops": {"counts": {"config": {"values": values}}}}
    with dg.instance_for_test() as instance:
        return dg.materialize(
            assets,
            partition_key=partition,
            resources={"io_manager": _io_manager(emulator, prefix)},
            run_config=run_config,
            instance=instance,
            raise_on_error=False,
        )


def _read_object(emulator: GcsEmulator, name: str) -> pl.DataFrame:
    return pl.read_parquet(emulator.client().bucket(emulator.bucket).blob(name).download_as_bytes())


def test_partitions_are_written_replaced_and_read_downstream_on_gcs(
    emulator: GcsEmulator, prefix: str
) -> None:
    first = _materialize([counts, doubled], emulator, prefix, "a", [1, 2, 3])
    assert first.success
    written = first.asset_materializations_for_node("counts")[0].metadata
    assert written["path"].value == emulator.url(prefix, "partitions", "counts", "a.parquet")
    assert written["dagster/row_count"].value == 3
    assert_frame_equal(
        _read_object(emulator, f"{prefix}/partitions/doubled/a.parquet"),
        pl.DataFrame({"x": [2, 4, 6]}),
    )

    # Re-materializing the partition replaces exactly it; the downstream reads the new one.
    assert _materialize([counts, doubled], emulator, prefix, "a", [10]).success
    assert_frame_equal(
        _read_object(emulator, f"{prefix}/partitions/doubled/a.parquet"),
        pl.DataFrame({"x": [20]}),
    )
    # One object per partition: no temporary names, no leftovers of the first version.
    assert emulator.object_names(f"{prefix}/") == [
        f"{prefix}/partitions/counts/a.parquet",
        f"{prefix}/partitions/doubled/a.parquet",
    ]


def test_a_partition_window_loads_what_is_stored_and_names_what_is_missing(
    emulator: GcsEmulator, prefix: str
) -> None:
    assert _materialize([counts], emulator, prefix, "a", [1, 2]).success
    assert _materialize([counts], emulator, prefix, "c", [5]).success

    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [counts.to_source_asset(), totals],
            resources={"io_manager": _io_manager(emulator, prefix)},
            instance=instance,
        )
    assert_frame_equal(
        result.output_for_node("totals"), pl.DataFrame({"key": ["a", "c"], "total": [3, 5]})
    )

    # Without allow_missing_partitions a missing day is an error naming it.
    missing = _materialize([counts.to_source_asset(), doubled], emulator, prefix, "b")
    assert not missing.success
    message = missing.failure_data_for_node("doubled").error.cause.message
    assert f"counts: no stored partition at {emulator.url(prefix)}" in message
    assert "materialize it first" in message


def test_a_failed_write_leaves_the_previous_object_readable(
    emulator: GcsEmulator, prefix: str
) -> None:
    assert _materialize([counts], emulator, prefix, "a", [1, 2, 3]).success
    name = f"{prefix}/partitions/counts/a.parquet"

    # The frame's writer fails inside the IO manager: the run fails, the partition stays.
    @dg.asset(partitions_def=LETTERS, name="counts")
    def unwritable_counts() -> pl.DataFrame:
        return pl.DataFrame({"x": [7]}).with_columns(
            unwritable=pl.Series([object()], dtype=pl.Object)
        )

    failed = _materialize([unwritable_counts], emulator, prefix, "a")
    assert not failed.success
    assert "Object" in failed.failure_data_for_node("counts").error.cause.message
    assert_frame_equal(_read_object(emulator, name), pl.DataFrame({"x": [1, 2, 3]}))

    # A writer that has already written half a file when it fails uploads nothing.
    def crash_halfway(handle) -> None:
        handle.write(b"PAR1 half a file")
        raise OSError("connection reset")

    path = storage_root(emulator.url(), None, emulator.endpoint_url) / name
    with pytest.raises(OSError, match="connection reset"):
        write_atomically(path, crash_halfway)
    assert_frame_equal(_read_object(emulator, name), pl.DataFrame({"x": [1, 2, 3]}))
    assert emulator.object_names(f"{prefix}/") == [name]


def test_stored_partitions_read_and_scan_from_gcs(emulator: GcsEmulator, prefix: str) -> None:
    frame = pl.DataFrame({"cell": [1, 2, 3], "hails": [0, 4, 9]})
    stored = StoredPartitions(
        base_dir=emulator.url(prefix, "partitions"), gcs_endpoint_url=emulator.endpoint_url
    )
    write_parquet_atomically(frame, stored._path("cell_demand", "2026-05-01"))

    assert_frame_equal(stored.read("cell_demand", "2026-05-01"), frame)
    scanned = stored.scan("cell_demand", "2026-05-01")
    assert isinstance(scanned, pl.LazyFrame)
    assert_frame_equal(scanned.filter(pl.col("hails") > 0).collect(), frame.slice(1))
    assert stored.read("cell_demand", "2026-05-02") is None
    assert stored.scan("cell_demand", "2026-05-02") is None


# Model artifacts ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rows() -> pl.DataFrame:
    demand = synthetic_cell_demand()
    first, _ = day_window_utc(DAYS[0])
    weather = pl.DataFrame(
        [(first + timedelta(hours=h), 0.0) for h in range(24 * len(DAYS))],
        schema=WEATHER_SCHEMA,
        orient="row",
    )
    return build_features(demand, weather, demand, 15)


@pytest.fixture(scope="module")
def model(rows: pl.DataFrame) -> TrainedModel:
    return train_model(rows, TrainingParams(iterations=5, supply_iterations=5))


def _store(emulator: GcsEmulator, prefix: str, **settings: str) -> ArtifactStore:
    return ArtifactStore(
        base_dir=emulator.url(prefix, "artifacts"),
        gcs_endpoint_url=emulator.endpoint_url,
        **settings,
    )


def _manifest(model: TrainedModel) -> dict[str, object]:
    return {"params": model.params.as_dict(), "features": list(model.features)}


def test_models_and_evaluations_round_trip_through_gcs(
    emulator: GcsEmulator, prefix: str, model: TrainedModel, rows: pl.DataFrame
) -> None:
    store = _store(emulator, prefix)
    digest = store.save_model("v1", model, _manifest(model))

    assert emulator.object_names(f"{prefix}/artifacts/models/v1/") == [
        f"{prefix}/artifacts/models/v1/{name}"
        for name in ("demand.cbm", "manifest.json", "supply.cbm")
    ]
    assert store.manifest("v1")["content_hash"] == digest == store.stored_hash("v1")
    assert_frame_equal(store.load_model("v1").predict(rows), model.predict(rows))
    assert str(store.model_folder("v1")) == emulator.url(prefix, "artifacts", "models", "v1")

    assert store.evaluation("v1") is None
    store.save_evaluation("v1", {"blessed": True, "content_hash": digest})
    assert store.evaluation("v1") == {"blessed": True, "content_hash": digest}

    with pytest.raises(RegistryError, match="'v9' has no manifest"):
        store.manifest("v9")

    # A model file replaced by someone else after training is refused.
    blob = (
        emulator.client().bucket(emulator.bucket).blob(f"{prefix}/artifacts/models/v1/supply.cbm")
    )
    blob.upload_from_string(blob.download_as_bytes() + b"\0")
    with pytest.raises(RegistryError, match="model version 'v1'.*changed after training"):
        store.load_model("v1")
    blob.delete()
    with pytest.raises(RegistryError, match="'v1' is missing .*supply.cbm"):
        store.load_model("v1")


def test_the_production_pointer_is_replaced_and_rolled_back_on_gcs(
    emulator: GcsEmulator, prefix: str, model: TrainedModel
) -> None:
    """The real ``production_model`` asset: deploy v1, deploy v2, roll back to v1."""
    store = _store(emulator, prefix)
    for version in ("v1", "v2"):
        store.save_model(version, model, _manifest(model))

    def deploy(**config: object) -> dg.ExecuteInProcessResult:
        with dg.instance_for_test() as instance:
            return dg.materialize(
                [production_model],
                resources={"artifacts": store, "evaluation": EvaluationSettings()},
                run_config={"ops": {"production_model": {"config": config}}},
                instance=instance,
                raise_on_error=False,
            )

    reason = "no evaluation in this storage test"
    assert deploy(model_version="v1", override_reason=reason).success
    assert deploy(model_version="v2", override_reason=reason).success
    pointer = store.production_pointer()
    assert (pointer["model_version"], [h["model_version"] for h in pointer["history"]]) == (
        "v2",
        ["v1"],
    )

    # v1 was an override: going back to it needs a reason too.
    assert not deploy(rollback=True).success
    assert deploy(rollback=True, override_reason=reason).success
    pointer = store.production_pointer()
    assert (pointer["model_version"], pointer["action"], pointer["history"]) == (
        "v1",
        "rollback_override",
        [],
    )
    assert emulator.object_names(f"{prefix}/artifacts/production_model") == [
        f"{prefix}/artifacts/production_model.json"
    ]

    # Another process replacing the pointer is seen at once (no cached listing or size).
    replaced = {**pointer, "model_version": "v2", "note": "written by another process " * 20}
    emulator.client().bucket(emulator.bucket).blob(
        f"{prefix}/artifacts/production_model.json"
    ).upload_from_string(json.dumps(replaced))
    assert store.production_pointer() == replaced


def test_pointer_writes_are_compare_and_swap_on_the_objects_generation(
    emulator: GcsEmulator, prefix: str
) -> None:
    store = _store(emulator, prefix)
    assert store.read_production_pointer() == (None, NO_POINTER)
    first = store.swap_production_pointer({"model_version": "v1", "history": []}, NO_POINTER)
    blob = (
        emulator.client()
        .bucket(emulator.bucket)
        .get_blob(f"{prefix}/artifacts/production_model.json")
    )
    assert blob.generation == first  # the bucket's own generation, not a counter of ours
    pointer, generation = store.read_production_pointer()
    assert (pointer["model_version"], generation) == ("v1", first)

    # Two deploys read generation `first`; the second to write loses, clearly, and the
    # winner's pointer (with its history) stays.
    store.swap_production_pointer({"model_version": "v2", "history": [pointer]}, first)
    with pytest.raises(PointerConflict, match="it now points to v2.*nothing was changed"):
        store.swap_production_pointer({"model_version": "v3", "history": [pointer]}, first)
    assert store.production_pointer()["model_version"] == "v2"
    assert store.production_pointer()["history"] == [pointer]
    # A pointer that appeared meanwhile is not overwritten by a first deploy either.
    with pytest.raises(PointerConflict):
        store.swap_production_pointer({"model_version": "v4", "history": []}, NO_POINTER)


def test_a_model_version_is_never_overwritten_on_gcs(
    emulator: GcsEmulator, prefix: str, model: TrainedModel
) -> None:
    store = _store(emulator, prefix)
    digest = store.save_model("v1", model, _manifest(model))
    with pytest.raises(RegistryError, match="'v1' already exists"):
        store.save_model("v1", model, {**_manifest(model), "note": "again"})
    # Even past the existence check (a race), the manifest is created only if absent.
    with pytest.raises(FileExistsError):
        create_exclusively(store.model_folder("v1") / "manifest.json", b"{}")
    assert store.manifest("v1")["content_hash"] == digest


def test_forecast_ticks_are_stored_under_their_tokyo_day_on_gcs(
    emulator: GcsEmulator, prefix: str
) -> None:
    store = _store(emulator, prefix)
    day = date(2026, 5, 1)
    assert store.forecasts_for_day(day) is None
    ticks = [datetime(2026, 5, 1, 9, 0, tzinfo=UTC), datetime(2026, 5, 1, 9, 5, tzinfo=UTC)]
    for i, tick in enumerate(ticks):
        path = store.save_forecast(tick, pl.DataFrame({"tick": [tick], "hails": [float(i)]}))
        assert str(path) == emulator.url(
            prefix, "artifacts", "forecasts", "2026-05-01", f"18{i * 5:02d}00.parquet"
        )
        store.save_forecast_features(tick, pl.DataFrame({"tick": [tick], "lag_1": [i]}))

    assert store.forecasts_for_day(day)["hails"].to_list() == [0.0, 1.0]
    assert store.forecast_features(ticks[1])["lag_1"].to_list() == [1]
    assert store.forecast_features(ticks[0] + timedelta(minutes=1)) is None
    # A tick stored again replaces itself.
    store.save_forecast(ticks[0], pl.DataFrame({"tick": [ticks[0]], "hails": [5.0]}))
    assert store.forecasts_for_day(day)["hails"].to_list() == [5.0, 1.0]

    # A tick another process (the next forecast run) stores is listed at once: the day was
    # listed above, and a cached listing would hide the new tick.
    later = datetime(2026, 5, 1, 9, 10, tzinfo=UTC)
    buffer = io.BytesIO()
    pl.DataFrame({"tick": [later], "hails": [2.0]}).write_parquet(buffer)
    emulator.client().bucket(emulator.bucket).blob(
        f"{prefix}/artifacts/forecasts/2026-05-01/181000.parquet"
    ).upload_from_string(buffer.getvalue())
    assert store.forecasts_for_day(day)["hails"].to_list() == [5.0, 1.0, 2.0]


# Credentials ----------------------------------------------------------------------------------


def test_the_writer_key_signs_the_token_requests(emulator: GcsEmulator, prefix: str) -> None:
    with loopback_token_endpoint() as tokens:
        key = service_account_key(tokens.url)
        store = _store(emulator, prefix, gcs_credentials=key.encoded)
        store.swap_production_pointer({"model_version": "v1"}, NO_POINTER)
        assert store.production_pointer() == {"model_version": "v1"}

    assert tokens.assertions, "the store never asked for an access token"
    # Verified with the key's public half: this very key signed the request.
    claims = jwt.decode(tokens.assertions[0], certs=key.public_pem)
    assert claims["iss"] == "writer@test.iam"
    # Objects only: read and write, not full control (ACLs).
    assert claims["scope"] == "https://www.googleapis.com/auth/devstorage.read_write"


def _encoded(payload: object) -> str:
    return base64.b64encode(json.dumps(payload).encode()).decode()


SECRET_LOOKING = "c2VjcmV0LXZhbHVlLXRoYXQtbXVzdC1uZXZlci1zaG93"


@pytest.mark.parametrize(
    ("credentials", "expected"),
    [
        (SECRET_LOOKING + "!!", "not a base64-encoded JSON document"),
        (SECRET_LOOKING, "not a base64-encoded JSON document"),
        (_encoded(["a", "list"]), "not an object"),
        (_encoded({"type": "service_account"}), "lacks client_email, private_key, token_uri"),
        (
            _encoded(
                {
                    "type": "service_account",
                    "client_email": "w@test.iam",
                    "token_uri": "http://127.0.0.1:1/token",
                    "private_key": "-----BEGIN PRIVATE KEY-----\nc2Vj\n-----END PRIVATE KEY-----",
                }
            ),
            "private_key cannot be loaded",
        ),
    ],
)
def test_malformed_credentials_fail_naming_the_setting_never_the_value(
    emulator: GcsEmulator, prefix: str, credentials: str, expected: str
) -> None:
    store = _store(emulator, prefix, gcs_credentials=credentials)
    with pytest.raises(StorageSettingError) as raised:
        store.production_pointer()
    message = str(raised.value)
    assert message.startswith("gcs_credentials: ") and expected in message
    # Not in the message, nor in a chained error of the traceback a run failure would show.
    shown = "".join(traceback.format_exception(raised.value))
    assert credentials not in shown and SECRET_LOOKING not in shown and "c2Vj" not in shown


def test_malformed_credentials_fail_the_run_without_showing_the_value(
    emulator: GcsEmulator, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_GCS_WRITER_CREDENTIALS", SECRET_LOOKING)
    io_manager = PartitionedParquetIOManager(
        base_dir=emulator.url(prefix, "partitions"),
        gcs_credentials=dg.EnvVar("TEST_GCS_WRITER_CREDENTIALS"),
        gcs_endpoint_url=emulator.endpoint_url,
    )
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [counts],
            partition_key="a",
            resources={"io_manager": io_manager},
            run_config={"ops": {"counts": {"config": {"values": [1]}}}},
            instance=instance,
            raise_on_error=False,
        )
        assert not result.success
        # Every event of the run as stored (the run failure carries the error and its causes).
        events = [str(entry) for entry in instance.all_logs(result.run_id)]
    joined = "\n".join(events)
    assert "gcs_credentials: not a base64-encoded JSON document" in joined
    assert SECRET_LOOKING not in joined
    assert emulator.object_names(f"{prefix}/") == []


def test_gcs_settings_on_a_local_folder_are_refused(tmp_path) -> None:
    with pytest.raises(StorageSettingError, match="gcs_endpoint_url only apply to gs:// paths"):
        StoredPartitions(base_dir=str(tmp_path), gcs_endpoint_url="http://127.0.0.1:1").read(
            "cell_demand", "2026-05-01"
        )
