"""Job arrays end to end (`launch --num-jobs N`): real embedded Temporal, real local cloud.

Each job of an array sees its rank and the count (SkyPilot's SKYPILOT_JOB_RANK and
SKYPILOT_NUM_JOBS); the array is staged once and its staged files go when its last job ends;
`status --array` and `cancel --array` take the array whole; bad sizes are refused before
anything is made; a submission run twice still makes each job once.
"""

from __future__ import annotations

import asyncio
import re
import textwrap
import time
from pathlib import Path

import pytest

from spotctl.client import SpotClient
from spotctl.client.arrays import allocate_block, array_query, start_array
from spotctl.launch import Overrides, plan
from spotctl.models.array import MAX_ARRAY_JOBS, ArraySpec, array_first_id, array_workflow_id
from spotctl.workflows.job_array import JobArrayWorkflow

from conftest import Spot, launched_id


def array_id(stderr: str) -> int:
    """The first id from launch's 'Job array N ...' line."""
    found = re.search(r"^Job array (\d+) ", stderr, re.M)
    assert found, stderr
    return int(found.group(1))


def ephemeral_buckets(spot: Spot) -> list[str]:
    buckets = spot.home / "local_buckets"
    return sorted(b.name for b in buckets.glob("spotctl-job-*")) if buckets.exists() else []


def test_array_of_three_sees_ranks_and_is_staged_once(spot_clean: Spot, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "shard.txt").write_text("from the workdir\n")
    task = tmp_path / "task.yaml"
    task.write_text(textwrap.dedent("""
        name: ranks
        workdir: code
        run: |
          cat shard.txt
          echo "rank=$SKYPILOT_JOB_RANK count=$SKYPILOT_NUM_JOBS"
          sleep 2
    """))
    result = spot_clean.run("launch", "-y", "--num-jobs", "3", str(task))
    assert result.exit_code == 0, result.output
    first = array_id(result.stderr)
    assert f"ids {first}-{first + 2}" in result.stderr and "All 3 jobs submitted." in result.stderr
    assert ephemeral_buckets(spot_clean) == [f"spotctl-job-{first}-files"]  # one upload for the whole array
    for rank in range(3):
        job = spot_clean.wait_status(first + rank, "SUCCEEDED", timeout=90)
        assert (job["name"], job["array_first_id"], job["array_rank"]) == ("ranks", first, rank)
        logs = spot_clean.run("logs", "--no-follow", str(first + rank))
        assert logs.exit_code == 0, logs.output
        assert f"rank={rank} count=3" in logs.stdout and "from the workdir" in logs.stdout
    status = spot_clean.run("status", "--array", str(first))
    assert status.exit_code == 0, status.output
    assert f"Job array {first} 'ranks': 3 jobs (ids {first}-{first + 2}): 3 SUCCEEDED" in status.stderr
    header = status.stdout.splitlines()[0].split()
    assert "ARRAY" in header and "RANK" in header
    rows = [line.split() for line in status.stdout.splitlines()[1:]]
    assert sorted(int(r[0]) for r in rows) == [first, first + 1, first + 2]
    partial = spot_clean.run("status", "--limit", "2")  # a table with part of the array names it
    assert f"Job array {first} 'ranks': 2 of its 3 jobs shown; `spotctl status --array {first}`" in partial.stdout
    # The array's staged files go once its last job has ended (its submitter waits for that).
    deadline = time.monotonic() + 30
    while ephemeral_buckets(spot_clean) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert ephemeral_buckets(spot_clean) == []


def test_cancel_array_takes_every_job(spot_clean: Spot) -> None:
    result = spot_clean.run("launch", "-y", "--async", "--num-jobs", "3", "-n", "sleepers", "exec sleep 1000")
    assert result.exit_code == 0, result.output
    first = array_id(result.stderr)
    for rank in range(3):
        spot_clean.wait_status(first + rank, "RUNNING", timeout=90)
    cancel = spot_clean.run("cancel", "-y", "--array", str(first))
    assert cancel.exit_code == 0, cancel.output
    assert f"Job array {first}: 3 job(s) cancelling, 0 already finished" in cancel.stdout
    for rank in range(3):
        spot_clean.wait_status(first + rank, "CANCELLED", timeout=30)
    missing = spot_clean.run("cancel", "-y", "--array", "999999")
    assert missing.exit_code != 0 and "no job array starts at job 999999" in missing.output


def test_cancel_by_name_stops_the_submission(spot_clean: Spot) -> None:
    """A cancel (by the array's name) that lands while the array is being submitted stops
    the submitter first: no job of it starts afterwards, and every job it started is cancelled."""
    spot_clean.cloud.config()
    config = spot_clean.cloud.config_path
    original = config.read_text()
    config.write_text(original.replace("capacity: 8", "capacity: 0"))  # the jobs wait on timers: no processes

    async def scenario() -> tuple[int, int, int, str]:
        client = await SpotClient.connect(spot_clean.settings)
        p = plan("echo never", Overrides(name="halted"), spot_clean.settings)
        first = await allocate_block(client, 40)
        spec = ArraySpec(first_id=first, count=40, template=p.to_spec(first), batch=2)
        await start_array(client, spec)
        handle = client.temporal.get_workflow_handle(array_workflow_id(first))
        while await handle.query(JobArrayWorkflow.started) < 2:
            await asyncio.sleep(0.05)
        cancel = await asyncio.to_thread(spot_clean.run, "cancel", "-y", "-n", "halted")
        assert cancel.exit_code == 0, cancel.output
        started = await handle.result()
        await asyncio.sleep(2)  # a submitter that went on would have started more by now
        return first, started, await client.count_jobs(array_query(first, 40)), cancel.stdout

    try:
        first, started, existing, said = asyncio.run(scenario())
        assert 2 <= started < 40
        assert f"Job array {first}: {started} job(s) cancelling, 0 already finished, {40 - started} never submitted" in said
        assert existing == started
        for jid in range(first, first + started):
            spot_clean.wait_status(jid, "CANCELLED", timeout=60)
    finally:
        config.write_text(original)


@pytest.mark.parametrize("bad", ["0", "-1", str(MAX_ARRAY_JOBS + 1)])
def test_bad_num_jobs_is_one_line_and_makes_nothing(spot_clean: Spot, bad: str) -> None:
    before = spot_clean.launch_detached("-n", "probe", "echo before")
    result = spot_clean.run("launch", "-y", "--num-jobs", bad, "echo x")
    assert result.exit_code == 2
    assert result.output.strip() == (f"Error: --num-jobs must be between 1 and {MAX_ARRAY_JOBS:,} (got {bad}); "
                                     "for more, launch several arrays")
    after = spot_clean.launch_detached("-n", "probe", "echo after")
    assert after == before + 1  # no id was taken, no job made
    spot_clean.wait_status(after, "SUCCEEDED")
    spot_clean.wait_status(before, "SUCCEEDED")


def test_async_alone_is_detach_and_pipelines_are_no_array(spot_clean: Spot, tmp_path: Path) -> None:
    result = spot_clean.run("launch", "-y", "--async", "-n", "quick", "echo quick")
    assert result.exit_code == 0, result.output
    job_id = launched_id(result.stderr)
    assert result.stdout.strip() == str(job_id)  # not followed: the id for scripts, no program output
    spot_clean.wait_status(job_id, "SUCCEEDED")
    pipeline = tmp_path / "pipe.yaml"
    pipeline.write_text("name: duo\n---\nname: a\nrun: echo a\n---\nname: b\nrun: echo b\n")
    refused = spot_clean.run("launch", "-y", "--num-jobs", "2", str(pipeline))
    assert refused.exit_code == 2
    assert refused.output.strip() == "Error: --num-jobs launches copies of one task, not of a pipeline"


def test_a_submission_run_twice_makes_each_job_once(spot_clean: Spot) -> None:
    """A retried launch (the same array started again) and a second submitter over the same
    array (what a retried batch or a replay amounts to) start nothing twice."""

    async def scenario() -> tuple[int, int, int]:
        client = await SpotClient.connect(spot_clean.settings)
        p = plan("echo once", Overrides(name="once"), spot_clean.settings)
        first = await allocate_block(client, 5)
        spec = ArraySpec(first_id=first, count=5, template=p.to_spec(first), batch=2)
        await start_array(client, spec)
        await start_array(client, spec)  # the same array again: a no-op
        done = await client.temporal.get_workflow_handle(array_workflow_id(first)).result()
        again = await client.temporal.execute_workflow(JobArrayWorkflow.run, spec, id=f"{array_workflow_id(first)}-again",
                                                       task_queue="spotctl")
        return first, done + again, await client.count_jobs(array_query(first, 5))

    first, submitted, existing = asyncio.run(scenario())
    assert submitted == 10 and existing == 5
    for jid in range(first, first + 5):
        job = spot_clean.wait_status(jid, "SUCCEEDED", timeout=90)
        assert job["array_rank"] == jid - first


def test_only_a_submitters_own_id_names_an_array() -> None:
    """The allocator's seed and `cancel -n` read arrays from their submitters' ids: a second
    submitter run over an array under another id (the test above makes one) is skipped, never a
    crash of every later launch."""
    assert array_first_id(array_workflow_id(41)) == 41
    for other in (f"{array_workflow_id(41)}-again", "spotctl-array-", "spotctl-job-41", "spotctl-array-x1"):
        assert array_first_id(other) is None, other
