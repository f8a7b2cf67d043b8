"""teardown: terminate every instance the job made and check that none is left."""

from __future__ import annotations

import asyncio

from temporalio import activity

from spotctl.activities.cloud_calls import patient_call
from spotctl.activities.deps import Deps
from spotctl.activities.heartbeat import heartbeating
from spotctl.activities.space import out_of_space_noted
from spotctl.clouds.base import Cloud, CloudError
from spotctl.models import Activities, Location, TeardownRequest, cluster_name
from spotctl.staging import delete_buckets


class TeardownActivities:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @activity.defn(name=Activities.TEARDOWN)
    async def teardown(self, req: TeardownRequest) -> int:
        """Terminate the clusters of attempts first..last_attempt on every enabled cloud, found by
        name (so a cluster whose handle never reached the workflow is found too), then ask the
        cloud again and fail (to be retried, forever) if anything is still alive; then delete
        the job's ephemeral buckets. Returns how many instances were terminated. Idempotent:
        what is gone is skipped. Every cloud call has a time-out; a throttled call is asked
        again in place a few times, then (like a slow cloud) fails this try, and Temporal
        tries again."""
        terminated = 0
        where: list[Location | None] = list(req.regions) or [None]
        async with heartbeating() as progress, out_of_space_noted("state dir"):
            for at in where:
                for cloud in self._clouds(at):
                    for attempt in range(req.first_attempt, req.last_attempt + 1):
                        name = cluster_name(req.job_id, attempt)
                        progress(f"terminating {name} in {at or cloud.name}")
                        ids = await patient_call(cloud.find_cluster, name, at)
                        if ids:
                            await patient_call(cloud.terminate, ids, at)
                            terminated += len(ids)
                            states = await patient_call(cloud.instance_states, ids, at)
                            alive = [i for i, s in states.items() if s.is_alive]
                            if alive:
                                raise RuntimeError(f"instances still alive after terminate: {alive}")
            if req.delete_buckets:
                progress(f"deleting buckets {', '.join(req.delete_buckets)}")
                await asyncio.to_thread(delete_buckets, req.delete_buckets, self.deps.settings)
        return terminated

    def _clouds(self, at: Location | None) -> list[Cloud]:
        """The cloud of `at` (none if this worker does not know it: nothing can have been made
        there), or every enabled cloud for requests that name no region."""
        if at is None:
            return self.deps.enabled_clouds()
        try:
            return [self.deps.cloud(at.cloud)]
        except CloudError as exc:
            if exc.retryable:
                raise
            activity.logger.warning("teardown: skipping %s: %s", at, exc)
            return []
