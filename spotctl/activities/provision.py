"""Provisioning, in two activities: a fast, idempotent create and a heartbeating wait.

Real clouds take 30-120 s to run a VM. Creating and waiting in one activity without a
heartbeat meant that a cancel could not reach it, so the job ended CANCELLED while the VM it
was making kept running. Now:

- `create_cluster` scans the candidates and asks each cloud to create the cluster with one
  token per attempt (a retried activity gets back what the first try made, never a second
  VM: it first looks for the cluster by name in every candidate's region); it returns in
  seconds.
- `wait_cluster_ready` polls the cloud until every instance runs, heartbeating, so a cancel
  stops it at once and the workflow tears down what was made.

The scan follows policy/failures.py: capacity, quota and price rule out their scope and the
scan goes on; "retry later" is asked again in place, then ruled out; an unknown answer (a
time-out: the VM may exist) is asked again in place, then the activity fails and Temporal
retries it, with the same token.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from temporalio import activity
from temporalio.exceptions import ApplicationError

from spotctl.activities.cloud_calls import cloud_call, patient_call
from spotctl.activities.deps import Deps
from spotctl.activities.fleet import launched, no_capacity, note, note_preempted
from spotctl.activities.heartbeat import Progress, heartbeating
from spotctl.activities.space import out_of_space_noted
from spotctl.clouds.base import CloudError, InstanceState
from spotctl.models import (
    NOT_READY_ERROR,
    PREEMPTED_ERROR,
    ActivityNames,
    Candidate,
    CandidateFailure,
    ClusterHandle,
    ErrorKind,
    Location,
    ProvisionRequest,
    ProvisionResult,
    ReadyRequest,
    cluster_name,
)
from spotctl.models.naming import parse_cluster_name
from spotctl.policy import (
    IN_PLACE_TRIES,
    Blocklist,
    OnError,
    in_place_delay,
    is_fatal,
    on_create_error,
    skipped,
)

LEGACY_READY_TIMEOUT = timedelta(minutes=15)


def _failure(cand: Candidate, exc: CloudError) -> CandidateFailure:
    return CandidateFailure(location=cand.location, instance_type=cand.instance_type, reason=str(exc),
                            kind=exc.kind, scope=exc.scope, fatal=is_fatal(exc.kind))


class ProvisionActivities:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def _create_one(self, req: ProvisionRequest, cand: Candidate, progress: Progress) -> ClusterHandle:
        """Ask one candidate, again in place while the cloud says "later" or does not answer."""
        name = cluster_name(req.job_id, req.attempt)
        tries = 0
        while True:
            progress(f"creating {name} in {cand.location} ({cand.instance_type})")
            try:
                cloud = self.deps.cloud(cand.cloud)
                handle = await cloud_call(cloud.create, name, cand, req.num_nodes, name)
                return handle.model_copy(update={"accelerators": cand.accelerators})
            except CloudError as exc:
                action = on_create_error(exc.kind)
                tries += 1
                if action == OnError.RECORD or tries >= IN_PLACE_TRIES:
                    if action == OnError.RETRY_THEN_RAISE:  # Temporal retries the activity, same token
                        raise ApplicationError(f"{cand.location}: {exc}", type="CloudUnavailable") from exc
                    raise
                activity.logger.info("%s: %s; asking again (%d/%d)", cand.location, exc, tries, IN_PLACE_TRIES)
                await asyncio.sleep(in_place_delay(tries - 1))

    async def _scan(self, req: ProvisionRequest, progress: Progress) -> ProvisionResult:
        failures: list[CandidateFailure] = []
        blocklist = Blocklist()
        seen = []  # for the fleet's memory: capacity failures and the launch, written once at the end
        for cand in req.candidates:
            because = blocklist.why_blocked(cand)
            if because is not None:
                failures.append(skipped(cand, because))
                continue
            try:
                handle = await self._create_one(req, cand, progress)
            except CloudError as exc:
                failure = _failure(cand, exc)
                failures.append(failure)
                blocklist.add(cand, failure)
                if exc.kind == ErrorKind.CAPACITY:
                    seen.append(no_capacity(req.job_id, req.attempt, cand))
                continue
            await note(self.deps, [*seen, launched(req.job_id, req.attempt, handle, cand.price)])
            return ProvisionResult(cluster=handle)
        await note(self.deps, seen)
        return ProvisionResult(failures=failures)

    async def _adopt(self, req: ProvisionRequest, progress: Progress) -> ProvisionResult | None:
        """On a retry, the cluster an earlier try made, wherever among the candidates' regions
        it stands. The scan starts over at the first candidate, and a cloud looks for what a
        token made only in the asked candidate's region (EC2's ids and tokens are per region):
        an earlier try that made the cluster in a later candidate's region, then died before
        it returned, would otherwise get a second cluster here. One list call per region,
        on retries only; a region that cannot be asked now fails this try (Temporal retries
        it), since scanning without knowing could make that second cluster."""
        if activity.info().attempt <= 1:
            return None
        name = cluster_name(req.job_id, req.attempt)
        asked: set[tuple[str, str]] = set()
        for cand in req.candidates:
            if (cand.cloud, cand.region) in asked:
                continue
            asked.add((cand.cloud, cand.region))
            progress(f"looking for {name} in {cand.cloud}/{cand.region}")
            try:
                cloud = self.deps.cloud(cand.cloud)
                found = await patient_call(cloud.find_cluster, name, Location(cloud=cand.cloud, region=cand.region))
            except CloudError as exc:
                if not exc.retryable:  # the cloud cannot be used: nothing can have been made there
                    continue
                raise ApplicationError(f"{cand.location}: {exc}", type="CloudUnavailable") from exc
            if found:
                activity.logger.info("%s: an earlier try made it in %s/%s; adopting it", name, cand.cloud, cand.region)
                handle = await self._create_one(req, cand, progress)  # the same token: what exists
                same = [c for c in req.candidates if (c.cloud, c.region, c.zone, c.instance_type)
                        == (handle.cloud, handle.region, handle.zone, handle.instance_type)]
                made = same[0] if same else cand
                await note(self.deps, [launched(req.job_id, req.attempt, handle, made.price)])  # if the first try could not
                return ProvisionResult(cluster=handle.model_copy(update={
                    "price": made.price, "accelerators": made.accelerators}))
        return None

    @activity.defn(name=ActivityNames.CREATE_CLUSTER)
    async def create_cluster(self, req: ProvisionRequest) -> ProvisionResult:
        """Create the attempt's cluster at the first candidate that can have it (instances
        may still be pending), or say why each candidate failed. Idempotent by token, and a
        retry first adopts what an earlier try made in any candidate's region."""
        async with heartbeating() as progress, out_of_space_noted("state dir"):
            return await self._adopt(req, progress) or await self._scan(req, progress)

    async def _wait_ready(self, cluster: ClusterHandle, deadline: datetime, progress: Progress) -> ClusterHandle:
        cloud = self.deps.cloud(cluster.cloud)
        poll = cloud.ready_poll_s
        where = f"{cluster.cloud}/{cluster.region}/{cluster.zone}"
        while True:
            try:
                states = await cloud_call(cloud.instance_states, cluster.instance_ids, cluster.location)
            except CloudError as exc:  # slow or throttled: ask again next round
                activity.logger.warning("waiting for %s: %s", cluster.cluster_name, exc)
                states = {}
            dead = {i: s for i, s in states.items() if not s.is_alive}
            if dead:
                named = parse_cluster_name(cluster.cluster_name)
                if named is not None:  # a spot stock-out before it ran: a preemption to the fleet's memory
                    await note_preempted(self.deps, *named, cluster)
                raise ApplicationError(
                    f"instance {', '.join(f'{i} {s.value}' for i, s in dead.items())} before it ran in {where}",
                    {"cloud": cluster.cloud, "region": cluster.region, "zone": cluster.zone},
                    type=PREEMPTED_ERROR, non_retryable=True,
                )
            running = sum(1 for s in states.values() if s == InstanceState.RUNNING)
            if states and running == len(cluster.instance_ids):
                try:
                    return await cloud_call(cloud.ready_handle, cluster)
                except CloudError as exc:  # the addresses are asked for again next round
                    activity.logger.warning("addresses of %s: %s", cluster.cluster_name, exc)
            if datetime.now(UTC) >= deadline:
                raise ApplicationError(f"{where} did not run {cluster.cluster_name} by {deadline:%H:%M:%S} UTC",
                                       type=NOT_READY_ERROR, non_retryable=True)
            progress(f"waiting for {cluster.cluster_name} in {where}: {running}/{len(cluster.instance_ids)} running")
            await asyncio.sleep(poll)

    @activity.defn(name=ActivityNames.WAIT_CLUSTER_READY)
    async def wait_cluster_ready(self, req: ReadyRequest) -> ClusterHandle:
        """Return once every instance runs; raise Preempted if one died first, or
        ClusterNotReady past the deadline (both non-retryable: the workflow decides)."""
        async with heartbeating() as progress, out_of_space_noted("state dir"):
            return await self._wait_ready(req.cluster, req.deadline, progress)

    @activity.defn(name=ActivityNames.PROVISION)
    async def provision(self, req: ProvisionRequest) -> ProvisionResult:
        """Create and wait in one (for jobs started before the split; see the workflow)."""
        async with heartbeating() as progress:
            result = await self._adopt(req, progress) or await self._scan(req, progress)
            if result.cluster is None:
                return result
            try:
                ready = await self._wait_ready(result.cluster, datetime.now(UTC) + LEGACY_READY_TIMEOUT, progress)
            except ApplicationError as exc:
                c = result.cluster
                await cloud_call(self.deps.cloud(c.cloud).terminate, c.instance_ids, c.location)
                return ProvisionResult(failures=[CandidateFailure(
                    location=f"{c.cloud}/{c.region}/{c.zone}", instance_type=c.instance_type, reason=str(exc),
                    kind=ErrorKind.CAPACITY)])
            return ProvisionResult(cluster=ready)
