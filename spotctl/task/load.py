"""The task YAML: SkyPilot's format, read faithfully, explained clearly when it is wrong.

spotctl promises that a SkyPilot task file runs unchanged, so the accepted keys are exactly those of
SkyPilot's `sky/utils/schemas.py` (task, resources, storage and job_recovery schemas, including
older and private keys). A key SkyPilot accepts is never refused; keys spotctl does not act on yet
are kept and named by `Task.unsupported()` so the CLI can warn instead of silently ignoring them.

Parsing runs in three steps, each with file/line-aware errors (see `task_errors`) and within the
bounds of `task_limits`, so hostile input is one TaskError, never a hang or a traceback:
1. read and compose the YAML documents within limits, remembering the line of every key
   (`task_yaml`);
2. a structural pass over the plain data (`task_document`): unknown keys (with did-you-mean),
   env coercion, --env/--secret overrides, `${VAR}` substitution into file_mounts/workdir as
   SkyPilot does, mount targets kept inside their root;
3. the pydantic models of `task_models` for types and values (`task_values` parses and bounds
   SkyPilot's small value languages); their errors become one sentence about one field.

This module adds what the rest of spotctl uses: the Task's normalised views, loading, and the
checks that matter only at launch.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, PrivateAttr, ValidationError

from spotctl.models import MAX_CALLBACK_ENV_BYTES, ChatTarget, FileMount, RecoveryConfig, ResourceRequest
from spotctl.models.spec import HOOK_EVENTS, LifecycleHook
from spotctl.task.document import ENV_KEY, check_document, check_numbers
from spotctl.task.errors import LineMap, TaskError, combined, format_field, line_of, validation_error
from spotctl.task.limits import DEFAULT_HOOK_TIMEOUT_S
from spotctl.task.schema import (
    FileMountSpec,
    JobRecoverySpec,
    ResourceSpec,
    TaskResources,
    TaskSpec,
    WorkdirSpec,
)
from spotctl.task.values import (
    check_name,
    describe_value,
    is_url,
    parse_accelerators,
    parse_amount,
    parse_infra,
    parse_size_gb,
)
from spotctl.task.yaml_reader import check_text, load_documents, read_text

__all__ = [
    "FileMountSpec",
    "JobRecoverySpec",
    "Pipeline",
    "ResourceSpec",
    "Task",
    "TaskError",
    "TaskResources",
    "WorkdirSpec",
    "launch_problems",
    "load_task_file",
    "parse_env_assignment",
    "parse_task_text",
    "validate_for_launch",
]


SUPPORTED_RESOURCE_FIELDS = frozenset({
    "cloud", "region", "zone", "infra", "instance_type", "accelerators", "cpus", "memory",
    "use_spot", "job_recovery", "spot_recovery", "any_of", "ordered", "priority",
})
_LOCATION_FIELDS = ("cloud", "region", "zone", "infra")
DEFAULT_STRATEGY = "EAGER_NEXT_REGION"


class Task(TaskSpec):
    """One task document. Every SkyPilot task key is accepted; see `unsupported()`."""

    source_path: str | None = Field(None, exclude=True)
    """The file this task came from; errors found later (validate_for_launch) name it."""

    _base_dir: Path | None = PrivateAttr(None)
    _lines: LineMap = PrivateAttr(default_factory=dict)

    def line_at(self, *path: str | int) -> int | None:
        """The line of the task file the key or item at `path` starts at (`line_at()`: the
        document's first line), for errors found after parsing; None where unknown."""
        return self._lines.get(path)

    # -- normalised views -------------------------------------------------------------------

    def _alternatives(self) -> list[ResourceSpec]:
        return list(self.resources.any_of or self.resources.ordered or [])

    def resource_requests(self) -> list[ResourceRequest]:
        """Every acceptable machine shape, in preference order when `ordered`."""
        base = {k: getattr(self.resources, k) for k in ResourceSpec.model_fields}
        out: list[ResourceRequest] = []
        alternatives: list[ResourceSpec | None] = [*self._alternatives()] or [None]
        for alt in alternatives:
            merged = dict(base)
            if alt is not None:
                given = {k: getattr(alt, k) for k in alt.model_fields_set}
                merged.update(_merge_location(merged, given))
                merged.update({k: v for k, v in given.items() if k not in _LOCATION_FIELDS})
            out.extend(_requests(merged))
        return out

    def priority(self) -> int | None:
        """SkyPilot's `resources.priority` (the first given, in resources then its alternatives,
        as SkyPilot takes the first resource's); None when the task gives none."""
        return next((r.priority for r in [self.resources, *self._alternatives()] if r.priority is not None), None)

    @property
    def ordered(self) -> bool:
        """True when candidates must be tried in the written order (resources.ordered, or
        accelerators given as a list)."""
        accel_lists = [self.resources.accelerators] + [a.accelerators for a in self._alternatives()]
        return bool(self.resources.ordered) or any(
            parse_accelerators(a)[1] for a in accel_lists if a is not None
        )

    def recovery(self) -> RecoveryConfig:
        """job_recovery (or its old name spot_recovery), from resources or the first alternative
        that has one; EAGER_NEXT_REGION by default, as SkyPilot."""
        spec: str | JobRecoverySpec | None = None
        for res in [self.resources, *self._alternatives()]:
            spec = res.job_recovery or res.spot_recovery
            if spec is not None:
                break
        if spec is None:
            return RecoveryConfig(strategy=DEFAULT_STRATEGY)
        if isinstance(spec, str):
            return RecoveryConfig(strategy=spec)
        return RecoveryConfig(
            strategy=spec.strategy or DEFAULT_STRATEGY,
            max_restarts_on_errors=spec.max_restarts_on_errors,
            recover_on_exit_codes=list(spec.recover_on_exit_codes),
            max_wait_s=spec.max_wait,
        )

    @property
    def callback_command(self) -> str | None:
        """`event_callback:` as a bash command (None when absent, or given as chat targets)."""
        return self.event_callback if isinstance(self.event_callback, str) else None

    def chat_targets(self) -> list[ChatTarget]:
        """`event_callback:` as SkyPilot's list of Slack and Discord targets, in order."""
        if not isinstance(self.event_callback, list):
            return []
        return [t for entry in self.event_callback for t in entry.targets()]

    def lifecycle_hooks(self) -> list[LifecycleHook]:
        """`config.hooks`, in declaration order, with SkyPilot's defaults filled in; then the older
        `resources.autostop.hook` as SkyPilot routes it (a `down` hook with autodown, else a
        `stop` one). What spotctl runs of them: docs/task-yaml.md."""
        hooks = [LifecycleHook(run=h.run, events=list(h.events or HOOK_EVENTS),
                               timeout_s=float(h.timeout or DEFAULT_HOOK_TIMEOUT_S))
                 for h in (self.config.hooks or [] if self.config else [])]
        legacy = self._autostop_hook()
        if legacy is not None:
            hooks.append(legacy)
        return hooks

    def _autostop_hook(self) -> LifecycleHook | None:
        for res in [self.resources, *self._alternatives()]:
            auto = res.autostop
            if isinstance(auto, dict) and isinstance(auto.get("hook"), str):
                return LifecycleHook(run=auto["hook"], events=["down" if auto.get("down") else "stop"],
                                     timeout_s=float(auto.get("hook_timeout") or DEFAULT_HOOK_TIMEOUT_S))
        return None

    def local_path(self, path: str) -> str:
        """A local path from the YAML, relative ones resolved against the directory `spotctl
        launch` runs in (as `sky launch` does, not the YAML's); `~` is left for the caller to
        expand where the path is used."""
        if is_url(path) or path.startswith("~") or os.path.isabs(path) or self._base_dir is None:
            return path
        return str(self._base_dir / path)

    def resolved_workdir(self) -> str | None:
        """The local workdir, resolved (None when absent or a git repository)."""
        return self.local_path(self.workdir) if isinstance(self.workdir, str) else None

    def file_mount_list(self) -> list[FileMount]:
        """One FileMount per target: plain 'target: path' copies; dict form keeps the bucket."""
        mounts: list[FileMount] = []
        for target, spec in self.file_mounts.items():
            if isinstance(spec, str):
                mounts.append(FileMount(target=target, source=self.local_path(spec), mode="COPY"))
                continue
            source = spec.source[0] if isinstance(spec.source, list) else spec.source
            mounts.append(FileMount(
                target=target, source=self.local_path(source) if source else None,
                bucket=spec.name or None, store=spec.store, mode=spec.mode,
                persistent=spec.persistent,
            ))
        return mounts

    def unsupported(self) -> list[str]:
        """One line per field that was given but that spotctl does not act on yet."""
        notes: list[str] = []
        for key in ("service", "pool", "managed_secrets", "inputs", "outputs",
                    "file_mounts_mapping", "experimental", "volumes", "volume_mounts",
                    "api_server_access"):
            if _given(getattr(self, key)):
                notes.append(f"{key}: not supported yet")
        for name, value in (self.config.model_extra or {}).items() if self.config else ():
            if _given(value):
                notes.append(f"config.{name}: not supported yet")
        notes += self._hook_notes()
        if isinstance(self.workdir, WorkdirSpec):
            notes.append("workdir: a git repository (url) is not supported yet")
        places = [("resources", self.resources)] + [
            (format_field(("resources", "any_of" if self.resources.any_of else "ordered", i)), a)
            for i, a in enumerate(self._alternatives())]
        for where, res in places:
            for name in sorted(res.model_fields_set - SUPPORTED_RESOURCE_FIELDS):
                if _given(getattr(res, name)):
                    notes.append(f"{where}.{_alias(res, name)}: not supported yet")
            for rec_key in ("job_recovery", "spot_recovery"):
                rec = getattr(res, rec_key)
                for extra in (rec.model_extra or {}) if isinstance(rec, JobRecoverySpec) else {}:
                    notes.append(f"{where}.{rec_key}.{extra}: not supported (plugin setting)")
        for target, spec in self.file_mounts.items():
            if isinstance(spec, FileMountSpec):
                keep = {"name", "source", "store", "mode", "persistent"}
                for name in sorted(spec.model_fields_set - keep):
                    if _given(getattr(spec, name)):
                        notes.append(f"file_mounts.{target}.{_alias(spec, name)}: not supported yet")
                if isinstance(spec.source, list) and len(spec.source) > 1:
                    notes.append(f"file_mounts.{target}.source: several sources in one mount "
                                 "are not supported yet")
        return notes


    def _hook_notes(self) -> list[str]:
        """A hook whose events include stop or down: a managed job's cluster is never stopped,
        and spotctl runs no hook at its teardown (only preemption hooks run)."""
        notes = []
        written = [(format_field(("config", "hooks", i)), h) for i, h in
                   enumerate(self.config.hooks or [] if self.config else [])]
        legacy = self._autostop_hook()
        hooks: list[tuple[str, list[str]]] = [(where, list(h.events or HOOK_EVENTS)) for where, h in written]
        hooks += [("resources.autostop.hook", legacy.events)] if legacy is not None else []
        for where, events in hooks:
            ignored = [e for e in events if e != "preemption"]
            if ignored:
                runs = "it runs on a preemption notice only" if "preemption" in events else "it never runs"
                notes.append(f"{where}: events {', '.join(ignored)} do not happen to a managed job in spotctl "
                             f"({runs}; see docs/task-yaml.md)")
        return notes


class Pipeline(BaseModel):
    """What a task file holds: one task, or a SkyPilot pipeline (a chain of tasks)."""

    name: str | None = None
    tasks: list[Task]

    @property
    def is_pipeline(self) -> bool:
        return len(self.tasks) > 1


# -- helpers for the views ------------------------------------------------------------------


def _given(value: Any) -> bool:
    return value is not None and value is not False and value != {} and value != []


def _alias(model: BaseModel, name: str) -> str:
    return type(model).model_fields[name].alias or name


def _merge_location(base: dict[str, Any], alt: dict[str, Any]) -> dict[str, Any]:
    """An alternative's location overrides the base one level by level: a new cloud drops the
    base region and zone, a new region drops the zone; `infra` replaces everything."""
    if "infra" in alt:
        return {"infra": alt["infra"], "cloud": None, "region": None, "zone": None}
    cloud, region, zone = (parse_infra(base["infra"]) if base["infra"]
                           else (base["cloud"], base["region"], base["zone"]))
    if "cloud" in alt:
        cloud, region, zone = alt["cloud"], None, None
    if "region" in alt:
        region, zone = alt["region"], None
    if "zone" in alt:
        zone = alt["zone"]
    return {"infra": None, "cloud": cloud, "region": region, "zone": zone}


def _requests(m: dict[str, Any]) -> list[ResourceRequest]:
    """ResourceRequests for one merged set of resources: one per accelerator alternative."""
    cloud, region, zone = m["cloud"], m["region"], m["zone"]
    if m["infra"]:
        cloud, region, zone = parse_infra(m["infra"])
    cpus, cpus_plus = parse_amount(m["cpus"], "cpus") if m["cpus"] is not None else (None, False)
    mem, mem_plus = (parse_amount(m["memory"], "memory") if m["memory"] is not None
                     else (None, False))
    image = m["image_id"]
    if isinstance(image, dict):
        image = image.get(region) if region else None
    disk = parse_size_gb(m["disk_size"]) if m["disk_size"] is not None else None
    common = dict(
        cloud=cloud.lower() if cloud else None, region=region, zone=zone,
        instance_type=m["instance_type"], cpus=cpus, cpus_at_least=cpus_plus, memory_gb=mem,
        memory_at_least=mem_plus, use_spot=True if m["use_spot"] is None else m["use_spot"],
        disk_size_gb=int(disk) if disk is not None else None, image_id=image,
    )
    alternatives, _ = parse_accelerators(m["accelerators"])
    choices: list[dict[str, float] | None] = [*alternatives] if alternatives else [None]
    return [ResourceRequest(accelerators=acc, **common) for acc in choices]


# -- loading --------------------------------------------------------------------------------


def load_task_file(
    path: str | Path,
    *,
    env_overrides: dict[str, str] | None = None,
    secret_overrides: dict[str, str] | None = None,
) -> Pipeline:
    """Read a task file. Relative workdir/file_mount paths are taken from the current directory,
    as SkyPilot documents it ("relative to the current working directory"), so a SkyPilot user's
    `workdir: .` means the folder they launch from. Overrides (from --env / --secret) apply to
    every task of a pipeline."""
    text = read_text(Path(path), str(path))
    return _parse(text, str(path), Path.cwd(), env_overrides or {}, secret_overrides or {})


def parse_task_text(
    text: str,
    *,
    source: str = "<string>",
    base_dir: Path | None = None,
    env_overrides: dict[str, str] | None = None,
    secret_overrides: dict[str, str] | None = None,
) -> Pipeline:
    """Parse task YAML held in memory; `source` names it in errors."""
    return _parse(text, source, base_dir, env_overrides or {}, secret_overrides or {})


def _parse(text: str, source: str, base_dir: Path | None,
           envs: dict[str, str], secrets: dict[str, str]) -> Pipeline:
    check_text(text, source)
    docs = [d for d in load_documents(text, source) if d.data is not None]
    pipeline_name = None
    problems: list[TaskError] = []  # a problem in one document does not hide those after it
    if len(docs) > 1 and isinstance(docs[0].data, dict) and set(docs[0].data) == {"name"}:
        header, docs = docs[0], docs[1:]
        problems += header.duplicates
        try:
            pipeline_name = _pipeline_name(header.data["name"], header.lines, source)
        except TaskError as exc:
            problems.append(exc)
    tasks: list[Task] = []
    for d in docs:
        problems += d.duplicates
        try:
            tasks.append(_build_task(d.data, d.lines, source, base_dir, envs, secrets, d.key_kinds))
        except TaskError as exc:
            problems.append(exc)
    if problems:
        raise combined(problems)
    if not tasks:  # an empty file is a trivial task, as in SkyPilot; launch will ask for `run`
        tasks = [_build_task({}, {}, source, base_dir, envs, secrets)]
    if len(tasks) == 1 and pipeline_name is None:
        pipeline_name = tasks[0].name
    return Pipeline(name=pipeline_name, tasks=tasks)


def _pipeline_name(name: Any, lines: LineMap, source: str) -> str | None:
    """A pipeline's header names the job, so it follows the job name rule."""
    if name is None:
        return None
    try:
        if not isinstance(name, str):
            raise ValueError(f"expected a string, got {describe_value(name)}")
        return check_name(name)
    except ValueError as exc:
        raise TaskError(str(exc), path=source, line=line_of(lines, ("name",)), field="name") from None


def _build_task(raw: Any, lines: LineMap, source: str, base_dir: Path | None,
                env_overrides: dict[str, str], secret_overrides: dict[str, str],
                key_kinds: dict[tuple[str | int, ...], str] | None = None) -> Task:
    data = check_document(raw, lines, source, env_overrides, secret_overrides, key_kinds)
    try:
        task = Task.model_validate({**data, "source_path": source})
    except ValidationError as exc:
        raise validation_error(exc, data, lines, source) from None
    check_numbers(data, (), lines, source)
    task._base_dir, task._lines = base_dir, lines
    return task


# -- command line and pre-launch checks -----------------------------------------------------


def parse_env_assignment(text: str, flag: str = "--env") -> tuple[str, str]:
    """One `--env KEY=VALUE` (or `--secret`, named by `flag`); 'K=' gives an empty value."""
    key, sep, value = text.partition("=")
    shown_text = text if len(text) <= 60 else text[:60] + "..."
    if not sep:
        raise TaskError("expected KEY=VALUE", field=f"{flag} {shown_text}")
    if not ENV_KEY.fullmatch(key):
        raise TaskError(f"{describe_value(key)} is not a valid variable name", field=f"{flag} {shown_text}")
    return key, value


RESERVED_TARGET = ".spotctl"
"""Under the node's home: spotctl's agent and each job's files (see activities/node.py)."""
WORKDIR_TARGET = "~/sky_workdir"
"""Where the workdir is copied on each node (SkyPilot's place)."""


def validate_for_launch(task: Task) -> None:
    """What must hold before a managed job is submitted, checked on the launching machine; every
    problem at once (see launch_problems)."""
    problems = launch_problems(task)
    if problems:
        raise combined(problems)


def launch_problems(task: Task) -> list[TaskError]:
    """Every problem validate_for_launch finds, in the file's order, not only the first: a user
    fixes them all in one go, as with a compiler."""
    problems: list[TaskError] = []

    def fail(message: str, *path: str | int, hint: str | None = None) -> None:
        problems.append(TaskError(message, path=task.source_path, line=task._lines.get(tuple(path)),
                                  field=format_field(path), hint=hint))

    if not (task.run and task.run.strip()):
        fail("a managed job needs a run command", "run")
    workdir = task.resolved_workdir()
    if workdir is not None:
        where = Path(os.path.expanduser(workdir))
        if not where.exists():
            fail(f"directory {where} does not exist", "workdir")
        elif not where.is_dir():
            fail(f"{where} is not a directory", "workdir")
    for target, spec in task.file_mounts.items():
        _target_problems(task, target, spec, fail)
        given = spec if isinstance(spec, str) else spec.source
        if isinstance(spec, FileMountSpec) and isinstance(given, list) and len(given) > 1:
            fail("several sources in one mount are not supported yet", "file_mounts", target, "source")
            continue
        source = given[0] if isinstance(given, list) else given
        if isinstance(spec, FileMountSpec):
            if not spec.name and spec.mode != "COPY" and not (source and is_url(source)):
                fail("bucket name is empty", "file_mounts", target, hint="set name: to a bucket name")
        if source and not is_url(source):
            local = Path(os.path.expanduser(task.local_path(source)))
            if not local.exists():
                fail(f"local source {local} does not exist", "file_mounts", target)
    for name, value in task.secrets.items():
        if value is None:
            fail(f"no value given; export {name} and pass --secret {name}", "secrets", name)
    for name, value in task.envs.items():
        if value is None:
            fail(f"no value; pass --env {name}=VALUE", "envs", name)
    if task.callback_command:
        values = {**task.envs, **task.secrets}
        size = sum(len(k.encode()) + len((v or "").encode()) for k, v in values.items())
        if size > MAX_CALLBACK_ENV_BYTES:
            fail(f"the callback is given the task's envs and secrets only up to {MAX_CALLBACK_ENV_BYTES} bytes, "
                 f"and these are {size}: shorten them, or have the callback read what it needs from a file",
                 "event_callback")
    return problems


def _target_problems(task: Task, target: str, spec: str | FileMountSpec, fail: Any) -> None:
    """A target the node needs for itself, or one the workdir is copied to as well."""
    home_part = target[2:] if target.startswith("~/") else target if not target.startswith(("/", "~")) else None
    if home_part is not None and (home_part == RESERVED_TARGET or home_part.startswith(RESERVED_TARGET + "/")):
        fail("~/.spotctl on each node holds spotctl's agent and the job's own files; mount elsewhere",
             "file_mounts", target)
    mode = spec.mode if isinstance(spec, FileMountSpec) else "COPY"
    if target == "~" and mode != "COPY":
        fail(f"a {mode} at ~ would put a bucket in place of the home directory (and of ~/.spotctl, where "
             "spotctl keeps its agent); mount at a folder under it", "file_mounts", target)
    if task.resolved_workdir() is not None and target in (WORKDIR_TARGET, WORKDIR_TARGET[2:]):
        fail(f"the workdir is copied to {WORKDIR_TARGET}, so a mount there would be merged into it; mount "
             f"elsewhere (or under it, e.g. {WORKDIR_TARGET}/data)", "file_mounts", target)
