"""One instance of the local cloud, as its state file (state.json) records it: read by the
cloud (local.py) and by its preemption (local_preemption.py), so it lives below both."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from spotctl.clouds.base import InstanceState


class LocalInstance(BaseModel):
    id: str
    name: str
    cluster_name: str
    node_rank: int
    region: str
    zone: str
    instance_type: str
    use_spot: bool
    price: float = 0.0
    state: InstanceState
    created_at: datetime
    token: str | None = None
    """The idempotency token of the create call that made it (None: made before tokens)."""
    ready_at: datetime | None = None
    """When a PENDING instance becomes RUNNING (the region's provision_delay_s after creation)."""
    terminated_at: datetime | None = None
    home: str
    ip: str = "127.0.0.1"
    preempt_at: datetime | None = None
    """When a random preemption strikes (spot instances in regions with an MTBF only)."""
    preempt_deadline: datetime | None = None
    """Set when a preemption was claimed: notice given, SIGKILL due at this time."""
    preempted_at: datetime | None = None
    state_reason: str | None = None
    """Why the instance ended, cloud-style (e.g. local.SpotInstanceTermination)."""
