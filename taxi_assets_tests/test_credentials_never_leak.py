"""No credential value ever reaches the event log, run metadata, run configs or alerts.

The production resources come from ``production_resources`` with one secret per job: a
read-only BigQuery probe reader key, the data path writer's key (BigQuery mode: the day's
tables are written by SQL, ``TAXI_ASSETS_BQ_DATA_PATH_*``), a GCS writer key limited to the
artifact bucket, and the alert sender's webhook URL and SMTP password. All five live only
in environment variables; the resources hold ``dg.EnvVar`` references that Dagster
resolves inside the run.

Both production modes run, in one test so that they share its servers and its search:
BigQuery mode (the data path writer's key writes the day's tables) and pull mode (the same
settings without ``TAXI_ASSETS_BQ_DATA_PATH_*``: the reader's key pulls the day, which the
run pod cleans and stores in the bucket).

Nothing is faked on the credentials' path: the three keys are real RSA service-account keys
whose token requests go to loopback token endpoints (one per key), so the test can verify
that each key really signed its own resource's requests. Only the endpoints are local: the
storage resources point at the GCS emulator (their ``gcs_endpoint_url`` setting) and the
probe source and the data path run their BigQuery SQL on DuckDB (``DuckDBProbeSource``,
``DuckDBDataPath``), each authenticating with its own ``BigQueryResource`` client all the
same. A real day goes raw_probes -> cell_demand in each mode, a bad weather delivery fails
a blocking check, both alert sensors send their alerts to a loopback webhook and SMTP
server, and then every place a secret could surface is searched for every secret (and for
distinctive slices of the keys).
"""

from __future__ import annotations

import base64
import email
import email.policy
import json
import logging
import secrets
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import dagster as dg
import duckdb
import google.auth.transport.requests
import polars as pl
import pytest
from google.auth import jwt

from taxi_assets.automation.alert_sensors import (
    asset_check_alert_sensor,
    run_failure_alert_sensor,
)
from taxi_assets.automation.channels import (
    SMTP_PASSWORD_ENV,
    WEBHOOK_URL_ENV,
    AlertChannels,
    alert_resources,
)
from taxi_assets.definitions import build_definitions
from taxi_assets.model.registry import ArtifactStore
from taxi_assets.resources import PRODUCTION_SETTINGS, production_resources
from taxi_assets.sources.bigquery import BigQueryProbeSource, QueryParameter
from taxi_assets.sources.bigquery_data_path import BigQueryDataPath
from taxi_assets.sources.simulated import SimulatedProbeSource
from taxi_assets.storage import PartitionedParquetIOManager, StoredPartitions
from taxi_assets_tests.conftest import SMALL_FLEET
from taxi_assets_tests.gcs_emulator import (
    GcsEmulator,
    ServiceAccountKey,
    TokenEndpoint,
    loopback_token_endpoint,
    running_gcs_emulator,
    service_account_key,
)
from taxi_assets_tests.smtp_server import SmtpServer, running_smtp_server
from taxi_assets_tests.test_alerts import (
    DAY,
    SMTP_USER,
    write_weather_with_negative_rain,
)
from taxi_assets_tests.test_bigquery_data_path_tables import DuckDBDataPath
from taxi_assets_tests.test_bigquery_source import (
    ALL_ASSETS,
    PROBES_TABLE,
    PROJECT,
    TO_CELL_DEMAND,
    WEATHER_TABLE,
    DuckDBProbeSource,
    as_bigquery_rows,
    load_table,
)
from taxi_assets_tests.webhook_receiver import WebhookReceiver

READER_EMAIL = "reader@test.iam"
WRITER_EMAIL = "writer@test.iam"
DATA_PATH_EMAIL = "data-path@test.iam"
DATA_PATH_DATASET = f"{PROJECT}.data_path"
BUCKET = "taxi-artifacts"
PREFIX = "prod"
UI = "http://dagster.example.test:3000"
SECRET_ENV_NAMES = [s.name for s in PRODUCTION_SETTINGS if s.secret]


def refresh_token(resource: object) -> None:
    """Fetch the access token a BigQuery resource's client would send with its first call."""
    with resource.get_client() as client:  # type: ignore[attr-defined]
        # google-cloud's clients keep their credentials here; refreshing them is the
        # token request the first BigQuery call would make.
        client._credentials.refresh(google.auth.transport.requests.Request())


class AuthenticatingDuckDBDataPath(DuckDBDataPath):
    """``DuckDBDataPath`` that first authenticates with the data path writer's key."""

    def _run(self, sql: str, parameters: Sequence[QueryParameter]) -> pl.DataFrame:
        refresh_token(self.bigquery)
        return super()._run(sql, parameters)


class AuthenticatingDuckDBProbeSource(DuckDBProbeSource):
    """``DuckDBProbeSource`` that first authenticates as BigQuery's client would.

    The query still runs on DuckDB (BigQuery is not reachable), but each one opens the
    ``BigQueryResource`` client and fetches its access token: that is what proves the reader
    key, resolved by Dagster from ``dg.EnvVar``, is the one that reaches Google's auth.
    """

    def _query(self, sql: str, parameters: Sequence[QueryParameter]) -> pl.DataFrame:
        refresh_token(self.bigquery)
        return super()._query(sql, parameters)

    def warehouse_data_path(self) -> BigQueryDataPath | None:
        path = super().warehouse_data_path()
        if path is None:
            return None
        return AuthenticatingDuckDBDataPath(
            bigquery=path.bigquery,  # the writer's resource production_resources built
            probes_table=path.probes_table,
            dataset=path.dataset,
            sample_rows=300,
            duckdb_file=self.duckdb_file,
        )


@pytest.fixture
def emulator() -> Iterator[GcsEmulator]:
    with running_gcs_emulator(BUCKET) as running:
        yield running


@pytest.fixture
def reader_tokens() -> Iterator[TokenEndpoint]:
    with loopback_token_endpoint() as endpoint:
        # Access tokens are bearer credentials too: random, so a leak of one is found.
        endpoint.access_token = f"reader-access-{secrets.token_hex(16)}"
        yield endpoint


@pytest.fixture
def writer_tokens() -> Iterator[TokenEndpoint]:
    with loopback_token_endpoint() as endpoint:
        endpoint.access_token = f"writer-access-{secrets.token_hex(16)}"
        yield endpoint


@pytest.fixture
def data_path_tokens() -> Iterator[TokenEndpoint]:
    with loopback_token_endpoint() as endpoint:
        endpoint.access_token = f"data-path-access-{secrets.token_hex(16)}"
        yield endpoint


@pytest.fixture
def smtp_password() -> str:
    return f"smtp-{secrets.token_urlsafe(18)}"


@pytest.fixture
def smtp_server(smtp_password: str) -> Iterator[SmtpServer]:
    """A loopback SMTP server that requires AUTH with ``smtp_password``; records logins."""
    with running_smtp_server(SMTP_USER, smtp_password) as server:
        yield server


def production_env(
    reader: ServiceAccountKey,
    writer: ServiceAccountKey,
    data_path: ServiceAccountKey,
    smtp_port: int,
) -> dict[str, str]:
    """What a deployment sets: the settings, plus the secrets (set separately, below)."""
    return {
        "TAXI_ASSETS_ENV": "production",
        "TAXI_ASSETS_GCP_PROJECT": PROJECT,
        "TAXI_ASSETS_BQ_PROBES_TABLE": PROBES_TABLE,
        "TAXI_ASSETS_BQ_WEATHER_TABLE": WEATHER_TABLE,
        "TAXI_ASSETS_BQ_READER_CREDENTIALS": reader.encoded,
        "TAXI_ASSETS_GCS_BUCKET": BUCKET,
        "TAXI_ASSETS_GCS_PREFIX": PREFIX,
        "TAXI_ASSETS_GCS_WRITER_CREDENTIALS": writer.encoded,
        "TAXI_ASSETS_BQ_DATA_PATH_DATASET": DATA_PATH_DATASET,
        "TAXI_ASSETS_BQ_DATA_PATH_WRITER_CREDENTIALS": data_path.encoded,
        "TAXI_ASSETS_UI_URL": UI,
        "TAXI_ASSETS_SMTP_HOST": "127.0.0.1",
        "TAXI_ASSETS_SMTP_PORT": str(smtp_port),
        "TAXI_ASSETS_SMTP_USER": SMTP_USER,
        "TAXI_ASSETS_SMTP_STARTTLS": "false",
        "TAXI_ASSETS_ALERT_EMAIL_FROM": "taxi-assets@example.test",
        "TAXI_ASSETS_ALERT_EMAIL_TO": "oncall@example.test",
    }


def on_emulator(resources: dict[str, object], emulator: GcsEmulator, database: Path) -> dict:
    """The production resources with only their endpoints made local.

    Rebuilt rather than ``model_copy``-ed: a copied Dagster resource keeps the config it was
    built with, so Dagster would resolve it without the endpoint. The credentials are passed
    on as they are: the very ``dg.EnvVar`` objects ``production_resources`` made.
    """
    local = dict(resources)
    for name, kind in (
        ("io_manager", PartitionedParquetIOManager),
        ("stored", StoredPartitions),
        ("artifacts", ArtifactStore),
    ):
        resource = resources[name]
        assert isinstance(resource, kind)
        assert isinstance(resource.gcs_credentials, dg.EnvVar)
        assert resource.gcs_credentials == "TAXI_ASSETS_GCS_WRITER_CREDENTIALS"
        assert resource.base_dir.startswith(f"gs://{BUCKET}/{PREFIX}/")
        local[name] = kind(
            base_dir=resource.base_dir,
            gcs_credentials=resource.gcs_credentials,
            gcs_endpoint_url=emulator.endpoint_url,
        )
    source = resources["probe_source"]
    assert isinstance(source, BigQueryProbeSource)
    assert isinstance(source.bigquery.gcp_credentials, dg.EnvVar)
    assert source.bigquery.gcp_credentials == "TAXI_ASSETS_BQ_READER_CREDENTIALS"
    if source.data_path_dataset is None:  # pull mode: no writer in BigQuery at all
        assert source.data_path_writer is None
    else:
        assert source.data_path_writer is not None
        assert isinstance(source.data_path_writer.gcp_credentials, dg.EnvVar)
        writer_env = source.data_path_writer.gcp_credentials
        assert writer_env == "TAXI_ASSETS_BQ_DATA_PATH_WRITER_CREDENTIALS"
    local["probe_source"] = AuthenticatingDuckDBProbeSource(
        bigquery=source.bigquery,
        probes_table=source.probes_table,
        weather_table=source.weather_table,
        data_path_dataset=source.data_path_dataset,
        data_path_writer=source.data_path_writer,
        duckdb_file=str(database),
    )
    return local


def forbidden_strings(
    reader: ServiceAccountKey,
    writer: ServiceAccountKey,
    data_path: ServiceAccountKey,
    webhook: WebhookReceiver,
    smtp_password: str,
    tokens: Sequence[TokenEndpoint],
) -> dict[str, str]:
    """Each secret, and slices of it that a truncated or re-encoded copy would still show."""
    found: dict[str, str] = {}
    for who, key in (("reader", reader), ("writer", writer), ("data path writer", data_path)):
        pem = key.info["private_key"]
        body_lines = pem.strip().splitlines()[1:-1]
        found[f"{who} key (base64)"] = key.encoded
        found[f"{who} key (base64 slice)"] = key.encoded[400:460]
        found[f"{who} private key (PEM)"] = pem
        found[f"{who} private key (PEM, escaped)"] = json.dumps(pem)[1:-1]
        found[f"{who} private key (a PEM line)"] = body_lines[len(body_lines) // 2]
        found[f"{who} private key (end of the PEM)"] = body_lines[-2]
    found["webhook token"] = webhook.token
    found["webhook url"] = webhook.url
    found["smtp password"] = smtp_password
    # What smtplib sends for AUTH PLAIN: the password, merely base64-encoded.
    found["smtp AUTH PLAIN"] = base64.b64encode(f"\0{SMTP_USER}\0{smtp_password}".encode()).decode()
    for endpoint in tokens:
        found[f"access token {endpoint.access_token[:6]}"] = endpoint.access_token
    return found


def tick(
    sensor: dg.SensorDefinition,
    instance: dg.DagsterInstance,
    channels: AlertChannels,
    repository: dg.RepositoryDefinition,
    cursor: str | None = None,
) -> dg.SensorEvaluationContext:
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        repository_def=repository,
        resources={"alerts": channels},
    )
    sensor.evaluate_tick(context)
    return context


def verified_claims(endpoint: TokenEndpoint, key: ServiceAccountKey) -> list[Mapping]:
    """The claims of every token request, each verified with ``key``'s public half."""
    assert endpoint.assertions, f"no token was requested with {key.info['client_email']}"
    return [jwt.decode(assertion, certs=key.public_pem) for assertion in endpoint.assertions]


def test_no_credential_value_reaches_the_event_log_metadata_configs_or_alerts(
    tmp_path: Path,
    instance: dg.DagsterInstance,
    emulator: GcsEmulator,
    reader_tokens: TokenEndpoint,
    writer_tokens: TokenEndpoint,
    data_path_tokens: TokenEndpoint,
    webhook: WebhookReceiver,
    smtp_server: SmtpServer,
    smtp_password: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)  # libraries' debug logs too: they quote URLs and replies
    mail_handler, smtp_logins = smtp_server.handler, smtp_server.logins
    reader = service_account_key(reader_tokens.url, READER_EMAIL)
    writer = service_account_key(writer_tokens.url, WRITER_EMAIL)
    data_path = service_account_key(data_path_tokens.url, DATA_PATH_EMAIL)
    env = production_env(reader, writer, data_path, smtp_server.port)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv(WEBHOOK_URL_ENV, webhook.url)
    monkeypatch.setenv(SMTP_PASSWORD_ENV, smtp_password)
    # dagster_gcp refuses gcp_credentials when this is set (and it would name another key).
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)

    # "BigQuery": the simulated day's pings, and a weather delivery that breaks the contract.
    database = tmp_path / "bigquery.duckdb"
    probes = SimulatedProbeSource(fleet_size=SMALL_FLEET, seed=7).read_probes(DAY).probes
    load_table(database, PROBES_TABLE, as_bigquery_rows(probes, DAY))
    with duckdb.connect(str(database)) as con:  # the deployment creates the dataset
        con.execute("CREATE SCHEMA data_path")
    write_weather_with_negative_rain(tmp_path / "landing")
    load_table(
        database,
        WEATHER_TABLE,
        pl.read_parquet(tmp_path / "landing" / "weather" / f"{DAY}.parquet"),
    )

    production = production_resources(env)
    resources = on_emulator(production, emulator, database)
    # Pull mode: the same deployment without the data path's two settings.
    pull_env = {k: v for k, v in env.items() if not k.startswith("TAXI_ASSETS_BQ_DATA_PATH_")}
    pull_production = production_resources(pull_env)
    pull_resources = on_emulator(pull_production, emulator, database)
    definitions = build_definitions(resources)  # as the code location assembles them
    repository = definitions.get_repository_def()
    channels = alert_resources()["alerts"]  # the alert sender, from the same environment
    assert channels.smtp_host == "127.0.0.1" and channels.webhook_url_env == WEBHOOK_URL_ENV

    def materialize_day(
        selection: str, run_resources: dict, raise_on_error: bool = True
    ) -> dg.ExecuteInProcessResult:
        return dg.materialize(
            ALL_ASSETS,
            selection=selection,
            partition_key=DAY.isoformat(),
            resources=run_resources,
            instance=instance,
            raise_on_error=raise_on_error,
        )

    # The run-failure sensor's first tick only places its cursor ("from now on").
    start = dg.build_sensor_context(instance=instance, resources={"alerts": channels})
    run_failure_alert_sensor.evaluate_tick(start)

    pulled = materialize_day(TO_CELL_DEMAND, pull_resources)
    assert pulled.success
    # Pull mode: the reader's key pulled the day (and pushed cell_demand down); the data
    # path writer's key was never used, and the bucket holds the whole day.
    pull_reads = len(reader_tokens.assertions)
    assert pull_reads >= 2 and not data_path_tokens.assertions
    raw_blob = (
        emulator.client().bucket(BUCKET).blob(f"{PREFIX}/partitions/raw_probes/{DAY}.parquet")
    )
    assert pl.read_parquet(raw_blob.download_as_bytes()).height == probes.height
    good = materialize_day(TO_CELL_DEMAND, resources)
    assert good.success
    bad = materialize_day("weather", resources, raise_on_error=False)
    assert not bad.success  # the weather contract is a blocking check

    tick(asset_check_alert_sensor, instance, channels, repository)
    tick(run_failure_alert_sensor, instance, channels, repository, cursor=start.cursor)

    # The secrets were really used, each by its own resource only.
    reader_claims = verified_claims(reader_tokens, reader)
    assert {claims["iss"] for claims in reader_claims} == {READER_EMAIL}
    # BigQuery mode: the reader only reads the weather; the day stays in BigQuery.
    assert len(reader_claims) == pull_reads + 1
    data_path_claims = verified_claims(data_path_tokens, data_path)
    assert {claims["iss"] for claims in data_path_claims} == {DATA_PATH_EMAIL}
    # raw rows, raw sample, the clean/rejected write, counts, 2 samples, trips, cell demand...
    assert len(data_path_claims) >= 8
    writer_claims = verified_claims(writer_tokens, writer)
    assert {claims["iss"] for claims in writer_claims} == {WRITER_EMAIL}
    assert {c["scope"] for c in writer_claims} == {
        "https://www.googleapis.com/auth/devstorage.read_write"
    }
    partitions = emulator.object_names(f"{PREFIX}/partitions/")
    assert f"{PREFIX}/partitions/cell_demand/{DAY}.parquet" in partitions
    assert f"{PREFIX}/partitions/raw_probes/{DAY}.parquet" in partitions
    assert webhook.requests and all(r.path.endswith(webhook.token) for r in webhook.requests)
    assert smtp_logins and all(smtp_logins)

    # Every place a secret could surface.
    runs = instance.get_runs()
    assert {run.run_id for run in runs} == {pulled.run_id, good.run_id, bad.run_id}
    printed = capfd.readouterr()  # Dagster's loggers write to stderr, not to logging's root
    alert_log = Path(instance.root_directory) / "alerts" / "alerts.jsonl"
    places = {
        "event log": "\n".join(
            str(entry) for run in runs for entry in instance.all_logs(run.run_id)
        ),
        "event log (serialized)": "\n".join(
            dg.serialize_value(entry) for run in runs for entry in instance.all_logs(run.run_id)
        ),
        "run configs and tags": "\n".join(
            json.dumps([run.run_config, dict(run.tags)], default=str) for run in runs
        ),
        # What the UI's launchpad and run view show of each job, resources' config included.
        "job and plan snapshots": "\n".join(
            dg.serialize_value(instance.get_job_snapshot(run.job_snapshot_id))
            + dg.serialize_value(
                instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id)
            )
            for run in runs
        ),
        "alert log": alert_log.read_text(),
        "webhook bodies": json.dumps(webhook.bodies),
        "emails": "\n".join(content for _, _, content in mail_handler.messages),
        "captured output and logging": caplog.text + printed.err + printed.out,
        "resources' config": json.dumps(
            [
                {name: resource.model_dump() for name, resource in built.items()}
                for built in ({**resources, "alerts": channels}, pull_resources)
            ],
            default=str,
        ),
        "production resources' config": json.dumps(
            [
                {name: resource.model_dump() for name, resource in built.items()}
                for built in (production, pull_production)
            ],
            default=str,
        ),
        # A catch-all: every byte the instance stored (SQLite event and run storage, the
        # alert log, compute logs) and every object written to the bucket.
        "instance files (raw)": "\n".join(
            path.read_bytes().decode("latin-1")
            for path in sorted(Path(instance.root_directory).rglob("*"))
            if path.is_file()
        ),
        "bucket objects (raw)": "\n".join(
            blob.download_as_bytes().decode("latin-1")
            for blob in emulator.client().list_blobs(BUCKET, prefix=f"{PREFIX}/")
        ),
    }

    # Not vacuous: each place holds what the runs, checks and alerts said.
    cell_demand = good.asset_materializations_for_node("cell_demand")[0].metadata
    assert cell_demand["rows"].value > 0 and cell_demand["computed_in"].value == "bigquery"
    assert cell_demand["path"].value == emulator.url(
        PREFIX, "partitions", "cell_demand", f"{DAY}.parquet"
    )
    assert "'rows': IntMetadataValue(value=" in places["event log"]
    assert f"gs://{BUCKET}/{PREFIX}/partitions/cell_demand/{DAY}.parquet" in places["event log"]
    assert "Weather broken: 3 of 24 rows fail" in places["event log"]
    # The job snapshot holds each resource's config as the reference Dagster resolves. (The
    # probe source's nested BigQueryResource is not part of it: it is configured on its own.)
    writer_reference = '{\\"env\\": \\"TAXI_ASSETS_GCS_WRITER_CREDENTIALS\\"}'
    assert writer_reference in places["job and plan snapshots"]
    assert f'"dagster/partition": "{DAY}"' in places["run configs and tags"]
    assert "weather:contract failed" in places["alert log"]
    assert f"Run of __ephemeral_asset_job__ failed for {DAY}" in places["alert log"]
    assert "weather:contract failed" in places["webhook bodies"]
    assert len(mail_handler.messages) == len(webhook.bodies) == 2
    subjects = {
        email.message_from_string(content, policy=email.policy.default)["Subject"]
        for _, _, content in mail_handler.messages
    }
    assert f"[taxi_assets ERROR] Check weather:contract failed for {DAY}" in subjects
    assert f"pings for {DAY} stay in {PROBES_TABLE}" in places["captured output and logging"]
    assert f"{DATA_PATH_DATASET}.clean_probes" in places["event log"]
    assert "SQLite format 3" in places["instance files (raw)"]
    assert "cell_demand" in places["instance files (raw)"]
    assert "PAR1" in places["bucket objects (raw)"]
    for name in SECRET_ENV_NAMES:
        assert name in places["resources' config"], name
        assert name in places["production resources' config"], name

    leaks = [
        f"{secret} in {place}"
        for place, text in places.items()
        for secret, value in forbidden_strings(
            reader,
            writer,
            data_path,
            webhook,
            smtp_password,
            [reader_tokens, writer_tokens, data_path_tokens],
        ).items()
        if value in text
    ]
    assert not leaks, "secret values found:\n" + "\n".join(leaks)
