"""Job ids: failed launches give theirs back; a continued-as-new job is one row (issue 7, item 10)."""

from __future__ import annotations

import asyncio
import json
import textwrap
from pathlib import Path

from spotctl.client import SpotClient
from spotctl.planning import Overrides, plan

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
