"""How a job's workflow ends in Temporal, so that the state Temporal shows (the web UI's list,
`temporal workflow list`) matches the job's (docs/temporal-ui.md):

    SUCCEEDED          -> Completed: the result is the job's JobState, as it always was
    FAILED, FAILED_*   -> Failed: an ApplicationError whose type is the status (FAILED_SETUP ...),
                          whose message is the reason, with the job's JobState as its one detail
    CANCELLED          -> Canceled: Temporal ends a workflow Canceled only after a cancel request,
                          and spotctl's cancel is a signal, so the job has Temporal asked to
                          cancel it at its very end (its clusters torn down, its events handed
                          on), by an activity: a workflow cannot ask it of itself
    CANCELLED (a pipeline's task) -> Failed with type CANCELLED: its pipeline reads the task's
                          last state from how it ended, and a Canceled end carries no detail

Everything spotctl reads of a job's end (`status`, `launch` waiting for it, pipelines, arrays,
pools) reads its state (memo, query, or the failure's detail), never the bare result.
Behind the TRUE_ENDS patch: histories from before it end Completed and replay unchanged.
Deterministic, no I/O.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError, CancelledError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from spotctl.activities import ask_canceled_end  # its typed reference only (passed through)
    from spotctl.models import JobState, JobStatus
    from spotctl.workflows.retry import INFRA_RETRY
    from spotctl.workflows.shielded import shielded

TRUE_ENDS = "true-end-states"
"""The patch that ends a failed job's workflow Failed and a cancelled one's Canceled."""


async def end(state: JobState, *, task: bool = False) -> JobState:
    """The workflow's result for a job that ended in `state` (SUCCEEDED), or the exception that
    ends it Failed or Canceled (see the module docstring). `task`: a pipeline's task."""
    if not state.status.is_terminal or state.status == JobStatus.SUCCEEDED or not workflow.patched(TRUE_ENDS):
        return state
    reason = state.failure_reason or state.status.value.lower()
    if state.status == JobStatus.CANCELLED and not task:
        await _cancel_requested()
        raise CancelledError(reason)
    raise ApplicationError(reason, state, type=state.status.value, non_retryable=True)


async def _cancel_requested() -> None:
    """Return once Temporal has a cancel request for this workflow: the web UI's (or any
    client's) if one came, else one the ask_canceled_end activity makes now (the server
    refuses a workflow's request to cancel itself)."""
    if workflow.cancellation_reason() is not None:
        return
    # Shielded: the request it makes arrives while it is still finishing, and the workflow waits
    # for its completion instead of cancelling it, so the end is one clean task (an end sent
    # with the completion still unseen would be refused by the server and tried again).
    await shielded(workflow.execute_activity(
        ask_canceled_end, workflow.info().workflow_id, start_to_close_timeout=timedelta(minutes=1),
        retry_policy=INFRA_RETRY, summary="end Canceled: ask Temporal to cancel this workflow"))
    try:
        await workflow.wait_condition(lambda: workflow.cancellation_reason() is not None)
    except asyncio.CancelledError:  # the request arrived now: the SDK cancels the run (the end above)
        pass


def ended_state(err: ChildWorkflowError) -> JobState | None:
    """A job's (a pipeline task's) last state from the failure it ended with under TRUE_ENDS;
    None for any other failure (terminated, timed out, a bug)."""
    cause = err.cause
    if not isinstance(cause, ApplicationError) or not cause.details:
        return None
    try:
        return JobState.model_validate(cause.details[0])
    except ValueError:
        return None
