"""What the fleet's memory says of a plan's candidates, for `launch` (and its dry run).

Read from the local store (`fleet.path`, spotctl/fleet/), never created by a read: a dry run
makes nothing. A job ranked by expected cost (`fleet.ranking: expected-cost`) is shown, and
submitted, in the order the workflow will use for its first provisioning; a job ranked by
price keeps the price order, with the figures shown beside it. No store (or one that cannot be
read) is no history: price order, as before.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from spotctl.config import Settings
from spotctl.fleet import FleetStoreError, open_fleet
from spotctl.launch import Plan
from spotctl.policy import EXPECTED_COST, Place, PlaceOutlook, Ranked, WorkAhead, rank_within_strategy


@dataclass
class FleetView:
    """One plan's candidates as the fleet's memory ranks them."""

    ranking: str
    ranked: list[Ranked] = field(default_factory=list)
    problem: str | None = None
    """Why the store could not be read (None: read, or absent)."""

    @property
    def has_history(self) -> bool:
        return any(r.outlook is not None for r in self.ranked)


def fleet_view(p: Plan, s: Settings) -> FleetView:
    """The plan's candidates ranked by expected cost from what the local store holds."""
    places = {Place.of(c) for c in p.candidates}
    known: dict[Place, PlaceOutlook] = {}
    problem = None
    try:
        known = open_fleet(s).outlooks(places)
    except FleetStoreError as exc:
        problem = str(exc)
    ranked = rank_within_strategy(p.candidates, known, WorkAhead(), strategy=p.recovery.strategy, last=None,
                                  ordered=p.task.ordered)
    return FleetView(ranking=p.ranking, ranked=ranked, problem=problem)


def order_by_fleet(p: Plan, s: Settings) -> None:
    """A plan ranked by expected cost takes the fleet's order (each task of a pipeline its own)."""
    for tp in p.task_plans or [p]:
        if tp.ranking == EXPECTED_COST:
            view = fleet_view(tp, s)
            if view.has_history:
                tp.candidates = [r.candidate for r in view.ranked]
    if p.task_plans:
        p.candidates = p.task_plans[0].candidates


def fleet_lines(p: Plan, s: Settings) -> list[str]:
    """The dry run's "Fleet history" section (plain text, one line each)."""
    view = fleet_view(p, s)
    if view.problem is not None:
        return [f"Fleet history: unreadable ({view.problem}); candidates in price order"]
    if not view.has_history:
        return [f"Fleet history: no fleet history yet (ranking: {view.ranking}); candidates in price order"]
    how = ("this order" if view.ranking == EXPECTED_COST
           else "price order above; `fleet.ranking: expected-cost` would use this order")
    lines = [f"Fleet history (last {_window(view)}; ranking: {view.ranking}, the job uses {how}):",
             f"      {'where':<32} {'type':<16} {'expected':>10}   figures"]
    for i, r in enumerate(view.ranked, 1):
        c = r.candidate
        seen = r.why or f"{c.zone}: no fleet history"
        lines.append(f"  {i:>2}. {c.location:<32} {c.instance_type:<16} {_usd(r.expected_cost):>10}   {seen}")
    return lines


def _window(view: FleetView) -> str:
    hours = next(r.outlook.window_h for r in view.ranked if r.outlook is not None)
    return f"{hours:g} h"


def _usd(amount: float) -> str:
    return f"${amount:.4f}"
