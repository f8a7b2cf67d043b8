"""The command line's changes to a task (`spotctl launch --cloud/--infra/--gpus/--env ...`):
parsed with the task file's own parsers and bounds, so a value refused in YAML is refused
here too, with one line and exit 2."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from spotctl.models import RecoveryConfig, ResourceRequest
from spotctl.task import (
    ENV_KEY,
    MAX_NUM_NODES,
    Task,
    TaskError,
    check_name,
    check_strategy,
    parse_accelerators,
    parse_amount,
    parse_env_assignment,
    parse_infra,
    read_input_file,
    shown,
)


@dataclass
class Overrides:
    """The command line's changes to the task; each goes through the task file's parsers and
    bounds, so a value refused in YAML is refused here too."""

    name: str | None = None
    cloud: str | None = None
    region: str | None = None
    infra: str | None = None
    """`--infra cloud[/region[/zone]]` ('*' for any), as the task's `infra:`; replaces all three."""
    gpus: str | None = None
    cpus: str | None = None
    memory: str | None = None
    instance_type: str | None = None
    use_spot: bool | None = None
    num_nodes: str | None = None
    job_recovery: str | None = None
    envs: list[str] = field(default_factory=list)
    """`--env KEY=VALUE`, or `--env KEY` for the caller's own $KEY (as SkyPilot)."""
    env_file: str | None = None
    """A dotenv file; `--env` wins over it, and it wins over the task's `envs:` (as SkyPilot)."""
    secrets: list[str] = field(default_factory=list)
    """`--secret KEY=VALUE` or `--secret KEY`, merged over the task's `secrets:` (which may name
    them without a value)."""
    compute_time: str | None = None
    """`--compute-time DURATION`: over the task's deadline.compute (launch/deadline.py)."""
    deadline: str | None = None
    """`--deadline WHEN` (an ISO 8601 time or a duration from now): over deadline.by."""
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    """Where `--env KEY` / `--secret KEY` take their value from: the caller's environment."""


def _ascii(text: str, flag: str, example: str) -> str:
    """A flag's value in ASCII: Python's number parsing takes other scripts' digits
    ('V100:１' would read as 1), which a user never meant as a count."""
    if not text.isascii():
        raise TaskError(f"expected {example}, written in ASCII, got {shown(text)}", field=flag)
    return text


def _parse_amount_flag(text: str, flag: str, key: str, example: str) -> tuple[float, bool]:
    """--cpus or --memory: (amount, 'at least' given by a trailing +), as the task file's key."""
    _ascii(text, flag, example)
    try:
        return parse_amount(text, key)
    except ValueError as exc:
        raise TaskError(str(exc), field=flag) from None


def _parse_cpus(text: str) -> tuple[float, bool]:
    return _parse_amount_flag(text, "--cpus", "cpus", "a number like 4 or 4+")


def _parse_gpus(text: str) -> dict[str, float]:
    """`--gpus NAME[:COUNT]`: one accelerator, with the same parser and bounds as the YAML's."""
    _ascii(text, "--gpus", "NAME or NAME:COUNT like V100:2")
    try:
        choices, _ = parse_accelerators(text)
    except ValueError as exc:
        raise TaskError(str(exc), field="--gpus") from None
    if len(choices) != 1:
        raise TaskError(f"expected NAME or NAME:COUNT like V100:2, got {shown(text)}", field="--gpus")
    return choices[0]


def checked_name(text: str) -> str:
    try:
        return check_name(text)
    except ValueError as exc:
        raise TaskError(str(exc), field="--name") from None


def assignments(items: list[str], flag: str, environ: Mapping[str, str]) -> dict[str, str]:
    """`KEY=VALUE` items; a bare `KEY` takes the caller's $KEY, as `sky launch --env KEY` does,
    and is refused when the caller has no such variable."""
    out: dict[str, str] = {}
    for item in items:
        if "=" not in item and ENV_KEY.fullmatch(item):
            if item not in environ:
                raise TaskError(f"{item} is not set in this shell; export it or give {flag} {item}=VALUE",
                                field=f"{flag} {item}")
            out[item] = environ[item]
        else:
            key, value = parse_env_assignment(item, flag)
            out[key] = value
    return out


def secrets_given_inline(items: list[str]) -> list[str]:
    """The keys of `--secret KEY=VALUE` items: their values sit in the command line, which
    `ps` shows every local user while the CLI runs (and the shell's history keeps). `--secret
    KEY` takes the value from the environment instead, as SkyPilot recommends."""
    return [item.split("=", 1)[0] for item in items if "=" in item]


_DOTENV_LINE = re.compile(r"(?:export\s+)?([^=\s]+)\s*=\s*(.*)")
_DOTENV_QUOTED = re.compile(r"'([^']*)'" + r'|"((?:[^"\\]|\\.)*)"')
_DOTENV_ESCAPES = {"n": "\n", "t": "\t"}


def parse_env_file(path: str) -> dict[str, str]:
    """`--env-file`: a dotenv file (KEY=VALUE lines, optional `export `, # comments, values in
    single or double quotes), read up to MAX_FILE_BYTES (a pipe within PIPE_READ_TIMEOUT_S); the values then go through the same
    bounds as the task's `envs:`. One value per line: a multi-line quoted value is refused."""
    try:
        text = read_input_file(Path(path).expanduser(), path)  # a FIFO or <(...) too, bounded in time
    except TaskError as exc:
        raise TaskError(exc.message, path=path, field="--env-file") from None
    out: dict[str, str] = {}
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _DOTENV_LINE.fullmatch(line)
        if not match:
            raise TaskError(f"expected KEY=VALUE, got {shown(line)}", path=path, line=n, field="--env-file")
        key, value = match.groups()
        if not ENV_KEY.fullmatch(key):
            raise TaskError(f"{shown(key)} is not a valid variable name", path=path, line=n, field="--env-file")
        if value[:1] in ("'", '"'):
            quoted = _DOTENV_QUOTED.match(value)
            if not quoted or value[quoted.end():].strip()[:1] not in ("", "#"):
                raise TaskError(f"a {value[0]}quoted{value[0]} value must end on its line, before any comment",
                                path=path, line=n, field="--env-file")
            single, double = quoted.groups()
            out[key] = single if single is not None else re.sub(
                r"\\(.)", lambda m: _DOTENV_ESCAPES.get(m.group(1), m.group(1)), double)
        else:  # bare: up to a ` #` comment
            out[key] = re.split(r"\s+#", value, maxsplit=1)[0].strip()
    return out


def parse_num_nodes(text: str) -> int:
    """`--num-nodes N`: a whole number within the task file's own bound."""
    value = text.strip()
    if not (value.isascii() and value.isdigit() and len(value) <= 12 and 1 <= int(value) <= MAX_NUM_NODES):
        raise TaskError(f"expected a whole number from 1 to {MAX_NUM_NODES}, got {shown(text)}", field="--num-nodes")
    return int(value)


def _parse_memory(text: str) -> tuple[float, bool]:
    return _parse_amount_flag(text, "--memory", "memory", "a size in GB like 16 or 16+")


_INSTANCE_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,99}")


def _checked_instance_type(text: str) -> str:
    if not _INSTANCE_TYPE.fullmatch(text):
        raise TaskError(f"expected an instance type like p3.2xlarge or n1-standard-8, got {shown(text)}",
                        field="--instance-type")
    return text


def parse_infra_flag(text: str) -> tuple[str | None, str | None, str | None]:
    try:
        return parse_infra(text)
    except ValueError as exc:
        raise TaskError(str(exc), field="--infra") from None


def recovery_of(task: Task, o: Overrides) -> RecoveryConfig:
    """The task's job_recovery; `--job-recovery NAME` replaces its strategy, keeping the rest."""
    recovery = task.recovery()
    if o.job_recovery is None:
        return recovery
    try:
        strategy = check_strategy(o.job_recovery)
    except ValueError as exc:
        raise TaskError(str(exc), field="--job-recovery") from None
    return recovery.model_copy(update={"strategy": strategy})


_VALUED_FLAGS = {"name": "--name", "cloud": "--cloud", "region": "--region", "infra": "--infra", "gpus": "--gpus",
                 "cpus": "--cpus", "memory": "--memory", "instance_type": "--instance-type",
                 "num_nodes": "--num-nodes", "job_recovery": "--job-recovery", "env_file": "--env-file"}
"""Overrides given as `--flag VALUE`: an empty VALUE is refused, never read as "not given"."""


def check_override_flags(o: Overrides) -> None:
    """Flag values and combinations that are refused before anything is read. An empty value
    (`--gpus ''`, a variable that expanded to nothing) is a mistake: taking it as "keep the
    task's" would quietly launch something else than asked for (`--gpus ''` is not "no GPU")."""
    for attr, flag in _VALUED_FLAGS.items():
        value = getattr(o, attr)
        if value is not None and not value.strip():
            raise TaskError("an empty value; leave the flag out to keep the task's own", field=flag)
    if o.infra and (o.cloud or o.region):
        raise TaskError("give either --infra or --cloud/--region, not both", field="--infra")


def apply_overrides(requests: list[ResourceRequest], o: Overrides) -> list[ResourceRequest]:
    """Every request with the flags' values in place of the task's (each parsed with the task
    file's own parser and bounds)."""
    changes: dict = {}
    if o.infra:
        cloud, region, zone = parse_infra_flag(o.infra)
        changes.update(cloud=cloud.lower() if cloud else None, region=region, zone=zone)
    if o.cloud:
        changes["cloud"] = o.cloud.lower()
    if o.region:
        changes["region"] = o.region
    if o.gpus:
        changes["accelerators"] = _parse_gpus(o.gpus)
    if o.cpus:
        changes["cpus"], changes["cpus_at_least"] = _parse_cpus(o.cpus)
    if o.memory:
        changes["memory_gb"], changes["memory_at_least"] = _parse_memory(o.memory)
    if o.instance_type:
        changes["instance_type"] = _checked_instance_type(o.instance_type)
    if o.use_spot is not None:
        changes["use_spot"] = o.use_spot
    return [r.model_copy(update=changes) for r in requests]
