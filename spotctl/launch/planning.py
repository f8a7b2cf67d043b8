"""From a task file and the command line's overrides to a launchable JobSpec.

Everything `spotctl launch` decides before anything starts lives here: overrides applied,
input validated, placement candidates ranked from the enabled clouds' offerings. A problem
is a TaskError (exit code 2 in the CLI) and nothing is created.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from spotctl.clouds.base import CloudError
from spotctl.clouds.registry import get_cloud, why_unusable
from spotctl.config import Settings
from spotctl.launch.deadline import resolve_deadline
from spotctl.launch.overrides import (
    Overrides,
    apply_overrides,
    assignments,
    check_override_flags,
    checked_name,
    parse_env_file,
    parse_infra_flag,
    parse_num_nodes,
    recovery_of,
)
from spotctl.launch.staging import StagedFiles, staging_problems
from spotctl.models import (
    DEFAULT_PRIORITY,
    Candidate,
    DeadlineSpec,
    JobSpec,
    NotifySettings,
    Offering,
    PipelineSpec,
    PipelineTask,
    RecoveryConfig,
    ResourceRequest,
)
from spotctl.policy import rank_candidates
from spotctl.task import (
    MAX_FILE_BYTES,
    Pipeline,
    Task,
    TaskError,
    check_command,
    combined,
    is_special_file,
    launch_problems,
    load_task_file,
    parse_task_text,
    read_input_file,
    shown,
)

SECRET_SHOWN = "<secret>"
"""What a dry run prints instead of a secret's value."""


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
    secrets: dict[str, str] = field(default_factory=dict)
    """The task's secrets with --secret applied; only those with a value."""
    notes: list[str] = field(default_factory=list)
    """Why a cloud was left out of placement (no credentials ...), for the dry run."""
    prices: dict[tuple[str, str, str, str], tuple[float | None, float | None]] = field(default_factory=dict)
    """(cloud, region, zone, type) -> (spot, on-demand) USD/hour of every candidate's offering."""
    recovery: RecoveryConfig = field(default_factory=RecoveryConfig)
    """The task's job_recovery with --job-recovery applied."""
    task_plans: list[Plan] = field(default_factory=list)
    """A pipeline's plan: one Plan per task, in order (this Plan is then the pipeline's: its
    name, the first task's placement for the prompt). Empty for a single task."""
    index: int = 0
    """The task's index in its pipeline."""
    launch_retry_initial_s: float = 10.0
    """The first wait before a launch is tried again: the slowest of the candidates' clouds'
    (Cloud.launch_retry_initial_s)."""
    deadline: DeadlineSpec | None = None
    """The task's deadline with the flags applied (None: none)."""
    ondemand_candidates: list[Candidate] = field(default_factory=list)
    """A deadline job's on-demand candidates, ranked (`candidates` are then its spot ones)."""
    ranking: str = "price"
    """How the job will order its candidates: the `fleet.ranking` setting (JobSpec.ranking)."""
    launch_retry_max_s: float = 300.0
    """The backoff's cap: the slowest of the candidates' clouds' (Cloud.launch_retry_max_s)."""
    priority: int | None = None
    """The task's `resources.priority` or `--priority` (None: the default, models.DEFAULT_PRIORITY)."""

    @property
    def is_pipeline(self) -> bool:
        return bool(self.task_plans)

    def to_pipeline_spec(self, job_id: int, staged: list[StagedFiles], notify: NotifySettings | None) -> PipelineSpec:
        """The pipeline's spec: one JobSpec per task (with its staged files), in order."""
        now = datetime.now(UTC)
        count = len(self.task_plans)
        tasks = [tp.to_spec(job_id, files, notify).model_copy(update={
            "submitted_at": now, "ephemeral_buckets": [],
            "task": PipelineTask(index=i, count=count, name=tp.name, pipeline_name=self.name)})
            for i, (tp, files) in enumerate(zip(self.task_plans, staged, strict=True))]
        return PipelineSpec(job_id=job_id, name=self.name, tasks=tasks, submitted_at=now, notify=notify,
                            ephemeral_buckets=[b for files in staged for b in files.ephemeral_buckets])

    def to_spec(self, job_id: int, staged: StagedFiles | None = None, notify: NotifySettings | None = None) -> JobSpec:
        t = self.task
        staged = staged or StagedFiles()
        return JobSpec(
            job_id=job_id,
            name=self.name,
            run=t.run or "",
            setup=t.setup,
            envs=self.envs,
            secrets=self.secrets,
            workdir=_resolve_workdir(t),
            num_nodes=t.num_nodes,
            resources=self.resources,
            candidates=self.candidates,
            ordered=t.ordered,
            recovery=self.recovery,
            submitted_at=datetime.now(UTC),
            launch_retry_initial_s=self.launch_retry_initial_s,
            launch_retry_max_s=self.launch_retry_max_s,
            workdir_mount=staged.workdir_mount,
            file_mounts=staged.file_mounts,
            ephemeral_buckets=staged.ephemeral_buckets,
            event_callback=t.callback_command,
            notify=notify,
            chat=t.chat_targets(),
            deadline=self.deadline,
            ondemand_candidates=self.ondemand_candidates,
            ranking=self.ranking,
            priority=DEFAULT_PRIORITY if self.priority is None else self.priority,
            hooks=t.lifecycle_hooks(),
        )

    def display_dump(self) -> dict[str, Any]:
        """The task as `launch --dry-run` prints it, with every secret value replaced by
        SECRET_SHOWN, also where SkyPilot's ${VAR} substitution copied it into file_mounts or
        workdir: a dry run's output ends up in terminals, CI logs and bug reports."""
        dump = self.task.model_dump(mode="json", exclude_none=True, exclude_defaults=True,
                                    exclude={"source_path"})
        if isinstance(dump.get("secrets"), dict):
            dump["secrets"] = {k: SECRET_SHOWN if v is not None else v for k, v in dump["secrets"].items()}
        webhooks = {t.webhook_url for t in self.task.chat_targets()}  # a webhook URL is a secret too
        values = sorted({v for v in self.task.secrets.values() if v} | webhooks, key=len, reverse=True)
        return _redact(dump, values)


def load(target: str, envs: dict[str, str] | None = None,
         secrets: dict[str, str] | None = None) -> Pipeline:
    """A task file, or an inline command (`spotctl launch 'python train.py'`)."""
    if _is_file(target):
        return load_task_file(Path(target).expanduser(), env_overrides=envs, secret_overrides=secrets)
    if _is_pipe(target):  # `launch <(make-task)`, `... | launch /dev/stdin`: read, bounded
        text = read_input_file(Path(target).expanduser(), target)
        return parse_task_text(text, source=target, base_dir=Path.cwd(), env_overrides=envs, secret_overrides=secrets)
    if target.endswith((".yaml", ".yml")) or os.sep in target and not any(ch.isspace() for ch in target):
        raise TaskError(path=target, line=None, field=None, message="no such file")
    try:
        check_command(target)
    except ValueError as exc:
        raise TaskError(str(exc), field="run", path="<command line>") from None
    return parse_task_text(yaml.safe_dump({"run": target}), source="<command line>", base_dir=Path.cwd(),
                           env_overrides=envs, secret_overrides=secrets)


def _is_file(target: str) -> bool:
    """Whether the argument names a file; a name the OS cannot even look up (too long, a NUL)
    is not one, so it is taken as a command."""
    if len(target) > MAX_FILE_BYTES:
        return False
    try:
        return Path(target).expanduser().is_file()
    except (OSError, ValueError, RuntimeError):
        return False


def _is_pipe(target: str) -> bool:
    """Whether the argument names a pipe or device (a shell's `<(...)`, /dev/stdin, a FIFO)."""
    try:
        return len(target) <= MAX_FILE_BYTES and is_special_file(Path(target).expanduser())
    except RuntimeError:  # ~user with no such user: not a file, a command
        return False


def offerings(settings: Settings, clouds: list[str] | None = None) -> list[Offering]:
    result: list[Offering] = []
    for name in clouds or settings.clouds:
        try:
            result += get_cloud(name, settings).offerings()
        except CloudError as exc:
            raise TaskError(path=None, line=None, field="resources.cloud", message=str(exc)) from None
    return result


def usable_clouds(settings: Settings, named: set[str], dry_run: bool) -> tuple[list[str], list[str]]:
    """The enabled clouds placement may use, and a note for each one left out.

    A cloud without credentials is left out with a note, never a traceback (a launch that has
    no candidate left stops with the notes, exit 2). A dry run keeps the candidates of a cloud
    the task or `--cloud` names: the catalog is enough to see what a job would cost."""
    usable: list[str] = []
    notes: list[str] = []
    for name in settings.clouds:
        why = why_unusable(name, settings)
        if why is None:
            usable.append(name)
        elif name in named and dry_run:
            usable.append(name)
            notes.append(f"{name}: {why}; a launch there would fail until this is fixed")
        else:
            notes.append(f"{name}: left out of placement: {why}")
    return usable, notes


def plan(target: str, overrides: Overrides, settings: Settings, *, dry_run: bool = False) -> Plan:
    """Parse, override, validate and place (every task of a pipeline, each with the command
    line's overrides, as SkyPilot applies them). Raises TaskError; creates nothing."""
    name = checked_name(overrides.name) if overrides.name else None
    check_override_flags(overrides)
    num_nodes = parse_num_nodes(overrides.num_nodes) if overrides.num_nodes is not None else None
    env_overrides = parse_env_file(overrides.env_file) if overrides.env_file else {}
    env_overrides.update(assignments(overrides.envs, "--env", overrides.environ))
    secret_overrides = assignments(overrides.secrets, "--secret", overrides.environ)
    pipeline = load(target, env_overrides, secret_overrides)
    if not pipeline.tasks:
        raise TaskError(path=target, line=None, field=None, message="the file holds no task")
    infra_cloud = parse_infra_flag(overrides.infra)[0] if overrides.infra else None
    for flag, cloud in (("--cloud", overrides.cloud), ("--infra", infra_cloud)):
        if cloud and cloud.lower() not in settings.clouds:
            raise TaskError(path=None, line=None, field=flag,
                            message=f"cloud {shown(cloud)} is not enabled (enabled: {', '.join(settings.clouds)})")
    plans: list[Plan] = []
    problems: list[TaskError] = []
    for i, task in enumerate(pipeline.tasks):
        try:
            plans.append(_plan_task(task, pipeline, overrides, settings, dry_run=dry_run, num_nodes=num_nodes))
        except TaskError as exc:
            problems.append(_in_task(exc, pipeline, i))
    if problems:  # with the launch's own checks: every problem of the file in one run
        raise combined(problems + task_problems(pipeline, settings))
    if not pipeline.is_pipeline:
        first = plans[0]
        first.name = name or first.task.name or pipeline.name or "job"
        return first
    for i, tp in enumerate(plans):
        tp.index = i
        tp.name = tp.task.name or f"task-{i}"
    top = dataclasses.replace(plans[0], task_plans=plans)
    top.name = name or pipeline.name or plans[0].task.name or "pipeline"
    return top


def _plan_task(task: Task, pipeline: Pipeline, overrides: Overrides, settings: Settings, *, dry_run: bool,
               num_nodes: int | None) -> Plan:
    """One task's plan: its resources with the overrides, ranked candidates, envs."""
    if num_nodes is not None:
        task = task.model_copy(update={"num_nodes": num_nodes})
    requests = apply_overrides(task.resource_requests(), overrides)
    recovery = recovery_of(task, overrides)
    wanted_clouds = {r.cloud for r in requests if r.cloud}
    for cloud in wanted_clouds:
        if cloud not in settings.clouds:
            raise TaskError(path=task.source_path, line=None, field="resources.cloud",
                            message=f"cloud {shown(cloud)} is not enabled (enabled: {', '.join(settings.clouds)})")
    clouds, notes = usable_clouds(settings, {c.lower() for c in wanted_clouds}, dry_run)
    offered = offerings(settings, clouds) if clouds else []
    candidates = rank_candidates(offered, requests, ordered=task.ordered)
    if not candidates and dry_run and set(clouds) != set(settings.clouds):
        # What the job would cost once the clouds that offer it can be used: the catalog is enough.
        offered = offerings(settings, list(settings.clouds))
        candidates = rank_candidates(offered, requests, ordered=task.ordered)
        if candidates:
            shown_clouds = sorted({c.cloud for c in candidates} - set(clouds))
            notes.append(f"no usable cloud offers this; shown: {', '.join(shown_clouds)} (a launch needs its "
                         "credentials first)")
    if not candidates:
        wanted = "; ".join(r.describe() for r in requests)
        why = f" ({'; '.join(notes)})" if notes else ""
        raise TaskError(path=task.source_path, line=None, field="resources",
                        message=f"no usable cloud ({', '.join(clouds) or 'none'}) offers {wanted}{why}")
    candidates = _that_can_hold(candidates, offered, task)
    deadline = resolve_deadline(task, overrides.compute_time, overrides.deadline)
    ondemand: list[Candidate] = []
    if deadline is not None:  # a deadline job needs both markets: spot first, on-demand its safety net
        ondemand = rank_candidates(offered, [r.model_copy(update={"use_spot": False}) for r in requests],
                                   ordered=task.ordered)
        if not ondemand:
            raise TaskError("a deadline needs on-demand as its safety net, and no usable cloud sells this on-demand",
                            path=task.source_path, line=task.line_at("deadline"), field="deadline")
        ondemand = _that_can_hold(ondemand, offered, task)
        candidates = [c for c in candidates if c.use_spot] or candidates
    prices = {(o.cloud, o.region, o.zone, o.instance_type): (o.spot_price, o.ondemand_price) for o in offered}
    return Plan(task=task, pipeline=pipeline, name=task.name or "job", requests=requests, candidates=candidates,
                envs={k: v for k, v in task.envs.items() if v is not None}, unsupported=list(task.unsupported()),
                resources=f"{task.num_nodes}x{resources_text(requests, candidates)}",
                secrets={k: v for k, v in task.secrets.items() if v is not None}, notes=notes,
                prices={(c.cloud, c.region, c.zone, c.instance_type): prices.get(
                    (c.cloud, c.region, c.zone, c.instance_type), (None, None)) for c in candidates + ondemand},
                deadline=deadline, ondemand_candidates=ondemand, priority=task.priority(),
                recovery=recovery, ranking=settings.fleet.ranking, launch_retry_initial_s=max(
                    get_cloud(cloud, settings).launch_retry_initial_s for cloud in {c.cloud for c in candidates}),
                launch_retry_max_s=max(
                    get_cloud(cloud, settings).launch_retry_max_s for cloud in {c.cloud for c in candidates}))


def resources_text(requests: list[ResourceRequest], candidates: list[Candidate]) -> str:
    """The requests the candidates can serve, e.g. '[V100:1] spot' (or '[A100:1] spot or
    [V100:1] spot'): an `any_of` asking for A100 or V100 where only V100 is sold shows V100,
    not the first request it can never get."""
    offered = {name.lower() for c in candidates for name in c.accelerators}
    servable = [r for r in requests if not r.accelerators or any(k.lower() in offered for k in r.accelerators)]
    shown = servable or requests[:1] or [ResourceRequest()]
    more = f" or {len(shown) - 2} more" if len(shown) > 2 else ""
    return " or ".join(r.describe() for r in shown[:2]) + more


def _that_can_hold(candidates: list[Candidate], offered: list[Offering], task: Task) -> list[Candidate]:
    """Drop candidates whose region can never hold num_nodes instances (a job there would wait
    for capacity forever); none left is a TaskError now rather than a job that never starts."""
    limit = {(o.cloud, o.region, o.zone, o.instance_type): o.max_nodes for o in offered}

    def max_nodes(c: Candidate) -> int | None:
        return limit.get((c.cloud, c.region, c.zone, c.instance_type))

    fitting = [c for c in candidates if (max_nodes(c) or task.num_nodes) >= task.num_nodes]
    if fitting:
        return fitting
    largest = max(max_nodes(c) or 0 for c in candidates)
    regions = sorted({f"{c.cloud}/{c.region}" for c in candidates})
    raise TaskError(f"{task.num_nodes} nodes never fit: the candidate regions ({', '.join(regions)}) "
                    f"hold at most {largest} instances each", path=task.source_path,
                    line=task.line_at("num_nodes"), field="num_nodes")


def check_launchable(p: Plan, settings: Settings) -> None:
    """Every check a launch makes before it creates anything (a bucket, a job id, a server):
    `launch` and `launch --dry-run` both run it, so a file the dry run passes is not refused by
    the launch, and both refuse with the same message: every problem of every task, one line
    each (the checks go on after the first problem, as a compiler's do)."""
    problems = task_problems(p.pipeline, settings, [tp.task for tp in p.task_plans or [p]])
    if problems:
        raise combined(problems)


def task_problems(pipeline: Pipeline, settings: Settings, tasks: list[Task] | None = None) -> list[TaskError]:
    """validate_for_launch's and check_staging's problems of each task (`tasks`: the pipeline's,
    with the command line's overrides applied); a pipeline's task is named in each."""
    found: list[TaskError] = []
    for i, task in enumerate(tasks or pipeline.tasks):
        problems = launch_problems(task)
        problems += staging_problems(task, settings, frozenset(e.field for e in problems if e.field))
        found += [_in_task(e, pipeline, i) for e in problems]
    return found


def _in_task(error: TaskError, pipeline: Pipeline, index: int) -> TaskError:
    """`error` naming the pipeline task it is about (its index, as `logs --task` takes it, and
    its name), and without a line of its own (a missing `run`) the line its document starts at."""
    if not pipeline.is_pipeline or not error.field or error.field.startswith("task "):
        return error
    task = pipeline.tasks[index]
    named = f"task {index}" + (f" ({task.name})" if task.name else "")
    return TaskError(error.message, path=error.path, line=error.line or task.line_at(),
                     field=f"{named}: {error.field}", hint=error.hint)


def _resolve_workdir(task: Task) -> str | None:
    workdir = task.resolved_workdir()
    return str(Path(workdir).expanduser().resolve()) if workdir else None


def _redact(value: Any, secrets: list[str]) -> Any:
    """`value` with every occurrence of a secret value in its strings replaced."""
    if not secrets:
        return value
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, SECRET_SHOWN)
        return value
    if isinstance(value, dict):
        return {_redact(k, secrets): _redact(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v, secrets) for v in value]
    return value
