"""What a Compute Engine error means to spotctl: tables from GCE's error codes and reasons to
(kind, scope), for both ways GCE fails a call.

- Synchronously: an HTTP error (google.api_core exception) whose `errors[].reason` says why
  (quotaExceeded, rateLimitExceeded, notFound ...).
- Asynchronously: the call's operation ends DONE with `error.errors[].code`
  (ZONE_RESOURCE_POOL_EXHAUSTED: no capacity of the type in the zone now; QUOTA_EXCEEDED ...).
  An insert is accepted at once and fails seconds later this way; that is GCE's usual
  "no capacity".

policy/failures.py turns kind and scope into a decision, as for AWS (clouds/aws_errors.py).
Rate limits are per project, so a throttled call says the same of every region: scope CLOUD.
"""

from __future__ import annotations

from collections.abc import Iterable

from spotctl.clouds.base import CloudError, NoCapacity, Throttled
from spotctl.models import ErrorKind, ErrorScope

K, S = ErrorKind, ErrorScope

OPERATION_CODES: dict[str, tuple[ErrorKind, ErrorScope]] = {
    "ZONE_RESOURCE_POOL_EXHAUSTED": (K.CAPACITY, S.ZONE),
    "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS": (K.CAPACITY, S.ZONE),
    "RESOURCE_POOL_EXHAUSTED": (K.CAPACITY, S.ZONE),
    "VM_MIN_COUNT_NOT_REACHED": (K.CAPACITY, S.ZONE),
    "QUOTA_EXCEEDED": (K.QUOTA, S.REGION),
    "RESOURCE_OPERATION_RATE_EXCEEDED": (K.THROTTLED, S.CLOUD),
    "RATE_LIMIT_EXCEEDED": (K.THROTTLED, S.CLOUD),
    "RESOURCE_NOT_FOUND": (K.INVALID, S.ZONE),  # e.g. the GPU type is not sold in this zone
    "UNSUPPORTED_OPERATION": (K.INVALID, S.ZONE),
    "INVALID_FIELD_VALUE": (K.INVALID, S.ZONE),
    "CONDITION_NOT_MET": (K.INVALID, S.ZONE),
    "PERMISSIONS_ERROR": (K.INVALID, S.CLOUD),
    "INTERNAL_ERROR": (K.UNAVAILABLE, S.REQUEST),
}

REASONS: dict[str, tuple[ErrorKind, ErrorScope]] = {
    "quotaExceeded": (K.QUOTA, S.REGION),
    "resourceExhausted": (K.CAPACITY, S.ZONE),  # a stock-out answered at once (503): nothing was made
    "rateLimitExceeded": (K.THROTTLED, S.CLOUD),
    "userRateLimitExceeded": (K.THROTTLED, S.CLOUD),
    "resourceNotReady": (K.UNAVAILABLE, S.REQUEST),
    "backendError": (K.UNAVAILABLE, S.REQUEST),
    "accessNotConfigured": (K.INVALID, S.CLOUD),  # the Compute Engine API is not enabled
    "forbidden": (K.INVALID, S.CLOUD),
    "authError": (K.INVALID, S.CLOUD),
    "notFound": (K.INVALID, S.ZONE),  # zone, machine type or image unknown there
    "invalid": (K.INVALID, S.ZONE),
    "badRequest": (K.INVALID, S.ZONE),
}

ALL_REGIONS_QUOTA = "ALL_REGIONS"
"""A quota named ..._ALL_REGIONS (GPUS_ALL_REGIONS) holds for the whole project."""


def _quota_scope(kind: ErrorKind, scope: ErrorScope, message: str) -> tuple[ErrorKind, ErrorScope]:
    if kind == K.QUOTA and ALL_REGIONS_QUOTA in message:
        return kind, S.CLOUD
    return kind, scope


def classify_operation(code: str, message: str = "") -> tuple[ErrorKind, ErrorScope]:
    """(kind, scope) of an operation's error code; unknown codes are INVALID for the zone."""
    kind, scope = OPERATION_CODES.get(code, (K.INVALID, S.ZONE))
    return _quota_scope(kind, scope, message)


def _reasons(exc: BaseException) -> list[str]:
    out = []
    for err in getattr(exc, "errors", None) or []:
        if isinstance(err, dict) and err.get("reason"):
            out.append(str(err["reason"]))
    reason = getattr(exc, "reason", None)
    if reason:
        out.append(str(reason))
    return out


def classify(exc: BaseException) -> tuple[ErrorKind, ErrorScope]:
    """(kind, scope) of an exception out of google-cloud-compute or google-auth."""
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as auth_exc

    if isinstance(exc, gexc.GoogleAPICallError):
        for reason in _reasons(exc):
            if reason in REASONS:
                return _quota_scope(*REASONS[reason], str(exc))
        status = int(exc.code or 0)
        if status == 429:
            return K.THROTTLED, S.CLOUD
        if status in (401, 403):
            return K.INVALID, S.CLOUD
        if status >= 500 or status == 0:
            return K.UNAVAILABLE, S.REQUEST
        return K.INVALID, S.ZONE
    if isinstance(exc, auth_exc.RefreshError | auth_exc.DefaultCredentialsError):
        return K.INVALID, S.CLOUD
    return K.UNAVAILABLE, S.REQUEST  # transport errors, time-outs: the call may have happened


def make_error(kind: ErrorKind, scope: ErrorScope, message: str) -> CloudError:
    if kind in (K.CAPACITY, K.QUOTA, K.PRICE):
        return NoCapacity(message, kind=kind, scope=scope)
    if kind == K.THROTTLED:
        return Throttled(message, kind=kind, scope=scope)
    return CloudError(message, kind=kind, scope=scope)


def to_cloud_error(exc: BaseException, where: str) -> CloudError:
    """The CloudError for an exception of a GCP call at `where`."""
    from google.api_core import exceptions as gexc

    kind, scope = classify(exc)
    if isinstance(exc, gexc.GoogleAPICallError):
        reasons = ", ".join(_reasons(exc))
        message = f"gcp {where}: {exc.code} {reasons + ': ' if reasons else ''}{exc.message}"
    else:
        message = f"gcp {where}: {type(exc).__name__}: {exc}"
    return make_error(kind, scope, message)


def operation_error(errors: Iterable[object], where: str) -> CloudError:
    """The CloudError for a failed operation's `error.errors` (the first one decides)."""
    first = next(iter(errors), None)
    code = str(getattr(first, "code", "") or "UNKNOWN")
    message = str(getattr(first, "message", "") or "")
    kind, scope = classify_operation(code, message)
    return make_error(kind, scope, f"gcp {where}: {code}: {message}")


def gcp_errors() -> tuple[type[BaseException], ...]:
    """What a google-cloud-compute call raises; everything else is a bug and propagates."""
    import requests
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as auth_exc

    return (gexc.GoogleAPIError, auth_exc.GoogleAuthError, requests.RequestException)
