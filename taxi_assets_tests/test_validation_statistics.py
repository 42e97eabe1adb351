"""compute_statistics against direct Polars / numpy computations on small real frames."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from taxi_assets.frames import CLEAN_PROBES_SCHEMA, ProbeStatus
from taxi_assets.validation.statistics import (
    QUANTILES,
    STATISTICS_SCHEMA,
    compute_statistics,
    statistics_markdown,
)

NAN = float("nan")


@pytest.fixture(scope="module")
def probes() -> pl.DataFrame:
    """A CLEAN_PROBES_SCHEMA frame with nulls, NaN and out-of-range speeds."""
    rng = np.random.default_rng(7)
    rows = 5_000
    speed = rng.gamma(2.0, 6.0, rows).astype(np.float32)
    speed[:50] = np.nan
    speed[50:60] = 500.0  # far above the last edge
    speed[60:65] = -3.0  # below the first edge
    start = datetime(2026, 4, 27, 15, tzinfo=UTC)
    return pl.DataFrame(
        {
            "vehicle_id": rng.integers(1, 200, rows, dtype=np.int32).astype(str),
            "ts": [start + timedelta(seconds=int(s)) for s in rng.integers(0, 86_400, rows)],
            "lat": rng.normal(35.68, 0.03, rows),
            "lon": rng.normal(139.74, 0.04, rows),
            "speed_kmh": speed,
            "heading": rng.uniform(0, 360, rows).astype(np.float32),
            "status": rng.choice(["vacant", "occupied", "dispatched"], rows, p=[0.6, 0.3, 0.1]),
            "cell": rng.choice([533946211, 533946113, 533945662], rows),
        },
        schema=CLEAN_PROBES_SCHEMA,
    ).with_columns(
        # Nulls in a float and an Enum column.
        lat=pl.when(pl.int_range(pl.len()) % 100 == 0).then(None).otherwise(pl.col("lat")),
        status=pl.when(pl.int_range(pl.len()) % 250 == 1).then(None).otherwise(pl.col("status")),
    )


SPEED_EDGES = [0.0, 5.0, 10.0, 20.0, 40.0, 80.0]


@pytest.fixture(scope="module")
def stats(probes: pl.DataFrame) -> pl.DataFrame:
    return compute_statistics(
        probes, bin_edges={"speed_kmh": SPEED_EDGES}, categorical=["cell"], exclude=["lon"]
    )


def _row(stats: pl.DataFrame, feature: str) -> dict:
    return stats.filter(pl.col("feature") == feature).row(0, named=True)


def test_output_schema_rows_and_kinds(stats: pl.DataFrame, probes: pl.DataFrame) -> None:
    assert stats.schema == STATISTICS_SCHEMA
    assert stats["feature"].to_list() == [c for c in probes.columns if c != "lon"]
    assert dict(zip(stats["feature"], stats["kind"], strict=True)) == {
        "vehicle_id": "categorical",
        "ts": "timestamp",
        "lat": "numeric",
        "speed_kmh": "numeric",
        "heading": "numeric",
        "status": "categorical",
        "cell": "categorical",
    }
    assert set(stats["rows"]) == {probes.height}
    assert _row(stats, "status")["dtype"] == str(ProbeStatus)


@pytest.mark.parametrize("feature", ["lat", "speed_kmh", "heading"])
def test_numeric_statistics_match_numpy(
    stats: pl.DataFrame, probes: pl.DataFrame, feature: str
) -> None:
    values = probes[feature].cast(pl.Float64).to_numpy()
    present = values[~np.isnan(values)]  # nulls become NaN in numpy; NaN counts as null
    row = _row(stats, feature)
    assert row["count"] == present.size
    assert row["null_fraction"] == pytest.approx(1 - present.size / probes.height)
    assert row["min"] == present.min()
    assert row["max"] == present.max()
    assert row["mean"] == pytest.approx(present.mean())
    assert row["std"] == pytest.approx(present.std(ddof=1))
    assert row["quantiles"] == pytest.approx(np.quantile(present, QUANTILES).tolist())
    assert sum(row["histogram"]) == row["count"]
    assert len(row["histogram"]) == len(row["bin_edges"]) - 1


def test_nan_and_null_count_as_missing(stats: pl.DataFrame) -> None:
    assert _row(stats, "speed_kmh")["null_fraction"] == pytest.approx(50 / 5_000)
    assert _row(stats, "lat")["null_fraction"] == pytest.approx(50 / 5_000)


def test_given_edges_put_out_of_range_values_in_the_edge_bins(
    stats: pl.DataFrame, probes: pl.DataFrame
) -> None:
    row = _row(stats, "speed_kmh")
    assert row["bin_edges"] == SPEED_EDGES
    speed = probes["speed_kmh"].cast(pl.Float64).to_numpy()
    speed = speed[~np.isnan(speed)]
    clipped = np.clip(speed, SPEED_EDGES[0], SPEED_EDGES[-1])
    expected, _ = np.histogram(clipped, bins=SPEED_EDGES)
    assert row["histogram"] == expected.tolist()
    assert row["histogram"][0] >= 5  # the five -3 km/h pings
    assert row["histogram"][-1] >= 10  # the ten 500 km/h pings


def test_self_binned_histogram_uses_20_bins_over_the_range(
    stats: pl.DataFrame, probes: pl.DataFrame
) -> None:
    row = _row(stats, "heading")
    heading = probes["heading"].cast(pl.Float64).to_numpy()
    expected, edges = np.histogram(heading, bins=20)
    assert row["bin_edges"] == pytest.approx(edges.tolist())
    assert row["histogram"] == expected.tolist()


def test_categorical_counts_enum_and_integer_cell(
    stats: pl.DataFrame, probes: pl.DataFrame
) -> None:
    for feature in ("status", "cell"):
        expected = (
            probes[feature]
            .drop_nulls()
            .cast(pl.String)
            .value_counts(name="n")
            .sort(["n", feature], descending=[True, False])
        )
        row = _row(stats, feature)
        assert row["values"] == expected[feature].to_list()
        assert row["value_counts"] == expected["n"].to_list()
        assert row["count"] == probes[feature].drop_nulls().len()
        assert row["quantiles"] is None
        assert row["histogram"] is None
        assert row["min"] is None
    assert _row(stats, "status")["null_fraction"] == pytest.approx(20 / 5_000)


def test_timestamp_range_in_epoch_seconds(stats: pl.DataFrame, probes: pl.DataFrame) -> None:
    row = _row(stats, "ts")
    assert row["min"] == probes["ts"].min().timestamp()
    assert row["max"] == probes["ts"].max().timestamp()
    assert row["mean"] is None and row["std"] is None
    assert row["histogram"] is None and row["values"] is None
    assert len(row["quantiles"]) == len(QUANTILES)
    assert row["quantiles"] == sorted(row["quantiles"])


def test_boolean_string_and_date_columns() -> None:
    frame = pl.DataFrame(
        {
            "flag": [True, False, True, None],
            "name": ["a", "b", "a", "a"],
            "day": [date(2026, 5, 1), date(2026, 5, 2), None, date(2026, 5, 3)],
        }
    )
    stats = compute_statistics(frame)
    assert stats["kind"].to_list() == ["categorical", "categorical", "timestamp"]
    assert _row(stats, "flag")["values"] == ["true", "false"]
    assert _row(stats, "name")["value_counts"] == [3, 1]
    day = _row(stats, "day")
    assert day["min"] == datetime(2026, 5, 1, tzinfo=UTC).timestamp()
    assert day["count"] == 3


def test_empty_frame_gives_null_statistics(probes: pl.DataFrame) -> None:
    stats = compute_statistics(
        probes.head(0), bin_edges={"speed_kmh": SPEED_EDGES}, categorical=["cell"]
    )
    assert stats.schema == STATISTICS_SCHEMA
    assert stats.height == len(probes.columns)
    assert set(stats["rows"]) == {0} and set(stats["count"]) == {0}
    assert stats["null_fraction"].null_count() == stats.height
    assert stats["mean"].null_count() == stats.height
    assert _row(stats, "speed_kmh")["histogram"] == [0] * (len(SPEED_EDGES) - 1)
    assert _row(stats, "heading")["histogram"] is None  # no range to self-bin
    assert _row(stats, "status")["values"] == []


def test_constant_and_all_null_columns() -> None:
    frame = pl.DataFrame({"k": [3.0, 3.0, 3.0], "gone": [None, NAN, None]})
    stats = compute_statistics(frame)
    constant = _row(stats, "k")
    assert constant["histogram"] is not None and sum(constant["histogram"]) == 3
    assert constant["std"] == 0.0
    gone = _row(stats, "gone")
    assert gone["count"] == 0 and gone["null_fraction"] == 1.0
    assert gone["histogram"] is None and gone["quantiles"] is None


def test_no_columns_gives_an_empty_statistics_frame() -> None:
    assert compute_statistics(pl.DataFrame()).schema == STATISTICS_SCHEMA


@pytest.mark.parametrize(
    ("bin_edges", "message"),
    [
        ({"speed_kmh": [1.0]}, "at least 2"),
        ({"speed_kmh": [0.0, 5.0, 5.0]}, "strictly increasing"),
        ({"speed_kmh": [0.0, float("inf")]}, "finite"),
        ({"status": [0.0, 1.0]}, "categorical"),
    ],
)
def test_bad_bin_edges_raise_naming_the_feature(
    probes: pl.DataFrame, bin_edges: dict, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        compute_statistics(probes, bin_edges=bin_edges)


def test_unsupported_dtype_raises_and_exclude_skips_it() -> None:
    frame = pl.DataFrame({"tags": [["a"], ["b"]], "x": [1, 2]})
    with pytest.raises(ValueError, match="exclude"):
        compute_statistics(frame)
    assert compute_statistics(frame, exclude=["tags"])["feature"].to_list() == ["x"]


def test_statistics_markdown_names_features_and_numbers(stats: pl.DataFrame) -> None:
    markdown = statistics_markdown(stats)
    for feature in stats["feature"]:
        assert f"| {feature} |" in markdown
    assert "4,950" in markdown  # speed_kmh count
    assert "vacant" in markdown and "2026-04-27" in markdown
    assert "more features not shown" in statistics_markdown(stats, max_rows=2)
