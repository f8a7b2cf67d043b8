"""A job's status and state as the workflow keeps it and the CLI shows it (SkyPilot's statuses).
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum

from pydantic import BaseModel, Field

from spotctl.models.errors import CandidateFailure


class JobStatus(str, Enum):
    """SkyPilot's managed-job statuses, with SkyPilot's meanings, so scripts carry over."""

    PENDING = "PENDING"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    RECOVERING = "RECOVERING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    FAILED_SETUP = "FAILED_SETUP"
    FAILED_PRECHECKS = "FAILED_PRECHECKS"
    FAILED_NO_RESOURCE = "FAILED_NO_RESOURCE"
    FAILED_CONTROLLER = "FAILED_CONTROLLER"
    CANCELLING = "CANCELLING"
    CANCELLED = "CANCELLED"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES

    @property
    def is_failure(self) -> bool:
        return self.value.startswith("FAILED")


TERMINAL_STATUSES = frozenset(
    {
        JobStatus.SUCCEEDED,
        JobStatus.FAILED,
        JobStatus.FAILED_SETUP,
        JobStatus.FAILED_PRECHECKS,
        JobStatus.FAILED_NO_RESOURCE,
        JobStatus.FAILED_CONTROLLER,
        JobStatus.CANCELLED,
    }
)


class TaskStatus(BaseModel):
    """A pipeline task's status change, signalled by the task's workflow to the pipeline's."""

    index: int
    """The task's index in its pipeline."""
    status: JobStatus
    at: datetime
    """When the task changed (its workflow's time: it grows across continue-as-new runs)."""
    n: int = 0
    """The change's number within its run, for changes at the same `at`: (at, n) orders the
    updates, and one that arrives after a newer one is ignored."""


class AttemptRecord(BaseModel):
    """One launch of the job: where it ran, how it ended (for logs' recovery markers) and
    what it was paid (for `status`'s COST; spotctl/clouds/ondemand.py does the sums)."""

    attempt: int
    cloud: str
    region: str
    zone: str
    instance_type: str = ""
    started_at: datetime | None = None
    """When the cluster was running (provisioning done)."""
    ended_at: datetime | None = None
    outcome: str | None = None
    """'preempted', 'exit code N', 'setup failed', 'cancelled' ... None while it runs."""
    launched_at: datetime | None = None
    """When the cluster was asked for: the bill runs from here, provisioning included. None in
    records made before prices were recorded."""
    use_spot: bool | None = None
    price: float | None = None
    """USD per hour per node actually paid: the live spot price, or the on-demand price."""
    nodes: int | None = None
    """Instances in the cluster (the price is per instance)."""
    ondemand_price: float | None = None
    """The on-demand price of the same offering at launch (for SAVED); None in older records."""
    task: int | None = None
    """The pipeline task (0-based) this attempt ran; None for a single-task job."""


class MarketSwitch(BaseModel):
    """A deadline job's move between markets (spot, on-demand), and why (`status -v`)."""

    at: datetime
    elapsed_s: float
    """Since the job's submission: when it moved, in the deadline's own clock."""
    from_market: str
    to_market: str
    reason: str

    def text(self) -> str:
        """E.g. 'spot -> on-demand at 61.2h: slack 0.4h no longer covers a restart (0.2h x 2)'."""
        return f"{self.from_market} -> {self.to_market} at {hours_text(self.elapsed_s)}: {self.reason}"


def hours_text(seconds: float) -> str:
    """A deadline's figure as people read it: '61.2h', '48h', '0.4h', '5m', '40s' (negative
    with a '-'); hours from 0.1 h up, as the published setup writes changeovers."""
    sign, s = ("-" if seconds < 0 else ""), abs(seconds)
    if s >= 360:
        return f"{sign}{f'{s / 3600:.1f}'.removesuffix('.0')}h"
    if s >= 60:
        return f"{sign}{s / 60:.0f}m"
    return f"{sign}{s:.0f}s"


class JobFailure(BaseModel):
    """Why a job failed, or last failed to get a cluster, as data. JobState.failure_reason is
    this written out (text()), kept for older clients and the recorded histories; the CLI reads
    this instead of parsing the text back (cli/render.py)."""

    task: str | None = None
    """A pipeline's: the task whose reason this is, as naming.label names it (`task 1/3 'eval'`)."""
    head: str | None = None
    """What happened, before the candidates or the message (`no capacity for 120s`)."""
    candidates: list[CandidateFailure] = Field(default_factory=list)
    """The candidates provisioning asked, each with where, what and why it failed (the first few)."""
    message: str | None = None
    """A reason that is no list of candidates (an exit code, a cluster lost before it ran)."""

    @classmethod
    def of(cls, reason: str | None) -> JobFailure | None:
        """A plain reason (no candidate list) as data; None for none."""
        return cls(message=reason) if reason else None

    @classmethod
    def of_task(cls, task: str, row: JobState) -> JobFailure | None:
        """A pipeline's reason: its task `row`'s own (its status when it has none), under the
        task's label; None when the row's reason predates the field (read as text then)."""
        own = row.failure_data if row.failure_reason else cls(message=row.status.value)
        return own.model_copy(update={"task": task}) if own is not None else None

    def under(self, head: str) -> JobFailure:
        """This failure as what `head` says happened (`no capacity for 120s: ...`)."""
        if self.head is None:
            return self.model_copy(update={"head": head})
        return JobFailure(task=self.task, head=head, message=self.model_copy(update={"task": None}).text())

    def text(self) -> str:
        """JobState.failure_reason's words, as the workflows have always written them:
        `[task: ][head: ]<location type: reason; ...>` or `[task: ][head: ]<message>`."""
        body = ("; ".join(f"{c.location} {c.instance_type}: {c.reason}" for c in self.candidates)
                if self.candidates else self.message or "")
        return "".join(f"{part}: " for part in (self.task, self.head) if part) + body


class JobState(BaseModel):
    """The workflow's view of the job, returned by the `state` query and mirrored in the memo."""

    job_id: int
    name: str
    status: JobStatus = JobStatus.PENDING
    resources: str = "-"
    submitted_at: datetime
    started_at: datetime | None = None
    """When the job first reached RUNNING."""
    ended_at: datetime | None = None
    run_started_at: datetime | None = None
    """When the current RUNNING period began (None when not running)."""
    job_duration_s: float = 0.0
    """Seconds spent RUNNING in finished periods; add now - run_started_at while running."""
    attempt: int = 0
    recoveries: int = 0
    cloud: str | None = None
    region: str | None = None
    zone: str | None = None
    exit_code: int | None = None
    failure_reason: str | None = None
    failure: JobFailure | None = None
    """failure_reason as data, set with it (None in a state that predates it): read it through
    failure_data."""
    detail: str | None = None
    """What the job is doing now, for progress displays ('provisioning in local-east ...')."""
    cancel_requested: bool = False
    history: list[AttemptRecord] = Field(default_factory=list)
    """Every attempt that got a cluster, in order (the last few hundred)."""
    task: int | None = None
    """A pipeline task's state: its index (0-based); None for a job or a pipeline."""
    last_attempt: int = 0
    """Set when the job ends: the highest attempt number it used (a cluster that died before
    it ran used one too); the pipeline's next task numbers its attempts after it."""
    tasks: list[JobState] = Field(default_factory=list)
    """A pipeline's state: one row per task, in order (empty for a single-task job). The
    pipeline's workflow knows a task's state when the task ends; the CLI overlays the running
    task's live state (client/pipeline_view.py)."""
    earlier_cost: float | None = 0.0
    """USD paid for the ended attempts no longer in `history` (cut from a running job's memo,
    or past the state's last few hundred): policy/costs.job_cost adds it, so the memo, the live
    query and the events sum the same bill. None when one of them had no known price."""
    earlier_ondemand: float | None = 0.0
    """The same attempts' on-demand equivalent, from the prices recorded at launch (None when
    one had none)."""
    market: str | None = None
    """A deadline job's market now ('spot', 'on-demand'; 'none' while it waits by choice);
    None for a job without a deadline."""
    deadline_at: datetime | None = None
    """A deadline job's deadline (None: the job has none)."""
    slack_s: float | None = None
    """The deadline's slack at the last decision: the time the job may still spend without
    progress and finish on time (policy/deadline.py slack_h)."""
    progress_s: float | None = None
    """The compute done and kept (by a checkpoint) at the last decision."""
    switches: list[MarketSwitch] = Field(default_factory=list)
    """Every move between markets, with its reason (the last few hundred)."""
    restart_s: float | None = None
    """A deadline job's longest restart measured so far: from an attempt's cluster request to
    its program RUNNING (the `deadline-restarts` patch); the policy's changeover is at least it."""
    done_at: datetime | None = None
    """When a deadline job's program ended successfully: its finish against the deadline (the
    final teardown comes after)."""
    placement: list[str] = Field(default_factory=list)
    """The figures behind the order of the job's last placement by expected cost, best first
    ("local-east-1a: 2 preemptions in 6 h, spot lifetime ~1.5 h; expected $0.0103"), for
    `status -v`; empty for a job ranked by price."""
    priority: int = 0
    """The job's priority now (models.spec.DEFAULT_PRIORITY when never set; changeable while it waits)."""
    pool: str | None = None
    """The pool the job runs on (None: its own cluster)."""
    worker: str | None = None
    """The pool worker running the job now (None while it waits or when not on a pool)."""
    array_first_id: int | None = None
    """A job array's first job id (the array's handle in `status`/`cancel`); None: not in an array."""
    array_rank: int | None = None
    """The job's SKYPILOT_JOB_RANK in its array."""

    @property
    def is_pipeline(self) -> bool:
        return bool(self.tasks)

    @property
    def failure_data(self) -> JobFailure | None:
        """`failure` when it is failure_reason's own (their texts agree); None when there is no
        reason or only its text (a state from before the field, or a reason set without it)."""
        if self.failure is None or not self.failure_reason or self.failure.text() != self.failure_reason:
            return None
        return self.failure


JobState.model_rebuild()
