"""The Cloud protocol: what every cloud adapter (local, aws, gcp) offers the activities.

A new cloud is one new module in this package plus its catalog data; nothing else changes.
All methods are blocking (activities call them through `asyncio.to_thread`) and idempotent:
provisioning the same cluster name twice returns the cluster made the first time, and
terminating what is gone is a no-op.
"""

from __future__ import annotations

from enum import Enum
from typing import Protocol

from spotctl.models import Candidate, ClusterHandle, Offering
from spotctl.remote.base import Runner


class InstanceState(str, Enum):
    PENDING = "pending"
    RUNNING = "running"
    STOPPED = "stopped"
    PREEMPTED = "preempted"
    TERMINATED = "terminated"
    GONE = "gone"
    """The cloud no longer knows the instance."""

    @property
    def is_alive(self) -> bool:
        return self in (InstanceState.PENDING, InstanceState.RUNNING)


class CloudError(Exception):
    """A cloud call failed. `retryable` says whether trying again later may help."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class NoCapacity(CloudError):
    """The candidate cannot be had now (capacity, quota, price). Try another candidate."""


class Cloud(Protocol):
    name: str

    def offerings(self) -> list[Offering]:
        """Every (region, zone, instance type) this cloud sells, with prices."""
        ...

    def provision(self, cluster_name: str, candidate: Candidate, num_nodes: int) -> ClusterHandle:
        """Start `num_nodes` instances of the candidate, tagged with `cluster_name`.

        Idempotent: if instances of `cluster_name` already exist and are alive they are
        returned instead of new ones. Raises NoCapacity when the candidate cannot be had
        (and leaves nothing of the cluster behind)."""
        ...

    def find_cluster(self, cluster_name: str) -> list[str]:
        """Ids of every instance tagged with `cluster_name` that is not yet terminated."""
        ...

    def instance_states(self, instance_ids: list[str]) -> dict[str, InstanceState]:
        """The state of each instance, in one batched call. Unknown ids map to GONE."""
        ...

    def terminate(self, instance_ids: list[str]) -> None:
        """Terminate the instances and every process on them. Gone ids are ignored."""
        ...

    def runner(self, handle: ClusterHandle, node_rank: int) -> Runner:
        """A Runner for one node of the cluster."""
        ...
