"""Where a resource's files live: a local folder or a GCS bucket, as one UPath.

The IO manager, ``StoredPartitions`` and ``ArtifactStore`` all take the same three settings
(``base_dir``, ``gcs_credentials``, ``gcs_endpoint_url``) and turn them into a root path here,
so the storage code above them is the same for a folder and for a bucket.

``gcs_credentials`` is a base64-encoded service-account JSON key (a writer limited to the
artifact bucket), supplied through an environment variable with ``dg.EnvVar`` so the UI and
the event log show the variable's name, never its value. Without it, gcsfs uses Application
Default Credentials (e.g. GKE workload identity). ``gcs_endpoint_url`` points at an emulator
in tests and stays unset in production.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
from typing import Any

import fsspec
from google.oauth2 import service_account
from upath import UPath

GCS_PROTOCOLS = frozenset({"gs", "gcs"})
CREDENTIALS_SETTING = "gcs_credentials"
ENDPOINT_SETTING = "gcs_endpoint_url"

# The fields google-auth needs to sign a token request with a service-account key.
REQUIRED_KEY_FIELDS = ("type", "client_email", "private_key", "token_uri")

CREDENTIALS_DESCRIPTION = (
    "Base64-encoded service-account JSON key for gs:// paths (pass it as dg.EnvVar so the "
    "value never shows). Unset: Application Default Credentials."
)
ENDPOINT_DESCRIPTION = "GCS endpoint for an emulator (tests only); unset in production."


class StorageSettingError(ValueError):
    """A storage setting is malformed; the message names the setting, never its value."""


def decode_service_account_key(encoded: str) -> dict[str, Any]:
    """The service-account key in ``gcs_credentials``, checked to be usable for signing.

    Errors are raised ``from None``: a chained decoding error could quote the secret.
    """
    try:
        # `base64 file.json` wraps its output at 76 columns; the line breaks are not data.
        info = json.loads(base64.b64decode("".join(encoded.split()), validate=True))
    except (binascii.Error, ValueError):
        raise StorageSettingError(
            f"{CREDENTIALS_SETTING}: not a base64-encoded JSON document (the value is not "
            "shown); encode the service-account key file with `base64 -w0 key.json`"
        ) from None
    if not isinstance(info, dict):
        raise StorageSettingError(
            f"{CREDENTIALS_SETTING}: the decoded JSON is not an object, so not a "
            "service-account key (the value is not shown)"
        )
    missing = [field for field in REQUIRED_KEY_FIELDS if not info.get(field)]
    if missing:
        raise StorageSettingError(
            f"{CREDENTIALS_SETTING}: the service-account key lacks {', '.join(missing)} "
            "(the value is not shown)"
        )
    if info["type"] != "service_account":
        raise StorageSettingError(
            f"{CREDENTIALS_SETTING}: expected a key of type 'service_account', got another type "
            "(the value is not shown)"
        )
    try:
        service_account.Credentials.from_service_account_info(info)
    except Exception:  # noqa: BLE001 - google-auth and cryptography raise several types
        raise StorageSettingError(
            f"{CREDENTIALS_SETTING}: the service-account key's private_key cannot be loaded "
            "(the value is not shown)"
        ) from None
    return info


def _check_gcs_filesystem_for_emulator() -> None:
    """Refuse gcsfs's experimental filesystem against an emulator instead of stalling.

    gcsfs 2026.x defaults to ``ExtendedGcsFileSystem``, which asks the Storage Control gRPC
    API for the bucket's layout before reads and writes. An emulator has no such API: each
    probe retries for about a minute and, as a failed probe is not cached, every operation
    stalls again. Real GCS answers it (``storage.objects.list`` is enough).
    """
    import gcsfs.core

    if fsspec.get_filesystem_class("gs") is not gcsfs.core.GCSFileSystem:
        raise StorageSettingError(
            f"{ENDPOINT_SETTING} is set but gcsfs loaded its experimental filesystem, whose "
            "bucket-layout probe stalls against an emulator: set "
            "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false before gcsfs is first imported"
        )


@functools.lru_cache(maxsize=64)
def storage_root(
    base_dir: str, gcs_credentials: str | None = None, gcs_endpoint_url: str | None = None
) -> UPath:
    """``base_dir`` as a UPath carrying the storage options its filesystem needs.

    Cached so that each resource decodes and checks its key once, and paths built from the
    same settings share one gcsfs filesystem (and its access token).
    """
    root = UPath(base_dir)
    if root.protocol not in GCS_PROTOCOLS:
        settings = {CREDENTIALS_SETTING: gcs_credentials, ENDPOINT_SETTING: gcs_endpoint_url}
        set_settings = [name for name, value in settings.items() if value]
        if set_settings:
            raise StorageSettingError(
                f"{' and '.join(set_settings)} only apply to gs:// paths, but base_dir "
                f"{base_dir!r} is not one"
            )
        return root
    options: dict[str, Any] = {
        # Another process (a run, the daemon) may replace the production pointer or add a
        # forecast tick at any time: a cached listing would serve stale sizes and names.
        "use_listings_cache": False,
        # The token's OAuth scope: objects only. gcsfs asks for full_control (bucket and
        # object ACLs) by default, which the writer's IAM role would not grant anyway.
        "access": "read_write",
    }
    if gcs_credentials:
        options["token"] = decode_service_account_key(gcs_credentials)
    elif gcs_endpoint_url:
        # An emulator takes no credentials; Application Default Credentials would look for
        # a metadata server that is not there.
        options["token"] = "anon"
    if gcs_endpoint_url:
        _check_gcs_filesystem_for_emulator()
        options["endpoint_url"] = gcs_endpoint_url
    return UPath(base_dir, **options)
