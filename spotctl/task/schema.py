"""The task schema: pydantic models of SkyPilot's task, resources, storage and job_recovery keys.

These models are the one schema of a task file: the structural pass (`task_document`) takes
the keys it accepts at each level from their fields and aliases, and pydantic checks types and
values. spotctl promises that a SkyPilot task file runs unchanged, so the fields are exactly
those of SkyPilot's `sky/utils/schemas.py` (including older and private keys). Every number
and every size is bounded here or in `task_values` (see `task_limits`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from spotctl.models import ChatTarget
from spotctl.models.chat import (
    MAX_CHAT_NOTIFY_ON,
    MAX_CHAT_TARGETS,
    check_channel,
    check_chat_url,
    check_statuses,
    check_template,
    check_username,
)
from spotctl.task.limits import (
    EXIT_CODE_RANGE,
    MAX_EXIT_CODES,
    MAX_HOOKS,
    MAX_HOOKS_BYTES,
    MAX_NUM_NODES,
    MAX_RESOURCE_CHOICES,
    MAX_RESTARTS_ON_ERRORS,
    MAX_WAIT_S,
    PRIORITY_RANGE,
)
from spotctl.task.values import (
    check_command,
    check_deadline_policy,
    check_event_callback,
    check_hook_run,
    check_name,
    check_strategy,
    parse_accelerators,
    parse_amount,
    parse_deadline_duration,
    parse_duration,
    parse_infra,
    parse_ports,
    parse_size_gb,
    parse_when,
)

STRICT = ConfigDict(extra="forbid", strict=True, populate_by_name=True)


class JobRecoverySpec(BaseModel):
    """`job_recovery:` in dict form. Extra keys are allowed: SkyPilot lets plugins add
    strategy-specific settings here, so only near-misses of known keys are refused (as typos)."""

    model_config = ConfigDict(extra="allow", strict=True)

    strategy: str | None = None
    max_restarts_on_errors: int = Field(0, ge=0, le=MAX_RESTARTS_ON_ERRORS)
    recover_on_exit_codes: list[int] = Field(default_factory=list, max_length=MAX_EXIT_CODES)
    max_wait: float | None = Field(None, ge=0, le=MAX_WAIT_S, allow_inf_nan=False)
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
        low, high = EXIT_CODE_RANGE
        bad = [c for c in v if not low <= c <= high]
        if bad:
            raise ValueError(f"exit codes are {low}..{high}, got {bad[0] if abs(bad[0]) < 10**30 else 'a huge number'}")
        return v

    @field_validator("max_wait", mode="before")
    @classmethod
    def _max_wait(cls, v: Any) -> Any:
        if isinstance(v, (str, int, float)) and not isinstance(v, bool):
            return parse_duration(v)
        return v


class FileMountSpec(BaseModel):
    """A `file_mounts` entry in SkyPilot's storage (bucket) form."""

    model_config = STRICT

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

    model_config = STRICT
    url: str
    ref: str | None = None


class ResourceSpec(BaseModel):
    """One set of resources: the body of `resources:` or of one any_of/ordered entry."""

    model_config = STRICT

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
    max_hourly_cost: float | None = Field(None, ge=0, allow_inf_nan=False)
    ports: int | str | list[int | str] | None = None
    labels: dict[str, str] | None = None
    accelerator_args: dict[str, Any] | None = None
    image_id: str | dict[str, Any] | None = None
    autostop: bool | int | str | dict[str, Any] | None = None
    priority: int | None = Field(None, ge=PRIORITY_RANGE[0], le=PRIORITY_RANGE[1])
    priority_class: str | None = None
    volumes: list[dict[str, Any]] | None = None
    no_missing_accel_warnings: bool | None = Field(None, alias="_no_missing_accel_warnings")
    docker_login_config: dict[str, Any] | None = Field(None, alias="_docker_login_config")
    is_image_managed: bool | None = Field(None, alias="_is_image_managed")
    requires_fuse: bool | None = Field(None, alias="_requires_fuse")
    cluster_config_overrides: dict[str, Any] | None = Field(None, alias="_cluster_config_overrides")

    @field_validator("cpus", "memory", "disk_size", "ephemeral_storage", "infra", "ports")
    @classmethod
    def _parseable(cls, v: Any, info: ValidationInfo) -> Any:
        """Keep the value as written (dumps stay SkyPilot YAML) but refuse what cannot be read
        or is out of bounds."""
        if v is not None:
            if info.field_name in ("cpus", "memory"):
                parse_amount(v, info.field_name)
            elif info.field_name == "infra":
                parse_infra(v)
            elif info.field_name == "ports":
                parse_ports(v)
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

    @field_validator("autostop")
    @classmethod
    def _autostop_hook(cls, v: Any) -> Any:
        """The older `autostop.hook`/`hook_timeout`, which SkyPilot still routes into
        `config.hooks` (until its v0.15): checked as a hook's `run` and `timeout` are."""
        if isinstance(v, dict):
            hook, timeout = v.get("hook"), v.get("hook_timeout")
            if hook is not None:
                if not isinstance(hook, str):
                    raise ValueError("hook: expected a string (a command)")
                check_hook_run(hook)
            if timeout is not None and (not isinstance(timeout, int) or isinstance(timeout, bool) or timeout < 1):
                raise ValueError("hook_timeout: a whole number of seconds, at least 1")
        return v

    @model_validator(mode="after")
    def _exclusive(self) -> ResourceSpec:
        given = self.model_fields_set
        if "infra" in given and given & {"cloud", "region", "zone"}:
            raise ValueError("give either infra or cloud/region/zone, not both")
        if {"job_recovery", "spot_recovery"} <= given:
            raise ValueError("give job_recovery or spot_recovery (its old name), not both")
        return self


class TaskResources(ResourceSpec):
    """`resources:`; any_of/ordered entries are merged over the other keys (see Task)."""

    any_of: list[ResourceSpec] | None = Field(None, max_length=MAX_RESOURCE_CHOICES)
    ordered: list[ResourceSpec] | None = Field(None, max_length=MAX_RESOURCE_CHOICES)

    @model_validator(mode="after")
    def _one_list(self) -> TaskResources:
        if self.any_of is not None and self.ordered is not None:
            raise ValueError("give any_of or ordered, not both")
        return self


class DeadlineTaskSpec(BaseModel):
    """`deadline:`, spotctl's own top-level key (SkyPilot has none, so its files are unchanged):
    the compute a job needs and when it must be done (docs/deadlines.md). Values are kept as
    written (a dump stays the user's YAML) and checked here; launch/deadline.py resolves them."""

    model_config = STRICT

    compute: str | int | float | None = None
    by: str | int | float | datetime | None = None
    changeover: str | int | float | None = None
    checkpoint_every: str | int | float | None = None
    policy: str | None = None

    @field_validator("compute", "changeover", "checkpoint_every", mode="before")
    @classmethod
    def _duration(cls, v: Any, info: ValidationInfo) -> Any:
        if v is not None and not isinstance(v, bool):
            parse_deadline_duration(v, positive=info.field_name != "changeover")
        return v

    @field_validator("by", mode="before")
    @classmethod
    def _when(cls, v: Any) -> Any:
        if v is not None and not isinstance(v, bool):
            parse_when(v)
        return v

    @field_validator("policy")
    @classmethod
    def _policy(cls, v: str | None) -> str | None:
        return check_deadline_policy(v) if v is not None else v


class HookSpec(BaseModel):
    """One entry of `config.hooks`: SkyPilot's _HOOKS_SCHEMA item, exactly (a required `run`,
    optional `events` and `timeout`, nothing else). What spotctl runs of it: docs/task-yaml.md."""

    model_config = STRICT

    run: str
    events: list[Literal["stop", "preemption", "down"]] | None = Field(None, min_length=1)
    """None: all three (SkyPilot's default). The names are models.HOOK_EVENTS."""
    timeout: int | None = Field(None, ge=1)
    """Seconds; None: DEFAULT_HOOK_TIMEOUT_S."""

    @field_validator("run")
    @classmethod
    def _run(cls, v: str) -> str:
        return check_hook_run(v)

    @field_validator("events")
    @classmethod
    def _unique(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and len(set(v)) != len(v):
            raise ValueError("each event at most once")
        return v


class _ChatSpec(BaseModel):
    """The keys every chat target has (SkyPilot's event_callback list items)."""

    model_config = STRICT
    kind: ClassVar[str] = "slack"

    webhook_url: str
    username: str | None = None
    message: str | None = None
    """The template: see models/chat.py (SkyPilot's {PLACEHOLDERS} and spotctl's)."""
    notify_on: list[str] | None = Field(None, max_length=MAX_CHAT_NOTIFY_ON)

    @field_validator("webhook_url")
    @classmethod
    def _url(cls, v: str) -> str:
        return check_chat_url(v, cls.kind)

    @field_validator("username")
    @classmethod
    def _username(cls, v: str | None) -> str | None:
        return check_username(v, cls.kind) if v is not None else v

    @field_validator("message")
    @classmethod
    def _message(cls, v: str | None) -> str | None:
        return check_template(v) if v is not None else v

    @field_validator("notify_on")
    @classmethod
    def _notify_on(cls, v: list[str] | None) -> list[str] | None:
        return [s.value for s in check_statuses(v)] if v is not None else v

    def target(self) -> ChatTarget:
        """The target as the job carries it."""
        values = self.model_dump(exclude_none=True)
        return ChatTarget(kind=self.kind, **values)  # type: ignore[arg-type]


class SlackSpec(_ChatSpec):
    """`event_callback: [{slack: ...}]`: a Slack incoming webhook (SkyPilot's keys)."""

    kind: ClassVar[str] = "slack"
    channel: str | None = None

    @field_validator("channel")
    @classmethod
    def _channel(cls, v: str | None) -> str | None:
        return check_channel(v) if v is not None else v


class DiscordSpec(_ChatSpec):
    """`event_callback: [{discord: ...}]`: a Discord webhook (SkyPilot's keys: no channel)."""

    kind: ClassVar[str] = "discord"


class ChatEntrySpec(BaseModel):
    """One item of the `event_callback:` list: a `slack:` and/or a `discord:` target."""

    model_config = STRICT

    slack: SlackSpec | None = None
    discord: DiscordSpec | None = None

    @model_validator(mode="after")
    def _one(self) -> ChatEntrySpec:
        if self.slack is None and self.discord is None:
            raise ValueError("each item needs a slack: or discord: target")
        return self

    def targets(self) -> list[ChatTarget]:
        return [spec.target() for spec in (self.slack, self.discord) if spec is not None]


class TaskConfig(BaseModel):
    """`config:`, SkyPilot's per-task override of its config.yaml. Only `hooks` is read (and
    checked as SkyPilot's schema says); every other key is kept as written and named by
    Task.unsupported()."""

    model_config = ConfigDict(extra="allow", strict=True)

    hooks: list[HookSpec] | None = Field(None, max_length=MAX_HOOKS)

    @field_validator("hooks")
    @classmethod
    def _total(cls, v: list[HookSpec] | None) -> list[HookSpec] | None:
        size = sum(len(h.run.encode("utf-8", "surrogatepass")) for h in v or [])
        if size > MAX_HOOKS_BYTES:
            raise ValueError(f"the hooks' scripts are {size} bytes together, more than the limit of "
                             f"{MAX_HOOKS_BYTES} (put long scripts in the workdir and call them from the hooks)")
        return v


class TaskSpec(BaseModel):
    """The keys of one task document, as written (Task adds the views and where it came from)."""

    model_config = STRICT

    name: str | None = None
    workdir: str | WorkdirSpec | None = None
    event_callback: str | list[ChatEntrySpec] | None = None
    """A bash command (run by a worker on every status change), or SkyPilot's list of Slack and
    Discord targets."""
    num_nodes: int = Field(1, ge=1, le=MAX_NUM_NODES)
    resources: TaskResources = Field(default_factory=lambda: TaskResources.model_validate({}))
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
    config: TaskConfig | None = None
    experimental: dict[str, Any] | None = None
    volumes: dict[str, Any] | list[Any] | None = None
    volume_mounts: list[Any] | None = None
    api_server_access: bool | None = None
    metadata: dict[str, Any] | None = Field(None, alias="_metadata")
    deadline: DeadlineTaskSpec | None = None
    """spotctl's: see DeadlineTaskSpec."""

    @field_validator("name")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        return check_name(v) if v is not None else v

    @field_validator("run", "setup")
    @classmethod
    def _command(cls, v: str | None) -> str | None:
        return check_command(v) if v is not None else v

    @field_validator("event_callback")
    @classmethod
    def _event_callback(cls, v: str | list[ChatEntrySpec] | None) -> str | list[ChatEntrySpec] | None:
        if isinstance(v, list) and not 1 <= len(v) <= MAX_CHAT_TARGETS:
            raise ValueError(f"a list of 1 to {MAX_CHAT_TARGETS} slack:/discord: targets, got {len(v)}")
        return check_event_callback(v) if isinstance(v, str) else v


def yaml_keys(model: type[BaseModel]) -> frozenset[str]:
    """The keys a model accepts in YAML: each field's alias, or its name."""
    return frozenset(f.alias or name for name, f in model.model_fields.items())
