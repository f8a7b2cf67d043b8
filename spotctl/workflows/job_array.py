"""JobArrayWorkflow: the durable submitter of a job array (`launch --num-jobs N`).

Why a workflow and not the CLI: 10,000 starts take tens of seconds; a CLI killed halfway
(Ctrl-C, a closed laptop) would leave part of the array unsubmitted with nobody to finish it.
The CLI instead allocates the N ids as one block, stages the files once, and starts this
workflow (id spotctl-array-<first id>: a repeat start finds it), which returns in about a
second. This workflow starts the jobs' workflows ARRAY_BATCH at a time through an activity
whose every start is a no-op when the job exists (activities/job_array.py), so a retried
batch, a worker that died mid-batch or a replayed history never makes a job twice, and none
is lost: the loop goes on from the last batch that completed.

A cancel of the array (`cancel --array`, an update) stops it between batches and answers with
how many jobs exist, once no batch is in flight: the CLI then cancels exactly those, and no
job of the array is started after the cancel. When the array staged files (a workdir, local
file mounts: one ephemeral bucket for all its jobs), it waits until every started job has
ended and deletes them, so N jobs share one upload and nothing is left.
Deterministic, no I/O.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from spotctl.activities import ArrayActivities  # its typed reference only (passed through)
    from spotctl.models import MONITOR_HEARTBEAT_TIMEOUT_S, monitor_queue
    from spotctl.models.array import ARRAY_WORKFLOW, ArrayBatch, ArrayEnd, ArraySpec
    from spotctl.workflows.retry import HEARTBEAT, INFRA_RETRY


@workflow.defn(name=ARRAY_WORKFLOW)
class JobArrayWorkflow:
    @workflow.init
    def __init__(self, spec: ArraySpec) -> None:
        self._started = 0
        """Ranks 0.._started-1 exist (every batch before the current one completed)."""
        self._cancelled = False
        self._in_flight = False

    @workflow.run
    async def run(self, spec: ArraySpec) -> int:
        """How many of the array's jobs were started (all of them, unless cancelled)."""
        while self._started < spec.count and not self._cancelled:
            end = min(spec.count, self._started + spec.batch)
            self._in_flight = True
            try:
                await workflow.execute_activity_method(
                    ArrayActivities.start_array_jobs, ArrayBatch(spec=spec, start=self._started, end=end),
                    start_to_close_timeout=timedelta(minutes=10), heartbeat_timeout=HEARTBEAT,
                    retry_policy=INFRA_RETRY, summary=f"start jobs {spec.first_id + self._started}-{spec.first_id + end - 1}")
            finally:
                self._in_flight = False
            self._started = end
        if spec.ephemeral_buckets:
            await workflow.execute_activity_method(
                ArrayActivities.end_array,
                ArrayEnd(first_id=spec.first_id, started=self._started, ephemeral_buckets=spec.ephemeral_buckets),
                task_queue=monitor_queue(workflow.info().task_queue), start_to_close_timeout=timedelta(days=365),
                heartbeat_timeout=timedelta(seconds=MONITOR_HEARTBEAT_TIMEOUT_S), retry_policy=INFRA_RETRY,
                summary="wait for the array's jobs to end, then delete its staged files")
        return self._started

    @workflow.update
    async def cancel(self) -> int:
        """Stop submitting; how many jobs exist (ranks 0..n-1), once no batch is in flight:
        no job of the array is started after this returns."""
        self._cancelled = True
        await workflow.wait_condition(lambda: not self._in_flight)
        return self._started

    @workflow.query
    def started(self) -> int:
        """How many of the array's jobs exist so far."""
        return self._started
