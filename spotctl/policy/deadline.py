"""Deadlines: what a job that must be done by a time holds next, spot, on-demand or nothing.

The one copy of these rules: the job's workflow asks them at its decision points (before a
launch, after a preemption, on a running on-demand attempt's check), bench/economics.py asks
them at every tick of a trace. Pure: no clock (the caller says how far the job has come), no
I/O (the caller says whether spot can be had).

Terms (hours throughout, counted from the job's start):
    C  compute_h      the compute the job needs
    D  deadline_h     when it must be done
    d  changeover_h   what a (re)start costs before the job makes progress again
    t  elapsed_h      time since the job's start
    p  done_h         progress banked (compute done and kept by a checkpoint)
    slack = (D - t) - (C - p): the time the job may still spend not making progress.

`spot_available` is what the caller knows: the replay reads it from the trace; the workflow
asks first as if spot could be had (True) and, when no spot candidate had capacity, again
with False. A decision returns the market to hold; `Market.NONE` means wait (hold nothing,
pay nothing) until the next decision point.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum


class Market(str, Enum):
    NONE = "none"
    SPOT = "spot"
    ONDEMAND = "on-demand"


@dataclass(frozen=True)
class DeadlineJob:
    """What the user declared: the compute the job needs, its deadline, its restart cost."""

    compute_h: float
    deadline_h: float
    changeover_h: float
    check_h: float = 0.0
    """The longest time between two decisions while the job waits (the replay's tick; the
    workflow's periodic check, see `next_check_h`): the safety net keeps this much in hand."""


@dataclass(frozen=True)
class Moment:
    """Where the job stands at a decision point."""

    elapsed_h: float
    done_h: float
    holding: Market
    """What the job holds now: NONE while it waits, after a preemption, or before it started."""
    spot_available: bool


@dataclass(frozen=True)
class SpotOutlook:
    """What the fleet has seen of spot where this job may run (policy/fleet.py summarises it);
    a policy may use it to judge how much slack to keep in hand. None fields: not known."""

    availability: float | None = None
    """Share of recent time spot could be had (0..1)."""
    mean_lifetime_h: float | None = None
    """Mean life of a spot instance before its preemption."""
    mean_outage_h: float | None = None
    """Mean length of a spell without spot capacity."""


def slack_h(job: DeadlineJob, m: Moment) -> float:
    """Time the job may still spend without progress and finish on time."""
    return (job.deadline_h - m.elapsed_h) - (job.compute_h - m.done_h)


def is_done(job: DeadlineJob, m: Moment) -> bool:
    return m.done_h >= job.compute_h - 1e-9


def needs_safety_net(job: DeadlineJob, m: Moment) -> bool:
    """Uniform Progress's safety net: idle (or about to restart) and the time left is less
    than the work left plus 2d: only on-demand, kept to the end, still makes it. The net is
    raised by the decision period (`check_h`, 0 unless the caller sets it): a job that waits
    a period between two decisions must still have 2d in hand at the second."""
    return m.holding != Market.ONDEMAND and slack_h(job, m) < 2 * job.changeover_h + job.check_h


def uniform_progress(job: DeadlineJob, m: Moment, outlook: SpotOutlook | None = None) -> Market:
    """Uniform Progress as published (Wu et al., "Can't Be Late", NSDI 2024), rules 1-6 of
    ../shared/traces/README.md: e(t) = C*t/D is the even pace."""
    if is_done(job, m):
        return Market.NONE
    if m.holding == Market.ONDEMAND:
        # Hysteresis (rule 6), and the safety net keeps on-demand to the end (rule 2).
        if slack_h(job, m) < 2 * job.changeover_h + job.check_h:
            return Market.ONDEMAND
        ahead = m.done_h >= job.compute_h * (m.elapsed_h + 2 * job.changeover_h) / job.deadline_h
        return Market.SPOT if ahead and m.spot_available else Market.ONDEMAND
    if needs_safety_net(job, m):
        return Market.ONDEMAND
    if m.holding == Market.SPOT and m.spot_available:
        return Market.SPOT  # rule 3: stay until preempted
    if m.done_h < job.compute_h * m.elapsed_h / job.deadline_h:
        return Market.SPOT if m.spot_available else Market.ONDEMAND  # rule 4 (spot first: it is also progress)
    return Market.SPOT if m.spot_available else Market.NONE  # rule 5


def greedy(job: DeadlineJob, m: Moment, outlook: SpotOutlook | None = None) -> Market:
    """The greedy baseline: spot whenever it can be had, else wait, until the safety net
    forces on-demand to the end."""
    if is_done(job, m):
        return Market.NONE
    if m.holding == Market.ONDEMAND or needs_safety_net(job, m):
        return Market.ONDEMAND
    return Market.SPOT if m.spot_available else Market.NONE


PRIOR_LIFETIME_H = 4.0
"""The spot lifetime spotctl's policy assumes before it has seen one (a pseudo-observation
blended with what the outlook says): a few hours, the middle of the measured traces' range."""
PRIOR_AVAILABILITY = 0.5
"""The share of time spot is there, assumed before anything was seen."""
MIN_SHARE = 0.25
"""The least part of Uniform Progress's reserve kept, however good spot has been."""
"""The share of time spot is there, assumed before anything was seen (blended likewise)."""


def expected_lifetime_h(outlook: SpotOutlook | None) -> float:
    """The spot lifetime to plan with: the outlook's mean, or PRIOR_LIFETIME_H before one is seen."""
    if outlook is None or outlook.mean_lifetime_h is None:
        return PRIOR_LIFETIME_H
    return max(outlook.mean_lifetime_h, 1e-3)


def expected_availability(outlook: SpotOutlook | None) -> float:
    """The share of time spot is there, to plan with: the outlook's blended with the prior."""
    if outlook is None or outlook.availability is None:
        return PRIOR_AVAILABILITY
    return min(max(outlook.availability, 0.0), 1.0)


def reserve_h(job: DeadlineJob, m: Moment, outlook: SpotOutlook | None = None) -> float:
    """The slack spotctl's policy keeps in hand instead of spending it on waiting for spot: a
    share of the slack Uniform Progress keeps (its even pace: slack in proportion to the time
    left), the share being the expected share of time without spot (a zone that is rarely
    out needs little in hand), on top of the safety net."""
    pace = (job.deadline_h - m.elapsed_h) * (job.deadline_h - job.compute_h) / job.deadline_h
    return safety_h(job) + share_of(outlook) * max(pace, 0.0)


def share_of(outlook: SpotOutlook | None) -> float:
    """The part of Uniform Progress's reserve spotctl's policy keeps: the expected share of
    time without spot, at least MIN_SHARE."""
    return min(max(1.0 - expected_availability(outlook), MIN_SHARE), 1.0)


def safety_h(job: DeadlineJob) -> float:
    """The least slack to start (or keep waiting for) spot: a changeover to start, another
    to move to on-demand if it is lost at once, and one decision period."""
    return 2 * job.changeover_h + job.check_h + 1e-9


def spotctl_policy(job: DeadlineJob, m: Moment, outlook: SpotOutlook | None = None) -> Market:
    """spotctl's own policy: Uniform Progress's even pace as the floor of the slack it keeps,
    scaled down by what it has seen of spot, and leaving on-demand as soon as it is ahead.

    slack S = time left - work left only shrinks while the job waits or restarts: a budget,
    spent on waiting out outages (free in money) and on changeovers (d each). With
    R = `reserve_h`: the net (2d + one decision period) plus a share of Uniform Progress's
    reserve (D - t)(D - C)/D, the share being the expected share of time without spot (at
    least MIN_SHARE; the outlook's availability, else PRIOR_AVAILABILITY):
    1. done: hold nothing;
    2. safety net: not on on-demand and S < 2d + one decision period: on-demand (so a job
       that on-demand could finish from launch is never late); on on-demand below it: keep it;
    3. on spot and it is there: stay (leaving costs a changeover and saves nothing);
    4. idle and spot is there: take it;
    5. idle, no spot: wait while S >= R, else on-demand;
    6. on on-demand: back to spot only when S - 2d >= R (the return and a later move back
       both paid for: hysteresis, no flapping) and spot lives longer than 3d on the outlook;
       with no spot, let go of on-demand and wait once S - 2d > R + one decision period.
    """
    if is_done(job, m):
        return Market.NONE
    slack, d = slack_h(job, m), job.changeover_h
    reserve = reserve_h(job, m, outlook)
    if m.holding == Market.ONDEMAND:
        if slack < safety_h(job):
            return Market.ONDEMAND
        if m.spot_available:
            back = slack - 2 * d >= reserve and expected_lifetime_h(outlook) > 3 * d
            return Market.SPOT if back else Market.ONDEMAND
        return Market.NONE if slack - 2 * d > reserve + job.check_h else Market.ONDEMAND
    if m.holding == Market.SPOT and m.spot_available:
        return Market.SPOT
    if slack < safety_h(job):
        return Market.ONDEMAND
    if m.spot_available:
        return Market.SPOT
    return Market.NONE if slack >= reserve else Market.ONDEMAND


def next_check_h(job: DeadlineJob, m: Moment, outlook: SpotOutlook | None = None) -> float | None:
    """How long spotctl's policy's decision stays as it is if nothing happens (no preemption,
    no change in spot's availability): the workflow's timer for its next check. None: only
    news can change it (on spot: a preemption; done)."""
    if is_done(job, m) or m.holding == Market.SPOT:
        return None
    slack, reserve = slack_h(job, m), reserve_h(job, m, outlook)
    # The reserve falls at `rate` per hour while slack stays (on-demand) or falls at 1 (waiting).
    rate = share_of(outlook) * (job.deadline_h - job.compute_h) / job.deadline_h
    if m.holding == Market.NONE:
        return max((slack - reserve) / max(1.0 - rate, 1e-6), 0.0)
    if slack < safety_h(job):
        return None  # on on-demand to the end
    return max((reserve + 2 * job.changeover_h + job.check_h - slack) / max(rate, 1e-6), 0.0)


Policy = Callable[[DeadlineJob, Moment, "SpotOutlook | None"], Market]

DEADLINE_POLICIES: dict[str, Policy] = {
    "spotctl": spotctl_policy,
    "uniform-progress": uniform_progress,
    "greedy": greedy,
}
"""The policies a task's `deadline.policy` may name; "spotctl" is the default."""


def decide(name: str, job: DeadlineJob, m: Moment, outlook: SpotOutlook | None = None) -> Market:
    """The market `name`'s policy holds next."""
    return DEADLINE_POLICIES[name](job, m, outlook)
