"""The Cloud protocol: what every cloud adapter (local, aws, gcp) offers the activities.

A new cloud is one new module in this package plus its catalog data; nothing else changes.
All methods are blocking (activities call them through `activities/cloud_calls.py`, in a
thread, with a time-out) and idempotent: creating with the same token twice returns what the
first call made, and terminating what is gone is a no-op.

Real clouds are slow and moody, so every failure says what it means (`CloudError.kind`) and
how far it reaches (`CloudError.scope`); policy/failures.py turns that into a decision
(skip the zone, the region, the cloud; back off; fail the job), as SkyPilot's blocklist does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Protocol

from spotctl.models import Candidate, ClusterHandle, ErrorKind, ErrorScope, Location, Offering
from spotctl.remote.base import Runner

__all__ = [
    "Cloud",
    "CloudError",
    "ErrorKind",
    "ErrorScope",
    "InstanceState",
    "Location",
    "MeteredApiTiming",
    "NoCapacity",
    "TaggedInstance",
    "Throttled",
]


class InstanceState(str, Enum):
    """An instance's state; a dead one says why it died, as far as the cloud tells."""

    PENDING = "pending"
    RUNNING = "running"
    STOPPED = "stopped"
    """Stopped by someone (the user, its own shutdown), not by the cloud."""
    PREEMPTED = "preempted"
    """Taken back by the cloud: a spot interruption."""
    MAINTENANCE = "maintenance"
    """Stopped or terminated by the cloud for its host (host error, scheduled maintenance)."""
    TERMINATED = "terminated"
    """Terminated by someone, not by the cloud."""
    GONE = "gone"
    """The cloud no longer knows the instance (why is unknown)."""

    @property
    def is_alive(self) -> bool:
        return self in (InstanceState.PENDING, InstanceState.RUNNING)


class CloudError(Exception):
    """A cloud call failed: `kind` says what happened, `scope` how far it reaches.

    `retryable=False` (the older spelling) means kind INVALID with scope CLOUD: the cloud
    cannot serve this, whatever the moment (no credentials, unknown cloud, broken config)."""

    default_kind = ErrorKind.UNAVAILABLE
    default_scope = ErrorScope.REQUEST

    def __init__(self, message: str, *, kind: ErrorKind | None = None, scope: ErrorScope | None = None,
                 retryable: bool | None = None) -> None:
        super().__init__(message)
        if retryable is False and kind is None:
            kind, scope = ErrorKind.INVALID, scope or ErrorScope.CLOUD
        self.kind = kind or self.default_kind
        self.scope = scope or self.default_scope

    @property
    def retryable(self) -> bool:
        """Whether the same call may succeed later (everything but INVALID)."""
        return self.kind != ErrorKind.INVALID


class NoCapacity(CloudError):
    """The candidate cannot be had now (capacity by default; quota and price are kinds too).
    Try another candidate."""

    default_kind = ErrorKind.CAPACITY
    default_scope = ErrorScope.ZONE


class Throttled(CloudError):
    """The cloud said "retry later" (rate limit, too many concurrent calls)."""

    default_kind = ErrorKind.THROTTLED
    default_scope = ErrorScope.CLOUD


@dataclass(frozen=True)
class TaggedInstance:
    """An instance spotctl made, as the orphan sweeper sees it."""

    id: str
    cluster_name: str
    region: str
    state: InstanceState
    created_at: datetime
    zone: str = ""


class MeteredApiTiming:
    """Cloud's timing for a cloud behind a metered API (AWS, GCP): instances boot in a minute
    or so, every ask is a call under a quota, freed capacity comes back in minutes."""

    ready_poll_s = 5.0
    liveness_interval_s = 10.0
    launch_retry_initial_s = 10.0
    launch_retry_max_s = 300.0


class Cloud(Protocol):
    name: str
    ready_poll_s: float
    """How often a pending cluster is asked whether it runs: a real cloud's instances boot in
    minutes and each ask is an API call under a quota; the local cloud's processes start at once."""
    liveness_interval_s: float
    """How often one batched call asks whether the watched instances still run (a real
    cloud's interval keeps the API calls well under its quotas)."""
    launch_retry_initial_s: float
    """The first wait before a launch that found no capacity is tried again (how soon the
    cloud may have capacity again: seconds on the local cloud)."""

    @property
    def launch_retry_max_s(self) -> float:
        """The longest wait between two launches that found no capacity (the backoff's cap):
        5 minutes, and a tick of its trace on a local cloud whose zones follow one."""

    @property
    def node_env(self) -> dict[str, str]:
        """Variables the cloud gives every phase on its nodes, e.g. where the node agent finds the
        interruption notice (`SPOTCTL_METADATA_URL`); the local cloud delivers notices itself."""

    def check(self, verify: bool = False) -> str | None:
        """None when the cloud can be used, else one line saying why not and how to fix it.
        Without `verify` only local facts are looked at (are there credentials?), so placement
        can ask at every launch; with it one API call proves they are accepted (`spotctl
        check`). Bounded in time; never raises."""
        ...

    def offerings(self) -> list[Offering]:
        """Every (region, zone, instance type) this cloud sells, with prices (local data; no
        API call)."""
        ...

    def spot_prices(self, region: str) -> dict[tuple[str, str], float]:
        """Live spot prices of the region, {(zone, instance_type): USD/hour}, cached for
        minutes; {} when the cloud has no live prices. Raises CloudError."""
        ...

    def create(self, cluster_name: str, candidate: Candidate, num_nodes: int, token: str) -> ClusterHandle:
        """Ask for `num_nodes` instances of the candidate, tagged with `cluster_name`; return
        at once, while they may still be PENDING (`instance_states` says when they run).

        Idempotent by `token` (AWS ClientToken, GCE requestId): a second call with the same
        token returns the instances the first one made, wherever and in whatever state they
        are, and never makes more. Raises CloudError (kind and scope set); a failed call
        leaves nothing of the cluster behind."""
        ...

    def find_cluster(self, cluster_name: str, at: Location | None = None) -> list[str]:
        """Ids of every instance tagged with `cluster_name` that is not yet terminated, in the
        region of `at` (None: every region the cloud places in, which is slow on a real cloud)."""
        ...

    def job_instances(self, job_id: int, at: Location | None = None) -> list[TaggedInstance]:
        """Every instance of the job (tagged with its id, any attempt) that is not yet
        terminated, in the region of `at` (None: every region the cloud places in): one list
        call per region. The job's final teardown finds its clusters this way, so an attempt
        nobody recorded (a task workflow terminated outside spotctl) is found too."""
        ...

    def instance_states(self, instance_ids: list[str], at: Location | None = None) -> dict[str, InstanceState]:
        """The state of each instance (all in the region of `at`), in one batched call.
        Unknown ids map to GONE. A spot interruption is PREEMPTED, the cloud's host trouble
        MAINTENANCE; a stop or termination by anyone else is STOPPED or TERMINATED. A real cloud
        needs `at` (its ids are per region); the local cloud ignores it."""
        ...

    def terminate(self, instance_ids: list[str], at: Location | None = None) -> None:
        """Terminate the instances (all in the region of `at`) and every process on them.
        Gone ids are ignored."""
        ...

    def ready_handle(self, handle: ClusterHandle) -> ClusterHandle:
        """The handle completed with what the cloud knows once every instance runs (a real
        VM's IP address is assigned only then)."""
        ...

    def tagged_instances(self) -> list[TaggedInstance]:
        """Every instance spotctl made on this cloud that is not yet terminated (for the
        orphan sweeper)."""
        ...

    def runner(self, handle: ClusterHandle, node_rank: int) -> Runner:
        """A Runner for one node of the cluster."""
        ...
