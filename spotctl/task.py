"""The task YAML: SkyPilot's format, read faithfully, explained clearly when it is wrong.

spotctl promises that a SkyPilot task file runs unchanged, so the accepted keys are exactly those of
SkyPilot's `sky/utils/schemas.py` (task, resources, storage and job_recovery schemas, including
older and private keys). A key SkyPilot accepts is never refused; keys spotctl does not act on yet
are kept and named by `Task.unsupported()` so the CLI can warn instead of silently ignoring them.

Parsing runs in three steps, each with file/line-aware errors (see `task_errors`):
1. compose the YAML documents, remembering the line of every key;
2. a structural pass over the plain data: unknown keys (with did-you-mean), env coercion, --env
   overrides and `${VAR}` substitution into file_mounts/workdir, as SkyPilot does;
3. pydantic models for types and values; their errors become one sentence about one field.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from spotctl.models import FileMount, RecoveryConfig, ResourceRequest
from spotctl.task_errors import (
    ENV_KEY,
    LineMap,
    TaskError,
    check_document,
    check_strategy,
    format_field,
    is_url,
    load_documents,
    parse_accelerators,
    parse_amount,
    parse_duration,
    parse_infra,
    parse_size_gb,
    validation_error,
)

__all__ = [
    "FileMountSpec",
    "JobRecoverySpec",
    "Pipeline",
    "Task",
    "TaskError",
    "TaskResources",
    "load_task_file",
    "parse_env_assignment",
    "parse_task_text",
    "validate_for_launch",
]


SUPPORTED_RESOURCE_FIELDS = frozenset({
    "cloud", "region", "zone", "infra", "instance_type", "accelerators", "cpus", "memory",
    "use_spot", "job_recovery", "spot_recovery", "any_of", "ordered",
})
_LOCATION_FIELDS = ("cloud", "region", "zone", "infra")
DEFAULT_STRATEGY = "EAGER_NEXT_REGION"

_STRICT = ConfigDict(extra="forbid", strict=True, populate_by_name=True)


class JobRecoverySpec(BaseModel):
    """`job_recovery:` in dict form. Extra keys are allowed: SkyPilot lets plugins add
    strategy-specific settings here, so only near-misses of known keys are refused (as typos)."""

    model_config = ConfigDict(extra="allow", strict=True)

    strategy: str | None = None
    max_restarts_on_errors: int = Field(0, ge=0)
    recover_on_exit_codes: list[int] = Field(default_factory=list)
    max_wait: float | None = Field(None, ge=0)
    """spotctl extension: give up waiting for capacity after this many seconds ('10m' works)."""

    @field_validator("strategy", mode="before")
    @classmethod
    def _strategy(cls, v: Any) -> Any:
        return check_strategy(v) if isinstance(v, str) else v

    @field_validator("recover_on_exit_codes", mode="before")
    @classmethod
    def _codes(cls, v: Any) -> Any:
        return [v] if isinstance(v, int) and not isinstance(v, bool) else v

    @field_validator("recover_on_exit_codes")
    @classmethod
    def _code_range(cls, v: list[int]) -> list[int]:
        bad = [c for c in v if not 0 <= c <= 255]
        if bad:
            raise ValueError(f"exit codes are 0..255, got {bad[0]}")
        return v

    @field_validator("max_wait", mode="before")
    @classmethod
    def _max_wait(cls, v: Any) -> Any:
        return parse_duration(v) if isinstance(v, str) else v


class FileMountSpec(BaseModel):
    """A `file_mounts` entry in SkyPilot's storage (bucket) form."""

    model_config = _STRICT

    name: str | None = None
    source: str | list[str] | None = None
    store: str | None = None
    mode: Literal["MOUNT", "COPY", "MOUNT_CACHED"] = "MOUNT"
    persistent: bool = True
    mount_options: str | None = None
    type: str | None = None
    config: dict[str, Any] | None = None
    is_sky_managed: bool | None = Field(None, alias="_is_sky_managed")
    bucket_sub_path: str | None = Field(None, alias="_bucket_sub_path")
    force_delete: bool | None = Field(None, alias="_force_delete")

    @field_validator("mode", "store", mode="before")
    @classmethod
    def _upper(cls, v: Any) -> Any:
        return v.upper() if isinstance(v, str) else v


class WorkdirSpec(BaseModel):
    """`workdir:` as a git repository (newer SkyPilot)."""

    model_config = _STRICT
    url: str
    ref: str | None = None


class ResourceSpec(BaseModel):
    """One set of resources: the body of `resources:` or of one any_of/ordered entry."""

    model_config = _STRICT

    cloud: str | None = None
    region: str | None = None
    zone: str | None = None
    infra: str | None = None
    instance_type: str | None = None
    accelerators: str | dict[str, float | None] | list[str] | None = None
    cpus: str | float | None = None
    memory: str | float | None = None
    use_spot: bool | None = None
    job_recovery: str | JobRecoverySpec | None = None
    spot_recovery: str | JobRecoverySpec | None = None
    disk_size: int | str | None = None
    ephemeral_storage: int | str | None = None
    disk_tier: str | None = None
    network_tier: str | None = None
    local_disk: str | None = None
    max_hourly_cost: float | None = None
    ports: int | str | list[int | str] | None = None
    labels: dict[str, str] | None = None
    accelerator_args: dict[str, Any] | None = None
    image_id: str | dict[str, Any] | None = None
    autostop: bool | int | str | dict[str, Any] | None = None
    priority: int | None = None
    priority_class: str | None = None
    volumes: list[dict[str, Any]] | None = None
    no_missing_accel_warnings: bool | None = Field(None, alias="_no_missing_accel_warnings")
    docker_login_config: dict[str, Any] | None = Field(None, alias="_docker_login_config")
    is_image_managed: bool | None = Field(None, alias="_is_image_managed")
    requires_fuse: bool | None = Field(None, alias="_requires_fuse")
    cluster_config_overrides: dict[str, Any] | None = Field(None, alias="_cluster_config_overrides")

    @field_validator("cpus", "memory", "disk_size", "ephemeral_storage", "infra")
    @classmethod
    def _parseable(cls, v: Any, info: ValidationInfo) -> Any:
        """Keep the value as written (dumps stay SkyPilot YAML) but refuse what cannot be read."""
        if v is not None:
            if info.field_name in ("cpus", "memory"):
                parse_amount(v, info.field_name)
            elif info.field_name == "infra":
                parse_infra(v)
            else:
                parse_size_gb(v)
        return v

    @field_validator("accelerators")
    @classmethod
    def _accelerators(cls, v: Any) -> Any:
        parse_accelerators(v)
        return v

    @field_validator("job_recovery", "spot_recovery", mode="before")
    @classmethod
    def _recovery(cls, v: Any) -> Any:
        return check_strategy(v) if isinstance(v, str) else v

    @model_validator(mode="after")
    def _exclusive(self) -> ResourceSpec:
        given = self.model_fields_set
        if "infra" in given and given & {"cloud", "region", "zone"}:
            raise ValueError("give either infra or cloud/region/zone, not both")
        if {"job_recovery", "spot_recovery"} <= given:
            raise ValueError("give job_recovery or spot_recovery (its old name), not both")
        return self


class TaskResources(ResourceSpec):
    """`resources:`; any_of/ordered entries are merged over the other keys here."""

    any_of: list[ResourceSpec] | None = None
    ordered: list[ResourceSpec] | None = None

    @model_validator(mode="after")
    def _one_list(self) -> TaskResources:
        if self.any_of is not None and self.ordered is not None:
            raise ValueError("give any_of or ordered, not both")
        return self


class Task(BaseModel):
    """One task document. Every SkyPilot task key is accepted; see `unsupported()`."""

    model_config = _STRICT

    name: str | None = None
    workdir: str | WorkdirSpec | None = None
    event_callback: str | None = None
    num_nodes: int = Field(1, ge=1)
    resources: TaskResources = Field(default_factory=TaskResources)
    file_mounts: dict[str, str | FileMountSpec] = Field(default_factory=dict)
    service: dict[str, Any] | None = None
    pool: dict[str, Any] | None = None
    setup: str | None = None
    run: str | None = None
    envs: dict[str, str | None] = Field(default_factory=dict)
    secrets: dict[str, str | None] = Field(default_factory=dict)
    managed_secrets: list[Any] | None = None
    inputs: dict[str, Any] | None = None
    outputs: dict[str, Any] | None = None
    file_mounts_mapping: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    experimental: dict[str, Any] | None = None
    volumes: dict[str, Any] | list[Any] | None = None
    volume_mounts: list[Any] | None = None
    api_server_access: bool | None = None
    metadata: dict[str, Any] | None = Field(None, alias="_metadata")
    source_path: str | None = Field(None, exclude=True)
    """The file this task came from; errors found later (validate_for_launch) name it."""

    _base_dir: Path | None = PrivateAttr(None)
    _lines: LineMap = PrivateAttr(default_factory=dict)

    # -- normalised views -------------------------------------------------------------------

    def _alternatives(self) -> list[ResourceSpec]:
        return list(self.resources.any_of or self.resources.ordered or [])

    def resource_requests(self) -> list[ResourceRequest]:
        """Every acceptable machine shape, in preference order when `ordered`."""
        base = {k: getattr(self.resources, k) for k in ResourceSpec.model_fields}
        out: list[ResourceRequest] = []
        for alt in self._alternatives() or [None]:
            merged = dict(base)
            if alt is not None:
                given = {k: getattr(alt, k) for k in alt.model_fields_set}
                merged.update(_merge_location(merged, given))
                merged.update({k: v for k, v in given.items() if k not in _LOCATION_FIELDS})
            out.extend(_requests(merged))
        return out

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

    def local_path(self, path: str) -> str:
        """A local path from the YAML, relative ones resolved against the YAML's directory;
        `~` is left for the caller to expand where the path is used."""
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
        for key in ("event_callback", "service", "pool", "managed_secrets", "inputs", "outputs",
                    "file_mounts_mapping", "config", "experimental", "volumes", "volume_mounts",
                    "api_server_access"):
            if _given(getattr(self, key)):
                notes.append(f"{key}: not supported yet")
        if self.secrets:
            notes.append("secrets: not supported yet (values would be stored in clear in "
                         "Temporal history)")
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
    return [ResourceRequest(accelerators=acc, **common) for acc in (alternatives or [None])]


# -- loading --------------------------------------------------------------------------------


def load_task_file(
    path: str | Path,
    *,
    env_overrides: dict[str, str] | None = None,
    secret_overrides: dict[str, str] | None = None,
) -> Pipeline:
    """Read a task file; relative workdir/file_mount paths are taken from the file's directory.
    Overrides (from --env / --secret) apply to every task of a pipeline."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TaskError("file not found", path=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TaskError(f"cannot read the file: {exc}", path=str(path)) from None
    return _parse(text, str(path), Path(os.path.abspath(file)).parent,
                  env_overrides or {}, secret_overrides or {})


def parse_task_text(text: str, *, source: str = "<string>", base_dir: Path | None = None) -> Pipeline:
    """Parse task YAML held in memory; `source` names it in errors."""
    return _parse(text, source, base_dir, {}, {})


def _parse(text: str, source: str, base_dir: Path | None,
           envs: dict[str, str], secrets: dict[str, str]) -> Pipeline:
    docs = [d for d in load_documents(text, source) if d.data is not None]
    pipeline_name = None
    if len(docs) > 1 and isinstance(docs[0].data, dict) and set(docs[0].data) == {"name"}:
        pipeline_name, docs = docs[0].data["name"], docs[1:]
    tasks = [_build_task(d.data, d.lines, source, base_dir, envs, secrets) for d in docs]
    if not tasks:  # an empty file is a trivial task, as in SkyPilot; launch will ask for `run`
        tasks = [Task(source_path=source)]
        tasks[0]._base_dir = base_dir
    if len(tasks) == 1 and pipeline_name is None:
        pipeline_name = tasks[0].name
    return Pipeline(name=pipeline_name, tasks=tasks)


def _build_task(raw: Any, lines: LineMap, source: str, base_dir: Path | None,
                env_overrides: dict[str, str], secret_overrides: dict[str, str]) -> Task:
    data = check_document(raw, lines, source, env_overrides, secret_overrides)
    try:
        task = Task.model_validate({**data, "source_path": source})
    except ValidationError as exc:
        raise validation_error(exc, data, lines, source) from None
    task._base_dir, task._lines = base_dir, lines
    return task


# -- command line and pre-launch checks -----------------------------------------------------


def parse_env_assignment(text: str) -> tuple[str, str]:
    """One `--env KEY=VALUE` (or `--secret`); 'K=' gives an empty value."""
    key, sep, value = text.partition("=")
    if not sep:
        raise TaskError("expected KEY=VALUE", field=f"--env {text}")
    if not ENV_KEY.fullmatch(key):
        raise TaskError(f"{key!r} is not a valid variable name", field=f"--env {text}")
    return key, value


def validate_for_launch(task: Task) -> None:
    """What must hold before a managed job is submitted, checked on the launching machine."""
    def fail(message: str, *path: str | int, hint: str | None = None) -> TaskError:
        return TaskError(message, path=task.source_path, line=task._lines.get(tuple(path)),
                         field=format_field(path), hint=hint)

    if not (task.run and task.run.strip()):
        raise fail("a managed job needs a run command", "run")
    workdir = task.resolved_workdir()
    if workdir is not None:
        where = Path(os.path.expanduser(workdir))
        if not where.exists():
            raise fail(f"directory {where} does not exist", "workdir")
        if not where.is_dir():
            raise fail(f"{where} is not a directory", "workdir")
    for target, spec in task.file_mounts.items():
        source = spec if isinstance(spec, str) else spec.source
        if isinstance(spec, FileMountSpec):
            if isinstance(source, list) and len(source) > 1:
                raise fail("several sources in one mount are not supported yet",
                           "file_mounts", target, "source")
            source = source[0] if isinstance(source, list) else source
            if not spec.name and spec.mode != "COPY" and not (source and is_url(source)):
                raise fail("bucket name is empty", "file_mounts", target,
                           hint="set name: to a bucket name")
        if source and not is_url(source):
            local = Path(os.path.expanduser(task.local_path(source)))
            if not local.exists():
                raise fail(f"local source {local} does not exist", "file_mounts", target)
    for name, value in task.secrets.items():
        if value is None:
            raise fail("no value given", "secrets", name)
    for name, value in task.envs.items():
        if value is None:
            raise fail(f"no value; pass --env {name}=VALUE", "envs", name)

