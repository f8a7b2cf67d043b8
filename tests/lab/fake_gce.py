"""GCP without GCP: a small stateful fake of the Compute Engine REST API (v1), served over HTTP
on 127.0.0.1 for the real google-cloud-compute clients (REST transport) that spotctl uses.

Compute Engine has no emulator, so this plays the part of the few resources spotctl touches:
zonal instances (insert, get, list, aggregatedList, delete, stop, simulateMaintenanceEvent),
zone operations (get, list, wait), regions (get) and zones (list, get). What it answers has GCE's
shapes: decimal string ids (above 2**53, as real ones are), full resource URLs, RFC3339 times,
GCE-shaped error bodies (so google.api_core raises NotFound, Conflict, Forbidden, ...), and
operations for everything that changes state, including the system's own ("preempted").

Tests steer what the API cannot: `preempt`, `host_error`, `fail_inserts` (a stock-out or quota
error in a zone, asynchronous in the operation as GCE reports it, or on the POST itself),
`throttle` (rate limiting), `provisioning_s` (slow boots), and the `on_insert`/`on_power_off`
hooks through which gce_lab.GceFleet boots a fake VM per instance.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import gce_api as api
from gce_api import ALIVE, BASE, ZONES, FilterError, GceError, not_found, now, page, parse_filter, region_of
from gce_firewalls import FirewallsMixin


@dataclass
class _Instance:
    zone: str
    body: dict[str, Any]
    created: float = field(default_factory=time.monotonic)
    ready_at: float = 0.0
    """Monotonic time it turns RUNNING; PROVISIONING, then STAGING, until then."""


@dataclass
class _Operation:
    zone: str
    body: dict[str, Any]
    done_at: float = 0.0


class FakeGce(FirewallsMixin):
    """The fake's state and its HTTP server. All state is behind one lock; hooks run outside it."""

    def __init__(self, projects: tuple[str, ...] = ("spotctl-lab",)) -> None:
        self.projects = projects
        self._lock = threading.RLock()
        self._ids = itertools.count(7_000_000_000_000_000_001)  # above 2**53: a float would garble them
        self._ips = itertools.count(0)
        self._server: ThreadingHTTPServer | None = None
        self.reset()

    # -- test-side API ---------------------------------------------------------------------

    def reset(self) -> None:
        """Forget every instance, operation, request id, injected fault, knob and hook."""
        with self._lock:
            self._instances: dict[tuple[str, str], _Instance] = {}
            self._operations: dict[tuple[str, str], _Operation] = {}
            self._requests: dict[str, tuple[str, str]] = {}
            self._failing: dict[str, tuple[str, bool, str | None, list[int], list[int]]] = {}
            self._throttle: list[Any] = [0, 429]
            self.page_size = 50
            self.provisioning_s = 0.0
            self.requests_seen = 0
            self.on_insert: Callable[[str, dict[str, Any]], str | None] | None = None
            self.on_power_off: Callable[[str, str], None] | None = None
            self._reset_firewalls()

    def instances(self, alive_only: bool = True) -> list[dict[str, Any]]:
        """Instances as the API shows them (TERMINATED ones only with alive_only=False)."""
        with self._lock:
            views = [self._view(i) for i in self._instances.values()]
        return [v for v in views if not alive_only or v["status"] in ALIVE]

    def operations(self, zone: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [self._op_view(o) for o in self._operations.values() if zone in (None, o.zone)]

    def preempt(self, zone: str, name: str) -> None:
        """GCE takes a Spot VM back (what simulateMaintenanceEvent does to one)."""
        self._maintenance(zone, name, host_error=False)

    def host_error(self, zone: str, name: str) -> None:
        """The host fails under any instance: compute.instances.hostError, status TERMINATED."""
        self._maintenance(zone, name, host_error=True)

    def delete_all(self) -> None:
        """Drop every instance at once, without hooks (a lab's clean-up)."""
        with self._lock:
            self._instances.clear()

    @contextmanager
    def fail_inserts(self, zone: str, code: str = "ZONE_RESOURCE_POOL_EXHAUSTED", *, sync: bool = False,
                     message: str | None = None, after: int = 0) -> Iterator[list[int]]:
        """Inserts in `zone` fail with `code`: in the operation's error (as GCE reports a
        stock-out: the POST succeeds, the operation ends DONE with the error, no instance
        remains), or with sync=True as the POST's HTTP error. The first `after` inserts still
        succeed (a stock-out that strikes between two nodes of a cluster). Yields [hits]."""
        hits = [0]
        with self._lock:
            self._failing[zone] = (code, sync, message, hits, [after])
        try:
            yield hits
        finally:
            with self._lock:
                self._failing.pop(zone, None)

    def throttle(self, n: int, status: int = 429) -> None:
        """The next n API requests get `status` (429, or 403 as GCE also does) rateLimitExceeded."""
        assert status in (403, 429)
        with self._lock:
            self._throttle = [n, status]

    # -- server ----------------------------------------------------------------------------

    def start(self) -> str:
        """Serve on 127.0.0.1 (a free port); returns the endpoint URL."""
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the client's session expects
            disable_nagle_algorithm = True  # headers and body go out apart: no 40 ms delayed-ACK stall

            def log_message(self, *args: object) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                url = urlsplit(self.path)
                status, payload = fake.handle(self.command, url.path, dict(parse_qsl(url.query)), raw)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _serve

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, args=(0.05,), name="fake-gce", daemon=True).start()
        return self.endpoint

    @property
    def endpoint(self) -> str:
        assert self._server is not None, "not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    # -- routing ---------------------------------------------------------------------------

    _P = r"/compute/v1/projects/(?P<project>[^/]+)"
    _Z = _P + r"/zones/(?P<zone>[^/]+)"
    ROUTES = [(m, re.compile(p + "$"), h) for m, p, h in (
        ("POST", _Z + r"/instances", "_insert"),
        ("GET", _Z + r"/instances", "_list"),
        ("GET", _Z + r"/instances/(?P<name>[^/]+)", "_get"),
        ("DELETE", _Z + r"/instances/(?P<name>[^/]+)", "_delete"),
        ("POST", _Z + r"/instances/(?P<name>[^/]+)/stop", "_stop"),
        ("POST", _Z + r"/instances/(?P<name>[^/]+)/simulateMaintenanceEvent", "_simulate"),
        ("GET", _P + r"/aggregated/instances", "_aggregated"),
        ("GET", _Z + r"/operations", "_op_list"),
        ("GET", _Z + r"/operations/(?P<op>[^/]+)", "_op_get"),
        ("POST", _Z + r"/operations/(?P<op>[^/]+)/wait", "_op_wait"),
        ("GET", _P + r"/regions/(?P<region>[^/]+)", "_region"),
        ("GET", _P + r"/zones", "_zones"),
        ("GET", _P + r"/global/firewalls/(?P<name>[^/]+)", "_firewall_get"),
        ("POST", _P + r"/global/firewalls", "_firewall_insert"),
        ("GET", _Z, "_zone"),
    )]

    def handle(self, method: str, path: str, query: dict[str, str], raw: bytes) -> tuple[int, dict[str, Any]]:
        """One API request -> (HTTP status, JSON body)."""
        try:
            with self._lock:
                self.requests_seen += 1
                if self._throttle[0] > 0:
                    self._throttle[0] -= 1
                    raise GceError(self._throttle[1], "rateLimitExceeded",
                                   "Quota exceeded for quota metric 'Queries' and limit 'Queries per minute' of "
                                   "service 'compute.googleapis.com' for consumer 'project_number:0'.",
                                   "RATE_LIMIT_EXCEEDED")
            for m, pattern, handler in self.ROUTES:
                match = pattern.match(path)
                if match and m == method:
                    args = match.groupdict()
                    if args.pop("project") not in self.projects:
                        raise not_found(f"projects/{match['project']}")
                    if "zone" in args and args["zone"] not in ZONES:
                        raise (api.invalid("zone", args["zone"], "Unknown zone.") if handler == "_insert"
                               else not_found(f"projects/{match['project']}/zones/{args['zone']}"))
                    body = json.loads(raw) if raw else {}
                    return 200, getattr(self, handler)(match["project"], query=query, body=body, **args)
            raise GceError(501, "notImplemented", f"the fake GCE does not serve {method} {path}")
        except GceError as exc:
            return exc.status, exc.body()
        except FilterError as exc:
            return 400, GceError(400, "invalid", str(exc)).body()
        except Exception as exc:  # a broken hook or a fake bug: say so instead of dropping the connection
            return 500, GceError(500, "backendError", f"fake GCE: {type(exc).__name__}: {exc}").body()

    # -- views -----------------------------------------------------------------------------

    def _url(self, project: str, zone: str, *rest: str) -> str:
        return "/".join((BASE, "projects", project, "zones", zone, *rest))

    def _view(self, inst: _Instance) -> dict[str, Any]:
        """The instance as the API shows it now (PROVISIONING/STAGING while it boots)."""
        view = json.loads(json.dumps(inst.body))
        t = time.monotonic()
        if view["status"] == "RUNNING" and t < inst.ready_at:
            view["status"] = "PROVISIONING" if t < (inst.created + inst.ready_at) / 2 else "STAGING"
        return view

    def _op_view(self, op: _Operation) -> dict[str, Any]:
        view = dict(op.body)
        if time.monotonic() >= op.done_at:
            view.update(status="DONE", progress=100, endTime=view.get("endTime") or op.body["insertTime"])
        else:
            view.update(status="RUNNING", progress=0)
            view.pop("error", None)
            view.pop("httpErrorStatusCode", None)
            view.pop("httpErrorMessage", None)
        return view

    def _record(self, project: str, zone: str, kind: str, target: dict[str, Any], *, done_in: float = 0.0,
                request_id: str | None = None, **extra: Any) -> _Operation:
        """A zone operation on `target` (an instance body, or at least name and id)."""
        name = f"operation-{int(time.time() * 1000)}-{uuid.uuid4().hex[:13]}-{uuid.uuid4().hex[:8]}"
        body = {"kind": "compute#operation", "id": str(next(self._ids)), "name": name, "operationType": kind,
                "zone": f"{BASE}/projects/{project}/zones/{zone}", "targetId": target["id"],
                "targetLink": self._url(project, zone, "instances", target["name"]),
                "selfLink": self._url(project, zone, "operations", name), "user": "lab@spotctl-lab.iam",
                "insertTime": now(), "startTime": now(), **extra}
        op = _Operation(zone, body, time.monotonic() + done_in)
        self._operations[(zone, name)] = op
        if request_id:
            self._requests[request_id] = (zone, name)
        return op

    def _find(self, project: str, zone: str, name: str) -> _Instance:
        inst = self._instances.get((zone, name))
        if inst is None:
            raise not_found(f"projects/{project}/zones/{zone}/instances/{name}")
        return inst

    def _replay(self, query: dict[str, str]) -> dict[str, Any] | None:
        """The operation of an earlier call with the same requestId (GCE's idempotency); GCE
        wants a non-zero UUID there."""
        rid = query.get("requestId", "")
        try:
            valid = not rid or uuid.UUID(rid).int != 0
        except ValueError:
            valid = False
        if not valid:
            raise api.invalid("requestId", rid, "The request ID must be a valid UUID, but not the zero UUID.")
        key = self._requests.get(rid)
        return self._op_view(self._operations[key]) if key else None

    # -- instances -------------------------------------------------------------------------

    def _insert(self, project: str, zone: str, *, query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            if (replay := self._replay(query)) is not None:
                return replay
            kept = api.validate_instance(project, zone, body)
            name = kept["name"]
            if (zone, name) in self._instances:
                raise GceError(409, "alreadyExists",
                               f"The resource 'projects/{project}/zones/{zone}/instances/{name}' already exists")
            target = {"name": name, "id": str(next(self._ids))}
            if zone in self._failing and self._failing[zone][4][0] > 0:
                self._failing[zone][4][0] -= 1
            elif zone in self._failing:
                code, sync, message, hits, _ = self._failing[zone]
                hits[0] += 1
                status, reason, template = api.INSERT_ERRORS.get(code, (400, code, "{code} in zone {zone}"))
                text = message or template.format(project=project, zone=zone, region=region_of(zone), code=code)
                if sync:
                    raise GceError(status, reason, text)
                return self._op_view(self._record(
                    project, zone, "insert", target, done_in=max(self.provisioning_s, 0.1),
                    request_id=query.get("requestId"), error={"errors": [{"code": code, "message": text}]},
                    httpErrorStatusCode=status, httpErrorMessage="SERVICE UNAVAILABLE" if status == 503 else "FORBIDDEN"))
            nics = kept.setdefault("networkInterfaces", [{}])
            nics[0].update(name="nic0", networkIP=f"10.{128 + ZONES.index(zone)}.0.{2 + len(self._instances) % 250}")
            nics[0].setdefault("network", f"{BASE}/projects/{project}/global/networks/default")
            access = nics[0].get("accessConfigs") or []  # none asked for: no external IP, as on GCE
            for config in access:
                config.setdefault("type", "ONE_TO_ONE_NAT")
            kept.update(kind="compute#instance", id=target["id"], status="RUNNING", creationTimestamp=now(),
                        zone=f"{BASE}/projects/{project}/zones/{zone}", selfLink=self._url(project, zone, "instances", name))
            inst = _Instance(zone, kept)
            inst.ready_at = inst.created + self.provisioning_s
            self._instances[(zone, name)] = inst
            op = self._record(project, zone, "insert", target, done_in=self.provisioning_s,
                              request_id=query.get("requestId"))
        address = self.on_insert(zone, json.loads(json.dumps(kept))) if self.on_insert else None
        n = next(self._ips)
        with self._lock:
            if access:
                access[0]["natIP"] = address or f"127.0.{220 + n // 250 % 30}.{1 + n % 250}"
            return self._op_view(op)

    def _get(self, project: str, zone: str, name: str, **_: Any) -> dict[str, Any]:
        with self._lock:
            return self._view(self._find(project, zone, name))

    def _matching(self, zone: str | None, query: dict[str, str]) -> list[dict[str, Any]]:
        predicate = parse_filter(query.get("filter"), api.INSTANCE_FIELDS)
        with self._lock:
            views = [self._view(i) for i in self._instances.values() if zone in (None, i.zone)]
        return [v for v in views if predicate(v)]

    def _list(self, project: str, zone: str, *, query: dict[str, str], **_: Any) -> dict[str, Any]:
        items, token = page(self._matching(zone, query), query, self.page_size)
        out: dict[str, Any] = {"kind": "compute#instanceList", "id": f"projects/{project}/zones/{zone}/instances",
                               "items": items, "selfLink": self._url(project, zone, "instances")}
        return out | ({"nextPageToken": token} if token else {})

    def _aggregated(self, project: str, *, query: dict[str, str], **_: Any) -> dict[str, Any]:
        """Instances of all zones, one page of them grouped by `zones/ZONE` (GCE pages across
        zones); zones without any on the page carry GCE's NO_RESULTS_ON_PAGE warning."""
        found = sorted(self._matching(None, query), key=lambda v: ZONES.index(v["zone"].rsplit("/", 1)[1]))
        items, token = page(found, query, self.page_size)
        scoped: dict[str, Any] = {}
        for zone in ZONES:
            mine = [v for v in items if v["zone"].endswith(f"/zones/{zone}")]
            scoped[f"zones/{zone}"] = {"instances": mine} if mine else {"warning": {
                "code": "NO_RESULTS_ON_PAGE", "message": f"There are no results for scope 'zones/{zone}' on this page.",
                "data": [{"key": "scope", "value": f"zones/{zone}"}]}}
        out = {"kind": "compute#instanceAggregatedList", "id": f"projects/{project}/aggregated/instances",
               "items": scoped, "selfLink": f"{BASE}/projects/{project}/aggregated/instances", "unreachables": []}
        return out | ({"nextPageToken": token} if token else {})

    def _shut_down(self, zone: str, name: str, inst: _Instance, final: str | None) -> None:
        """GCE's order: STOPPING (set by the caller) while the guest goes down, then TERMINATED,
        or gone when `final` is None. So TERMINATED in the API means the VM is off."""
        if self.on_power_off is not None:
            self.on_power_off(zone, name)
        with self._lock:
            if self._instances.get((zone, name)) is inst:
                if final is None:
                    del self._instances[(zone, name)]
                else:
                    inst.body.update(status=final, lastStopTimestamp=now())

    def _delete(self, project: str, zone: str, name: str, *, query: dict[str, str], **_: Any) -> dict[str, Any]:
        with self._lock:
            if (replay := self._replay(query)) is not None:
                return replay
            inst = self._find(project, zone, name)
            inst.body["status"] = "STOPPING"
            op = self._record(project, zone, "delete", inst.body, request_id=query.get("requestId"))
        self._shut_down(zone, name, inst, None)
        return self._op_view(op)

    def _stop(self, project: str, zone: str, name: str, *, query: dict[str, str], **_: Any) -> dict[str, Any]:
        with self._lock:
            if (replay := self._replay(query)) is not None:
                return replay
            inst = self._find(project, zone, name)
            inst.body["status"] = "STOPPING"
            op = self._record(project, zone, "stop", inst.body, request_id=query.get("requestId"))
        self._shut_down(zone, name, inst, "TERMINATED")
        return self._op_view(op)

    def _simulate(self, project: str, zone: str, name: str, *, query: dict[str, str], **_: Any) -> dict[str, Any]:
        with self._lock:
            if (replay := self._replay(query)) is not None:
                return replay
            inst = self._find(project, zone, name)
            if inst.body["status"] not in ALIVE:
                raise GceError(400, "resourceNotReady", f"The resource '{inst.body['selfLink']}' is not ready")
            op = self._record(project, zone, "simulateMaintenanceEvent", inst.body, request_id=query.get("requestId"))
        self._maintenance(zone, name, host_error=False, project=project)
        return self._op_view(op)

    def _maintenance(self, zone: str, name: str, *, host_error: bool, project: str | None = None) -> None:
        """A host event under the instance: a Spot VM is preempted (stopped or deleted per its
        instanceTerminationAction), any VM dies of a host error, a standard VM migrates live."""
        project = project or self.projects[0]
        with self._lock:
            inst = self._find(project, zone, name)
            if inst.body["status"] not in ALIVE:
                raise GceError(400, "resourceNotReady", f"The resource 'projects/{project}/zones/{zone}/"
                               f"instances/{name}' is not ready")
            sched = inst.body.get("scheduling", {})
            if host_error:
                kind, message, action = "compute.instances.hostError", "Instance terminated by Compute Engine.", "STOP"
            elif sched.get("provisioningModel") == "SPOT":
                kind, message, action = "compute.instances.preempted", "Instance was preempted.", \
                    sched.get("instanceTerminationAction", "STOP")
            else:
                self._record(project, zone, "compute.instances.migrateOnHostMaintenance", inst.body, user="system",
                             statusMessage="Instance migrated during Compute Engine maintenance.")
                return
            self._record(project, zone, kind, inst.body, user="system", statusMessage=message)
            inst.body["status"] = "STOPPING"
        self._shut_down(zone, name, inst, None if action == "DELETE" else "TERMINATED")

    # -- operations, regions, zones --------------------------------------------------------

    def _op_get(self, project: str, zone: str, op: str, **_: Any) -> dict[str, Any]:
        with self._lock:
            found = self._operations.get((zone, op))
            if found is None:
                raise not_found(f"projects/{project}/zones/{zone}/operations/{op}")
            return self._op_view(found)

    def _op_wait(self, project: str, zone: str, op: str, **_: Any) -> dict[str, Any]:
        """Like GCE: returns when the operation is DONE or after a while (2 s here) regardless."""
        deadline = time.monotonic() + 2.0
        while True:
            view = self._op_get(project, zone, op)
            if view["status"] == "DONE" or time.monotonic() >= deadline:
                return view
            time.sleep(0.02)

    def _op_list(self, project: str, zone: str, *, query: dict[str, str], **_: Any) -> dict[str, Any]:
        predicate = parse_filter(query.get("filter"), api.OPERATION_FIELDS)
        items, token = page([v for v in self.operations(zone) if predicate(v)], query, self.page_size)
        out = {"kind": "compute#operationList", "id": f"projects/{project}/zones/{zone}/operations", "items": items,
               "selfLink": self._url(project, zone, "operations")}
        return out | ({"nextPageToken": token} if token else {})

    def _zone(self, project: str, zone: str, **_: Any) -> dict[str, Any]:
        return api.zone_body(project, zone)

    def _zones(self, project: str, *, query: dict[str, str], **_: Any) -> dict[str, Any]:
        predicate = parse_filter(query.get("filter"), ("name", "region", "status"))
        items, token = page([z for z in (api.zone_body(project, z) for z in ZONES) if predicate(z)], query,
                            self.page_size)
        out = {"kind": "compute#zoneList", "items": items, "selfLink": f"{BASE}/projects/{project}/zones"}
        return out | ({"nextPageToken": token} if token else {})

    def _region(self, project: str, region: str, **_: Any) -> dict[str, Any]:
        return api.region_body(project, region)
