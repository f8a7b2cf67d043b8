"""provision: get a cluster from the first candidate that has capacity."""

from __future__ import annotations

import asyncio

from temporalio import activity

from spotctl.activities.deps import Deps
from spotctl.clouds.base import CloudError, NoCapacity
from spotctl.models import Activities, CandidateFailure, ProvisionRequest, ProvisionResult, cluster_name


class ProvisionActivities:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @activity.defn(name=Activities.PROVISION)
    async def provision(self, req: ProvisionRequest) -> ProvisionResult:
        """Try the candidates in order; return the first cluster, or why each one failed.

        Idempotent: a retry (after a worker crash mid-call) first terminates whatever an earlier
        try of this attempt left behind, so at most one cluster per attempt ever exists. That is
        safe because the workflow never saw the earlier cluster, so nothing runs on it.
        """
        name = cluster_name(req.job_id, req.attempt)
        if activity.info().attempt > 1:
            for cloud in self.deps.enabled_clouds():
                leftover = await asyncio.to_thread(cloud.find_cluster, name)
                if leftover:
                    activity.logger.info("terminating %s left by an earlier try of %s", leftover, name)
                    await asyncio.to_thread(cloud.terminate, leftover)
        failures: list[CandidateFailure] = []
        for cand in req.candidates:
            activity.heartbeat(cand.location)
            try:
                cloud = self.deps.cloud(cand.cloud)
                handle = await asyncio.to_thread(cloud.provision, name, cand, req.num_nodes)
            except CloudError as exc:
                fatal = not isinstance(exc, NoCapacity) and not exc.retryable
                if not fatal and not isinstance(exc, NoCapacity):
                    raise  # transient (throttling, a network blip): Temporal retries in place
                failures.append(CandidateFailure(location=cand.location, instance_type=cand.instance_type,
                                                 reason=str(exc), fatal=fatal))
                continue
            return ProvisionResult(cluster=handle.model_copy(update={"accelerators": cand.accelerators}))
        return ProvisionResult(failures=failures)
