"""The workflow against scripted activities (the temporalio samples' idiom): races that a real
cloud makes rare but certain. Cancel during each activity, an activity that hangs, stray
infrastructure errors, throttling storms, a second cancel during the last teardown, a month
without capacity.

The activities here are stand-ins with a tiny in-memory "cloud" (a dict of instances), so
each test can say what a user would check: the job's final status, and that no instance is
left. The real activities are tested against the local cloud elsewhere."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from timeskip import quick_skipping_env  # noqa: F401  (a skip costs 10 ms, not a second: timeskip.py)

from spotctl.client import job_end
from spotctl.models import (
    ActivityNames,
    AttemptRecord,
    AttemptRef,
    Candidate,
    CandidateFailure,
    CarriedState,
    ClusterHandle,
    ErrorKind,
    ErrorScope,
    JobSpec,
    JobState,
    JobStatus,
    PricedCandidates,
    PriceRequest,
    ProvisionRequest,
    ProvisionResult,
    ReadyRequest,
    RunOutcome,
    SetupOutcome,
    TeardownRequest,
    cluster_name,
)
from spotctl.worker import job_workers, running
from spotctl.workflows import ALL_WORKFLOWS

CANDIDATES = [Candidate(cloud="fake", region=r, zone=f"{r}-a", instance_type="t", use_spot=True, price=p)
              for r, p in (("east", 1.0), ("west", 1.1))]


def job_spec(**changes) -> JobSpec:
    spec = JobSpec(job_id=int(uuid.uuid4().int % 10**9), name="scripted", run="train", candidates=CANDIDATES,
                   submitted_at=datetime.now(UTC), launch_retry_initial_s=1.0)
    return spec.model_copy(update=changes)


async def _until_cancelled(name: str) -> None:
    """Heartbeat until the workflow cancels this activity (then CancelledError is raised)."""
    while True:
        activity.heartbeat(name)
        await asyncio.sleep(0.2)


@dataclass
class FakeCloud:
    """Scripted activities over a dict of instances. `block` names an activity that runs
    until cancelled; `events` records what happened, in order."""

    block: str | None = None
    capacity_after_rounds: int = 0
    throttled_rounds: int = 0
    fail_monitor_times: int = 0
    hang_setup_once: bool = False
    teardown_s: float = 0.0
    instances: dict[str, str] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)
    rounds: int = 0
    attempts: dict[str, int] = field(default_factory=dict)

    def _count(self, name: str) -> int:
        self.attempts[name] = self.attempts.get(name, 0) + 1
        return self.attempts[name]

    async def _maybe_block(self, name: str, on_cancel: Callable[[], None] | None = None) -> None:
        if self.block != name:
            return
        self.events.append(f"{name} running")
        try:
            await _until_cancelled(name)
        except asyncio.CancelledError:
            if on_cancel:
                on_cancel()
            self.events.append(f"{name} stopped")
            raise

    def activities(self) -> list[Callable]:
        cloud = self

        @activity.defn(name=ActivityNames.CREATE_CLUSTER)
        async def create_cluster(req: ProvisionRequest) -> ProvisionResult:
            name = cluster_name(req.job_id, req.attempt)
            cloud.rounds += 1
            if cloud.rounds <= cloud.throttled_rounds:
                return ProvisionResult(failures=[CandidateFailure(
                    location=c.location, instance_type=c.instance_type, reason="RequestLimitExceeded",
                    kind=ErrorKind.THROTTLED, scope=ErrorScope.CLOUD) for c in req.candidates])
            if cloud.rounds <= cloud.capacity_after_rounds:
                return ProvisionResult(failures=[CandidateFailure(
                    location=c.location, instance_type=c.instance_type, reason="no capacity") for c in req.candidates])
            # The VM comes into being while the call is in flight (a cancel cannot stop that).
            await cloud._maybe_block(ActivityNames.CREATE_CLUSTER, lambda: cloud.instances.setdefault(name, "pending"))
            cloud.instances[name] = "pending"
            c = req.candidates[0]
            return ProvisionResult(cluster=ClusterHandle(
                cluster_name=name, cloud=c.cloud, region=c.region, zone=c.zone, instance_type=c.instance_type,
                use_spot=True, instance_ids=[name], node_ips=["127.0.0.1"]))

        @activity.defn(name=ActivityNames.PRICE_CANDIDATES)
        async def price_candidates(req: PriceRequest) -> PricedCandidates:
            return PricedCandidates(candidates=req.candidates)

        @activity.defn(name=ActivityNames.WAIT_CLUSTER_READY)
        async def wait_cluster_ready(req: ReadyRequest) -> ClusterHandle:
            await cloud._maybe_block(ActivityNames.WAIT_CLUSTER_READY)
            cloud.instances[req.cluster.cluster_name] = "running"
            return req.cluster

        @activity.defn(name=ActivityNames.SETUP)
        async def setup(ref: AttemptRef) -> SetupOutcome:
            if cloud.hang_setup_once and cloud._count("setup") == 1:
                cloud.events.append("setup hangs")
                await asyncio.sleep(3600)  # no heartbeat: the server times it out
            await cloud._maybe_block(ActivityNames.SETUP)
            return SetupOutcome(exit_code=0)

        @activity.defn(name=ActivityNames.START_RUN)
        async def start_run(ref: AttemptRef) -> None:
            await cloud._maybe_block(ActivityNames.START_RUN)

        @activity.defn(name=ActivityNames.MONITOR)
        async def monitor(ref: AttemptRef) -> RunOutcome:
            if cloud._count("monitor") <= cloud.fail_monitor_times:
                raise OSError("stray infrastructure error")
            await cloud._maybe_block(ActivityNames.MONITOR)
            return RunOutcome(exit_codes=[0])

        @activity.defn(name=ActivityNames.TEARDOWN)
        async def teardown(req: TeardownRequest) -> int:
            cloud.events.append("teardown")
            deadline = asyncio.get_running_loop().time() + cloud.teardown_s
            while asyncio.get_running_loop().time() < deadline:
                activity.heartbeat()
                await asyncio.sleep(0.2)
            gone = [n for n in cloud.instances if int(n.split("-")[1]) == req.job_id
                    and req.first_attempt <= int(n.split("-")[2]) <= req.last_attempt]
            for n in gone:
                del cloud.instances[n]
            return len(gone)

        return [create_cluster, price_candidates, wait_cluster_ready, setup, start_run, monitor, teardown]


async def run_job(client: Client, cloud: FakeCloud, spec: JobSpec,
                  during: Callable[[WorkflowHandle], object] | None = None) -> JobState:
    queue = f"races-{uuid.uuid4()}"
    async with running(job_workers(client, queue, ALL_WORKFLOWS, cloud.activities(),
                                   max_heartbeat_throttle_interval=timedelta(seconds=1))):
        handle = await client.start_workflow("SpotJobWorkflow", spec, id=f"races-{uuid.uuid4()}",
                                             task_queue=queue, result_type=JobState)
        if during is not None:
            await during(handle)
        return await job_end(handle)


async def wait_event(cloud: FakeCloud, event: str, timeout: float = 20) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while event not in cloud.events:
        assert asyncio.get_running_loop().time() < deadline, f"never saw {event!r}: {cloud.events}"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("name", [ActivityNames.CREATE_CLUSTER, ActivityNames.WAIT_CLUSTER_READY, ActivityNames.SETUP,
                                  ActivityNames.START_RUN, ActivityNames.MONITOR])
async def test_cancel_during_each_activity_waits_for_it_then_tears_down(env: WorkflowEnvironment, name: str) -> None:
    cloud = FakeCloud(block=name)

    async def cancel_while_blocked(handle: WorkflowHandle) -> None:
        await wait_event(cloud, f"{name} running")
        await handle.signal("cancel")

    state = await run_job(env.client, cloud, job_spec(), cancel_while_blocked)
    assert state.status == JobStatus.CANCELLED
    assert cloud.instances == {}, "a VM was left running"
    if name == ActivityNames.MONITOR:
        # The monitor makes nothing: the teardown does not wait for it (it hears the cancel
        # on its next heartbeat), so a cancel of 1,000 running jobs is not held up by them.
        await wait_event(cloud, f"{name} stopped")
        return
    # The cancelled activity stopped before the teardown looked for what it made.
    assert cloud.events.index(f"{name} stopped") < cloud.events.index("teardown"), cloud.events


async def test_temporal_cancel_twice_still_tears_down(env: WorkflowEnvironment) -> None:
    """A second cancel while the last teardown runs does not skip it."""
    cloud = FakeCloud(block=ActivityNames.MONITOR, teardown_s=2.0)

    async def cancel_twice(handle: WorkflowHandle) -> None:
        await wait_event(cloud, "monitor running")
        await handle.cancel()
        await wait_event(cloud, "teardown")
        await handle.cancel()

    state = await run_job(env.client, cloud, job_spec(), cancel_twice)
    assert state.status == JobStatus.CANCELLED
    assert cloud.instances == {}


async def test_hung_activity_is_retried_in_place(env: WorkflowEnvironment) -> None:
    """An activity whose worker stops answering (no heartbeat) is timed out and retried; the
    job goes on and succeeds on the same cluster, with no second attempt."""
    cloud = FakeCloud(hang_setup_once=True)
    state = await run_job(env.client, cloud, job_spec())
    assert state.status == JobStatus.SUCCEEDED
    assert state.attempt == 1 and state.recoveries == 0
    assert cloud.attempts["setup"] == 2 and cloud.instances == {}


async def test_infrastructure_errors_retry_forever(skipping_env: WorkflowEnvironment) -> None:
    """25 stray errors in a row (the first controller gave up after 20 and tore down a healthy
    run) are retried; the job succeeds."""
    cloud = FakeCloud(fail_monitor_times=25)
    state = await run_job(skipping_env.client, cloud, job_spec())
    assert state.status == JobStatus.SUCCEEDED and state.recoveries == 0
    assert cloud.attempts["monitor"] == 26


async def test_throttling_storm_backs_off_and_goes_on(skipping_env: WorkflowEnvironment) -> None:
    cloud = FakeCloud(throttled_rounds=15)
    state = await run_job(skipping_env.client, cloud, job_spec())
    assert state.status == JobStatus.SUCCEEDED
    assert cloud.rounds == 16 and cloud.instances == {}


async def test_unknown_job_ending_error_is_failed_controller_with_teardown(env: WorkflowEnvironment) -> None:
    cloud = FakeCloud()
    acts = cloud.activities()

    @activity.defn(name=ActivityNames.SETUP)
    async def setup(ref: AttemptRef) -> SetupOutcome:
        raise ApplicationError("the node's disk is read-only", type="Unmendable", non_retryable=True)

    cloud.activities = lambda: [a for a in acts if a.__name__ != "setup"] + [setup]  # type: ignore[method-assign]
    state = await run_job(env.client, cloud, job_spec())
    assert state.status == JobStatus.FAILED_CONTROLLER
    assert "read-only" in (state.failure_reason or "")
    assert cloud.instances == {}


async def runs_of(client: Client, workflow_id: str, timeout: float = 10) -> list[int]:
    """The history length of every run of a workflow (continue-as-new makes new runs), once
    visibility, which is eventually consistent, lists its last run as completed (each run
    before it was closed before the next one started)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        executions = [e async for e in client.list_workflows(f"WorkflowId = '{workflow_id}'")]
        if any(e.status not in (None, WorkflowExecutionStatus.RUNNING, WorkflowExecutionStatus.CONTINUED_AS_NEW)
               for e in executions):
            break
        assert asyncio.get_running_loop().time() < deadline, f"visibility never showed the end: {executions}"
        await asyncio.sleep(0.1)
    lengths = []
    for execution in executions:
        history = await client.get_workflow_handle(workflow_id, run_id=execution.run_id).fetch_history()
        lengths.append(len(history.events))
    return lengths


async def test_a_month_without_capacity_then_the_job_runs(skipping_env: WorkflowEnvironment) -> None:
    """30 days of waiting (workflow time) in runs that continue-as-new, then capacity: the
    job runs and succeeds, and no run's history nears Temporal's limits.

    A round of the wait is ~15 history events; real backoff (5 min cap) makes ~290 rounds a
    day. To keep the test's wall time short the cap here is 12 h (~85 rounds in 30 days) and
    continue-as-new comes every 200 events instead of 2,000: the same mechanism, exercised
    several times."""
    rounds = 85
    cloud = FakeCloud(capacity_after_rounds=rounds)
    spec = job_spec(launch_retry_initial_s=10.0, launch_retry_max_s=12 * 3600, continue_as_new_after_events=200)
    workflow_id = f"month-{uuid.uuid4()}"
    queue = f"races-{uuid.uuid4()}"
    client = skipping_env.client
    async with running(job_workers(client, queue, ALL_WORKFLOWS, cloud.activities())):
        handle = await client.start_workflow("SpotJobWorkflow", spec, id=workflow_id, task_queue=queue,
                                             result_type=JobState)
        state = await job_end(handle)
    assert state.status == JobStatus.SUCCEEDED
    assert (state.started_at - state.submitted_at) >= timedelta(days=30)
    assert cloud.rounds == rounds + 1 and cloud.instances == {}
    lengths = await runs_of(client, workflow_id)
    assert len(lengths) >= 4, lengths  # it continued as new, several times
    assert max(lengths) < 10_000 and max(lengths) < 200 + 40, lengths


async def test_node_activity_inputs_stay_small_after_many_attempts(env: WorkflowEnvironment) -> None:
    """A job that has recovered 150 times carries its state across continue-as-new; the
    inputs of its node activities do not."""
    records = [AttemptRecord(attempt=i, cloud="fake", region="east", zone="east-a", instance_type="t",
                             started_at=datetime.now(UTC), ended_at=datetime.now(UTC), outcome="preempted")
               for i in range(1, 151)]
    base = job_spec()
    carried = CarriedState(state=JobState(job_id=base.job_id, name=base.name, submitted_at=base.submitted_at,
                                          status=JobStatus.RECOVERING, recoveries=150, attempt=150, history=records),
                           attempt=150, restarts_used=0)
    spec = base.model_copy(update={"carried": carried})
    cloud = FakeCloud()
    queue = f"races-{uuid.uuid4()}"
    async with running(job_workers(env.client, queue, ALL_WORKFLOWS, cloud.activities())):
        handle = await env.client.start_workflow("SpotJobWorkflow", spec, id=f"small-{uuid.uuid4()}",
                                                 task_queue=queue, result_type=JobState)
        state = await job_end(handle)
        history = await handle.fetch_history()
    assert state.status == JobStatus.SUCCEEDED and state.attempt == 151
    sizes = {}
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs = event.activity_task_scheduled_event_attributes
            sizes[attrs.activity_type.name] = sum(len(p.data) for p in attrs.input.payloads)
    input_size = len(spec.model_dump_json())
    assert input_size > 25_000  # the workflow's own input is large
    for name in (ActivityNames.SETUP, ActivityNames.START_RUN, ActivityNames.MONITOR):
        assert sizes[name] < 3_000, sizes


async def test_a_bug_in_the_workflow_fails_its_task_not_the_job(env: WorkflowEnvironment) -> None:
    """A Python error inside the workflow (here: an IndexError, from a spec with no
    candidates that planning would never make) must not end the job as FAILED_CONTROLLER
    and tear down a healthy run: the workflow task fails and Temporal retries it, so a
    worker with the fix picks the job up where it was."""
    cloud = FakeCloud()
    queue = f"races-{uuid.uuid4()}"
    async with running(job_workers(env.client, queue, ALL_WORKFLOWS, cloud.activities())):
        handle = await env.client.start_workflow("SpotJobWorkflow", job_spec(candidates=[]), id=f"bug-{uuid.uuid4()}",
                                                 task_queue=queue, result_type=JobState)
        await asyncio.sleep(3)  # the failing task is retried meanwhile
        desc = await handle.describe()
        assert desc.status is not None and desc.status.name == "RUNNING"
        history = await handle.fetch_history()
        types = {e.event_type for e in history.events}
        assert EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED in types
        assert EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED not in types
        assert EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED not in types  # no teardown of anything
        await handle.terminate("test over")
