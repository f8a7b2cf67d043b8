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
    spot_share: float = 0.3
    """Spot's price as a share of on-demand's (what a restart on spot can save; see
    `spell_pays_h`)."""


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
    bench/traces/README.md: e(t) = C*t/D is the even pace."""
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


RESERVE_SHARE = 0.9
"""The part of Uniform Progress's reserve spotctl's policy keeps (bench/economics.py: 0.75 to 0.95
all beat Uniform Progress on average; 0.85 and 0.95 with the spell test did no better than 0.9 in a
63-setting sweep of every folder; see BENCHMARKS.md's notes)."""


def reserve_h(job: DeadlineJob, m: Moment, outlook: SpotOutlook | None = None) -> float:
    """The slack spotctl's policy keeps in hand rather than spend it waiting for spot: a share
    of what Uniform Progress keeps by its even pace, (D - t)(D - C)/D, slack in proportion to
    the time left."""
    pace = (job.deadline_h - m.elapsed_h) * (job.deadline_h - job.compute_h) / job.deadline_h
    return RESERVE_SHARE * max(pace, 0.0)


def safety_h(job: DeadlineJob) -> float:
    """The least slack to start (or keep waiting for) spot: a changeover to start, another
    to move to on-demand if it is lost at once, and one decision period."""
    return 2 * job.changeover_h + job.check_h


RETURN_MARGIN = 0.0
"""Changeovers of slack above the reserve a job on on-demand must have before it goes back to
spot. 0: back as soon as caught up (a margin of 0.5 or 1 changeover was measured worse on
average: bench/economics.py, BENCHMARKS.md); S holds on on-demand while R falls, which is the
hysteresis."""


def spell_pays_h(job: DeadlineJob, round_trip: bool = False) -> float:
    """The shortest expected spot spell worth a restart: past its changeover the spell saves
    (1 - q) of on-demand's price per hour, and the changeover costs q per hour with no
    progress: (L - d)(1 - q) >= d q, L >= d / (1 - q) (1.43 d at q = 0.3). A spell shorter
    than d is pure loss; one shorter than this does not pay for its start.

    `round_trip`: the spell must also pay for the on-demand restart its end forces (a job that
    leaves on-demand for spot and is behind its reserve once the spot start is paid goes back
    to on-demand at the preemption, a changeover d at on-demand's price): (L - d)(1 - q) >= d q
    + d, L >= 2 d / (1 - q) (2.86 d at q = 0.3)."""
    q = min(max(job.spot_share, 0.0), 0.95)
    return job.changeover_h * (2.0 if round_trip else 1.0) / (1.0 - q)


def spot_pays(job: DeadlineJob, outlook: SpotOutlook | None, round_trip: bool = False) -> bool:
    """Whether spot's spells, as seen so far, are long enough to pay for a restart (and, with
    `round_trip`, for the on-demand restart after it); with nothing seen, yes."""
    if outlook is None or outlook.mean_lifetime_h is None:
        return True
    return outlook.mean_lifetime_h >= spell_pays_h(job, round_trip)


RESTART_BUDGET = "off"
"""Whether the spell test counts the restarts the slack can afford (issue 24 round 5, measured
in bench/economics.py `--restart-budget`, not shipped: see BENCHMARKS.md). "off": no.
"strict": when the n = (S - 2d - check) / d restarts left, each on a spell of the mean seen,
cannot do the work left (n (L - d) < C - p), every start must pay for the way back to on-demand
too (`spell_pays_h(round_trip=True)`). "both": also, when they can, a return need only pay for
itself (`spell_pays_h()`)."""


def budget_tight(job: DeadlineJob, m: Moment, outlook: SpotOutlook | None) -> bool | None:
    """Whether the restarts the slack affords, on spells of the mean length seen, fall short of
    the work left; None when no spell is known or the changeover is 0."""
    if outlook is None or outlook.mean_lifetime_h is None or job.changeover_h <= 0:
        return None
    restarts = max(slack_h(job, m) - safety_h(job), 0.0) / job.changeover_h
    return restarts * max(outlook.mean_lifetime_h - job.changeover_h, 0.0) < job.compute_h - m.done_h


def _outage_h(outlook: SpotOutlook | None) -> float:
    """The mean spell without spot seen so far; 0 when not known."""
    return (outlook.mean_outage_h or 0.0) if outlook is not None else 0.0


def spotctl_policy(job: DeadlineJob, m: Moment, outlook: SpotOutlook | None = None) -> Market:
    """spotctl's own policy: Uniform Progress with a smaller reserve, a return to spot once
    caught up, and no restart on spot whose spells do not pay for it (a return, for the way
    back too when it leaves the job behind).

    slack S = time left - work left only shrinks while the job waits or restarts: a budget,
    spent on waiting out outages (free in money) and on changeovers (d each). Uniform Progress
    keeps R_UP = (D - t)(D - C)/D of it in hand (its even pace) and pays on-demand below that;
    it then stays on on-demand until 2dC/D ahead. The rules, with R = `reserve_h` =
    RESERVE_SHARE x R_UP and "spot pays" = the spells seen (outlook.mean_lifetime_h) are at
    least `spell_pays_h` long (yes while nothing is known):
    1. done: hold nothing;
    2. safety net: not on on-demand and S < 2d + one decision period (`check_h`): on-demand;
       on on-demand with S below that: keep it to the end. A job that on-demand could finish
       from launch is never late;
    3. on spot and it is there: stay (leaving costs a changeover and saves nothing);
    4. on on-demand: back to spot when it is there, S >= R + RETURN_MARGIN x d (hysteresis:
       S holds on on-demand while R falls) and spot pays; when the return's changeover and
       then waiting out an outage (outlook.mean_outage_h, 0 when not known) would leave the
       job behind (S - d - outage < R), the preemption ends the spell back on on-demand, so
       the spells must pay for that round trip too (`spell_pays_h(round_trip=True)`):
       without it, a job on short spells went back and forth at its reserve, two changeovers
       a spell (the cause of most settings where it cost more than Uniform Progress);
    5. idle, spot there: take it when S >= R (waiting would be free; a start costs slack
       the same), or when behind and spot pays; behind and spot does not pay: on-demand;
    6. idle, no spot: wait while S >= R, else on-demand.
    """
    if is_done(job, m):
        return Market.NONE
    slack = slack_h(job, m)
    reserve = reserve_h(job, m, outlook)
    if m.holding == Market.ONDEMAND:
        if slack < safety_h(job):
            return Market.ONDEMAND
        round_trip = slack - job.changeover_h - _outage_h(outlook) < reserve
        if RESTART_BUDGET != "off":
            tight = budget_tight(job, m, outlook)
            if tight is not None and (tight or RESTART_BUDGET == "both"):
                round_trip = tight
        back = (m.spot_available and slack >= reserve + RETURN_MARGIN * job.changeover_h
                and spot_pays(job, outlook, round_trip))
        return Market.SPOT if back else Market.ONDEMAND
    if slack < safety_h(job):
        return Market.ONDEMAND
    if m.holding == Market.SPOT and m.spot_available:
        return Market.SPOT
    if slack >= reserve:
        return Market.SPOT if m.spot_available else Market.NONE
    strict = RESTART_BUDGET != "off" and bool(budget_tight(job, m, outlook))
    return Market.SPOT if m.spot_available and spot_pays(job, outlook, strict) else Market.ONDEMAND


def next_check_h(job: DeadlineJob, m: Moment, outlook: SpotOutlook | None = None) -> float | None:
    """How long spotctl's policy's decision stays as it is if nothing happens (no preemption,
    no change in spot's availability): the workflow's timer for its next check. None: only
    news can change it (on spot: a preemption; on on-demand: spot coming back; done)."""
    if is_done(job, m) or m.holding == Market.SPOT:
        return None
    slack, reserve = slack_h(job, m), reserve_h(job, m, outlook)
    fall = RESERVE_SHARE * (job.deadline_h - job.compute_h) / job.deadline_h  # R's fall per hour
    if m.holding == Market.NONE:
        # Waiting spends the slack hour for hour; the reserve falls more slowly.
        return max(min((slack - reserve) / max(1.0 - fall, 1e-6), slack - safety_h(job)), 0.0)
    if slack < safety_h(job) or slack >= reserve:
        return None
    return (reserve - slack) / max(fall, 1e-6)


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
