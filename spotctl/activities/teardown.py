"""teardown: terminate every instance the job made and check that none is left."""

from __future__ import annotations

import asyncio

from temporalio import activity

from spotctl.activities.cloud_calls import patient_call
from spotctl.activities.deps import Deps
from spotctl.activities.fleet import note_ended
from spotctl.activities.heartbeat import Progress, heartbeating, last_checkpoint
from spotctl.activities.space import out_of_space_noted
from spotctl.clouds.base import Cloud, CloudError
from spotctl.models import ActivityNames, Location, TeardownRequest, cluster_name
from spotctl.storage.registry import delete_buckets


class TeardownActivities:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @activity.defn(name=ActivityNames.TEARDOWN)
    async def teardown(self, req: TeardownRequest) -> int:
        """Terminate the job's clusters on every enabled cloud, then ask the cloud again and
        fail (to be retried, forever) if anything is still alive; then delete the job's
        ephemeral buckets. Returns how many instances were terminated. Idempotent: what is
        gone is skipped. Every cloud call has a time-out; a throttled call is asked again in
        place a few times, then (like a slow cloud) fails this try, and Temporal tries again.

        The clusters are found by the job's tag (`by_tag`: one list per region, whatever the
        attempt) or, for older requests and an attempt's own teardown, by the names of
        attempts first..last_attempt (so a cluster whose handle never reached the workflow is
        found too)."""
        async with heartbeating() as progress, out_of_space_noted("state dir"):
            if req.by_tag:
                terminated = await self._by_tag(req, progress)
            else:
                terminated = await self._by_name(req, progress)
            # Their lives, to the fleet's memory (an attempt already ended by a preemption keeps that end).
            await note_ended(self.deps, req.job_id, None if req.by_tag else range(req.first_attempt,
                                                                                    req.last_attempt + 1))
            if req.delete_buckets:
                progress(f"deleting buckets {', '.join(req.delete_buckets)}")
                await asyncio.to_thread(delete_buckets, req.delete_buckets, self.deps.settings)
        return terminated

    async def _by_name(self, req: TeardownRequest, progress: Progress) -> int:
        terminated = 0
        for at in _where(req):
            for cloud in self._clouds(at):
                for attempt in range(req.first_attempt, req.last_attempt + 1):
                    name = cluster_name(req.job_id, attempt)
                    progress(f"terminating {name} in {at or cloud.name}")
                    ids = await patient_call(cloud.find_cluster, name, at)
                    if ids:
                        terminated += await self._terminate(cloud, ids, at)
        return terminated

    async def _by_tag(self, req: TeardownRequest, progress: Progress) -> int:
        """Region by region; each region finished goes into the heartbeat's checkpoint, so a
        retry (this try failed in a slow region, or its worker died) starts where it stood."""
        done: list[str] = [str(k) for k in last_checkpoint() or []]
        progress.checkpoint = done
        terminated = 0
        for at in _where(req):
            for cloud in self._clouds(at):
                key = f"{cloud.name}/{at.region}" if at is not None else cloud.name
                if key in done:
                    continue
                progress(f"terminating the instances of job {req.job_id} in {key}")
                found = await patient_call(cloud.job_instances, req.job_id, at)
                regions = sorted({i.region for i in found})
                for region in regions:
                    ids = [i.id for i in found if i.region == region]
                    terminated += await self._terminate(cloud, ids, Location(cloud=cloud.name, region=region))
                done.append(key)
        return terminated

    @staticmethod
    async def _terminate(cloud: Cloud, ids: list[str], at: Location | None) -> int:
        """Terminate the instances and check that none is alive."""
        await patient_call(cloud.terminate, ids, at)
        states = await patient_call(cloud.instance_states, ids, at)
        alive = [i for i, s in states.items() if s.is_alive]
        if alive:
            raise RuntimeError(f"instances still alive after terminate: {alive}")
        return len(ids)

    def _clouds(self, at: Location | None) -> list[Cloud]:
        """The cloud of `at` (none if this worker does not know it: nothing can have been made
        there), or every enabled cloud for requests that name no region."""
        if at is None:
            return self.deps.clouds_with_credentials()
        try:
            return [self.deps.cloud(at.cloud)]
        except CloudError as exc:
            if exc.retryable:
                raise
            activity.logger.warning("teardown: skipping %s: %s", at, exc)
            return []


def _where(req: TeardownRequest) -> list[Location | None]:
    """The request's regions; None (every region of every enabled cloud) for a request made
    before it named them."""
    return [*req.regions] or [None]
