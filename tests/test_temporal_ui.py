"""The Temporal web UI tells the truth (issue 26, item 2; docs/temporal-ui.md), on the real
embedded server: its list of the default namespace (the UI's own API, and list_workflows with
no query as the UI asks it) holds jobs only, each in the Temporal state that matches the job,
while `spotctl status` says what it always said; an allocator started before leaves the list
and goes on counting."""

from __future__ import annotations

import asyncio
import json
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DeleteWorkflowExecutionRequest
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from spotctl.client import SpotClient, job_end, workflow_id
from spotctl.models import TASK_QUEUE
from spotctl.models import search_attributes as sa
from spotctl.workflows import ALLOCATOR_WORKFLOW_ID, JobIdAllocator
from spotctl.workflows.allocator_state import AllocatorState

from conftest import Spot

JOB_TYPES = {"SpotJobWorkflow", "SpotPipelineWorkflow"}
OLD_SEED = 41
"""Where the allocator "from before" (started without the division) counts from."""


def _write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def _ui_listing(spot: Spot) -> list[dict]:
    """The web UI's own list of the default namespace (what its page shows), through its API."""
    url = f"http://127.0.0.1:{spot.settings.embedded.ui_port}/api/v1/namespaces/default/workflows"
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback only
        return json.loads(response.read())["executions"]


async def _start_old_allocator(spot: Spot) -> None:
    """The allocator as spotctl started it before internal workflows left the list."""
    client = await SpotClient.connect(spot.settings)
    await client.temporal.start_workflow(JobIdAllocator.run, AllocatorState(next_id=OLD_SEED),
                                         id=ALLOCATOR_WORKFLOW_ID, task_queue=TASK_QUEUE)


async def _listing(spot: Spot) -> dict[str, tuple[str, WorkflowExecutionStatus | None]]:
    client = await SpotClient.connect(spot.settings)
    return {e.id: (e.workflow_type, e.status) async for e in client.temporal.list_workflows()}


async def _internal(spot: Spot) -> set[str]:
    client = await SpotClient.connect(spot.settings)
    return {e.id async for e in client.temporal.list_workflows(sa.internal("ExecutionStatus != 'ContinuedAsNew'"))}


async def _failure(spot: Spot, job_id: int) -> ApplicationError:
    client = await SpotClient.connect(spot.settings)
    with pytest.raises(WorkflowFailureError) as caught:
        await client.temporal.get_workflow_handle(workflow_id(job_id)).result()
    assert isinstance(caught.value.cause, ApplicationError)
    return caught.value.cause


async def _end_state(spot: Spot, job_id: int):
    client = await SpotClient.connect(spot.settings)
    return await job_end(client.temporal.get_workflow_handle(workflow_id(job_id)))


def test_the_list_shows_jobs_only_each_in_its_true_end_state(own_spot: Spot, tmp_path: Path) -> None:
    spot = own_spot
    asyncio.run(_start_old_allocator(spot))
    ok = spot.launch_detached("-n", "ok", "echo hello")
    assert ok == OLD_SEED  # the allocator from before goes on counting
    failing = spot.launch_detached(_write(tmp_path, "setup.yaml", """
        name: setup-fails
        setup: exit 7
        run: echo never
    """))
    cancelled = spot.launch_detached("-n", "cancel-me", "sleep 600")
    pipeline = spot.launch_detached(_write(tmp_path, "pipeline.yaml", """
        name: duo
        ---
        name: first
        run: echo one
        ---
        name: second
        run: echo two
    """))
    array = spot.run("launch", "-y", "--async", "--num-jobs", "2", "-n", "pair", "echo rank $SKYPILOT_JOB_RANK")
    assert array.exit_code == 0, array.output
    first = int(array.stderr.split("Job array ", 1)[1].split()[0])
    pool = spot.run("pool", "apply", "-p", "uipool", _write(tmp_path, "pool.yaml", """
        pool:
          workers: 1
        resources:
          cpus: 1+
    """), "-y")
    assert pool.exit_code == 0, pool.output
    try:
        on_pool = spot.launch_detached("-p", "uipool", "-n", "pooled", "echo pooled")
        spot.wait_running(cancelled)
        assert spot.run("cancel", "-y", str(cancelled)).exit_code == 0
        ends = {ok: "SUCCEEDED", failing: "FAILED_SETUP", cancelled: "CANCELLED", pipeline: "SUCCEEDED",
                first: "SUCCEEDED", first + 1: "SUCCEEDED", on_pool: "SUCCEEDED"}
        for job_id, status in ends.items():
            spot.wait_status(job_id, status, timeout=120)
        shown = {j["job_id"]: j["status"] for j in spot.status()}  # `spotctl status` as always
        assert {j: shown[j] for j in ends} == ends

        jobs = {workflow_id(j) for j in ends}
        deadline = time.monotonic() + 30
        while (listed := asyncio.run(_listing(spot))) and set(listed) != jobs and time.monotonic() < deadline:
            time.sleep(0.5)  # visibility catches up with the last ends
        assert set(listed) == jobs, f"the list holds more (or less) than the jobs: {sorted(listed)}"
        assert {t for t, _ in listed.values()} <= JOB_TYPES
        temporal = {wid: status for wid, (_, status) in listed.items()}
        assert temporal[workflow_id(ok)] == WorkflowExecutionStatus.COMPLETED
        assert temporal[workflow_id(pipeline)] == WorkflowExecutionStatus.COMPLETED
        assert temporal[workflow_id(failing)] == WorkflowExecutionStatus.FAILED
        assert temporal[workflow_id(cancelled)] == WorkflowExecutionStatus.CANCELED
        ui = {e["execution"]["workflowId"]: e["status"] for e in _ui_listing(spot)}
        assert set(ui) == jobs  # the UI's page lists what the client does
        assert ui[workflow_id(cancelled)] == "WORKFLOW_EXECUTION_STATUS_CANCELED"
        assert ui[workflow_id(failing)] == "WORKFLOW_EXECUTION_STATUS_FAILED"

        failure = asyncio.run(_failure(spot, failing))  # the status as the failure's type, the reason as its message
        assert failure.type == "FAILED_SETUP"
        assert failure.message == spot.job(failing)["failure_reason"] == "setup failed with exit code 7"
        assert asyncio.run(_end_state(spot, failing)).status.value == "FAILED_SETUP"
        assert asyncio.run(_end_state(spot, cancelled)).status.value == "CANCELLED"

        internal = asyncio.run(_internal(spot))  # out of the list, not gone: the saved view finds them
        assert {ALLOCATOR_WORKFLOW_ID, f"spotctl-array-{first}", "spotctl-pool-uipool",
                f"{workflow_id(pipeline)}-task-0", f"{workflow_id(pipeline)}-task-1"} <= internal
    finally:
        down = spot.run("pool", "down", "uipool", "--cancel", "-y")
        assert down.exit_code == 0, down.output


def test_a_lost_allocator_reseeds_past_hidden_arrays(own_spot: Spot) -> None:
    """Ids are never handed out twice across the move: an allocator whose history is gone is
    seeded from visibility, which still finds an array's block now that its submitter is out
    of the list (tests/test_pool_jobs.py: the same for pools and arrays from before)."""
    spot = own_spot
    array = spot.run("launch", "-y", "--async", "--num-jobs", "3", "-n", "trio", "echo x")
    assert array.exit_code == 0, array.output
    first = int(array.stderr.split("Job array ", 1)[1].split()[0])
    for rank in range(3):
        spot.wait_status(first + rank, "SUCCEEDED", timeout=90)

    async def lose_the_allocator() -> None:
        client = await SpotClient.connect(spot.settings)
        await client.temporal.workflow_service.delete_workflow_execution(DeleteWorkflowExecutionRequest(
            namespace=spot.settings.temporal.namespace, workflow_execution=WorkflowExecution(workflow_id=ALLOCATOR_WORKFLOW_ID)))
        for _ in range(100):  # the deletion is asynchronous
            try:
                await client.temporal.get_workflow_handle(ALLOCATOR_WORKFLOW_ID).describe()
            except RPCError as exc:
                if exc.status == RPCStatusCode.NOT_FOUND:
                    return
            await asyncio.sleep(0.1)
        raise AssertionError("the allocator was never deleted")

    asyncio.run(lose_the_allocator())
    assert spot.launch_detached("-n", "after", "echo after") == first + 3


def test_attached_launch_and_logs_exit_as_before_and_the_ui_cancel_ends_canceled(spot_clean: Spot,
                                                                                 tmp_path: Path) -> None:
    """`launch` (attached) and `logs` exit with the job's result as always (docs/cli.md: 100 for a
    failure, 103 for a cancel) now that the workflow ends Failed or Canceled; a cancel from the
    web UI (a Temporal cancel request, not spotctl's signal) ends the job CANCELLED and its
    workflow Canceled, its clusters torn down."""
    spot = spot_clean
    failed = spot.run("launch", "-y", _write(tmp_path, "setup.yaml", """
        name: attached-fails
        setup: exit 7
        run: echo never
    """))
    assert failed.exit_code == 100, failed.output
    failed_id = int(next(line for line in failed.stderr.splitlines() if line.startswith("Managed job")).split()[2])
    assert spot.run("logs", "--no-follow", str(failed_id)).exit_code == 100

    running = spot.launch_detached("-n", "ui-cancel", "sleep 600")
    spot.wait_running(running)

    async def cancel_from_the_ui() -> WorkflowExecutionStatus | None:
        client = await SpotClient.connect(spot.settings)
        handle = client.temporal.get_workflow_handle(workflow_id(running))
        await handle.cancel()  # what the UI's Cancel button sends
        assert (await job_end(handle)).status.value == "CANCELLED"
        return (await handle.describe()).status

    assert asyncio.run(cancel_from_the_ui()) == WorkflowExecutionStatus.CANCELED
    assert spot.job(running)["status"] == "CANCELLED"
    assert spot.run("logs", "--no-follow", str(running)).exit_code == 103
