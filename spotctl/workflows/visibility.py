"""What a job's workflow shows outside itself: its search attributes (what `status` lists and
filters by), its memo (the state `status` prints) and its current details (the web UI).

Each upsert is a history event, and a job that waits for capacity for weeks changes its detail
thousands of times: only what changed is upserted. Deterministic, no I/O.
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeKey, TypedSearchAttributes

with workflow.unsafe.imports_passed_through():
    from spotctl.models import JobState
    from spotctl.models import search_attributes as sa
    from spotctl.policy import keep_last
    from spotctl.workflows.job_summary import details

INTERNAL_CHILDREN = "internal-children"
"""The patch that starts a pipeline's tasks and a job's events hand-off with the internal
namespace division (models.search_attributes.DIVISION): out of the web UI's list of jobs."""

MEMO_HISTORY = 10
"""Attempt records in the memo while the job runs (all kept ones once it ended): the memo is
rewritten on every change, and `status` needs only the last few."""


class Visibility:
    """Publishes one workflow's JobState; remembers what it published last."""

    def __init__(self) -> None:
        self._attrs: dict[str, object] = {}
        self._memo: dict | None = None

    def publish(self, s: JobState) -> None:
        """Upsert the search attributes that changed, and the memo if it changed."""
        attrs: dict[SearchAttributeKey[Any], Any] = {
            sa.JOB_ID: s.job_id, sa.JOB_NAME: s.name, sa.STATUS: s.status.value, sa.RECOVERIES: s.recoveries,
            sa.CLOUD: s.cloud or "", sa.REGION: s.region or "", sa.RESOURCES: s.resources, sa.SUBMITTED: s.submitted_at,
        }
        changed = [key.value_set(value) for key, value in attrs.items() if self._attrs.get(key.name) != value]
        if changed:
            workflow.upsert_search_attributes(changed)
            self._attrs.update({key.name: value for key, value in attrs.items()})
        # The cut records' cost stays in the memo's earlier_* totals: `status` sums the same bill.
        memo = (s if s.status.is_terminal else keep_last(s, MEMO_HISTORY, workflow.now())).model_dump(mode="json")
        if memo != self._memo:
            workflow.upsert_memo({"state": memo})
            self._memo = memo
        workflow.set_current_details(details(s))


def internal_child() -> TypedSearchAttributes | None:
    """The search attributes of a child workflow that is not a job (a pipeline's task, an events
    hand-off): the internal division, under INTERNAL_CHILDREN (none before it, as recorded)."""
    return sa.internal_attributes() if workflow.patched(INTERNAL_CHILDREN) else None
