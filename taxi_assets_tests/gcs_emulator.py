"""A GCS bucket on loopback for tests: gcp-storage-emulator in memory, in this process.

Also a loopback OAuth token endpoint and a freshly generated service-account key, so a test
can check that the key given to a resource is the one that signs its token requests, with
nothing leaving 127.0.0.1.

gcsfs 2026.x picks its filesystem class when it is first imported: the experimental one
probes the bucket's layout over the Storage Control gRPC API, which the emulator lacks (each
probe retries for about a minute). Importing this module switches that off for the process;
``taxi_assets.cloud_paths`` refuses an emulator endpoint if it was imported too late.
"""

from __future__ import annotations

import base64
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")

from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402
from gcp_storage_emulator import server as emulator_server  # noqa: E402
from gcp_storage_emulator.exceptions import NotFound  # noqa: E402
from gcp_storage_emulator.handlers import objects as emulator_objects  # noqa: E402
from gcp_storage_emulator.server import create_server  # noqa: E402
from google.auth.credentials import AnonymousCredentials  # noqa: E402
from google.cloud import storage  # noqa: E402

from taxi_assets_tests.loopback import LOOPBACK, free_port  # noqa: E402


@dataclass(frozen=True)
class GcsEmulator:
    endpoint_url: str
    bucket: str

    def url(self, *parts: str) -> str:
        """``gs://<bucket>/<parts...>``."""
        return "/".join([f"gs://{self.bucket}", *parts])

    def client(self) -> storage.Client:
        """google-cloud-storage's own client: a second, independent reader and writer."""
        return storage.Client(
            project="test",
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": self.endpoint_url},
        )

    def object_names(self, prefix: str) -> list[str]:
        return sorted(blob.name for blob in self.client().list_blobs(self.bucket, prefix=prefix))


_UNCONDITIONAL_INSERT = emulator_objects.insert
_PRECONDITION_LOCK = threading.Lock()


def _insert_honouring_generation_match(request, response, storage, *args, **kwargs):  # noqa: ANN001, ANN202
    """Object uploads with ``ifGenerationMatch`` answered as GCS does (412 when the object
    is at another generation, 0 meaning absent): the emulator ignores the precondition, and
    the pointer's compare-and-swap is what the tests must prove."""
    wanted = request.query.get("ifGenerationMatch")
    if not wanted:
        return _UNCONDITIONAL_INSERT(request, response, storage, *args, **kwargs)
    query_name = request.query.get("name")
    name = query_name[0] if query_name else request.data["meta"].get("name")
    with _PRECONDITION_LOCK:
        try:
            current = str(storage.get_file_obj(request.params["bucket_name"], name)["generation"])
        except NotFound:
            current = "0"
        if current != wanted[0]:
            response.status = HTTPStatus.PRECONDITION_FAILED
            response.json(
                {
                    "error": {
                        "code": 412,
                        "message": "At least one of the pre-conditions you specified did not hold.",
                        "errors": [{"reason": "conditionNotMet"}],
                    }
                }
            )
            return None
        return _UNCONDITIONAL_INSERT(request, response, storage, *args, **kwargs)


emulator_objects.insert = _insert_honouring_generation_match
for _route, _methods in emulator_server.HANDLERS:
    for _method, _handler in list(_methods.items()):
        if _handler is _UNCONDITIONAL_INSERT:
            _methods[_method] = _insert_honouring_generation_match


@contextmanager
def running_gcs_emulator(bucket: str = "taxi-artifacts") -> Iterator[GcsEmulator]:
    """The emulator on a free loopback port with ``bucket`` created; stopped on exit.

    ``STORAGE_EMULATOR_HOST`` is set meanwhile (and restored after), as google-cloud-storage
    and gcsfs read it; our resources get the endpoint explicitly all the same.
    """
    port = free_port()
    server = create_server(LOOPBACK, port, in_memory=True, default_bucket=bucket)
    server.start()
    endpoint_url = f"http://{LOOPBACK}:{port}"
    previous = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = endpoint_url
    try:
        yield GcsEmulator(endpoint_url=endpoint_url, bucket=bucket)
    finally:
        server.stop()
        if previous is None:
            os.environ.pop("STORAGE_EMULATOR_HOST", None)
        else:
            os.environ["STORAGE_EMULATOR_HOST"] = previous


@dataclass
class TokenEndpoint:
    """An OAuth token endpoint on loopback that grants any signed assertion it receives."""

    url: str
    access_token: str = "loopback-access-token"
    assertions: list[str] = field(default_factory=list)


@contextmanager
def loopback_token_endpoint() -> Iterator[TokenEndpoint]:
    port = free_port()
    endpoint = TokenEndpoint(url=f"http://{LOOPBACK}:{port}/token")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
            endpoint.assertions.extend(parse_qs(body).get("assertion", []))
            payload = json.dumps(
                {"access_token": endpoint.access_token, "expires_in": 3600, "token_type": "Bearer"}
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((LOOPBACK, port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield endpoint
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@dataclass(frozen=True)
class ServiceAccountKey:
    info: dict[str, str]
    public_pem: bytes

    @property
    def encoded(self) -> str:
        """The key file base64-encoded, as the credentials environment variable holds it."""
        return base64.b64encode(json.dumps(self.info).encode()).decode()


def service_account_key(token_uri: str, email: str = "writer@test.iam") -> ServiceAccountKey:
    """A freshly generated service-account key whose tokens come from ``token_uri``."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    info = {
        "type": "service_account",
        "project_id": "test",
        "private_key_id": "test-key",
        "private_key": private_pem,
        "client_email": email,
        "client_id": "1",
        "token_uri": token_uri,
    }
    return ServiceAccountKey(info=info, public_pem=public_pem)
