"""The retry policy of the job and pipeline workflows' activities: infrastructure errors retry
forever, at most a minute apart; only the named errors (models.JOB_ENDING_ERRORS) end a job.

One home for what SpotJobWorkflow (and so SpotTaskWorkflow) and SpotPipelineWorkflow schedule
with: a retry policy is part of each ScheduleActivityTask command, so the two may not drift.
Deterministic, no I/O.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from spotctl.models import HEARTBEAT_TIMEOUT_S, JOB_ENDING_ERRORS

INFRA_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=60),
    non_retryable_error_types=list(JOB_ENDING_ERRORS),
)
"""Every job and pipeline activity: retried forever at most a minute apart, except the named errors."""
HEARTBEAT = timedelta(seconds=HEARTBEAT_TIMEOUT_S)
"""The heartbeat time-out of every job and pipeline activity but the monitor (models.HEARTBEAT_TIMEOUT_S)."""
