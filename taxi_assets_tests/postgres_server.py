"""A real, throwaway PostgreSQL server for tests: Debian's package, loopback only.

The production Dagster instance keeps its runs, event logs and ticks in PostgreSQL, so the
tests that prove that configuration run a real server rather than a stand-in. The server
gets a fresh data folder, listens on 127.0.0.1 at a free port, keeps its unix socket in
that folder, and is stopped and removed afterwards.

PostgreSQL refuses to run as root; the suite does run as root in CI containers, so the
server's programs run as the ``postgres`` account the Debian package creates. Dagster
connects the way production does: a role of its own, with a password, owning one database.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from taxi_assets_tests.loopback import free_port

# Debian installs each major version's programs here (package postgresql-<major>).
POSTGRES_BIN_GLOB = "/usr/lib/postgresql/*/bin"
SERVER_ACCOUNT = "postgres"
DAGSTER_ROLE = "taxi_dagster"
DAGSTER_DATABASE = "taxi_dagster"


class PostgresUnavailable(RuntimeError):
    """The PostgreSQL programs are missing or the server would not start."""


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str
    password: str
    database: str
    folder: Path

    def environment(self) -> dict[str, str]:
        """The settings deploy/dagster.postgres.yaml reads."""
        return {
            "DAGSTER_PG_HOST": self.host,
            "DAGSTER_PG_PORT": str(self.port),
            "DAGSTER_PG_USER": self.user,
            "DAGSTER_PG_PASSWORD": self.password,
            "DAGSTER_PG_DB": self.database,
        }

    def dsn(self) -> str:
        return (
            f"host={self.host} port={self.port} user={self.user} "
            f"password={self.password} dbname={self.database}"
        )


def postgres_bin_dir() -> Path:
    """The newest installed PostgreSQL's programs; fails (not skips) when there are none."""
    candidates = sorted(
        (Path(path) for path in glob.glob(POSTGRES_BIN_GLOB) if Path(path, "initdb").exists()),
        key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0,
    )
    if not candidates:
        raise PostgresUnavailable(
            f"no PostgreSQL server found under {POSTGRES_BIN_GLOB}: install Debian's packages "
            "(apt-get install postgresql, which pulls postgresql-<major> and "
            "postgresql-client-<major>) or run `make test`, which installs them"
        )
    return candidates[-1]


def _as_server_account(command: list[str]) -> list[str]:
    # As root, drop to the account PostgreSQL insists on; as anyone else, run as-is.
    if os.geteuid() == 0:
        return ["runuser", "-u", SERVER_ACCOUNT, "--", *command]
    return command


def _run(command: list[str], what: str, input_text: str | None = None) -> None:
    completed = subprocess.run(
        _as_server_account(command),
        input=input_text,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        # The server account may not be allowed into the caller's working directory.
        cwd=tempfile.gettempdir(),
    )
    if completed.returncode != 0:
        raise PostgresUnavailable(
            f"{what} failed ({completed.returncode}): {completed.stderr or completed.stdout}"
        )


@contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """Start a fresh server with a Dagster role and database; stop and delete it after."""
    bin_dir = postgres_bin_dir()
    # Not pytest's tmp_path: its parents are private to root, and the server account must
    # reach its data folder.
    folder = Path(tempfile.mkdtemp(prefix="taxi-assets-pg-"))
    if os.geteuid() == 0:
        shutil.chown(folder, user=SERVER_ACCOUNT, group=SERVER_ACCOUNT)
    data_dir, socket_dir, log_file = folder / "data", folder / "socket", folder / "server.log"
    port = free_port()
    password = secrets.token_urlsafe(16)
    started = False
    try:
        _run(["mkdir", "-m", "700", str(socket_dir)], "creating the socket folder")
        # Local (socket) connections are trusted for setting up; TCP ones, Dagster's, need
        # the password, as in production.
        _run(
            [
                str(bin_dir / "initdb"),
                "--pgdata",
                str(data_dir),
                "--username",
                SERVER_ACCOUNT,
                "--auth-local",
                "trust",
                "--auth-host",
                "scram-sha-256",
                "--encoding",
                "UTF8",
                "--no-instructions",
            ],
            "initdb",
        )
        server_options = " ".join(
            [
                f"-c listen_addresses=127.0.0.1 -c port={port}",
                f"-c unix_socket_directories={socket_dir}",
                # A throwaway server: durability buys nothing and costs seconds per test.
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            ]
        )
        _run(
            [
                str(bin_dir / "pg_ctl"),
                "--pgdata",
                str(data_dir),
                "--log",
                str(log_file),
                "--options",
                server_options,
                "--wait",
                "--timeout",
                "60",
                "start",
            ],
            "starting PostgreSQL",
        )
        started = True
        # The role owns its database and nothing else: the rights docs/deployment.md asks
        # of the production Dagster user.
        _run(
            [
                str(bin_dir / "psql"),
                "--no-psqlrc",
                "--set",
                "ON_ERROR_STOP=1",
                "--host",
                str(socket_dir),
                "--port",
                str(port),
                "--username",
                SERVER_ACCOUNT,
                "--dbname",
                "postgres",
            ],
            "creating the Dagster role and database",
            input_text=(
                f"CREATE ROLE {DAGSTER_ROLE} LOGIN PASSWORD '{password}';\n"
                f"CREATE DATABASE {DAGSTER_DATABASE} OWNER {DAGSTER_ROLE};\n"
                f"REVOKE ALL ON DATABASE {DAGSTER_DATABASE} FROM PUBLIC;\n"
            ),
        )
        yield PostgresServer(
            host="127.0.0.1",
            port=port,
            user=DAGSTER_ROLE,
            password=password,
            database=DAGSTER_DATABASE,
            folder=folder,
        )
    except PostgresUnavailable as error:
        log = log_file.read_text(errors="replace")[-2000:] if log_file.exists() else ""
        raise PostgresUnavailable(f"{error}\nserver log:\n{log}") from None
    finally:
        if started:
            subprocess.run(
                _as_server_account(
                    [
                        str(bin_dir / "pg_ctl"),
                        "--pgdata",
                        str(data_dir),
                        "--mode",
                        "fast",
                        "--wait",
                        "stop",
                    ]
                ),
                capture_output=True,
                timeout=60,
                check=False,
                cwd=tempfile.gettempdir(),
            )
        shutil.rmtree(folder, ignore_errors=True)
