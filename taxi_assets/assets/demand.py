"""Demand: trips from status changes, and pickups and supply per cell and time bucket."""

from collections.abc import Iterator
from typing import Any

import dagster as dg
import polars as pl

from taxi_assets.checks import contract_check_result, contract_check_spec
from taxi_assets.contracts import CellDemand, TripEvents
from taxi_assets.demand import aggregate_cell_demand, demand_summary
from taxi_assets.metadata import preview, time_range_metadata
from taxi_assets.partitions import daily_partitions, partition_day
from taxi_assets.pictures import cell_demand_picture
from taxi_assets.settings import PipelineSettings
from taxi_assets.sources.base import ProbeSource
from taxi_assets.trips import derive_trips


@dg.asset(
    partitions_def=daily_partitions,
    group_name="demand",
    kinds={"polars", "parquet"},
    check_specs=[contract_check_spec("trip_events", TripEvents)],
)
def trip_events(
    context: dg.AssetExecutionContext,
    clean_probes: pl.DataFrame,
    settings: PipelineSettings,
    probe_source: ProbeSource,
) -> Iterator:
    """Every pickup and drop-off of the day and where it happened. A pickup from a vacant
    taxi is a street hail, the demand our guidance serves; one from a dispatched taxi is an
    app booking. A flapping meter is not a trip, and a taxi coming back into the area with
    a passenger is not a pickup."""
    warehouse = probe_source.warehouse_data_path()
    if warehouse is not None:
        yield from _trip_events_in_warehouse(context, warehouse, settings)
        return
    derivation = derive_trips(
        clean_probes, settings.cleaning_rules().trips, settings.service_area()
    )
    events = derivation.events
    pickups = events.filter(pl.col("event") == "pickup")
    by_booking = dict(pickups.group_by("booking").len().iter_rows())
    yield dg.Output(
        events,
        metadata={
            "rows": events.height,
            "pickups": pickups.height,
            "street_hail_pickups": int(by_booking.get("street_hail", 0)),
            "app_booking_pickups": int(by_booking.get("app_booking", 0)),
            "other_pickups": int(by_booking.get("other", 0)),
            "dropoffs": events.height - pickups.height,
            "vehicles": events["vehicle_id"].n_unique(),
            "cells": events["cell"].n_unique(),
            # What the real-feed rules changed: meter flaps ignored, pickups not observed.
            **derivation.metadata(),
            **time_range_metadata(events),
            "preview": preview(events),
        },
    )
    yield contract_check_result(TripEvents, events, "trip_events")


def _trip_events_in_warehouse(
    context: dg.AssetExecutionContext, warehouse: Any, settings: PipelineSettings
) -> Iterator:
    """The same rules as SQL, from the day's clean_probes partition into trip_events';
    counts from SQL, the contract on a bounded sample (stored as the partition's sample).
    What the trip rules changed is counted by the same SQL, as the Polars path reports it."""
    day = partition_day(context)
    rule_counts = warehouse.write_trip_events(
        day, settings.service_area(), settings.cleaning_rules()
    )
    counts = warehouse.trip_counts(day)
    summary = warehouse.summary("trip_events", day)
    sample = warehouse.sample("trip_events", day)

    def pickups(booking: str) -> int:
        return counts.get(("pickup", booking), 0)

    yield dg.Output(
        sample,
        metadata={
            "rows": sum(counts.values()),
            "pickups": sum(n for (event, _), n in counts.items() if event == "pickup"),
            "street_hail_pickups": pickups("street_hail"),
            "app_booking_pickups": pickups("app_booking"),
            "other_pickups": pickups("other"),
            "dropoffs": sum(n for (event, _), n in counts.items() if event == "dropoff"),
            "vehicles": summary.vehicles,
            "cells": summary.cells,
            # What the real-feed rules changed: meter flaps ignored, pickups not observed.
            **rule_counts,
            **time_range_metadata(summary.times),
            "stored_rows": sample.height,
            "stored": "a bounded sample; the day is in BigQuery",
            "table": warehouse.table("trip_events"),
            "partition": f"service_day={day.isoformat()}",
            "preview": preview(sample),
        },
    )
    yield contract_check_result(TripEvents, sample, "trip_events")


@dg.asset(
    partitions_def=daily_partitions,
    group_name="demand",
    kinds={"polars", "parquet"},
    check_specs=[contract_check_spec("cell_demand", CellDemand)],
)
def cell_demand(
    context: dg.AssetExecutionContext,
    clean_probes: pl.DataFrame,
    trip_events: pl.DataFrame,
    settings: PipelineSettings,
    probe_source: ProbeSource,
) -> Iterator:
    """Street hails, app bookings, drop-offs and vacant taxis per 500 m cell and time bucket:
    where passengers wait and where taxis are, the quantity the forecast learns."""
    day = partition_day(context)
    area, bucket_minutes = settings.service_area(), settings.bucket_minutes
    # A source that holds the probes in a warehouse (BigQuery) aggregates them there, with
    # the same rules; the others leave it to Polars on the day's clean probes and trips.
    warehouse = probe_source.warehouse_data_path()
    if warehouse is not None:
        # Written as the day's partition of the cell_demand table, read back (a small
        # dense grid) for the features and the forecast, which read the stored partition.
        warehouse.write_cell_demand(day, area, settings.cleaning_rules(), bucket_minutes)
        demand, computed_in = warehouse.read_cell_demand(day), "bigquery"
    else:
        demand = probe_source.cell_demand(day, area, settings.cleaning_rules(), bucket_minutes)
        computed_in = probe_source.cell_demand_engine
    if demand is None:
        demand = aggregate_cell_demand(clean_probes, trip_events, day, area, bucket_minutes)
        computed_in = "polars"
    busiest = (
        demand.group_by("cell")
        .agg(pl.col("street_hail_pickups").sum())
        # Ties broken by cell: the same demand always gives the same preview.
        .sort(["street_hail_pickups", "cell"], descending=[True, False])
        .head(10)
    )
    yield dg.Output(
        demand,
        metadata={
            "rows": demand.height,
            "computed_in": computed_in,
            "cells": demand["cell"].n_unique(),
            **demand_summary(demand),
            "buckets": demand["bucket_start"].n_unique(),
            "bucket_minutes": settings.bucket_minutes,
            "max_pickups_in_a_bucket": int(demand["pickups"].max() or 0),
            **time_range_metadata(demand, "bucket_start"),
            "busiest_cells": preview(busiest, 10),
            "street_hail_map": cell_demand_picture(demand, area, day),
        },
    )
    yield contract_check_result(CellDemand, demand, "cell_demand")
