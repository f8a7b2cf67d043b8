"""A pool's jobs from the job commands and the pool file's edges, on the real embedded Temporal and
the local cloud: `status` (POOL column, --pool, the worker in -v), `cancel -p POOL` (SkyPilot's
`sky jobs cancel -p`), `pool apply` refusing a changed file, every key of SkyPilot's `pool:`
schema, a real SkyPilot pool file, and the job-id allocator re-seeded past pools and arrays."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.operatorservice.v1 import RemoveSearchAttributesRequest
from temporalio.api.workflowservice.v1 import DeleteWorkflowExecutionRequest
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode
from test_pools import down, job_file, pool_file, wait_pool

from spotctl.client import SpotClient
from spotctl.client.arrays import allocate_block, array_query, start_array
from spotctl.launch import Overrides, plan
from spotctl.launch.pools import autoscaler_keys, worker_counts
from spotctl.models import JobSpec
from spotctl.models import search_attributes as sa
from spotctl.models.array import ARRAY_WORKFLOW, ArraySpec, array_workflow_id
from spotctl.models.pool import POOL_WORKFLOW, pool_workflow_id
from spotctl.task import load_task_file
from spotctl.workflows.job_array import JobArrayWorkflow
from spotctl.workflows.job_ids import ALLOCATOR_WORKFLOW_ID

from conftest import Spot

SKYPILOT_POOL = Path(__file__).parent / "skypilot" / "batch_inference-pool.yaml"
"""SkyPilot's examples/batch_inference/pool.yaml, verbatim (tests/skypilot/README.md)."""


def one_line(result) -> str:  # noqa: ANN001 - click's Result
    assert len(result.output.strip().splitlines()) == 1, result.output
    return result.output


def test_status_and_cancel_by_pool(spot_clean: Spot, tmp_path: Path) -> None:
    setups = tmp_path / "setups"
    assert spot_clean.run("pool", "apply", "-p", "tide", pool_file(tmp_path, setups, "workers: 1"), "-y").exit_code == 0
    try:
        forever = job_file(tmp_path, "forever", "while true; do sleep 0.1; done\n")
        running = spot_clean.launch_detached("-p", "tide", forever)
        spot_clean.wait_running(running, 1, timeout=90)
        waiting = spot_clean.launch_detached("-p", "tide", forever)
        alone = spot_clean.launch_detached("echo alone")
        spot_clean.wait_status(alone, "SUCCEEDED")

        table = spot_clean.run("status").output
        assert "POOL" in table and "tide" in table, table
        assert "POOL" not in spot_clean.run("status", str(alone)).output  # no job on a pool listed: no column
        listed = json.loads(spot_clean.run("status", "--pool", "tide", "--json").stdout)
        assert sorted(j["job_id"] for j in listed) == [running, waiting], listed
        assert all(j["pool"] == "tide" for j in listed)
        full = spot_clean.run("status", "-v", str(running)).output
        assert "Pool" in full and "on worker spotctl-" in full, full
        assert "waiting for a worker" in spot_clean.run("status", "-v", str(waiting)).output
        assert f"{waiting} forever" in spot_clean.run("status", "-v", "--pool", "tide").output  # the pool's newest
        bad = spot_clean.run("status", "--pool", "Bad_Name")
        assert bad.exit_code == 2 and "bad pool name" in one_line(bad)

        result = spot_clean.run("cancel", "-p", "tide", "-y")
        assert result.exit_code == 0, result.output
        for job_id in (running, waiting):
            assert spot_clean.wait_status(job_id, "CANCELLED", timeout=60)["status"] == "CANCELLED"
        assert spot_clean.job(alone)["status"] == "SUCCEEDED"
        out = wait_pool(spot_clean, "tide", " idle ")  # the pool and its worker stay, set up once
        assert "READY" in out and len(spot_clean.alive_instances()) == 1, out
        assert len(setups.read_text().splitlines()) == 1
        first, started, result = asyncio.run(_cancel_pool_while_an_array_submits(spot_clean, "tide"))
        assert result.exit_code == 0, result.output  # the array's submission stops too
        assert f"Job array {first}: {started} job(s) cancelling" in result.output, result.output
        assert f"{ARRAY_HELD - started} never submitted" in result.output, result.output
        for job_id in range(first, first + started):
            assert spot_clean.wait_status(job_id, "CANCELLED", timeout=60)["status"] == "CANCELLED"
        assert "No unfinished jobs to cancel." in spot_clean.run("cancel", "-p", "tide", "-y").output
        missing = spot_clean.run("cancel", "-p", "nosuch", "-y")
        assert missing.exit_code == 1 and "no pool 'nosuch'" in one_line(missing)
    finally:
        down(spot_clean, "tide")


ARRAY_HELD = 30
"""An array submitted one job at a time, so that it is still being submitted when it is cancelled."""


async def _cancel_pool_while_an_array_submits(spot: Spot, pool: str):  # noqa: ANN202 - (first, started, Result)
    """`cancel -p POOL` while an array on the pool is being submitted: the submitter is stopped
    first (no job of it starts afterwards) and every job it started is cancelled."""
    client = await SpotClient.connect(spot.settings)
    p = plan("while true; do sleep 0.1; done", Overrides(name="held"), spot.settings)
    first = await allocate_block(client, ARRAY_HELD)
    template = p.to_spec(first).model_copy(update={"pool": pool})
    await start_array(client, ArraySpec(first_id=first, count=ARRAY_HELD, template=template, batch=1))
    handle = client.temporal.get_workflow_handle(array_workflow_id(first))
    while await handle.query(JobArrayWorkflow.started) < 2:
        await asyncio.sleep(0.05)
    result = await asyncio.to_thread(spot.run, "cancel", "-p", pool, "-y")
    started = await handle.result()
    assert 2 <= started < ARRAY_HELD
    await asyncio.sleep(2)  # a submitter that went on would have started more by now
    assert await client.count_jobs(array_query(first, ARRAY_HELD)) == started
    return first, started, result


def test_a_pool_jobs_first_memo_names_its_pool() -> None:
    """What `status` shows of a pool job before its workflow ran (the memo its start writes)."""
    spec = JobSpec(job_id=7, name="j", run="true", candidates=[], submitted_at=datetime.now(UTC), pool="tide")
    assert spec.first_state().pool == "tide"


def test_apply_refuses_a_changed_file(spot_clean: Spot, tmp_path: Path) -> None:
    """A changed setup or envs would be silently ignored by a resize: it is refused (exit 2,
    nothing changed); a change of the counts alone is applied."""
    path = tmp_path / "pool.yaml"
    path.write_text("pool:\n  min_workers: 0\n  max_workers: 1\nresources:\n  cpus: 1+\nenvs:\n  A: one\nsetup: echo one\n")
    assert spot_clean.run("pool", "apply", "-p", "keel", str(path), "-y").exit_code == 0
    try:
        path.write_text(path.read_text().replace("max_workers: 1", "max_workers: 2"))
        resized = spot_clean.run("pool", "apply", "-p", "keel", str(path), "-y")
        assert resized.exit_code == 0 and "updated: 0 to 2 workers" in resized.output, resized.output
        path.write_text(path.read_text().replace("setup: echo one", "setup: echo two").replace("A: one", "A: two"))
        refused = spot_clean.run("pool", "apply", "-p", "keel", str(path), "-y")
        assert refused.exit_code == 2, refused.output
        assert "runs with another setup, envs" in one_line(refused) and "pool down keel" in refused.output
        assert "0-2" in spot_clean.run("pool", "status", "keel").output  # nothing changed
    finally:
        down(spot_clean, "keel")


def test_every_skypilot_pool_key_is_accepted(spot_clean: Spot, tmp_path: Path) -> None:
    """sky/utils/schemas.py's `pool:` keys: the autoscaler's are checked, then ignored with a
    warning (downscale_delay_seconds is the idle timeout); a bad value is one line, exit 2."""
    path = tmp_path / "all.yaml"
    keys = ("min_workers: 0\n  max_workers: 2\n  queue_length_threshold: 5\n  upscale_delay_seconds: 30\n"
            "  downscale_delay_seconds: 120\n  spot_placer: dynamic_fallback\n")
    path.write_text(f"pool:\n  {keys}resources:\n  cpus: 1+\n")
    result = spot_clean.run("pool", "apply", "-p", "every", str(path), "-y")
    assert result.exit_code == 0, result.output
    for key in ("queue_length_threshold", "upscale_delay_seconds", "spot_placer"):
        assert f"pool.{key}: ignored" in result.output, result.output
    assert "downscale_delay_seconds" not in result.output
    down(spot_clean, "every")
    for bad, field in (("queue_length_threshold: 0", "pool.queue_length_threshold"),
                       ("downscale_delay_seconds: -1", "pool.downscale_delay_seconds"),
                       ("upscale_delay_seconds: soon", "pool.upscale_delay_seconds"),
                       ("spot_placer: 3", "pool.spot_placer")):
        path.write_text(f"pool:\n  workers: 1\n  {bad}\nresources:\n  cpus: 1+\n")
        result = spot_clean.run("pool", "apply", "-p", "every", str(path), "-y")
        assert result.exit_code == 2 and field in one_line(result), result.output
    assert spot_clean.run("pool", "status", "every").exit_code == 1  # nothing was created


def test_a_real_skypilot_pool_file_parses() -> None:
    task = load_task_file(SKYPILOT_POOL).tasks[0]
    assert task.pool == {"workers": 2} and not task.run
    assert worker_counts(task.pool, str(SKYPILOT_POOL)) == (2, 2)
    assert autoscaler_keys(task.pool, str(SKYPILOT_POOL)) == (None, [])
    assert task.setup and "huggingface-cli download" in task.setup and task.envs["MODEL_NAME"]


def test_the_allocator_reseeded_skips_pool_numbers_and_array_blocks(spot_clean: Spot) -> None:
    """An allocator whose history is gone is seeded from visibility: past every job, every
    pool's number (its workers' clusters carry it) and every array's whole block, including ids
    whose jobs its submitter has not started. The pool and the array here are workflows of their
    types that no worker runs (a task queue nobody polls), so nothing starts under them."""
    idle_queue = "spotctl-test-nobody-polls"

    async def run() -> tuple[int, int, int]:
        client = await SpotClient.connect(spot_clean.settings)
        base = await client.allocate_job_id() + 1000
        pool = await client.temporal.start_workflow(
            POOL_WORKFLOW, None, id=pool_workflow_id("seed-test"), task_queue=idle_queue,
            search_attributes=TypedSearchAttributes([SearchAttributePair(sa.JOB_ID, base)]))
        array = await client.temporal.start_workflow(
            ARRAY_WORKFLOW, None, id=array_workflow_id(base + 10), task_queue=idle_queue,
            memo={"name": "seed-test", "count": 500})
        try:
            for _ in range(100):  # visibility is eventually consistent
                seen = (await client.temporal.count_workflows(
                    f"WorkflowId IN ('{pool.id}', '{array.id}')")).count
                if seen == 2:
                    break
                await asyncio.sleep(0.1)
            await client.temporal.workflow_service.delete_workflow_execution(DeleteWorkflowExecutionRequest(
                namespace=spot_clean.settings.temporal.namespace,
                workflow_execution=WorkflowExecution(workflow_id=ALLOCATOR_WORKFLOW_ID)))
            for _ in range(100):  # the deletion is asynchronous
                try:
                    await client.temporal.get_workflow_handle(ALLOCATOR_WORKFLOW_ID).describe()
                except RPCError as exc:
                    if exc.status == RPCStatusCode.NOT_FOUND:
                        break
                await asyncio.sleep(0.1)
            return base, base + 10 + 500, await client.allocate_job_id()
        finally:
            await pool.terminate("test over")
            await array.terminate("test over")

    pool_number, block_end, allocated = asyncio.run(run())
    assert allocated > pool_number and allocated >= block_end, (pool_number, block_end, allocated)


def test_a_pool_launch_registers_the_pool_attribute_a_server_lacks(spot_clean: Spot, tmp_path: Path) -> None:
    """A server and worker started before SpotctlPool existed lack it: `launch -p` adds it
    (a start naming an unknown search attribute would be refused)."""
    assert spot_clean.run("pool", "apply", "-p", "late", pool_file(tmp_path, tmp_path / "s", "workers: 1"),
                          "-y").exit_code == 0
    try:
        async def remove() -> None:
            client = await SpotClient.connect(spot_clean.settings)
            await client.temporal.operator_service.remove_search_attributes(RemoveSearchAttributesRequest(
                namespace=spot_clean.settings.temporal.namespace, search_attributes=[sa.POOL.name]))

        asyncio.run(remove())
        job = spot_clean.launch_detached("-p", "late", job_file(tmp_path, "hi", "echo hi\n"))
        assert spot_clean.wait_status(job, "SUCCEEDED", "FAILED", timeout=90)["status"] == "SUCCEEDED"
        assert [j["job_id"] for j in json.loads(spot_clean.run("status", "--pool", "late", "--json").stdout)] == [job]
    finally:
        down(spot_clean, "late")
