"""The job-id allocator's state (workflows/job_ids.py), carried across continue-as-new: private to
that workflow, in a module of its own so the workflow imports it passed through the sandbox.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class AllocatorState(BaseModel):
    """The job-id allocator's carried state across continue-as-new."""

    next_id: int = 1
    recent: dict[str, int] = Field(default_factory=dict)
    """The last request ids answered -> the id each got (workflows/job_ids.py)."""
