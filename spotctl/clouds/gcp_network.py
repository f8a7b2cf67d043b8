"""SSH access to spotctl's GCE VMs: one firewall rule per project, `spotctl-allow-ssh`, that
opens TCP port 22 (and nothing else) of the `default` network to VMs tagged `spotctl`.

GCP's default network usually has `default-allow-ssh` already, but a project whose network was
tightened does not, and a VM spotctl cannot reach would look like a node that never boots.
Made once per project and process (get, then insert; someone else inserting it meanwhile is
fine), like AWS's `spotctl` security group (aws_keys.py).
"""

from __future__ import annotations

import threading
from typing import Any

FIREWALL = "spotctl-allow-ssh"
TAG = "spotctl"
NETWORK = "global/networks/default"

_lock = threading.Lock()
_done: set[tuple[str, str | None]] = set()


def ensure_ssh_firewall(client: Any, project: str, endpoint: str | None, timeout_s: float) -> None:
    """Make the rule unless it exists. `client` is a compute_v1 FirewallsClient. Raises the
    library's errors (the caller maps them)."""
    key = (project, endpoint)
    with _lock:
        if key in _done:
            return
    try:
        client.get(project=project, firewall=FIREWALL, timeout=timeout_s, retry=None)
    except Exception as exc:
        if getattr(exc, "code", None) != 404:
            raise
        rule = {"name": FIREWALL, "network": NETWORK, "direction": "INGRESS", "priority": 1000,
                "allowed": [{"I_p_protocol": "tcp", "ports": ["22"]}], "source_ranges": ["0.0.0.0/0"],
                "target_tags": [TAG], "description": "spotctl: SSH (tcp/22) to spotctl's VMs"}
        try:
            client.insert_unary(project=project, firewall_resource=rule, timeout=timeout_s, retry=None)
        except Exception as insert_exc:
            if getattr(insert_exc, "code", None) != 409:  # made meanwhile by another worker: fine
                raise
    with _lock:
        _done.add(key)


def forget() -> None:
    """Ask again next time (tests that reset the fake GCE)."""
    with _lock:
        _done.clear()
