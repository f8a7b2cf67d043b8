"""What `spotctl pool apply` and `launch -p POOL` check before anything exists (CLI side).

A pool file is SkyPilot's: a task YAML with a `pool:` section (`workers: N`, or since
SkyPilot v0.12 `min_workers`/`max_workers` for a pool that scales with its queue) and no
`run` (a pool only provisions and sets up its workers). Everything else (resources, setup,
workdir, file_mounts, envs) is planned as a job's task is. A job for a pool must fit its
workers: one node, and resources that the workers' instance type satisfies.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from spotctl.config import Settings
from spotctl.launch.planning import Overrides, Plan, plan, task_problems
from spotctl.models.pool import MAX_QUEUED, MAX_WORKERS
from spotctl.task import TaskError
from spotctl.task.errors import combined

POOL_KEYS = {"workers", "min_workers", "max_workers", "queue_length_threshold", "upscale_delay_seconds",
             "downscale_delay_seconds", "spot_placer"}
"""Every key of SkyPilot's `pool:` schema (sky/utils/schemas.py; `spot_placer` in its newest
releases): a SkyPilot pool file is accepted whole. The last four are SkyPilot's autoscaler's:
`downscale_delay_seconds` is spotctl's idle timeout; the others are parsed, checked and ignored
with a warning (the pool scales to its busy plus waiting jobs at once, places workers by the
job's own rules)."""
MAX_DELAY_S = 7 * 86400
"""The longest `upscale_delay_seconds` / `downscale_delay_seconds` (as `--idle-timeout`'s bound)."""
IGNORED = {
    "queue_length_threshold": "spotctl scales a pool to its busy plus waiting jobs at once",
    "upscale_delay_seconds": "spotctl adds a worker as soon as a job waits",
    "spot_placer": "spotctl places workers by the task's own placement and recovery rules",
}


@dataclass
class PoolPlan:
    plan: Plan
    min_workers: int
    max_workers: int
    idle_timeout_s: float | None = None
    """The file's `downscale_delay_seconds` (None: not given)."""


def _count(section: dict, key: str, path: str, lowest: int) -> int | None:
    value = section.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not lowest <= value <= MAX_WORKERS:
        raise TaskError(f"must be a whole number from {lowest} to {MAX_WORKERS}, not {value!r}", path=path,
                        field=f"pool.{key}")
    return value


def _delay(section: dict, key: str, path: str) -> float | None:
    value = section.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= MAX_DELAY_S:
        raise TaskError(f"must be a number of seconds from 0 to {MAX_DELAY_S}, not {value!r}", path=path,
                        field=f"pool.{key}")
    return float(value)


def autoscaler_keys(section: dict, path: str) -> tuple[float | None, list[str]]:
    """SkyPilot's autoscaler keys of a `pool:` section, checked as SkyPilot's schema types them:
    (downscale_delay_seconds, one warning per key spotctl ignores). A bad value raises TaskError."""
    threshold = section.get("queue_length_threshold")
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, int)
                                  or not 1 <= threshold <= MAX_QUEUED):
        raise TaskError(f"must be a whole number from 1 to {MAX_QUEUED}, not {threshold!r}", path=path,
                        field="pool.queue_length_threshold")
    _delay(section, "upscale_delay_seconds", path)
    placer = section.get("spot_placer")
    if placer is not None and (not isinstance(placer, str) or not placer or len(placer) > 64):
        raise TaskError(f"must be a placer's name, not {str(placer)[:64]!r}", path=path, field="pool.spot_placer")
    warnings = [f"pool.{key}: ignored ({why})" for key, why in IGNORED.items() if section.get(key) is not None]
    return _delay(section, "downscale_delay_seconds", path), warnings


def worker_counts(section: object, path: str) -> tuple[int, int]:
    """(min_workers, max_workers) of a `pool:` section; `workers: N` is a fixed size N."""
    if not isinstance(section, dict) or not section:
        raise TaskError("a pool file needs a `pool:` section with `workers: N` (or min_workers/max_workers)",
                        path=path, field="pool")
    unknown = sorted(set(section) - POOL_KEYS)
    if unknown:
        raise TaskError(f"unknown key {unknown[0]!r} (known: {', '.join(sorted(POOL_KEYS))})", path=path,
                        field=f"pool.{unknown[0]}")
    workers = _count(section, "workers", path, 1)
    low, high = _count(section, "min_workers", path, 0), _count(section, "max_workers", path, 1)
    if workers is not None:
        if low is not None or high is not None:
            raise TaskError("give either `workers` or `min_workers`/`max_workers`, not both", path=path,
                            field="pool.workers")
        return workers, workers
    if high is None:
        what = "`max_workers` is needed with `min_workers`" if low is not None else \
            "a pool file needs `workers: N` (or min_workers/max_workers)"
        raise TaskError(what, path=path, field="pool.max_workers")
    low = low if low is not None else 0
    if low > high:
        raise TaskError(f"min_workers ({low}) is more than max_workers ({high})", path=path, field="pool.min_workers")
    return low, high


CONFIG_KEYS = ("setup", "resources", "file_mounts", "workdir", "envs", "secrets")
"""The parts of a pool file its workers are made from: a change to any of them needs new workers."""


def pool_config(p: Plan) -> dict[str, str]:
    """A short digest of each of CONFIG_KEYS as the pool file gives it (not of a workdir's or a
    local file mount's contents: those are staged anew only by a new pool)."""
    dumped = p.task.model_dump(mode="json", include=set(CONFIG_KEYS))
    return {k: hashlib.sha256(json.dumps(dumped.get(k), sort_keys=True).encode()).hexdigest()[:16]
            for k in CONFIG_KEYS}


def config_changes(running: dict[str, str], planned: dict[str, str]) -> list[str]:
    """The parts of the pool file that differ from what the running pool was made from (none
    when the running pool recorded nothing: made before it did)."""
    if not running:
        return []
    return [k for k in CONFIG_KEYS if running.get(k) != planned.get(k)]


def plan_pool(path: str, settings: Settings) -> PoolPlan:
    """The pool file's plan and worker counts; raises TaskError (exit 2), creates nothing."""
    p = plan(path, Overrides(), settings)
    if p.is_pipeline:
        raise TaskError("a pool file holds one task, not a pipeline", path=path)
    if p.task.run and p.task.run.strip():
        raise TaskError("a pool file may not have a `run` section (jobs bring their own: `spotctl launch -p POOL`)",
                        path=path, field="run")
    if p.task.num_nodes != 1:
        raise TaskError("pool workers have one node each", path=path, field="num_nodes")
    low, high = worker_counts(p.task.pool, path)
    assert isinstance(p.task.pool, dict)
    idle_timeout, ignored = autoscaler_keys(p.task.pool, path)
    problems = [e for e in task_problems(p.pipeline, settings) if e.field != "run"]
    if problems:
        raise combined(problems)
    p.unsupported = [u for u in p.unsupported if not u.startswith("pool:")] + ignored
    return PoolPlan(plan=p, min_workers=low, max_workers=high, idle_timeout_s=idle_timeout)


def fits_pool(job: Plan, worker_types: set[str], pool: str) -> None:
    """A job on a pool runs on one of its workers as they are: raise TaskError (exit 2) when it
    cannot. Its resources must be met by every instance type a worker may have (SkyPilot:
    "should match those used in the pool YAML"); a job that names none fits any worker."""
    if job.is_pipeline:
        raise TaskError(f"a pipeline cannot run on pool {pool!r}: launch its tasks one by one")
    if job.task.num_nodes != 1:
        raise TaskError(f"pool {pool!r} has single-node workers; the job wants num_nodes: {job.task.num_nodes}",
                        field="num_nodes")
    if "resources" not in job.task.model_fields_set:
        return
    if not worker_types <= {c.instance_type for c in job.candidates}:
        raise TaskError(f"the workers of pool {pool!r} ({', '.join(sorted(worker_types))}) cannot serve this job's "
                        f"resources ({job.resources})", field="resources")
