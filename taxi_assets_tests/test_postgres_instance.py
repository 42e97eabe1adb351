"""The production instance and deployment files, proven against real machinery.

- deploy/dagster.postgres.yaml, as shipped, against a real PostgreSQL server (Debian's
  package, loopback only): a materialization, a schedule tick and a sensor tick are
  written to and read back from Postgres.
- deploy/helm/values.yaml, Dockerfile and docs/deployment.md: there is no Docker or
  Kubernetes on the test machine, so these are checked statically, but with dagster-k8s's
  own config schema and its own Kubernetes Job builder rather than by eye.
"""

from __future__ import annotations

import datetime
import inspect
import logging
import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
import psycopg2
import pytest
import yaml
from dagster._config import process_config
from dagster._core.code_pointer import ModuleCodePointer
from dagster._core.origin import JobPythonOrigin, RepositoryPythonOrigin
from dagster._core.scheduler.instigation import InstigatorType, TickStatus
from dagster._core.test_utils import create_test_daemon_workspace_context, freeze_time
from dagster._core.workspace.load_target import ModuleTarget
from dagster._daemon.sensor import execute_sensor_iteration
from dagster._scheduler.scheduler import launch_scheduled_runs
from dagster_k8s import K8sRunLauncher
from dagster_k8s.job import construct_dagster_k8s_job
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

from taxi_assets.automation import channels
from taxi_assets.automation.alerts import SENT_ALERT_PREFIX, Alert
from taxi_assets.automation.channels import alert_resources
from taxi_assets.definitions import ASSET_MODULES
from taxi_assets.resources import PRODUCTION_SETTINGS
from taxi_assets_tests.postgres_server import PostgresServer, running_postgres

REPO = Path(__file__).resolve().parents[1]
INSTANCE_YAML = REPO / "deploy" / "dagster.postgres.yaml"
HELM_VALUES = REPO / "deploy" / "helm" / "values.yaml"
DOCKERFILE = REPO / "Dockerfile"
DEPLOYMENT_DOCS = REPO / "docs" / "deployment.md"

DAY = "2026-04-29"
LOCATION = "taxi_assets"
SCHEDULE = "forecast_every_5_minutes"
SENSOR = "asset_check_alert_sensor"
# The names the chart gives things for `helm install taxi ...` in namespace taxi.
RELEASE, NAMESPACE = "taxi", "taxi"
SETTING_NAME = re.compile(r"\bTAXI_ASSETS_[A-Z0-9_]+\b")


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    with running_postgres() as server:
        yield server


@pytest.fixture
def postgres_home(
    postgres: PostgresServer, tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A DAGSTER_HOME holding the shipped instance file, its settings pointed at the server."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(INSTANCE_YAML, home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    for name, value in postgres.environment().items():
        monkeypatch.setenv(name, value)
    # For the code server the daemon starts: a small simulated city, files in tmp.
    monkeypatch.setenv("TAXI_ASSETS_DATA_DIR", str(data_dir))
    monkeypatch.setenv("TAXI_ASSETS_SIM_FLEET_SIZE", "60")
    return home


def query(postgres: PostgresServer, sql: str, *params: object) -> list[tuple]:
    with psycopg2.connect(postgres.dsn()) as connection, connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def test_materialization_is_stored_in_postgres_and_read_back(
    postgres: PostgresServer, postgres_home: Path, small_city_resources: dict, data_dir: Path
) -> None:
    with dg.DagsterInstance.get() as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        result = dg.materialize(
            dg.load_assets_from_modules(list(ASSET_MODULES)),
            selection=dg.AssetSelection.assets("raw_probes", "weather"),
            partition_key=DAY,
            resources=small_city_resources,
            instance=instance,
        )
        assert result.success
        run_id = result.run_id

    # A new instance (as the webserver or another pod would open) sees the run and the
    # materializations with their metadata: they live in the database, not in this process.
    with dg.DagsterInstance.get() as reader:
        run = reader.get_run_by_id(run_id)
        assert run is not None and run.status == dg.DagsterRunStatus.SUCCESS
        event = reader.get_latest_materialization_event(dg.AssetKey("raw_probes"))
        assert event is not None and event.run_id == run_id
        materialization = event.asset_materialization
        assert materialization is not None and materialization.partition == DAY
        stored_rows = pl.read_parquet(data_dir / "raw_probes" / f"{DAY}.parquet").height
        assert materialization.metadata["rows"].value == stored_rows > 0
        checks = reader.get_latest_asset_check_evaluation_record(
            dg.AssetCheckKey(dg.AssetKey("raw_probes"), "contract")
        )
        assert checks is not None and checks.run_id == run_id

    # And straight from PostgreSQL, as the Dagster role: the rows are there.
    assert query(postgres, "SELECT status FROM runs WHERE run_id = %s", run_id) == [("SUCCESS",)]
    stored = query(
        postgres,
        "SELECT asset_key, partition FROM event_logs "
        "WHERE run_id = %s AND dagster_event_type = 'ASSET_MATERIALIZATION' ORDER BY asset_key",
        run_id,
    )
    assert stored == [('["raw_probes"]', DAY), ('["weather"]', DAY)]


def instigator_ticks(
    instance: dg.DagsterInstance, workspace: Any, name: str, kind: InstigatorType
) -> tuple[Any, list]:
    location = workspace.create_request_context().get_code_location(LOCATION)
    repository = next(iter(location.get_repositories().values()))
    remote = (
        repository.get_schedule(name)
        if kind == InstigatorType.SCHEDULE
        else repository.get_sensor(name)
    )
    return remote, list(instance.get_ticks(remote.get_remote_origin_id(), remote.selector_id))


def test_schedule_and_sensor_ticks_are_stored_in_postgres(
    postgres: PostgresServer, postgres_home: Path
) -> None:
    """The daemon's own scheduler and sensor iterations, against our code location served
    over gRPC (as in the cluster), with the Postgres instance: the ticks land in Postgres."""
    logger = logging.getLogger("taxi_assets_tests.daemon")
    start = datetime.datetime(2026, 4, 29, 9, 1, tzinfo=datetime.UTC)
    with (
        dg.DagsterInstance.get() as instance,
        create_test_daemon_workspace_context(
            ModuleTarget(
                module_name="taxi_assets.definitions",
                attribute=None,
                working_directory=str(REPO),
                location_name=LOCATION,
            ),
            instance,
        ) as workspace,
    ):
        schedule, before = instigator_ticks(instance, workspace, SCHEDULE, InstigatorType.SCHEDULE)
        sensor, _ = instigator_ticks(instance, workspace, SENSOR, InstigatorType.SENSOR)
        assert before == []
        with freeze_time(start):
            instance.start_schedule(schedule)
            instance.start_sensor(sensor)
        # Five minutes later the daemon's scheduler finds the 09:05 tick due.
        with freeze_time(start + datetime.timedelta(minutes=5)):
            list(
                launch_scheduled_runs(
                    workspace,
                    logger,
                    end_datetime_utc=start + datetime.timedelta(minutes=5),
                    iteration_times={},
                )
            )
            list(execute_sensor_iteration(workspace, logger, None, None))

        _, schedule_ticks = instigator_ticks(instance, workspace, SCHEDULE, InstigatorType.SCHEDULE)
        _, sensor_ticks = instigator_ticks(instance, workspace, SENSOR, InstigatorType.SENSOR)

    assert [tick.status for tick in schedule_ticks] == [TickStatus.SUCCESS], schedule_ticks
    (schedule_tick,) = schedule_ticks
    assert schedule_tick.timestamp == start.replace(minute=5).timestamp()
    assert len(schedule_tick.run_ids) == 1
    # The requested forecast run waits in the run queue, in Postgres, for the daemon.
    (queued_run,) = query(
        postgres,
        "SELECT status, pipeline_name FROM runs WHERE run_id = %s",
        schedule_tick.run_ids[0],
    )
    assert queued_run == ("QUEUED", "forecast_job")
    assert len(sensor_ticks) == 1, sensor_ticks
    assert sensor_ticks[0].status in (TickStatus.SUCCESS, TickStatus.SKIPPED), sensor_ticks[0]

    # Both ticks are rows of the Postgres schedule storage.
    stored = dict(query(postgres, "SELECT type, count(*) FROM job_ticks GROUP BY type"))
    assert stored.get("SCHEDULE", 0) >= 1 and stored.get("SENSOR", 0) >= 1, stored


def test_alerts_are_sent_once_across_pod_restarts_and_racing_sensors(
    postgres: PostgresServer, postgres_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The "sent once" keys live in Postgres: four sensors racing on one failure send it
    once; a pod restarted with an empty disk (no alert log file) does not send it again."""
    sent: list[str] = []
    monkeypatch.setattr(
        channels.AlertChannels, "channels", lambda self: {"webhook": Recorder(sent)}
    )
    alert = Alert(
        kind="run_failure",
        dedupe_key="run_failure:postgres-proof",
        severity="ERROR",
        title="Run of daily_job failed",
        run_id="postgres-proof",
        run_url="http://dagster.example.test/runs/postgres-proof",
    )
    resource = channels.AlertChannels()
    barrier = threading.Barrier(4)
    outcomes: list[bool] = []

    def pod() -> None:
        with dg.DagsterInstance.get() as instance:
            barrier.wait()
            outcomes.append(resource.dispatch(alert, instance).duplicate)

    threads = [threading.Thread(target=pod) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == [False, True, True, True]

    shutil.rmtree(postgres_home / "alerts")  # the pod's disk, gone with the pod
    with dg.DagsterInstance.get() as restarted:
        assert resource.dispatch(alert, restarted).duplicate
    assert sent == ["run_failure:postgres-proof"]
    [(value,)] = query(
        postgres,
        "SELECT value FROM kvs WHERE key = %s",
        SENT_ALERT_PREFIX + "run_failure:postgres-proof",
    )
    assert '"webhook": "sent"' in value


class Recorder:
    def __init__(self, sent: list[str]) -> None:
        self.sent = sent

    def send(self, alert: Alert) -> None:
        self.sent.append(alert.dedupe_key)


def test_the_instance_monitors_runs_whose_worker_died() -> None:
    """Run monitoring fails a run whose worker or code server died (a machine restart),
    and run retries re-execute it from failure."""
    config = yaml.safe_load(INSTANCE_YAML.read_text())
    assert config["run_monitoring"]["enabled"] is True
    assert config["run_monitoring"]["max_runtime_seconds"] > 0
    assert config["run_retries"]["enabled"] is True
    assert config["run_retries"]["retry_on_asset_or_op_failure"] is False


# ---------------------------------------------------------------------------------------
# Kubernetes: the Helm values, the image, the documented settings.
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def values() -> dict[str, Any]:
    return yaml.safe_load(HELM_VALUES.read_text())


def chart_run_launcher_config(values: dict[str, Any]) -> dict[str, Any]:
    """The run_launcher config the chart writes into the instance ConfigMap for these values
    (the chart's dagsterYaml.runLauncher.k8s template, for release taxi in namespace taxi)."""
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    config: dict[str, Any] = {
        "load_incluster_config": launcher["loadInclusterConfig"],
        "job_namespace": launcher.get("jobNamespace") or NAMESPACE,
        "image_pull_policy": launcher["imagePullPolicy"],
        "service_account_name": f"{RELEASE}-dagster",
        "dagster_home": values["global"]["dagsterHome"],
        "instance_config_map": f"{RELEASE}-dagster-instance",
        "postgres_password_secret": values["global"]["postgresqlSecretName"],
    }
    if launcher.get("kubeconfigFile"):
        config["kubeconfig_file"] = launcher["kubeconfigFile"]
    renamed = {
        "envVars": "env_vars",
        "volumeMounts": "volume_mounts",
        "volumes": "volumes",
        "labels": "labels",
        "resources": "resources",
        "securityContext": "security_context",
    }
    for camel, snake in renamed.items():
        if launcher.get(camel):
            config[snake] = launcher[camel]
    for camel, snake in {"envConfigMaps": "env_config_maps", "envSecrets": "env_secrets"}.items():
        if launcher.get(camel):
            config[snake] = [source["name"] for source in launcher[camel]]
    if launcher.get("failPodOnRunFailure"):
        config["fail_pod_on_run_failure"] = True
    run_k8s = launcher.get("runK8sConfig") or {}
    parts = {
        "containerConfig": "container_config",
        "podSpecConfig": "pod_spec_config",
        "podTemplateSpecMetadata": "pod_template_spec_metadata",
        "jobSpecConfig": "job_spec_config",
        "jobMetadata": "job_metadata",
    }
    if run_k8s:
        config["run_k8s_config"] = {parts[key]: value for key, value in run_k8s.items()}
    return config


def chart_container_context(values: dict[str, Any], deployment: dict[str, Any]) -> dict:
    """The container context the chart hands our code server (includeConfigInLaunchedRuns):
    what every run it launches inherits (the chart's k8sContainerContext helper)."""
    return {
        "k8s": {
            "image_pull_policy": deployment["image"]["pullPolicy"],
            "env_config_maps": [
                f"{RELEASE}-dagster-user-deployments-{deployment['name']}-user-env"
            ],
            "env_secrets": [source["name"] for source in deployment.get("envSecrets", [])],
            "namespace": NAMESPACE,
            "service_account_name": f"{RELEASE}-dagster-user-deployments-user-deployments",
            "env": deployment.get("env", []),
            "run_k8s_config": {"pod_spec_config": {"automount_service_account_token": True}},
        }
    }


def our_deployment(values: dict[str, Any]) -> dict[str, Any]:
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    return deployment


def test_helm_values_choose_k8s_launcher_postgres_daemon_and_read_only_ui(values: dict) -> None:
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["dagsterWebserver"]["enableReadOnly"] is True
    assert values["dagsterDaemon"]["enabled"] is True
    coordinator = values["dagsterDaemon"]["runCoordinator"]
    assert coordinator["enabled"] and coordinator["type"] == "QueuedRunCoordinator"
    assert values["dagsterDaemon"]["runRetries"]["enabled"] is True
    # External Postgres: the chart must neither deploy one nor write a password Secret.
    assert values["postgresql"]["enabled"] is False
    assert values["generatePostgresqlPasswordSecret"] is False
    assert values["postgresql"]["postgresqlPassword"] == ""
    assert values["telemetry"]["enabled"] is False

    deployment = our_deployment(values)
    assert deployment["codeServerArgs"] == ["-m", "taxi_assets.definitions"]
    assert deployment["includeConfigInLaunchedRuns"]["enabled"] is True
    assert deployment["podSecurityContext"]["runAsNonRoot"] is True
    # One Secret per credential, and only the code location's pods get them.
    secrets = [source["name"] for source in deployment["envSecrets"]]
    assert secrets == [
        "taxi-assets-bq-reader",
        "taxi-assets-gcs-writer",
        "taxi-assets-bq-data-path-writer",
        "taxi-assets-alert-sender",
    ]
    for component in ("dagsterWebserver", "dagsterDaemon"):
        assert values[component].get("envSecrets", []) == []
    assert values["runLauncher"]["config"]["k8sRunLauncher"]["envSecrets"] == []


def test_helm_run_launcher_config_validates_and_builds_the_run_pod(
    values: dict, tmp_path: Path
) -> None:
    """The run launcher config the chart renders passes dagster-k8s's schema; built into a
    real K8sRunLauncher (a kubeconfig pointing at no cluster instead of the in-cluster one),
    it turns a run of our code location into a Job whose pod gets our settings and Secrets,
    runs as our unprivileged user and gets the database password from the chart's Secret."""
    rendered = chart_run_launcher_config(values)
    processed = process_config(K8sRunLauncher.config_type(), rendered)
    assert processed.success, processed.errors

    # Instance queue and retries in the chart match deploy/dagster.postgres.yaml.
    instance_yaml = yaml.safe_load(INSTANCE_YAML.read_text())
    queued = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    runs = instance_yaml["concurrency"]["runs"]
    assert queued["maxConcurrentRuns"] == runs["max_concurrent_runs"]
    assert queued["tagConcurrencyLimits"] == runs["tag_concurrency_limits"]
    assert (
        values["dagsterDaemon"]["runRetries"]["maxRetries"]
        == (instance_yaml["run_retries"]["max_retries"])
    )

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "none", "cluster": {"server": "https://127.0.0.1:1"}}],
                "users": [{"name": "none", "user": {"token": "unused"}}],
                "contexts": [{"name": "none", "context": {"cluster": "none", "user": "none"}}],
                "current-context": "none",
            }
        )
    )
    launcher = K8sRunLauncher.from_config_value(
        None,
        {**processed.value, "load_incluster_config": False, "kubeconfig_file": str(kubeconfig)},
    )
    deployment = our_deployment(values)
    image = f"{deployment['image']['repository']}:{deployment['image']['tag']}"
    run = dg.DagsterRun(
        job_name="forecast_job",
        run_id="0b2d7c1e-0000-4000-8000-000000000001",
        job_code_origin=JobPythonOrigin(
            "forecast_job",
            RepositoryPythonOrigin(
                executable_path="/opt/venv/bin/python",
                code_pointer=ModuleCodePointer("taxi_assets.definitions", "defs", None),
                container_image=image,
                container_context=chart_container_context(values, deployment),
            ),
        ),
    )
    context = launcher.get_container_context_for_run(run)
    assert context.namespace == NAMESPACE
    job = construct_dagster_k8s_job(
        job_config=context.get_k8s_job_config(job_image=image, run_launcher=launcher),
        args=["dagster", "api", "execute_run", "{}"],
        job_name="dagster-run-0b2d7c1e",
        user_defined_k8s_config=context.run_k8s_config,
        component="run_worker",
    )
    (container,) = job.spec.template.spec.containers
    assert container.image == image
    secret_refs = [source.secret_ref.name for source in container.env_from if source.secret_ref]
    assert secret_refs == [source["name"] for source in deployment["envSecrets"]]
    env = {variable.name: variable for variable in container.env}
    assert env["TAXI_ASSETS_ENV"].value == "production"
    assert (
        env["DAGSTER_PG_PASSWORD"].value_from.secret_key_ref.name
        == (values["global"]["postgresqlSecretName"])
    )
    assert container.security_context.run_as_non_root is True
    assert container.security_context.run_as_user == 10001
    assert container.resources.limits["memory"] == "8Gi"
    assert job.spec.ttl_seconds_after_finished == 86400


def documented_secret_keys(docs: str) -> dict[str, set[str]]:
    """Secret name -> the keys `kubectl create secret generic` puts in it, from the docs."""
    secrets: dict[str, set[str]] = {}
    commands = re.findall(r"kubectl create secret generic (\S+)((?:[^\n]*\\\n)*[^\n]*)", docs)
    for name, rest in commands:
        secrets[name] = set(re.findall(r"--from-(?:literal|file)=([A-Za-z0-9_.-]+)=", rest))
    return secrets


def test_every_documented_setting_reaches_the_pods(values: dict) -> None:
    docs = DEPLOYMENT_DOCS.read_text()
    documented = set(SETTING_NAME.findall(docs))
    # The docs cover every production setting the code location checks at load, and every
    # alert setting the alert channels read. The alert log is the exception: a file whose
    # default (under DAGSTER_HOME, in the code server's pod) is the right place there.
    assert {setting.name for setting in PRODUCTION_SETTINGS} <= documented
    alert_settings = set(SETTING_NAME.findall(inspect.getsource(alert_resources)))
    alert_settings |= {channels.WEBHOOK_URL_ENV, channels.SMTP_PASSWORD_ENV}
    assert alert_settings - {"TAXI_ASSETS_ALERT_LOG"} <= documented, alert_settings - documented

    deployment = our_deployment(values)
    plain = {variable["name"] for variable in deployment["env"]}
    secrets = documented_secret_keys(docs)
    mounted = {source["name"] for source in deployment["envSecrets"]}
    assert mounted <= set(secrets), (
        f"Secrets the values mount but the docs never create: {mounted - set(secrets)}"
    )
    from_secrets = set().union(*(secrets[name] for name in mounted))
    # The guidance API's pods (extraManifests) receive the bucket reader's key, and only it.
    (api,) = [
        container
        for manifest in values["extraManifests"]
        if manifest["kind"] == "Deployment"
        for container in manifest["spec"]["template"]["spec"]["containers"]
    ]
    api_secrets = {source["secretRef"]["name"] for source in api["envFrom"]}
    assert api_secrets <= set(secrets)
    api_settings = set().union(*(secrets[name] for name in api_secrets))
    assert api_settings == {"TAXI_ASSETS_GCS_READER_CREDENTIALS"}
    missing = documented - plain - from_secrets - api_settings
    assert not missing, f"documented settings no pod receives: {sorted(missing)}"
    # A credential is never a plain value in the values file.
    for setting in PRODUCTION_SETTINGS:
        if setting.secret:
            assert setting.name not in plain and setting.name in from_secrets
    # One credential per Secret for the GCP service accounts.
    assert secrets["taxi-assets-bq-reader"] == {"TAXI_ASSETS_BQ_READER_CREDENTIALS"}
    assert secrets["taxi-assets-gcs-writer"] == {"TAXI_ASSETS_GCS_WRITER_CREDENTIALS"}
    assert secrets["taxi-assets-bq-data-path-writer"] == {
        "TAXI_ASSETS_BQ_DATA_PATH_WRITER_CREDENTIALS"
    }
    assert secrets[values["global"]["postgresqlSecretName"]] == {"postgresql-password"}


def test_dockerfile_installs_the_k8s_extra_and_runs_unprivileged() -> None:
    """Static: there is no Docker here. The image installs the package with its pins and
    the k8s extra, runs as a fixed non-root uid, serves the code location, bakes no secret."""
    dockerfile = DOCKERFILE.read_text()
    instructions = [
        line.strip()
        for line in re.sub(r"\\\n\s*", " ", dockerfile).splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    froms = [line for line in instructions if line.startswith("FROM ")]
    assert froms and all(line.split()[1] == "python:3.11-slim" for line in froms)
    assert any(re.fullmatch(r'RUN pip install "\.\[k8s\]"', line) for line in instructions)
    users = [line for line in instructions if line.startswith("USER ")]
    assert users and users[-1] == "USER 10001:10001"
    assert instructions.index(users[-1]) > max(
        i for i, line in enumerate(instructions) if line.startswith(("RUN ", "COPY "))
    )
    cmd = [line for line in instructions if line.startswith("CMD ")][-1]
    assert yaml.safe_load(cmd.removeprefix("CMD ")) == [
        "dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000",
        "-m", "taxi_assets.definitions",
    ]  # fmt: skip
    # No credential in the image: no secret-looking ENV/ARG, no key file copied in.
    for line in instructions:
        if line.startswith(("ENV ", "ARG ")):
            assert not re.search(r"PASSWORD|CREDENTIALS|WEBHOOK|SECRET|TOKEN", line), line
    copied = [line.split()[1:-1] for line in instructions if line.startswith("COPY ")]
    assert all(not re.search(r"\.json|\.key|\.env", " ".join(srcs)) for srcs in copied)
    # The build context is an allow-list: local data, instance state and keys stay out.
    ignore = [
        line
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert ignore[0] == "*"
    assert {line for line in ignore if line.startswith("!")} == {
        "!pyproject.toml",
        "!README.md",
        "!taxi_assets/",
        "!deploy/dagster.postgres.yaml",
    }
