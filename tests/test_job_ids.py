"""Job ids: failed launches give theirs back; a continued-as-new job is one row (issue 7, item 10);
a retried allocation burns nothing, an ended allocator never hands out an id again, a start
never shadows an existing job (issue 22, item 9)."""

from __future__ import annotations

import asyncio
import json
import textwrap
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from spotctl.client import JobIdTaken, SpotClient, workflow_id
from spotctl.codec import data_converter_for_key
from spotctl.config import Settings
from spotctl.embedded import temporal_binary
from spotctl.launch import Overrides, plan
from spotctl.models import TASK_QUEUE
from spotctl.models import search_attributes as sa
from spotctl.workflows.allocator_state import AllocatorState
from spotctl.workflows.job_ids import ALLOCATOR_WORKFLOW_ID, JobIdAllocator

from conftest import Spot


def test_failed_launches_do_not_use_up_ids(spot_clean: Spot, tmp_path: Path) -> None:
    before = spot_clean.launch_detached("echo before")
    task = tmp_path / "bad.yaml"
    # Planned fine; staging (after the id is allocated) finds the bucket missing.
    task.write_text(textwrap.dedent("""
        name: unstageable
        file_mounts:
          /input: local://spotctl-test-no-such-bucket/data
        run: echo never
    """))
    for _ in range(3):
        failed = spot_clean.run("launch", "-y", "-d", str(task))
        assert failed.exit_code == 2, failed.output
        assert "spotctl-test-no-such-bucket" in failed.stderr
    after = spot_clean.launch_detached("echo after")
    assert after == before + 1
    for job_id in (before, after):
        spot_clean.wait_status(job_id, "SUCCEEDED")


def test_release_gives_back_only_the_last_unused_id(spot_clean: Spot) -> None:
    async def run() -> tuple[int, int, bool, int, bool, int]:
        client = await SpotClient.connect(spot_clean.settings)
        a = await client.allocate_job_id()
        b = await client.allocate_job_id()
        not_last = await client.release_job_id(a)  # b was handed out after a: a stays used
        last = await client.release_job_id(b)
        again = await client.allocate_job_id()
        await client.release_job_id(again)
        return a, b, not_last, again, last, await client.allocate_job_id()

    a, b, not_last, again, last, final = asyncio.run(run())
    assert b == a + 1 and not not_last and last and again == b and final == b
    # An id whose job exists is never given back (its start may have succeeded unseen).
    job_id = spot_clean.launch_detached("echo kept")

    async def release_existing() -> bool:
        client = await SpotClient.connect(spot_clean.settings)
        return await client.release_job_id(job_id)

    assert not asyncio.run(release_existing())
    assert spot_clean.launch_detached("echo next") == job_id + 1
    spot_clean.wait_status(job_id, "SUCCEEDED")
    spot_clean.wait_status(job_id + 1, "SUCCEEDED")


def test_continued_as_new_job_is_one_row(spot_clean: Spot, tmp_path: Path) -> None:
    counter = tmp_path / "runs"
    task = tmp_path / "flaky.yaml"
    task.write_text(textwrap.dedent(f"""
        name: flaky-rows
        resources:
          job_recovery:
            max_restarts_on_errors: 5
        run: |
          echo x >> {counter}
          [ "$(wc -l < {counter})" -ge 5 ] && exit 0 || exit 1
    """))
    p = plan(str(task), Overrides(), spot_clean.settings)

    async def run() -> int:
        client = await SpotClient.connect(spot_clean.settings)
        job_id = await client.allocate_job_id()
        await client.start_job(p.to_spec(job_id).model_copy(update={"continue_as_new_after_attempts": 2}))
        await client.result(job_id)
        return job_id

    job_id = asyncio.run(run())
    spot_clean.wait_status(job_id, "SUCCEEDED")
    result = spot_clean.run("status", "--json", "--all")
    rows = [j for j in json.loads(result.stdout) if j["job_id"] == job_id]
    assert len(rows) == 1, rows
    assert rows[0]["status"] == "SUCCEEDED" and rows[0]["attempt"] == 5
    table = spot_clean.run("status", "-a").stdout.splitlines()
    mine = [line for line in table if line.split()[:1] == [str(job_id)]]
    assert len(mine) == 1 and "SUCCEEDED" in mine[0], table


def test_a_retried_allocation_returns_the_same_id(spot_clean: Spot) -> None:
    """A launch whose allocate landed but whose answer was lost asks again: same request id,
    a new update id (the SDK makes one per call). It must get its id back, not burn one."""
    async def run() -> tuple[int, int, int, int]:
        client = await SpotClient.connect(spot_clean.settings)
        first = await client.allocate_job_id("launch-retried")
        again = await client.allocate_job_id("launch-retried")
        allocator = client.temporal.get_workflow_handle(ALLOCATOR_WORKFLOW_ID)
        resent = await allocator.execute_update(JobIdAllocator.allocate, args=["launch-retried", 0])
        other = await client.allocate_job_id()
        await client.release_job_id(other)
        await client.release_job_id(first)
        return first, again, resent, other

    first, again, resent, other = asyncio.run(run())
    assert again == first and resent == first, (first, again, resent)
    assert other == first + 1


def test_a_terminated_allocator_does_not_hand_out_ids_again(spot_clean: Spot, tmp_path: Path) -> None:
    """The allocator ended while a launch was under way (its id allocated, its job not started
    yet): the next launch must not get that id, nor any existing job's."""
    existing = spot_clean.launch_detached("echo existing")
    p = plan("echo under-way", Overrides(), spot_clean.settings)

    async def allocate_then_terminate() -> int:
        client = await SpotClient.connect(spot_clean.settings)
        under_way = await client.allocate_job_id()
        await client.temporal.get_workflow_handle(ALLOCATOR_WORKFLOW_ID).terminate("test: allocator ended")
        return under_way

    under_way = asyncio.run(allocate_then_terminate())
    assert under_way > existing
    after = spot_clean.launch_detached("echo after")

    async def start_under_way() -> None:
        client = await SpotClient.connect(spot_clean.settings)
        await client.start_job(p.to_spec(under_way))

    asyncio.run(start_under_way())  # the launch under way goes on: its id is still its own
    assert after > under_way, (existing, under_way, after)
    for job_id in (existing, under_way, after):
        spot_clean.wait_status(job_id, "SUCCEEDED")


def test_a_start_never_shadows_a_closed_job(spot_clean: Spot) -> None:
    """An allocator seeded behind a closed job (its own history gone) hands out that job's id:
    the start must not add a second run to the old job; the launch takes the next id."""
    old = spot_clean.launch_detached("echo old-job")
    spot_clean.wait_status(old, "SUCCEEDED")
    p = plan("echo shadow", Overrides(), spot_clean.settings)

    async def seed_behind() -> None:
        client = await SpotClient.connect(spot_clean.settings)
        allocator = client.temporal.get_workflow_handle(ALLOCATOR_WORKFLOW_ID)
        await allocator.terminate("test: an allocator seeded behind")
        await client.temporal.start_workflow(JobIdAllocator.run, AllocatorState(next_id=old),
                                             id=ALLOCATOR_WORKFLOW_ID, task_queue=TASK_QUEUE)
        with pytest.raises(JobIdTaken, match=f"job id {old} "):
            await client.start_job(p.to_spec(old))

    asyncio.run(seed_behind())
    new = spot_clean.launch_detached("echo new-job")
    assert new > old
    spot_clean.wait_status(new, "SUCCEEDED")

    async def runs_of_old() -> list:
        client = await SpotClient.connect(spot_clean.settings)
        return [e async for e in client.temporal.list_workflows(f"WorkflowId = '{workflow_id(old)}'")]

    assert len(asyncio.run(runs_of_old())) == 1
    assert spot_clean.job(old)["status"] == "SUCCEEDED"
    logs = spot_clean.run("logs", "--no-follow", str(old)).stdout
    assert "old-job" in logs and "shadow" not in logs and "new-job" not in logs


def test_a_launch_whose_id_another_start_took_takes_the_next(spot_clean: Spot, capsys: pytest.CaptureFixture) -> None:
    """Two launches given the same id (an allocator restarted behind one of them): the one
    that starts second must not join the first's job; it says so and takes the next id."""
    from spotctl.cli.launch import _start_with_free_id

    mine = plan("echo second-launch", Overrides(name="second"), spot_clean.settings)
    theirs = plan("echo first-launch", Overrides(name="first"), spot_clean.settings)

    class Raced(SpotClient):
        """Another launch starts this launch's first id right after it is allocated."""

        taken: int | None = None

        async def allocate_job_id(self, request_id: str | None = None, *, at_least: int = 0) -> int:
            job_id = await super().allocate_job_id(request_id, at_least=at_least)
            if self.taken is None:
                self.taken = job_id
                await self.start_job(theirs.to_spec(job_id))
            return job_id

    async def run() -> tuple[int | None, int]:
        client = await Raced.connect(spot_clean.settings)
        launched = await _start_with_free_id(client, mine)
        return client.taken, launched

    taken, launched = asyncio.run(run())
    assert taken is not None and launched == taken + 1
    assert f"Job id {taken} belongs to an existing job; launching as job {launched} instead." in capsys.readouterr().err
    for job_id in (taken, launched):
        spot_clean.wait_status(job_id, "SUCCEEDED")
    first = spot_clean.run("logs", "--no-follow", str(taken)).stdout
    second = spot_clean.run("logs", "--no-follow", str(launched)).stdout
    assert "first-launch" in first and "second-launch" not in first
    assert "second-launch" in second


@workflow.defn(name="JobIdAllocator", sandboxed=False)
class _AllocatorBeforeRequestIds:
    """The allocator as workers before request ids ran it (its handlers, not its continue-as-new)."""

    @workflow.init
    def __init__(self, state: AllocatorState) -> None:
        self._next_id = state.next_id

    @workflow.run
    async def run(self, state: AllocatorState) -> None:
        await workflow.wait_condition(lambda: False)

    @workflow.update
    def allocate(self) -> int:
        self._next_id += 1
        return self._next_id - 1


async def test_a_new_client_still_allocates_from_an_older_allocator_worker(settings: Settings) -> None:
    """A CLI upgraded before its worker (the embedded worker keeps running the old code until it
    restarts) must still get ids: the older worker's `allocate` ignores the request id and
    `at_least` it does not know, and nothing hangs or wedges the allocator."""
    async with await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(), data_converter=data_converter_for_key(bytes(32)),
        search_attributes=list(sa.ALL),
    ) as env:
        async with Worker(env.client, task_queue=TASK_QUEUE, workflows=[_AllocatorBeforeRequestIds]):
            client = SpotClient(env.client, settings)
            first = await asyncio.wait_for(client.allocate_job_id("launch-upgraded"), timeout=20)
            second = await asyncio.wait_for(client.allocate_job_id(), timeout=20)
            assert (first, second) == (1, 2)
            await env.client.get_workflow_handle(ALLOCATOR_WORKFLOW_ID).terminate("test over")



async def test_the_request_ids_carried_into_a_new_allocator_run_are_honoured(settings: Settings) -> None:
    """Temporal forgets a run's update ids when the allocator continues as new (every
    ALLOCATIONS_PER_RUN ids); the allocator carries its request ids in its state, so a retry
    that crosses a continuation gets its id, not a new one."""
    async with await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(), data_converter=data_converter_for_key(bytes(32)),
        search_attributes=list(sa.ALL),
    ) as env:
        async with Worker(env.client, task_queue=TASK_QUEUE, workflows=[JobIdAllocator]):
            # What a run continued after the request "launch-a" got id 7 starts with.
            await env.client.start_workflow(JobIdAllocator.run, AllocatorState(next_id=9, recent={"launch-a": 7}),
                                            id=ALLOCATOR_WORKFLOW_ID, task_queue=TASK_QUEUE)
            client = SpotClient(env.client, settings)
            assert await client.allocate_job_id("launch-a") == 7
            assert await client.allocate_job_id("launch-b") == 9
            assert await client.allocate_job_id("launch-b") == 9
            assert await client.allocate_job_id("launch-a", at_least=10) == 10  # moved past a taken id
            await env.client.get_workflow_handle(ALLOCATOR_WORKFLOW_ID).terminate("test over")


def test_a_burst_of_launches_gets_distinct_ids(spot_clean: Spot) -> None:
    """More launches at once than Temporal takes updates of one workflow (10): they wait their
    turn, none fails, no id is handed out twice or burned (a guard for the retry loop; it
    passed before too)."""
    async def run() -> list[int]:
        client = await SpotClient.connect(spot_clean.settings)
        ids = await asyncio.gather(*(client.allocate_job_id() for _ in range(BURST)))
        for job_id in sorted(ids, reverse=True):  # given back, newest first: no gap is left
            await client.release_job_id(job_id)
        return ids

    ids = sorted(asyncio.run(run()))
    assert ids == list(range(ids[0], ids[0] + BURST)), ids


BURST = 30
