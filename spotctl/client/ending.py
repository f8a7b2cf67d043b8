"""A job's last state however its workflow ended (workflows/job_end.py maps the job's end to
Temporal's): Completed returns it, Failed carries it as the failure's one detail, and any other
end (Canceled, terminated, timed out) leaves it in the memo, which `status` reads too.
"""

from __future__ import annotations

from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError

from spotctl.client.listing import state_from_execution
from spotctl.models import JobState


async def job_end(handle: WorkflowHandle) -> JobState:
    """Wait for a job's (or pipeline's, or a pipeline task's) workflow to end; its last state."""
    try:
        return JobState.model_validate(await handle.result())
    except WorkflowFailureError as err:
        cause = err.cause
        if isinstance(cause, ApplicationError) and cause.details:
            try:
                return JobState.model_validate(cause.details[0])
            except ValueError:
                pass
    return await state_from_execution(await handle.describe())
