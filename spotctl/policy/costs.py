"""What a job cost, and what the same hours would have cost on demand.

Every attempt records the price per node-hour it was paid (the live spot price, or the
on-demand price), its node count and when its cluster was asked for (AttemptRecord). So:

    attempt cost      = price x nodes x hours, hours = (ended_at or now) - launched_at
    on-demand equiv.  = the catalog's on-demand price of the same (cloud, region, zone,
                        instance type) x nodes x the same hours (an on-demand attempt: its price)
    job cost          = the sum over the attempts; SAVED = 1 - cost / on-demand, in percent

Provisioning counts (the bill runs from the create call), teardown after the attempt ended
does not (seconds, and the workflow records no time for it). A cluster that died before it
ran has no attempt record, so it costs nothing here. The workflow records only the facts (and
its job view sums the ended attempts); the CLI computes the rest when it shows them, with
on-demand prices from spotctl/clouds/ondemand.py. Records cut from a job's history (keep_last) leave
their sums in the job's earlier_* totals. Pure: usable inside workflows.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from spotctl.models import AttemptRecord, JobState

PriceKey = tuple[str, str, str, str]
"""(cloud, region, zone, instance_type): how a catalog's offering is found."""


@dataclass(frozen=True)
class AttemptCost:
    attempt: int
    hours: float | None
    cost: float | None
    """None when the price is unknown (attempts recorded before prices were)."""
    ondemand: float | None
    """None when neither the attempt nor the catalog knows the on-demand price."""


@dataclass(frozen=True)
class JobCost:
    cost: float | None
    """None when any attempt's cost is unknown: a partial sum would understate the bill."""
    ondemand: float | None
    attempts: list[AttemptCost]

    @property
    def saved_pct(self) -> float | None:
        """1 - cost / on-demand cost, in percent; None when either is unknown or nothing ran."""
        if self.cost is None or not self.ondemand:
            return None
        return 100.0 * (1.0 - self.cost / self.ondemand)


def attempt_hours(record: AttemptRecord, now: datetime) -> float | None:
    """Hours the attempt's cluster lived: from the create call (or, in older records, from
    when it ran) to its end, or to `now` while it lives."""
    start = record.launched_at or record.started_at
    if start is None:
        return None
    return max(0.0, ((record.ended_at or now) - start).total_seconds()) / 3600.0


def attempt_cost(record: AttemptRecord, now: datetime, ondemand_prices: Mapping[PriceKey, float]) -> AttemptCost:
    hours = attempt_hours(record, now)
    nodes = record.nodes or 1
    cost = record.price * nodes * hours if record.price is not None and hours is not None else None
    if record.use_spot is False and record.price is not None:
        ondemand_price: float | None = record.price
    elif record.ondemand_price is not None:  # recorded at launch
        ondemand_price = record.ondemand_price
    else:
        ondemand_price = ondemand_prices.get((record.cloud, record.region, record.zone, record.instance_type))
    ondemand = ondemand_price * nodes * hours if ondemand_price is not None and hours is not None else None
    return AttemptCost(attempt=record.attempt, hours=hours, cost=cost, ondemand=ondemand)


def job_cost(job: JobState, now: datetime, ondemand_prices: Mapping[PriceKey, float]) -> JobCost:
    """The sums over the job's attempts: those in its history, plus what the ones cut from it
    cost (JobState.earlier_cost)."""
    attempts = [attempt_cost(r, now, ondemand_prices) for r in job.history]
    return JobCost(cost=known_sum([job.earlier_cost, *(a.cost for a in attempts)]),
                   ondemand=known_sum([job.earlier_ondemand, *(a.ondemand for a in attempts)]), attempts=attempts)


def keep_last(job: JobState, keep: int, now: datetime) -> JobState:
    """The job with only its last `keep` attempt records, what the others cost carried in its
    earlier_* totals: a shorter history, the same bill (the memo of a running job, the state's
    cap). The cut records are ended ones (only the last can be running); on-demand prices
    come from the records (no catalog inside a workflow)."""
    cut = job.history[:-keep] if keep > 0 else job.history
    if not cut:
        return job
    costs = [attempt_cost(r, r.ended_at or now, {}) for r in cut]
    return job.model_copy(update={
        "history": job.history[len(cut):],
        "earlier_cost": known_sum([job.earlier_cost, *(a.cost for a in costs)]),
        "earlier_ondemand": known_sum([job.earlier_ondemand, *(a.ondemand for a in costs)]),
    })


def known_sum(values: Iterable[float | None]) -> float | None:
    """The sum, or None when one part is unknown (a partial sum would understate the bill)."""
    total = 0.0
    for v in values:
        if v is None:
            return None
        total += v
    return total


def money(value: float | None) -> str:
    """`$0.42`; below a cent, two significant digits (`$0.000022`): a job of seconds did cost
    something, and the local cloud's demo jobs cost fractions of a cent."""
    if value is None:
        return "-"
    if 0 < value < 0.01:
        return f"${value:.{1 - math.floor(math.log10(value))}f}"
    return f"${value:,.2f}"


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}%"
