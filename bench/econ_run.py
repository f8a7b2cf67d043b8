"""Runs every policy over many windows of one folder of traces and tallies them (bench/economics.py)."""

from __future__ import annotations

import math
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from econ_optimal import optimum
from econ_sim import FleetSeen, Outcome, Tally, Zone, fleet_events, multi_region, on_demand, single_zone, skypilot
from econ_traces import Trace

from spotctl.policy.deadline import DeadlineJob

SINGLE = ("on-demand", "uniform-progress", "spotctl")
"""Policies run in one zone (each zone of the folder in turn), against the single-zone optimum."""
MULTI = ("eager-next-region", "failover", "spotctl-multi-region")
"""Policies over every zone of the folder, against the multi-zone optimum."""
POLICIES = ("on-demand", "eager-next-region", "failover", "uniform-progress", "spotctl", "spotctl-multi-region",
            "optimal")


@dataclass(frozen=True)
class Setting:
    compute_h: float
    deadline_h: float
    changeover_h: float


@dataclass
class FolderResult:
    """Every policy's tally per setting, for one folder."""

    name: str
    zones: list[str]
    gap_s: int
    span_h: float
    offsets: list[int]
    tallies: dict[tuple[Setting, str], Tally] = field(default_factory=dict)
    multi_optimal: dict[Setting, Tally] = field(default_factory=dict)


def pick_offsets(length: int, window: int, count: int, seed: int) -> list[int]:
    """`count` start ticks, seeded: evenly spread strata with a random point in each, so a
    handful already covers the trace; a trace shorter than the window wraps around."""
    room = length - window if length > window else length
    rng = random.Random(seed)
    count = max(1, min(count, room))
    step = room / count
    return [int(i * step + rng.random() * step) for i in range(count)]


def window(trace: Trace, length: int, offset: int, ticks: int) -> list[bool]:
    """Availability (value > 0) for `ticks` ticks from `offset`, wrapping past `length`."""
    vals = trace.values
    return [vals[(offset + i) % length] > 0 for i in range(ticks)]


def zone_of(trace: Trace, avail: list[bool]) -> Zone:
    return Zone(name=trace.zone, region=trace.region, cloud=trace.cloud, instance_type=trace.instance_type,
                avail=avail, spot_price=trace.spot_price, ondemand_price=trace.ondemand_price)


FLEET_LEAD_H = 6.0
"""How much of the trace before the job's start the fleet memory has seen (its window)."""


def run_folder(name: str, traces: Sequence[Trace], settings: Sequence[Setting], offsets_n: int, seed: int,
               progress: bool = True, fleet_memory: bool = True, memory_h: float = FLEET_LEAD_H,
               single_fleet: str | None = None) -> FolderResult:
    """Every policy over `offsets_n` windows. `memory_h`: the fleet memory's window (and how much
    trace before the start it has seen); `single_fleet` ("replace" or "prior"): the single-zone spotctl
    policy plans with the fleet memory's spot lives of its zone (over `memory_h`), see `single_zone`."""
    gap_h = traces[0].gap_s / 3600.0
    length = min(len(t.values) for t in traces)
    longest = max(s.deadline_h for s in settings)
    ticks = int(math.ceil(longest / gap_h)) + 3
    offsets = pick_offsets(length, ticks, offsets_n, seed)
    res = FolderResult(name=name, zones=[t.zone for t in traces], gap_s=traces[0].gap_s, span_h=length * gap_h,
                       offsets=offsets)
    windows = [[window(t, length, o, ticks) for t in traces] for o in offsets]  # [run][zone]
    lead = int(math.ceil(memory_h / gap_h))
    before = [[window(t, length, (o - lead) % length, lead) for t in traces] for o in offsets]
    avail = np.array([[windows[r][z] for r in range(len(offsets))] for z in range(len(traces))], dtype=bool)
    odp = min(t.ondemand_price for t in traces)
    for s in settings:
        t0 = time.monotonic()
        job = DeadlineJob(compute_h=s.compute_h, deadline_h=s.deadline_h, changeover_h=s.changeover_h, check_h=gap_h)
        opt_single = [optimum(avail[z:z + 1], [t.spot_price], t.ondemand_price, gap_h, s.compute_h, s.deadline_h,
                              s.changeover_h) for z, t in enumerate(traces)]
        opt_multi = optimum(avail, [t.spot_price for t in traces], odp, gap_h, s.compute_h, s.deadline_h,
                            s.changeover_h)
        tallies = {p: Tally() for p in POLICIES}
        multi_opt = Tally()
        for r in range(len(offsets)):
            zones = [zone_of(t, windows[r][z]) for z, t in enumerate(traces)]
            for z, zone in enumerate(zones):
                base = on_demand(job, zone)
                best = float(opt_single[z][r])
                tallies["on-demand"].add(base, base.cost, best)
                tallies["uniform-progress"].add(single_zone("uniform-progress", job, zone, gap_h), base.cost, best)
                mem = FleetSeen(fleet_events([zone], [before[r][z]], gap_h), memory_h) if single_fleet else None
                tallies["spotctl"].add(single_zone("spotctl", job, zone, gap_h, mem, single_fleet or "replace"),
                                         base.cost, best)
                tallies["optimal"].add(_optimal_outcome(best), base.cost, best)
            base_cost = (s.compute_h + s.changeover_h) * odp
            best = float(opt_multi[r])
            tallies["eager-next-region"].add(skypilot("EAGER_NEXT_REGION", job, zones, gap_h), base_cost, best)
            tallies["failover"].add(skypilot("FAILOVER", job, zones, gap_h), base_cost, best)
            fleet = fleet_events(zones, before[r], gap_h) if fleet_memory else None
            tallies["spotctl-multi-region"].add(multi_region(job, zones, gap_h, fleet=fleet, window_h=memory_h),
                                                base_cost, best)
            multi_opt.add(_optimal_outcome(best), base_cost, best)
        for p, t in tallies.items():
            res.tallies[(s, p)] = t
        res.multi_optimal[s] = multi_opt
        if progress:
            print(f"  {name}: deadline {s.deadline_h:g} h, changeover {s.changeover_h:g} h: {len(offsets)} offsets x "
                  f"{len(traces)} zones in {time.monotonic() - t0:.1f} s", file=sys.stderr, flush=True)
    return res


def _optimal_outcome(cost: float) -> Outcome:
    return Outcome(cost=cost)


NO_DEADLINE_HORIZON = 4.0
"""A job without a deadline is followed for this many times its compute (then counted unfinished)."""
RANKINGS = ("price", "expected-cost")
"""The placements compared for plain spot jobs (no deadline): spotctl.policy's `ranking` values."""


def run_no_deadline(name: str, traces: Sequence[Trace], compute_h: float, changeovers: Sequence[float],
                    offsets_n: int, seed: int) -> list[dict]:
    """Plain spot jobs (no deadline) under EAGER_NEXT_REGION, candidates in price order or
    ranked by expected cost over the fleet memory (what `fleet.ranking` chooses), from the same
    offsets: cost (share of on-demand from launch), hours to finish, preemptions."""
    gap_h = traces[0].gap_s / 3600.0
    length = min(len(t.values) for t in traces)
    horizon = NO_DEADLINE_HORIZON * compute_h
    ticks = int(math.ceil(horizon / gap_h)) + 3
    offsets = pick_offsets(length, ticks, offsets_n, seed)
    lead = int(math.ceil(FLEET_LEAD_H / gap_h))
    odp = min(t.ondemand_price for t in traces)
    out = []
    for d in changeovers:
        job = DeadlineJob(compute_h=compute_h, deadline_h=horizon, changeover_h=d, check_h=gap_h)
        acc: dict[str, list[Outcome]] = {r: [] for r in RANKINGS}
        for o in offsets:
            zones = [zone_of(t, window(t, length, o, ticks)) for t in traces]
            before = [window(t, length, (o - lead) % length, lead) for t in traces]
            acc["price"].append(skypilot("EAGER_NEXT_REGION", job, zones, gap_h))
            acc["expected-cost"].append(skypilot("EAGER_NEXT_REGION", job, zones, gap_h,
                                                 fleet=fleet_events(zones, before, gap_h)))
        base = (compute_h + d) * odp
        for r, outs in acc.items():
            done = [x for x in outs if not x.missed]
            out.append({"traces": name, "ranking": r, "changeover_h": d, "runs": len(outs),
                        "cost_vs_ondemand": round(sum(x.cost for x in done) / base / len(done), 4) if done else None,
                        "finish_h": round(sum(x.finish_h for x in done) / len(done), 2) if done else None,
                        "preemptions": round(sum(x.preemptions for x in outs) / len(outs), 2),
                        "unfinished": round(1 - len(done) / len(outs), 4)})
    return out
