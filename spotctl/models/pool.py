"""Pools (issue 25, docs/many-jobs.md "Pools"): what crosses Temporal between `spotctl pool`,
a pool's workflow (workflows/pool.py) and the jobs that run on its workers.

A pool is one workflow, `spotctl-pool-<name>`: it keeps between min_workers and max_workers
workers (single-node clusters, each set up once) and hands them to jobs one at a time. A job
on a pool asks for a worker (REQUEST_SIGNAL), is granted one (GRANT_SIGNAL, to the job's
workflow) and gives it back (RELEASE_SIGNAL), saying whether the worker was lost under it.
Every message is a few numbers: the pool's history grows by a few events per job, and it
continues as new long before Temporal's limits, carrying only its workers and its queue.
"""

from __future__ import annotations

import re
from datetime import datetime

from pydantic import BaseModel, Field

from spotctl.models.placement import ClusterHandle
from spotctl.models.spec import DEFAULT_PRIORITY, JobSpec

POOL_WORKFLOW = "SpotPoolWorkflow"
"""The workflow type of a pool (never listed as a job: client/listing.py lists job types only)."""
REQUEST_SIGNAL = "pool-request"
RELEASE_SIGNAL = "pool-release"
GRANT_SIGNAL = "pool-grant"
"""The job workflow's signal: a worker is yours (WorkerGrant)."""
UPDATE_SIGNAL = "pool-update"
DOWN_SIGNAL = "pool-down"
HIDE_SIGNAL = "pool-hide"
"""Out of the web UI's list of jobs: the client sends it to a pool started before pools carried
the internal namespace division (models.search_attributes.DIVISION; docs/temporal-ui.md)."""
STATE_QUERY = "pool-state"
POOLS_PATCH = "pools"
"""The patch of the job workflow's pool branch (JobSpec.pool set): jobs without a pool never take it."""

MAX_WORKERS = 1000
"""The most workers one pool may have (a bound on every input)."""
MAX_QUEUED = 20_000
"""The most jobs one pool queues: the queue is carried through continue-as-new (~90 bytes a job
in JSON, ~0.8 kB in the worker's memory), and 20,000 keep that input under Temporal's 2 MB
payload limit. A job past it is refused (FAILED_PRECHECKS "pool ... is full")."""
NAME_PATTERN = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
"""A pool's name: what SkyPilot accepts for a cluster's, and safe in a workflow id."""
DOWN_CANCEL = "cancel"
DOWN_DRAIN = "drain"


def pool_workflow_id(name: str) -> str:
    """The id of pool `name`'s workflow."""
    return f"spotctl-pool-{name}"


def valid_pool_name(name: str) -> bool:
    return isinstance(name, str) and re.fullmatch(NAME_PATTERN, name) is not None


class PoolRequest(BaseModel):
    """A job asks for a worker; `seq` (its attempt number) tells a stale grant or release apart."""

    job_id: int
    seq: int
    priority: int = DEFAULT_PRIORITY
    submitted_at: datetime

    def order_key(self) -> tuple[int, datetime, int]:
        """Higher priority first, then the oldest job, then the lower id."""
        return (-self.priority, self.submitted_at, self.job_id)


class PoolRelease(BaseModel):
    """A job gives its worker back (or withdraws its request); `lost`: the worker died under it."""

    job_id: int
    seq: int
    lost: bool = False


class WorkerGrant(BaseModel):
    """The pool hands a worker to a job's request `seq`."""

    seq: int
    worker: str
    """The worker's cluster name (what `status` and `debug preempt` show)."""
    cluster: ClusterHandle | None = None
    refused: str | None = None
    """Set instead of a worker when the pool will not serve the job (it is going down, or full)."""


class PoolWorker(BaseModel):
    """One worker as the pool knows it."""

    slot: int
    """Its number in the pool: the `attempt` of its cluster name (spotctl-<pool id>-<slot>)."""
    phase: str = "provisioning"
    """provisioning | setting-up | idle | busy | lost | stopping (being torn down)."""
    cluster: ClusterHandle | None = None
    job_id: int | None = None
    job_seq: int = 0
    launched_at: datetime
    """When its cluster was asked for (its bill starts here)."""
    idle_since: datetime | None = None
    detail: str | None = None

    @property
    def name(self) -> str:
        return self.cluster.cluster_name if self.cluster else f"slot {self.slot}"


class PoolSpec(BaseModel):
    """A pool as `pool apply` made it: the workers' task (setup, file mounts, resources as
    candidates; its `run` unused) and the worker counts. `job.job_id` is the pool's number
    (from the job-id allocator): its workers' clusters are named and tagged with it."""

    name: str
    job: JobSpec
    min_workers: int = Field(ge=0, le=MAX_WORKERS)
    max_workers: int = Field(ge=1, le=MAX_WORKERS)
    idle_timeout_s: float = 60.0
    """How long a worker above min_workers stays idle before it is torn down."""
    probe_s: float = 60.0
    """How often the cloud is asked whether the idle workers are still alive (nobody else watches them)."""
    continue_as_new_after_events: int = 10_000
    carried: PoolCarried | None = None
    config: dict[str, str] = Field(default_factory=dict)
    """A digest of each part of the pool file its workers are made from (setup, resources,
    file_mounts, workdir, envs, secrets; launch/pools.py pool_config): `pool apply` on the
    running pool compares it, to refuse a change it would otherwise ignore. Empty: a pool made
    before it was recorded."""


class PoolCarried(BaseModel):
    """What a pool's run hands to the next (continue-as-new)."""

    workers: list[PoolWorker]
    queue: list[PoolRequest]
    next_slot: int
    spend: float
    """The cost of workers already gone."""
    blocked_regions: dict[str, datetime] = Field(default_factory=dict)
    down: str | None = None


class PoolState(BaseModel):
    """What `pool status` shows."""

    name: str
    pool_id: int
    status: str
    """READY (every wanted worker is up) | SCALING | DRAINING | CANCELLING | DOWN."""
    min_workers: int
    max_workers: int
    resources: str
    instance_types: list[str] = Field(default_factory=list)
    """Every instance type a worker may have (its candidates'): what a job on the pool must fit."""
    workers: list[PoolWorker]
    queued: int
    queued_jobs: list[int] = Field(default_factory=list)
    """The first few waiting jobs, in the order they will be served."""
    spend: float
    """USD so far: workers gone plus the running ones' bill up to `now`."""
    now: datetime
    detail: str | None = None
    config: dict[str, str] = Field(default_factory=dict)
    """PoolSpec.config: what the workers were made from."""


PoolSpec.model_rebuild()
