"""The first controller (spotctl 0.1), FROZEN, kept so jobs started by it finish under it.

SpotJobWorkflow.run records the patch `controller-v2` for every job it starts; a job whose
history has no such marker was started by this code, and its replay must issue exactly the
commands this code issued (tests/histories/*.json without the v2_ prefix hold such
histories). Replay checks commands, not their arguments: so this module depends on nothing
live but the wire types of spotctl.models. The helpers it calls are frozen copies beside it
(policy_v1.py, job_summary_v1.py), its activity names are literals, and what it shares with the
workflow passes through V1Host (tests/test_legacy_frozen.py checks all of that). Do not
change anything here. Once no job started before the patch runs, delete this package: the
checklist is README.md beside this file.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Protocol

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, FailureError

with workflow.unsafe.imports_passed_through():
    from spotctl.models import (
        MOUNT_ERROR,
        PREEMPTED_ERROR,
        AttemptRecord,
        AttemptRef,
        CarriedState,
        ClusterHandle,
        JobSpec,
        JobState,
        JobStatus,
        ProvisionRequest,
        ProvisionResult,
        RunOutcome,
        SetupOutcome,
        TeardownRequest,
    )
    from spotctl.models import search_attributes as sa
    from spotctl.workflows.legacy.job_summary_v1 import Cancelled, Finished, describe, details, error_type
    from spotctl.workflows.legacy.policy_v1 import (
        Backoff,
        Decision,
        after_exit,
        block_region,
        order_candidates,
        uses_restart_budget,
    )

PROVISION = "provision"
"""Create and wait in one activity (the worker still registers it: activities/provision.py)."""
SETUP = "setup"
START_RUN = "start_run"
MONITOR = "monitor"
TEARDOWN = "teardown"
"""The activities this controller calls, by the names they were registered under then."""

HISTORY_KEPT = 200
"""Attempt records kept in the job state (and memo); older ones are dropped."""


_QUICK_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30), maximum_attempts=10)
_NODE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=20,
    non_retryable_error_types=[PREEMPTED_ERROR],
)
_FOREVER_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=60))
_HEARTBEAT = timedelta(seconds=15)


class V1Host(Protocol):
    """What the first controller shares with the workflow that runs it, and nothing else.

    SpotJobWorkflow passes itself through a small adapter (spot_job._V1Host): its `state`
    query, `cancel` and `note` signals work on the same JobState whichever controller runs."""

    state: JobState
    """The job's state: the controller replaces it on every change; the workflow's query
    returns it and its signals write into it (cancel_requested, detail)."""
    cancel_requested: bool
    """Set by the workflow's `cancel` signal (and its init, from a carried state); the
    controller reads it at every step and ORs a carried cancel into it."""


class ControllerV1:
    """The first controller's run of one job, as an object that SpotJobWorkflow composes for
    a job whose history has no `controller-v2` marker. Its own bookkeeping (spec, attempt,
    restart budget, blocked regions) lives here; only `host` is shared."""

    def __init__(self, host: V1Host) -> None:
        self._host = host
        self._spec: JobSpec
        self._attempt = 0
        self._restarts_used = 0
        self._blocked_regions: dict = {}
        self._last_location: tuple[str, str, str] | None = None

    # ---- the job ---------------------------------------------------------------------
    async def run(self, spec: JobSpec) -> JobState:
        self._spec = spec
        if spec.carried is not None:  # a continued-as-new run picks up where the last one stopped
            c = spec.carried
            self._host.state, self._attempt, self._restarts_used = c.state, c.attempt, c.restarts_used
            self._blocked_regions = dict(c.blocked_regions)
            self._last_location = c.last_location
            # OR-ed in: a cancel a signal handler recorded before this ran is not undone (issue 22).
            self._host.cancel_requested = self._host.cancel_requested or c.state.cancel_requested
        else:
            self._host.state = JobState(job_id=spec.job_id, name=spec.name, resources=spec.resources,
                                        submitted_at=spec.submitted_at)
        self._publish()
        final: Finished
        try:
            await self._run_attempts()
            final = Finished(JobStatus.SUCCEEDED)
        except Finished as done:
            final = done
        except (Cancelled, asyncio.CancelledError):
            self._set(JobStatus.CANCELLING, detail="cancelling: tearing down")
            final = Finished(JobStatus.CANCELLED, "cancelled by user")
        except (FailureError, ValueError, TypeError, KeyError, AttributeError, RuntimeError) as exc:
            if isinstance(exc, workflow.NondeterminismError):
                raise
            workflow.logger.exception("job %s failed in the controller", spec.job_id)
            final = Finished(JobStatus.FAILED_CONTROLLER, f"controller error: {describe(exc)}")
        self._close_attempt(final.status.value.lower() if final.status != JobStatus.SUCCEEDED else "succeeded")
        # Earlier attempts' clusters were torn down (and verified gone) when they ended; the
        # one before the last is included in case its teardown raced a cancel.
        await self._teardown(first_attempt=max(1, self._attempt - 1), delete_buckets=spec.ephemeral_buckets)
        self._set(final.status, failure_reason=final.reason if final.status != JobStatus.SUCCEEDED else None,
                  exit_code=final.exit_code if final.exit_code is not None else self._host.state.exit_code,
                  ended_at=workflow.now(), detail=None)
        return self._host.state

    async def _run_attempts(self) -> None:
        while True:
            if self._host.cancel_requested:
                raise Cancelled()
            if self._attempt >= (self._spec.carried.attempt if self._spec.carried else 0) + \
                    self._spec.continue_as_new_after_attempts or workflow.info().is_continue_as_new_suggested():
                self._continue_as_new()
            self._attempt += 1
            cluster = await self._provision()
            ref = AttemptRef(job=self._spec, attempt=self._attempt, recovery_count=self._host.state.recoveries,
                             cluster=cluster)
            self._open_attempt(cluster)
            self._set(JobStatus.STARTING, detail=f"setting up on {cluster.region}/{cluster.zone}")
            try:
                setup = await self._activity(SETUP, ref, SetupOutcome, timedelta(days=1), _NODE_RETRY, _HEARTBEAT)
                if setup.exit_code != 0:
                    raise Finished(JobStatus.FAILED_SETUP, f"setup failed with exit code {setup.exit_code}", setup.exit_code)
                await self._activity(START_RUN, ref, type(None), timedelta(minutes=2), _NODE_RETRY)
                self._set(JobStatus.RUNNING, run_started_at=workflow.now(), detail=None,
                          started_at=self._host.state.started_at or workflow.now())
                outcome = await self._activity(MONITOR, ref, RunOutcome, timedelta(days=365), _NODE_RETRY, _HEARTBEAT)
            except ActivityError as err:
                if error_type(err) == MOUNT_ERROR:
                    raise Finished(JobStatus.FAILED_SETUP, describe(err)) from err
                if error_type(err) != PREEMPTED_ERROR:
                    raise
                await self._recover_from_preemption(cluster, err)
                continue
            code = outcome.exit_code
            self._host.state.exit_code = code
            decision = after_exit(code, self._spec.recovery, self._restarts_used)
            if decision == Decision.SUCCEED:
                return
            if decision == Decision.FAIL:
                raise Finished(JobStatus.FAILED, f"run exited with code {code}", code)
            if uses_restart_budget(code, self._spec.recovery):
                self._restarts_used += 1
            self._close_attempt(f"exit code {code}")
            self._set(JobStatus.RECOVERING, recoveries=self._host.state.recoveries + 1,
                      detail=f"run exited with code {code}; restarting")
            await self._teardown(first_attempt=self._attempt)

    async def _recover_from_preemption(self, cluster: ClusterHandle, err: ActivityError) -> None:
        strategy = self._spec.recovery.strategy.upper()
        where = f"{cluster.cloud}/{cluster.region}/{cluster.zone}"
        self._close_attempt("preempted")
        if strategy == "NONE":
            raise Finished(JobStatus.FAILED, f"preempted in {where}; job_recovery is NONE")
        if strategy == "EAGER_NEXT_REGION":
            self._blocked_regions = block_region(self._blocked_regions, cluster.cloud, cluster.region, workflow.now())
        self._last_location = (cluster.cloud, cluster.region, cluster.zone)
        self._set(JobStatus.RECOVERING, recoveries=self._host.state.recoveries + 1,
                  detail=f"preempted in {where}: {describe(err)}")
        await self._teardown(first_attempt=self._attempt)

    def _continue_as_new(self) -> None:
        """Hand the job to a fresh run of this workflow (same workflow id, a new history),
        between attempts, when no cluster is alive."""
        carried = CarriedState(state=self._host.state, attempt=self._attempt, restarts_used=self._restarts_used,
                               blocked_regions=self._blocked_regions, last_location=self._last_location)
        workflow.continue_as_new(self._spec.model_copy(update={"carried": carried}))

    def _open_attempt(self, cluster: ClusterHandle) -> None:
        record = AttemptRecord(attempt=self._attempt, cloud=cluster.cloud, region=cluster.region, zone=cluster.zone,
                               instance_type=cluster.instance_type, started_at=workflow.now())
        self._host.state.history = (self._host.state.history + [record])[-HISTORY_KEPT:]

    def _close_attempt(self, outcome: str) -> None:
        if self._host.state.history and self._host.state.history[-1].outcome is None:
            self._host.state.history[-1].outcome = outcome
            self._host.state.history[-1].ended_at = workflow.now()

    async def _provision(self) -> ClusterHandle:
        """Provision the current attempt, backing off on durable timers while nothing has
        capacity, until job_recovery.max_wait (if any) runs out."""
        waited_since = workflow.now()
        backoff = Backoff(initial_s=self._spec.launch_retry_initial_s)
        retry = 0
        while True:
            candidates = order_candidates(self._spec.candidates, strategy=self._spec.recovery.strategy,
                                          blocked=self._blocked_regions, now=workflow.now(), last=self._last_location)
            first = candidates[0]
            self._set(JobStatus.RECOVERING if self._host.state.status == JobStatus.RECOVERING else JobStatus.STARTING,
                      detail=f"provisioning ({len(candidates)} candidates, first {first.location} {first.instance_type})")
            req = ProvisionRequest(job_id=self._spec.job_id, attempt=self._attempt, num_nodes=self._spec.num_nodes, candidates=candidates)
            result = await self._activity(PROVISION, req, ProvisionResult, timedelta(minutes=20), _QUICK_RETRY)
            if result.cluster is not None:
                c = result.cluster
                self._set(self._host.state.status, cloud=c.cloud, region=c.region, zone=c.zone, attempt=self._attempt)
                return c
            reasons = "; ".join(f"{f.location} {f.instance_type}: {f.reason}" for f in result.failures[:5])
            if result.failures and all(f.fatal for f in result.failures):
                raise Finished(JobStatus.FAILED_PRECHECKS, f"no candidate can ever be provisioned: {reasons}")
            max_wait = self._spec.recovery.max_wait_s
            elapsed = (workflow.now() - waited_since).total_seconds()
            if max_wait is not None and elapsed >= max_wait:
                raise Finished(JobStatus.FAILED_NO_RESOURCE, f"no capacity for {elapsed:.0f}s: {reasons}")
            delay = backoff.delay(retry, workflow.random().random())
            if max_wait is not None:
                delay = min(delay, max(0.0, max_wait - elapsed))
            retry += 1
            regions = len({f.location.rsplit("/", 1)[0] for f in result.failures})
            self._set(self._host.state.status, failure_reason=reasons,
                      detail=f"no capacity in {regions} region(s), retry in {delay:.0f}s")
            await self._sleep(delay)

    # ---- helpers ---------------------------------------------------------------------
    async def _activity(self, name: str, arg, result_type, timeout: timedelta, retry: RetryPolicy,
                        heartbeat: timedelta | None = None):
        """Run one activity, abandoning it (and raising Cancelled) as soon as cancel is asked."""
        if self._host.cancel_requested:
            raise Cancelled()
        handle = workflow.start_activity(
            name, arg, result_type=result_type, start_to_close_timeout=timeout,
            heartbeat_timeout=heartbeat, retry_policy=retry, summary=f"{name} (attempt {self._attempt})",
        )
        try:
            await workflow.wait_condition(lambda: handle.done() or self._host.cancel_requested)
        except asyncio.CancelledError:  # a plain Temporal cancel of the workflow
            handle.cancel()
            raise
        if not handle.done():
            handle.cancel()
            try:
                await handle
            except (ActivityError, asyncio.CancelledError):
                pass
            raise Cancelled()
        return handle.result()

    async def _sleep(self, seconds: float) -> None:
        """A durable timer that a cancel interrupts."""
        try:
            await workflow.wait_condition(lambda: self._host.cancel_requested, timeout=timedelta(seconds=seconds))
        except TimeoutError:
            return
        raise Cancelled()

    async def _teardown(self, first_attempt: int, delete_buckets: list[str] | None = None) -> None:
        """Terminate the clusters of attempts first_attempt..current (and, at the job's end, its
        ephemeral buckets). Runs on every path, cancellation included, and retries until the
        cloud confirms nothing is left."""
        if self._attempt < first_attempt and not delete_buckets:
            return
        req = TeardownRequest(job_id=self._spec.job_id, first_attempt=first_attempt, last_attempt=self._attempt,
                              delete_buckets=delete_buckets or [])
        await workflow.execute_activity(
            TEARDOWN, req, result_type=int, start_to_close_timeout=timedelta(minutes=10),
            retry_policy=_FOREVER_RETRY,
        )

    def _leave_running(self) -> None:
        if self._host.state.run_started_at is not None:
            ran = (workflow.now() - self._host.state.run_started_at).total_seconds()
            self._host.state.job_duration_s += ran
            self._host.state.run_started_at = None

    def _set(self, status: JobStatus, **changes) -> None:
        """Move to `status` (updating fields) and publish the change to visibility."""
        if status != JobStatus.RUNNING and self._host.state.status == JobStatus.RUNNING:
            self._leave_running()
        self._host.state = self._host.state.model_copy(update={"status": status, **changes})
        self._publish()

    def _publish(self) -> None:
        s = self._host.state
        workflow.upsert_search_attributes(
            [
                sa.JOB_ID.value_set(s.job_id),
                sa.JOB_NAME.value_set(s.name),
                sa.STATUS.value_set(s.status.value),
                sa.RECOVERIES.value_set(s.recoveries),
                sa.CLOUD.value_set(s.cloud or ""),
                sa.REGION.value_set(s.region or ""),
                sa.RESOURCES.value_set(s.resources),
                sa.SUBMITTED.value_set(s.submitted_at),
            ]
        )
        workflow.upsert_memo({"state": s.model_dump(mode="json")})
        workflow.set_current_details(details(s))

