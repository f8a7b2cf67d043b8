"""From a task file and the command line's overrides to a launchable JobSpec.

Everything `spotctl launch` decides before anything starts lives here: overrides applied,
input validated, placement candidates ranked from the enabled clouds' offerings. A problem
is a TaskError (exit code 2 in the CLI) and nothing is created.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import yaml

from spotctl.clouds.base import CloudError
from spotctl.clouds.registry import get_cloud
from spotctl.config import Settings
from spotctl.models import Candidate, JobSpec, Offering, ResourceRequest
from spotctl.policy.placement import rank_candidates
from spotctl.task import (
    Pipeline,
    Task,
    TaskError,
    load_task_file,
    parse_env_assignment,
    parse_task_text,
    validate_for_launch,
)

LOCAL_LAUNCH_RETRY_S = 2.0
"""The local cloud frees capacity in seconds, so its launch retries start sooner."""


@dataclass
class Overrides:
    name: str | None = None
    cloud: str | None = None
    region: str | None = None
    gpus: str | None = None
    cpus: str | None = None
    envs: list[str] = field(default_factory=list)


@dataclass
class Plan:
    task: Task
    pipeline: Pipeline
    name: str
    requests: list[ResourceRequest]
    candidates: list[Candidate]
    envs: dict[str, str]
    unsupported: list[str]
    resources: str

    def to_spec(self, job_id: int) -> JobSpec:
        t = self.task
        return JobSpec(
            job_id=job_id,
            name=self.name,
            run=t.run or "",
            setup=t.setup,
            envs=self.envs,
            workdir=_resolve_workdir(t),
            num_nodes=t.num_nodes,
            resources=self.resources,
            candidates=self.candidates,
            recovery=t.recovery(),
            submitted_at=datetime.now(UTC),
            launch_retry_initial_s=LOCAL_LAUNCH_RETRY_S
            if all(c.cloud == "local" for c in self.candidates)
            else 10.0,
        )


def load(target: str) -> Pipeline:
    """A task file, or an inline command (`spotctl launch 'python train.py'`)."""
    path = Path(target).expanduser()
    if path.is_file():
        return load_task_file(path)
    if target.endswith((".yaml", ".yml")) or os.sep in target and not any(ch.isspace() for ch in target):
        raise TaskError(path=target, line=None, field=None, message="no such file")
    return parse_task_text(yaml.safe_dump({"run": target}), source="<command line>", base_dir=Path.cwd())


def _parse_count(text: str, what: str) -> tuple[float, bool]:
    raw = text.strip()
    at_least = raw.endswith("+")
    try:
        return float(raw.rstrip("+")), at_least
    except ValueError:
        raise TaskError(path=None, line=None, field=f"--{what}", message=f"expected a number like 4 or 4+, got {text!r}") from None


def _parse_gpus(text: str) -> dict[str, float]:
    name, _, count = text.partition(":")
    try:
        return {name.strip(): float(count) if count else 1.0}
    except ValueError:
        raise TaskError(path=None, line=None, field="--gpus", message=f"expected NAME or NAME:COUNT like V100:2, got {text!r}") from None


def apply_overrides(requests: list[ResourceRequest], o: Overrides) -> list[ResourceRequest]:
    changes: dict = {}
    if o.cloud:
        changes["cloud"] = o.cloud.lower()
    if o.region:
        changes["region"] = o.region
    if o.gpus:
        changes["accelerators"] = _parse_gpus(o.gpus)
    if o.cpus:
        changes["cpus"], changes["cpus_at_least"] = _parse_count(o.cpus, "cpus")
    return [r.model_copy(update=changes) for r in requests]


def offerings(settings: Settings, clouds: list[str] | None = None) -> list[Offering]:
    result: list[Offering] = []
    for name in clouds or settings.clouds:
        try:
            result += get_cloud(name, settings).offerings()
        except CloudError as exc:
            raise TaskError(path=None, line=None, field="resources.cloud", message=str(exc)) from None
    return result


def plan(target: str, overrides: Overrides, settings: Settings) -> Plan:
    """Parse, override, validate and place. Raises TaskError; creates nothing."""
    pipeline = load(target)
    if not pipeline.tasks:
        raise TaskError(path=target, line=None, field=None, message="the file holds no task")
    task = pipeline.tasks[0]
    envs: dict[str, str | None] = dict(task.envs)
    for assignment in overrides.envs:
        key, value = parse_env_assignment(assignment)
        envs[key] = value
    task = task.model_copy(update={"envs": envs})
    if overrides.cloud and overrides.cloud.lower() not in settings.clouds:
        raise TaskError(path=None, line=None, field="--cloud",
                        message=f"cloud {overrides.cloud!r} is not enabled (enabled: {', '.join(settings.clouds)})")
    requests = apply_overrides(task.resource_requests(), overrides)
    wanted_clouds = {r.cloud for r in requests if r.cloud}
    for cloud in wanted_clouds:
        if cloud not in settings.clouds:
            raise TaskError(path=task.source_path, line=None, field="resources.cloud",
                            message=f"cloud {cloud!r} is not enabled (enabled: {', '.join(settings.clouds)})")
    candidates = rank_candidates(offerings(settings), requests, ordered=task.ordered)
    if not candidates:
        wanted = "; ".join(r.describe() for r in requests)
        raise TaskError(path=task.source_path, line=None, field="resources",
                        message=f"no enabled cloud ({', '.join(settings.clouds)}) offers {wanted}")
    unsupported = list(task.unsupported())
    if pipeline.is_pipeline:
        unsupported.insert(0, f"pipeline of {len(pipeline.tasks)} tasks: not supported yet (only one task can run)")
    name = overrides.name or task.name or pipeline.name or "job"
    first = requests[0] if requests else ResourceRequest()
    return Plan(task=task, pipeline=pipeline, name=name, requests=requests, candidates=candidates,
                envs={k: v for k, v in envs.items() if v is not None}, unsupported=unsupported,
                resources=f"{task.num_nodes}x{first.describe()}")


def check_launchable(p: Plan) -> None:
    """The checks that only matter when something will really run."""
    if p.pipeline.is_pipeline:
        raise TaskError(path=p.task.source_path, line=None, field=None,
                        message=f"this file is a pipeline of {len(p.pipeline.tasks)} tasks; pipelines are not supported yet")
    validate_for_launch(p.task)


def _resolve_workdir(task: Task) -> str | None:
    workdir = task.resolved_workdir()
    return str(Path(workdir).expanduser().resolve()) if workdir else None
