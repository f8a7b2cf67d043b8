"""What a job is at launch (JobSpec, PipelineSpec) and what a run carries into the next
(CarriedState): fixed when the job starts, carried through continue-as-new.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from spotctl.models.events import ChatTarget, JobEvent, NotifySettings
from spotctl.models.placement import Candidate
from spotctl.models.status import JobState


class RecoveryConfig(BaseModel):
    """SkyPilot's `job_recovery` block, normalised."""

    strategy: str = "EAGER_NEXT_REGION"
    max_restarts_on_errors: int = 0
    recover_on_exit_codes: list[int] = Field(default_factory=list)
    max_wait_s: float | None = None


class FileMount(BaseModel):
    """A local path or a bucket that must appear at `target` on every node.

    At launch, local sources are staged into the job's ephemeral bucket: afterwards `bucket`
    names the bucket, `bucket_path` the object prefix inside it ('' = the whole bucket) and
    `source` is kept only for display."""

    target: str
    source: str | None = None
    bucket: str | None = None
    bucket_path: str = ""
    store: str | None = None
    mode: str = "MOUNT"
    persistent: bool = True
    is_file: bool = False
    """The staged source is one file (the target is that file), not a directory."""


DEFAULT_CHANGEOVER_S = 720.0
"""A restart's cost when the task does not say (`deadline.changeover`): 0.2 h, the middle of
the published setup (0.02, 0.2, 0.4 h); a (re)provisioning plus setup on a real cloud."""


class DeadlineSpec(BaseModel):
    """A task's `deadline:` block with `--compute-time`/`--deadline` applied, resolved at launch:
    the deadline is a time, the durations are seconds (docs/deadlines.md)."""

    compute_s: float
    """The compute the job needs (on one attempt that is never preempted)."""
    by: datetime
    """When the job must be done."""
    changeover_s: float = DEFAULT_CHANGEOVER_S
    """What a (re)start costs before the job makes progress again."""
    checkpoint_every_s: float | None = None
    """How often the job checkpoints; None: not declared (a preemption loses the attempt's work)."""
    policy: str = "spotctl"
    """A name of policy/deadline.py's DEADLINE_POLICIES."""


class PipelineTask(BaseModel):
    """Where a task stands in its managed pipeline: what SKYPILOT_TASK_ID(S) and the task rows
    of `status` need."""

    index: int
    """0-based, as SkyPilot's TASK column and task ids count."""
    count: int
    name: str
    pipeline_name: str
    attempt_base: int = 0
    """The attempts used by the tasks before this one: this task's first attempt is
    attempt_base + 1, so cluster names, node dirs and log keys (all per job and attempt)
    never collide between the tasks of one job, and the logs read in order."""


MIN_PRIORITY = -1000
MAX_PRIORITY = 1000
DEFAULT_PRIORITY = 0
"""A job's priority (SkyPilot's range and default: sky/skylet/constants.py MIN_PRIORITY -1000,
MAX_PRIORITY 1000, DEFAULT_PRIORITY 0; the task's `resources.priority`): higher goes first for
launch slots and pool workers, then the oldest (issue 25; docs/many-jobs.md)."""


class ArrayRank(BaseModel):
    """One job of a job array (`launch --num-jobs N`): SkyPilot's SKYPILOT_JOB_RANK (0-based)
    and SKYPILOT_NUM_JOBS, and the array's first job id (what `status`/`cancel` call the array)."""

    rank: int
    count: int
    first_id: int


HOOK_EVENTS = ("stop", "preemption", "down")
"""SkyPilot's lifecycle hook events (`config.hooks[*].events`); spotctl runs `preemption` ones."""


class LifecycleHook(BaseModel):
    """One entry of SkyPilot's `config.hooks`: a script run on the node when one of `events`
    happens, within `timeout_s` (clamped below the cloud's notice for a preemption)."""

    run: str
    events: list[str] = Field(default_factory=lambda: list(HOOK_EVENTS))
    timeout_s: float = 3600.0


class JobSpec(BaseModel):
    """Everything the workflow needs to run one managed job; fixed at launch."""

    job_id: int
    name: str
    run: str
    setup: str | None = None
    envs: dict[str, str] = Field(default_factory=dict)
    secrets: dict[str, str] = Field(default_factory=dict)
    """SkyPilot's `secrets:` and `--secret K=V`: set in the job's environment like envs, never
    printed; the payload codec encrypts them (and every other payload) before they reach Temporal."""
    workdir: str | None = None
    """The local workdir as the user named it (display only; see workdir_mount)."""
    workdir_mount: FileMount | None = None
    """Where the staged workdir lives (a prefix of the ephemeral bucket); synced to ~/sky_workdir."""
    file_mounts: list[FileMount] = Field(default_factory=list)
    ephemeral_buckets: list[str] = Field(default_factory=list)
    """Buckets made for this job only (staged workdir/local mounts, persistent: false); deleted
    when the job ends, whatever the end."""
    num_nodes: int = 1
    resources: str = "-"
    candidates: list[Candidate]
    ordered: bool = False
    """The task's resources are `ordered`: a recovery re-prices but never re-sorts them."""
    recovery: RecoveryConfig = Field(default_factory=RecoveryConfig)
    submitted_at: datetime
    launch_retry_initial_s: float = 10.0
    """First backoff between rounds of provisioning when no candidate has capacity."""
    launch_retry_max_s: float = 300.0
    """Longest backoff between rounds of provisioning."""
    continue_as_new_after_attempts: int = 100
    """Start a fresh workflow run (continue-as-new) after this many attempts, far below
    Temporal's history limits (each attempt adds ~40 events)."""
    continue_as_new_after_events: int = 2000
    """Start a fresh workflow run once the current one's history is this long (checked
    between attempts and between rounds of waiting for capacity), so a job that waits or
    recovers for months never nears Temporal's 51,200-event limit."""
    carried: CarriedState | None = None
    """Set only by continue-as-new: what the previous run of this job's workflow knew."""
    task: PipelineTask | None = None
    """Set when this is one task of a managed pipeline (its workflow is a child of the job's)."""
    event_callback: str | None = None
    """SkyPilot's `event_callback`: a bash command run (by a worker) on every status change."""
    notify: NotifySettings | None = None
    """The webhook of config.yaml's `notify:` (None: none)."""
    chat: list[ChatTarget] = Field(default_factory=list)
    """SkyPilot's `event_callback:` list form: Slack and Discord webhooks (their URLs are
    secrets: only the workflow's outbox has them, never a node: see for_nodes)."""
    deadline: DeadlineSpec | None = None
    """The task's `deadline:` (None: none; the job runs as it always has)."""
    ondemand_candidates: list[Candidate] = Field(default_factory=list)
    """A deadline job's on-demand candidates, ranked (`candidates` are its spot ones)."""
    ranking: str = "price"
    """How the job orders its candidates at each provisioning: "price" (as before this field) or
    "expected-cost" (the fleet's memory: workflows/fleet_placement.py); from the launching
    user's `fleet.ranking` setting."""
    priority: int = DEFAULT_PRIORITY
    """Who gets launch slots and pool workers first (MIN_PRIORITY..MAX_PRIORITY, higher first)."""
    array: ArrayRank | None = None
    """Set for a job of a job array (`launch --num-jobs N`)."""
    pool: str | None = None
    """The pool whose workers run this job (`launch -p POOL`); None: its own cluster."""
    hooks: list[LifecycleHook] = Field(default_factory=list)
    """The task's `config.hooks` (SkyPilot's lifecycle hooks)."""

    def first_state(self) -> JobState:
        """The job before its workflow ran: what its workflow starts from, and the memo its
        start writes, so `status` shows it as it is from the moment it was started."""
        return JobState(job_id=self.job_id, name=self.name, resources=self.resources, submitted_at=self.submitted_at,
                        task=self.task.index if self.task else None, priority=self.priority, pool=self.pool,
                        array_first_id=self.array.first_id if self.array else None,
                        array_rank=self.array.rank if self.array else None)

    def for_nodes(self) -> JobSpec:
        """The job without what only the workflow needs (candidates, carried state): the
        input of every node activity stays small however long the job has run."""
        return self.model_copy(update={"candidates": [], "carried": None, "ondemand_candidates": [], "chat": []})


class CarriedState(BaseModel):
    """The workflow's memory that crosses continue-as-new."""

    state: JobState
    attempt: int
    restarts_used: int
    blocked_regions: dict[str, datetime] = Field(default_factory=dict)
    last_location: tuple[str, str, str] | None = None
    """(cloud, region, zone) of the last preemption, for FAILOVER's same-zone-first order."""
    waiting_since: datetime | None = None
    """Set when the run continued-as-new while waiting for capacity: when the wait began
    (for max_wait)."""
    backoff_retry: int = 0
    """How many rounds of that wait had already failed (the backoff goes on from there)."""
    events: list[JobEvent] = Field(default_factory=list)
    """Status events not yet delivered: the next run delivers them first, in order."""
    event_seq: int = 0
    """Events made so far (the next event id's number)."""


class PipelineSpec(BaseModel):
    """A managed pipeline: tasks run one after another, each a child workflow (a SpotJobWorkflow
    with its own cluster, recovery and history); fixed at launch."""

    job_id: int
    name: str
    tasks: list[JobSpec]
    """One spec per task, in order, each with `task` set (attempt_base is filled as the
    tasks before it end)."""
    ephemeral_buckets: list[str] = Field(default_factory=list)
    """The job's staged files (every task's): deleted when the pipeline ends."""
    submitted_at: datetime
    notify: NotifySettings | None = None
    """The pipeline's own end is delivered too (its tasks deliver their own transitions)."""

    def first_state(self) -> JobState:
        """The pipeline before any task ran: PENDING, one PENDING row per task (what the
        workflow starts from, and the memo the CLI writes when it starts the workflow)."""
        rows = [JobState(job_id=self.job_id, name=t.task.name if t.task else t.name, resources=t.resources,
                         submitted_at=self.submitted_at, task=i) for i, t in enumerate(self.tasks)]
        return JobState(job_id=self.job_id, name=self.name, resources=self.tasks[0].resources,
                        submitted_at=self.submitted_at, tasks=rows)


JobSpec.model_rebuild()
CarriedState.model_rebuild()
PipelineSpec.model_rebuild()
