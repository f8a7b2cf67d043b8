"""spotctl.policy.deadline: the deadline policies' rules (pure), and that no policy lets a job
that on-demand could finish from launch be late, on synthetic spot traces."""

from __future__ import annotations

import random

import pytest

from spotctl.policy.deadline import (
    DEADLINE_POLICIES,
    RESERVE_SHARE,
    RESTART_BUDGET,
    DeadlineJob,
    Market,
    Moment,
    SpotOutlook,
    budget_tight,
    decide,
    next_check_h,
    reserve_h,
    slack_h,
    spell_pays_h,
    spotctl_policy,
    uniform_progress,
)

pytestmark = pytest.mark.quick

JOB = DeadlineJob(compute_h=48, deadline_h=70, changeover_h=0.2)


def at(t: float, done: float, holding: Market = Market.NONE, spot: bool = True) -> Moment:
    return Moment(elapsed_h=t, done_h=done, holding=holding, spot_available=spot)


def test_slack_is_time_left_less_work_left() -> None:
    assert slack_h(JOB, at(10, 5)) == pytest.approx(70 - 10 - (48 - 5))


@pytest.mark.parametrize("name", sorted(DEADLINE_POLICIES))
def test_done_holds_nothing(name: str) -> None:
    assert decide(name, JOB, at(50, 48, Market.SPOT)) == Market.NONE


@pytest.mark.parametrize("name", sorted(DEADLINE_POLICIES))
def test_safety_net_takes_on_demand_when_the_slack_no_longer_covers_a_restart(name: str) -> None:
    # slack 0.3 < 2d = 0.4, idle and no spot: only on-demand still makes it.
    m = at(21.7, 0.0, Market.NONE, spot=False)
    assert slack_h(JOB, m) == pytest.approx(0.3)
    assert decide(name, JOB, m) == Market.ONDEMAND
    # ... and keeps it even when spot comes back.
    assert decide(name, JOB, at(21.7, 0.0, Market.ONDEMAND, spot=True)) == Market.ONDEMAND


def test_safety_net_keeps_a_decision_period_in_hand() -> None:
    job = DeadlineJob(48, 70, 0.2, check_h=0.5)
    m = at(21.2, 0.0, Market.NONE, spot=False)  # slack 0.8 < 2d + check_h = 0.9
    assert uniform_progress(job, m) == Market.ONDEMAND
    assert spotctl_policy(job, m) == Market.ONDEMAND
    assert decide("greedy", job, m) == Market.ONDEMAND
    assert decide("greedy", JOB, m) == Market.NONE  # without a period: 0.8 >= 2d, it may wait


def test_uniform_progress_as_published() -> None:
    # Behind the even pace (48*10/70 = 6.9 > 5) and no spot: on-demand to catch up.
    assert uniform_progress(JOB, at(10, 5, spot=False)) == Market.ONDEMAND
    # Ahead and no spot: wait.
    assert uniform_progress(JOB, at(10, 9, spot=False)) == Market.NONE
    # On on-demand, keeps it until ahead of e(t + 2d).
    assert uniform_progress(JOB, at(10, 7.0, Market.ONDEMAND)) == Market.ONDEMAND
    assert uniform_progress(JOB, at(10, 7.5, Market.ONDEMAND)) == Market.SPOT


def test_spotctl_waits_while_the_slack_is_above_its_reserve_and_pays_below_it() -> None:
    waiting = at(5, 4, spot=False)
    assert slack_h(JOB, waiting) > reserve_h(JOB, waiting)
    assert spotctl_policy(JOB, waiting) == Market.NONE
    short = at(20, 4, spot=False)
    assert slack_h(JOB, short) < reserve_h(JOB, short)
    assert spotctl_policy(JOB, short) == Market.ONDEMAND


def test_spotctl_returns_from_on_demand_once_caught_up_where_uniform_progress_waits_for_a_margin() -> None:
    assert spotctl_policy(JOB, at(20, 4, Market.ONDEMAND, spot=True)) == Market.ONDEMAND  # far behind: stays
    caught_up = at(20, 13, Market.ONDEMAND, spot=True)  # slack 15 h: above 0.9 x 15.7, below 15.7 + 2dC/D
    assert spotctl_policy(JOB, caught_up) == Market.SPOT
    assert uniform_progress(JOB, caught_up) == Market.ONDEMAND


def test_spotctl_keeps_a_smaller_reserve_than_uniform_progress() -> None:
    m = at(20, 13, spot=False)
    assert reserve_h(JOB, m) < slack_h(JOB, m) < reserve_h(JOB, m) / RESERVE_SHARE
    assert spotctl_policy(JOB, m) == Market.NONE
    assert uniform_progress(JOB, m) == Market.ONDEMAND


def test_next_check_is_when_waiting_reaches_the_reserve() -> None:
    m = at(5, 4, spot=False)
    wait = next_check_h(JOB, m)
    assert wait is not None and wait > 0
    later = at(5 + wait + 0.01, 4, spot=False)
    assert spotctl_policy(JOB, at(5 + wait - 0.01, 4, spot=False)) == Market.NONE
    assert spotctl_policy(JOB, later) == Market.ONDEMAND
    assert next_check_h(JOB, at(5, 4, Market.SPOT)) is None


def test_spotctl_does_not_restart_on_spot_whose_spells_do_not_pay() -> None:
    short = SpotOutlook(availability=0.5, mean_lifetime_h=0.5 * JOB.changeover_h)
    long = SpotOutlook(availability=0.5, mean_lifetime_h=10.0)
    assert spell_pays_h(JOB) == pytest.approx(JOB.changeover_h / 0.7)
    caught_up = at(20, 13, Market.ONDEMAND, spot=True)
    assert spotctl_policy(JOB, caught_up, long) == Market.SPOT
    assert spotctl_policy(JOB, caught_up, short) == Market.ONDEMAND
    behind = at(20, 4, spot=True)  # idle, below the reserve: spot only if its spells pay
    assert spotctl_policy(JOB, behind, long) == Market.SPOT
    assert spotctl_policy(JOB, behind, short) == Market.ONDEMAND
    ahead = at(5, 4, spot=True)  # idle with slack to spare: a start costs no more than waiting
    assert spotctl_policy(JOB, ahead, short) == Market.SPOT


def test_spotctl_returns_from_on_demand_only_on_spells_that_pay_for_the_round_trip() -> None:
    """A return whose changeover (and then an outage) leaves the job behind its reserve ends,
    at the preemption, back on on-demand: the spells must pay for both restarts (2d / (1 - q)),
    or the job goes back and forth at its reserve, two changeovers a spell."""
    assert spell_pays_h(JOB, round_trip=True) == pytest.approx(2 * JOB.changeover_h / 0.7)
    between = SpotOutlook(mean_lifetime_h=0.4)  # pays for a start (0.29 h), not for a round trip (0.57 h)
    long = SpotOutlook(mean_lifetime_h=10.0)
    just = at(20, 12.3, Market.ONDEMAND, spot=True)  # slack 14.3: at the reserve (14.1), not a changeover above
    assert reserve_h(JOB, just) <= slack_h(JOB, just) < reserve_h(JOB, just) + JOB.changeover_h
    assert spotctl_policy(JOB, just, between) == Market.ONDEMAND
    assert spotctl_policy(JOB, just, long) == Market.SPOT
    room = at(20, 13, Market.ONDEMAND, spot=True)  # slack 15: a changeover above the reserve
    assert spotctl_policy(JOB, room, between) == Market.SPOT
    # ... unless the outages seen would spend the rest while it waits for spot again.
    assert spotctl_policy(JOB, room, SpotOutlook(mean_lifetime_h=0.4, mean_outage_h=1.0)) == Market.ONDEMAND


def test_restart_budget_counts_the_restarts_the_slack_affords_against_the_spells_seen() -> None:
    """Round 5's measured variant (off in the product: BENCHMARKS.md): n = (S - 2d - check) / d
    restarts left, each on a spell of the mean seen, against the work left."""
    assert RESTART_BUDGET == "off"
    m = at(20, 12.3, Market.ONDEMAND)  # slack 14.3 h: 69.5 restarts of 0.2 h; 35.7 h of work left
    assert budget_tight(JOB, m, SpotOutlook(mean_lifetime_h=0.4)) is True  # 69.5 x 0.2 h < 35.7 h
    assert budget_tight(JOB, m, SpotOutlook(mean_lifetime_h=10.0)) is False
    assert budget_tight(JOB, m, SpotOutlook()) is None


def markov(rng: random.Random, ticks: int, on_h: float, off_h: float, gap_h: float) -> list[bool]:
    out: list[bool] = []
    up = rng.random() < 0.5
    while len(out) < ticks:
        out += [up] * max(1, round(rng.expovariate(1 / (on_h if up else off_h)) / gap_h))
        up = not up
    return out[:ticks]


def replay(name: str, job: DeadlineJob, avail: list[bool], gap_h: float, learn: bool = False) -> tuple[float, bool]:
    """A minimal replay (the benchmark's is bench/econ_sim.py): progress and whether it is late.
    `learn`: the policy is given the spells seen so far (mean hours with spot per spell ended)."""
    done, held, left, t = 0.0, Market.NONE, 0.0, 0.0
    up_h, ends, last = 0.0, 0, None
    for spot in avail:
        if done >= job.compute_h - 1e-9 or t >= job.deadline_h:
            break
        if held == Market.SPOT and not spot:
            held = Market.NONE
        ends += bool(last and not spot)
        up_h += gap_h * spot
        last = spot
        outlook = SpotOutlook(mean_lifetime_h=up_h / ends if ends else None) if learn else None
        want = decide(name, job, Moment(t, done, held, spot), outlook)
        if want == Market.SPOT and not spot:
            want = Market.NONE
        if want != held and want != Market.NONE:
            left = job.changeover_h
        held = want
        dt = min(gap_h, job.deadline_h - t)
        if held != Market.NONE:
            c = min(dt, left)
            left -= c
            done += dt - c
        t += dt
    return done, done < job.compute_h - 1e-6


@pytest.mark.parametrize("on_h,off_h", [(0.7, 3.5), (1.5, 1.5), (6.0, 1.0), (0.3, 0.3)])
@pytest.mark.parametrize("name", ["spotctl", "uniform-progress", "greedy"])
def test_never_late_on_synthetic_traces(name: str, on_h: float, off_h: float) -> None:
    gap_h = 0.1
    rng = random.Random(f"{name}{on_h}{off_h}")
    for deadline, d in [(48.02, 0.02), (52, 0.4), (70, 0.2), (92, 0.02)]:
        job = DeadlineJob(48, deadline, d, check_h=gap_h)
        for _ in range(3):
            _, late = replay(name, job, markov(rng, int(deadline / gap_h) + 2, on_h, off_h, gap_h), gap_h)
            assert not late, (name, deadline, d)


@pytest.mark.parametrize("on_h,off_h", [(0.1, 0.2), (0.3, 0.3), (0.5, 1.5), (0.25, 0.1)])
def test_spotctl_never_late_with_short_spells_and_big_changeovers(on_h: float, off_h: float) -> None:
    """Spells about as long as the changeover (a restart on them is pure loss), the spells seen
    fed to the policy as the benchmark does: spotctl still finishes every run on time."""
    gap_h = 0.05
    rng = random.Random(f"short{on_h}{off_h}")
    for deadline, d in [(48.5, 0.2), (52, 0.4), (52, 0.8), (70, 0.4)]:
        job = DeadlineJob(48, deadline, d, check_h=gap_h)
        for _ in range(3):
            _, late = replay("spotctl", job, markov(rng, int(deadline / gap_h) + 2, on_h, off_h, gap_h), gap_h,
                             learn=True)
            assert not late, (deadline, d)
