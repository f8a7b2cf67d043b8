"""A job on a pool (JobSpec.pool; `spotctl launch -p POOL`), as its SpotJobWorkflow runs it.

Instead of provisioning its own cluster, each attempt asks the pool's workflow for a worker
and waits (PENDING) until one is granted, higher priority first, then the oldest job
(workflows/pool.py). On the worker it writes its own envs into a directory of its own and
starts its run there (a clean working directory), in one activity (start_run with
AttemptRef.prepare; before the pool-quick-start patch, the setup activity with no setup to run,
then start_run: the pool ran the setup once when it made the worker), and follows it with the
monitor, as any job.

    PENDING (waiting for a worker) -> STARTING -> RUNNING -> SUCCEEDED / FAILED
        worker preempted or lost under it ---------> PENDING again (a recovery), another worker
        exit != 0 with restarts left ---------------> PENDING again (a recovery)
    cancel: the program is stopped on the worker (stop_run), the worker given back at once

The worker is given back (RELEASE_SIGNAL) on every way out of an attempt, so it never runs two
jobs (when the program exits, by the monitor itself as it sees the end: pool-early-release);
the job never runs twice at once: a new request is made only once the last attempt's
program is known to be over (its exit code read, its worker gone, or stop_run returned).
Only the job's ephemeral buckets are deleted at its end: the worker is the pool's.
Deterministic, no I/O; every command here is behind the POOLS_PATCH branch of SpotJobWorkflow.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from spotctl.activities import MonitorActivities, RunActivities, SetupActivities
    from spotctl.models import (
        MONITOR_HEARTBEAT_TIMEOUT_S,
        NODE_FAILURE_ERROR,
        PREEMPTED_ERROR,
        AttemptRef,
        JobStatus,
        RunOutcome,
        monitor_queue,
    )
    from spotctl.models.pool import (
        RELEASE_SIGNAL,
        REQUEST_SIGNAL,
        PoolRelease,
        PoolRequest,
        WorkerGrant,
        pool_workflow_id,
    )
    from spotctl.workflows.job_summary import Cancelled, Finished, describe, error_type
    from spotctl.workflows.shielded import shielded

if TYPE_CHECKING:
    from spotctl.workflows.spot_job import SpotJobWorkflow

_MONITOR_HEARTBEAT = timedelta(seconds=MONITOR_HEARTBEAT_TIMEOUT_S)
POOL_PRIORITY = "pool-priority"
"""The patch that asks the pool with the job's priority now (not the one it was launched with)
and asks again, same attempt, when `spotctl set-priority` changes it while the job waits."""
POOL_QUICK_START = "pool-quick-start"
"""The patch that starts a job on its worker with one activity, start_run preparing the node
itself (AttemptRef.prepare: agent, envs), instead of setup then start_run: the worker runs the
job's program one activity round trip sooner (bench/pool_throughput.py)."""
POOL_EARLY_RELEASE = "pool-early-release"
"""The patch that sends no release once the monitor says it gave the worker back itself
(RunOutcome.released, activities/pool_release.py): the worker is freed the moment the program's
end is seen, not after the monitor's result, a workflow task and a signal; and the job's and
the pool's workflows each run a signal and a workflow task fewer per job."""


class PoolAttempts:
    """The attempts of a job on a pool; `job` is its workflow (state, activities, cancel)."""

    def __init__(self, job: SpotJobWorkflow) -> None:
        self.job = job
        self.pool = job._spec.pool or ""
        self.held: int | None = None
        """The request (attempt) whose worker this job holds, or whose place it has in the queue."""

    async def run(self) -> None:
        job = self.job
        while True:
            if job._cancel_requested:
                raise Cancelled()
            if job._history_is_long():
                job._continue_as_new()
            grant = await self._wait_for_worker()
            assert grant.cluster is not None
            cluster = grant.cluster
            ref = AttemptRef(job=job._node_spec, attempt=job._attempt, recovery_count=job._state.recoveries,
                             cluster=cluster)
            job._open_attempt(cluster)
            job._set(JobStatus.STARTING, worker=grant.worker, cloud=cluster.cloud, region=cluster.region,
                     zone=cluster.zone, attempt=job._attempt, detail=f"starting on worker {grant.worker}")
            started = False
            try:
                if workflow.patched(POOL_QUICK_START):
                    started = True  # the program may start within this one activity
                    await job._activity(RunActivities.start_run, ref.model_copy(update={"prepare": True}),
                                        timedelta(minutes=5))
                else:
                    await job._activity(SetupActivities.setup, ref, timedelta(hours=1))  # envs and mounts only
                    started = True
                    await job._activity(RunActivities.start_run, ref, timedelta(minutes=5))
                job._set(JobStatus.RUNNING, run_started_at=workflow.now(), detail=None,
                         started_at=job._state.started_at or workflow.now())
                outcome: RunOutcome = await job._activity(
                    MonitorActivities.monitor, ref, timedelta(days=365),
                    task_queue=monitor_queue(workflow.info().task_queue), makes_nothing=True,
                    heartbeat=_MONITOR_HEARTBEAT)
            except ActivityError as err:
                if error_type(err) not in (PREEMPTED_ERROR, NODE_FAILURE_ERROR):
                    await self._give_back(ref, stop=started)
                    raise
                await self._lost(grant, err, ran=job._state.status == JobStatus.RUNNING)
                continue
            except BaseException:  # cancelled (or a bug): the program stops, the worker goes back
                await self._give_back(ref, stop=started)
                raise
            if outcome.released and workflow.patched(POOL_EARLY_RELEASE):
                self.held = None  # the monitor gave the worker back as the program ended
            else:
                await self._release(lost=False)
            code = outcome.exit_code
            if job._exited(code):
                return
            job._set(JobStatus.PENDING, recoveries=job._state.recoveries + 1, worker=None,
                     detail=f"run exited with code {code}; waiting for a worker of pool {self.pool!r} to restart")

    async def _wait_for_worker(self) -> WorkerGrant:
        """Ask the pool for a worker for the next attempt and wait (PENDING) until it grants one."""
        job = self.job
        job._attempt += 1
        job._pool_grant = None
        seq = job._attempt
        job._set(JobStatus.PENDING, worker=None, pool=self.pool, detail=f"waiting for a worker of pool {self.pool!r}")
        reprioritized = workflow.patched(POOL_PRIORITY)
        asked = job._state.priority if reprioritized else job._spec.priority
        await self._ask(seq, asked)
        self.held = seq
        granted = lambda: job._pool_grant is not None and job._pool_grant.seq == seq  # noqa: E731
        while True:
            await workflow.wait_condition(
                lambda a=asked: granted() or job._cancel_requested  # type: ignore[misc]
                or (reprioritized and job._state.priority != a))
            if granted() or job._cancel_requested:
                break
            asked = job._state.priority  # `spotctl set-priority` while waiting: the pool moves the job
            await self._ask(seq, asked)
        if job._cancel_requested:
            await self._release(lost=False)  # its place in the queue, or the worker granted meanwhile
            raise Cancelled()
        grant = job._pool_grant
        assert grant is not None
        if grant.refused:
            self.held = None
            raise Finished(JobStatus.FAILED_PRECHECKS, grant.refused)
        return grant

    async def _ask(self, seq: int, priority: int) -> None:
        """Ask the pool for a worker for attempt `seq` (again, with a new priority: same seq)."""
        job = self.job
        req = PoolRequest(job_id=job._spec.job_id, seq=seq, priority=priority, submitted_at=job._spec.submitted_at)
        try:
            await workflow.get_external_workflow_handle(pool_workflow_id(self.pool)).signal(REQUEST_SIGNAL, req)
        except Exception as exc:  # noqa: BLE001 - the pool's workflow is not running
            raise Finished(JobStatus.FAILED_PRECHECKS, f"pool {self.pool!r} does not exist (or is down)") from exc

    async def _lost(self, grant: WorkerGrant, err: ActivityError, *, ran: bool) -> None:
        """The worker died under the job: it goes back to PENDING for another worker, as a
        recovery if its program ran (a worker found dead when handed over costs the job nothing)."""
        job = self.job
        job._close_attempt("preempted")
        await self._release(lost=True)
        job._set(JobStatus.PENDING, recoveries=job._state.recoveries + (1 if ran else 0), worker=None,
                 detail=f"worker {grant.worker} lost ({describe(err)}); waiting for another worker of pool {self.pool!r}")

    async def _give_back(self, ref: AttemptRef, *, stop: bool) -> None:
        """Stop the program (if it may have started) and give the worker back, whatever cancel
        arrives meanwhile: the next job must find the worker free of this one."""
        if stop:
            await shielded(workflow.execute_activity_method(
                RunActivities.stop_run, ref, start_to_close_timeout=timedelta(minutes=2),
                heartbeat_timeout=timedelta(seconds=30)))
        await shielded(self._release(lost=False))

    async def _release(self, *, lost: bool) -> None:
        if self.held is None:
            return
        seq, self.held = self.held, None
        try:
            await workflow.get_external_workflow_handle(pool_workflow_id(self.pool)).signal(
                RELEASE_SIGNAL, PoolRelease(job_id=self.job._spec.job_id, seq=seq, lost=lost))
        except Exception:  # noqa: BLE001 - the pool is gone: nothing to give back
            workflow.logger.warning("job %s: pool %s is gone", self.job._spec.job_id, self.pool)
