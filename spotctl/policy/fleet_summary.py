"""The fleet's memory as placement uses it: candidates ordered by expected cost within what
the recovery strategy allows, and the short figures a user is shown for that order.

policy/fleet.py (the economics' own module) holds the maths: outlooks and expected cost. Here
is only how the workflow, `launch --dry-run` and `status -v` apply it, so the three agree:
- the user's `ordered` resources keep their order (figures are still shown);
- FAILOVER keeps SkyPilot's meaning: the preempted zone first, then its region, then the rest;
  expected cost replaces price only within each of those tiers;
- EAGER_NEXT_REGION's blocked regions are gone before this runs (policy/recovery.py).
Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, Field

from spotctl.models import Candidate
from spotctl.policy.fleet import Place, PlaceOutlook, Ranked, WorkAhead, rank_by_expected_cost

EXPECTED_COST = "expected-cost"
"""JobSpec.ranking (and the `fleet.ranking` setting) that orders candidates by the fleet's memory."""
PRICE = "price"
"""JobSpec.ranking of every job before the fleet's memory: cheapest first."""
RANKINGS = (PRICE, EXPECTED_COST)
FIGURES_KEPT = 5
"""Figures a job's state keeps (the first candidates of its order): the memo stays small."""


class FleetOutlooks(BaseModel):
    """The fleet_outlooks activity's answer: the outlook of each candidate's place that has a
    record (a place with none is absent: the prior applies)."""

    outlooks: list[PlaceOutlook] = Field(default_factory=list)

    def known(self) -> dict[Place, PlaceOutlook]:
        return {o.place: o for o in self.outlooks}


def _failover_tier(c: Candidate, last: tuple[str, str, str] | None) -> int:
    """policy/recovery.py's FAILOVER order: 0 the preempted zone, 1 its region, 2 the rest."""
    if last is None:
        return 0
    cloud, region, zone = last
    if (c.cloud, c.region, c.zone) == (cloud, region, zone):
        return 0
    return 1 if (c.cloud, c.region) == (cloud, region) else 2


def rank_within_strategy(candidates: Sequence[Candidate], known: dict[Place, PlaceOutlook], work: WorkAhead, *,
                         strategy: str, last: tuple[str, str, str] | None, ordered: bool) -> list[Ranked]:
    """`candidates` (already in the strategy's order, blocked regions left out) ordered by
    expected cost within what the strategy fixes; equal costs keep their order."""
    ranked = rank_by_expected_cost(candidates, known, work, ordered=True)
    if ordered:
        return ranked
    tier = (lambda c: _failover_tier(c, last)) if strategy.upper() == "FAILOVER" else (lambda c: 0)
    return sorted(ranked, key=lambda r: (tier(r.candidate), r.expected_cost))


def figure(r: Ranked) -> str:
    """One candidate's line: what the fleet saw there and what finishing there is expected to cost."""
    seen = r.why or f"{r.candidate.zone}: no fleet history"
    return f"{seen}; expected ${r.expected_cost:.4f}"


def figures(ranked: Sequence[Ranked], limit: int = FIGURES_KEPT) -> list[str]:
    """The figures behind an order, best first, at most `limit`."""
    return [figure(r) for r in ranked[:limit]]
