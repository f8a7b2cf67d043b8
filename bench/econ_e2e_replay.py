"""The replay of one job on one zone's trace, tick by tick, through the pure deadline policy
(spotctl.policy.deadline.decide): what bench/economics_e2e.py puts beside each real job.

The economics benchmark (bench/economics.py) has the full replay of every policy; this is a
small one of a single job so the end-to-end harness depends on nothing but the policy module
(at merge it may give way to that one). Its model, per tick of `gap_s`:
- the trace's value says whether spot can be had (the job is alone in its zone);
- a spot hold whose zone drops to 0 is preempted: the work since the last checkpoint is lost;
- the policy (a deadline job) or "spot whenever it can be had, else wait" (no deadline: plain
  spot with EAGER_NEXT_REGION in one zone) picks the market to hold;
- every (re)start of a hold costs `changeover_h` of paid time without progress (spotctl's own
  latency: provisioning, setup, the program's start), and a hold is paid by the tick at its
  market's price; the job checkpoints every `checkpoint_h` of progress;
- progress the policy sees is the banked progress (as of the last checkpoint), as the job
  reports it through SPOTCTL_PROGRESS_FILE.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from spotctl.policy.deadline import DeadlineJob, Market, Moment, decide


@dataclass(frozen=True)
class ReplayJob:
    compute_h: float
    deadline_h: float | None
    """None: no deadline (plain spot, wait while there is none)."""
    changeover_h: float
    checkpoint_h: float
    spot_price: float
    ondemand_price: float
    policy: str = "spotctl"


@dataclass(frozen=True)
class ReplayResult:
    cost_usd: float
    finish_h: float | None
    """Hours from the start to the end of the compute; None if not done within the horizon."""
    switches: int
    """Changes of market between two consecutive holds (spot <-> on-demand)."""
    preemptions: int
    spot_h: float
    ondemand_h: float


def replay(job: ReplayJob, values: Sequence[int], gap_s: float, start_s: float, horizon_h: float) -> ReplayResult:
    """Replay the job from trace time `start_s` (seconds into the trace; wraps at its end)."""
    dt = gap_s / 3600.0
    djob = DeadlineJob(compute_h=job.compute_h, deadline_h=job.deadline_h or math.inf, changeover_h=job.changeover_h)
    holding, last_market = Market.NONE, Market.NONE
    done = banked = warm = elapsed = cost = spot_h = od_h = 0.0
    switches = preemptions = 0
    steps = int(math.ceil(horizon_h / dt))
    first_tick = int(start_s // gap_s)
    for k in range(steps):
        avail = values[(first_tick + k) % len(values)] > 0
        if holding == Market.SPOT and not avail:
            holding, done, preemptions = Market.NONE, banked, preemptions + 1
        m = Moment(elapsed_h=elapsed, done_h=banked, holding=holding, spot_available=avail)
        if job.deadline_h is None:
            want = Market.SPOT if avail else Market.NONE
        else:
            want = decide(job.policy, djob, m)
        if want == Market.SPOT and not avail:
            want = Market.NONE
        if want != holding:
            if want != Market.NONE:
                if last_market not in (Market.NONE, want):
                    switches += 1
                last_market, warm = want, job.changeover_h
            holding = want
        if holding != Market.NONE:
            work = max(0.0, dt - warm)
            used = dt
            if done + work >= job.compute_h:  # done within this tick: pay only up to the end
                used = dt - work + (job.compute_h - done)
                work = job.compute_h - done
            warm = max(0.0, warm - dt)
            price = job.spot_price if holding == Market.SPOT else job.ondemand_price
            cost += price * used
            spot_h += used if holding == Market.SPOT else 0.0
            od_h += used if holding == Market.ONDEMAND else 0.0
            done += work
            banked = done if done >= job.compute_h - 1e-9 else math.floor(done / job.checkpoint_h + 1e-9) * job.checkpoint_h
            if done >= job.compute_h - 1e-9:
                return ReplayResult(cost, elapsed + used, switches, preemptions, spot_h, od_h)
        elapsed += dt
    return ReplayResult(cost, None, switches, preemptions, spot_h, od_h)
