"""How far a deadline job has come (docs/deadlines.md#progress): what the job reports through
$SPOTCTL_PROGRESS_FILE (bounded, garbage ignored), else its running time less the work lost
since its last checkpoint, else nothing (the safe rule)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from spotctl.activities.node import progress_of
from spotctl.models import AttemptRecord, Candidate, DeadlineSpec, JobState
from spotctl.policy import Market
from spotctl.workflows.deadline_driver import DeadlineDriver, OnDemandWatch, reported_fraction

pytestmark = pytest.mark.quick  # `pytest -m quick`: the fast loop (README, Tests)

START = datetime(2026, 12, 1, tzinfo=UTC)


def driver(checkpoint_every_s: float | None = None, policy: str = "spotctl") -> DeadlineDriver:
    spec = DeadlineSpec(compute_s=48 * 3600, by=START + timedelta(hours=70), changeover_s=0.2 * 3600,
                        checkpoint_every_s=checkpoint_every_s, policy=policy)
    return DeadlineDriver(spec, START)


def state() -> JobState:
    return JobState(job_id=1, name="due", submitted_at=START)


@pytest.mark.parametrize("raw, expected", [
    (b"0.5\n", 0.5), (b"1", 1.0), (b"0", 0.0), (b" 0.25 ", 0.25),
    (b"", None), (b"1.5", None), (b"-0.1", None), (b"nan", None), (b"inf", None), (b"half", None),
    (b"\xff\xfe", None), (b"0." + b"1" * 40, None),
])
def test_a_report_is_a_number_in_0_1_and_anything_else_is_ignored(raw: bytes, expected: float | None) -> None:
    assert progress_of(raw) == expected


@pytest.mark.parametrize("details, expected", [
    ({"cloud": "local", "progress": 0.4}, 0.4), ({"progress": 2}, None), ({"progress": True}, None),
    ({"progress": "0.4"}, None), ({}, None), ("text", None),
])
def test_only_a_fraction_crosses_from_the_preemption(details: object, expected: float | None) -> None:
    assert reported_fraction(details) == expected


def test_without_checkpoints_or_reports_a_preemption_loses_the_run() -> None:
    d = driver()
    after = d.ran(state(), run_s=10 * 3600)
    assert after.progress_s == 0.0


def test_checkpoint_every_keeps_the_whole_intervals() -> None:
    d = driver(checkpoint_every_s=1800)
    after = d.ran(state(), run_s=3 * 3600 + 1700)  # 6 whole intervals, 1700 s lost
    assert after.progress_s == 3 * 3600
    assert d.ran(after, run_s=1799).progress_s == 3 * 3600  # less than an interval: nothing kept


def test_a_report_wins_and_is_used_once() -> None:
    d = driver(checkpoint_every_s=1800)
    d.reported = 0.5
    after = d.ran(state(), run_s=60)
    assert after.progress_s == 24 * 3600
    assert d.ran(after, run_s=0).progress_s == 24 * 3600 and d.reported is None


def test_the_decision_records_the_slack_and_a_switch_its_reason() -> None:
    d = driver()
    s = state().model_copy(update={"market": "spot", "progress_s": 40 * 3600})
    # 61.8 h in with 40 h done: slack (70 - 61.8) - (48 - 40) = 0.2 h < 2 x 0.2 h: the safety net.
    market, s = d.choose(s, START + timedelta(hours=61.8))
    assert market == Market.ONDEMAND and s.slack_s == pytest.approx(0.2 * 3600)
    s = d.opened(s, START + timedelta(hours=62), use_spot=False)
    assert s.market == "on-demand" and s.deadline_at == START + timedelta(hours=70)
    assert [w.text() for w in s.switches] == [
        "spot -> on-demand at 62h: slack 0.2h no longer covers a restart (0.2h x 2)"]
    assert d.opened(s, START + timedelta(hours=63), use_spot=False).switches == s.switches  # no move, no switch


def test_on_ondemand_the_policy_is_asked_every_changeover_at_most_a_hundred_times() -> None:
    assert OnDemandWatch.check_every_s(driver().spec) == pytest.approx(48 * 36)  # 48 h / 100 > 0.2 h
    quick = DeadlineSpec(compute_s=10, by=START, changeover_s=2)
    assert OnDemandWatch.check_every_s(quick) == 2


def test_spot_lives_too_short_to_pay_for_a_restart_keep_the_job_on_ondemand() -> None:
    """The `deadline-spells` patch: the policy hears how long the job's spot attempts lived per
    preemption (and spot's price share from its candidates), as bench/economics.py's replay
    tells it the spells seen; before the patch it heard nothing and went back to spot."""
    lives = [AttemptRecord(attempt=i, cloud="local", region="local-east", zone="local-east-1a",
                           instance_type="local.small", use_spot=True, outcome="preempted",
                           started_at=START + timedelta(hours=i), ended_at=START + timedelta(hours=i, minutes=6))
             for i in range(1, 4)]  # three spot lives of 0.1 h: a restart (0.2 h) never pays
    s = state().model_copy(update={"history": lives, "progress_s": 25 * 3600})
    at = START + timedelta(hours=30)  # slack (70 - 30) - (48 - 25) = 17 h, above the reserve
    assert driver().choose(s, at, holding=Market.ONDEMAND)[0] == Market.SPOT
    learned = driver()
    spot = Candidate(cloud="local", region="local-east", zone="local-east-1a", instance_type="local.small",
                     use_spot=True, price=0.918, ondemand_price=3.06)
    learned.learn_spells([spot], [spot.model_copy(update={"use_spot": False, "price": 3.06})])
    outlook = learned.spot_outlook(s)
    assert learned.spot_share == pytest.approx(0.3) and outlook is not None
    assert outlook.mean_lifetime_h == pytest.approx(0.1)
    assert learned.choose(s, at, holding=Market.ONDEMAND)[0] == Market.ONDEMAND
    assert learned.spot_outlook(state()) is None  # nothing lost yet: spot counts as paying
