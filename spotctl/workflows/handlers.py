"""StateAndCancel: the `state` query and `cancel` signal a job's and a pipeline's workflow answer.

The CLI asks every job for its state (`status`, `logs`, the web UI) and cancels every job the
same way, whether it is a job (SpotJobWorkflow, SpotTaskWorkflow) or a pipeline
(SpotPipelineWorkflow): one definition of both handlers, so their names and types cannot
drift apart. A cancel only records the request (no commands); the workflow's own code acts
on it at its next step. Deterministic, no I/O.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from spotctl.models import JobState


class StateAndCancel:
    """A mix-in of the workflow classes: they keep the state in `_state` and look at
    `_cancel_requested`."""

    _state: JobState
    _cancel_requested: bool

    @workflow.query
    def state(self) -> JobState:
        """The job's (or pipeline's) state as it is now."""
        return self._state

    @workflow.signal
    def cancel(self) -> None:
        """Ask the job (or pipeline) to stop: the current step (or running task) is cancelled,
        the clusters torn down, later tasks never start."""
        self._cancel_requested = True
        self._cancel_noted()

    def _cancel_noted(self) -> None:
        """What else a workflow records when asked to cancel (nothing here)."""
