"""The activity contract: task queues, heartbeat time-outs, activity names and the
requests and results that cross between the workflows and the activities.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from spotctl.models.errors import CandidateFailure
from spotctl.models.placement import Candidate, ClusterHandle, Location
from spotctl.models.spec import JobSpec

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


class AttemptRef(BaseModel):
    """Identifies one attempt of one job on one cluster; the input of setup/run/monitor."""

    job: JobSpec
    attempt: int
    recovery_count: int
    cluster: ClusterHandle
    prepare: bool = False
    """start_run prepares the nodes first (agent, mounts, env.json: the setup activity's part
    before any `setup` runs): a pool job's one activity before its run (the pool-quick-start patch)."""


class PriceRequest(BaseModel):
    """Re-price the job's candidates with the clouds' live spot prices before a recovery."""

    candidates: list[Candidate]
    ordered: bool = False
    """The user's order of resources wins (SkyPilot's `ordered`): prices change, order not."""


class OutlookRequest(BaseModel):
    """What the fleet's memory says of the places of these candidates (before a provisioning)."""

    candidates: list[Candidate]


class PricedCandidates(BaseModel):
    candidates: list[Candidate]


class ProvisionRequest(BaseModel):
    job_id: int
    attempt: int
    num_nodes: int
    candidates: list[Candidate]


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
    released: bool = False
    """A pool job's worker was given back to its pool by the monitor itself, the moment the
    program's end was seen (activities/pool_release.py): the workflow need not send it."""

    @property
    def exit_code(self) -> int:
        """The job's code: the first failed node's, else the first non-zero, else 0."""
        if self.first_failed_rank is not None:
            return self.exit_codes[self.first_failed_rank]
        return next((c for c in self.exit_codes if c != 0), 0)


class SetupOutcome(BaseModel):
    exit_code: int


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


class ActivityNames:
    """The registered activity names: what every recorded history calls, so they never change.
    The activity implementations (activities/: ProvisionActivities ...) register under them;
    the live workflows call those implementations by typed reference (the SDK derives the name
    from the `@activity.defn`), so only test doubles spell a name out (and the frozen first
    controller, workflows/legacy/, its own literals)."""

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
    DELIVER_CHAT = "deliver_chat"
    """Post one status event to a Slack or Discord incoming webhook."""
    FLEET_OUTLOOKS = "fleet_outlooks"
    START_ARRAY_JOBS = "start_array_jobs"
    END_ARRAY = "end_array"
    STOP_RUN = "stop_run"
    """Stop a pool job's program on its worker (the worker lives on for the next job)."""
    DEAD_WORKERS = "dead_workers"
    """Which of a pool's idle workers the cloud took back."""
    ASK_CANCELED_END = "ask_canceled_end"
    """Ask Temporal to cancel the calling job's workflow, so a cancelled job ends Canceled
    (workflows/job_end.py): a workflow cannot ask it of itself."""


NOTE_SIGNAL = "note"
"""The job workflow's signal that carries what a running activity waits out (e.g. "no space
left on device (log store)"), shown as the job's detail; None when it is over."""
