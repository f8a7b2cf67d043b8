"""What both controllers share: the exceptions that end a job, and how a job is described
(the web UI's current details, the innermost message of a failure). Deterministic, no I/O."""

from __future__ import annotations

from temporalio.exceptions import ActivityError, ApplicationError, FailureError

from spotctl.models import JobFailure, JobState, JobStatus
from spotctl.policy import AttemptCost, attempt_cost, money, percent


class Cancelled(Exception):
    """Raised inside the workflow when the user asked to cancel (signal or workflow cancel)."""


class Finished(Exception):
    """Raised to end the job with a terminal status decided on the way: why as text (`reason`),
    or as data (`failure`, whose text is then the reason)."""

    def __init__(self, status: JobStatus, reason: str | None = None, exit_code: int | None = None,
                 failure: JobFailure | None = None):
        reason = failure.text() if failure is not None else reason
        super().__init__(reason or status.value)
        self.status, self.reason, self.exit_code = status, reason, exit_code
        self.failure = failure if failure is not None else JobFailure.of(reason)


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
