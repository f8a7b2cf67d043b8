"""`spotctl status` with many jobs (issue 11): the newest --limit jobs (50 by default) and a
footer saying how many there are, -s in the visibility query, -a for everything, --json
obeys the same; `cancel -a` finds every unfinished job with one query and cancels them all.

Many jobs are made cheaply: workflows of the job type on a task queue no worker polls, with
a finished (then terminated) or unfinished state in their memo and search attributes."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from click.testing import Result
from temporalio.api.enums.v1 import EventType
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from spotctl.cli.jobs import _with_all_attempts
from spotctl.cli.render import page_footer
from spotctl.client import JOB_WORKFLOW, JobListing, SpotClient, workflow_id
from spotctl.models import AttemptRecord, JobState, JobStatus
from spotctl.models import search_attributes as sa

from conftest import Spot

NOBODY = "spotctl-test-nobody-polls"
"""A task queue without a worker: the fake jobs' workflows never run a task."""


# ---- fake jobs -------------------------------------------------------------------------

async def _start_fake(client: SpotClient, status: JobStatus, name: str) -> int:
    job_id = await client.allocate_job_id()
    state = JobState(job_id=job_id, name=name, status=status, submitted_at=datetime.now(UTC), resources="[any] spot")
    handle = await client.temporal.start_workflow(
        JOB_WORKFLOW, id=workflow_id(job_id), task_queue=NOBODY,
        search_attributes=TypedSearchAttributes([
            SearchAttributePair(sa.JOB_ID, job_id), SearchAttributePair(sa.JOB_NAME, name),
            SearchAttributePair(sa.STATUS, status.value), SearchAttributePair(sa.RECOVERIES, 0),
        ]),
        memo={"state": state.model_dump(mode="json")},
    )
    if status.is_terminal:
        await handle.terminate("a fake finished job")
    return job_id


async def _visible(client: SpotClient, ids: list[int], finished: bool) -> None:
    """Wait until visibility shows every one of `ids` open or closed as it is now (it is
    eventually consistent)."""
    execution = "Terminated" if finished else "Running"
    query = f"{sa.JOB_ID.name} IN ({', '.join(map(str, ids))}) AND ExecutionStatus = '{execution}'"
    for _ in range(100):
        if await client.count_jobs(query) == len(ids):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"jobs {ids} never all visible")


def fake_jobs(spot: Spot, count: int, status: JobStatus, name: str = "fake") -> list[int]:
    """`count` new jobs in `status` (ids increasing), visible to `status` when this returns."""

    async def make() -> list[int]:
        client = await SpotClient.connect(spot.settings)
        ids = [await _start_fake(client, status, name) for _ in range(count)]
        await _visible(client, ids, status.is_terminal)
        return ids

    return asyncio.run(make())


def end_fakes(spot: Spot, ids: list[int]) -> None:
    """Terminate fake jobs still open, so no later test sees (or cancels) them; returns once
    visibility shows them closed."""

    async def end() -> None:
        client = await SpotClient.connect(spot.settings)
        for job_id in ids:
            try:
                await client.temporal.get_workflow_handle(workflow_id(job_id)).terminate("test over")
            except Exception:
                pass  # already closed
        if ids:
            await _visible(client, ids, finished=True)

    asyncio.run(end())


def wait_none_unfinished(spot: Spot, timeout: float = 15) -> None:
    """Until `status -s` lists nothing (a cancelled job's workflow closes after its teardown)."""
    deadline = time.monotonic() + timeout
    while json_ids(spot, "-s") and time.monotonic() < deadline:
        time.sleep(0.2)


def cancel_signalled(spot: Spot, job_id: int) -> bool:
    async def look() -> bool:
        client = await SpotClient.connect(spot.settings)
        history = await client.temporal.get_workflow_handle(workflow_id(job_id)).fetch_history()
        return any(e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
                   and e.workflow_execution_signaled_event_attributes.signal_name == "cancel" for e in history.events)

    return asyncio.run(look())


@pytest.fixture
def open_fakes(spot_clean: Spot) -> Iterator[list[int]]:
    """Ids of unfinished fake jobs a test made: terminated at its end, whatever happened."""
    ids: list[int] = []
    yield ids
    end_fakes(spot_clean, ids)


def run_ok(spot: Spot, *args: str) -> Result:
    result = spot.run(*args)
    assert result.exit_code == 0, result.output
    return result


def table_ids(text: str) -> list[int]:
    return [int(line.split()[0]) for line in text.splitlines()[1:] if line.split() and line.split()[0].isdigit()]


def json_ids(spot: Spot, *args: str) -> list[int]:
    return [j["job_id"] for j in json.loads(run_ok(spot, "status", "--json", *args).stdout)]


# ---- against the server ------------------------------------------------------------------

def test_limit_shows_the_newest_jobs_and_a_footer(spot_clean: Spot) -> None:
    ids = fake_jobs(spot_clean, 6, JobStatus.SUCCEEDED)
    every = json_ids(spot_clean, "-a")
    assert every == sorted(every, reverse=True) and every[:6] == ids[::-1]

    out = run_ok(spot_clean, "status", "--limit", "3").stdout
    assert table_ids(out) == ids[:-4:-1], out
    footer = f"Showing the newest 3 of {len(every):,} jobs; --limit N or --all for more."
    assert out.rstrip().endswith(footer), out

    as_json = run_ok(spot_clean, "status", "--json", "--limit", "3")
    assert [j["job_id"] for j in json.loads(as_json.stdout)] == ids[:-4:-1]
    assert footer in as_json.stderr  # stdout stays JSON only

    everything = run_ok(spot_clean, "status", "-a").stdout
    assert table_ids(everything) == every and "Showing the newest" not in everything
    assert "ON-DEMAND" in everything  # -a keeps its columns
    assert json_ids(spot_clean, "-a", "--limit", "2") == ids[:-3:-1]  # an explicit --limit wins

    for bad in ("0", "-1", "100001", "many"):
        result = spot_clean.run("status", "--limit", bad)
        assert result.exit_code == 2 and "Invalid value for '--limit'" in result.stderr, result.output


def test_skip_finished_is_in_the_query(spot_clean: Spot, open_fakes: list[int]) -> None:
    done = fake_jobs(spot_clean, 3, JobStatus.FAILED)
    open_fakes += fake_jobs(spot_clean, 2, JobStatus.RUNNING, name="still-going")
    out = run_ok(spot_clean, "status", "-s").stdout
    assert table_ids(out) == open_fakes[::-1] and "SUCCEEDED" not in out, out
    assert json_ids(spot_clean, "-s") == open_fakes[::-1]
    assert json_ids(spot_clean, "--limit", "5") == sorted(done + open_fakes, reverse=True)

    one = run_ok(spot_clean, "status", "-s", "--limit", "1").stdout
    assert table_ids(one) == [open_fakes[-1]]
    assert "Showing the newest 1 of 2 unfinished jobs; --limit N or --all for more." in one

    end_fakes(spot_clean, open_fakes)  # terminated outside spotctl: over, whatever STATUS says
    assert "No unfinished managed jobs." in run_ok(spot_clean, "status", "-s").stdout


def test_cancel_all_cancels_every_unfinished_job(spot_clean: Spot, open_fakes: list[int]) -> None:
    finished = fake_jobs(spot_clean, 2, JobStatus.SUCCEEDED)
    real = spot_clean.launch_detached("-n", "bulk-real", "sleep 1000")
    open_fakes += fake_jobs(spot_clean, 34, JobStatus.RUNNING, name="bulk")  # more than CANCELS_AT_ONCE
    picked = fake_jobs(spot_clean, 2, JobStatus.PENDING, name="pick-me")
    open_fakes += picked

    by_name = run_ok(spot_clean, "cancel", "-y", "-n", "pick-me").stdout
    assert all(f"Job {i}: cancelling" in by_name for i in picked) and by_name.count("cancelling") == 2, by_name

    result = run_ok(spot_clean, "cancel", "-a", "-y")
    for job_id in [real, *open_fakes]:
        assert f"Job {job_id}: cancelling" in result.stdout, result.stdout
    assert not any(f"Job {i}:" in result.stdout for i in finished)
    assert all(cancel_signalled(spot_clean, i) for i in open_fakes)
    spot_clean.wait_status(real, "CANCELLED", timeout=20)
    end_fakes(spot_clean, open_fakes)
    wait_none_unfinished(spot_clean)
    assert run_ok(spot_clean, "cancel", "-a", "-y").stdout.strip() == "No unfinished jobs to cancel."
    assert spot_clean.run("cancel", "-y", "-n", "pick-me").exit_code == 102  # none unfinished by that name


# ---- without a server ----------------------------------------------------------------

class CountingVisibility:
    """Just enough of temporalio's Client for JobListing's paging: counts over a set of ids."""

    def __init__(self, ids: set[int], first: int) -> None:
        self.ids, self.first, self.calls = ids, first, 0

    async def count_workflows(self, query: str) -> SimpleNamespace:
        self.calls += 1
        op, value = query.rsplit(" ", 2)[-2:]
        assert op == ">=", query
        return SimpleNamespace(count=sum(1 for i in self.ids if i >= int(value)))

    def list_workflows(self, query: str, **_: object):
        first = self.first

        async def one():
            yield SimpleNamespace(typed_search_attributes={sa.JOB_ID: first})

        return one()


@pytest.mark.parametrize("seed", range(30))
def test_newest_floor_finds_a_tight_window(seed: int) -> None:
    """Whatever the gaps between ids (retention, -s, a name), the window holds the newest
    `limit` jobs and not many more, in few counts; dense ids take one count."""
    rng = random.Random(seed)
    top = rng.randint(60, 100_000)
    ids = set(rng.sample(range(1, top + 1), rng.randint(51, min(top, 3000)))) | {top}
    limit = rng.choice([1, 3, 50])
    temporal = CountingVisibility(ids, first=rng.choice(sorted(ids)))
    floor = asyncio.run(JobListing(temporal)._newest_floor("q", limit))  # type: ignore[arg-type]
    inside = sum(1 for i in ids if i >= floor)
    assert limit <= inside <= 2 * limit, (floor, inside)
    assert temporal.calls <= 4 * top.bit_length() + 2

    dense = CountingVisibility(set(range(1, 1001)), first=1000)
    assert asyncio.run(JobListing(dense)._newest_floor("q", 50)) == 951 and dense.calls == 2  # type: ignore[arg-type]


def test_only_running_jobs_missing_attempts_are_queried() -> None:
    t0 = datetime.now(UTC)
    record = AttemptRecord(attempt=1, cloud="local", region="r", zone="z", launched_at=t0)
    jobs = [JobState(job_id=i, name="x", submitted_at=t0, status=JobStatus.RUNNING, recoveries=2, history=[record])
            for i in range(20)]
    jobs += [JobState(job_id=100, name="done", submitted_at=t0, status=JobStatus.SUCCEEDED, recoveries=2)]
    asked: list[int] = []

    class Client:
        unanswered: set[str] = set()  # every live query answered

        async def get_job(self, job_id: int) -> JobState:
            asked.append(job_id)
            return jobs[job_id].model_copy(update={"history": [record] * 3})

    full = asyncio.run(_with_all_attempts(Client(), jobs))  # type: ignore[arg-type]
    assert sorted(asked) == list(range(20)) and all(len(j.history) == 3 for j in full[:20])
    assert full[-1] is jobs[-1]


def test_footer_only_when_some_are_left_out() -> None:
    assert page_footer(50, 50) is None
    assert page_footer(50, 1234) == "Showing the newest 50 of 1,234 jobs; --limit N or --all for more."
    assert page_footer(2, 3, unfinished=True) == "Showing the newest 2 of 3 unfinished jobs; --limit N or --all for more."
