"""SpotPoolWorkflow: one pool of workers (`spotctl pool apply`), as one durable workflow.

The pool keeps between min_workers and max_workers workers: single-node clusters made with the
job's activities (create_cluster on the launch queue, wait_cluster_ready, setup once per
worker, teardown) and placed by the job's rules (policy.order_candidates with the task's
recovery strategy and blocked regions, the fleet's learned order when the pool's task is
ranked by expected cost, a backoff while nothing has capacity). It hands idle workers to
waiting jobs one at a time, higher priority first, then the oldest job (models/pool.py); the
job runs its program on the worker itself (workflows/pool_job.py) and gives the worker back.

Workers change so:
    provisioning -> setting-up -> idle <-> busy
    any -> lost (it died before it ran, or under a job) -> stopping -> torn down, replaced if wanted
    idle for idle_timeout_s above what the queue wants -> stopping -> torn down
    setting-up, setup exited non-zero -> stopping (torn down); none is made until the next apply

The history stays small: a job costs a request, a grant and a release (a few events), and the
run continues as new (workers and queue carried) once it is long and nothing is in flight
(meanwhile it starts no new bring-up or probe, but still hands freed workers to waiting jobs).
`pool down` drains (waiting jobs still run) or cancels (every job of the pool is cancelled),
then tears every worker down, checks by the pool's tag that no VM is left, and deletes the
pool's staged files. Deterministic, no I/O.
"""

from __future__ import annotations

import asyncio
import heapq
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, CancelledError

with workflow.unsafe.imports_passed_through():
    from spotctl.activities import PoolActivities, ProvisionActivities, SetupActivities
    from spotctl.models import (
        NOT_READY_ERROR,
        PREEMPTED_ERROR,
        AttemptRef,
        ClusterHandle,
        ProvisionRequest,
        ReadyRequest,
        launch_queue,
    )
    from spotctl.models import search_attributes as sa
    from spotctl.models.naming import job_workflow_id
    from spotctl.models.pool import (
        DOWN_CANCEL,
        DOWN_SIGNAL,
        GRANT_SIGNAL,
        HIDE_SIGNAL,
        MAX_QUEUED,
        POOL_WORKFLOW,
        RELEASE_SIGNAL,
        REQUEST_SIGNAL,
        STATE_QUERY,
        UPDATE_SIGNAL,
        PoolCarried,
        PoolRelease,
        PoolRequest,
        PoolSpec,
        PoolState,
        PoolWorker,
        WorkerGrant,
    )
    from spotctl.policy import Backoff, block_region, order_candidates
    from spotctl.workflows.fleet_placement import LearnedOrder
    from spotctl.workflows.job_summary import describe, error_type
    from spotctl.workflows.retry import HEARTBEAT, INFRA_RETRY
    from spotctl.workflows.teardown import final_teardown, teardown, teardown_request

READY_TIMEOUT = timedelta(minutes=15)
ALIVE = ("provisioning", "setting-up", "idle", "busy")
CANCEL_SIGNAL = "cancel"
"""The job workflow's cancel signal (workflows/handlers.py StateAndCancel.cancel)."""
HANDOVER_GRANTS = "pool-handover-grants"
"""The patch that keeps handing idle workers to waiting jobs while the run waits to continue as
new (a worker being made or torn down can take minutes: before it, every worker freed meanwhile
stayed idle with jobs waiting; bench/pool_throughput.py saw busy workers fall from 200 to 32 of
200 for 20 s). Bounded: past HANDOVER_GRANTS_UNTIL times the run's length, it stops granting too."""
HANDOVER_GRANTS_UNTIL = 2


@workflow.defn(name=POOL_WORKFLOW)
class SpotPoolWorkflow:
    @workflow.init
    def __init__(self, spec: PoolSpec) -> None:
        c = spec.carried
        self._spec = spec
        self._min, self._max = spec.min_workers, spec.max_workers
        self._workers: dict[int, PoolWorker] = {w.slot: w for w in c.workers} if c else {}
        self._waiting: dict[int, PoolRequest] = {r.job_id: r for r in c.queue} if c else {}
        self._heap: list[tuple[Any, int, int]] = []
        for r in list(self._waiting.values()):
            self._enqueue(r)
        self._next_slot = c.next_slot if c else 1
        self._spend = c.spend if c else 0.0
        self._blocked: dict[str, datetime] = dict(c.blocked_regions) if c else {}
        self._down: str | None = c.down if c else None
        self._cancels_sent = False
        self._changed = True
        self._in_flight = 0
        self._handing_over = False
        self._failures = 0
        """Workers lost before they ran, in a row: the next bring-up backs off this far."""
        self._setup_failed: str | None = None
        self._refused: list[PoolRequest] = []
        self._probed_at = workflow.now()
        self._probing = False
        self._bring_ups: dict[int, asyncio.Task] = {}
        """The workers being made, by slot: `pool down` cancels them (a setup may take hours)."""

    # ---- signals and the query ----------------------------------------------------------
    @workflow.signal(name=REQUEST_SIGNAL)
    def request(self, req: PoolRequest) -> None:
        held = next((w for w in self._workers.values() if w.job_id == req.job_id and w.job_seq == req.seq), None)
        queued = self._waiting.get(req.job_id)
        moved = held is None and queued is not None and queued.seq == req.seq and queued.priority != req.priority
        if not moved and (held is not None or (queued is not None and queued.seq >= req.seq)):
            return  # a repeated request (the job's workflow retried its signal)
        if not moved and (self._down is not None or len(self._waiting) >= MAX_QUEUED):
            self._refused.append(req)
        else:  # a new request, or `spotctl set-priority` on a waiting job (its old heap entry is skipped)
            self._enqueue(req)
        self._changed = True

    def _enqueue(self, req: PoolRequest) -> None:
        """`req` waits, in the heap by its order key; an entry whose request was withdrawn,
        superseded or moved is skipped when it comes up (_assign)."""
        self._waiting[req.job_id] = req
        heapq.heappush(self._heap, (req.order_key(), req.job_id, req.seq))

    @workflow.signal(name=RELEASE_SIGNAL)
    def release(self, rel: PoolRelease) -> None:
        waiting = self._waiting.get(rel.job_id)
        if waiting is not None and waiting.seq == rel.seq:
            del self._waiting[rel.job_id]  # its heap entry is skipped when it comes up
        for w in self._workers.values():
            if w.job_id == rel.job_id and w.job_seq == rel.seq and w.phase == "busy":
                w.job_id = None
                if rel.lost:
                    w.phase, w.detail = "lost", f"lost under job {rel.job_id}"
                    if w.cluster is not None and self._spec.job.recovery.strategy.upper() == "EAGER_NEXT_REGION":
                        self._blocked = block_region(self._blocked, w.cluster.cloud, w.cluster.region, workflow.now())
                else:
                    w.phase, w.idle_since = "idle", workflow.now()
        self._changed = True

    @workflow.signal(name=UPDATE_SIGNAL)
    def update(self, counts: list[int]) -> None:
        """`pool apply` on an existing pool: new [min_workers, max_workers]; a failed setup is tried again."""
        self._min, self._max = counts[0], counts[1]
        self._setup_failed = None
        self._changed = True

    @workflow.signal(name=DOWN_SIGNAL)
    def down(self, mode: str) -> None:
        if self._down != DOWN_CANCEL:  # cancel wins over drain
            self._down = mode
        self._changed = True

    @workflow.signal(name=HIDE_SIGNAL)
    def hide(self) -> None:
        """Take the pool out of the web UI's list of jobs (a pool started before pools carried the
        internal division). A new handler: old histories never call it and replay unchanged;
        continue-as-new carries the attribute on."""
        if workflow.info().typed_search_attributes.get(sa.DIVISION) != sa.INTERNAL_DIVISION:
            workflow.upsert_search_attributes([sa.DIVISION.value_set(sa.INTERNAL_DIVISION)])

    @workflow.query(name=STATE_QUERY)
    def state(self) -> PoolState:
        now = workflow.now()
        running = sum(_cost(w, now) for w in self._workers.values())
        order = sorted(self._waiting.values(), key=PoolRequest.order_key)[:20]
        return PoolState(
            name=self._spec.name, pool_id=self._spec.job.job_id, status=self._status(), min_workers=self._min,
            max_workers=self._max, resources=self._spec.job.resources,
            instance_types=sorted({c.instance_type for c in self._spec.job.candidates}),
            workers=sorted(self._workers.values(), key=lambda w: w.slot), queued=len(self._waiting),
            queued_jobs=[r.job_id for r in order], spend=self._spend + running, now=now, detail=self._setup_failed,
            config=self._spec.config)

    def _status(self) -> str:
        if self._down is not None:
            return "CANCELLING" if self._down == DOWN_CANCEL else "DRAINING"
        ready = sum(1 for w in self._workers.values() if w.phase in ("idle", "busy"))
        return "READY" if ready >= self._wanted() else "SCALING"

    # ---- the loop -------------------------------------------------------------------------
    @workflow.run
    async def run(self, spec: PoolSpec) -> PoolState:
        while True:
            try:
                await workflow.wait_condition(lambda: self._changed, timeout=self._next_wake())
            except TimeoutError:
                pass
            self._changed = False
            self._answer_refused()
            if self._down == DOWN_CANCEL and not self._cancels_sent:
                self._cancel_jobs()
            if self._down is not None and not self._waiting:
                for task in self._bring_ups.values():
                    task.cancel()  # nothing will want them: the pool is going down
            for w in list(self._workers.values()):
                if w.phase == "lost":
                    self._retire(w)
            if not self._handing_over:
                self._probe_idle()
                self._assign()
                self._scale()
            elif self._grants_while_handing_over():
                self._assign()  # grants are quick signals: the hand-over waits for the slow work only
            if self._down is not None and not self._workers and not self._waiting and self._in_flight == 0:
                break
            if self._in_flight == 0 and self._history_is_long():
                self._continue_as_new()
            if self._history_is_long():
                self._handing_over = True  # start nothing new; continue as new once the rest is done
        # Whatever a cancelled bring-up left, and the pool's staged files.
        await final_teardown(teardown_request(
            self._spec.job.job_id, self._spec.job.candidates, first_attempt=1, last_attempt=self._next_slot,
            delete_buckets=self._spec.job.ephemeral_buckets, by_tag=True), summary="pool down")
        return self.state()

    def _wanted(self) -> int:
        busy = sum(1 for w in self._workers.values() if w.phase == "busy")
        if self._down is not None:
            return busy + (len(self._waiting) if self._down != DOWN_CANCEL else 0)
        return max(self._min, min(self._max, busy + len(self._waiting)))

    def _next_wake(self) -> timedelta | None:
        """When the idle workers are next probed, or one above what is wanted will have idled
        long enough; None (no timer) without idle workers."""
        idle = [w.idle_since for w in self._workers.values() if w.phase == "idle" and w.idle_since is not None]
        if not idle:
            return None
        dues = [self._probed_at + timedelta(seconds=self._spec.probe_s)]
        if self._alive() > self._wanted():
            dues.append(min(idle) + timedelta(seconds=self._spec.idle_timeout_s))
        return max(min(dues) - workflow.now(), timedelta(seconds=1))

    def _probe_idle(self) -> None:
        """Every probe_s, ask the cloud whether the idle workers still live (a busy one is its
        job's monitor's to watch): a dead one is replaced before a job is handed it."""
        if self._probing or workflow.now() - self._probed_at < timedelta(seconds=self._spec.probe_s):
            return
        idle = [w for w in self._workers.values() if w.phase == "idle" and w.cluster is not None]
        if not idle:
            return
        self._probed_at = workflow.now()
        self._start(self._probe(idle))

    async def _probe(self, idle: list[PoolWorker]) -> None:
        clusters = [w.cluster for w in idle if w.cluster is not None]
        self._probing = True
        try:
            dead = set(await self._activity(PoolActivities.dead_workers, clusters, timedelta(minutes=2)))
        finally:
            self._probing = False
            self._probed_at = workflow.now()
        for w in idle:
            if w.phase == "idle" and w.name in dead:
                w.phase, w.detail = "lost", "taken back by the cloud while idle"

    def _alive(self) -> int:
        return sum(1 for w in self._workers.values() if w.phase in ALIVE)

    def _assign(self) -> None:
        idle = sorted((w for w in self._workers.values() if w.phase == "idle"), key=lambda w: w.slot)
        while idle and self._heap:
            key, job_id, seq = heapq.heappop(self._heap)
            req = self._waiting.get(job_id)
            if req is None or req.seq != seq or req.order_key() != key:
                continue  # withdrawn, superseded by a later request, or moved by a new priority
            del self._waiting[job_id]
            w = idle.pop(0)
            w.phase, w.job_id, w.job_seq, w.idle_since, w.detail = "busy", job_id, seq, None, None
            assert w.cluster is not None
            self._start(self._grant(w, WorkerGrant(seq=seq, worker=w.cluster.cluster_name, cluster=w.cluster)))

    def _scale(self) -> None:
        wanted = self._wanted()
        alive = self._alive()
        if self._setup_failed is None:
            for _ in range(max(0, wanted - alive)):
                w = PoolWorker(slot=self._next_slot, launched_at=workflow.now())
                self._next_slot += 1
                self._workers[w.slot] = w
                self._bring_ups[w.slot] = self._start(self._bring_up(w))
        now = workflow.now()
        grace = timedelta(seconds=0 if self._down is not None else self._spec.idle_timeout_s)
        surplus = alive - wanted
        for w in sorted(self._workers.values(), key=lambda w: w.slot, reverse=True):
            if surplus <= 0:
                break
            if w.phase == "idle" and (w.idle_since is None or now - w.idle_since >= grace):
                self._retire(w)
                surplus -= 1

    def _retire(self, w: PoolWorker) -> None:
        """Tear worker `w` down (its detail says why, when it has one)."""
        w.phase = "stopping"
        self._start(self._tear_down(w))

    def _start(self, work: Any) -> asyncio.Task:
        """Run `work` beside the loop; the loop looks again when it ends."""
        self._in_flight += 1

        async def tracked() -> None:
            try:
                await work
            finally:
                self._in_flight -= 1
                self._changed = True
        return asyncio.get_running_loop().create_task(tracked())

    # ---- messages to jobs -------------------------------------------------------------------
    async def _signal_job(self, job_id: int, signal: str, *arg: Any) -> bool:
        """Signal job `job_id`'s workflow; False when it is over (it cannot be told anything)."""
        try:
            await workflow.get_external_workflow_handle(job_workflow_id(job_id)).signal(signal, *arg)
        except Exception:  # noqa: BLE001 - the job's workflow is over
            return False
        return True

    async def _grant(self, w: PoolWorker, grant: WorkerGrant) -> None:
        job_id = w.job_id
        if not await self._signal_job(job_id or 0, GRANT_SIGNAL, grant):  # the job is over: the worker is free again
            if w.job_id == job_id and w.job_seq == grant.seq and w.phase == "busy":
                w.phase, w.job_id, w.idle_since = "idle", None, workflow.now()

    def _answer_refused(self) -> None:
        for req in self._refused:
            why = f"pool {self._spec.name!r} is going down" if self._down else f"pool {self._spec.name!r} is full"
            self._start(self._refuse(req, why))
        self._refused = []

    async def _refuse(self, req: PoolRequest, why: str) -> None:
        await self._signal_job(req.job_id, GRANT_SIGNAL, WorkerGrant(seq=req.seq, worker="", refused=why))

    def _cancel_jobs(self) -> None:
        """`pool down --cancel`: every waiting and running job of the pool is cancelled (each
        gives its worker or its place in the queue back as it ends)."""
        self._cancels_sent = True
        jobs = sorted(set(self._waiting) | {w.job_id for w in self._workers.values() if w.job_id is not None})
        for job_id in jobs:
            self._start(self._cancel_job(job_id))

    async def _cancel_job(self, job_id: int) -> None:
        if not await self._signal_job(job_id, CANCEL_SIGNAL):  # the job is over: its place goes now
            self._waiting.pop(job_id, None)

    # ---- workers --------------------------------------------------------------------------
    async def _bring_up(self, w: PoolWorker) -> None:
        """Make worker `w` a running, set-up cluster (it ends idle), or lost; cancelled (pool
        down), it is lost: torn down by its name, and the final teardown looks by the tag."""
        try:
            await self._make(w)
        except (asyncio.CancelledError, ActivityError) as err:
            if isinstance(err, ActivityError) and not isinstance(err.cause, CancelledError):
                # A named error no retry mends (a file mount's bucket is missing): no worker can
                # be made so; the pool says why and makes none until the next `pool apply`.
                self._setup_failed = f"worker {w.slot}: {describe(err)}"
            w.phase, w.detail = "lost", ("cancelled: the pool is going down" if self._setup_failed is None
                                         else self._setup_failed)
        finally:
            self._bring_ups.pop(w.slot, None)

    async def _make(self, w: PoolWorker) -> None:
        job = self._spec.job
        backoff = Backoff(initial_s=job.launch_retry_initial_s, max_s=job.launch_retry_max_s)
        if self._failures:
            await asyncio.sleep(backoff.delay(self._failures - 1, workflow.random().random()))
        learned = await LearnedOrder.read(job, job.candidates, self._activity)
        retry = 0
        while w.cluster is None:
            if self._down == DOWN_CANCEL or (self._down is not None and not self._waiting):
                w.phase = "lost"  # nothing will want it (a draining pool still serves its waiting jobs)
                return
            candidates = order_candidates(job.candidates, strategy=job.recovery.strategy, blocked=self._blocked,
                                          now=workflow.now())
            if learned is not None:
                candidates, _ = learned.order(candidates, None)
            w.detail = f"provisioning ({len(candidates)} candidates, first {candidates[0].location})"
            w.launched_at = workflow.now()
            req = ProvisionRequest(job_id=job.job_id, attempt=w.slot, num_nodes=1, candidates=candidates)
            result = await self._activity(ProvisionActivities.create_cluster, req, timedelta(minutes=10),
                                          task_queue=launch_queue(workflow.info().task_queue))
            if result.cluster is not None:
                w.cluster = result.cluster
                break
            w.detail = f"no capacity in {len(result.failures)} place(s); retrying"
            await asyncio.sleep(backoff.delay(retry, workflow.random().random()))
            retry += 1
        cluster = w.cluster
        try:
            ready: ClusterHandle = await self._activity(
                ProvisionActivities.wait_cluster_ready, ReadyRequest(cluster=cluster, deadline=workflow.now() + READY_TIMEOUT),
                READY_TIMEOUT * 2)
            w.cluster, w.phase, w.detail = ready, "setting-up", "running setup"
            ref = AttemptRef(job=job.for_nodes(), attempt=w.slot, recovery_count=0, cluster=ready)
            setup = await self._activity(SetupActivities.setup, ref, timedelta(days=1))
        except ActivityError as err:
            if error_type(err) not in (PREEMPTED_ERROR, NOT_READY_ERROR):
                raise
            self._blocked = block_region(self._blocked, cluster.cloud, cluster.region, workflow.now())
            self._failures += 1
            w.phase, w.detail = "lost", f"{cluster.region}/{cluster.zone} failed before it ran"
            return
        if setup.exit_code != 0:
            self._setup_failed = f"setup failed with exit code {setup.exit_code} on {w.name}"
            w.detail = self._setup_failed
            self._retire(w)
            return
        self._failures = 0
        w.phase, w.idle_since, w.detail = "idle", workflow.now(), None

    async def _tear_down(self, w: PoolWorker) -> None:
        job = self._spec.job
        await teardown(teardown_request(job.job_id, job.candidates, first_attempt=w.slot, last_attempt=w.slot,
                                        delete_buckets=[], by_tag=False), summary=f"worker {w.slot}")
        self._spend += _cost(w, workflow.now())
        self._workers.pop(w.slot, None)

    async def _activity(self, method: Any, arg: Any, timeout: timedelta, *, task_queue: str | None = None) -> Any:
        return await workflow.execute_activity_method(
            method, arg, start_to_close_timeout=timeout, heartbeat_timeout=HEARTBEAT, retry_policy=INFRA_RETRY,
            task_queue=task_queue, summary=f"{method.__name__} (pool {self._spec.name})")

    # ---- continue-as-new -------------------------------------------------------------------
    def _history_is_long(self) -> bool:
        info = workflow.info()
        return (info.get_current_history_length() >= self._spec.continue_as_new_after_events
                or info.is_continue_as_new_suggested())

    def _grants_while_handing_over(self) -> bool:
        length = workflow.info().get_current_history_length()
        return (length < HANDOVER_GRANTS_UNTIL * self._spec.continue_as_new_after_events
                and workflow.patched(HANDOVER_GRANTS))

    def _continue_as_new(self) -> None:
        carried = PoolCarried(workers=list(self._workers.values()),
                              queue=sorted(self._waiting.values(), key=PoolRequest.order_key),
                              next_slot=self._next_slot, spend=self._spend, blocked_regions=self._blocked,
                              down=self._down)
        workflow.continue_as_new(self._spec.model_copy(update={
            "carried": carried, "min_workers": self._min, "max_workers": self._max}))


def _cost(w: PoolWorker, now: datetime) -> float:
    """A live worker's bill so far (its price from when its cluster was asked for)."""
    if w.cluster is None:
        return 0.0
    return w.cluster.price * max(0.0, (now - w.launched_at).total_seconds()) / 3600.0
