"""spotctl.policy.fleet: outlooks from the fleet's events, the expected cost to finish, the
ranking, and the SpotOutlook the deadline policy plans with (pure)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from spotctl.models import Candidate
from spotctl.policy.fleet import (
    FleetEvent,
    FleetEventKind,
    Place,
    WorkAhead,
    expected_cost,
    outlooks,
    rank_by_expected_cost,
    spot_outlook,
)

pytestmark = pytest.mark.quick

NOW = datetime(2024, 5, 1, 12)


def cand(zone: str, price: float = 1.0, spot: bool = True) -> Candidate:
    return Candidate(cloud="aws", region=zone[:-1], zone=zone, instance_type="p3.2xlarge", use_spot=spot, price=price)


def ev(zone: str, kind: FleetEventKind, hours_ago: float, lifetime_h: float | None = None) -> FleetEvent:
    return FleetEvent(place=Place.of(cand(zone)), kind=kind, at=NOW - timedelta(hours=hours_ago),
                      lifetime_s=None if lifetime_h is None else lifetime_h * 3600)


def test_outlooks_count_the_window_only_and_explain_themselves() -> None:
    events = [ev("us-east-1a", FleetEventKind.PREEMPTED, h, 1.5) for h in (1, 2, 3, 4)]
    events += [ev("us-east-1a", FleetEventKind.NO_CAPACITY, 0.5), ev("us-east-1a", FleetEventKind.PREEMPTED, 9, 1)]
    o = outlooks(events, NOW)[Place.of(cand("us-east-1a"))]
    assert (o.preemptions, o.capacity_failures) == (4, 1)
    assert o.mean_lifetime_h == pytest.approx(1.5)
    assert o.explain() == "us-east-1a: 4 preemptions in 6 h, spot lifetime ~1.5 h, 1 capacity failure"


def test_a_zone_that_preempts_often_ranks_after_a_quiet_one_at_the_same_price() -> None:
    events = [ev("us-east-1a", FleetEventKind.PREEMPTED, h, 0.5) for h in (1, 2, 3)]
    known = outlooks(events, NOW)
    work = WorkAhead(work_h=10, checkpoint_h=1, restart_h=0.2)
    ranked = rank_by_expected_cost([cand("us-east-1a"), cand("us-west-2b")], known, work)
    assert [r.candidate.zone for r in ranked] == ["us-west-2b", "us-east-1a"]
    assert ranked[1].expected_cost > ranked[0].expected_cost >= 10.0
    kept = rank_by_expected_cost([cand("us-east-1a"), cand("us-west-2b")], known, work, ordered=True)
    assert [r.candidate.zone for r in kept] == ["us-east-1a", "us-west-2b"]


def test_on_demand_costs_its_price_times_the_work() -> None:
    assert expected_cost(cand("us-east-1a", 3.06, spot=False), None, WorkAhead(work_h=2)) == pytest.approx(6.12)


def test_spot_outlook_from_the_fleet() -> None:
    events = [ev("us-east-1a", FleetEventKind.LAUNCHED, 5), ev("us-east-1a", FleetEventKind.PREEMPTED, 3, 2.0),
              ev("us-west-2b", FleetEventKind.LAUNCHED, 2), ev("us-west-2b", FleetEventKind.NO_CAPACITY, 4),
              ev("us-west-2b", FleetEventKind.ENDED, 1, 1.0)]
    s = spot_outlook(outlooks(events, NOW).values())
    assert s.availability == pytest.approx(2 / 3)
    assert s.mean_lifetime_h == pytest.approx(3.0)  # 3 instance-hours, 1 preemption
    assert spot_outlook([]).availability is None and spot_outlook([]).mean_lifetime_h is None
