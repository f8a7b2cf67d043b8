"""The replay: one job through a window of trace, tick by tick, under one policy (bench/economics.py).

Model (the published one): per tick, spot costs its price x tick, on-demand its price x tick;
a (re)start yields no progress for the changeover d (paid); a spot instance is preempted when
its zone's value is 0 at a tick (16-node files: value > 0 is "available"); progress accrues
while holding, past the changeover, and is never lost otherwise (the job checkpoints). The
job is released the moment it is done (the last tick is paid pro rata). A run still unfinished
at the deadline is a miss; its cost is what it paid plus on-demand for the work left (no
changeover added): what finishing it late on on-demand would cost.

Every decision is the product's own code: spotctl.policy.deadline.decide for the deadline
policies, spotctl.policy.recovery for EAGER_NEXT_REGION and FAILOVER, spotctl.policy.fleet
for the multi-region ranking and the outlook (fed with what this job has seen so far).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from spotctl.models import Candidate
from spotctl.policy import (
    FleetEvent,
    FleetEventKind,
    Place,
    WorkAhead,
    block_region,
    order_candidates,
    outlooks,
    rank_by_expected_cost,
    rank_within_strategy,
    spot_outlook,
)
from spotctl.policy.deadline import DeadlineJob, Market, Moment, SpotOutlook, decide
from spotctl.policy.fleet import WINDOW

EPS = 1e-9
EPOCH = datetime(2023, 1, 1)


@dataclass(frozen=True)
class Zone:
    """One zone of a window: its availability per tick and its prices."""

    name: str
    region: str
    cloud: str
    instance_type: str
    avail: Sequence[bool]
    spot_price: float
    ondemand_price: float


@dataclass
class Outcome:
    cost: float = 0.0
    missed: bool = False
    spot_h: float = 0.0
    """Hours of progress on spot."""
    ondemand_h: float = 0.0
    idle_h: float = 0.0
    changeover_h: float = 0.0
    starts: int = 0
    finish_h: float = 0.0
    preemptions: int = 0


@dataclass
class Holding:
    """What the job holds and where; `left` is the changeover still to go."""

    market: Market = Market.NONE
    zone: Zone | None = None
    left: float = 0.0
    since_h: float = 0.0


class Seen:
    """What the job has seen (its own launches, capacity failures, preemptions), as the fleet
    memory would record it, and the outlooks spotctl.policy.fleet makes of it."""

    def __init__(self, window_h: float) -> None:
        self.events: list[FleetEvent] = []
        self.window = timedelta(hours=window_h)
        self._cache: dict | None = None
        self._wanting: set[str] = set()
        self._out: SpotOutlook | None = None
        self.ticks = 0
        self.up_ticks = 0
        self.gap_h: float | None = None
        """The decision period; set, the outlook's spells are those seen at decision points."""
        self._last: bool | None = None
        self.up_ends = 0
        self.down_ends = 0

    def add(self, zone: Zone, kind: FleetEventKind, at_h: float, lifetime_h: float | None = None) -> None:
        self.events.append(FleetEvent(place=place(zone), kind=kind, at=EPOCH + timedelta(hours=at_h),
                                      lifetime_s=None if lifetime_h is None else lifetime_h * 3600,
                                      price=zone.spot_price))
        self._cache = None
        self._out = None

    def until(self, at_h: float) -> None:
        """News of others up to now (none: the job sees only its own)."""

    def saw(self, spot: bool) -> None:
        """One decision point: spot was there or not (the share the job has seen)."""
        self.ticks += 1
        self.up_ticks += spot
        if self._last is not None and spot != self._last:
            if self._last:
                self.up_ends += 1
            else:
                self.down_ends += 1
        self._last = spot

    def no_capacity(self, zone: Zone, at_h: float) -> None:
        """One capacity failure per outage seen (the workflow's retries back off; one is the news)."""
        if zone.name not in self._wanting:
            self._wanting.add(zone.name)
            self.add(zone, FleetEventKind.NO_CAPACITY, at_h)

    def capacity(self, zone: Zone) -> None:
        self._wanting.discard(zone.name)

    def known(self, at_h: float) -> dict:
        if self._cache is None:
            self._cache = outlooks(self.events, EPOCH + timedelta(hours=at_h), self.window)
        return self._cache

    def outlook(self, at_h: float) -> SpotOutlook:
        """The fleet's outlook of what was seen (lifetimes), with the share of decision points
        at which spot was there as the availability."""
        if self._out is None:
            self._out = spot_outlook(self.known(at_h).values())
        share = self.up_ticks / self.ticks if self.ticks else None
        if self.gap_h is None:
            return replace(self._out, availability=share)
        # Spells seen at decision points: hours with (without) spot per spell that ended; none
        # ended yet: not known (the spell under way is at least that long).
        up_h, down_h = self.up_ticks * self.gap_h, (self.ticks - self.up_ticks) * self.gap_h
        return SpotOutlook(availability=share,
                           mean_lifetime_h=up_h / self.up_ends if self.up_ends else None,
                           mean_outage_h=down_h / self.down_ends if self.down_ends else None)


class FleetSeen(Seen):
    """The fleet memory's view: every zone's events as their time comes, over the fleet's
    window (spotctl.policy.fleet.WINDOW); this job's own events are among them already."""

    def __init__(self, events: Sequence[FleetEvent], window_h: float | None = None) -> None:
        super().__init__(window_h=WINDOW.total_seconds() / 3600 if window_h is None else window_h)
        self._all, self._next, self._hour = list(events), 0, -1

    def until(self, at_h: float) -> None:
        now = EPOCH + timedelta(hours=at_h)
        while self._next < len(self._all) and self._all[self._next].at <= now:
            self.events.append(self._all[self._next])
            self._next += 1
            self._cache = self._out = None
        if int(at_h) != self._hour:  # old events leave the window: look again every hour
            self._hour = int(at_h)
            self._cache = self._out = None

    def add(self, zone: Zone, kind: FleetEventKind, at_h: float, lifetime_h: float | None = None) -> None:
        pass

    def no_capacity(self, zone: Zone, at_h: float) -> None:
        pass


def zone_outlook(seen: Seen, at_h: float, up: Sequence[Zone], job: DeadlineJob) -> SpotOutlook:
    """The outlook a multi-zone decision plans with: the fleet's, with the spot lifetime of the
    zone a start would go to (the first of the ranking that has spot; None while the memory saw
    no preemption there), not the pool of every zone's: the spells that matter are that zone's."""
    out = seen.outlook(at_h)
    if not up:
        return out
    known = seen.known(at_h)
    work = WorkAhead(work_h=job.compute_h, checkpoint_h=0.0, restart_h=job.changeover_h)
    names = {z.name for z in up}
    for r in rank_by_expected_cost([candidate(z) for z in up], known, work):
        if r.candidate.zone in names:
            return replace(out, mean_lifetime_h=r.outlook.mean_lifetime_h if r.outlook else None)
    return out


def place(zone: Zone) -> Place:
    return Place(cloud=zone.cloud, zone=zone.name, instance_type=zone.instance_type, spot=True)


def candidate(zone: Zone) -> Candidate:
    return Candidate(cloud=zone.cloud, region=zone.region, zone=zone.name, instance_type=zone.instance_type,
                     use_spot=True, price=zone.spot_price, ondemand_price=zone.ondemand_price)


class Run:
    """One job's clock, progress, holding and bill."""

    def __init__(self, job: DeadlineJob, gap_h: float) -> None:
        self.job, self.gap_h = job, gap_h
        self.done = 0.0
        self.hold = Holding()
        self.out = Outcome()
        self.ticks = int(job.deadline_h / gap_h - EPS) + 1

    def now(self, i: int) -> float:
        return i * self.gap_h

    def finished(self) -> bool:
        return self.done >= self.job.compute_h - EPS

    def take(self, market: Market, zone: Zone | None, i: int) -> None:
        """Hold `market` (in `zone`) from tick i; a change other than letting go is a start."""
        same = market == self.hold.market and (market != Market.SPOT or zone is self.hold.zone)
        if market == Market.NONE:
            self.hold = Holding()
        elif not same:
            self.hold = Holding(market, zone, self.job.changeover_h, self.now(i))
            self.out.starts += 1

    def advance(self, i: int, ondemand_price: float) -> None:
        """Tick i passes under what is held."""
        dt = min(self.gap_h, self.job.deadline_h - self.now(i))
        if dt <= 0:
            return
        h = self.hold
        if h.market == Market.NONE:
            self.out.idle_h += dt
            return
        change = min(dt, h.left)
        h.left -= change
        work = dt - change
        used = dt
        if self.done + work >= self.job.compute_h - EPS:
            work = max(self.job.compute_h - self.done, 0.0)
            used = change + work
            self.out.finish_h = self.now(i) + used
        self.done += work
        price = h.zone.spot_price if h.market == Market.SPOT and h.zone else ondemand_price
        self.out.cost += price * used
        self.out.changeover_h += change
        if h.market == Market.SPOT:
            self.out.spot_h += work
        else:
            self.out.ondemand_h += work

    def close(self, ondemand_price: float) -> Outcome:
        if not self.finished():
            self.out.missed = True
            self.out.cost += (self.job.compute_h - self.done) * ondemand_price
            self.out.finish_h = self.job.deadline_h
        return self.out


def moment(run: Run, i: int, spot: bool) -> Moment:
    return Moment(elapsed_h=run.now(i), done_h=run.done, holding=run.hold.market, spot_available=spot)


def preempted(run: Run, i: int, seen: Seen | None = None) -> None:
    """The held spot instance is lost if its zone has none at tick i."""
    h = run.hold
    if h.market == Market.SPOT and h.zone is not None and not h.zone.avail[i]:
        if seen is not None:
            seen.add(h.zone, FleetEventKind.PREEMPTED, run.now(i), run.now(i) - h.since_h)
        run.hold = Holding()
        run.out.preemptions += 1


def on_demand(job: DeadlineJob, zone: Zone) -> Outcome:
    """On-demand from launch to the end: one start."""
    cost = (job.compute_h + job.changeover_h) * zone.ondemand_price
    return Outcome(cost=cost, ondemand_h=job.compute_h, changeover_h=job.changeover_h, starts=1,
                   finish_h=job.compute_h + job.changeover_h)


def single_zone(name: str, job: DeadlineJob, zone: Zone, gap_h: float, fleet: FleetSeen | None = None,
                fleet_mode: str = "replace") -> Outcome:
    """A deadline policy (`uniform-progress`, `spotctl`, ...) in one zone. `fleet`: the fleet
    memory's view of the zone (`FleetSeen` over `fleet_events` of it): the spell test then plans
    with the zone's spot lives the memory holds (its window): instead of the job's own
    (`fleet_mode` "replace"), or only until the job has seen a spell end ("prior")."""
    run, seen = Run(job, gap_h), Seen(window_h=job.deadline_h)
    seen.gap_h = gap_h
    for i in range(run.ticks):
        if run.finished():
            break
        preempted(run, i, seen)
        spot = bool(zone.avail[i])
        seen.saw(spot)
        if spot:
            seen.capacity(zone)
        outlook = seen.outlook(run.now(i))
        if fleet is not None:
            fleet.until(run.now(i))
            life = fleet.outlook(run.now(i)).mean_lifetime_h
            if life is not None and (fleet_mode == "replace" or outlook.mean_lifetime_h is None):
                outlook = replace(outlook, mean_lifetime_h=life)
        market = decide(name, job, moment(run, i, spot), outlook)
        if market == Market.SPOT and not spot:
            market = Market.NONE
        if market == Market.SPOT and run.hold.market != Market.SPOT:
            seen.add(zone, FleetEventKind.LAUNCHED, run.now(i))
        elif market != Market.SPOT and run.hold.market == Market.SPOT:
            seen.add(zone, FleetEventKind.ENDED, run.now(i), run.now(i) - run.hold.since_h)
        elif market != Market.SPOT and not spot and run.hold.market == Market.NONE:
            seen.no_capacity(zone, run.now(i))
        run.take(market, zone, i)
        run.advance(i, zone.ondemand_price)
    return run.close(zone.ondemand_price)


def skypilot(strategy: str, job: DeadlineJob, zones: Sequence[Zone], gap_h: float,
             fleet: Sequence[FleetEvent] | None = None) -> Outcome:
    """Spot only, as SkyPilot recovers: EAGER_NEXT_REGION (the preempted region blocked for a
    while, the next launch elsewhere at once) or FAILOVER (the same zone, then region, first);
    waits while no spot can be had where it may go, so it can miss the deadline. Candidates in
    price order (`ranking: price`); with `fleet` (the events a deployment's memory would have,
    `fleet_events`), ordered by expected cost within what the strategy fixes, as a job with
    `ranking: expected-cost` does (spotctl.policy.rank_within_strategy, the workflow's WorkAhead)."""
    cands = sorted((candidate(z) for z in zones), key=lambda c: c.price)
    by_zone = {z.name: z for z in zones}
    odp = min(z.ondemand_price for z in zones)
    run = Run(job, gap_h)
    seen = FleetSeen(fleet) if fleet is not None else None
    blocked: dict[str, datetime] = {}
    last: tuple[str, str, str] | None = None
    for i in range(run.ticks):
        if run.finished():
            break
        h = run.hold
        if seen is not None:
            seen.until(run.now(i))
        if h.market == Market.SPOT and h.zone is not None and not h.zone.avail[i]:
            now = EPOCH + timedelta(hours=run.now(i))
            last = (h.zone.cloud, h.zone.region, h.zone.name)
            if strategy == "EAGER_NEXT_REGION":
                blocked = block_region(blocked, h.zone.cloud, h.zone.region, now)
            run.hold = Holding()
            run.out.preemptions += 1
        if run.hold.market != Market.SPOT:
            now = EPOCH + timedelta(hours=run.now(i))
            order = order_candidates(cands, strategy=strategy, blocked=blocked, now=now, last=last)
            if seen is not None:
                order = [r.candidate for r in rank_within_strategy(order, seen.known(run.now(i)), WorkAhead(),
                                                                   strategy=strategy, last=last, ordered=False)]
            for c in order:
                z = by_zone[c.zone]
                if z.avail[i]:
                    run.take(Market.SPOT, z, i)
                    break
        run.advance(i, odp)
    return run.close(odp)


def fleet_events(zones: Sequence[Zone], history: Sequence[Sequence[bool]], gap_h: float) -> list[FleetEvent]:
    """What a deployment's fleet memory records of every zone (its other jobs launching,
    being preempted, finding no capacity), from `history` (each zone's availability for the
    ticks before the job's start) and the zone's own window, in time order; hours from the start."""
    out: list[tuple[float, FleetEvent]] = []
    for zone, before in zip(zones, history, strict=True):
        series = list(before) + list(zone.avail)
        lead = len(before)
        since: int | None = None
        for i, up in enumerate(series):
            at = (i - lead) * gap_h
            was = series[i - 1] if i else not up
            if up and not was:
                since = i
                out.append((at, _event(zone, FleetEventKind.LAUNCHED, at)))
            elif not up and was:
                life = None if since is None else (i - since) * gap_h
                kind = FleetEventKind.PREEMPTED if since is not None else FleetEventKind.NO_CAPACITY
                out.append((at, _event(zone, kind, at, life)))
                if since is not None:
                    out.append((at, _event(zone, FleetEventKind.NO_CAPACITY, at)))
                since = None
    out.sort(key=lambda x: x[0])
    return [e for _, e in out]


def _event(zone: Zone, kind: FleetEventKind, at_h: float, lifetime_h: float | None = None) -> FleetEvent:
    return FleetEvent(place=place(zone), kind=kind, at=EPOCH + timedelta(hours=at_h),
                      lifetime_s=None if lifetime_h is None else lifetime_h * 3600, price=zone.spot_price)


def multi_region(job: DeadlineJob, zones: Sequence[Zone], gap_h: float, name: str = "spotctl",
                 fleet: Sequence[FleetEvent] | None = None, window_h: float | None = None) -> Outcome:
    """spotctl's policy over every zone: the market from spotctl.policy.deadline, the zone from
    spotctl.policy.fleet's ranking by expected cost over what the fleet memory holds, a move
    between zones being a changeover. `fleet`: the events a deployment's memory would have of
    every zone (`fleet_events`), fed as their time comes, over the fleet's own window; without
    it, only what this job has seen."""
    cands = [candidate(z) for z in zones]
    by_zone = {z.name: z for z in zones}
    cheapest_od = min(zones, key=lambda z: z.ondemand_price)
    run = Run(job, gap_h)
    seen = Seen(window_h=job.deadline_h) if fleet is None else FleetSeen(fleet, window_h)
    for i in range(run.ticks):
        if run.finished():
            break
        seen.until(run.now(i))
        preempted(run, i, seen)
        up = [z for z in zones if z.avail[i]]
        seen.saw(bool(up))
        for z in up:
            seen.capacity(z)
        market = decide(name, job, moment(run, i, bool(up)), zone_outlook(seen, run.now(i), up, job))
        zone: Zone | None = None
        if market == Market.SPOT:
            if run.hold.market == Market.SPOT:
                zone = run.hold.zone
            else:
                work = WorkAhead(work_h=max(job.compute_h - run.done, 0.0), checkpoint_h=0.0,
                                 restart_h=job.changeover_h)
                for r in rank_by_expected_cost(cands, seen.known(run.now(i)), work):
                    z = by_zone[r.candidate.zone]
                    if z.avail[i]:
                        zone = z
                        break
                    seen.no_capacity(z, run.now(i))
                if zone is None:
                    market = Market.NONE
                else:
                    seen.add(zone, FleetEventKind.LAUNCHED, run.now(i))
        elif not up and run.hold.market == Market.NONE:
            for z in zones:
                seen.no_capacity(z, run.now(i))
        if market != Market.SPOT and run.hold.market == Market.SPOT and run.hold.zone is not None:
            seen.add(run.hold.zone, FleetEventKind.ENDED, run.now(i), run.now(i) - run.hold.since_h)
        run.take(market, zone if market == Market.SPOT else cheapest_od, i)
        run.advance(i, cheapest_od.ondemand_price)
    return run.close(cheapest_od.ondemand_price)


@dataclass
class Tally:
    """Outcomes of many runs of one policy in one setting."""

    costs: list[float] = field(default_factory=list)
    baselines: list[float] = field(default_factory=list)
    optima: list[float] = field(default_factory=list)
    misses: int = 0
    spot_h: float = 0.0
    ondemand_h: float = 0.0
    idle_h: float = 0.0
    changeover_h: float = 0.0

    def add(self, out: Outcome, baseline: float, optimum: float) -> None:
        self.costs.append(out.cost)
        self.baselines.append(baseline)
        self.optima.append(optimum)
        self.misses += out.missed
        self.spot_h += out.spot_h
        self.ondemand_h += out.ondemand_h
        self.idle_h += out.idle_h
        self.changeover_h += out.changeover_h


@dataclass
class JobRun:
    """One job's replay as bench/economics_e2e.py runs it (`one_job`)."""

    outcome: Outcome
    done: bool
    switches: int
    """Changes of market between two consecutive holds (spot <-> on-demand)."""
    preemptions: int


def one_job(name: str | None, job: DeadlineJob, zone: Zone, gap_h: float, checkpoint_h: float,
            horizon_h: float, points: str = "tick", max_check_h: float = float("inf")) -> JobRun:
    """One job in one zone from the start of `zone.avail` (the window from the job's own offset;
    read cyclically), for `horizon_h` (it may run past its deadline), as a real job runs: a
    preemption loses the work since its last checkpoint (one every `checkpoint_h` of progress)
    and the policy sees the progress banked. `name` is a deadline policy, or None: no deadline
    (spot whenever the zone has it, else wait). The cost is what was paid (nothing is added
    for work left undone).

    `points`: when the policy is asked. "tick": at every tick (the benchmark's replay).
    "product": where the workflow asks it (workflows/deadline_driver.py), so the e2e compare
    predicts what the product does: at a launch and after a preemption (then every tick while
    it waits, a provisioning round being about a tick at the e2e's scale); never on a running
    spot attempt (only its preemption is news); on on-demand at the watch's checks (every
    `OnDemandWatch.check_every_s`: a changeover or C / 100, doubling while spot is not had, up
    to `max_check_h`), a
    move to spot resuming from the last checkpoint; told the spells seen (spot hours per
    preemption, the `deadline-spells` patch) and spot's price share."""
    product = points == "product"
    if points not in ("tick", "product"):
        raise ValueError(f"points: 'tick' or 'product', not {points!r}")
    if product:
        job = replace(job, spot_share=min(max(zone.spot_price / zone.ondemand_price, 0.0), 0.95))
    run = Run(replace(job, deadline_h=max(job.deadline_h, horizon_h)), gap_h)
    banked, last, switches, preemptions = 0.0, Market.NONE, 0, 0
    first_check = max(job.changeover_h, job.compute_h / 100)
    every, next_check, spot_hours = first_check, 0.0, 0.0
    for i in range(int(horizon_h / gap_h - EPS) + 1):
        if run.finished():
            break
        now = run.now(i)
        spot = bool(zone.avail[i % len(zone.avail)])
        if run.hold.market == Market.SPOT and not spot:
            spot_hours += now - run.hold.since_h
            run.hold, run.done, preemptions = Holding(), banked, preemptions + 1
        holding = run.hold.market
        asked = not product or holding == Market.NONE or (holding == Market.ONDEMAND and now >= next_check - EPS)
        if not asked:
            market = holding
        elif name is None:
            market = Market.SPOT
        else:
            outlook = SpotOutlook(mean_lifetime_h=spot_hours / preemptions) if product and preemptions else None
            m = Moment(elapsed_h=now, done_h=banked, holding=holding, spot_available=spot)
            market = decide(name, job, m, outlook)
        if product and asked and holding == Market.ONDEMAND:
            # The watch: the policy keeps on-demand (next check in `first`), or spot is tried: had,
            # or not had (the next check waits twice as long, up to its cap).
            every = first_check if market != Market.SPOT else (every if spot else min(every * 2, max_check_h))
            every = max(every, first_check)
            next_check = now + every
            if market == Market.SPOT and spot:
                run.done = banked  # the on-demand run stops; the spot one resumes from the checkpoint
        market = Market.NONE if market == Market.SPOT and not spot else market
        if product and holding == Market.ONDEMAND and market == Market.NONE:
            market = Market.ONDEMAND  # no spot capacity: the on-demand run goes on
        if market not in (Market.NONE, run.hold.market):
            switches += last not in (Market.NONE, market)
            last = market
            if product and market == Market.ONDEMAND:
                every, next_check = first_check, now + first_check
        run.take(market, zone, i)
        run.advance(i, zone.ondemand_price)
        banked = run.done if run.finished() else int(run.done / checkpoint_h + EPS) * checkpoint_h
    return JobRun(run.out, run.finished(), switches, preemptions)
