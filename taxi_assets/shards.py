"""The data path in shards of vehicles, so that a big day never sits in memory whole.

Every cleaning, trip and supply rule looks at one vehicle's pings only (and one day), so
cleaning the vehicles in groups and putting the groups back together is exact. The groups
are contiguous ranges of the vehicle ids in their sort order: the clean probes of the
shards, concatenated in order, are the day's clean probes sorted by (vehicle_id, ts) as
:func:`~taxi_assets.cleaning.clean_probes` returns them, bit for bit. Rejected pings go
back to arrival order by their row number in the day. Pings without a vehicle id (all
quarantined) travel with the last shard.

The day is read once, with its text columns as integer codes (~44 bytes a ping instead of
~64 as delivered), and each shard is cut from that and cleaned on its own: the peak memory
is the encoded day, one shard's working set, and what the caller keeps (the bench keeps
only cell_demand; the cleaning asset keeps the day's clean and rejected probes to store
them). Reading the stored file once per shard instead would decode it whole every time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from functools import reduce

import polars as pl

from taxi_assets.cleaning import CleaningResult, CleaningRules, DayCodes, as_raw_lazy, clean_encoded
from taxi_assets.demand import COUNT_COLUMNS, aggregate_cell_demand
from taxi_assets.service_area import ServiceArea
from taxi_assets.trips import derive_trips

# The default (shards=0) cuts a day into shards of about this many pings: a shard's
# working set is roughly 150 bytes per ping, so ~0.6 GiB, and a day of 1,000 taxis
# (2.8 million pings) stays one shard.
PINGS_PER_SHARD = 4_000_000
ENCODE_SLICE_PINGS = 2_000_000  # the day is read and encoded this many pings at a time
_ARRIVAL = "_arrival"  # a ping's row number in the whole day


def shard_count(pings: int, shards: int = 0) -> int:
    """How many shards a day of ``pings`` is cut into: ``shards`` when positive, else one
    per PINGS_PER_SHARD pings (at least one)."""
    if not isinstance(shards, int) or shards < 0:
        raise ValueError(
            f"vehicle_shards must be a whole number >= 0 (0: automatic), got {shards!r}"
        )
    return shards or max(1, -(-pings // PINGS_PER_SHARD))


def vehicle_ranges(pings_per_vehicle: pl.DataFrame, shards: int) -> list[pl.Series]:
    """The distinct non-null vehicle ids in sort order, cut into at most ``shards``
    contiguous groups of about equal ping counts (``pings_per_vehicle``: vehicle_id, len)."""
    counts = pings_per_vehicle.drop_nulls("vehicle_id").sort("vehicle_id")
    if counts.height == 0:
        return [counts["vehicle_id"]]
    total = counts["len"].sum()
    # A vehicle goes to the shard its first ping falls in, by cumulative pings.
    pings = counts["len"].cast(pl.Int64)
    group = (pings.cum_sum() - pings) * shards // max(total, 1)
    return [
        part["vehicle_id"]
        for part in counts.with_columns(_group=group).partition_by("_group", maintain_order=True)
    ]


@dataclass(frozen=True)
class Shard:
    """One shard's share of the day: its number, its vehicles, and their cleaned pings."""

    index: int  # 0-based
    count: int  # shards of the day
    vehicles: int
    raw_rows: int
    result: CleaningResult
    rejected_arrival: pl.Series  # the day's row number of each row of result.rejected


def _encoded_day(
    raw: pl.DataFrame | pl.LazyFrame, shards: int
) -> tuple[DayCodes, list[int], pl.DataFrame]:
    """The day's codes, the first vehicle code of each shard, and the whole day with text
    columns as codes and each ping's row number: ~44 bytes a ping instead of ~64, read in
    one pass (a parquet read per shard would decode the whole file every time)."""
    source = as_raw_lazy(raw)
    per_vehicle, statuses = pl.collect_all(
        [source.group_by("vehicle_id").len(), source.select(pl.col("status").unique())]
    )
    codes = DayCodes.of(per_vehicle["vehicle_id"], statuses["status"])
    ranges = vehicle_ranges(per_vehicle, shard_count(int(per_vehicle["len"].sum()), shards))
    starts = [0]
    for ids in ranges[:-1]:
        starts.append(starts[-1] + ids.len())
    # Encoded slice by slice: only one slice is ever in memory as text (collecting the whole
    # day at once, even with the streaming engine, held it all: peak 1.7 instead of 0.9 GiB
    # at 5,000 taxis).
    total = int(per_vehicle["len"].sum())
    parts = [
        source.slice(offset, ENCODE_SLICE_PINGS)
        .with_row_index(_ARRIVAL, offset=offset)
        .with_columns(codes.encode())
        .collect()
        for offset in range(0, max(total, 1), ENCODE_SLICE_PINGS)
    ]
    return codes, starts, pl.concat(parts, rechunk=False)


def _shard_frames(
    raw: pl.DataFrame | pl.LazyFrame, shards: int
) -> Iterator[tuple[int, int, DayCodes, int, pl.DataFrame]]:
    """(index, count, day codes, vehicles, encoded pings with their day row number) per shard."""
    codes, starts, encoded = _encoded_day(raw, shards)
    bounds = [*starts, codes.ids.len()]
    code = pl.col("vehicle_id")
    for index in range(len(starts)):
        lo, hi = bounds[index], bounds[index + 1]
        mine = (code >= lo) & (code < hi)
        if index == len(starts) - 1:
            mine = mine | code.is_null()  # pings without a vehicle travel with the last shard
        yield index, len(starts), codes, hi - lo, encoded.filter(mine)


def clean_in_shards(
    raw: pl.DataFrame | pl.LazyFrame,
    day: date,
    area: ServiceArea,
    rules: CleaningRules = CleaningRules(),  # noqa: B008 - frozen, so a shared default is safe
    shards: int = 0,
) -> Iterator[Shard]:
    """The day cleaned shard by shard (see the module doc); ``shards`` as in shard_count."""
    for index, count, codes, vehicles, frame in _shard_frames(raw, shards):
        arrival, raw_rows = frame[_ARRIVAL], frame.height
        result, rejected_rows = clean_encoded(frame.drop(_ARRIVAL), codes, day, area, rules)
        # Nothing of this shard stays referenced here while the caller works on it or
        # while the next shard is cut: the peak is one shard, not two.
        del frame
        shard = Shard(index, count, vehicles, raw_rows, result, arrival.gather(rejected_rows))
        del result, arrival, rejected_rows
        yield shard
        del shard


def combine_shards(shards: list[Shard]) -> CleaningResult:
    """The day's CleaningResult from its shards, equal to clean_probes on the whole day."""
    arrival = pl.concat([s.rejected_arrival for s in shards])
    rejected = pl.concat([s.result.rejected for s in shards]).with_columns(arrival.alias(_ARRIVAL))
    return CleaningResult(
        clean=pl.concat([s.result.clean for s in shards], rechunk=False),
        rejected=rejected.sort(_ARRIVAL).drop(_ARRIVAL),
        out_of_order_rows=sum(s.result.out_of_order_rows for s in shards),
    )


def sum_cell_demand(parts: list[pl.DataFrame]) -> pl.DataFrame:
    """Dense cell_demand frames of disjoint sets of vehicles, added up. Every count is
    additive: events trivially, and the distinct vacant/occupied taxis of a cell and
    bucket because no vehicle is in two parts."""
    first = parts[0]
    for part in parts[1:]:
        if not part.select("cell", "bucket_start").equals(first.select("cell", "bucket_start")):
            raise ValueError("sum_cell_demand: the parts do not share one cell x bucket grid")
    return first.with_columns(
        reduce(lambda a, b: a + b, (part[c] for part in parts)).alias(c) for c in COUNT_COLUMNS
    )


def cell_demand_in_shards(
    raw: pl.DataFrame | pl.LazyFrame,
    day: date,
    area: ServiceArea,
    rules: CleaningRules = CleaningRules(),  # noqa: B008 - frozen, so a shared default is safe
    bucket_minutes: int = 15,
    shards: int = 0,
) -> pl.DataFrame:
    """Raw pings to cell_demand, shard by shard, keeping only each shard's cell_demand:
    equal to aggregate_cell_demand(clean, derive_trip_events(clean)) of the whole day."""
    parts = []
    for shard in clean_in_shards(raw, day, area, rules, shards):
        clean = shard.result.clean
        events = derive_trips(clean, rules.trips).events
        parts.append(aggregate_cell_demand(clean, events, day, area, bucket_minutes))
        del shard, clean, events  # before the next shard is read
    return sum_cell_demand(parts)
