"""Google Cloud clients for every GCP service spotctl uses (Compute Engine in clouds/gcp.py,
Cloud Storage in storage/gcs.py), and where their credentials and project come from.

One place decides what every GCP call may cost and whom it talks to:
- credentials and project: Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS,
  gcloud's ADC file, a GCE service account), the project overridable in settings; with an
  endpoint override (the lab's fake GCE / fake-gcs-server) anonymous credentials instead;
- a time-out per call (CALL_TIMEOUT_S) well under activities/cloud_calls.CLOUD_CALL_TIMEOUT_S,
  and no library retry: spotctl's policy retries, with the error's kind in hand.

`credentials_missing` answers from local facts only (files, variables, "is this a GCE VM?"):
google.auth.default() would otherwise probe the metadata server over the network on every
laptop without GCP credentials, which costs seconds at every launch.
Clients are cached per (kind, endpoint, project); they are thread-safe.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from spotctl.config import Settings

__all__ = ["CALL_TIMEOUT_S", "GcpCredentialsMissing", "compute_client", "credentials_missing", "forget_clients",
           "gcp_credentials", "gcp_project", "storage_client"]

CALL_TIMEOUT_S = 8.0
"""Per HTTP call; activities/cloud_calls.py abandons a cloud call after 10 s."""
LAB_PROJECT = "spotctl-lab"
"""The project an emulator is asked about when none is configured."""
SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
NO_CREDENTIALS = ("no GCP credentials found (run `gcloud auth application-default login`, or set "
                  "GOOGLE_APPLICATION_CREDENTIALS to a service account key file)")
NO_PROJECT = ("no GCP project set (set `gcp.project` in config.yaml, SPOTCTL_GCP_PROJECT or GOOGLE_CLOUD_PROJECT, "
              "or `gcloud config set project`)")

_lock = threading.Lock()
_auth: dict[str | None, tuple[Any, str | None]] = {}
_clients: dict[tuple[str, str | None, str], Any] = {}


class GcpCredentialsMissing(Exception):
    """No usable credentials or project; the message says how to fix it."""


def _adc_file() -> Path:
    config_dir = os.environ.get("CLOUDSDK_CONFIG") or str(Path.home() / ".config" / "gcloud")
    return Path(config_dir) / "application_default_credentials.json"


def _on_gce() -> bool:
    """Whether this machine is a GCE VM (its service account is the credential), without
    asking the network: GCE sets the DMI product name."""
    try:
        return Path("/sys/class/dmi/id/product_name").read_text().strip().startswith("Google")
    except OSError:
        return False


def _emulated(settings: Settings) -> bool:
    return bool(settings.gcp.compute_endpoint or settings.gcp.storage_endpoint)


def credentials_missing(settings: Settings) -> str | None:
    """None when credentials can be found, else one line saying how to get some. Local facts
    only (no API call); `GcpCloud.check(verify=True)` proves them with one call."""
    if _emulated(settings):
        return None
    key_file = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    if key_file:
        return None if Path(key_file).is_file() else f"GOOGLE_APPLICATION_CREDENTIALS names no file: {key_file}"
    if _adc_file().is_file() or _on_gce():
        return None
    return NO_CREDENTIALS


def gcp_credentials(settings: Settings) -> tuple[Any, str | None]:
    """(credentials, project) from ADC, cached per process; anonymous for an emulator."""
    if _emulated(settings):
        from google.auth.credentials import AnonymousCredentials

        return AnonymousCredentials(), settings.gcp.project or LAB_PROJECT
    missing = credentials_missing(settings)
    if missing:
        raise GcpCredentialsMissing(missing)
    with _lock:
        if None not in _auth:
            import google.auth
            from google.auth.exceptions import DefaultCredentialsError

            try:
                _auth[None] = google.auth.default(scopes=SCOPES)
            except DefaultCredentialsError as exc:
                raise GcpCredentialsMissing(f"{NO_CREDENTIALS}: {exc}") from exc
        creds, project = _auth[None]
    return creds, settings.gcp.project or os.environ.get("GOOGLE_CLOUD_PROJECT") or project


def gcp_project(settings: Settings) -> str:
    """The project calls are made in; raises GcpCredentialsMissing when none is known."""
    _, project = gcp_credentials(settings)
    if not project:
        raise GcpCredentialsMissing(NO_PROJECT)
    return project


def compute_client(settings: Settings, kind: str) -> Any:
    """A cached google-cloud-compute REST client: `kind` is a class name of compute_v1
    ("InstancesClient", "ZoneOperationsClient", ...)."""
    endpoint = settings.gcp.compute_endpoint
    key = (kind, endpoint, settings.gcp.project or "")
    with _lock:
        client = _clients.get(key)
    if client is not None:
        return client
    from google.api_core.client_options import ClientOptions
    from google.cloud import compute_v1

    creds, _ = gcp_credentials(settings)
    options = ClientOptions(api_endpoint=endpoint) if endpoint else None
    client = getattr(compute_v1, kind)(credentials=creds, client_options=options, transport="rest")
    with _lock:
        return _clients.setdefault(key, client)


def storage_client(settings: Settings) -> Any:
    """A cached google-cloud-storage client (the lab's fake-gcs-server when configured)."""
    endpoint = settings.gcp.storage_endpoint
    key = ("storage", endpoint, settings.gcp.project or "")
    with _lock:
        client = _clients.get(key)
    if client is not None:
        return client
    from google.cloud import storage  # type: ignore[attr-defined]  # a namespace package mypy cannot see into

    creds, project = gcp_credentials(settings)
    options = {"api_endpoint": endpoint} if endpoint else None
    client = storage.Client(project=project or LAB_PROJECT, credentials=creds, client_options=options)
    with _lock:
        return _clients.setdefault(key, client)


def forget_clients() -> None:
    """Drop cached credentials and clients (tests that change credentials or endpoints)."""
    with _lock:
        _auth.clear()
        _clients.clear()
