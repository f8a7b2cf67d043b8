"""The structural pass over one task document's plain data, before pydantic sees it.

It does what pydantic cannot word well or cannot do at all: unknown keys at every level that
SkyPilot closes (with did-you-mean; the allowed keys come from the models in `task_models`, so
there is one schema), numbers that are not finite or do not fit in 64 bits anywhere in the
document, env/secret coercion with the --env/--secret overrides and their size limits,
SkyPilot's $VAR substitution into file_mounts and workdir, and file-mount targets normalised
and kept inside their root. A key that names something (a variable, a mount target, a storage
setting) must be read as text: YAML 1.1 reads `NO: a` as `False: a` (SkyPilot too), so such keys
are refused with their line and a quoted spelling, never silently renamed.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from spotctl.models.chat import fill_vars
from spotctl.task.errors import (
    LineMap,
    Path_,
    TaskError,
    combined,
    format_field,
    line_of,
    unknown_field_error,
)
from spotctl.task.limits import (
    MAX_ENVS,
    MAX_ENVS_BYTES,
    MAX_FILE_MOUNTS,
    MAX_INT,
    MAX_SECRETS,
    MAX_SECRETS_BYTES,
)
from spotctl.task.schema import (
    ChatEntrySpec,
    DeadlineTaskSpec,
    DiscordSpec,
    FileMountSpec,
    HookSpec,
    JobRecoverySpec,
    ResourceSpec,
    SlackSpec,
    TaskResources,
    TaskSpec,
    WorkdirSpec,
    yaml_keys,
)
from spotctl.task.values import check_variables, normalize_mount_target

# Keys accepted at each level: the models' fields (by alias), i.e. SkyPilot's schemas.
TASK_KEYS = yaml_keys(TaskSpec)
SINGLE_RESOURCE_KEYS = yaml_keys(ResourceSpec)
RESOURCE_KEYS = yaml_keys(TaskResources)
STORAGE_KEYS = yaml_keys(FileMountSpec)
RECOVERY_KEYS = yaml_keys(JobRecoverySpec)
WORKDIR_KEYS = yaml_keys(WorkdirSpec)
DEADLINE_KEYS = yaml_keys(DeadlineTaskSpec)
HOOK_KEYS = yaml_keys(HookSpec)
CHAT_ENTRY_KEYS = yaml_keys(ChatEntrySpec)
CHAT_TARGET_KEYS = {"slack": yaml_keys(SlackSpec), "discord": yaml_keys(DiscordSpec)}

ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ENV_REF = re.compile(r"\$\{?\b([a-zA-Z_][a-zA-Z0-9_]*)\b\}?")
_VARIABLE_LIMITS = {"envs": (MAX_ENVS, MAX_ENVS_BYTES), "secrets": (MAX_SECRETS, MAX_SECRETS_BYTES)}


def check_document(raw: Any, lines: LineMap, source: str | None,
                   env_overrides: dict[str, str], secret_overrides: dict[str, str],
                   key_kinds: dict[Path_, str] | None = None) -> dict[str, Any]:
    """Check one task document's plain data (see the module docstring); returns the data to
    validate with pydantic. `key_kinds`: the loader's keys that YAML did not read as text."""
    if not isinstance(raw, dict):
        raise TaskError(
            f"a task must be a mapping of fields (name, resources, run ...), got "
            f"{'a list' if isinstance(raw, list) else 'a single value'}",
            path=source, line=line_of(lines, ()))
    _refuse_non_text_keys(key_kinds or {}, lines, source)
    data = _check_level(raw, TASK_KEYS, (), lines, source)
    res = data.get("resources")
    if isinstance(res, dict):
        data["resources"] = res = _check_level(res, RESOURCE_KEYS, ("resources",), lines, source)
        _check_recovery(res, ("resources",), lines, source)
        for key in ("any_of", "ordered"):
            if isinstance(res.get(key), list):
                res[key] = [
                    _check_resource_entry(e, ("resources", key, i), lines, source)
                    for i, e in enumerate(res[key])]
    if isinstance(data.get("file_mounts"), dict):
        mounts = {str(k): v for k, v in data["file_mounts"].items()}
        if len(mounts) > MAX_FILE_MOUNTS:
            raise TaskError(f"{len(mounts)} mounts is more than the limit of {MAX_FILE_MOUNTS}",
                            path=source, line=line_of(lines, ("file_mounts",)), field="file_mounts")
        for target, spec in mounts.items():
            if isinstance(spec, dict):
                _check_level(spec, STORAGE_KEYS, ("file_mounts", target), lines, source)
        data["file_mounts"] = mounts
    if isinstance(data.get("workdir"), dict):
        _check_level(data["workdir"], WORKDIR_KEYS, ("workdir",), lines, source)
    if isinstance(data.get("deadline"), dict):
        data["deadline"] = _check_level(data["deadline"], DEADLINE_KEYS, ("deadline",), lines, source)
    hooks = data["config"].get("hooks") if isinstance(data.get("config"), dict) else None
    if isinstance(hooks, list):  # SkyPilot closes each entry (additionalProperties: false)
        data["config"] = {**data["config"], "hooks": [
            _check_level(h, HOOK_KEYS, ("config", "hooks", i), lines, source) if isinstance(h, dict) else h
            for i, h in enumerate(hooks)]}
    known: dict[str, str] = {}
    for key, overrides in (("envs", env_overrides), ("secrets", secret_overrides)):
        values = _coerce_env(data.get(key, {}), key, lines, source)
        if values is not None:
            data[key] = {**values, **overrides}
            _check_sizes(data[key], key, lines, source)
            known.update({k: v for k, v in data[key].items() if v is not None})
    for key in ("file_mounts", "workdir"):
        if key in data:
            data[key] = _fill_env_vars(data[key], known)
    if isinstance(data.get("event_callback"), list):
        data["event_callback"] = _check_chat(data["event_callback"], known, lines, source)
    if isinstance(data.get("file_mounts"), dict):
        data["file_mounts"] = _normalize_targets(data["file_mounts"], raw.get("file_mounts"),
                                                 lines, source)
    return data


def _check_chat(entries: list[Any], known: dict[str, str], lines: LineMap, source: str | None) -> list[Any]:
    """SkyPilot's `event_callback:` list: unknown keys refused at each level (its schema closes
    them), and each webhook_url's $VAR / ${VAR} filled from the envs and secrets (SkyPilot's
    example writes `webhook_url: ${SLACK_WEBHOOK_URL}`)."""
    out: list[Any] = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            out.append(entry)  # pydantic reports the type
            continue
        entry = _check_level(entry, CHAT_ENTRY_KEYS, ("event_callback", i), lines, source)
        for kind, target in list(entry.items()):
            if isinstance(target, dict):
                target = _check_level(target, CHAT_TARGET_KEYS[kind], ("event_callback", i, kind), lines, source)
                if isinstance(target.get("webhook_url"), str):
                    target["webhook_url"] = fill_vars(target["webhook_url"], known)
                entry[kind] = target
        out.append(entry)
    return out


_NAMING_LEVELS = ("envs", "secrets", "file_mounts")
"""Mappings whose keys are names (and each `file_mounts.<target>` storage mapping)."""


def _refuse_non_text_keys(kinds: dict[Path_, str], lines: LineMap, source: str | None) -> None:
    """Every key of the naming mappings that YAML reads as a boolean, null, number or date."""
    problems = []
    for path, kind in kinds.items():
        parent = path[:-1]
        if parent in [(k,) for k in _NAMING_LEVELS] or (len(parent) == 2 and parent[0] == "file_mounts"):
            written = str(path[-1])
            problems.append(TaskError(
                f"YAML reads this key as {kind}, not as the text {written}; quote it: '{written}'",
                path=source, line=line_of(lines, path), field=format_field(path)))
    if problems:
        raise combined(problems)


def _check_level(raw: dict[Any, Any], allowed: frozenset[str], path: Path_, lines: LineMap,
                 source: str | None) -> dict[str, Any]:
    """Refuse unknown keys at one level (all of them); drop empty values (`key:` with nothing =
    not given)."""
    unknown = [unknown_field_error(str(key), allowed, path, lines, source) for key in raw if str(key) not in allowed]
    if unknown:
        raise combined(unknown)
    return {str(k): v for k, v in raw.items() if v is not None}


def check_numbers(value: Any, path: Path_, lines: LineMap, source: str | None) -> None:
    """No NaN, no infinity, no whole number beyond 64 bits, anywhere (pass-through mappings
    such as `config:` included): such values mean nothing to a cloud and break consumers.
    Run after the models, whose own bounds say more (`num_nodes: must be at most 1000`).
    Recursion is bounded by the loader's depth limit."""
    bad = None
    if isinstance(value, float) and not math.isfinite(value):
        bad = f"must be a finite number, got {value}"
    elif isinstance(value, int) and not isinstance(value, bool) and not -MAX_INT - 1 <= value <= MAX_INT:
        bad = "a whole number must fit in 64 bits"
    if bad:
        raise TaskError(bad, path=source, line=line_of(lines, path), field=format_field(path) or None)
    if isinstance(value, dict):
        for key, item in value.items():
            check_numbers(item, path + (str(key),), lines, source)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            check_numbers(item, path + (i,), lines, source)


def _check_resource_entry(entry: Any, path: Path_, lines: LineMap, source: str | None) -> Any:
    if not isinstance(entry, dict):
        return entry  # pydantic reports the type with the right line
    entry = _check_level(entry, SINGLE_RESOURCE_KEYS, path, lines, source)
    _check_recovery(entry, path, lines, source)
    return entry


def _check_recovery(res: dict[str, Any], path: Path_, lines: LineMap, source: str | None) -> None:
    """Extra job_recovery keys may be plugin settings, so only close misspellings are refused."""
    for key in ("job_recovery", "spot_recovery"):
        spec = res.get(key)
        for name in spec if isinstance(spec, dict) else ():
            if str(name) not in RECOVERY_KEYS:
                err = unknown_field_error(str(name), RECOVERY_KEYS, path + (key,), lines, source)
                if err.hint:
                    raise err


def _coerce_env(values: Any, key: str, lines: LineMap, source: str | None) -> dict[str, str | None] | None:
    """SkyPilot's coercion: scalar values become str(value) (True -> 'True'); empty stays None.
    `secrets:` as a list (managed secret names) becomes names without values."""
    if isinstance(values, list) and key == "secrets" and all(isinstance(v, str) for v in values):
        return dict.fromkeys(values)
    if not isinstance(values, dict):
        return None  # pydantic reports the type
    out: dict[str, str | None] = {}
    for name, value in values.items():
        where: dict[str, Any] = dict(path=source, line=line_of(lines, (key, str(name))),
                                     field=format_field((key, str(name))))
        if not ENV_KEY.fullmatch(str(name)):
            raise TaskError("not a valid environment variable name (letters, digits and _, "
                            "not starting with a digit)", **where)
        if isinstance(value, (dict, list)):
            raise TaskError(f"expected a string value, got {'a list' if isinstance(value, list) else 'a mapping'}", **where)
        out[str(name)] = None if value is None else str(value)
    return out


def _check_sizes(values: dict[str, str | None], key: str, lines: LineMap, source: str | None) -> None:
    max_count, max_bytes = _VARIABLE_LIMITS[key]
    try:
        check_variables(values, key, max_count, max_bytes)
    except ValueError as exc:
        raise TaskError(str(exc), path=source, line=line_of(lines, (key,)), field=key) from None


def _fill_env_vars(value: Any, envs: dict[str, str]) -> Any:
    """SkyPilot substitutes $VAR / ${VAR} from envs and secrets into file_mounts and workdir;
    unknown variables stay as written."""
    if not envs:
        return value
    text = json.dumps(value)
    text = _ENV_REF.sub(lambda m: json.dumps(envs[m.group(1)])[1:-1]
                        if m.group(1) in envs else m.group(0), text)
    return json.loads(text)


def _normalize_targets(mounts: dict[str, Any], written: Any, lines: LineMap,
                       source: str | None) -> dict[str, Any]:
    """Targets normalised and kept in their root (after $VAR substitution, which could add
    '..'); errors point at the target as written."""
    originals = [str(k) for k in written] if isinstance(written, dict) else list(mounts)
    out: dict[str, Any] = {}
    for (target, spec), original in zip(mounts.items(), originals, strict=False):
        where = ("file_mounts", original)
        try:
            norm = normalize_mount_target(target)
        except ValueError as exc:
            raise TaskError(str(exc), path=source, line=line_of(lines, where),
                            field=format_field(where)) from None
        if norm in out:
            raise TaskError(f"the same target as another mount ({norm})", path=source,
                            line=line_of(lines, where), field=format_field(where))
        out[norm] = spec
    return out
