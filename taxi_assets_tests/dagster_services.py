"""A real Dagster webserver and daemon on loopback, for tests that operate the platform as
an on-call engineer does: launch runs, re-execute them, backfill, tick sensors, all over
the GraphQL API the UI itself calls.

``running_dagster`` creates a temporary ``DAGSTER_HOME`` from the repo's ``dagster.yaml``,
creates the instance storage once (two processes migrating a fresh SQLite home at once
fail with alembic's "more than one head"), starts ``dagster-webserver`` and
``dagster-daemon`` with the taxi_assets settings in their environment (their code servers
inherit it), waits until the code location is loaded and every daemon heartbeats, and
stops both at the end. Every wait is bounded and fails with the processes' logs.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import dagster as dg

from taxi_assets_tests.loopback import free_port
from taxi_assets_tests.progress_wait import (
    DEFAULT_CAP_S,
    DEFAULT_STALL_S,
    Look,
    WaitStalled,
    wait_on_progress,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
WORKSPACE = REPO_ROOT / "workspace.yaml"
INSTANCE_CONFIG = REPO_ROOT / "dagster.yaml"
LOCATION_NAME = "taxi_assets"
REPOSITORY_NAME = "__repository__"
VENV_BIN = Path(sys.executable).parent

# The daemons a launched run, a backfill and a sensor or schedule tick depend on.
REQUIRED_DAEMONS = ("BACKFILL", "QUEUED_RUN_COORDINATOR", "SCHEDULER", "SENSOR")
# Loading the code location (Polars, CatBoost, every asset) twice on 2 busy cores.
STARTUP_TIMEOUT_S = 180.0
RUN_TERMINAL_STATUSES = ("SUCCESS", "FAILURE", "CANCELED")
RUN_IN_FLIGHT_STATUSES = ("QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING")
BACKFILL_TERMINAL_STATUSES = (
    "COMPLETED",
    "COMPLETED_SUCCESS",
    "COMPLETED_FAILED",
    "FAILED",
    "CANCELED",
)

T = TypeVar("T")


class DagsterServiceError(AssertionError):
    """A wait timed out or the API answered with an error; the message carries the logs."""


@dataclass
class EventTally:
    """How many events a run has written so far, read incrementally with a cursor."""

    cursor: str | None = None
    count: int = 0
    last: str = "none yet"


@dataclass
class DagsterServices:
    """The running webserver and daemon, their folders and a small GraphQL client."""

    home: Path
    data_dir: Path
    url: str
    env: dict[str, str]
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    log_files: dict[str, Path] = field(default_factory=dict)
    event_tallies: dict[str, EventTally] = field(default_factory=dict)

    # ---- diagnostics -------------------------------------------------------------------
    def logs(self, tail_chars: int = 6000) -> str:
        """The last lines of every process's output, for failure messages."""
        parts = []
        for name, path in self.log_files.items():
            text = path.read_text(errors="replace") if path.exists() else ""
            process = self.processes.get(name)
            state = "running" if process and process.poll() is None else "exited"
            parts.append(f"----- {name} ({state}), last {tail_chars} chars -----\n")
            parts.append(text[-tail_chars:])
        return "\n".join(parts)

    def instance(self) -> dg.DagsterInstance:
        """The same instance the services use (read it; let them write it)."""
        return dg.DagsterInstance.from_config(str(self.home))

    # ---- GraphQL -----------------------------------------------------------------------
    def graphql(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """POST a query to /graphql as the UI does; raise with the errors and logs."""
        body = json.dumps({"query": query, "variables": dict(variables or {})}).encode()
        request = urllib.request.Request(
            f"{self.url}/graphql",
            data=body,
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                payload = json.loads(response.read())
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")
            raise DagsterServiceError(
                f"GraphQL HTTP {error.code}: {detail}\n{self.logs()}"
            ) from error
        if payload.get("errors"):
            raise DagsterServiceError(f"GraphQL errors: {payload['errors']}\n{self.logs()}")
        return payload["data"]

    def expect_type(self, result: Mapping[str, Any], typename: str) -> Mapping[str, Any]:
        """A union result must be ``typename``; otherwise fail with what came back."""
        if result.get("__typename") != typename:
            raise DagsterServiceError(
                f"expected {typename}, got {json.dumps(result, indent=1)[:4000]}\n{self.logs()}"
            )
        return result

    def job_selector(self, job_name: str) -> dict[str, str]:
        return {
            "repositoryLocationName": LOCATION_NAME,
            "repositoryName": REPOSITORY_NAME,
            "jobName": job_name,
        }

    def launch_run(
        self,
        job_name: str,
        tags: Mapping[str, str] | None = None,
        run_config: Mapping[str, Any] | None = None,
        asset_selection: list[str] | None = None,
    ) -> str:
        """``launchRun``, as the Launchpad's *Launch run* button; returns the run id."""
        params: dict[str, Any] = {
            "selector": self.job_selector(job_name),
            "runConfigData": dict(run_config or {}),
            "executionMetadata": {
                "tags": [{"key": k, "value": v} for k, v in (tags or {}).items()]
            },
        }
        if asset_selection is not None:
            params["selector"]["assetSelection"] = [{"path": [a]} for a in asset_selection]
        data = self.graphql(LAUNCH_RUN, {"executionParams": params})
        result = self.expect_type(data["launchRun"], "LaunchRunSuccess")
        return result["run"]["runId"]

    def reexecute_run(self, parent_run_id: str, strategy: str = "FROM_FAILURE") -> str:
        """``launchRunReexecution``, as the run page's *Re-execute from failure* button."""
        data = self.graphql(
            REEXECUTE_RUN,
            {"reexecutionParams": {"parentRunId": parent_run_id, "strategy": strategy}},
        )
        result = self.expect_type(data["launchRunReexecution"], "LaunchRunSuccess")
        return result["run"]["runId"]

    def run(self, run_id: str) -> dict[str, Any]:
        """Status, tags and per-step statistics of one run."""
        data = self.graphql(RUN_QUERY, {"runId": run_id})
        return dict(self.expect_type(data["runOrError"], "Run"))

    def step_statuses(self, run_id: str) -> dict[str, str]:
        return {s["stepKey"]: s["status"] for s in self.run(run_id)["stepStats"]}

    def events(self, run_id: str) -> list[dict[str, Any]]:
        """Every event of a run, in order (``eventType``, ``stepKey``, ``message`` and, for
        a step failure, ``error.message``), as the run page's log shows them."""
        events: list[dict[str, Any]] = []
        cursor = None
        while True:
            data = self.graphql(RUN_EVENTS_QUERY, {"runId": run_id, "afterCursor": cursor})
            logs = self.expect_type(data["logsForRun"], "EventConnection")
            events += logs["events"]
            if not logs["hasMore"]:
                return events
            cursor = logs["cursor"]

    def steps_with_event(self, run_id: str, event_type: str) -> set[str]:
        """The step keys of a run that emitted ``event_type`` (STEP_START, STEP_SUCCESS...)."""
        return {e["stepKey"] for e in self.events(run_id) if e.get("eventType") == event_type}

    def step_failures(self, run_id: str) -> dict[str, str]:
        """Failed step key -> its error message."""
        return {
            e["stepKey"]: (e.get("error") or {}).get("message", e["message"])
            for e in self.events(run_id)
            if e.get("eventType") == "STEP_FAILURE"
        }

    def launch_backfill(
        self,
        job_name: str,
        partition_names: list[str],
        tags: Mapping[str, str] | None = None,
        run_config: Mapping[str, Any] | None = None,
    ) -> str:
        """``launchPartitionBackfill`` over a job's partitions, as the job's *Partitions*
        tab's *Launch backfill* does; the daemon launches one run per partition."""
        params: dict[str, Any] = {
            "selector": {
                "partitionSetName": f"{job_name}_partition_set",
                "repositorySelector": {
                    "repositoryLocationName": LOCATION_NAME,
                    "repositoryName": REPOSITORY_NAME,
                },
            },
            "partitionNames": partition_names,
            "tags": [{"key": k, "value": v} for k, v in (tags or {}).items()],
        }
        if run_config is not None:
            params["runConfigData"] = dict(run_config)
        data = self.graphql(LAUNCH_BACKFILL, {"backfillParams": params})
        return self.expect_type(data["launchPartitionBackfill"], "LaunchBackfillSuccess")[
            "backfillId"
        ]

    def reexecute_backfill(self, backfill_id: str, strategy: str = "FROM_FAILURE") -> str:
        """``reexecutePartitionBackfill``, the backfill page's *Re-execute* (from failure):
        a new backfill whose runs re-execute each failed partition's last run."""
        data = self.graphql(
            REEXECUTE_BACKFILL,
            {"reexecutionParams": {"parentRunId": backfill_id, "strategy": strategy}},
        )
        return self.expect_type(data["reexecutePartitionBackfill"], "LaunchBackfillSuccess")[
            "backfillId"
        ]

    # ---- automation --------------------------------------------------------------------
    def instigator_selector(self, kind: str, name: str) -> dict[str, str]:
        """A ``SensorSelector`` (kind "sensor") or ``ScheduleSelector`` (kind "schedule")."""
        return {
            "repositoryLocationName": LOCATION_NAME,
            "repositoryName": REPOSITORY_NAME,
            f"{kind}Name": name,
        }

    def sensor_dry_run(self, name: str, cursor: str | None = None) -> dict[str, Any]:
        """``sensorDryRun``, the sensor page's *Test sensor*: one evaluation on the code
        server with ``cursor``; returns ``runRequests``, ``skipReason``, ``cursor``."""
        data = self.graphql(
            SENSOR_DRY_RUN, {"selector": self.instigator_selector("sensor", name), "cursor": cursor}
        )
        return self._evaluation(data["sensorDryRun"])

    def schedule_dry_run(self, name: str, timestamp: float) -> dict[str, Any]:
        """``scheduleDryRun``, the schedule page's *Test schedule* for the first tick at or
        after ``timestamp``."""
        data = self.graphql(
            SCHEDULE_DRY_RUN,
            {"selector": self.instigator_selector("schedule", name), "timestamp": timestamp},
        )
        return self._evaluation(data["scheduleDryRun"])

    def _evaluation(self, result: Mapping[str, Any]) -> dict[str, Any]:
        evaluation = self.expect_type(result, "DryRunInstigationTick")["evaluationResult"]
        if evaluation["error"]:
            raise DagsterServiceError(f"the evaluation failed: {evaluation['error']}")
        return dict(evaluation)

    def sensor(self, name: str) -> dict[str, Any]:
        """The sensor's state (``status``, ``id``) and its latest ticks, newest first."""
        data = self.graphql(SENSOR_QUERY, {"selector": self.instigator_selector("sensor", name)})
        return dict(self.expect_type(data["sensorOrError"], "Sensor"))

    def set_sensor_cursor(self, name: str, cursor: str) -> None:
        """``setSensorCursor``, the sensor page's *Edit cursor*."""
        data = self.graphql(
            SET_SENSOR_CURSOR,
            {"selector": self.instigator_selector("sensor", name), "cursor": cursor},
        )
        self.expect_type(data["setSensorCursor"], "Sensor")

    def start_sensor(self, name: str) -> None:
        """``startSensor``, the sensor's toggle switched on: the daemon ticks it from now."""
        data = self.graphql(START_SENSOR, {"selector": self.instigator_selector("sensor", name)})
        state = self.expect_type(data["startSensor"], "Sensor")["sensorState"]
        assert state["status"] == "RUNNING", state

    def stop_sensor(self, name: str) -> None:
        """``stopSensor``, the toggle switched off."""
        state_id = self.sensor(name)["sensorState"]["id"]
        data = self.graphql(STOP_SENSOR, {"id": state_id})
        result = self.expect_type(data["stopSensor"], "StopSensorMutationResult")
        assert result["instigationState"]["status"] == "STOPPED", result

    def wait_for_sensor_tick(
        self, name: str, after: float, stall_s: float = DEFAULT_STALL_S
    ) -> dict[str, Any]:
        """The first completed daemon tick of a sensor that started after ``after`` (epoch s).

        Progress is the sensor daemon's work: a tick of any sensor of the location appearing
        or changing status (the alert sensors tick every 30 s while the daemon is alive)."""

        def look() -> Look[dict[str, Any]]:
            ticks = self.sensor(name)["sensorState"]["ticks"]
            done = [
                t
                for t in ticks
                if t["timestamp"] > after and t["status"] in ("SUCCESS", "SKIPPED", "FAILURE")
            ]
            latest = self.latest_sensor_ticks()
            return Look(
                done=min(done, key=lambda t: t["timestamp"]) if done else None,
                progress=(tuple((t["id"], t["status"]) for t in ticks), latest),
                summary=f"{name}'s latest ticks {summarize_ticks(ticks[:3])}; "
                f"every sensor's latest tick {latest}",
            )

        return self.wait_on_progress(look, f"a tick of {name} after {after:.0f}", stall_s)

    def latest_sensor_ticks(self) -> tuple[tuple[str, str, str], ...]:
        """(sensor, tick id, status) of the newest tick of every sensor of the location."""
        data = self.graphql(
            SENSORS_QUERY,
            {
                "selector": {
                    "repositoryLocationName": LOCATION_NAME,
                    "repositoryName": REPOSITORY_NAME,
                }
            },
        )
        sensors = self.expect_type(data["sensorsOrError"], "Sensors")["results"]
        return tuple(
            (sensor["name"], tick["id"], tick["status"])
            for sensor in sensors
            for tick in sensor["sensorState"]["ticks"]
        )

    def runs_with_tag(self, key: str, value: str) -> list[dict[str, Any]]:
        """Runs carrying a tag, as the Runs page's tag filter finds them."""
        data = self.graphql(RUNS_WITH_FILTER, {"filter": {"tags": [{"key": key, "value": value}]}})
        return list(self.expect_type(data["runsOrError"], "Runs")["results"])

    def wait_for_run(self, run_id: str, stall_s: float = DEFAULT_STALL_S) -> dict[str, Any]:
        """Wait until a run ends; return it (status, stepStats).

        Progress is the run's own events and step statuses, and while it waits in the queue,
        the events of the runs ahead of it."""

        def look() -> Look[dict[str, Any]]:
            run = self.run(run_id)
            if run["status"] in RUN_TERMINAL_STATUSES:
                return Look(done=run, progress=None, summary="")
            tally = self.event_tally(run_id)
            steps = tuple((s["stepKey"], s["status"]) for s in run["stepStats"])
            queue = self.in_flight_activity() if run["status"] in ("QUEUED", "NOT_STARTED") else ()
            return Look(
                done=None,
                progress=(run["status"], steps, tally.count, queue),
                summary=f"run {run_id} {run['status']}, {tally.count} events, the last "
                f"{tally.last}; steps {dict(steps)}"
                + (f"; runs in flight {summarize_activity(queue)}" if queue else ""),
            )

        return self.wait_on_progress(look, f"run {run_id} to end", stall_s)

    def backfill(self, backfill_id: str) -> dict[str, Any]:
        data = self.graphql(BACKFILL_QUERY, {"backfillId": backfill_id})
        return dict(self.expect_type(data["partitionBackfillOrError"], "PartitionBackfill"))

    def wait_for_backfill(
        self, backfill_id: str, stall_s: float = DEFAULT_STALL_S
    ) -> dict[str, Any]:
        """Wait until the daemon has finished a backfill and every run it launched ended.

        Progress is the backfill's status and its runs (launched, their statuses), and the
        events of every run in flight (its own runs and those ahead of them in the queue)."""

        def look() -> Look[dict[str, Any]]:
            backfill = self.backfill(backfill_id)
            runs = tuple((r["runId"], r["status"]) for r in backfill["runs"])
            runs_done = all(status in RUN_TERMINAL_STATUSES for _, status in runs)
            if backfill["status"] in BACKFILL_TERMINAL_STATUSES and runs_done:
                return Look(done=backfill, progress=None, summary="")
            activity = self.in_flight_activity()
            return Look(
                done=None,
                progress=(backfill["status"], runs, activity),
                summary=f"backfill {backfill_id} {backfill['status']} over "
                f"{backfill['numPartitions']} partitions, runs {dict(runs)}; runs in flight "
                f"{summarize_activity(activity)}",
            )

        return self.wait_on_progress(look, f"backfill {backfill_id} to finish", stall_s)

    # ---- progress ----------------------------------------------------------------------
    def event_tally(self, run_id: str) -> EventTally:
        """The run's event count so far, reading only the events since the last call."""
        tally = self.event_tallies.setdefault(run_id, EventTally())
        while True:
            data = self.graphql(RUN_EVENTS_QUERY, {"runId": run_id, "afterCursor": tally.cursor})
            logs = self.expect_type(data["logsForRun"], "EventConnection")
            events = logs["events"]
            tally.count += len(events)
            if events:
                last = events[-1]
                tally.last = f"{last.get('eventType')} {last.get('stepKey') or ''}".strip()
            tally.cursor = logs["cursor"]
            if not logs["hasMore"]:
                return tally

    def in_flight_activity(self) -> tuple[tuple[str, str, int], ...]:
        """(run id, status, events so far) of every queued or running run of the instance:
        it changes whenever any of them moves, so a queue that drains counts as progress."""
        data = self.graphql(
            RUNS_WITH_FILTER, {"filter": {"statuses": list(RUN_IN_FLIGHT_STATUSES)}}
        )
        runs = self.expect_type(data["runsOrError"], "Runs")["results"]
        return tuple(
            sorted((r["runId"], r["status"], self.event_tally(r["runId"]).count) for r in runs)
        )

    def wait_on_progress(
        self,
        look: Callable[[], Look[T]],
        what: str,
        stall_s: float = DEFAULT_STALL_S,
        cap_s: float = DEFAULT_CAP_S,
    ) -> T:
        """``progress_wait.wait_on_progress`` that also fails as soon as a process exits, and
        adds the processes' logs to a stall."""

        def look_while_alive() -> Look[T]:
            self.assert_alive()
            return look()

        try:
            return wait_on_progress(look_while_alive, what, stall_s=stall_s, cap_s=cap_s)
        except WaitStalled as stalled:
            raise DagsterServiceError(f"{stalled}\n{self.logs()}") from stalled

    def wait_until(
        self,
        probe: Callable[[], T | None],
        timeout_s: float,
        what: str,
        describe: Callable[[], str] = lambda: "",
        interval_s: float = 1.0,
    ) -> T:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.assert_alive()
            value = probe()
            if value:
                return value
            time.sleep(interval_s)
        raise DagsterServiceError(
            f"timed out after {timeout_s:.0f} s waiting for {what}. {describe()}\n{self.logs()}"
        )

    def assert_alive(self) -> None:
        dead = [name for name, p in self.processes.items() if p.poll() is not None]
        if dead:
            raise DagsterServiceError(f"{', '.join(dead)} exited\n{self.logs()}")

    # ---- lifecycle ---------------------------------------------------------------------
    def start_process(self, name: str, command: list[str]) -> None:
        log_path = self.home / f"{name}.log"
        self.log_files[name] = log_path
        with log_path.open("wb") as log:
            # A session of its own, so stopping it stops its code server children too.
            self.processes[name] = subprocess.Popen(
                command,
                cwd=REPO_ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)

    def server_answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/server_info", timeout=5) as response:
                return response.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def location_loaded(self) -> bool:
        data = self.graphql(WORKSPACE_QUERY)
        entries = self.expect_type(data["workspaceOrError"], "Workspace")["locationEntries"]
        for entry in entries:
            location = entry["locationOrLoadError"] or {}
            if location.get("__typename") == "PythonError":
                raise DagsterServiceError(f"code location failed to load: {location}")
        return bool(entries) and all(
            e["loadStatus"] == "LOADED" and e["locationOrLoadError"] for e in entries
        )

    def daemons_healthy(self) -> bool:
        statuses = self.graphql(DAEMON_HEALTH)["instance"]["daemonHealth"]["allDaemonStatuses"]
        healthy = {s["daemonType"] for s in statuses if s["healthy"]}
        return all(daemon in healthy for daemon in REQUIRED_DAEMONS)


def summarize_ticks(ticks: list[dict[str, Any]]) -> list[tuple[str, float]]:
    return [(t["status"], round(t["timestamp"])) for t in ticks]


def summarize_activity(activity: tuple[tuple[str, str, int], ...]) -> str:
    return (
        ", ".join(f"{run_id[:8]} {status} ({events} events)" for run_id, status, events in activity)
        or "none"
    )


def service_env(home: Path, data_dir: Path, extra: Mapping[str, str]) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        # Settings of the developer's own shell must not leak into the services.
        if not key.startswith(("TAXI_ASSETS_", "DAGSTER_"))
    }
    env |= {
        "DAGSTER_HOME": str(home),
        "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        "TAXI_ASSETS_DATA_DIR": str(data_dir),
        "TAXI_ASSETS_ARTIFACTS_DIR": str(data_dir / "artifacts"),
        "PYTHONUNBUFFERED": "1",
    }
    return env | dict(extra)


@contextmanager
def running_dagster(
    root: Path, env: Mapping[str, str] | None = None, daemon: bool = True
) -> Iterator[DagsterServices]:
    """A webserver (and daemon) on loopback over a fresh instance under ``root``.

    ``env`` adds or overrides variables of both processes (``TAXI_ASSETS_PROBE_SOURCE``,
    ``TAXI_ASSETS_LANDING_DIR``, ``TAXI_ASSETS_SIM_FLEET_SIZE``, ...).
    """
    home = root / "dagster_home"
    data_dir = root / "data"
    home.mkdir(parents=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(INSTANCE_CONFIG, home / "dagster.yaml")
    # Create the SQLite storage once, before two processes race to migrate it.
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.get_runs(limit=1)

    port = free_port()
    services = DagsterServices(
        home=home,
        data_dir=data_dir,
        url=f"http://127.0.0.1:{port}",
        env=service_env(home, data_dir, env or {}),
    )
    try:
        services.start_process(
            "webserver",
            [
                str(VENV_BIN / "dagster-webserver"),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-w",
                str(WORKSPACE),
            ],
        )
        if daemon:
            services.start_process(
                "daemon", [str(VENV_BIN / "dagster-daemon"), "run", "-w", str(WORKSPACE)]
            )
        services.wait_until(services.server_answers, STARTUP_TIMEOUT_S, "the webserver")
        services.wait_until(services.location_loaded, STARTUP_TIMEOUT_S, "the code location")
        if daemon:
            services.wait_until(
                services.daemons_healthy,
                STARTUP_TIMEOUT_S,
                f"daemon heartbeats ({', '.join(REQUIRED_DAEMONS)})",
            )
        yield services
    finally:
        services.stop()


# ---- the GraphQL the UI sends (trimmed to the fields the tests read) ----------------------

LAUNCH_RUN = """
mutation LaunchRun($executionParams: ExecutionParams!) {
  launchRun(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message stack }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on InvalidSubsetError { message }
    ... on Error { message }
  }
}
"""

REEXECUTE_RUN = """
mutation Reexecute($reexecutionParams: ReexecutionParams!) {
  launchRunReexecution(reexecutionParams: $reexecutionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message stack }
    ... on Error { message }
  }
}
"""

RUN_QUERY = """
query Run($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run {
      runId status parentRunId rootRunId
      tags { key value }
      stepStats { stepKey status }
    }
    ... on Error { message }
  }
}
"""

RUN_EVENTS_QUERY = """
query RunEvents($runId: ID!, $afterCursor: String) {
  logsForRun(runId: $runId, afterCursor: $afterCursor) {
    __typename
    ... on EventConnection {
      cursor hasMore
      events {
        __typename
        ... on MessageEvent { eventType stepKey message }
        ... on ExecutionStepFailureEvent { error { message } }
      }
    }
    ... on Error { message }
  }
}
"""

LAUNCH_BACKFILL = """
mutation LaunchBackfill($backfillParams: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $backfillParams) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message stack }
    ... on Error { message }
  }
}
"""

REEXECUTE_BACKFILL = """
mutation ReexecuteBackfill($reexecutionParams: ReexecutionParams!) {
  reexecutePartitionBackfill(reexecutionParams: $reexecutionParams) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message stack }
    ... on Error { message }
  }
}
"""

BACKFILL_QUERY = """
query Backfill($backfillId: String!) {
  partitionBackfillOrError(backfillId: $backfillId) {
    __typename
    ... on PartitionBackfill {
      id status numPartitions
      runs(limit: 100) { runId status parentRunId tags { key value } }
    }
    ... on Error { message }
  }
}
"""

WORKSPACE_QUERY = """
query Workspace {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name loadStatus
        locationOrLoadError { __typename ... on PythonError { message stack } }
      }
    }
    ... on Error { message }
  }
}
"""

DAEMON_HEALTH = """
query Daemons {
  instance { daemonHealth { allDaemonStatuses { daemonType healthy required } } }
}
"""

EVALUATION_FIELDS = """
    __typename
    ... on DryRunInstigationTick {
      evaluationResult {
        cursor skipReason error { message stack }
        runRequests { runKey jobName runConfigYaml tags { key value } }
      }
    }
    ... on PythonError { message stack }
    ... on Error { message }
"""

SENSOR_DRY_RUN = f"""
mutation SensorDryRun($selector: SensorSelector!, $cursor: String) {{
  sensorDryRun(selectorData: $selector, cursor: $cursor) {{ {EVALUATION_FIELDS} }}
}}
"""

SCHEDULE_DRY_RUN = f"""
mutation ScheduleDryRun($selector: ScheduleSelector!, $timestamp: Float) {{
  scheduleDryRun(selectorData: $selector, timestamp: $timestamp) {{ {EVALUATION_FIELDS} }}
}}
"""

SENSOR_FIELDS = """
    __typename
    ... on Sensor {
      name
      sensorState {
        id status
        ticks(limit: 20) { id status timestamp runIds runKeys skipReason error { message } }
      }
    }
    ... on PythonError { message stack }
    ... on Error { message }
"""

SENSOR_QUERY = f"""
query Sensor($selector: SensorSelector!) {{
  sensorOrError(sensorSelector: $selector) {{ {SENSOR_FIELDS} }}
}}
"""

SET_SENSOR_CURSOR = f"""
mutation SetSensorCursor($selector: SensorSelector!, $cursor: String) {{
  setSensorCursor(sensorSelector: $selector, cursor: $cursor) {{ {SENSOR_FIELDS} }}
}}
"""

START_SENSOR = f"""
mutation StartSensor($selector: SensorSelector!) {{
  startSensor(sensorSelector: $selector) {{ {SENSOR_FIELDS} }}
}}
"""

STOP_SENSOR = """
mutation StopSensor($id: String) {
  stopSensor(id: $id) {
    __typename
    ... on StopSensorMutationResult { instigationState { status } }
    ... on PythonError { message stack }
    ... on Error { message }
  }
}
"""

SENSORS_QUERY = """
query Sensors($selector: RepositorySelector!) {
  sensorsOrError(repositorySelector: $selector) {
    __typename
    ... on Sensors { results { name sensorState { ticks(limit: 1) { id status } } } }
    ... on PythonError { message stack }
    ... on Error { message }
  }
}
"""

RUNS_WITH_FILTER = """
query Runs($filter: RunsFilter!) {
  runsOrError(filter: $filter) {
    __typename
    ... on Runs { results { runId status tags { key value } } }
    ... on Error { message }
  }
}
"""
