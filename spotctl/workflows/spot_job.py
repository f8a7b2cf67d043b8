"""SpotJobWorkflow: one managed job's whole life, as one durable Temporal workflow.

The workflow holds the job's state machine and its placement memory; every side effect is an
activity (create_cluster, wait_cluster_ready, setup, start_run, monitor, teardown). It must
stay deterministic: no I/O, no clocks but workflow.now(), no randomness but
workflow.random(), no time.sleep.

    PENDING -> STARTING -> RUNNING -> SUCCEEDED
                  |           |-- preempted ----------------> RECOVERING -> STARTING ...
                  |           |-- node failure (spotctl's) -> RECOVERING (restart budget untouched)
                  |           |-- exit != 0, restarts left --> RECOVERING
                  |           '-- exit != 0, none left ------> FAILED (FAILED_SETUP if setup failed)
                  |-- no capacity for max_wait ---------------> FAILED_NO_RESOURCE
                  '-- nothing can ever be provisioned --------> FAILED_PRECHECKS
    any non-terminal state --cancel--> CANCELLING -> CANCELLED
    an activity fails in a way no retry can mend ----> FAILED_CONTROLLER (teardown still runs)

What a user can rely on:
- A cancel never leaks: the activity in flight is cancelled and waited for (it heartbeats,
  so it hears the cancel at once; a VM being created is finished first), then every cluster
  of the job is torn down and checked gone. A second cancel cannot skip that teardown.
- Infrastructure failures retry forever (worker redeploys, heartbeat time-outs, a throttled
  or hung cloud API, stray OS errors); only named errors end a job (JOB_ENDING_ERRORS). A bug
  in this code fails the workflow task instead of the job: deploying the fix resumes the job.
- The history stays small: node activities get the job without its candidates and carried
  state, visibility is updated only where something changed, and the workflow continues as
  new between attempts and while it waits for capacity, so a job may wait or run for months.

Jobs started before these rules (no `controller-v2` marker in their history) finish under
the first controller, workflows/legacy/controller_v1.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import Priority
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, TimeoutType
from temporalio.exceptions import TimeoutError as TemporalTimeout
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    # The activities' implementations, for their typed references only (the sandbox passes
    # them through: their boto3/google imports are never made again, never run here).
    from spotctl.activities import (
        MonitorActivities,
        PricingActivities,
        ProvisionActivities,
        RunActivities,
        SetupActivities,
    )
    from spotctl.models import (
        MONITOR_HEARTBEAT_TIMEOUT_S,
        MOUNT_ERROR,
        NODE_FAILURE_ERROR,
        NOT_READY_ERROR,
        NOTE_SIGNAL,
        PREEMPTED_ERROR,
        AttemptRecord,
        AttemptRef,
        Candidate,
        CarriedState,
        ClusterHandle,
        ErrorKind,
        JobSpec,
        JobState,
        JobStatus,
        PriceRequest,
        ProvisionRequest,
        ProvisionResult,
        ReadyRequest,
        TeardownRequest,
        launch_queue,
        monitor_queue,
    )
    from spotctl.models.naming import JOB_WORKFLOW
    from spotctl.models.pool import GRANT_SIGNAL, POOLS_PATCH, WorkerGrant
    from spotctl.models.priority import PRIORITY_SIGNAL, priority_key
    from spotctl.models.spec import MAX_PRIORITY, MIN_PRIORITY
    from spotctl.models.status import JobFailure
    from spotctl.policy import (
        Backoff,
        Decision,
        Market,
        after_exit,
        all_fatal,
        block_region,
        keep_last,
        order_candidates,
        uses_restart_budget,
    )
    from spotctl.workflows.deadline_driver import DeadlineDriver, OnDemandWatch, reported_fraction
    from spotctl.workflows.event_outbox import EventOutbox
    from spotctl.workflows.fleet_placement import LearnedOrder
    from spotctl.workflows.handlers import StateAndCancel
    from spotctl.workflows.job_end import end
    from spotctl.workflows.job_summary import Cancelled, Finished, describe, error_type
    from spotctl.workflows.legacy.controller_v1 import ControllerV1
    from spotctl.workflows.pool_job import PoolAttempts
    from spotctl.workflows.retry import HEARTBEAT, INFRA_RETRY
    from spotctl.workflows.shielded import until_done
    from spotctl.workflows.teardown import final_teardown, teardown, teardown_request
    from spotctl.workflows.visibility import Visibility

CONTROLLER_V2 = "controller-v2"
"""The patch that separates jobs of this controller from those of workflows/legacy/controller_v1.py."""
LIVE_PRICES = "live-prices"
"""The patch that re-prices the candidates (an activity) before every recovery."""
MONITOR_QUEUE = "monitor-queue"
"""The patch that runs the monitor on its own task queue (models.monitor_queue), and does not
wait for a cancelled monitor to acknowledge (it heartbeats less often: worker/pool.py)."""
LAUNCH_SLOTS = "launch-slots"
"""The patch that creates clusters on the launch queue, whose slots cap concurrent launches."""
NOTES = "job-notes"
"""The patch that shows a `note` signal's text as the job's detail (an upsert of the memo)."""
NODE_FAILURES = "node-failures"
"""The patch that recovers an attempt whose node lost the phase (NODE_FAILURE_ERROR) instead of
failing the job as a controller error."""
DIED_BEFORE_READY_BACKOFF = "died-before-ready-backoff"
"""The patch that makes a cluster that died before it ran a round of the wait for capacity like
any other: a backoff timer, max_wait checked, continue-as-new when the history grows (it used
to retry at once, for ever, in one history)."""
MONITOR_HEARTBEAT = "monitor-heartbeat"
"""The patch that gives the monitor its own, longer heartbeat time-out (models.
MONITOR_HEARTBEAT_TIMEOUT_S): two throttled beats may be missed before it is timed out."""
DEADLINES = "deadlines"
"""The patch of deadline jobs (JobSpec.deadline): each provisioning round asks policy/deadline.py
for the market (workflows/deadline_driver.py), and goes to on-demand at once when the policy
says so after spot had no capacity. Jobs without a deadline never call it: unchanged."""
DEADLINE_SPELLS = "deadline-spells"
"""The patch that tells a deadline job's policy how long its spot attempts lived per
preemption and spot's price share (deadline_driver.DeadlineDriver.learn_spells): the policy's
spell test (policy/deadline.py spot_pays) then works in the workflow as in bench/economics.py."""
DEADLINE_RESTARTS = "deadline-restarts"
"""The patch that tells a deadline job's policy what this job measured (deadline_driver.
DeadlineDriver.learn): the changeover is at least its longest restart (cluster asked for ->
program running), the safety net keeps in hand the work a preemption may lose, and a
wait between two provisioning rounds is cut to reach the safety net in time. Records the
program's end (`done_at`)."""
DEADLINE_RETURNS = "deadline-returns"
"""The patch that watches a deadline job running on on-demand (deadline_driver.OnDemandWatch):
a durable timer asks its policy, and a spot cluster made ready replaces the on-demand one."""
LAUNCH_PRIORITY = "launch-priority"
"""The patch that asks for a launch slot with the job's priority (models/priority.py: Temporal's
priority_key on create_cluster) and, when the priority changes (`set_priority`) while the job
waits for a slot, asks again under the new one."""
LAUNCH_SLOT_WAIT = timedelta(seconds=3)
"""A create not picked up this soon waits for a launch slot: the job shows so (PENDING)."""

HISTORY_KEPT = 200
"""Attempt records kept in the job state; older ones are dropped (their cost is kept: earlier_cost)."""

_MONITOR_HEARTBEAT = timedelta(seconds=MONITOR_HEARTBEAT_TIMEOUT_S)
READY_TIMEOUT = timedelta(minutes=15)
"""How long a created cluster may take to run before it is given up for another place."""

Arg = TypeVar("Arg")
Result = TypeVar("Result")


@workflow.defn(name=JOB_WORKFLOW)
class SpotJobWorkflow(StateAndCancel):
    @workflow.init
    def __init__(self, spec: JobSpec) -> None:
        """Everything a handler touches exists before any handler runs: the SDK runs the
        signals of the first workflow task (a cancel sent while the last run continued as new)
        before `run()`, and `run()` must not erase what they recorded. No commands here."""
        self._state: JobState = spec.carried.state if spec.carried is not None else spec.first_state()
        self._cancel_requested = self._state.cancel_requested
        self._running = False
        """Set once run() took the job over: before, a note is recorded but not published."""
        self._blocked_regions: dict = {}
        self._attempt = 0
        self._restarts_used = 0
        self._last_location: tuple[str, str, str] | None = None
        self._visibility = Visibility()
        self._launched_at: datetime | None = None
        """When the current attempt's cluster was asked for (its bill starts there)."""
        self._noted: str | None = None
        """The detail the last `note` signal set."""
        self._deadline: DeadlineDriver | None = None
        """A deadline job's market decisions (set by run() under the DEADLINES patch)."""
        self._moved_to: ClusterHandle | None = None
        """A deadline job's ready spot cluster its next attempt runs on (it left on-demand)."""
        self._monitored = 0
        """The attempt whose program runs (a deadline job on on-demand may be making the next)."""
        self._pool_grant: WorkerGrant | None = None
        """A pool job's last grant from its pool (workflows/pool_job.py)."""

    # ---- the CLI's view: `state` and `cancel` are StateAndCancel's --------------------
    def _cancel_noted(self) -> None:
        """The state shows the request too (it is carried over continue-as-new with it)."""
        self._state.cancel_requested = True

    @workflow.signal(name=NOTE_SIGNAL)
    def note(self, text: str | None) -> None:
        """What a running activity waits out (a full disk: activities/space.py), shown as the
        job's detail until it is over (None), in its state and its memo (what `status` lists)."""
        if self._state.status.is_terminal:
            return
        if not self._running:  # before run(): recorded, and published with the run's first publication
            self._noted = text
            self._state.detail = text
            return
        if not workflow.patched(NOTES):
            return
        if text is None and self._state.detail != self._noted:
            return  # the job moved on and wrote its own detail meanwhile
        self._noted = text
        self._state = self._state.model_copy(update={"detail": text})
        self._publish()

    @workflow.signal(name=PRIORITY_SIGNAL)
    def set_priority(self, priority: int) -> None:
        """A new priority (`spotctl set-priority`): shown at once; a create_cluster waiting for a
        launch slot is asked again under it (_create_waiting). Out of range or once the job
        ended: ignored (the CLI checks both first)."""
        if self._state.status.is_terminal or not MIN_PRIORITY <= priority <= MAX_PRIORITY:
            return
        self._state = self._state.model_copy(update={"priority": priority})
        if self._running and workflow.patched(LAUNCH_PRIORITY):
            self._publish()

    @workflow.signal(name=GRANT_SIGNAL)
    def pool_grant(self, grant: WorkerGrant) -> None:
        """A pool job's pool hands it a worker (or refuses it): workflows/pool_job.py waits for it."""
        self._pool_grant = grant

    # ---- the job ---------------------------------------------------------------------
    @workflow.run
    async def run(self, spec: JobSpec) -> JobState:
        self._running = True
        if not workflow.patched(CONTROLLER_V2):
            return await self._run_v1(spec)
        self._spec = spec
        if spec.deadline is not None and workflow.patched(DEADLINES):
            self._deadline = DeadlineDriver(spec.deadline, spec.submitted_at, any(c.use_spot for c in spec.candidates))
            if workflow.patched(DEADLINE_RESTARTS):
                self._deadline.learn()
            if workflow.patched(DEADLINE_SPELLS):
                self._deadline.learn_spells(spec.candidates, spec.ondemand_candidates)
        self._candidates = spec.candidates
        """The spec's candidates, re-priced with live spot prices at every recovery."""
        self._node_spec = spec.for_nodes()
        self._carried_wait = None
        # self._state and self._cancel_requested are __init__'s, with what handlers recorded since.
        if spec.carried is not None:  # a continued-as-new run picks up where the last one stopped
            c = spec.carried
            self._attempt, self._restarts_used = c.attempt, c.restarts_used
            self._blocked_regions = dict(c.blocked_regions)
            self._last_location = c.last_location
            if c.waiting_since is not None:
                self._carried_wait = (c.waiting_since, c.backoff_retry)
        else:
            self._attempt = spec.task.attempt_base if spec.task else 0
        self._publish()
        self._outbox = EventOutbox(job_id=spec.job_id, name=spec.name, notify=spec.notify,
                                   callback=spec.event_callback, spec=spec.for_nodes(), chat=spec.chat,
                                   pending=spec.carried.events if spec.carried else None,
                                   seq=spec.carried.event_seq if spec.carried else 0)
        if spec.carried is None:
            self._outbox.record(self._state, None)
        final: Finished
        on_pool = spec.pool is not None and workflow.patched(POOLS_PATCH)
        try:
            await (PoolAttempts(self).run() if on_pool else self._run_attempts())
            final = Finished(JobStatus.SUCCEEDED)
        except Finished as done:
            final = done
        except (Cancelled, asyncio.CancelledError):
            self._set(JobStatus.CANCELLING, detail="cancelling: tearing down")
            final = Finished(JobStatus.CANCELLED, "cancelled by user")
        except ActivityError as exc:  # a named error nothing here handles: no retry can mend it
            workflow.logger.exception("job %s: an activity failed for good", spec.job_id)
            final = Finished(JobStatus.FAILED_CONTROLLER, f"controller error: {describe(exc)}")
        # Anything else is a bug in this code: it fails the workflow task, which Temporal
        # retries, so deploying the fix resumes the job where it was.
        self._close_attempt(final.status.value.lower() if final.status != JobStatus.SUCCEEDED else "succeeded")
        # Every cluster tagged with the job is looked for, whatever its attempt (one list call
        # per region); the range is what requests made before `by_tag` meant, kept for replay.
        first = (spec.task.attempt_base if spec.task else 0) + 1
        if on_pool:  # its workers are the pool's: only the job's own staged files go
            if spec.ephemeral_buckets:
                await final_teardown(teardown_request(spec.job_id, [], first_attempt=1, last_attempt=0,
                                                      delete_buckets=spec.ephemeral_buckets, by_tag=False))
        else:
            await self._final_teardown(first_attempt=max(first, self._attempt - 1),
                                       delete_buckets=spec.ephemeral_buckets)
        self._set(final.status, failure_reason=final.reason if final.status != JobStatus.SUCCEEDED else None,
                  failure=final.failure if final.status != JobStatus.SUCCEEDED else None,
                  exit_code=final.exit_code if final.exit_code is not None else self._state.exit_code,
                  ended_at=workflow.now(), detail=None, last_attempt=self._attempt)
        await self._outbox.finish()
        return await end(self._state, task=spec.task is not None)  # Failed or Canceled as the job (job_end.py)

    async def _run_v1(self, spec: JobSpec) -> JobState:
        """A job started by the first controller ends under it: frozen, composed, sharing only
        the state and the cancel flag (workflows/legacy/)."""
        return await ControllerV1(_V1Host(self)).run(spec)

    async def _run_attempts(self) -> None:
        while True:
            if self._cancel_requested:
                raise Cancelled()
            first_of_run = self._spec.carried.attempt if self._spec.carried else 0
            if self._moved_to is None and (self._attempt >= first_of_run + self._spec.continue_as_new_after_attempts
                                           or self._history_is_long()):
                self._continue_as_new()
            cluster, self._moved_to = self._moved_to or await self._provision(), None
            self._monitored = self._attempt
            ref = AttemptRef(job=self._node_spec, attempt=self._attempt, recovery_count=self._state.recoveries,
                             cluster=cluster)
            self._open_attempt(cluster)
            self._set(JobStatus.STARTING, detail=f"setting up on {cluster.region}/{cluster.zone}")
            try:
                setup = await self._activity(SetupActivities.setup, ref, timedelta(days=1))
                if setup.exit_code != 0:
                    raise Finished(JobStatus.FAILED_SETUP, f"setup failed with exit code {setup.exit_code}", setup.exit_code)
                await self._activity(RunActivities.start_run, ref, timedelta(minutes=5))
                if self._deadline is not None:
                    self._state = self._deadline.restarted(self._state, self._launched_at, workflow.now())
                self._set(JobStatus.RUNNING, run_started_at=workflow.now(), detail=None,
                          started_at=self._state.started_at or workflow.now())
                own_queue = workflow.patched(MONITOR_QUEUE)
                long_beat = own_queue and workflow.patched(MONITOR_HEARTBEAT)
                monitoring = self._activity(MonitorActivities.monitor, ref, timedelta(days=365),
                                            task_queue=monitor_queue(workflow.info().task_queue) if own_queue else None,
                                            makes_nothing=own_queue,
                                            heartbeat=_MONITOR_HEARTBEAT if long_beat else HEARTBEAT)
                if self._deadline is not None and not cluster.use_spot and workflow.patched(DEADLINE_RETURNS):
                    watched = await OnDemandWatch(self, self._deadline).run(monitoring)
                    if isinstance(watched, ClusterHandle):
                        await self._leave_ondemand(watched)
                        continue
                    outcome = watched
                else:
                    outcome = await monitoring
            except ActivityError as err:
                if error_type(err) == MOUNT_ERROR:
                    raise Finished(JobStatus.FAILED_SETUP, describe(err)) from err
                if error_type(err) == NODE_FAILURE_ERROR and workflow.patched(NODE_FAILURES):
                    await self._recover_from_node_failure(cluster, err)
                    continue
                if error_type(err) != PREEMPTED_ERROR:
                    raise
                await self._recover_from_preemption(cluster, err)
                continue
            code = outcome.exit_code
            if self._exited(code):
                if self._deadline is not None and self._deadline.measures:
                    self._state = self._state.model_copy(update={"done_at": workflow.now()})
                return
            self._set(JobStatus.RECOVERING, recoveries=self._state.recoveries + 1,
                      detail=f"run exited with code {code}; restarting")
            await self._teardown(first_attempt=self._monitored)

    def _exited(self, code: int) -> bool:
        """The program exited with `code`: True when the job succeeded; Finished when it failed
        for good; else (a restart) its restart budget is counted and the attempt closed, and
        the caller says where the job waits for its next attempt."""
        self._state.exit_code = code
        decision = after_exit(code, self._spec.recovery, self._restarts_used)
        if decision == Decision.SUCCEED:
            return True
        if decision == Decision.FAIL:
            raise Finished(JobStatus.FAILED, f"run exited with code {code}", code)
        if uses_restart_budget(code, self._spec.recovery):
            self._restarts_used += 1
        self._close_attempt(f"exit code {code}")
        return False

    async def _leave_ondemand(self, spot: ClusterHandle) -> None:
        """A deadline job ahead of its pace has a spot cluster ready: the on-demand attempt ends
        (its cluster torn down) and the next attempt runs on `spot`, resuming from its checkpoint."""
        self._close_attempt("moved to spot")
        self._set(JobStatus.STARTING, detail=f"moving to spot in {spot.cloud}/{spot.region}/{spot.zone}: "
                                             "tearing down the on-demand cluster")
        await teardown(self._teardown_request(self._monitored, None, by_tag=False, last_attempt=self._monitored))
        self._moved_to = spot

    async def _recover_from_preemption(self, cluster: ClusterHandle, err: ActivityError) -> None:
        strategy = self._spec.recovery.strategy.upper()
        where = f"{cluster.cloud}/{cluster.region}/{cluster.zone}"
        if self._deadline is not None and isinstance(err.cause, ApplicationError) and err.cause.details:
            self._deadline.reported = reported_fraction(err.cause.details[0])
        self._close_attempt("preempted")
        if strategy == "NONE":
            raise Finished(JobStatus.FAILED, f"preempted in {where}; job_recovery is NONE")
        if strategy == "EAGER_NEXT_REGION":
            self._blocked_regions = block_region(self._blocked_regions, cluster.cloud, cluster.region, workflow.now())
        self._last_location = (cluster.cloud, cluster.region, cluster.zone)
        self._set(JobStatus.RECOVERING, recoveries=self._state.recoveries + 1,
                  detail=f"preempted in {where}: {describe(err)}")
        await self._teardown(first_attempt=self._monitored)

    async def _recover_from_node_failure(self, cluster: ClusterHandle, err: ActivityError) -> None:
        """spotctl's own processes on a live node were lost with the program's exit code: run
        the attempt again elsewhere, whatever the recovery strategy, without using the restart
        budget (the program did not fail) and without blocking the region (the cloud did not)."""
        where = f"{cluster.cloud}/{cluster.region}/{cluster.zone}"
        self._close_attempt("node failure")
        self._set(JobStatus.RECOVERING, recoveries=self._state.recoveries + 1,
                  detail=f"node failure in {where}: {describe(err)}; restarting (restart budget untouched)")
        await self._teardown(first_attempt=self._monitored)

    # ---- provisioning ----------------------------------------------------------------
    async def _provision(self) -> ClusterHandle:
        """Get the next attempt a running cluster: create it at the best candidate, wait until
        it runs; while nothing has capacity, back off on durable timers until
        job_recovery.max_wait (if any) runs out. A cluster that dies or never runs before
        it is ready is torn down and its region blocked: that too is a round of the wait."""
        self._attempt += 1
        if self._attempt > 1 and workflow.patched(LIVE_PRICES):
            priced = await self._activity(
                PricingActivities.price_candidates,
                PriceRequest(candidates=self._spec.candidates, ordered=self._spec.ordered), timedelta(minutes=2))
            self._candidates = priced.candidates
        learned = await LearnedOrder.read(self._spec, self._candidates, self._activity)  # None: by price
        waited_since, retry = self._carried_wait or (workflow.now(), 0)
        self._carried_wait = None
        backoff = Backoff(initial_s=self._spec.launch_retry_initial_s, max_s=self._spec.launch_retry_max_s)
        died_rounds_wait = False  # a died-before-ready round took the patched path: attempts count too
        spot_available = True  # a deadline job's: False once a round found no spot capacity
        decided: Market | None = None  # a deadline job's market already asked for the next round
        while True:
            if self._cancel_requested:
                raise Cancelled()
            if retry and (self._history_is_long() or (died_rounds_wait and self._run_used_its_attempts())):
                self._continue_as_new(waiting=(waited_since, retry))
            pool = self._candidates if self._deadline is None else self._deadline_pool(
                decided or self._deadline_market(spot_available))
            decided = None
            candidates = order_candidates(pool, strategy=self._spec.recovery.strategy,
                                          blocked=self._blocked_regions, now=workflow.now(), last=self._last_location)
            figures = {}
            if learned is not None:
                candidates, figures["placement"] = learned.order(candidates, self._last_location)
            first = candidates[0]
            status = JobStatus.RECOVERING if self._state.status == JobStatus.RECOVERING else JobStatus.STARTING
            self._set(status, detail=f"provisioning ({len(candidates)} candidates, first {first.location} {first.instance_type})",
                      **figures)
            req = ProvisionRequest(job_id=self._spec.job_id, attempt=self._attempt, num_nodes=self._spec.num_nodes,
                                   candidates=candidates)
            self._launched_at = workflow.now()
            result = await self._create_cluster(req, status)
            if result.cluster is not None:
                ready = await self._wait_ready(result.cluster)
                if ready is not None:
                    return ready
                # Torn down, its region blocked. GCE's spot stock-outs take this path: a round
                # of the wait like any other (before the patch: the next place at once, for ever).
                if not workflow.patched(DIED_BEFORE_READY_BACKOFF):
                    continue
                died_rounds_wait = True
                failed = self._state.failure_data or JobFailure(
                    message=self._state.failure_reason or "the cluster failed before it ran")
            else:
                failed = JobFailure(candidates=result.failures[:5])
                if all_fatal(result.failures):
                    raise Finished(JobStatus.FAILED_PRECHECKS,
                                   failure=failed.under("no candidate can ever be provisioned"))
                if self._deadline is not None and spot_available and self._deadline.last == Market.SPOT:
                    decided = self._deadline_market(spot_available=False)
                    if decided == Market.ONDEMAND:  # no spot capacity: the policy takes on-demand now, no wait
                        spot_available = False
                        continue
                    decided = None
            spot_available = True
            max_wait = self._spec.recovery.max_wait_s
            elapsed = (workflow.now() - waited_since).total_seconds()
            if max_wait is not None and elapsed >= max_wait:
                raise Finished(JobStatus.FAILED_NO_RESOURCE, failure=failed.under(f"no capacity for {elapsed:.0f}s"))
            delay = backoff.delay(retry, workflow.random().random())
            cap = self._deadline.wait_cap_s(self._state, workflow.now()) if self._deadline is not None else None
            if cap is not None:  # a deadline job waiting for spot asks again before its safety net is due
                delay = min(delay, max(cap, self._spec.launch_retry_initial_s))
            if max_wait is not None:
                delay = min(delay, max(0.0, max_wait - elapsed))
            retry += 1
            self._set(self._state.status, failure_reason=failed.text(), failure=failed,
                      detail=_waiting_detail(result, delay))
            await self._sleep(delay)

    async def _create_cluster(self, req: ProvisionRequest, status: JobStatus) -> ProvisionResult:
        """create_cluster on the launch queue. When no worker takes it within LAUNCH_SLOT_WAIT
        (every worker is at its max_concurrent_launches), the job shows that it waits for a
        launch slot (PENDING on its first launch) and asks again, without a time limit. The
        first ask never started (a schedule-to-start time-out), so nothing is made twice."""
        if not workflow.patched(LAUNCH_SLOTS):
            return await self._activity(ProvisionActivities.create_cluster, req, timedelta(minutes=10))
        queue = launch_queue(workflow.info().task_queue)
        prioritized = workflow.patched(LAUNCH_PRIORITY)
        try:
            return await self._activity(ProvisionActivities.create_cluster, req, timedelta(minutes=10),
                                        task_queue=queue, schedule_to_start=LAUNCH_SLOT_WAIT,
                                        priority=self._launch_priority() if prioritized else None)
        except ActivityError as err:
            if not _timed_out_in_queue(err):
                raise
        detail = self._state.detail
        self._set(JobStatus.PENDING if status == JobStatus.STARTING else status,
                  detail="waiting for a launch slot (every worker is at its worker.max_concurrent_launches)")
        if prioritized:
            result = await self._create_waiting(req, queue)
        else:
            result = await self._activity(ProvisionActivities.create_cluster, req, timedelta(minutes=10),
                                          task_queue=queue)
        self._set(status, detail=detail)
        return result

    def _launch_priority(self) -> Priority:
        return Priority(priority_key=priority_key(self._state.priority))

    async def _create_waiting(self, req: ProvisionRequest, queue: str) -> ProvisionResult:
        """create_cluster, waiting for a launch slot under the job's priority; when the priority
        changes meanwhile, the ask is cancelled and made again under the new one. The ask may
        have started just before its cancel: create_cluster is idempotent by its token and the
        next ask adopts what it made (activities/provision.py), so nothing is made twice."""
        while True:
            asked = self._state.priority
            handle = workflow.start_activity_method(
                ProvisionActivities.create_cluster, req, start_to_close_timeout=timedelta(minutes=10),
                heartbeat_timeout=HEARTBEAT, retry_policy=INFRA_RETRY,
                cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
                summary=f"create_cluster (attempt {self._attempt}, priority {asked})", task_queue=queue,
                priority=self._launch_priority())
            await workflow.wait_condition(
                lambda h=handle, a=asked: h.done() or self._cancel_requested or self._state.priority != a)  # type: ignore[misc]
            if handle.done():
                return handle.result()
            handle.cancel()
            await _stopped(handle)
            if self._cancel_requested:
                raise Cancelled()
            if not _was_cancelled(handle):
                return handle.result()  # it ended before it heard the cancel: its result (or error) stands

    async def _wait_ready(self, cluster: ClusterHandle) -> ClusterHandle | None:
        """The cluster once it runs, or None when it died or never ran (it is then torn down
        and its region blocked for a while)."""
        where = f"{cluster.cloud}/{cluster.region}/{cluster.zone}"
        self._set(self._state.status, detail=f"waiting for {len(cluster.instance_ids)} instance(s) in {where}")
        req = ReadyRequest(cluster=cluster, deadline=workflow.now() + READY_TIMEOUT)
        try:
            ready = await self._activity(ProvisionActivities.wait_cluster_ready, req, READY_TIMEOUT * 2)
        except ActivityError as err:
            if error_type(err) not in (PREEMPTED_ERROR, NOT_READY_ERROR):
                raise
            self._blocked_regions = block_region(self._blocked_regions, cluster.cloud, cluster.region, workflow.now())
            self._set(self._state.status, failure_reason=describe(err), failure=JobFailure.of(describe(err)),
                      detail=f"{where} failed before it ran; trying elsewhere")
            await self._teardown(first_attempt=self._attempt)
            self._attempt += 1  # a new token: the dead cluster's would give it back
            return None
        self._set(self._state.status, cloud=ready.cloud, region=ready.region, zone=ready.zone, attempt=self._attempt)
        return ready

    # ---- continue-as-new -------------------------------------------------------------
    def _run_used_its_attempts(self) -> bool:
        """This run numbered continue_as_new_after_attempts attempts (clusters that died before
        they ran use attempt numbers too); the current, unused one is not counted."""
        first_of_run = self._spec.carried.attempt if self._spec.carried else 0
        return self._attempt - 1 >= first_of_run + self._spec.continue_as_new_after_attempts

    def _history_is_long(self) -> bool:
        info = workflow.info()
        return (info.get_current_history_length() >= self._spec.continue_as_new_after_events
                or info.is_continue_as_new_suggested())

    def _continue_as_new(self, waiting: tuple | None = None) -> None:
        """Hand the job to a fresh run of this workflow (same workflow id, a new history),
        when no cluster is alive: between attempts, or between rounds of waiting for
        capacity (`waiting` = (since, rounds so far); the attempt is then not yet used)."""
        carried = CarriedState(
            state=self._state, attempt=self._attempt - (1 if waiting else 0), restarts_used=self._restarts_used,
            blocked_regions=self._blocked_regions, last_location=self._last_location,
            waiting_since=waiting[0] if waiting else None, backoff_retry=waiting[1] if waiting else 0,
            events=self._outbox.pending, event_seq=self._outbox.seq,
        )
        workflow.continue_as_new(self._spec.model_copy(update={"carried": carried}))

    # ---- attempts' records -----------------------------------------------------------
    def _open_attempt(self, cluster: ClusterHandle) -> None:
        """Record the attempt, with what its bill needs: the price paid, the node count and
        when the cluster was asked for. Only data the workflow already has (no new command),
        so histories recorded before these fields replay unchanged."""
        now = workflow.now()
        record = AttemptRecord(attempt=self._attempt, cloud=cluster.cloud, region=cluster.region, zone=cluster.zone,
                               instance_type=cluster.instance_type, started_at=now,
                               launched_at=self._launched_at or now, use_spot=cluster.use_spot,
                               price=cluster.price, nodes=len(cluster.instance_ids) or None,
                               ondemand_price=self._ondemand_price(cluster),
                               task=self._spec.task.index if self._spec.task else None)
        self._state.history = self._state.history + [record]
        self._state = keep_last(self._state, HISTORY_KEPT, now)  # the dropped ones' cost is kept
        if self._deadline is not None:
            self._state = self._deadline.opened(self._state, now, cluster.use_spot)

    def _deadline_market(self, spot_available: bool) -> Market:
        """A deadline job's market for the next round, as its policy decides now (the decision's
        slack recorded in the state)."""
        assert self._deadline is not None
        market, self._state = self._deadline.choose(self._state, workflow.now(), spot_available=spot_available)
        return market

    def _deadline_pool(self, market: Market) -> list[Candidate]:
        """A deadline job's candidates for `market` (spot when its policy says wait but a round
        is being made anyway; a done job runs on as it was)."""
        assert self._deadline is not None
        return self._deadline.pool(market, self._candidates, self._spec.ondemand_candidates)

    def _ondemand_price(self, cluster: ClusterHandle) -> float | None:
        """The on-demand price of the cluster's offering, from the job's candidates (priced at
        launch from the catalog): no I/O here."""
        if not cluster.use_spot:
            return cluster.price
        place = (cluster.cloud, cluster.region, cluster.zone, cluster.instance_type)
        return next((c.ondemand_price for c in self._spec.candidates
                     if (c.cloud, c.region, c.zone, c.instance_type) == place), None)

    def _close_attempt(self, outcome: str) -> None:
        if self._state.history and self._state.history[-1].outcome is None:
            self._state.history[-1].outcome = outcome
            self._state.history[-1].ended_at = workflow.now()
            if self._deadline is not None and outcome != "succeeded":
                ran = (workflow.now() - self._state.run_started_at).total_seconds() if self._state.run_started_at else 0.0
                self._state = self._deadline.ran(self._state, ran)

    # ---- activities and timers -------------------------------------------------------
    async def _activity(self, method: Callable[[Any, Arg], Awaitable[Result]], arg: Arg, timeout: timedelta, *,
                        task_queue: str | None = None, schedule_to_start: timedelta | None = None,
                        makes_nothing: bool = False, heartbeat: timedelta = HEARTBEAT,
                        priority: Priority | None = None) -> Result:
        """Run one activity, `method` of its implementation class (a typed reference: the type
        checker matches `arg` and the result with it; the SDK takes its registered name from
        its `@activity.defn`), heartbeating, retried forever but for the named errors, on the
        workflow's task queue or `task_queue`. A cancel cancels it and waits until it has
        stopped, then raises Cancelled: only then may the teardown look for what it made.
        An activity that `makes_nothing` (the monitor) is not waited for: it hears the cancel
        on its next heartbeat, up to a throttle interval later, and the teardown need not wait."""
        if self._cancel_requested:
            raise Cancelled()
        cancellation = (ActivityCancellationType.TRY_CANCEL if makes_nothing
                        else ActivityCancellationType.WAIT_CANCELLATION_COMPLETED)
        handle = workflow.start_activity_method(
            method, arg, start_to_close_timeout=timeout, heartbeat_timeout=heartbeat,
            retry_policy=INFRA_RETRY, cancellation_type=cancellation,
            summary=f"{method.__name__} (attempt {self._attempt})", task_queue=task_queue,
            schedule_to_start_timeout=schedule_to_start, priority=priority or Priority.default,
        )
        try:
            await workflow.wait_condition(lambda: handle.done() or self._cancel_requested)
        except asyncio.CancelledError:  # a plain Temporal cancel of the workflow
            handle.cancel()
            await _stopped(handle)
            raise
        if not handle.done():
            handle.cancel()
            await _stopped(handle)
            raise Cancelled()
        return handle.result()

    async def _sleep(self, seconds: float) -> None:
        """A durable timer that a cancel interrupts."""
        try:
            await workflow.wait_condition(lambda: self._cancel_requested, timeout=timedelta(seconds=seconds))
        except TimeoutError:
            return
        raise Cancelled()

    async def _teardown(self, first_attempt: int, delete_buckets: list[str] | None = None, *,
                        by_tag: bool = False) -> None:
        """Terminate the clusters of attempts first_attempt..current (`by_tag`: every cluster
        tagged with the job) and, at the job's end, its ephemeral buckets; retried until the
        cloud confirms nothing is left."""
        if self._attempt < first_attempt and not delete_buckets:
            return
        await teardown(self._teardown_request(first_attempt, delete_buckets, by_tag=by_tag))

    async def _final_teardown(self, first_attempt: int, delete_buckets: list[str]) -> None:
        """The job's last teardown, shielded: a second cancel arriving meanwhile is noted and
        the teardown awaited again, so the job always ends with nothing left."""
        if self._attempt < first_attempt and not delete_buckets:
            return
        await final_teardown(self._teardown_request(first_attempt, delete_buckets, by_tag=True))

    def _teardown_request(self, first_attempt: int, delete_buckets: list[str] | None, *,
                          by_tag: bool, last_attempt: int | None = None) -> TeardownRequest:
        """Attempts first_attempt..last_attempt (default: the current one), wherever either
        market's candidates put them."""
        return teardown_request(self._spec.job_id, self._spec.candidates + self._spec.ondemand_candidates,
                                first_attempt=first_attempt,
                                last_attempt=self._attempt if last_attempt is None else last_attempt,
                                delete_buckets=delete_buckets or [], by_tag=by_tag)

    # ---- state and visibility --------------------------------------------------------
    def _leave_running(self) -> None:
        if self._state.run_started_at is not None:
            ran = (workflow.now() - self._state.run_started_at).total_seconds()
            self._state.job_duration_s += ran
            self._state.run_started_at = None

    def _set(self, status: JobStatus, **changes) -> None:
        """Move to `status` (updating fields) and publish the change to visibility."""
        previous = self._state.status
        if status != JobStatus.RUNNING and previous == JobStatus.RUNNING:
            self._leave_running()
        self._state = self._state.model_copy(update={"status": status, **changes})
        self._publish()
        if status != previous:
            self._outbox.record(self._state, previous)

    def _publish(self) -> None:
        self._visibility.publish(self._state)


class _V1Host:
    """The workflow as the first controller sees it (legacy.V1Host): the JobState its query
    returns and its signals write, and the cancel flag; nothing else of it."""

    def __init__(self, wf: SpotJobWorkflow) -> None:
        self._wf = wf

    @property
    def state(self) -> JobState:
        return self._wf._state

    @state.setter
    def state(self, value: JobState) -> None:
        self._wf._state = value

    @property
    def cancel_requested(self) -> bool:
        return self._wf._cancel_requested

    @cancel_requested.setter
    def cancel_requested(self, value: bool) -> None:
        self._wf._cancel_requested = value


def _was_cancelled(handle: workflow.ActivityHandle) -> bool:
    """The stopped activity ended by its cancel (not with a result or an error of its own)."""
    if handle.cancelled():
        return True
    exc = handle.exception()
    return isinstance(exc, ActivityError) and isinstance(exc.cause, CancelledError)


def _timed_out_in_queue(err: ActivityError) -> bool:
    """The activity was never picked up within its schedule-to-start time-out."""
    cause = err.cause
    return isinstance(cause, TemporalTimeout) and cause.type == TimeoutType.SCHEDULE_TO_START


async def _stopped(handle: workflow.ActivityHandle) -> None:
    """Wait until a cancelled activity has really stopped (its cancellation type waits for
    the activity to acknowledge), whatever cancel arrives meanwhile."""
    await until_done(handle)
    if not handle.cancelled():
        handle.exception()  # retrieved, so it is not reported as never retrieved


def _waiting_detail(result: ProvisionResult, delay: float) -> str:
    if result.cluster is not None:
        return f"{result.cluster.cloud}/{result.cluster.region} failed before it ran, retry in {delay:.0f}s"
    if result.failures and all(f.kind == ErrorKind.THROTTLED for f in result.failures):
        return f"cloud API throttled, retry in {delay:.0f}s"
    regions = len({f.location.rsplit("/", 1)[0] for f in result.failures})
    return f"no capacity in {regions} region(s), retry in {delay:.0f}s"
