"""Decisions (shared, pure): placement order, recovery, backoff, failure classification, cost
arithmetic, deadlines (which market next) and the fleet's memory (expected cost to finish).
No I/O and no clocks: the workflows and every simulator or benchmark call this same code.
"""

from spotctl.policy.backoff import Backoff
from spotctl.policy.costs import (
    AttemptCost,
    PriceKey,
    attempt_cost,
    attempt_hours,
    job_cost,
    keep_last,
    known_sum,
    money,
    percent,
)
from spotctl.policy.deadline import (
    DEADLINE_POLICIES,
    DeadlineJob,
    Market,
    Moment,
    SpotOutlook,
    decide,
    slack_h,
)
from spotctl.policy.failures import (
    IN_PLACE_TRIES,
    Blocklist,
    OnError,
    all_fatal,
    in_place_delay,
    is_fatal,
    on_create_error,
    skipped,
)
from spotctl.policy.fleet import (
    FleetEvent,
    FleetEventKind,
    Place,
    PlaceOutlook,
    Ranked,
    WorkAhead,
    expected_cost,
    outlooks,
    rank_by_expected_cost,
)
from spotctl.policy.fleet_summary import (
    EXPECTED_COST,
    RANKINGS,
    FleetOutlooks,
    figures,
    rank_within_strategy,
)
from spotctl.policy.outcome import Decision, after_exit, uses_restart_budget
from spotctl.policy.placement import rank_candidates, repriced, without_blocked
from spotctl.policy.recovery import STRATEGIES, block_region, order_candidates

__all__ = [
    "DEADLINE_POLICIES",
    "DeadlineJob",
    "FleetEvent",
    "FleetEventKind",
    "EXPECTED_COST",
    "FleetOutlooks",
    "RANKINGS",
    "figures",
    "rank_within_strategy",
    "Market",
    "Moment",
    "Place",
    "PlaceOutlook",
    "Ranked",
    "SpotOutlook",
    "WorkAhead",
    "decide",
    "expected_cost",
    "outlooks",
    "rank_by_expected_cost",
    "slack_h",
    "AttemptCost",
    "Backoff",
    "Blocklist",
    "Decision",
    "IN_PLACE_TRIES",
    "OnError",
    "PriceKey",
    "STRATEGIES",
    "after_exit",
    "all_fatal",
    "attempt_cost",
    "attempt_hours",
    "block_region",
    "in_place_delay",
    "is_fatal",
    "job_cost",
    "keep_last",
    "known_sum",
    "money",
    "on_create_error",
    "order_candidates",
    "percent",
    "rank_candidates",
    "repriced",
    "skipped",
    "uses_restart_budget",
    "without_blocked",
]
