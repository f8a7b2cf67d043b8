"""boto3 clients for every AWS service spotctl uses (EC2 in clouds/aws.py, S3 in storage/s3.py).

One place decides what every AWS call may cost: a connect and read time-out well under the
activities' heartbeat time-out (a hung call must not look like a dead worker), botocore's
"standard" retry mode with few attempts (spotctl's own policy retries beyond that, with the
error's kind in hand), and the endpoint override of the lab (moto).

Credentials and the default region come from boto3's usual chain; nothing here stores them.
Clients are thread-safe and cached per (service, region): activities call them from threads.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

import boto3
from botocore.config import Config as BotoConfig

from spotctl.config import Settings

CONNECT_TIMEOUT_S = 3.0
READ_TIMEOUT_S = 4.0
"""botocore retries a time-out too, so MAX_ATTEMPTS x READ_TIMEOUT_S stays under
activities/cloud_calls.CLOUD_CALL_TIMEOUT_S (10 s): botocore gives up first and says why,
instead of the call being abandoned."""
MAX_ATTEMPTS = 2
"""botocore's own tries per call (its 'standard' mode retries throttling and 5xx); spotctl's
policy decides about the rest with the error in hand."""

_lock = threading.Lock()
_sessions: dict[tuple[str | None, str | None], boto3.session.Session] = {}
_clients: dict[tuple[str, str, str | None], Any] = {}
_forgetters: list[Callable[[], None]] = []
"""Caches built on these clients (aws_node_creds' credentials), dropped with them."""


def _session(settings: Settings) -> boto3.session.Session:
    key = (os.environ.get("AWS_PROFILE"), settings.aws.endpoint_url)
    if key not in _sessions:
        _sessions[key] = boto3.session.Session()
    return _sessions[key]


def aws_client(settings: Settings, service: str, region: str, endpoint_url: str | None = None) -> Any:
    """A cached boto3 client for `service` in `region`, with spotctl's time-outs (at
    `endpoint_url` if given, else settings.aws.endpoint_url)."""
    endpoint = endpoint_url or settings.aws.endpoint_url
    key = (service, region, endpoint)
    with _lock:
        client = _clients.get(key)
        if client is None:
            config = BotoConfig(
                connect_timeout=CONNECT_TIMEOUT_S,
                read_timeout=READ_TIMEOUT_S,
                retries={"mode": "standard", "total_max_attempts": MAX_ATTEMPTS},
                user_agent_extra="spotctl",
            )
            client = _session(settings).client(service, region_name=region, endpoint_url=endpoint,
                                               config=config)
            _clients[key] = client
        return client


def has_credentials(settings: Settings) -> bool:
    """Whether boto3's chain finds any credentials (no API call; `check` validates them)."""
    with _lock:
        return _session(settings).get_credentials() is not None


def on_forget(forget: Callable[[], None]) -> None:
    """Have forget_clients drop a cache built on these clients too; the module that keeps it
    registers it, so this one imports none of them (a cache never made needs no dropping)."""
    _forgetters.append(forget)


def forget_clients() -> None:
    """Drop cached sessions and clients, and the nodes' scoped credentials issued with them
    (tests that change credentials or endpoints)."""
    with _lock:
        _sessions.clear()
        _clients.clear()
    for forget in _forgetters:
        forget()
