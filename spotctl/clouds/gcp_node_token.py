"""Downscoped GCS access tokens for a node: one bucket prefix, object use only, about an hour.

A VM keeping a GCS bucket in step (MOUNT, MOUNT_CACHED) needs a token, and the job's program
can read whatever the VM holds. The worker's own token (its ADC, cloud-platform scope) would
give the program the worker's whole reach, so the node gets a token downscoped with a
Credential Access Boundary (Google's STS token exchange): at most roles/storage.objectAdmin
on the mount's bucket, and with a prefix only on objects under it and listings of it. The
boundary only narrows: the effective rights are the intersection with the worker's own.

A downscoped token lives as long as the source token did (an hour at most); the worker renews
it in sync.json while a phase runs (activities/node_credentials.py). Tokens are cached per
(bucket, prefix) while they have `min_left` to live, so every node of a cluster shares one.
"""

from __future__ import annotations

import datetime
import threading
from typing import Any

CACHE_MAX = 1024
TOKEN_EXCHANGE_URL: str | None = None
"""Google's STS token endpoint when None (sts.googleapis.com); the lab points it at a local
stand-in, as fake-gcs-server has no token exchange."""

_lock = threading.Lock()
_cache: dict[tuple[str, str], Any] = {}


def boundary_rules(bucket: str, prefix: str) -> list[dict[str, Any]]:
    """The Credential Access Boundary rules (STS's JSON form) of one mount."""
    rule: dict[str, Any] = {"availableResource": f"//storage.googleapis.com/projects/_/buckets/{bucket}",
                            "availablePermissions": ["inRole:roles/storage.objectAdmin"]}
    if prefix:
        quoted = prefix.replace("\\", "\\\\").replace("'", "\\'")
        rule["availabilityCondition"] = {"title": "the mount's prefix", "expression": (
            f"resource.name.startsWith('projects/_/buckets/{bucket}/objects/{quoted}/') || "
            f"api.getAttribute('storage.googleapis.com/objectListPrefix', '').startsWith('{quoted}')")}
    return [rule]


def _downscoped(source: Any, bucket: str, prefix: str) -> Any:
    from google.auth import downscoped
    from google.oauth2 import sts

    rules = []
    for r in boundary_rules(bucket, prefix):
        cond = r.get("availabilityCondition")
        rules.append(downscoped.AccessBoundaryRule(
            available_resource=r["availableResource"], available_permissions=r["availablePermissions"],
            availability_condition=downscoped.AvailabilityCondition(cond["expression"], title=cond["title"])
            if cond else None))
    creds = downscoped.Credentials(source_credentials=source,
                                   credential_access_boundary=downscoped.CredentialAccessBoundary(rules=rules))
    if TOKEN_EXCHANGE_URL:
        creds._sts_client = sts.Client(TOKEN_EXCHANGE_URL)  # noqa: SLF001 - no public knob for the endpoint
    return creds


def downscoped_token(source: Any, bucket: str, prefix: str, request: Any,
                     min_left: datetime.timedelta) -> tuple[str, datetime.datetime | None]:
    """(token, expiry as naive UTC) reaching only `prefix` of `bucket`, with at least
    `min_left` to live. Raises google.auth's RefreshError/OAuthError when STS refuses."""
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)  # google-auth: naive UTC
    with _lock:
        creds = _cache.get((bucket, prefix))
        if creds is None or creds._source_credentials is not source:  # noqa: SLF001
            creds = _downscoped(source, bucket, prefix)
        if not creds.token or creds.expiry is None or creds.expiry - now < min_left:
            creds.refresh(request)
        for k in [k for k, c in _cache.items() if c.expiry is not None and c.expiry <= now]:
            del _cache[k]
        while len(_cache) >= CACHE_MAX and (bucket, prefix) not in _cache:
            del _cache[next(iter(_cache))]
        _cache[(bucket, prefix)] = creds
        return creds.token, creds.expiry


def forget() -> None:
    """Drop cached tokens (tests)."""
    with _lock:
        _cache.clear()
