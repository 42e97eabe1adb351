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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files with tests that run real Dagster services go first. They spend most of their
    time waiting for the daemon, so under ``make test`` (two xdist workers, one file per
    worker) they overlap the CPU-bound rest of the suite instead of trailing after it. The
    other files follow by their number of tests, largest first (xdist's own order)."""
    tests_in_file: Counter[Path] = Counter(item.path for item in items)
    services_files = {item.path for item in items if item.get_closest_marker("services")}
    items.sort(
        key=lambda item: (
            item.path not in services_files,
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
