"""The small simulated city the model-lifecycle tests share, and how they drive it.

Imported by ``test_model_lifecycle.py`` and ``test_model_gate_refusals.py``. The city is
materialized and validated, and a blessed model of its held-out day trained, once per test
session (:func:`build_city`, under a file lock, so two xdist workers build it once); each
module works on its own copy of the data folder and the instance, which its tests share;
every test gets its own artifact store, so deployments of one test never leak into
another. A test that starts from a blessed model in production copies the one trained
with the city (``trained``) into its store.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from filelock import FileLock

from taxi_assets.definitions import ASSET_MODULES, build_definitions
from taxi_assets.model.registry import ArtifactStore
from taxi_assets.resources import local_resources
from taxi_assets.settings import EvaluationSettings, ValidationSettings
from taxi_assets.sources.simulated import SimulatedProbeSource
from taxi_assets_tests.conftest import SMALL_FLEET

DAYS = ("2026-04-27", "2026-04-28", "2026-04-29", "2026-04-30", "2026-05-01")
HELD_OUT = DAYS[-1]
TICK = "2026-05-01T18:07:00+09:00"
FAST_TRAINING = {"iterations": 10, "supply_iterations": 5, "early_stopping_rounds": 5}
# The gate's outcome must not hinge on how well a tiny model does on a 60-taxi city:
# these settings bless any model (no bounds, no baselines to beat, wide tolerances)...
BLESS_ANY = EvaluationSettings(
    must_beat_baselines=False, production_tolerance=10.0, slice_tolerance=10.0
)
# ...and these bless none (an absolute RMSE bound no model meets).
BLESS_NONE = EvaluationSettings(max_rmse=1e-9)


# The drift thresholds are calibrated for 1,000 taxis; a 60-taxi city wanders more from
# day to day, so its validation here only catches gross breakage.
LOOSE_DRIFT = ValidationSettings(
    numeric_js_threshold=1.0,
    categorical_linf_threshold=1.0,
    row_count_ratio_min=0.0,
    row_count_ratio_max=100.0,
    use_calibrated_per_feature=False,
)


def source() -> SimulatedProbeSource:
    return SimulatedProbeSource(fleet_size=SMALL_FLEET, seed=7)


def data_path(
    data_dir: Path, instance: dg.DagsterInstance, day: str, validation: ValidationSettings
) -> dg.ExecuteInProcessResult:
    resources = local_resources(str(data_dir), str(data_dir / "unused_artifacts"), source())
    return dg.materialize(
        dg.load_assets_from_modules(list(ASSET_MODULES)),
        selection=dg.AssetSelection.groups(
            "ingestion", "cleaning", "demand", "validation", "features"
        ),
        partition_key=day,
        resources={**resources, "validation": validation},
        instance=instance,
        raise_on_error=False,
    )


class Platform:
    """The code location over the shared data and instance, with its own artifacts."""

    def __init__(self, data_dir: Path, artifacts_dir: Path, instance: dg.DagsterInstance):
        self.artifacts = ArtifactStore(base_dir=str(artifacts_dir))
        self.instance = instance
        self.resources = local_resources(str(data_dir), str(artifacts_dir), source())
        self.data_dir = data_dir

    def defs(self, evaluation: EvaluationSettings) -> dg.Definitions:
        return build_definitions({**self.resources, "evaluation": evaluation})

    def run(
        self,
        job: str,
        partition: str | None = None,
        ops: dict[str, Any] | None = None,
        evaluation: EvaluationSettings = BLESS_ANY,
        tags: dict[str, str] | None = None,
        run_resources: dict[str, Any] | None = None,
    ) -> dg.ExecuteInProcessResult:
        run_config: dict[str, Any] = {"ops": ops or {}}
        if run_resources:
            run_config["resources"] = run_resources
        return (
            self.defs(evaluation)
            .resolve_job_def(job)
            .execute_in_process(
                partition_key=partition,
                instance=self.instance,
                run_config=run_config,
                raise_on_error=False,
                tags=tags,
            )
        )

    def train(
        self,
        day: str = HELD_OUT,
        evaluation: EvaluationSettings = BLESS_ANY,
        tags: dict[str, str] | None = None,
        run_resources: dict[str, Any] | None = None,
        **config: Any,
    ) -> dg.ExecuteInProcessResult:
        training = {"window_days": 4, **FAST_TRAINING, **config}
        return self.run(
            "training_job",
            day,
            {"demand_model": {"config": training}},
            evaluation=evaluation,
            tags=tags,
            run_resources=run_resources,
        )

    def deploy(self, evaluation: EvaluationSettings = BLESS_ANY, **config: Any):
        defs = self.defs(evaluation)
        return dg.materialize(
            [spec for spec in dg.load_assets_from_modules(list(ASSET_MODULES))],
            selection="production_model",
            resources=defs.resources,
            instance=self.instance,
            run_config={"ops": {"production_model": {"config": config}}},
            raise_on_error=False,
        )

    def trained_version(self, result: dg.ExecuteInProcessResult) -> str:
        return self.metadata(result, "demand_model")["model_version"]

    def metadata(self, result: dg.ExecuteInProcessResult, asset: str) -> dict[str, Any]:
        for event in result.get_asset_materialization_events():
            if event.asset_key.to_user_string() == asset:
                return {
                    k: getattr(v, "value", v) for k, v in event.materialization.metadata.items()
                }
        raise AssertionError(f"{asset} was not materialized")

    def pointer(self) -> dict[str, Any] | None:
        return self.artifacts.production_pointer()

    def deploy_trained(self, trained: Trained) -> str:
        """What ``train()`` with its defaults leaves: the module's blessed model of the
        held-out day in production (its artifacts copied in); returns its version."""
        shutil.copytree(trained.artifacts_dir, self.artifacts.base_dir, dirs_exist_ok=True)
        return trained.version


@dataclass(frozen=True)
class Trained:
    """A ``train()`` run with the defaults: its artifacts folder, run and model version."""

    artifacts_dir: Path
    run_id: str
    version: str


def build_city(folder: Path) -> None:
    """Into ``folder``: five validated days of cell demand, weather and training features
    (``data``), the instance that recorded their validation (``instance``), and one blessed
    model of the held-out day trained there (``trained``), with its run id and version
    (``trained.json``), so that the tests that start from a model in production copy its
    artifacts instead of each training (and evaluating) the same model again."""
    data_dir, instance_dir = folder / "data", folder / "instance"
    instance_dir.mkdir(parents=True)
    with dg.instance_for_test(temp_dir=str(instance_dir)) as instance:
        for day in DAYS:
            assert data_path(data_dir, instance, day, LOOSE_DRIFT).success
        platform = Platform(data_dir, folder / "trained", instance)
        result = platform.train()
        assert result.success
        version = platform.trained_version(result)
        assert platform.pointer()["model_version"] == version
    (folder / "trained.json").write_text(json.dumps({"run_id": result.run_id, "version": version}))


def session_folder(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """A folder every xdist worker of this test session sees (the workers' base temp
    folders share a parent; without xdist the base temp folder is the session's own)."""
    base = tmp_path_factory.getbasetemp()
    return base if worker_id == "master" else base.parent


@pytest.fixture(scope="module")
def city_copy(
    tmp_path_factory: pytest.TempPathFactory, worker_id: str
) -> Iterator[tuple[Path, dg.DagsterInstance]]:
    """This module's copy of the session's city (built by the first module to ask), and its
    instance."""
    shared = session_folder(tmp_path_factory, worker_id) / "lifecycle_city"
    with FileLock(f"{shared}.lock"):
        if not (shared / "trained.json").exists():
            shutil.rmtree(shared, ignore_errors=True)  # a build that failed half-way
            build_city(shared)
    folder = tmp_path_factory.mktemp("lifecycle")
    shutil.copytree(shared, folder, dirs_exist_ok=True)
    with dg.instance_for_test(temp_dir=str(folder / "instance")) as instance:
        yield folder, instance


@pytest.fixture(scope="module")
def city(city_copy: tuple[Path, dg.DagsterInstance]) -> tuple[Path, dg.DagsterInstance]:
    """Five validated days of cell demand, weather and training features, and the instance
    that recorded their validation."""
    folder, instance = city_copy
    return folder / "data", instance


@pytest.fixture(scope="module")
def trained(city_copy: tuple[Path, dg.DagsterInstance]) -> Trained:
    """The blessed model of the held-out day trained with the city, in the module's
    instance."""
    folder, _ = city_copy
    record = json.loads((folder / "trained.json").read_text())
    return Trained(folder / "trained", record["run_id"], record["version"])


@pytest.fixture
def platform(city: tuple[Path, dg.DagsterInstance], tmp_path: Path) -> Platform:
    data_dir, instance = city
    return Platform(data_dir, tmp_path / "artifacts", instance)


def materialized(result: dg.ExecuteInProcessResult) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}


def failure_message(result: dg.ExecuteInProcessResult) -> str:
    [failure] = result.get_step_failure_events()
    return failure.step_failure_data.error.message


def forge_blessing(platform: Platform, version: str, held_out_day: str = HELD_OUT) -> None:
    """What an attacker with write access to the artifact store does: a report that says
    the version was blessed on a day."""
    report_path = platform.artifacts.model_folder(version) / "evaluation.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    report.update(
        blessed=True,
        held_out_day=held_out_day,
        model_version=version,
        content_hash=platform.artifacts.stored_hash(version),
        reasons=[],
    )
    report_path.write_text(json.dumps(report))


# Re-execution rebuilds the job from a pointer (Dagster re-executes reconstructable jobs
# only), so the job comes from a module-level function; these variables name its platform.
JOB_ENV, DATA_DIR_ENV, ARTIFACTS_DIR_ENV = (
    "TAXI_ASSETS_TEST_JOB",
    "TAXI_ASSETS_TEST_DATA_DIR",
    "TAXI_ASSETS_TEST_ARTIFACTS_DIR",
)
IN_PROCESS = {"execution": {"config": {"in_process": {}}}}
# Jobs whose own executor runs their steps in the run worker's process: they get no
# executor choice, so a test of them sees what a launched run does (test_model_gate_refusals
# checks forecast_job's steps ran in the test's process).
IN_PROCESS_BY_THEIR_OWN = ("forecast_job",)


def in_process(job: str) -> dict[str, Any]:
    """Run config for the steps to run in the test's process."""
    return {} if job in IN_PROCESS_BY_THEIR_OWN else IN_PROCESS


def platform_job() -> dg.JobDefinition:
    resources = local_resources(os.environ[DATA_DIR_ENV], os.environ[ARTIFACTS_DIR_ENV], source())
    defs = build_definitions({**resources, "evaluation": BLESS_ANY})
    return defs.resolve_job_def(os.environ[JOB_ENV])


def execute(
    platform: Platform,
    monkeypatch: pytest.MonkeyPatch,
    job: str,
    run_config: dict[str, Any] | None = None,
    tags: dict[str, str] | None = None,
    from_failure_of: str | None = None,
    steps_of: tuple[str, list[str]] | None = None,
) -> tuple[bool, str, set[str]]:
    """Run ``job``, or re-execute a failed run of it from failure; returns whether it
    succeeded, its run id and the steps that started. Unlike the UI, Dagster's Python API
    does not copy the parent's config and tags into a re-execution: pass the same ones."""
    monkeypatch.setenv(JOB_ENV, job)
    monkeypatch.setenv(DATA_DIR_ENV, str(platform.data_dir))
    monkeypatch.setenv(ARTIFACTS_DIR_ENV, platform.artifacts.base_dir)
    options = (
        dg.ReexecutionOptions.from_failure(from_failure_of, platform.instance)
        if from_failure_of
        else None
    )
    if steps_of:
        options = dg.ReexecutionOptions(parent_run_id=steps_of[0], step_selection=steps_of[1])
    with dg.execute_job(
        dg.reconstructable(platform_job),
        instance=platform.instance,
        run_config={**in_process(job), **(run_config or {})},
        tags=tags,
        reexecution_options=options,
        raise_on_error=False,
    ) as result:
        started = {e.step_key for e in result.all_events if e.event_type_value == "STEP_START"}
        return result.success, result.run_id, started
