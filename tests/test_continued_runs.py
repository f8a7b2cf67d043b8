"""A continued-as-new run's first workflow task, against scripted activities: what a handler
records there (a cancel sent during the hand-over, a note) must survive the state the run
carries over (issue 22, item 1).

The server delivers a signal sent while one run continues as new in the next run's first
workflow task, and the SDK runs signal handlers before `run()`. Signal-with-start puts the
signal in that first task on purpose."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from temporalio import activity, workflow
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from test_workflow_races import FakeCloud, job_spec, wait_event

from spotctl.client import job_end
from spotctl.models import (
    NOTE_SIGNAL,
    ActivityNames,
    CarriedState,
    JobSpec,
    JobState,
    JobStatus,
    ProvisionRequest,
    ProvisionResult,
)
from spotctl.worker import job_workers, running
from spotctl.workflows import ALL_WORKFLOWS, SpotJobWorkflow

pytestmark = pytest.mark.quick  # `pytest -m quick`: the fast loop (README, Tests)

FIRST_TASK_S = 20
"""A job that heard its cancel ends in a few seconds; one that lost it runs on."""


def carried_spec(**state) -> JobSpec:
    """A spec as a run that continued as new after two attempts hands it on."""
    base = job_spec()
    carried = CarriedState(state=JobState(job_id=base.job_id, name=base.name, submitted_at=base.submitted_at,
                                          status=JobStatus.RECOVERING, recoveries=2, attempt=2, **state),
                           attempt=2, restarts_used=0)
    return base.model_copy(update={"carried": carried})


async def start_with_signal(env: WorkflowEnvironment, queue: str, spec: JobSpec, signal: str,
                            args: list | None = None) -> WorkflowHandle:
    return await env.client.start_workflow("SpotJobWorkflow", spec, id=f"carried-{uuid.uuid4()}", task_queue=queue,
                                           result_type=JobState, start_signal=signal, start_signal_args=args or [])


async def test_cancel_in_a_continued_runs_first_task_is_kept(env: WorkflowEnvironment) -> None:
    """The cancel reaches the new run before its `run()`: the job ends CANCELLED at once, with
    nothing left (it used to carry on RUNNING with `cancel_requested: False`, its VM billing)."""
    cloud = FakeCloud(block=ActivityNames.MONITOR)
    queue = f"carried-{uuid.uuid4()}"
    async with running(job_workers(env.client, queue, ALL_WORKFLOWS, cloud.activities())):
        handle = await start_with_signal(env, queue, carried_spec(), "cancel")
        try:
            state = await asyncio.wait_for(job_end(handle), FIRST_TASK_S)
        except TimeoutError:
            now = await handle.query("state", result_type=JobState)
            await handle.terminate("test over")
            await asyncio.sleep(1)
            raise AssertionError(f"the cancel was lost: the job is {now.status} (cancel_requested "
                                 f"{now.cancel_requested})") from None
    assert state.status == JobStatus.CANCELLED and state.cancel_requested
    assert cloud.instances == {}, "a VM was left running"


@workflow.defn(name="SpotJobWorkflow", sandboxed=False)
class _FirstController(SpotJobWorkflow):
    """The first controller's path (workflows/legacy/controller_v1.py), which only jobs started before the
    `controller-v2` patch take (every new run records it): forced here, to test that path."""

    @workflow.run
    async def run(self, spec: JobSpec) -> JobState:
        self._running = True
        return await self._run_v1(spec)


async def test_cancel_in_a_continued_first_controller_run_is_kept(env: WorkflowEnvironment) -> None:
    """The same on the first controller's path: its run used to overwrite the flag too."""
    cloud = FakeCloud(block=ActivityNames.MONITOR)
    acts = cloud.activities()
    create = next(a for a in acts if a.__name__ == "create_cluster")

    @activity.defn(name=ActivityNames.PROVISION)  # the first controller's create-and-wait
    async def provision(req: ProvisionRequest) -> ProvisionResult:
        return await create(req)

    queue = f"carried-v1-{uuid.uuid4()}"
    async with running(job_workers(env.client, queue, [_FirstController], [*acts, provision])):
        handle = await start_with_signal(env, queue, carried_spec(), "cancel")
        try:
            state = await asyncio.wait_for(job_end(handle), FIRST_TASK_S)
        except TimeoutError:
            await handle.terminate("test over")
            await asyncio.sleep(1)
            raise AssertionError("the cancel was lost on the first controller's path") from None
    assert state.status == JobStatus.CANCELLED
    assert cloud.instances == {}, "a VM was left running"


async def test_a_carried_cancel_is_not_undone(env: WorkflowEnvironment) -> None:
    """A run that carried a cancel over (its state says so) still cancels."""
    cloud = FakeCloud(block=ActivityNames.MONITOR)
    queue = f"carried-{uuid.uuid4()}"
    async with running(job_workers(env.client, queue, ALL_WORKFLOWS, cloud.activities())):
        handle = await env.client.start_workflow("SpotJobWorkflow", carried_spec(cancel_requested=True),
                                                 id=f"carried-{uuid.uuid4()}", task_queue=queue, result_type=JobState)
        state = await asyncio.wait_for(job_end(handle), FIRST_TASK_S)
    assert state.status == JobStatus.CANCELLED and cloud.instances == {}


async def test_a_note_in_a_continued_runs_first_task_is_shown(env: WorkflowEnvironment) -> None:
    """A `note` that arrives before `run()` is recorded (it used to be dropped): the run's
    first publication of the job shows it as the detail, and the job goes on."""
    cloud = FakeCloud(block=ActivityNames.MONITOR)
    queue = f"carried-{uuid.uuid4()}"
    text = "no space left on device (node 0 disk)"
    async with running(job_workers(env.client, queue, ALL_WORKFLOWS, cloud.activities())):
        handle = await start_with_signal(env, queue, carried_spec(), NOTE_SIGNAL, [text])
        await wait_event(cloud, "monitor running")
        await handle.signal("cancel")
        state = await asyncio.wait_for(job_end(handle), FIRST_TASK_S)
        details = await published_details(env, handle)
    assert state.status == JobStatus.CANCELLED and cloud.instances == {}
    assert details[0] == text, details


async def published_details(env: WorkflowEnvironment, handle: WorkflowHandle) -> list[str | None]:
    """The `detail` of every memo the workflow published, in order."""
    history = await handle.fetch_history()
    converter = env.client.data_converter  # the codec's: memos are encoded like payloads
    found = []
    for event in history.events:
        if event.HasField("workflow_properties_modified_event_attributes"):
            fields = event.workflow_properties_modified_event_attributes.upserted_memo.fields
            if "state" in fields:
                (payload,) = await converter.decode([fields["state"]], [dict])
                found.append(payload["detail"])
    return found
