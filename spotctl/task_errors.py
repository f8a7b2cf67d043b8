"""User-facing errors for task YAML, the machinery that gives them a file and a line, and the
small value parsers (cpus '4+', accelerators 'T4:0.5', infra, durations) whose failures they report.

A task file is usually written by hand, so a bad one must be reported the way a compiler would:
`task.yaml:7: resources.cpuz: unknown field (did you mean 'cpus'?)`. PyYAML's `safe_load` throws the
positions away, so documents are composed here with a SafeLoader and the start line of every key
and list item is kept in a `LineMap` (path tuple -> 1-based line). Pydantic's errors are then turned
into one plain sentence about one field, with that field's line.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import ValidationError

from spotctl.policy.recovery import STRATEGIES

Path_ = tuple[str | int, ...]
"""A position inside a document: mapping keys and list indexes, e.g. ('resources', 'any_of', 0)."""

LineMap = dict[Path_, int]


class TaskError(Exception):
    """A problem with a task file that the user can fix; `str()` is the whole message.

    Attributes: path (file name as given, or None), line (1-based, or None), field (dotted, e.g.
    'resources.cpus'), message (plain words) and hint (e.g. "did you mean 'setup'?").
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        field: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.path = path
        self.line = line
        self.field = field
        self.message = message
        self.hint = hint

    def __reduce__(self) -> tuple[Any, ...]:  # keep the fields across pickling (e.g. processes)
        return (_rebuild_error, (self.message, self.path, self.line, self.field, self.hint))

    def __str__(self) -> str:
        where = ""
        if self.path:
            where = f"{self.path}:{self.line}: " if self.line else f"{self.path}: "
        what = f"{self.field}: " if self.field else ""
        hint = f" ({self.hint})" if self.hint else ""
        return f"{where}{what}{self.message}{hint}"


def _rebuild_error(message: str, path: str | None, line: int | None, field: str | None,
                   hint: str | None) -> TaskError:
    return TaskError(message, path=path, line=line, field=field, hint=hint)


def format_field(path: Iterable[str | int]) -> str:
    """('resources', 'any_of', 1, 'cpus') -> 'resources.any_of[1].cpus'."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def line_of(lines: LineMap, path: Path_) -> int | None:
    """The line of `path`, or of its nearest ancestor that has one."""
    for end in range(len(path), -1, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return None


@dataclass
class YamlDocument:
    """One `---` document: its plain Python value and where each of its keys was written."""

    data: Any
    lines: LineMap = field(default_factory=dict)


def load_documents(text: str, source: str | None) -> list[YamlDocument]:
    """Parse every document of `text`, keeping lines; malformed YAML becomes a TaskError."""
    loader = yaml.SafeLoader(text)
    docs: list[YamlDocument] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            lines: LineMap = {}
            _record_lines(node, (), lines)
            docs.append(YamlDocument(loader.construct_document(node), lines))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "syntax error"
        raise TaskError(
            f"not valid YAML: {problem}", path=source, line=mark.line + 1 if mark else None
        ) from None
    except yaml.YAMLError as exc:
        raise TaskError(f"not valid YAML: {exc}", path=source) from None
    finally:
        loader.dispose()
    return docs


def _record_lines(node: yaml.Node, path: Path_, lines: LineMap) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                sub = path + (str(key_node.value),)
                lines[sub] = key_node.start_mark.line + 1
                _record_lines(value_node, sub, lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _record_lines(item, path + (i,), lines)


def unknown_field_error(
    key: str, allowed: Iterable[str], path: Path_, lines: LineMap, source: str | None
) -> TaskError:
    """'unknown field', with the closest allowed key at that level as a hint."""
    close = difflib.get_close_matches(str(key), sorted(allowed), n=1, cutoff=0.6)
    return TaskError(
        "unknown field",
        path=source,
        line=line_of(lines, path + (key,)),
        field=format_field(path + (key,)),
        hint=f"did you mean '{close[0]}'?" if close else None,
    )


_EXPECTED = {
    "string_type": "a string",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
    "none_required": "nothing",
}


def describe_value(value: Any) -> str:
    """How a YAML value reads back to the user: 'two', 5, true, a list, a mapping."""
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _walk(data: Any, loc: tuple[Any, ...]) -> tuple[Path_, Any]:
    """Follow pydantic's `loc` through the raw document, skipping union-branch tags it adds."""
    path: list[str | int] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part in node:
            node = node[part]
            path.append(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
            path.append(part)
    return tuple(path), node


def validation_error(
    exc: ValidationError, data: Any, lines: LineMap, source: str | None, prefix: Path_ = ()
) -> TaskError:
    """One readable TaskError from pydantic's errors: the deepest field wins (it is the most
    specific); errors from several union branches at that field merge into 'expected A or B'."""
    found = [(_walk(data, tuple(err["loc"])), err) for err in exc.errors()]
    deepest = max(len(p) for (p, _), _ in found)
    (path, value), _ = next(item for item in found if len(item[0][0]) == deepest)
    here = [err for (p, _), err in found if p == path]
    expected: list[str] = []
    message = None
    for err in here:
        kind = err["type"]
        if kind in _EXPECTED:
            if _EXPECTED[kind] not in expected:
                expected.append(_EXPECTED[kind])
        elif message is None:
            message = _plain_message(err)
    if message is None:
        message = f"expected {' or '.join(expected)}, got {describe_value(value)}"
    full = prefix + path
    return TaskError(
        message, path=source, line=line_of(lines, full), field=format_field(full) or None
    )


def _plain_message(err: dict[str, Any]) -> str:
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind == "value_error" and "error" in ctx:
        return str(ctx["error"])
    if kind == "missing":
        return f"missing required field '{err['loc'][-1]}'"
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "literal_error":
        return f"expected {ctx.get('expected', 'one of the allowed values')}, got {describe_value(err['input'])}"
    bounds = {"greater_than_equal": ("ge", "at least"), "greater_than": ("gt", "more than"),
              "less_than_equal": ("le", "at most"), "less_than": ("lt", "less than")}
    if kind in bounds:
        key, words = bounds[kind]
        return f"must be {words} {ctx.get(key)}, got {describe_value(err['input'])}"
    return str(err["msg"])


# -- value parsers ---------------------------------------------------------------------------
# SkyPilot packs small languages into strings ('4+', 'T4:0.5', 'gcp/*/us-east4-b', '10m'). They
# live here, next to the errors, because each raises ValueError with the sentence the user sees.

RECOVERY_STRATEGIES = STRATEGIES  # the names policy/recovery.py acts on
_AMOUNT = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*([kmgtp]i?b?|b)?\s*(\+)?\s*$", re.IGNORECASE)
_UNIT_GB = {"b": 1 / 1024**3, "k": 1 / 1024**2, "m": 1 / 1024, "g": 1.0, "t": 1024.0, "p": 1024.0**2}
_ACCELERATOR = re.compile(r"^\s*([^:\s,{}\[\]]+)\s*(?::\s*(\d+(?:\.\d+)?|\.\d+)\s*)?$")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])", re.IGNORECASE)
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(path: str) -> bool:
    """s3://, gs://, https:// ... (a bucket or remote source, not a local path)."""
    return bool(_URL.match(path))


def check_strategy(name: str) -> str:
    """Upper-case a recovery strategy name and refuse unknown ones (with did-you-mean)."""
    upper = name.strip().upper()
    if upper not in RECOVERY_STRATEGIES:
        close = difflib.get_close_matches(upper, RECOVERY_STRATEGIES, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ValueError(f"unknown recovery strategy {name!r}; known: "
                         f"{', '.join(RECOVERY_STRATEGIES)}{hint}")
    return upper


def parse_amount(value: Any, what: str) -> tuple[float, bool]:
    """cpus / memory: 4, 4.5, '4', '4+' (at least 4); memory may carry a unit ('32GB+').
    Returns (number, at_least); memory is in GB."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"expected a number like 4, or 4+ for at least 4, got {describe_value(value)}")
    if isinstance(value, (int, float)):
        number, unit, plus = float(value), None, False
    else:
        match = _AMOUNT.match(value)
        if not match or (match.group(2) and what != "memory"):
            example = "4, 4+ or 32GB+" if what == "memory" else "4, or 4+ for at least 4"
            raise ValueError(f"expected a number like {example}, got {value!r}")
        number, unit, plus = float(match.group(1)), match.group(2), bool(match.group(3))
    if number < 0:
        raise ValueError(f"must not be negative, got {value!r}")
    if unit:
        number *= _UNIT_GB[unit[0].lower()]
    return number, plus


def parse_size_gb(value: Any) -> float:
    """disk_size: an integer number of GB, or a string with a unit ('256GB', '1TB')."""
    number, plus = parse_amount(value if isinstance(value, (int, str)) else "", "memory")
    if plus:
        raise ValueError(f"a disk size cannot be a minimum ('+'), got {value!r}")
    return number


def _one_accelerator(text: str) -> dict[str, float]:
    match = _ACCELERATOR.match(text)
    if not match:
        raise ValueError(f"{text!r} is not an accelerator; write NAME or NAME:COUNT, e.g. 'V100:1'")
    count = float(match.group(2)) if match.group(2) else 1.0
    if count <= 0:
        raise ValueError(f"accelerator count must be more than 0, got {text!r}")
    return {match.group(1): count}


def parse_accelerators(value: Any) -> tuple[list[dict[str, float]], bool]:
    """'V100', 'V100:2', 'T4:0.5', {'V100': 1}, ['V100', 'A100'] (ordered), {'V100', 'A100'}
    (YAML reads that as a mapping to nulls: any of) and the string forms '[..]' / '{..}'.
    Returns the alternatives as {name: count} and whether their order is a preference."""
    if value is None:
        return [], False
    if isinstance(value, str):
        text = value.strip()
        if text[:1] in "[{" and text[-1:] in "]}":
            parts = [p for p in text[1:-1].split(",") if p.strip()]
            return [_one_accelerator(p) for p in parts], text[0] == "["
        return [_one_accelerator(text)], False
    if isinstance(value, list):
        return [_one_accelerator(str(v)) for v in value], len(value) > 1
    if isinstance(value, dict):
        out = []
        for name, count in value.items():
            if count is None:
                out.append(_one_accelerator(str(name)))
            elif isinstance(count, bool) or not isinstance(count, (int, float)) or count <= 0:
                raise ValueError(f"accelerator count for {name} must be a number above 0")
            else:
                out.append({str(name): float(count)})
        return out, False
    raise ValueError("expected an accelerator such as 'V100:1', a mapping or a list")


def parse_infra(infra: str) -> tuple[str | None, str | None, str | None]:
    """'aws', 'aws/us-east-2', 'gcp/*/us-east4-b', '*/us-east-1', 'k8s/my-context' ->
    (cloud, region, zone); '*' means any. A Kubernetes context may contain '/'."""
    head, _, rest = infra.strip().partition("/")
    if head.lower() in ("k8s", "kubernetes"):
        return "kubernetes", rest or None, None
    parts = [head] + (rest.split("/") if rest else [])
    if len(parts) > 3 or any(not p.strip() for p in parts):
        raise ValueError(f"expected cloud[/region[/zone]] ('*' for any), got {infra!r}")
    cloud, region, zone = (parts + [None, None])[:3]
    return tuple(None if p == "*" else p for p in (cloud, region, zone))  # type: ignore[return-value]


def parse_duration(value: Any) -> float:
    """max_wait: seconds as a number, or '30s', '10m', '2h', '1d', '1h30m'."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return float(text)
    if not text or _DURATION.sub("", text).strip():
        raise ValueError(f"expected a duration such as 600, '30s', '10m' or '2h', got {value!r}")
    return sum(float(n) * _SECONDS[u.lower()] for n, u in _DURATION.findall(text))


# -- structural checks -----------------------------------------------------------------------
# Keys accepted at each level, from SkyPilot's schemas.py (current and older releases).
TASK_KEYS = frozenset({
    "name", "workdir", "event_callback", "num_nodes", "resources", "file_mounts", "service",
    "pool", "setup", "run", "envs", "secrets", "managed_secrets", "inputs", "outputs",
    "file_mounts_mapping", "config", "experimental", "volumes", "volume_mounts",
    "api_server_access", "_metadata",
})
SINGLE_RESOURCE_KEYS = frozenset({
    "cloud", "region", "zone", "infra", "cpus", "memory", "accelerators", "instance_type",
    "use_spot", "job_recovery", "spot_recovery", "volumes", "disk_size", "ephemeral_storage",
    "disk_tier", "network_tier", "local_disk", "max_hourly_cost", "ports", "labels",
    "accelerator_args", "_no_missing_accel_warnings", "image_id", "autostop", "priority",
    "priority_class", "_docker_login_config", "_is_image_managed", "_requires_fuse",
    "_cluster_config_overrides",
})
RESOURCE_KEYS = SINGLE_RESOURCE_KEYS | {"any_of", "ordered"}
STORAGE_KEYS = frozenset({
    "name", "source", "store", "persistent", "mode", "mount_options", "type", "config",
    "_is_sky_managed", "_bucket_sub_path", "_force_delete",
})
RECOVERY_KEYS = frozenset({"strategy", "max_restarts_on_errors", "recover_on_exit_codes", "max_wait"})
WORKDIR_KEYS = frozenset({"url", "ref"})

ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ENV_REF = re.compile(r"\$\{?\b([a-zA-Z_][a-zA-Z0-9_]*)\b\}?")


def check_document(raw: Any, lines: LineMap, source: str | None,
                   env_overrides: dict[str, str], secret_overrides: dict[str, str]) -> dict[str, Any]:
    """The checks pydantic cannot word well, on the plain data of one task document: unknown keys
    at every level SkyPilot closes (with did-you-mean), env coercion and --env/--secret overrides,
    then SkyPilot's $VAR substitution into file_mounts and workdir. Returns the data to validate."""
    if not isinstance(raw, dict):
        raise TaskError(
            f"a task must be a mapping of fields (name, resources, run ...), got "
            f"{'a list' if isinstance(raw, list) else repr(raw)}",
            path=source, line=line_of(lines, ()))
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
        for target, spec in mounts.items():
            if isinstance(spec, dict):
                _check_level(spec, STORAGE_KEYS, ("file_mounts", target), lines, source)
        data["file_mounts"] = mounts
    if isinstance(data.get("workdir"), dict):
        _check_level(data["workdir"], WORKDIR_KEYS, ("workdir",), lines, source)
    known: dict[str, str] = {}
    for key, overrides in (("envs", env_overrides), ("secrets", secret_overrides)):
        values = _coerce_env(data.get(key, {}), key, lines, source)
        if values is not None:
            data[key] = {**values, **overrides}
            known.update({k: v for k, v in data[key].items() if v is not None})
    for key in ("file_mounts", "workdir"):
        if key in data:
            data[key] = _fill_env_vars(data[key], known)
    return data


def _check_level(raw: dict[Any, Any], allowed: frozenset[str], path: Path_, lines: LineMap,
                 source: str | None) -> dict[str, Any]:
    """Refuse unknown keys at one level; drop empty values (`key:` with nothing = not given)."""
    for key in raw:
        if str(key) not in allowed:
            raise unknown_field_error(str(key), allowed, path, lines, source)
    return {str(k): v for k, v in raw.items() if v is not None}


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
        where = dict(path=source, line=line_of(lines, (key, str(name))),
                     field=format_field((key, str(name))))
        if key == "envs" and not ENV_KEY.fullmatch(str(name)):
            raise TaskError("not a valid environment variable name (letters, digits and _, "
                            "not starting with a digit)", **where)
        if isinstance(value, (dict, list)):
            raise TaskError(f"expected a string value, got {'a list' if isinstance(value, list) else 'a mapping'}", **where)
        out[str(name)] = None if value is None else str(value)
    return out


def _fill_env_vars(value: Any, envs: dict[str, str]) -> Any:
    """SkyPilot substitutes $VAR / ${VAR} from envs and secrets into file_mounts and workdir;
    unknown variables stay as written."""
    if not envs:
        return value
    text = json.dumps(value)
    text = _ENV_REF.sub(lambda m: json.dumps(envs[m.group(1)])[1:-1]
                        if m.group(1) in envs else m.group(0), text)
    return json.loads(text)
