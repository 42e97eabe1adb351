"""Shared fixtures: a temporary data folder and Dagster instance per test."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from taxi_assets.resources import local_resources
from taxi_assets.sources.simulated import SimulatedProbeSource
from taxi_assets_tests.webhook_receiver import WebhookReceiver

# A small fleet keeps a simulated day to a few seconds while exercising every fault.
SMALL_FLEET = 60


def pytest_configure(config: pytest.Config) -> None:
    """Keep the file order chosen below under ``--dist loadfile``: pytest-xdist otherwise
    re-sorts files by their number of tests, which sent the live-service files (few tests,
    the longest files) to the end of the run, where they trailed alone for ten minutes."""
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


# The files that take longest, longest first (from ``--durations`` runs file by file on
# the loaded 2-core machine, about twice the quiet figures: the gate refusals 648 s, the
# model lifecycle 375 s, the onboarding flow 301 s, the validation assets 195 s, the CLI
# 127 s, the data path through Dagster 114 s; then the BigQuery data-path tables
# 67 s, the data-path parity 38 s, the credentials 27 s). Under ``--dist loadfile`` a
# worker takes the next file when it is done with one, so starting the long files first
# and ending on many short ones keeps a long file from trailing alone: ordered by test
# count, the onboarding file (3 tests) used to run last, and the CLI file (4 tests, 2
# minutes loaded) still ran among the short ones at the end.
LONG_FILES = (
    "test_model_gate_refusals.py",
    "test_model_lifecycle.py",
    "test_onboarding.py",
    "test_validation_assets.py",
    "test_cli.py",
    "test_data_path_dagster.py",
    "test_bigquery_data_path_tables.py",
    "test_bigquery_data_path.py",
    "test_postgres_instance.py",
    "test_closed_loop.py",
    "test_guidance_api_live.py",
    "test_simulation.py",
    "test_automation.py",
    "test_credentials_never_leak.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files with tests that run real Dagster services go first. They spend most of their
    time waiting for the daemon, so under ``make test`` (three xdist workers, one file per
    worker) they overlap the CPU-bound rest of the suite instead of trailing after it. The
    long files of ``LONG_FILES`` follow in that order, then the others by their number of
    tests, largest first (xdist's own order)."""
    tests_in_file: Counter[Path] = Counter(item.path for item in items)
    services_files = {item.path for item in items if item.get_closest_marker("services")}
    rank = {name: position for position, name in enumerate(LONG_FILES)}
    items.sort(
        key=lambda item: (
            item.path not in services_files,
            rank.get(item.path.name, len(LONG_FILES)),
            -tests_in_file[item.path],
            str(item.path),
        )
    )


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as test_instance:
        yield test_instance


@pytest.fixture
def small_city_resources(data_dir: Path) -> dict[str, object]:
    return local_resources(
        str(data_dir),
        str(data_dir / "artifacts"),
        SimulatedProbeSource(fleet_size=SMALL_FLEET, seed=7),
    )


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    """A Slack-compatible webhook on loopback that records what it receives."""
    with WebhookReceiver() as receiver:
        yield receiver
