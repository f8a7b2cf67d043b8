"""The data that crosses Temporal: workflow inputs, activity inputs/outputs and job state.

Everything here is a pydantic model so that `pydantic_data_converter` can carry it through
workflow histories unchanged. The module imports only the standard library and pydantic, which
keeps it cheap to pass through the workflow sandbox.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum

from pydantic import BaseModel, Field

TASK_QUEUE = "spotctl"
"""The task queue of the jobs' workflows and their short activities; every worker polls it
and the three below."""


def monitor_queue(task_queue: str) -> str:
    """Where a job's monitor runs: its own queue with its own slots, so year-long monitors
    never hold the slots a preempted job's teardown and relaunch need."""
    return f"{task_queue}-monitor"


def notify_queue(task_queue: str) -> str:
    """Where status events are delivered (webhook POSTs, event_callbacks): each worker takes at
    most `worker.max_concurrent_notifications` at once from it, so slow or hostile receivers
    wait here and never hold the slots that job work needs."""
    return f"{task_queue}-notify"


def launch_queue(task_queue: str) -> str:
    """Where clusters are created: each worker takes at most `worker.max_concurrent_launches`
    at once from it, so a burst of launches queues here instead of flooding the cloud API."""
    return f"{task_queue}-launch"


HEARTBEAT_TIMEOUT_S = 15.0
"""The heartbeat time-out the workflow gives every activity (a dead worker is noticed this
late); the activities' background beats and cloud-call time-outs stay well under it."""
MONITOR_HEARTBEAT_TIMEOUT_S = 36.0
"""The monitor's own heartbeat time-out (workflows/spot_job.py, the `monitor-heartbeat`
patch). The monitor worker sends a monitor's beats at most every third of it (worker/pool.py
MONITOR_HEARTBEAT_THROTTLE, 12 s as before), so two beats in a row may be lost or late (the
worker's loop busy, the server slow under 1,000 monitors, a retried RPC: up to 24 s) before
the server times the monitor out and starts it again; at the 15 s time-out with the same 12 s
throttle, a stall of 3 s did. The heartbeat traffic is unchanged: 1,000 monitors send 83 a
second. The price: a monitor whose worker died is retried elsewhere up to 36 s later instead
of 15 s; its program runs on meanwhile (the monitor only watches), so only how soon the job's
end or a preemption is seen after a worker crash is later (a worker that drains hands over
at once)."""


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


class ResourceRequest(BaseModel):
    """One acceptable shape of machine, normalised from the task's `resources` (or one any_of
    entry). `None` means "any". Numbers with a trailing '+' in the YAML set the *_at_least flag."""

    cloud: str | None = None
    region: str | None = None
    zone: str | None = None
    instance_type: str | None = None
    accelerators: dict[str, float] | None = None
    cpus: float | None = None
    cpus_at_least: bool = False
    memory_gb: float | None = None
    memory_at_least: bool = False
    use_spot: bool = True
    disk_size_gb: int | None = None
    image_id: str | None = None

    def describe(self) -> str:
        """A short human form such as '[T4:1, cpus=4+] spot' or '[any] spot in aws/us-east-1'
        (the plan prefixes the node count: '1x[any] spot'); the machine comes first so the
        count never runs into a cloud's name ('1xlocal')."""
        parts: list[str] = []
        if self.accelerators:
            parts.append(", ".join(f"{k}:{v:g}" for k, v in self.accelerators.items()))
        if self.instance_type:
            parts.append(self.instance_type)
        if self.cpus is not None:
            parts.append(f"cpus={self.cpus:g}{'+' if self.cpus_at_least else ''}")
        if self.memory_gb is not None:
            parts.append(f"mem={self.memory_gb:g}{'+' if self.memory_at_least else ''}")
        where = "/".join(p for p in (self.cloud, self.region, self.zone) if p)
        text = ", ".join(parts) if parts else "any"
        return f"[{text}]{' spot' if self.use_spot else ''}{' in ' + where if where else ''}"


class Offering(BaseModel):
    """One thing a cloud sells: an instance type in a zone, with its prices (USD/hour)."""

    cloud: str
    region: str
    zone: str
    instance_type: str
    cpus: float
    memory_gb: float
    accelerators: dict[str, int] = Field(default_factory=dict)
    spot_price: float | None = None
    ondemand_price: float | None = None
    max_nodes: int | None = None
    """The most instances of it the region can ever hold at once, where the cloud knows (the
    local cloud's `capacity`); a job asking for more would wait forever, so it is refused."""


class Candidate(BaseModel):
    """A placement to try, in order: where, what, and at which price."""

    cloud: str
    region: str
    zone: str
    instance_type: str
    use_spot: bool
    price: float
    accelerators: dict[str, int] = Field(default_factory=dict)
    cpus: float = 0
    memory_gb: float = 0
    ondemand_price: float | None = None
    """The catalog's on-demand price of the same offering (what a spot job saves against)."""

    @property
    def location(self) -> str:
        return f"{self.cloud}/{self.region}/{self.zone}"


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


DEFAULT_NOTIFY_ON = ("RECOVERING", "SUCCEEDED", "CANCELLED", "FAILED", "FAILED_SETUP", "FAILED_PRECHECKS",
                     "FAILED_NO_RESOURCE", "FAILED_CONTROLLER")
"""The statuses a webhook hears by default: recoveries and every end (not each start)."""


class NotifySettings(BaseModel):
    """`notify:` of config.yaml, carried in the job's spec (encrypted like every payload), so
    a worker on another machine delivers where the launching user asked."""

    url: str | None = None
    """The webhook: a JSON POST per event (Slack-compatible `text` field)."""
    on: list[JobStatus] = Field(default_factory=lambda: [JobStatus(s) for s in DEFAULT_NOTIFY_ON])
    """The statuses the webhook is told about (the event_callback hears every one)."""
    timeout_s: float = 10.0
    """One POST's time-out."""
    give_up_after_s: float = 86400.0
    """A webhook down longer than this (counted from the status change) loses the event, with
    a warning in the worker's log: events waiting for it must end some day."""
    callback_timeout_s: float = 60.0
    """How long an event_callback may run before it is killed."""


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

    def for_nodes(self) -> JobSpec:
        """The job without what only the workflow needs (candidates, carried state): the
        input of every node activity stays small however long the job has run."""
        return self.model_copy(update={"candidates": [], "carried": None})


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


class Location(BaseModel):
    """Where instances live: a cloud's API calls are made per region (AWS, GCE), so every
    call about existing instances says where they are instead of scanning every region."""

    cloud: str
    region: str
    zone: str = ""

    def __str__(self) -> str:
        return "/".join(p for p in (self.cloud, self.region, self.zone) if p)


class ClusterHandle(BaseModel):
    """What provision made: enough to find, run on and terminate every node of the cluster."""

    cluster_name: str
    cloud: str
    region: str
    zone: str
    instance_type: str
    use_spot: bool
    instance_ids: list[str]
    node_ips: list[str]
    price: float = 0.0
    accelerators: dict[str, int] = Field(default_factory=dict)
    """Accelerators per node (filled by the provision activity from the candidate)."""

    @property
    def location(self) -> Location:
        return Location(cloud=self.cloud, region=self.region, zone=self.zone)


class AttemptRef(BaseModel):
    """Identifies one attempt of one job on one cluster; the input of setup/run/monitor."""

    job: JobSpec
    attempt: int
    recovery_count: int
    cluster: ClusterHandle


class PriceRequest(BaseModel):
    """Re-price the job's candidates with the clouds' live spot prices before a recovery."""

    candidates: list[Candidate]
    ordered: bool = False
    """The user's order of resources wins (SkyPilot's `ordered`): prices change, order not."""


class PricedCandidates(BaseModel):
    candidates: list[Candidate]


class ProvisionRequest(BaseModel):
    job_id: int
    attempt: int
    num_nodes: int
    candidates: list[Candidate]


class ErrorKind(str, Enum):
    """What a failed cloud call means (see clouds/base.py CloudError and policy/failures.py)."""

    CAPACITY = "capacity"
    """No capacity there now; another place or a later try may have some."""
    QUOTA = "quota"
    """The account's limit is reached there."""
    PRICE = "price"
    """The spot price is above what the request allows."""
    THROTTLED = "throttled"
    """The cloud said "retry later" (rate limit, too many concurrent calls)."""
    UNAVAILABLE = "unavailable"
    """The call failed or timed out for a reason of the moment (network, 5xx)."""
    INVALID = "invalid"
    """The request can never succeed there (unknown type or region, no credentials)."""


class ErrorScope(str, Enum):
    """How far a failure reaches: the candidate's zone, its region, its whole cloud, or the
    whole request."""

    ZONE = "zone"
    REGION = "region"
    CLOUD = "cloud"
    REQUEST = "request"


class CandidateFailure(BaseModel):
    """Why one candidate could not be provisioned (capacity, quota, price ...)."""

    location: str
    instance_type: str
    reason: str
    fatal: bool = False
    """Retrying cannot help (no credentials, unknown cloud, broken configuration)."""
    kind: ErrorKind = ErrorKind.CAPACITY
    scope: ErrorScope = ErrorScope.ZONE


class ReadyRequest(BaseModel):
    """Wait until every instance of a just-created cluster runs, at the latest by `deadline`."""

    cluster: ClusterHandle
    deadline: datetime


class ProvisionResult(BaseModel):
    """Either a cluster, or the reasons every candidate failed (never both)."""

    cluster: ClusterHandle | None = None
    failures: list[CandidateFailure] = Field(default_factory=list)


class RunOutcome(BaseModel):
    """What monitor saw when the user's program ended on every node."""

    exit_codes: list[int]
    first_failed_rank: int | None = None
    """The node that failed first (the others may then have been stopped by spotctl)."""

    @property
    def exit_code(self) -> int:
        """The job's code: the first failed node's, else the first non-zero, else 0."""
        if self.first_failed_rank is not None:
            return self.exit_codes[self.first_failed_rank]
        return next((c for c in self.exit_codes if c != 0), 0)


class SetupOutcome(BaseModel):
    exit_code: int


class AttemptRecord(BaseModel):
    """One launch of the job: where it ran, how it ended (for logs' recovery markers) and
    what it was paid (for `status`'s COST; spotctl/catalog/ondemand.py does the sums)."""

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

    @property
    def is_pipeline(self) -> bool:
        return bool(self.tasks)


class JobEvent(BaseModel):
    """One status change, as webhooks and event callbacks hear it. Delivered at least once;
    `event_id` is the same on every delivery of it, so a receiver can drop repeats."""

    event_id: str
    """'<job id>-<n>' for a job's n-th event, '<job id>-task<i>-<n>' for a pipeline task's."""
    job_id: int
    name: str
    """The job's name (a pipeline's name for its tasks' events)."""
    status: JobStatus
    previous: JobStatus | None = None
    reason: str | None = None
    """Why it failed or recovers (failure reason or progress detail), when known."""
    recoveries: int = 0
    cost_usd: float | None = None
    """What the job (this task, in a pipeline) cost so far, at the prices paid."""
    task: int | None = None
    task_name: str | None = None
    task_id: str = ""
    """SkyPilot's task id (SKYPILOT_TASK_ID of the job's programs)."""
    cluster_name: str | None = None
    """The attempt's cluster, when it has one."""
    cloud: str | None = None
    region: str | None = None
    at: datetime
    give_up_at: datetime | None = None
    """When delivery gives up on it (`at` + notify.give_up_after_s): it travels with the event
    across continue-as-new and to the events' own workflow, so a long outage gives each event
    up at its time, not a fresh give_up_after_s per run. Never sent to a receiver."""


class EventsHandoff(BaseModel):
    """What a job's (a task's, a pipeline's) workflow leaves undelivered when it ends: a
    JobEventsWorkflow of its own delivers it, so no webhook outage holds up the job's end."""

    job_id: int
    name: str
    notify: NotifySettings | None = None
    callback: str | None = None
    callback_envs: dict[str, str] = Field(default_factory=dict)
    """The task's envs and secrets for its callback, as the job's workflow had them."""
    events: list[JobEvent]
    """In order; the first may have been delivered already (at least once: same event id)."""
    seq: int = 0


class WebhookRequest(BaseModel):
    """POST one event to the webhook (activity deliver_webhook)."""

    event: JobEvent
    url: str
    timeout_s: float = 10.0


class CallbackRequest(BaseModel):
    """Run the task's event_callback for one event (activity run_event_callback)."""

    event: JobEvent
    command: str
    timeout_s: float = 60.0
    envs: dict[str, str] = Field(default_factory=dict)
    """The task's envs and secrets, as SkyPilot gives them to its callback (a webhook URL or a
    token often lives there); empty when they are larger than MAX_CALLBACK_ENV_BYTES."""


MAX_CALLBACK_ENV_BYTES = 16 * 1024
"""The most of the task's envs and secrets copied into each callback's request (each one is
kept in the job's history)."""


class CallbackOutcome(BaseModel):
    """How the callback ended: its exit code, or None when it was killed at its time-out."""

    exit_code: int | None
    timed_out: bool = False


class TeardownRequest(BaseModel):
    """Terminate every cluster the job may have made, attempts first..last_attempt (or every
    one tagged with the job, `by_tag`), and (at the job's end) delete its ephemeral buckets."""

    job_id: int
    last_attempt: int
    first_attempt: int = 1
    delete_buckets: list[str] = Field(default_factory=list)
    regions: list[Location] = Field(default_factory=list)
    """Where the job's clusters can be (the regions of its candidates), so teardown asks only
    there; empty (requests made before this field) = every region of every enabled cloud."""
    by_tag: bool = False
    """Find the clusters by the job's tag, whatever their attempt (first/last_attempt unused):
    one list call per region, and an attempt no workflow recorded (a task workflow terminated
    outside spotctl) is found too. The final teardowns of jobs and pipelines set it; False
    (requests made before this field, an attempt's own teardown) = by name, attempt by attempt."""


class Activities:
    """Activity names, shared by the workflow (which must not import activity code) and the
    activity definitions."""

    PROVISION = "provision"
    """Create and wait in one activity: kept for jobs started before create/wait split."""
    CREATE_CLUSTER = "create_cluster"
    WAIT_CLUSTER_READY = "wait_cluster_ready"
    SETUP = "setup"
    START_RUN = "start_run"
    MONITOR = "monitor"
    TEARDOWN = "teardown"
    PRICE_CANDIDATES = "price_candidates"
    DELIVER_WEBHOOK = "deliver_webhook"
    RUN_EVENT_CALLBACK = "run_event_callback"


MOUNT_ERROR = "MountError"
"""ApplicationError type raised by setup when the job's file mounts cannot be made."""

PREEMPTED_ERROR = "Preempted"
"""ApplicationError type raised by setup/monitor when the cloud says an instance is gone."""

NOT_READY_ERROR = "ClusterNotReady"
"""ApplicationError type raised by wait_cluster_ready when the cloud never ran the instances
in time: the cluster is torn down and the next placement tried."""

NODE_FAILURE_ERROR = "NodeFailure"
"""ApplicationError type (non-retryable) raised by setup/monitor when spotctl's own machinery
on a live node lost the phase (its processes were killed, no exit code was recorded): the
attempt is recovered like a preemption, without using the restart budget, and no exit code
is reported."""

NOTE_SIGNAL = "note"
"""The job workflow's signal that carries what a running activity waits out (e.g. "no space
left on device (log store)"), shown as the job's detail; None when it is over."""

WEBHOOK_REJECTED_ERROR = "WebhookRejected"
"""ApplicationError type (non-retryable) of deliver_webhook when the receiver refuses an event
for good (a 4xx other than 408/429, a redirect, a URL that is not http(s)): the event is dropped."""

JOB_ENDING_ERRORS = (PREEMPTED_ERROR, MOUNT_ERROR, NOT_READY_ERROR)
"""The only activity error types that are not retried: each is a decision for the workflow.
Everything else (a worker redeploy, a heartbeat time-out, a stray OSError, a cloud that
throttles) is an infrastructure failure, retried forever."""


def cluster_name(job_id: int, attempt: int) -> str:
    """Every instance of an attempt carries this name, so a retried activity finds them."""
    return f"spotctl-{job_id}-{attempt}"


class AllocatorState(BaseModel):
    """The job-id allocator's carried state across continue-as-new."""

    next_id: int = 1
    recent: dict[str, int] = Field(default_factory=dict)
    """The last request ids answered -> the id each got (workflows/job_ids.py)."""


JobSpec.model_rebuild()
CarriedState.model_rebuild()
JobState.model_rebuild()
PipelineSpec.model_rebuild()
