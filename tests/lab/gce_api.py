"""The shapes of Compute Engine's API that the fake GCE (fake_gce.py) answers in: zones, error
bodies, what an insert must carry, `filter` expressions and page tokens.

Errors are GCE-shaped (`{"error": {"code", "message", "errors": [{"reason", ...}]}}`), so the
client's google.api_core.exceptions.from_http_response raises the right class (NotFound,
Conflict, Forbidden, TooManyRequests, BadRequest) with `exc.errors[0]["reason"]` set. Only some
real GCE errors also carry a google.rpc.ErrorInfo (then `exc.reason` is set too): here the
rate-limit one.

Filters: only the subset spotctl uses is understood, and anything else is refused with a
FilterError (the fake answers 400), never read as "match all": a filter the fake silently
ignored would let a production bug (say, listing every instance of the project and tearing
them all down) pass the lab unseen.
  expr := term (AND term)* ;  term := "(" expr ")" | FIELD ("=" | "!=") VALUE | FIELD ":*"
FIELD is a dotted path whose first part the resource knows (`labels.KEY`, `status`, ...);
VALUE is "double quoted", 'single quoted' or a bare word.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

BASE = "https://www.googleapis.com/compute/v1"
ZONES = ("us-central1-a", "us-central1-b", "us-central1-c", "us-central1-f", "us-east1-b", "us-east1-c",
         "us-east1-d", "us-west1-a", "us-west1-b", "europe-west4-a", "europe-west4-b", "europe-west4-c",
         "asia-east1-a", "asia-east1-b")
INSTANCE_FIELDS = ("name", "status", "id", "zone", "machineType", "labels", "scheduling", "creationTimestamp",
                   "description", "selfLink")
OPERATION_FIELDS = ("name", "operationType", "status", "targetId", "targetLink", "user", "zone", "id")
KEPT_FIELDS = ("name", "description", "machineType", "labels", "metadata", "scheduling", "guestAccelerators",
               "disks", "networkInterfaces", "serviceAccounts", "tags", "minCpuPlatform")
"""Instance body fields kept from an insert and echoed back; everything else is dropped."""
NAME = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
LABEL_KEY, LABEL_VALUE = re.compile(r"^[a-z][a-z0-9_-]{0,62}$"), re.compile(r"^[a-z0-9_-]{0,63}$")
ALIVE = ("PROVISIONING", "STAGING", "RUNNING", "STOPPING")
CAPACITY = ("The zone 'projects/{project}/zones/{zone}' does not have enough resources available to fulfill "
            "the request.  Try a different zone, or try again later.")
INSERT_ERRORS: dict[str, tuple[int, str, str]] = {
    "ZONE_RESOURCE_POOL_EXHAUSTED": (503, "resourceExhausted", CAPACITY),
    "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS": (503, "resourceExhausted", CAPACITY),
    "QUOTA_EXCEEDED": (403, "quotaExceeded", "Quota 'NVIDIA_T4_GPUS' exceeded. Limit: 0.0 in region {region}."),
}
"""code -> (HTTP status when answered synchronously, legacy reason, message template)."""


class GceError(Exception):
    """An API error as GCE words it: HTTP status, legacy `errors[0].reason`, message, and an
    optional google.rpc.ErrorInfo reason (only some GCE errors carry one)."""

    def __init__(self, status: int, reason: str, message: str, info_reason: str | None = None) -> None:
        super().__init__(message)
        self.status, self.reason, self.message, self.info_reason = status, reason, message, info_reason

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.status, "message": self.message,
                                 "errors": [{"message": self.message, "domain": "global", "reason": self.reason}]}
        if self.info_reason:
            error["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": self.info_reason,
                                 "domain": "googleapis.com", "metadata": {"service": "compute.googleapis.com"}}]
        return {"error": error}


def not_found(what: str) -> GceError:
    return GceError(404, "notFound", f"The resource '{what}' was not found")


def invalid(field_name: str, value: Any, why: str = "") -> GceError:
    return GceError(400, "invalid", f"Invalid value for field '{field_name}': '{value}'. {why}".strip())


def region_of(zone: str) -> str:
    return zone.rsplit("-", 1)[0]


def zone_body(project: str, zone: str) -> dict[str, Any]:
    return {"kind": "compute#zone", "id": str(2000 + ZONES.index(zone)), "name": zone, "status": "UP",
            "region": f"{BASE}/projects/{project}/regions/{region_of(zone)}",
            "selfLink": f"{BASE}/projects/{project}/zones/{zone}", "availableCpuPlatforms": ["Intel Cascade Lake"]}


def region_body(project: str, region: str) -> dict[str, Any]:
    """A minimal Region (its zones and a couple of quotas), or 404 for one the fake lacks."""
    zones = [z for z in ZONES if region_of(z) == region]
    if not zones:
        raise not_found(f"projects/{project}/regions/{region}")
    return {"kind": "compute#region", "id": str(1000 + sorted({region_of(z) for z in ZONES}).index(region)),
            "name": region, "status": "UP", "selfLink": f"{BASE}/projects/{project}/regions/{region}",
            "zones": [f"{BASE}/projects/{project}/zones/{z}" for z in zones],
            "quotas": [{"metric": "CPUS", "limit": 24.0, "usage": 0.0},
                       {"metric": "NVIDIA_T4_GPUS", "limit": 4.0, "usage": 0.0}]}


def now() -> str:
    """RFC3339, as GCE's timestamps."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def validate_instance(project: str, zone: str, body: dict[str, Any]) -> dict[str, Any]:
    """The kept part of an insert body, with GCE's defaults filled in, or 400."""
    name = body.get("name", "")
    if not NAME.match(name):
        raise invalid("resource.name", name, "Must be a match of regex '(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)'")
    for key, value in (body.get("labels") or {}).items():
        if not LABEL_KEY.match(key) or not LABEL_VALUE.match(value):
            raise invalid("resource.labels", f"{key}={value}", "Label keys and values must be lowercase.")
    machine = body.get("machineType", "")
    if not machine:
        raise invalid("resource.machineType", "", "Machine type must be specified.")
    if not body.get("disks"):
        raise invalid("resource.disks", "", "Boot disk must be specified.")
    kept = {k: body[k] for k in KEPT_FIELDS if k in body}
    kept["machineType"] = machine if machine.startswith("https://") else \
        f"{BASE}/projects/{project}/zones/{zone}/machineTypes/{machine.rsplit('/', 1)[-1]}"
    sched = kept.setdefault("scheduling", {})
    spot = sched.setdefault("provisioningModel", "STANDARD") == "SPOT"
    sched.setdefault("onHostMaintenance", "TERMINATE" if spot else "MIGRATE")
    sched.setdefault("automaticRestart", not spot)
    if spot:
        sched.setdefault("instanceTerminationAction", "STOP")  # GCE's default for Spot VMs
        if sched["automaticRestart"]:
            raise invalid("resource.scheduling.automaticRestart", True, "Spot VMs cannot restart automatically.")
    if body.get("guestAccelerators") and sched["onHostMaintenance"] == "MIGRATE":
        raise invalid("resource.scheduling.onHostMaintenance", "MIGRATE",
                      "Instances with guest accelerators do not support live migration.")
    return kept



Predicate = Callable[[dict[str, Any]], bool]

_TOKEN = re.compile(r"""\s*(?:(?P<paren>[()])|(?P<op>!=|=|:\*)|"(?P<dq>[^"]*)"|'(?P<sq>[^']*)'|(?P<word>[^\s()=!:"']+))""")


class FilterError(ValueError):
    """A filter the fake does not understand; the API answers 400 invalid."""


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise FilterError(f"Invalid list filter expression '{text}' (at {pos}).")
        kind = m.lastgroup or ""
        out.append(("value" if kind in ("dq", "sq") else kind, m.group(kind)))
        pos = m.end()
    return out


def _lookup(resource: dict[str, Any], path: str) -> Any:
    value: Any = resource
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def parse_filter(text: str | None, fields: Iterable[str]) -> Predicate:
    """A predicate over the resource's JSON dict, or FilterError. `fields` are the top-level
    names the resource may be filtered on."""
    if not text or not text.strip():
        return lambda r: True
    known = set(fields)
    toks = _tokens(text)
    pos = 0

    def peek() -> tuple[str, str] | None:
        return toks[pos] if pos < len(toks) else None

    def take(kind: str | None = None) -> tuple[str, str]:
        nonlocal pos
        tok = peek()
        if tok is None or (kind is not None and tok[0] != kind):
            raise FilterError(f"Invalid list filter expression '{text}': expected {kind or 'more'} at token {pos}.")
        pos += 1
        return tok

    def term() -> Predicate:
        if peek() == ("paren", "("):
            take()
            inner = expr()
            if take("paren")[1] != ")":
                raise FilterError(f"Invalid list filter expression '{text}': unbalanced parentheses.")
            return inner
        field = take("word")[1]
        if field.upper() in ("AND", "OR", "NOT") or field.split(".")[0] not in known:
            raise FilterError(f"Invalid field name '{field}' in list filter expression '{text}'.")
        op = take("op")[1]
        if op == ":*":
            return lambda r: _lookup(r, field) is not None
        kind, value = take()
        if kind not in ("value", "word"):
            raise FilterError(f"Invalid list filter expression '{text}': expected a value after {field} {op}.")
        if op == "=":
            return lambda r: str(_lookup(r, field)) == value
        return lambda r: str(_lookup(r, field)) != value

    def expr() -> Predicate:
        parts = [term()]
        while peek() is not None and peek() != ("paren", ")"):
            word = take("word")[1]
            if word != "AND":
                raise FilterError(f"the fake GCE supports only AND between terms, not {word!r}, in '{text}'.")
            parts.append(term())
        return lambda r: all(p(r) for p in parts)

    predicate = expr()
    if pos != len(toks):
        raise FilterError(f"Invalid list filter expression '{text}': unexpected {toks[pos][1]!r}.")
    return predicate


def page(items: list[Any], query: dict[str, str], default_size: int) -> tuple[list[Any], str | None]:
    """One page of `items` per maxResults/pageToken, and the token of the next page (or None).
    Tokens are opaque base64 offsets, like GCE's are opaque to clients."""
    try:
        size = int(query.get("maxResults") or default_size)
        start = int(base64.urlsafe_b64decode(query["pageToken"]).decode()) if query.get("pageToken") else 0
    except ValueError as exc:
        raise FilterError(f"Invalid value for maxResults or pageToken: {exc}") from exc
    if not 0 < size <= 500:
        raise FilterError(f"Invalid value for field 'maxResults': '{size}'. Must be between 0 and 500.")
    end = start + size
    token = base64.urlsafe_b64encode(str(end).encode()).decode() if end < len(items) else None
    return items[start:end], token
