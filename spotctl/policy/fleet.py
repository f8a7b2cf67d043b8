"""What the fleet has seen, and candidates ranked by the expected cost to finish.

Every job of a deployment reports what happened where (a spot launch, a capacity failure, a
preemption after a lifetime, a price seen) as FleetEvents; a store (spotctl/fleet/) keeps the
recent ones, bounded. These pure functions turn them into a PlaceOutlook per place and rank
candidates by what finishing the job there is expected to cost: the price plus the expected
loss from preemptions (work lost since the last checkpoint and the restart, paid again).
The workflow, `launch --dry-run` and bench/economics.py all call this one copy.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum

from spotctl.models import Candidate
from spotctl.policy.deadline import SpotOutlook


class FleetEventKind(str, Enum):
    LAUNCHED = "launched"
    """An instance of the place came up (its lifetime starts)."""
    NO_CAPACITY = "no_capacity"
    """A create failed for want of capacity."""
    PREEMPTED = "preempted"
    """A running spot instance was taken back; lifetime_s says how long it had lived."""
    ENDED = "ended"
    """An instance ended by spotctl (job done, cancelled, moved): its life, unpreempted."""


@dataclass(frozen=True)
class Place:
    """What the memory is kept per: (cloud, zone, instance type, market)."""

    cloud: str
    zone: str
    instance_type: str
    spot: bool

    @classmethod
    def of(cls, c: Candidate) -> Place:
        return cls(cloud=c.cloud, zone=c.zone, instance_type=c.instance_type, spot=c.use_spot)


@dataclass(frozen=True)
class FleetEvent:
    place: Place
    kind: FleetEventKind
    at: datetime
    lifetime_s: float | None = None
    price: float | None = None


@dataclass(frozen=True)
class PlaceOutlook:
    """A place's recent record, over the last `window_h` hours."""

    place: Place
    window_h: float
    launches: int = 0
    capacity_failures: int = 0
    preemptions: int = 0
    observed_h: float = 0.0
    """Instance-hours seen there (preempted or ended lives) in the window."""
    last_price: float | None = None

    @property
    def mean_lifetime_h(self) -> float | None:
        """Observed instance-hours per preemption; None with no preemption seen."""
        return self.observed_h / self.preemptions if self.preemptions else None

    def explain(self) -> str:
        """E.g. 'us-east-1a: 4 preemptions in 6 h, spot lifetime ~1.5 h'."""
        window = f"{self.window_h:g} h"
        parts = [f"{self.preemptions} preemption{'s' if self.preemptions != 1 else ''} in {window}"]
        if self.mean_lifetime_h is not None:
            parts.append(f"spot lifetime ~{self.mean_lifetime_h:.1f} h")
        if self.capacity_failures:
            parts.append(f"{self.capacity_failures} capacity failure{'s' if self.capacity_failures != 1 else ''}")
        return f"{self.place.zone}: " + ", ".join(parts)


WINDOW = timedelta(hours=6)
"""How far back the outlook looks."""


def outlooks(events: Iterable[FleetEvent], now: datetime, window: timedelta = WINDOW) -> dict[Place, PlaceOutlook]:
    """Each place's outlook from the events of the last `window`."""
    since = now - window
    acc: dict[Place, dict] = {}
    for e in events:
        if e.at < since or e.at > now:
            continue
        a = acc.setdefault(e.place, {"launches": 0, "capacity_failures": 0, "preemptions": 0, "observed_h": 0.0,
                                     "last_price": None, "price_at": None})
        if e.kind == FleetEventKind.LAUNCHED:
            a["launches"] += 1
        elif e.kind == FleetEventKind.NO_CAPACITY:
            a["capacity_failures"] += 1
        elif e.kind == FleetEventKind.PREEMPTED:
            a["preemptions"] += 1
        if e.kind in (FleetEventKind.PREEMPTED, FleetEventKind.ENDED) and e.lifetime_s:
            a["observed_h"] += e.lifetime_s / 3600.0
        if e.price is not None and (a["price_at"] is None or e.at >= a["price_at"]):
            a["last_price"], a["price_at"] = e.price, e.at
    hours = window.total_seconds() / 3600.0
    return {p: PlaceOutlook(place=p, window_h=hours, launches=a["launches"], capacity_failures=a["capacity_failures"],
                            preemptions=a["preemptions"], observed_h=a["observed_h"], last_price=a["last_price"])
            for p, a in acc.items()}


@dataclass(frozen=True)
class WorkAhead:
    """What a preemption costs this job: the work left, how much a preemption loses (half a
    checkpoint interval on average) and the restart."""

    work_h: float = 1.0
    checkpoint_h: float = 0.5
    restart_h: float = 0.1


PRIOR_LIFETIME_H = 24.0
"""The spot lifetime assumed where nothing was seen: a quiet place ranks by price."""


def expected_cost(c: Candidate, outlook: PlaceOutlook | None, work: WorkAhead) -> float:
    """Expected dollars per node to finish `work` at candidate `c`."""
    if not c.use_spot:
        return c.price * work.work_h
    lifetime = PRIOR_LIFETIME_H
    if outlook is not None and outlook.preemptions:
        # Observed hours plus a prior day per preemption-free pseudo-observation.
        lifetime = (outlook.observed_h + PRIOR_LIFETIME_H) / (outlook.preemptions + 1)
    loss_per_preemption = work.checkpoint_h / 2 + work.restart_h
    hours = work.work_h * (1 + loss_per_preemption / max(lifetime, 1e-6))
    return c.price * hours


@dataclass(frozen=True)
class Ranked:
    candidate: Candidate
    expected_cost: float
    why: str = ""
    outlook: PlaceOutlook | None = field(default=None, compare=False)


def rank_by_expected_cost(candidates: Sequence[Candidate], known: dict[Place, PlaceOutlook], work: WorkAhead,
                          *, ordered: bool = False) -> list[Ranked]:
    """Candidates cheapest-to-finish first (equal costs keep their order); with `ordered`
    (the user's own order) the order is kept and only the figures are added."""
    ranked = [Ranked(c, expected_cost(c, known.get(Place.of(c)), work),
                     known[Place.of(c)].explain() if Place.of(c) in known else "",
                     known.get(Place.of(c))) for c in candidates]
    return ranked if ordered else sorted(ranked, key=lambda r: r.expected_cost)


def spot_outlook(known: Iterable[PlaceOutlook]) -> SpotOutlook:
    """What the deadline policy plans with, from the outlooks of the spot places a job may use:
    the share of launch attempts that found capacity, and the instance-hours per preemption
    (with no preemption seen, the hours seen: a lifetime at least that long)."""
    spot = [o for o in known if o.place.spot]
    launches = sum(o.launches for o in spot)
    failures = sum(o.capacity_failures for o in spot)
    preemptions = sum(o.preemptions for o in spot)
    hours = sum(o.observed_h for o in spot)
    availability = launches / (launches + failures) if launches + failures else None
    lifetime = hours / preemptions if preemptions else (hours if hours > 0 else None)
    return SpotOutlook(availability=availability, mean_lifetime_h=lifetime)
