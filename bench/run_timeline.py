"""Every run of a Dagster instance: job, partition, backfill, when it was created, started
and ended (seconds from the first run), and its status; then the instance's backfills.

Used to find where a live test's time goes, e.g. on the instance ``test_operations_live.py``
left behind (pytest keeps the last three sessions' temporary folders):

    python bench/run_timeline.py /tmp/pytest-of-$USER/pytest-N/live0/dagster_home
"""

from __future__ import annotations

import argparse

import dagster as dg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dagster_home", help="the instance's folder (holding dagster.yaml)")
    args = parser.parse_args()
    with dg.DagsterInstance.from_config(args.dagster_home) as instance:
        records = sorted(instance.get_run_records(), key=lambda r: r.create_timestamp)
        if not records:
            print("no runs")
            return
        origin = records[0].create_timestamp.timestamp()
        header = f"{'job':<18} {'partition':<11} {'backfill':<9} created  started    ended"
        print(f"{header}   took  status")
        for record in records:
            run = record.dagster_run
            started = record.start_time - origin if record.start_time else None
            ended = record.end_time - origin if record.end_time else None
            took = (
                f"{ended - started:6.1f}" if started is not None and ended is not None else "     -"
            )
            print(
                f"{run.job_name:<18} {run.tags.get('dagster/partition', '-'):<11} "
                f"{run.tags.get('dagster/backfill', '-')[:8]:<9} "
                f"{record.create_timestamp.timestamp() - origin:7.1f} "
                f"{'-' if started is None else f'{started:8.1f}'} "
                f"{'-' if ended is None else f'{ended:8.1f}'} {took}  {run.status.value}"
            )
        for backfill in instance.get_backfills():
            print(
                f"backfill {backfill.backfill_id} {backfill.status.value} "
                f"created {backfill.backfill_timestamp - origin:.1f}"
            )


if __name__ == "__main__":
    main()
