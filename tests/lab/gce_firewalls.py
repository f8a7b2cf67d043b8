"""The fake GCE's firewall rules (global): get and insert, as clouds/gcp_network.py uses them.
A mixin of FakeGce: its lock, projects, ids and reset hold this state too."""

from __future__ import annotations

from typing import Any

from gce_api import BASE, GceError, not_found, now


class FirewallsMixin:
    _lock: Any
    _ids: Any
    firewalls: dict[tuple[str, str], dict[str, Any]]
    """(project, name) -> the rule as the API shows it."""

    def _reset_firewalls(self) -> None:
        self.firewalls = {}

    def _firewall_get(self, project: str, name: str, **_: Any) -> dict[str, Any]:
        with self._lock:
            rule = self.firewalls.get((project, name))
        if rule is None:
            raise not_found(f"projects/{project}/global/firewalls/{name}")
        return rule

    def _firewall_insert(self, project: str, *, body: dict[str, Any], **_: Any) -> dict[str, Any]:
        name = body.get("name") or ""
        with self._lock:
            if (project, name) in self.firewalls:
                raise GceError(409, "alreadyExists", f"The resource 'projects/{project}/global/firewalls/{name}' "
                                                     "already exists")
            rule = {**body, "kind": "compute#firewall", "id": str(next(self._ids)), "creationTimestamp": now(),
                    "selfLink": f"{BASE}/projects/{project}/global/firewalls/{name}"}
            self.firewalls[(project, name)] = rule
            op_id = str(next(self._ids))
        return {"kind": "compute#operation", "id": op_id, "name": f"operation-firewall-{op_id}",
                "operationType": "insert", "status": "DONE", "progress": 100, "targetLink": rule["selfLink"],
                "targetId": rule["id"], "insertTime": now(), "selfLink": f"{BASE}/projects/{project}/global/operations/"
                f"operation-firewall-{op_id}"}
