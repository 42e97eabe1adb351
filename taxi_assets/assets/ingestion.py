"""Ingestion: what the probe source delivered, as it delivered it."""

from collections.abc import Callable, Iterator
from datetime import date
from typing import Any, TypeVar

import dagster as dg
import polars as pl

from taxi_assets.checks import contract_check_result, contract_check_spec, logged
from taxi_assets.contracts import RawProbes, Weather
from taxi_assets.metadata import preview, time_range_metadata
from taxi_assets.partitions import daily_partitions, partition_day
from taxi_assets.settings import PipelineSettings
from taxi_assets.sources.base import ProbeSource, ProbeSourceError
from taxi_assets.weather import NO_WEATHER, weather_for_day

T = TypeVar("T")

# A source that times out or drops a connection usually answers a moment later; a file it
# cannot parse never does, so those raise Failure(allow_retries=False) instead.
TRANSIENT_SOURCE_RETRIES = dg.RetryPolicy(max_retries=3, delay=2, backoff=dg.Backoff.EXPONENTIAL)


def read_from_source(read: Callable[[], T]) -> T:
    """Turn bad input into a Dagster failure that names the file and is not retried:
    retrying cannot fix a malformed file, only a person can."""
    try:
        return read()
    except ProbeSourceError as error:
        raise dg.Failure(description=str(error), allow_retries=False) from error


def probe_metadata(probes: pl.DataFrame) -> dict[str, Any]:
    return {
        "rows": probes.height,
        "vehicles": probes["vehicle_id"].n_unique(),
        **time_range_metadata(probes),
        "preview": preview(probes),
    }


@dg.asset(
    partitions_def=daily_partitions,
    group_name="ingestion",
    kinds={"polars", "parquet"},
    check_specs=[contract_check_spec("raw_probes", RawProbes)],
    retry_policy=TRANSIENT_SOURCE_RETRIES,
)
def raw_probes(context: dg.AssetExecutionContext, probe_source: ProbeSource) -> Iterator:
    """Every GPS ping the taxis sent on one Tokyo day, exactly as the feed delivered it:
    duplicates, late pings and broken devices included. The record every published count
    can be traced back to."""
    day = partition_day(context)
    warehouse = probe_source.warehouse_data_path()
    if warehouse is not None:
        yield from _raw_probes_in_warehouse(context, warehouse, day)
        return
    # Simulating or downloading a large fleet's day takes a while: say what is happening.
    context.log.info(f"Reading probes for {day} from {type(probe_source).__name__}")
    delivery = read_from_source(lambda: probe_source.read_probes(day))
    if delivery.probes.height == 0:
        # An empty day would flow on as a day without demand and teach a model that the
        # city slept; it is a broken feed until someone says otherwise.
        raise dg.Failure(
            description=f"{type(probe_source).__name__} delivered no pings for {day}",
            metadata=delivery.origin,
            allow_retries=False,
        )
    context.log.info(
        f"{delivery.probes.height:,} pings for {day} from {type(probe_source).__name__}"
    )
    yield dg.Output(
        delivery.probes, metadata={**probe_metadata(delivery.probes), **delivery.origin}
    )
    yield logged(context, contract_check_result(RawProbes, delivery.probes, "raw_probes"))


def _raw_probes_in_warehouse(
    context: dg.AssetExecutionContext, warehouse: Any, day: date
) -> Iterator:
    """The day stays in its BigQuery partition: its size from SQL, and a bounded sample
    stored for the contract and a look at the rows."""
    raw_rows = read_from_source(lambda: warehouse.raw_rows(day))
    if raw_rows == 0:
        raise dg.Failure(
            description=f"{warehouse.probes_table} has no pings for {day}",
            allow_retries=False,
        )
    sample = read_from_source(lambda: warehouse.raw_sample(day))
    context.log.info(
        f"{raw_rows:,} pings for {day} stay in {warehouse.probes_table}; {sample.height:,} sampled"
    )
    yield dg.Output(
        sample,
        metadata={
            **probe_metadata(sample),
            "rows": raw_rows,
            "stored_rows": sample.height,
            "stored": "a bounded sample; the day is in BigQuery",
            "table": warehouse.probes_table,
            "partition": f"service_day={day.isoformat()}",
        },
    )
    yield logged(context, contract_check_result(RawProbes, sample, "raw_probes"))


@dg.asset(
    partitions_def=daily_partitions,
    group_name="ingestion",
    kinds={"polars", "parquet"},
    check_specs=[contract_check_spec("weather", Weather)],
    retry_policy=TRANSIENT_SOURCE_RETRIES,
)
def weather(
    context: dg.AssetExecutionContext, probe_source: ProbeSource, settings: PipelineSettings
) -> Iterator:
    """Hourly rain over the city: people hail more taxis when it rains, so the forecast
    needs to know. Empty for a feed without weather (``weather_source`` ``none``)."""
    day = partition_day(context)
    frame = read_from_source(lambda: weather_for_day(probe_source, settings.weather_source, day))
    configured = settings.weather_source != NO_WEATHER
    if not configured:
        context.log.info(
            f"No weather source configured (weather_source={NO_WEATHER}): {day} has no rain "
            "data, the features carry rain as missing"
        )
    yield dg.Output(
        frame,
        metadata={
            "weather_source": settings.weather_source,
            "weather_configured": configured,
            "hours": frame.height,
            "rainy_hours": int((frame["rain_mm_per_h"] > 0).sum()),
            "rain_mm_total": float(frame["rain_mm_per_h"].sum()),
            "rain_mm_per_h_max": float(frame["rain_mm_per_h"].max() or 0.0),
            **(
                {}
                if configured
                else {"note": "no weather source is configured: this day has no rain data"}
            ),
        },
    )
    yield logged(context, contract_check_result(Weather, frame, "weather"))
