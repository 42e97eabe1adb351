"""The data schema: inference from a reference window, JSON under review, anomalies, CLI."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from taxi_assets.cleaning import clean_probes
from taxi_assets.demand import aggregate_cell_demand
from taxi_assets.features import build_features
from taxi_assets.frames import CELL_DEMAND_SCHEMA, CLEAN_PROBES_SCHEMA, WEATHER_SCHEMA
from taxi_assets.service_area import CENTRAL_TOKYO
from taxi_assets.simulation import CityConfig, simulate_day
from taxi_assets.trips import derive_trip_events
from taxi_assets.validation import schema_cli
from taxi_assets.validation.schema import (
    ANOMALY_SCHEMA,
    RANGE_MARGIN,
    SCHEMA_DIR,
    DataSchema,
    FeatureSchema,
    find_anomalies,
    infer_schema,
    load_schema,
    quantile_levels,
    save_schema,
    schema_diff,
    schema_path,
)

DAYS = [date(2026, 5, 1), date(2026, 5, 2), date(2026, 5, 3)]
NEXT_DAY = date(2026, 5, 4)


def _simulated(day: date) -> tuple[pl.DataFrame, pl.DataFrame]:
    probes = simulate_day(CityConfig(fleet_size=60), day).probes
    clean = clean_probes(probes, day, CENTRAL_TOKYO).clean
    demand = aggregate_cell_demand(clean, derive_trip_events(clean), day, CENTRAL_TOKYO)
    return clean, demand


@pytest.fixture(scope="module")
def city() -> dict[str, dict[str, pl.DataFrame]]:
    """asset -> partition key -> frame, for the reference window and the day after."""
    frames: dict[str, dict[str, pl.DataFrame]] = {"clean_probes": {}, "cell_demand": {}}
    for day in [*DAYS, NEXT_DAY]:
        clean, demand = _simulated(day)
        frames["clean_probes"][day.isoformat()] = clean
        frames["cell_demand"][day.isoformat()] = demand
    return frames


def _reference(city: dict[str, dict[str, pl.DataFrame]], asset: str) -> dict[str, pl.DataFrame]:
    return {key: frame for key, frame in city[asset].items() if key != NEXT_DAY.isoformat()}


@pytest.fixture(scope="module")
def demand_schema(city: dict[str, dict[str, pl.DataFrame]]) -> DataSchema:
    return infer_schema("cell_demand", _reference(city, "cell_demand"), categorical=["cell"])


@pytest.fixture(scope="module")
def probes_schema(city: dict[str, dict[str, pl.DataFrame]]) -> DataSchema:
    return infer_schema("clean_probes", _reference(city, "clean_probes"), categorical=["cell"])


def _next_day(city: dict[str, dict[str, pl.DataFrame]], asset: str) -> pl.DataFrame:
    return city[asset][NEXT_DAY.isoformat()]


def _probes_day(city: dict[str, dict[str, pl.DataFrame]], schema: DataSchema) -> pl.DataFrame:
    """The next day's clean probes in the cells the reference saw (see the test below)."""
    seen = schema.features["cell"].categories
    assert seen is not None
    return _next_day(city, "clean_probes").filter(pl.col("cell").cast(pl.String).is_in(seen))


def _by_feature(anomalies: pl.DataFrame) -> dict[tuple[str, str], dict[str, object]]:
    return {(row["feature"], row["anomaly"]): row for row in anomalies.iter_rows(named=True)}


# ---------------------------------------------------------------------------------------------
# Inference


def test_cell_demand_schema_has_the_types_kinds_and_categories_of_the_frames(
    city: dict[str, dict[str, pl.DataFrame]], demand_schema: DataSchema
) -> None:
    reference = pl.concat(_reference(city, "cell_demand").values())
    assert list(demand_schema.features) == list(CELL_DEMAND_SCHEMA)
    assert demand_schema.reference_partitions == [day.isoformat() for day in DAYS]
    assert demand_schema.categorical == ["cell"]
    cell = demand_schema.features["cell"]
    assert (cell.dtype, cell.kind, cell.min, cell.bin_edges) == ("Int64", "categorical", None, None)
    assert cell.categories == sorted(reference["cell"].unique().cast(pl.String).to_list())
    bucket = demand_schema.features["bucket_start"]
    assert bucket.kind == "timestamp" and bucket.dtype == str(CELL_DEMAND_SCHEMA["bucket_start"])
    assert (bucket.min, bucket.max, bucket.categories, bucket.bin_edges) == (None,) * 4
    for feature in demand_schema.features.values():
        assert feature.required
        # Nothing was missing in the reference: only the allowance remains.
        assert feature.max_null_fraction == pytest.approx(0.01)


def test_numeric_ranges_are_the_reference_range_widened_without_crossing_zero(
    city: dict[str, dict[str, pl.DataFrame]], demand_schema: DataSchema, probes_schema: DataSchema
) -> None:
    demand = pl.concat(_reference(city, "cell_demand").values())
    pickups = demand_schema.features["pickups"]
    assert (pickups.dtype, pickups.kind, pickups.categories) == ("Int32", "numeric", None)
    seen_max = demand["pickups"].max()
    assert demand["pickups"].min() == 0 and pickups.min == 0.0  # not below 0
    assert pickups.max == pytest.approx(seen_max * (1 + RANGE_MARGIN))

    probes = pl.concat(_reference(city, "clean_probes").values())
    lat = probes_schema.features["lat"]
    low, high = probes["lat"].min(), probes["lat"].max()
    assert lat.min == pytest.approx(low - RANGE_MARGIN * (high - low), abs=1e-5)
    assert lat.max == pytest.approx(high + RANGE_MARGIN * (high - low), abs=1e-5)
    assert lat.min <= low and lat.max >= high


def test_bin_edges_are_quantiles_or_equal_width_when_quantiles_collapse(
    city: dict[str, dict[str, pl.DataFrame]], demand_schema: DataSchema, probes_schema: DataSchema
) -> None:
    probes = pl.concat(_reference(city, "clean_probes").values())
    lat_edges = probes_schema.features["lat"].bin_edges
    assert lat_edges is not None and len(lat_edges) == len(quantile_levels(20)) == 27
    assert lat_edges == sorted(set(lat_edges))
    assert lat_edges[0] == pytest.approx(probes["lat"].min(), abs=1e-5)
    assert lat_edges[-1] == pytest.approx(probes["lat"].max(), abs=1e-5)
    # Quantile edges: about 5% of the pings fall in each bin of the even grid.
    middle = probes.filter(pl.col("lat").is_between(lat_edges[9], lat_edges[10])).height
    assert middle / probes.height == pytest.approx(0.05, abs=0.01)

    # Mostly zeros: the distinct quantiles keep a bin for zero and bins for the tail.
    demand = pl.concat(_reference(city, "cell_demand").values())
    pickups_edges = demand_schema.features["pickups"].bin_edges
    assert pickups_edges is not None and pickups_edges == sorted(set(pickups_edges))
    assert pickups_edges[:2] == [0.0, 1.0] and pickups_edges[-1] == demand["pickups"].max()
    assert len(pickups_edges) >= 3
    assert set(demand_schema.bin_edges()) == {
        name for name, f in demand_schema.features.items() if f.kind == "numeric"
    }

    # Two distinct values only: equal-width bins over the reference range.
    two_values = infer_schema("two", {"d": pl.DataFrame({"x": [0.0] * 50 + [10.0]})})
    assert two_values.features["x"].bin_edges == [float(i) / 2 for i in range(21)]

    constant = infer_schema("constant", {"d": pl.DataFrame({"x": [3.0, 3.0]})})
    assert constant.features["x"].bin_edges == [2.5, 3.5]
    assert (constant.features["x"].min, constant.features["x"].max) == (3.0, 3.0)


def test_enum_categories_are_the_declared_ones(probes_schema: DataSchema) -> None:
    status = probes_schema.features["status"]
    assert status.kind == "categorical" and status.dtype.startswith("Enum(")
    assert status.categories == sorted(CLEAN_PROBES_SCHEMA["status"].categories.to_list())
    assert probes_schema.features["ts"].kind == "timestamp"
    # Vehicle ids are opaque text: no range, no bins.
    vehicle_id = probes_schema.features["vehicle_id"]
    assert (vehicle_id.dtype, vehicle_id.min, vehicle_id.bin_edges) == ("String", None, None)


def test_null_allowance_is_the_dirtiest_reference_day_plus_a_margin() -> None:
    frames = {
        "2026-05-01": pl.DataFrame({"x": [1.0] * 100, "s": ["a"] * 100}),
        # 5 NaN and 5 nulls: both are "no value".
        "2026-05-02": pl.DataFrame(
            {"x": [float("nan")] * 5 + [None] * 5 + [2.0] * 90, "s": ["a"] * 99 + [None]}
        ),
        "2026-05-03": pl.DataFrame({"x": [float("inf")], "s": ["b"]}),
    }
    schema = infer_schema("toy", frames)
    assert schema.features["x"].max_null_fraction == pytest.approx(0.11)
    assert schema.features["s"].max_null_fraction == pytest.approx(0.02)
    assert schema.features["s"].categories == ["a", "b"]
    # Infinity is not a range: it stays an anomaly.
    assert (schema.features["x"].min, schema.features["x"].max) == (
        1.0 - RANGE_MARGIN,
        2.0 + RANGE_MARGIN,
    )


def test_a_large_domain_is_not_listed_and_not_checked(
    city: dict[str, dict[str, pl.DataFrame]],
) -> None:
    schema = infer_schema(
        "cell_demand", _reference(city, "cell_demand"), categorical=["cell"], max_categories=10
    )
    assert schema.features["cell"].categories is None
    unseen_cell = _next_day(city, "cell_demand").with_columns(pl.lit(1, pl.Int64).alias("cell"))
    assert find_anomalies(unseen_cell, schema).is_empty()


def test_inference_refuses_what_it_cannot_describe() -> None:
    with pytest.raises(ValueError, match="no reference partitions"):
        infer_schema("toy", {})
    with pytest.raises(ValueError, match=r"'x' is Int64 in partition b but Int32 in a"):
        infer_schema(
            "toy",
            {"a": pl.DataFrame({"x": [1]}, schema={"x": pl.Int32}), "b": pl.DataFrame({"x": [1]})},
        )
    with pytest.raises(ValueError, match=r"categorical column\(s\) \['cel'\]"):
        infer_schema("toy", {"a": pl.DataFrame({"cell": [1]})}, categorical=["cel"])
    with pytest.raises(ValueError, match="'xs' has type List.*exclude"):
        infer_schema("toy", {"a": pl.DataFrame({"xs": [[1]]})})


# ---------------------------------------------------------------------------------------------
# JSON


def test_json_round_trip_is_exact_and_stable(
    demand_schema: DataSchema, probes_schema: DataSchema, tmp_path: Path
) -> None:
    for schema in (demand_schema, probes_schema):
        text = schema.to_json()
        assert DataSchema.from_json(text) == schema
        assert DataSchema.from_json(text).to_json() == text
        path = save_schema(schema, tmp_path / f"{schema.asset}.json")
        assert load_schema(schema.asset, path) == schema
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cell_demand.json", "clean_probes.json"]


def test_json_has_one_block_per_feature_in_column_order(demand_schema: DataSchema) -> None:
    document = json.loads(demand_schema.to_json())
    assert document["format_version"] == 1 and document["asset"] == "cell_demand"
    assert [feature["name"] for feature in document["features"]] == list(CELL_DEMAND_SCHEMA)
    assert list(document["features"][0]) == list(FeatureSchema.__dataclass_fields__)
    assert demand_schema.to_json().count('\n    {\n      "name": ') == len(CELL_DEMAND_SCHEMA)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: "{not json", "cell_demand.json: not valid JSON"),
        (
            lambda d: {k: v for k, v in d.items() if k != "asset"},
            "top level: missing field 'asset'",
        ),
        (lambda d: {**d, "format_version": 9}, "format_version 9 is not supported"),
        (
            lambda d: _set_feature(d, 2, "max", "high"),
            r"features\[2\] \(street_hail_pickups\).max: expected a number or null",
        ),
        (
            lambda d: _set_feature(d, 4, "kind", "ordinal"),
            r"features\[4\] \(pickups\).kind: 'ordinal' is not one of",
        ),
        (
            lambda d: _set_feature(d, 3, "bin_edges", [1.0, 1.0]),
            r"features\[3\] \(app_booking_pickups\).bin_edges: expected at least 2 increasing",
        ),
        (
            lambda d: _set_feature(d, 0, "colour", "red"),
            r"features\[0\]: .*unknown field\(s\) \['colour'\]",
        ),
        (
            lambda d: _set_feature(d, 5, "max_null_fraction", 1.5),
            r"features\[5\] \(dropoffs\).max_null_fraction: must be in \[0, 1\]",
        ),
    ],
)
def test_malformed_json_names_the_file_and_the_field(
    demand_schema: DataSchema, edit: object, message: str
) -> None:
    edited = edit(json.loads(demand_schema.to_json()))  # type: ignore[operator]
    text = edited if isinstance(edited, str) else json.dumps(edited)
    with pytest.raises(ValueError, match=message):
        DataSchema.from_json(text, source="cell_demand.json")


def _set_feature(document: dict, index: int, key: str, value: object) -> dict:
    document["features"][index][key] = value
    return document


def test_load_schema_explains_how_to_create_a_missing_schema(
    demand_schema: DataSchema, tmp_path: Path
) -> None:
    missing = tmp_path / "cell_demand.json"
    with pytest.raises(FileNotFoundError, match="taxi-assets schema infer --asset cell_demand"):
        load_schema("cell_demand", missing)
    save_schema(demand_schema, tmp_path / "clean_probes.json")
    with pytest.raises(ValueError, match="holds the schema of asset 'cell_demand'"):
        load_schema("clean_probes", tmp_path / "clean_probes.json")
    assert schema_path("cell_demand").parts[-3:] == ("validation", "schemas", "cell_demand.json")


@pytest.mark.parametrize("asset", sorted(schema_cli.SCHEMA_ASSETS))
def test_committed_schemas_load_and_match_the_frame_schemas(asset: str) -> None:
    frame_schema = {
        "clean_probes": CLEAN_PROBES_SCHEMA,
        "cell_demand": CELL_DEMAND_SCHEMA,
        # What build_features makes of no data at all: its columns and types.
        "training_features": build_features(
            pl.DataFrame(schema=CELL_DEMAND_SCHEMA),
            pl.DataFrame(schema=WEATHER_SCHEMA),
            pl.DataFrame(schema=CELL_DEMAND_SCHEMA),
            15,
        ).schema,
    }[asset]
    schema = load_schema(asset)
    assert {name: f.dtype for name, f in schema.features.items()} == {
        name: str(dtype) for name, dtype in frame_schema.items() if name not in schema.excluded
    }
    empty = pl.DataFrame(schema=frame_schema)
    assert find_anomalies(empty, schema).is_empty()


# ---------------------------------------------------------------------------------------------
# Anomalies


def _as_deployed(city: dict[str, dict[str, pl.DataFrame]], asset: str) -> DataSchema:
    """The schema ``taxi-assets schema infer`` (and onboarding) infers from the reference."""
    return infer_schema(asset, _reference(city, asset), **schema_cli.SCHEMA_ASSETS[asset])


def test_a_day_like_the_reference_has_no_anomalies(
    city: dict[str, dict[str, pl.DataFrame]], demand_schema: DataSchema, probes_schema: DataSchema
) -> None:
    anomalies = find_anomalies(_next_day(city, "cell_demand"), demand_schema)
    assert anomalies.schema == ANOMALY_SCHEMA
    assert anomalies.is_empty(), anomalies

    # 60 taxis do not drive through all 1,520 cells in three days, so the next day's pings
    # reach cells the reference never saw. Against a list of the cells seen, those are new
    # categories...
    probes = _next_day(city, "clean_probes")
    found = _by_feature(find_anomalies(probes, probes_schema))
    assert set(found) == {("cell", "new_category")}
    seen = probes_schema.features["cell"].categories
    assert seen is not None
    unseen = probes.filter(~pl.col("cell").cast(pl.String).is_in(seen))
    assert found[("cell", "new_category")]["rows"] == unseen.height > 0
    # ...but they are cells of the service area, which is what the deployed schema checks.
    deployed = _as_deployed(city, "clean_probes")
    assert deployed.service_area_cells == ["cell"] and deployed.features["cell"].categories is None
    assert find_anomalies(probes, deployed, CENTRAL_TOKYO).is_empty()
    assert find_anomalies(_probes_day(city, probes_schema), probes_schema).is_empty()


def test_cells_outside_the_service_area_are_anomalies_naming_them(
    city: dict[str, dict[str, pl.DataFrame]],
) -> None:
    deployed = _as_deployed(city, "cell_demand")
    day = _next_day(city, "cell_demand")
    outside = 533945999  # a valid-looking mesh code far from central Tokyo
    assert outside not in CENTRAL_TOKYO.cells()["cell"]
    moved = day.with_columns(
        pl.when(pl.int_range(pl.len()) < 7).then(outside).otherwise(pl.col("cell")).alias("cell")
    )
    found = _by_feature(find_anomalies(moved, deployed, CENTRAL_TOKYO))
    assert set(found) == {("cell", "outside_service_area")}
    assert found[("cell", "outside_service_area")]["rows"] == 7
    assert found[("cell", "outside_service_area")]["detail"] == (
        f"7 rows in cells outside the service area, e.g. ['{outside}']"
    )
    # Without an area the cells are not value-checked.
    assert find_anomalies(moved, deployed).is_empty()


def test_the_committed_schemas_pass_a_smaller_fleet_of_another_window(
    city: dict[str, dict[str, pl.DataFrame]],
) -> None:
    # The committed schemas come from 1,000 simulated taxis over 2026-04-20..05-03; a
    # 60-taxi city in May is as valid a feed: any cell of the area, counts within headroom,
    # vehicle ids not judged by the schema (the contract does).
    for asset in ("clean_probes", "cell_demand"):
        committed = load_schema(asset, schema_path(asset, SCHEMA_DIR))
        for key, frame in city[asset].items():
            anomalies = find_anomalies(frame, committed, CENTRAL_TOKYO)
            assert anomalies.is_empty(), (asset, key, anomalies)
    assert (
        "vehicle_id" not in load_schema("clean_probes", SCHEMA_DIR / "clean_probes.json").features
    )


def test_known_categories_and_optional_columns() -> None:
    frames = {
        "2026-05-01": pl.DataFrame(
            {"day_type": ["weekday"], "rain": [None]}, schema_overrides={"rain": pl.Float64}
        ),
        "2026-05-02": pl.DataFrame({"day_type": ["weekday"], "rain": [1.0]}),
    }
    schema = infer_schema(
        "toy",
        frames,
        known_categories={"day_type": ("weekday", "saturday", "holiday")},
        optional=["rain"],
    )
    assert schema.features["day_type"].categories == ["holiday", "saturday", "weekday"]
    assert schema.features["rain"].max_null_fraction == 1.0
    unbounded = infer_schema("toy", frames, unbounded=["rain"])
    rain = unbounded.features["rain"]
    assert (rain.min, rain.max) == (None, None) and rain.bin_edges is not None
    no_rain = pl.DataFrame(
        {"day_type": ["holiday"] * 3, "rain": [None] * 3}, schema_overrides={"rain": pl.Float64}
    )
    assert find_anomalies(no_rain, schema).is_empty()
    with pytest.raises(ValueError, match=r"optional column\(s\) \['snow'\]"):
        infer_schema("toy", frames, optional=["snow"])


def test_missing_new_and_retyped_columns_are_column_anomalies(
    city: dict[str, dict[str, pl.DataFrame]], demand_schema: DataSchema
) -> None:
    day = _next_day(city, "cell_demand").drop("dropoffs")
    day = day.with_columns(
        (pl.col("pickups").cast(pl.Int64) + 1000).alias("pickups"),
        pl.lit("x").alias("weather_note"),
    )
    found = _by_feature(find_anomalies(day, demand_schema))
    assert set(found) == {
        ("dropoffs", "missing_column"),
        ("pickups", "type_change"),
        ("weather_note", "new_column"),
    }
    assert found[("pickups", "type_change")]["detail"].startswith("type Int64, expected Int32")
    # A retyped column is not range-checked (its 1000+ values would all be out of range).
    assert "not range/category-checked" in found[("pickups", "type_change")]["detail"]
    assert {row["rows"] for row in found.values()} == {0}


def test_new_categories_are_counted_and_named(
    city: dict[str, dict[str, pl.DataFrame]], demand_schema: DataSchema, probes_schema: DataSchema
) -> None:
    day = _next_day(city, "cell_demand")
    day = day.with_columns(
        pl.when(pl.int_range(pl.len()) < 12).then(1).otherwise(pl.col("cell")).alias("cell")
    )
    found = _by_feature(find_anomalies(day, demand_schema))
    assert set(found) == {("cell", "new_category")}
    assert found[("cell", "new_category")]["rows"] == 12
    assert found[("cell", "new_category")]["detail"] == "new categories ['1'] (12 rows)"

    # A status delivered as plain strings is a type change; against a String schema a new
    # value is a new category.
    strings = {
        key: frame.with_columns(pl.col("status").cast(pl.String))
        for key, frame in _reference(city, "clean_probes").items()
    }
    string_schema = infer_schema("clean_probes", strings, categorical=["cell"])
    probes = _probes_day(city, probes_schema).with_columns(pl.col("status").cast(pl.String))
    hired = probes.with_columns(
        pl.when(pl.int_range(pl.len()) % 1000 == 0)
        .then(pl.lit("hired"))
        .otherwise(pl.col("status"))
        .alias("status")
    )
    found = _by_feature(find_anomalies(hired, string_schema))
    expected_rows = (probes.height + 999) // 1000
    assert found[("status", "new_category")]["rows"] == expected_rows
    assert found[("status", "new_category")]["detail"] == (
        f"new categories ['hired'] ({expected_rows} rows)"
    )
    assert _by_feature(find_anomalies(probes, probes_schema)).keys() == {("status", "type_change")}


def test_values_out_of_range_are_counted_on_both_sides(
    city: dict[str, dict[str, pl.DataFrame]], probes_schema: DataSchema
) -> None:
    probes = _probes_day(city, probes_schema)
    speed = probes_schema.features["speed_kmh"]
    assert speed.max is not None
    broken = probes.with_columns(
        pl.when(pl.int_range(pl.len()) < 3)
        .then(310.0)
        .when(pl.int_range(pl.len()) < 5)
        .then(-4.0)
        .otherwise(pl.col("speed_kmh"))
        .cast(pl.Float32)
        .alias("speed_kmh")
    )
    found = _by_feature(find_anomalies(broken, probes_schema))
    assert set(found) == {("speed_kmh", "out_of_range")}
    row = found[("speed_kmh", "out_of_range")]
    assert row["rows"] == 5
    assert row["detail"] == (
        f"2 values below min {speed.min} (min seen -4.0); "
        f"3 values above max {speed.max} (max seen 310.0)"
    )


def test_nulls_and_nans_above_the_allowance_are_a_null_fraction_anomaly(
    city: dict[str, dict[str, pl.DataFrame]], probes_schema: DataSchema
) -> None:
    probes = _probes_day(city, probes_schema)
    index = pl.int_range(pl.len())
    broken = probes.with_columns(
        # 10% NaN and 13% null: 23% without a usable latitude.
        pl.when(index % 100 < 10)
        .then(float("nan"))
        .when(index % 100 < 23)
        .then(None)
        .otherwise(pl.col("lat"))
        .alias("lat")
    )
    found = _by_feature(find_anomalies(broken, probes_schema))
    assert set(found) == {("lat", "null_fraction")}
    expected = broken.select((pl.col("lat").is_null() | pl.col("lat").is_nan()).sum()).item()
    assert found[("lat", "null_fraction")]["rows"] == expected
    assert found[("lat", "null_fraction")]["detail"] == "null fraction 0.23 > allowed 0.01"


def test_an_empty_frame_is_judged_on_columns_only(demand_schema: DataSchema) -> None:
    empty = pl.DataFrame(schema=CELL_DEMAND_SCHEMA)
    assert find_anomalies(empty, demand_schema).is_empty()
    changed = empty.drop("cell").with_columns(
        pl.col("pickups").cast(pl.Float64), pl.lit(0.0).alias("rain_mm_per_h")
    )
    found = _by_feature(find_anomalies(changed, demand_schema))
    assert set(found) == {
        ("cell", "missing_column"),
        ("pickups", "type_change"),
        ("rain_mm_per_h", "new_column"),
    }


def test_excluded_and_optional_columns_are_not_anomalies() -> None:
    frames = {
        "a": pl.DataFrame({"x": [1, 2], "note": ["n", "m"], "extra": [1.0, 2.0]}),
        "b": pl.DataFrame({"x": [3, 4], "note": ["n", "n"]}),
    }
    schema = infer_schema("toy", frames, exclude=["note"])
    assert list(schema.features) == ["x", "extra"] and schema.excluded == ["note"]
    assert not schema.features["extra"].required
    assert find_anomalies(frames["b"], schema).is_empty()
    assert find_anomalies(frames["a"], schema).is_empty()


# ---------------------------------------------------------------------------------------------
# Review


def test_schema_diff_lists_what_a_reviewer_accepts(
    city: dict[str, dict[str, pl.DataFrame]], demand_schema: DataSchema
) -> None:
    assert schema_diff(demand_schema, demand_schema) == []
    changed_frames = {
        key: frame.drop("dropoffs")
        .with_columns(
            (pl.col("pickups") * 10).alias("pickups"),
            pl.col("vacant_taxis").cast(pl.Int64),
            pl.when(pl.col("cell") == pl.col("cell").min())
            .then(None)
            .otherwise(pl.col("occupied_taxis"))
            .alias("occupied_taxis"),
            pl.lit(0.5).alias("rain_mm_per_h"),
        )
        .filter(pl.col("cell") != pl.col("cell").max())
        for key, frame in _reference(city, "cell_demand").items()
    }
    changed_frames["2026-05-04"] = changed_frames["2026-05-03"]
    changed = infer_schema("cell_demand", changed_frames, categorical=["cell"])
    lines = schema_diff(demand_schema, changed)
    removed_cell = str(_reference(city, "cell_demand")["2026-05-01"]["cell"].max())
    old_max = demand_schema.features["pickups"].max
    expected_fragments = [
        "reference window: 2026-05-01..2026-05-03 (3 partitions) -> "
        "2026-05-01..2026-05-04 (4 partitions)",
        "- dropoffs: feature removed",
        "+ rain_mm_per_h: new numeric feature (Float64)",
        "~ vacant_taxis: type Int32 -> Int64",
        f"~ pickups: range [0.0, {old_max}] -> [0.0, ",
        f"~ cell: categories removed ['{removed_cell}']",
        "~ occupied_taxis: null allowance 0.01 -> 0.01",
        "~ pickups: bin edges",
    ]
    for fragment in expected_fragments:
        assert any(line.startswith(fragment) for line in lines), (fragment, lines)


# ---------------------------------------------------------------------------------------------
# CLI


@pytest.fixture
def stored(city: dict[str, dict[str, pl.DataFrame]], tmp_path: Path) -> Path:
    """A data dir holding the simulated partitions as the pipeline stores them."""
    data_dir = tmp_path / "data"
    for asset, frames in city.items():
        (data_dir / asset).mkdir(parents=True)
        for key, frame in frames.items():
            frame.write_parquet(data_dir / asset / f"{key}.parquet")
    return data_dir


def _cli_main(args: list[str]) -> int:
    # Imported here: the CLI module loads the whole code location, which the schema
    # functions above do not need.
    from taxi_assets import cli

    return cli.main(args)


def test_schema_infer_dry_run_write_and_review(
    stored: Path,
    tmp_path: Path,
    city: dict[str, dict[str, pl.DataFrame]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    schemas = tmp_path / "schemas"
    args = ["schema", "infer", "--asset", "cell_demand", "--start", "2026-05-01", "--days", "3"]
    args += ["--data-dir", str(stored), "--schema-dir", str(schemas)]

    assert _cli_main(args) == 1
    out = capsys.readouterr().out
    assert "new schema (8 features)" in out and "dry run: nothing written" in out
    assert not schemas.exists()

    assert _cli_main([*args, "--write"]) == 0
    out = capsys.readouterr().out
    written = schemas / "cell_demand.json"
    assert f"wrote {written}" in out and f"git diff {written}" in out
    deployed = _as_deployed(city, "cell_demand")
    assert load_schema("cell_demand", written) == deployed

    assert _cli_main(args) == 0
    assert f"unchanged: {written}" in capsys.readouterr().out

    wider = [a if a != "3" else "4" for a in args]
    assert _cli_main(wider) == 1
    out = capsys.readouterr().out
    assert f"changes against {written}" in out
    assert "reference window: 2026-05-01..2026-05-03 (3 partitions)" in out
    assert load_schema("cell_demand", written) == deployed  # dry run: untouched


def test_onboarding_reads_stored_days_and_writes_a_reviewed_folder(
    stored: Path, tmp_path: Path, city: dict[str, dict[str, pl.DataFrame]]
) -> None:
    from taxi_assets.validation.onboarding import onboard_validation_folder
    from taxi_assets.validation.thresholds import load_drift_thresholds

    folder = tmp_path / "validation"
    days = ["2026-05-01", "2026-05-02", "2026-05-03"]
    assets = ("clean_probes", "cell_demand")
    dry = onboard_validation_folder(stored, days, folder, assets=assets)
    assert dry.written == [] and not folder.exists()
    assert f"{folder / 'drift_thresholds.json'}: new drift thresholds" in dry.changes

    done = onboard_validation_folder(stored, days, folder, write=True, assets=assets)
    assert {path.name for path in done.written} == {
        "clean_probes.json",
        "cell_demand.json",
        "drift_thresholds.json",
    }
    assert load_schema("cell_demand", folder / "cell_demand.json") == _as_deployed(
        city, "cell_demand"
    )
    assert load_drift_thresholds(folder).reference_partitions == days
    # Re-run on the same days: nothing to review.
    assert onboard_validation_folder(stored, days, folder, assets=assets).changes == []

    # Against the committed folder (never written here): a readable review of each file.
    changes = onboard_validation_folder(stored, days, SCHEMA_DIR, assets=assets).changes
    assert f"{SCHEMA_DIR / 'cell_demand.json'}:" in changes
    window = "reference window: 2026-04-20..2026-05-03 (14 partitions) -> 2026-05-01..2026-05-03"
    assert sum(line.strip().startswith(window) for line in changes) == 3  # 2 schemas + thresholds
    with pytest.raises(FileNotFoundError, match="2026-05-09"):
        onboard_validation_folder(stored, ["2026-05-08", "2026-05-09"], folder, assets=assets)
    with pytest.raises(ValueError, match="at least 2 reference days"):
        onboard_validation_folder(stored, ["2026-05-01"], folder, assets=assets)


def test_schema_diff_says_cells_are_checked_against_the_area(
    city: dict[str, dict[str, pl.DataFrame]], demand_schema: DataSchema
) -> None:
    lines = schema_diff(demand_schema, _as_deployed(city, "cell_demand"))
    assert "service area cells: [] -> ['cell']" in lines
    listed = len(demand_schema.features["cell"].categories or [])
    assert f"~ cell: categories {listed} listed -> any cell of the service area" in lines


def test_schema_infer_lists_missing_partitions(
    stored: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = _cli_main(
        ["schema", "infer", "--asset", "clean_probes", "--start", "2026-04-29", "--days", "4"]
        + ["--data-dir", str(stored), "--schema-dir", str(tmp_path / "schemas")]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "2 of 4 partitions missing" in err
    assert "clean_probes/2026-04-29.parquet" in err and "clean_probes/2026-04-30.parquet" in err


def test_schema_infer_reads_the_data_dir_from_the_environment(
    stored: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    city: dict[str, dict[str, pl.DataFrame]],
) -> None:
    monkeypatch.setenv("TAXI_ASSETS_DATA_DIR", str(stored))
    code = schema_cli.infer_command(
        "clean_probes", date(2026, 5, 1), 3, write=True, schema_dir=tmp_path
    )
    assert code == 0
    written = load_schema("clean_probes", tmp_path / "clean_probes.json")
    assert written == _as_deployed(city, "clean_probes")


def test_schema_infer_writes_to_the_configured_validation_folder_not_the_package(
    stored: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    committed = (SCHEMA_DIR / "cell_demand.json").read_text(encoding="utf-8")
    folder = tmp_path / "deployment" / "validation"
    monkeypatch.setenv("TAXI_ASSETS_VALIDATION_DIR", str(folder))
    assert schema_path("cell_demand") == folder / "cell_demand.json"
    code = schema_cli.infer_command("cell_demand", date(2026, 5, 1), 3, data_dir=stored, write=True)
    assert code == 0
    assert f"wrote {folder / 'cell_demand.json'}" in capsys.readouterr().out
    assert load_schema("cell_demand").reference_partitions == [
        "2026-05-01",
        "2026-05-02",
        "2026-05-03",
    ]
    assert (SCHEMA_DIR / "cell_demand.json").read_text(encoding="utf-8") == committed
