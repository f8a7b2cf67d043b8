"""`status`'s cost of a running job with more than MEMO_HISTORY attempts (issue 22, item 8).

A running job's memo (what a listing reads) keeps only its last few attempt records; the live
`state` query has them all. Both must show the same bill: the memo carries what the cut
records cost. The job here has recovered 15 times (a carried state, the cheap way to get
there) and runs its 16th attempt on scripted activities."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.testing import WorkflowEnvironment
from test_workflow_races import FakeCloud, job_spec, wait_event

from spotctl.client import job_end, read_state
from spotctl.models import ActivityNames, AttemptRecord, CarriedState, JobState, JobStatus
from spotctl.policy import job_cost, keep_last, money
from spotctl.worker import job_workers, running
from spotctl.workflows import ALL_WORKFLOWS
from spotctl.workflows.visibility import MEMO_HISTORY

T0 = datetime(2026, 1, 5, tzinfo=UTC)
ENDED = 15


def record(i: int) -> AttemptRecord:
    """Attempt i: half an hour on 2 nodes at $(0.10 * i)/h spot, $1.00/h on demand."""
    launched = T0 + timedelta(hours=i)
    return AttemptRecord(attempt=i, cloud="fake", region="east", zone="east-a", instance_type="t",
                         launched_at=launched, started_at=launched + timedelta(minutes=2),
                         ended_at=launched + timedelta(minutes=30), outcome="preempted",
                         use_spot=True, price=0.10 * i, nodes=2, ondemand_price=1.00)


async def test_memo_and_live_query_show_the_same_cost(env: WorkflowEnvironment) -> None:
    assert ENDED > MEMO_HISTORY
    base = job_spec()
    records = [record(i) for i in range(1, ENDED + 1)]
    carried = CarriedState(state=JobState(job_id=base.job_id, name=base.name, submitted_at=T0,
                                          status=JobStatus.RECOVERING, recoveries=ENDED, attempt=ENDED,
                                          history=records),
                           attempt=ENDED, restarts_used=0)
    spec = base.model_copy(update={"carried": carried})
    expected = sum(0.10 * i * 2 * 0.5 for i in range(1, ENDED + 1))  # price x nodes x hours
    cloud = FakeCloud(block=ActivityNames.MONITOR)
    queue = f"cost-{uuid.uuid4()}"
    workflow_id = f"cost-{uuid.uuid4()}"
    async with running(job_workers(env.client, queue, ALL_WORKFLOWS, cloud.activities())):
        handle = await env.client.start_workflow("SpotJobWorkflow", spec, id=workflow_id, task_queue=queue,
                                                 result_type=JobState)
        await wait_event(cloud, "monitor running")
        live = await read_state(env.client, workflow_id, live=True)  # `status ID`: the query
        listed = await read_state(env.client, workflow_id, live=False)  # a listing: the memo
        await handle.signal("cancel")
        state = await job_end(handle)
    assert live is not None and listed is not None
    assert live.status == listed.status == JobStatus.RUNNING
    assert len(listed.history) == MEMO_HISTORY < len(live.history) == ENDED + 1
    now = datetime.now(UTC)
    live_cost, listed_cost = job_cost(live, now, {}), job_cost(listed, now, {})
    assert live_cost.cost == pytest.approx(expected) and listed_cost.cost == pytest.approx(expected)
    assert money(listed_cost.cost) == money(live_cost.cost) == money(expected)
    assert listed_cost.ondemand == pytest.approx(live_cost.ondemand)
    assert listed_cost.saved_pct == pytest.approx(live_cost.saved_pct)
    assert state.status == JobStatus.CANCELLED and cloud.instances == {}


def test_a_pipeline_sums_its_tasks_cut_records() -> None:
    """A pipeline's cost adds up its tasks': a running task's memo with cut records counts
    them (pipeline_view.merge adds the rows' earlier totals)."""
    from spotctl.client import merge

    records = [record(i) for i in range(1, ENDED + 1)]
    task = JobState(job_id=7, name="train", submitted_at=T0, status=JobStatus.RUNNING, task=0, attempt=ENDED,
                    history=records)
    full = job_cost(task, T0, {}).cost
    listed = keep_last(task, MEMO_HISTORY, T0)
    parent = JobState(job_id=7, name="pipe", submitted_at=T0, status=JobStatus.STARTING,
                      tasks=[JobState(job_id=7, name="train", submitted_at=T0, status=JobStatus.STARTING, task=0)])
    merged = merge(parent, {0: listed})
    assert len(merged.history) == MEMO_HISTORY
    assert job_cost(merged, T0, {}).cost == pytest.approx(full)
    assert job_cost(merged, T0, {}).ondemand == pytest.approx(job_cost(task, T0, {}).ondemand)
