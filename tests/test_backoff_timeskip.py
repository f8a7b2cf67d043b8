"""Long launch backoffs run on durable timers: time skipping proves an hour of waiting for
capacity, with real-cloud backoff (10 s x1.6, capped at 5 min), in seconds of wall time.

The Java time-skipping test server cannot hold custom search attributes (it has no operator
service), so this uses the real dev server with per-workflow time skipping (temporalio's
experimental `start_time_skipping_v2`)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment
from timeskip import SKIPPING_ARGS

from spotctl.activities import all_activities
from spotctl.activities.deps import Deps
from spotctl.cli.render import short_failure, table_reason
from spotctl.client import job_end
from spotctl.clouds.local import LocalCloud
from spotctl.codec import data_converter
from spotctl.config import load_settings
from spotctl.embedded import temporal_binary
from spotctl.models import TASK_QUEUE, ErrorKind, JobSpec, JobState, JobStatus, RecoveryConfig
from spotctl.models import search_attributes as sa
from spotctl.policy import rank_candidates
from spotctl.worker import job_workers, running
from spotctl.workflows import ALL_WORKFLOWS

pytestmark = pytest.mark.quick  # `pytest -m quick`: the fast loop (README, Tests)


async def test_an_hour_without_capacity_ends_failed_no_resource(tmp_path: Path) -> None:
    settings = load_settings(tmp_path)
    cloud = LocalCloud(settings)
    cloud.offerings()  # writes the default config
    cloud.config_path.write_text(cloud.config_path.read_text().replace("capacity: 8", "capacity: 0"))
    spec = JobSpec(
        job_id=1, name="starved", run="echo hi", candidates=rank_candidates(cloud.offerings(), []),
        recovery=RecoveryConfig(max_wait_s=3600), submitted_at=datetime.now(UTC),
        launch_retry_initial_s=10.0,
    )
    async with await WorkflowEnvironment.start_time_skipping_v2(
        dev_server_existing_path=temporal_binary(), data_converter=data_converter(settings),
        search_attributes=list(sa.ALL),
        dev_server_extra_args=SKIPPING_ARGS,  # a skip costs 10 ms, not a second (timeskip.py)
    ) as env:
        async with running(job_workers(env.client, TASK_QUEUE, ALL_WORKFLOWS, all_activities(Deps(settings)))):
            started = datetime.now(UTC)
            state: JobState = await job_end(await env.client.start_workflow(
                "SpotJobWorkflow", spec, id=f"timeskip-{uuid.uuid4()}", task_queue=TASK_QUEUE, result_type=JobState,
            ))  # its workflow ends Failed, with the job's state as the failure's detail
            wall = (datetime.now(UTC) - started).total_seconds()
    assert state.status == JobStatus.FAILED_NO_RESOURCE
    assert "no capacity" in (state.failure_reason or "")
    # The reason as data too (JobState.failure), shown by `status` as its text always was.
    failure = state.failure_data
    assert failure is not None and (failure.head or "").startswith("no capacity for ") and failure.candidates
    assert all(c.kind == ErrorKind.CAPACITY and c.location.startswith("local/") for c in failure.candidates)
    assert table_reason(state) == short_failure(state.failure_reason)
    assert (state.ended_at - state.submitted_at).total_seconds() >= 3600  # workflow time
    assert wall < 60  # but not wall time
    assert cloud.list_instances(alive_only=True) == []
