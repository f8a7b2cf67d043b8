"""The activity that lets a cancelled job's workflow end Canceled (workflows/job_end.py).

Temporal ends a workflow Canceled only after a cancel request, and spotctl's cancel is a signal;
a workflow cannot request its own cancel (the server answers "not found"). So at its very end,
once its clusters are torn down and its events handed on, a job cancelled by a signal asks
this activity to request it. Idempotent: a second request of an already requested cancel, or
one for a run that has ended meanwhile, changes nothing.
"""

from __future__ import annotations

from temporalio import activity
from temporalio.service import RPCError, RPCStatusCode

from spotctl.models import ActivityNames


@activity.defn(name=ActivityNames.ASK_CANCELED_END)
async def ask_canceled_end(workflow_id: str) -> None:
    """Request the cancel of the calling workflow's run (`workflow_id`: its id)."""
    info = activity.info()
    handle = activity.client().get_workflow_handle(workflow_id, run_id=info.workflow_run_id)
    try:
        await handle.cancel()
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:  # NOT_FOUND: the run has ended, nothing to ask
            raise
