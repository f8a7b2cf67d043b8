"""Clusters that are created and then die before they run (issue 22, item 2), against scripted
activities with time skipping: GCE reports a spot stock-out after `create` returned (the
instance then reads as gone: PREEMPTED before ready), so this is an ordinary wait for capacity.
Every round of it backs off, counts toward job_recovery.max_wait and continues as new when the
history grows; it used to retry at once, for ever, in one history (the server's event limit
then terminated the job, with no final teardown)."""

from __future__ import annotations

import asyncio
import uuid

from temporalio import activity
from temporalio.client import WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from test_workflow_races import FakeCloud, job_spec, runs_of
from timeskip import quick_skipping_env  # noqa: F401  (a skip costs 10 ms, not a second: timeskip.py)

from spotctl.client import job_end
from spotctl.models import NOT_READY_ERROR, PREEMPTED_ERROR, ClusterHandle, JobState, JobStatus, ReadyRequest
from spotctl.worker import job_workers, running
from spotctl.workflows import ALL_WORKFLOWS

BOUND_S = 120
"""Wall-clock bound on a job: with the fix these take seconds; without it they never end."""


def dying_cloud(dies: int | None) -> FakeCloud:
    """A FakeCloud whose clusters are created, then die before they run: the first `dies`
    of them (None: all), alternately preempted and never ready."""
    cloud = FakeCloud()
    acts = cloud.activities()

    @activity.defn(name="wait_cluster_ready")
    async def wait_cluster_ready(req: ReadyRequest) -> ClusterHandle:
        n = cloud._count("died")
        if dies is None or n <= dies:
            cloud.instances[req.cluster.cluster_name] = "dead"  # still there until torn down
            kind = PREEMPTED_ERROR if n % 2 else NOT_READY_ERROR
            raise ApplicationError("instance gone before it ran (ZONE_RESOURCE_POOL_EXHAUSTED)", type=kind,
                                   non_retryable=True)
        cloud.instances[req.cluster.cluster_name] = "running"
        return req.cluster

    others = [a for a in acts if a.__name__ != "wait_cluster_ready"]
    cloud.activities = lambda: [*others, wait_cluster_ready]  # type: ignore[method-assign]
    return cloud


async def finish(handle: WorkflowHandle, what: str) -> JobState:
    """The job's end, or a failure (and the workflow terminated) if it never comes."""
    try:
        return await asyncio.wait_for(job_end(handle), BOUND_S)
    except TimeoutError:
        history = await handle.fetch_history()
        await handle.terminate("test over")
        raise AssertionError(f"{what}: the job never ended ({len(history.events)} events in its run)") from None


async def test_dying_clusters_count_toward_max_wait(skipping_env: WorkflowEnvironment) -> None:
    """Every cluster dies before it runs: the job ends FAILED_NO_RESOURCE once max_wait is
    over, with every cluster torn down."""
    cloud = dying_cloud(None)
    spec = job_spec(recovery=job_spec().recovery.model_copy(update={"max_wait_s": 900.0}))
    queue = f"died-{uuid.uuid4()}"
    client = skipping_env.client
    async with running(job_workers(client, queue, ALL_WORKFLOWS, cloud.activities())):
        handle = await client.start_workflow("SpotJobWorkflow", spec, id=f"died-{uuid.uuid4()}", task_queue=queue,
                                             result_type=JobState)
        state = await finish(handle, "max_wait 15 min")
    assert state.status == JobStatus.FAILED_NO_RESOURCE, state
    assert (state.ended_at - state.submitted_at).total_seconds() >= 900
    assert cloud.attempts["died"] >= 5 and cloud.instances == {}


async def test_dying_clusters_back_off_and_continue_as_new(skipping_env: WorkflowEnvironment) -> None:
    """24 clusters die before they run, then one runs: the rounds backed off (workflow
    time passed), the workflow continued as new several times with short histories, and the
    job SUCCEEDED with nothing left."""
    dies = 24
    cloud = dying_cloud(dies)
    spec = job_spec(launch_retry_initial_s=10.0, continue_as_new_after_events=150)
    workflow_id = f"died-{uuid.uuid4()}"
    queue = f"died-{uuid.uuid4()}"
    client = skipping_env.client
    async with running(job_workers(client, queue, ALL_WORKFLOWS, cloud.activities())):
        handle = await client.start_workflow("SpotJobWorkflow", spec, id=workflow_id, task_queue=queue,
                                             result_type=JobState)
        state = await finish(handle, f"{dies} dead clusters")
    assert state.status == JobStatus.SUCCEEDED, state
    assert cloud.attempts["died"] == dies + 1 and cloud.instances == {}
    assert (state.started_at - state.submitted_at).total_seconds() >= dies * 10  # it backed off
    lengths = await runs_of(client, workflow_id)
    assert len(lengths) >= 3, lengths  # it continued as new, several times
    assert max(lengths) < 150 + 40, lengths


async def test_dying_clusters_count_toward_the_attempts_per_run(skipping_env: WorkflowEnvironment) -> None:
    """Each dead cluster uses an attempt number: after continue_as_new_after_attempts of them
    the run continues as new, however short its history."""
    dies = 12
    cloud = dying_cloud(dies)
    spec = job_spec(continue_as_new_after_attempts=4)
    workflow_id = f"died-{uuid.uuid4()}"
    queue = f"died-{uuid.uuid4()}"
    client = skipping_env.client
    async with running(job_workers(client, queue, ALL_WORKFLOWS, cloud.activities())):
        handle = await client.start_workflow("SpotJobWorkflow", spec, id=workflow_id, task_queue=queue,
                                             result_type=JobState)
        state = await finish(handle, f"{dies} dead clusters")
    assert state.status == JobStatus.SUCCEEDED and state.attempt == dies + 1, state
    assert cloud.instances == {}
    assert len(await runs_of(client, workflow_id)) >= 3
