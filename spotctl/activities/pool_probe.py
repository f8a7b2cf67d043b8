"""dead_workers: which of a pool's idle workers the cloud has taken back (workflows/pool.py).

A busy worker is watched by its job's monitor; an idle one by nobody. The pool asks this
from time to time about its idle workers, so a worker preempted between jobs is replaced
before a job is handed a dead VM. One cloud call per location, whatever the count.
"""

from __future__ import annotations

from collections import defaultdict

from temporalio import activity

from spotctl.activities.cloud_calls import cloud_call
from spotctl.activities.deps import Deps
from spotctl.activities.heartbeat import heartbeating
from spotctl.models import ActivityNames, ClusterHandle, Location


class PoolActivities:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @activity.defn(name=ActivityNames.DEAD_WORKERS)
    async def dead_workers(self, clusters: list[ClusterHandle]) -> list[str]:
        """The names of the clusters with an instance the cloud says is not alive. A cloud that
        does not answer is asked again by the activity's retry; read-only, so idempotent."""
        by_place: dict[tuple[str, str, str], list[ClusterHandle]] = defaultdict(list)
        for c in clusters:
            by_place[(c.cloud, c.region, c.zone)].append(c)
        dead: list[str] = []
        async with heartbeating():
            for (cloud, region, zone), group in by_place.items():
                ids = [i for c in group for i in c.instance_ids]
                at = Location(cloud=cloud, region=region, zone=zone)
                states = await cloud_call(self.deps.cloud(cloud).instance_states, ids, at)
                dead += [c.cluster_name for c in group
                         if any(i not in states or not states[i].is_alive for i in c.instance_ids)]
        return dead
