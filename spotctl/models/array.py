"""A job array (`launch --num-jobs N`): what its submitter workflow is given, and how each of
its jobs is made from the one template the CLI staged and planned (docs/many-jobs.md).

The N jobs differ only in their id (first_id + rank), SkyPilot's SKYPILOT_JOB_RANK and
SKYPILOT_NUM_JOBS in their environment, and `array`; everything else (the plan, the staged
workdir, the name) is the template's, made once for the whole array.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from spotctl.models.spec import ArrayRank, JobSpec

MAX_ARRAY_JOBS = 10_000
"""The most jobs one `launch --num-jobs` makes: SkyPilot states no bound; 10,000 is the size
issue 25's benchmark asks for, submitted in seconds (ids in one block, starts in batches),
and one `cancel --array` of it stays a few thousand signals a second. Past it: launch again."""
ARRAY_BATCH = 500
"""Jobs one submitter activity starts (20 activities for 10,000: a short history, and a
retried batch redoes at most this many no-op starts)."""
RANK_ENV = "SKYPILOT_JOB_RANK"
COUNT_ENV = "SKYPILOT_NUM_JOBS"
ARRAY_WORKFLOW = "JobArray"
"""The submitter's registered workflow type."""


def array_workflow_id(first_id: int) -> str:
    """The submitter of the array whose first job is `first_id`: one per array, so a second
    start of it (a retried launch) finds the first."""
    return f"spotctl-array-{first_id}"


def array_first_id(workflow_id: str) -> int | None:
    """The first job id an array's submitter is named by (array_workflow_id), or None for any
    other workflow id (a second submitter run over the same array under another id covers the
    same block, and is skipped by whoever lists arrays)."""
    prefix = array_workflow_id(0)[:-1]
    tail = workflow_id.removeprefix(prefix)
    return int(tail) if tail != workflow_id and tail.isdigit() else None


class ArraySpec(BaseModel):
    """What the array's submitter (workflows/job_array.py) needs; fixed at launch."""

    first_id: int
    count: int
    template: JobSpec
    """The job every rank is made from (job_id = first_id, no `array`, no ephemeral buckets:
    those are the array's, deleted by the submitter once every job has ended)."""
    ephemeral_buckets: list[str] = Field(default_factory=list)
    batch: int = ARRAY_BATCH


class ArrayBatch(BaseModel):
    """One submitter activity: start ranks start..end-1 (each a no-op when it exists)."""

    spec: ArraySpec
    start: int
    end: int


class ArrayEnd(BaseModel):
    """The submitter's last activity's input: wait until the started jobs have all ended,
    then delete the array's staged files."""

    first_id: int
    started: int
    ephemeral_buckets: list[str] = Field(default_factory=list)


def array_job(spec: ArraySpec, rank: int) -> JobSpec:
    """Rank `rank`'s job: the template with its own id, rank and count."""
    t = spec.template
    envs = {**t.envs, RANK_ENV: str(rank), COUNT_ENV: str(spec.count)}
    return t.model_copy(update={
        "job_id": spec.first_id + rank, "envs": envs, "ephemeral_buckets": [],
        "array": ArrayRank(rank=rank, count=spec.count, first_id=spec.first_id),
    })
