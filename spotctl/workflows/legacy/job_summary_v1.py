"""FROZEN copies of the job view the first controller uses (controller_v1.py): the exceptions
that end a job, the web UI's current details, the innermost message of a failure, and the
cost arithmetic the details sum.

Why a copy: replay checks a workflow's commands, not their arguments. While controller_v1
called spotctl/workflows/job_summary.py and spotctl/policy/costs.py, an edit there would silently
change the failure reasons, memo and details of jobs started under it. These are the bodies as
they were when the controller was frozen. Do not edit them, and do not import them from live
code: change workflows/job_summary.py or policy/costs.py instead. Deleted with the rest of
workflows/legacy/ (its README.md). Deterministic, no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from temporalio.exceptions import ActivityError, ApplicationError, FailureError

from spotctl.models import AttemptRecord, JobState, JobStatus

# ---- the exceptions that end a job (workflows/job_summary.py) -------------------------


class Cancelled(Exception):
    """Raised inside the workflow when the user asked to cancel (signal or workflow cancel)."""


class Finished(Exception):
    """Raised to end the job with a terminal status decided on the way."""

    def __init__(self, status: JobStatus, reason: str | None = None, exit_code: int | None = None):
        super().__init__(reason or status.value)
        self.status, self.reason, self.exit_code = status, reason, exit_code


# ---- how a job is described (workflows/job_summary.py) ---------------------------------


def details(s: JobState) -> str:
    """What the Temporal web UI shows as the job's current details (Markdown)."""
    lines = [f"**{s.status.value}** job {s.job_id} `{s.name}`, attempt {s.attempt}, {s.recoveries} recoveries"]
    if s.cloud:
        lines.append(f"on {s.cloud}/{s.region}/{s.zone}")
    if s.detail:
        lines.append(f"now: {s.detail}")
    if s.failure_reason:
        lines.append(f"last failure: {s.failure_reason}")
    ended = [attempt_cost(r, r.ended_at, {}) for r in s.history if r.ended_at and r.price is not None]
    paid = [a.cost for a in ended if a.cost is not None]
    if s.earlier_cost:  # attempts cut from the history
        paid.append(s.earlier_cost)
        ended.append(AttemptCost(attempt=0, hours=None, cost=s.earlier_cost, ondemand=s.earlier_ondemand))
    if paid:  # the running attempt's share needs "now": `spotctl status` adds it
        line = f"cost of {'the' if s.status.is_terminal else 'ended'} attempts: {money(sum(paid))}"
        ondemand = [a.ondemand for a in ended]
        if all(o is not None for o in ondemand) and sum(ondemand) > 0:  # type: ignore[arg-type]
            total = sum(ondemand)  # type: ignore[arg-type]
            line += f" (on demand {money(total)}, saved {percent(100.0 * (1 - sum(paid) / total))})"
        lines.append(line)
    for r in s.history[-5:]:
        price = f", ${r.price:.4g}/h {'spot' if r.use_spot else 'on-demand'}" if r.price is not None else ""
        lines.append(f"- attempt {r.attempt}: {r.region}/{r.zone} {r.instance_type}{price}: {r.outcome or 'running'}")
    return "\n\n".join(lines)


def error_type(err: ActivityError) -> str | None:
    return err.cause.type if isinstance(err.cause, ApplicationError) else None


def describe(exc: BaseException) -> str:
    """The innermost message of a Temporal failure chain."""
    while isinstance(exc, FailureError) and exc.cause is not None:
        exc = exc.cause
    return str(exc) or type(exc).__name__


# ---- what an attempt cost (policy/costs.py) --------------------------------------------


@dataclass(frozen=True)
class AttemptCost:
    attempt: int
    hours: float | None
    cost: float | None
    """None when the price is unknown (attempts recorded before prices were)."""
    ondemand: float | None
    """None when neither the attempt nor the catalog knows the on-demand price."""


def attempt_hours(record: AttemptRecord, now: datetime) -> float | None:
    """Hours the attempt's cluster lived: from the create call (or, in older records, from
    when it ran) to its end, or to `now` while it lives."""
    start = record.launched_at or record.started_at
    if start is None:
        return None
    return max(0.0, ((record.ended_at or now) - start).total_seconds()) / 3600.0


def attempt_cost(record: AttemptRecord, now: datetime, ondemand_prices: dict) -> AttemptCost:
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
