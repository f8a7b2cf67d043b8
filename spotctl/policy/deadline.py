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
    than the work left plus 2d: only on-demand, kept to the end, still makes it."""
    return m.holding != Market.ONDEMAND and slack_h(job, m) < 2 * job.changeover_h


def uniform_progress(job: DeadlineJob, m: Moment, outlook: SpotOutlook | None = None) -> Market:
    """Uniform Progress as published (Wu et al., "Can't Be Late", NSDI 2024), rules 1-6 of
    ../shared/traces/README.md: e(t) = C*t/D is the even pace."""
    if is_done(job, m):
        return Market.NONE
    if m.holding == Market.ONDEMAND:
        # Hysteresis (rule 6), and the safety net keeps on-demand to the end (rule 2).
        if slack_h(job, m) < 2 * job.changeover_h:
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


def spotctl_policy(job: DeadlineJob, m: Moment, outlook: SpotOutlook | None = None) -> Market:
    """spotctl's own policy (to be refined by the economics benchmark): greedy with a return
    to spot from on-demand while the slack still covers two more changeovers."""
    if is_done(job, m):
        return Market.NONE
    slack = slack_h(job, m)
    if m.holding == Market.ONDEMAND:
        return Market.SPOT if m.spot_available and slack > 4 * job.changeover_h else Market.ONDEMAND
    if needs_safety_net(job, m):
        return Market.ONDEMAND
    return Market.SPOT if m.spot_available else Market.NONE


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
