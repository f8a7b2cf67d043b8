"""Placement that learns, as the job's workflow does it: before each provisioning, the fleet's
memory of its candidates' places (one activity), then, at each round of the wait, the
candidates the recovery strategy allows ordered by expected cost (policy/fleet_summary.py),
and the figures behind that order kept in the job's state for `status -v`.

Only a job launched with `ranking: expected-cost` (JobSpec.ranking, from the `fleet.ranking`
setting) does any of it; the activity call is behind the FLEET_MEMORY patch, so every job
started before it replays unchanged. Deterministic, no I/O: the memory comes in the
activity's recorded result.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from spotctl.activities import FleetActivities  # its typed reference only (passed through)
    from spotctl.models import Candidate, JobSpec, OutlookRequest
    from spotctl.policy import EXPECTED_COST, FleetOutlooks, WorkAhead, figures, rank_within_strategy

FLEET_MEMORY = "fleet-memory"
"""The patch that reads the fleet's memory before each provisioning of a job ranked by expected cost."""
READ_TIMEOUT = timedelta(minutes=1)
"""The read is a few indexed queries (the store's busy time-out is 2 s): a minute is generous."""

RunActivity = Callable[[Any, Any, timedelta], Awaitable[Any]]
"""The workflow's own activity runner (SpotJobWorkflow._activity: cancellable, retried)."""


class LearnedOrder:
    """What one provisioning read from the fleet's memory, and the order it gives."""

    def __init__(self, known: FleetOutlooks, spec: JobSpec) -> None:
        self._known = known.known()
        self._spec = spec
        self.work = WorkAhead()
        """What a preemption costs this job; the defaults until the job says more (a deadline's compute)."""

    @staticmethod
    async def read(spec: JobSpec, candidates: list[Candidate], run: RunActivity) -> LearnedOrder | None:
        """The memory of the job's candidates, or None for a job ranked by price (and for a
        run recorded before the patch): it then orders its candidates as it always did."""
        if spec.ranking != EXPECTED_COST or not workflow.patched(FLEET_MEMORY):
            return None
        known = await run(FleetActivities.fleet_outlooks, OutlookRequest(candidates=candidates), READ_TIMEOUT)
        return LearnedOrder(known, spec)

    def order(self, candidates: list[Candidate], last: tuple[str, str, str] | None) -> tuple[list[Candidate], list[str]]:
        """`candidates` (the strategy's order, blocked regions left out) by expected cost
        within what the strategy fixes, and the figures behind that order."""
        ranked = rank_within_strategy(candidates, self._known, self.work, strategy=self._spec.recovery.strategy,
                                      last=last, ordered=self._spec.ordered)
        return [r.candidate for r in ranked], figures(ranked)
