"""The small value languages of a task file, parsed and bounded.

SkyPilot packs small languages into strings ('4+', 'T4:0.5', 'gcp/*/us-east4-b', '10m'). Each
parser here raises ValueError with the sentence the user sees (the callers add file, line and
field), and checks the bounds of `task_limits` at the same time, so a value is never accepted
in one place (YAML) and refused in another (the command line): both go through these functions.
Nothing here imports the rest of the task code.
"""

from __future__ import annotations

import difflib
import math
import re
from datetime import datetime
from typing import Any

from spotctl.policy import DEADLINE_POLICIES, STRATEGIES
from spotctl.task.limits import (
    MAX_ACCELERATOR_CHOICES,
    MAX_ACCELERATOR_COUNT,
    MAX_COMMAND_BYTES,
    MAX_CPUS,
    MAX_DISK_GB,
    MAX_EVENT_CALLBACK_BYTES,
    MAX_HOOK_RUN_CHARS,
    MAX_MEMORY_GB,
    MAX_MOUNT_TARGET_CHARS,
    MAX_NAME_CHARS,
    MAX_PORT_ENTRIES,
    MAX_WAIT_S,
    PORT_RANGE,
)

RECOVERY_STRATEGIES = STRATEGIES  # the names policy/recovery.py acts on
_SHORT_TEXT = 128
"""Longer than any real '4+', 'V100:8', '10m' or '8080-8090'; also keeps the regexes linear."""
_AMOUNT = re.compile(r"(\d+(?:\.\d+)?|\.\d+)\s*([kmgtp]i?b?|b)?\s*(\+)?", re.IGNORECASE | re.ASCII)
_UNIT_GB = {"b": 1 / 1024**3, "k": 1 / 1024**2, "m": 1 / 1024, "g": 1.0, "t": 1024.0, "p": 1024.0**2}
_ACCELERATOR = re.compile(r"([^:\s,{}\[\]]+)\s*(?::\s*(\d+(?:\.\d+)?|\.\d+))?", re.ASCII)
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])", re.IGNORECASE | re.ASCII)
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_NAME = re.compile(r"[a-zA-Z0-9]+(?:[._-]{1,2}[a-zA-Z0-9]+)*")
"""SkyPilot's task name rule (sky/task.py `_VALID_NAME_REGEX`)."""
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_PORT = re.compile(r"(\d{1,5})(?:\s*-\s*(\d{1,5}))?", re.ASCII)


# -- how values read back in messages -------------------------------------------------------


def shown(text: str, limit: int = 60) -> str:
    """repr() of a string from the user, cut short: control characters come out escaped and a
    megabyte of text does not end up in a one-line message."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def describe_value(value: Any) -> str:
    """How a YAML value reads back to the user: 'two', 5, true, a list, a mapping."""
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return shown(value)
    if isinstance(value, int):
        return str(value) if abs(value) < 10**30 else "a number with more than 30 digits"
    if isinstance(value, float):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _number(value: float, low: float, high: float, *, low_open: bool = False) -> float:
    """`value` if finite and within bounds, else the ValueError that says which bound."""
    if not math.isfinite(value):
        raise ValueError(f"must be a finite number, got {value}")
    if value < low or (low_open and value == low):
        raise ValueError(f"must be {'more than' if low_open else 'at least'} {low:g}, got {value:g}")
    if value > high:
        raise ValueError(f"must be at most {high:g}, got {value:g}")
    return value


def _short(value: str, what: str) -> str:
    if len(value) > _SHORT_TEXT:
        raise ValueError(f"{what} is too long ({len(value)} characters; at most {_SHORT_TEXT})")
    return value.strip()


# -- names, urls, strategies -----------------------------------------------------------------


def is_url(path: str) -> bool:
    """s3://, gs://, https:// ... (a bucket or remote source, not a local path)."""
    return bool(_URL.match(path))


def check_name(name: str) -> str:
    """A job name as SkyPilot accepts it, and at most MAX_NAME_CHARS long. Names end up in
    terminals, tags and search attributes, so escape codes and newlines never get through."""
    if len(name) > MAX_NAME_CHARS:
        raise ValueError(f"a name is at most {MAX_NAME_CHARS} characters, got {len(name)}")
    if not _NAME.fullmatch(name):
        raise ValueError(f"not a valid name: {shown(name)} (use letters, digits and . _ -, "
                         "starting and ending with a letter or digit)")
    return name


def check_strategy(name: str) -> str:
    """Upper-case a recovery strategy name and refuse unknown ones (with did-you-mean)."""
    upper = _short(name, "a strategy name").upper()
    if upper not in RECOVERY_STRATEGIES:
        close = difflib.get_close_matches(upper, RECOVERY_STRATEGIES, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ValueError(f"unknown recovery strategy {shown(name)}; known: "
                         f"{', '.join(RECOVERY_STRATEGIES)}{hint}")
    return upper


def check_command(text: str) -> str:
    """run / setup: bounded, since the command travels in every node activity's input."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_COMMAND_BYTES:
        raise ValueError(f"{size} bytes is more than the limit of {MAX_COMMAND_BYTES} bytes "
                         "(put long scripts in the workdir and run them from there)")
    return text


def check_event_callback(text: str) -> str:
    """event_callback: bounded (it is sent with every status event), and something bash can be
    given as an argument (no NUL byte), so a bad one is refused now, not at the job's first event."""
    if "\x00" in text:
        raise ValueError("contains a NUL byte (\\0), which a shell command cannot hold")
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_EVENT_CALLBACK_BYTES:
        raise ValueError(f"{size} bytes is more than the limit of {MAX_EVENT_CALLBACK_BYTES} bytes "
                         "(put a longer script in a file and call it from event_callback)")
    return text


def check_hook_run(text: str) -> str:
    """A `config.hooks` entry's `run`: SkyPilot's bounds (1 to 16 KiB characters), and a script
    bash can hold (no NUL byte): refused at launch, not when the notice comes."""
    if not text:
        raise ValueError("a hook needs a command to run (an empty run)")
    if "\x00" in text:
        raise ValueError("contains a NUL byte (\\0), which a shell script cannot hold")
    if len(text) > MAX_HOOK_RUN_CHARS:
        raise ValueError(f"{len(text)} characters is more than the limit of {MAX_HOOK_RUN_CHARS} "
                         "(put a longer script in the workdir and call it from the hook's run)")
    return text


def check_variables(values: dict[str, str | None], what: str, max_count: int, max_bytes: int) -> None:
    """envs / secrets: at most `max_count` names and `max_bytes` of names plus values."""
    if len(values) > max_count:
        raise ValueError(f"{len(values)} {what} is more than the limit of {max_count}")
    size = sum(len(k.encode("utf-8", "surrogatepass")) + len((v or "").encode("utf-8", "surrogatepass"))
               for k, v in values.items())
    if size > max_bytes:
        raise ValueError(f"{size} bytes of {what} is more than the limit of {max_bytes} bytes")


# -- resources -------------------------------------------------------------------------------


def parse_amount(value: Any, what: str) -> tuple[float, bool]:
    """cpus / memory: 4, 4.5, '4', '4+' (at least 4); memory may carry a unit ('32GB+').
    Returns (number, at_least); memory is in GB. Both must be above 0 and within bounds."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"expected a number like 4, or 4+ for at least 4, got {describe_value(value)}")
    if isinstance(value, (int, float)):
        number, unit, plus = float(value), None, False
    else:
        match = _AMOUNT.fullmatch(_short(value, "the value"))
        if not match or (match.group(2) and what != "memory"):
            example = "4, 4+ or 32GB+" if what == "memory" else "4, or 4+ for at least 4"
            raise ValueError(f"expected a number like {example}, got {shown(value)}")
        number, unit, plus = float(match.group(1)), match.group(2), bool(match.group(3))
    if unit:
        number *= _UNIT_GB[unit[0].lower()]
    high = MAX_MEMORY_GB if what == "memory" else MAX_CPUS
    return _number(number, 0, high, low_open=True), plus


def parse_size_gb(value: Any) -> float:
    """disk_size: an integer number of GB, or a string with a unit ('256GB', '1TB')."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"expected a size like 256 or '1TB', got {describe_value(value)}")
    if isinstance(value, int):
        number, plus = float(value), False
    else:
        match = _AMOUNT.fullmatch(_short(value, "the size"))
        if not match:
            raise ValueError(f"expected a size like 256 or '1TB', got {shown(value)}")
        number, plus = float(match.group(1)), bool(match.group(3))
        if match.group(2):
            number *= _UNIT_GB[match.group(2)[0].lower()]
    if plus:
        raise ValueError(f"a disk size cannot be a minimum ('+'), got {shown(str(value))}")
    return _number(number, 0, MAX_DISK_GB, low_open=True)


def _one_accelerator(text: str) -> dict[str, float]:
    match = _ACCELERATOR.fullmatch(_short(text, "an accelerator"))
    if not match:
        raise ValueError(f"{shown(text)} is not an accelerator; write NAME or NAME:COUNT, e.g. 'V100:1'")
    count = float(match.group(2)) if match.group(2) else 1.0
    return {match.group(1): _accelerator_count(count, text)}


def _accelerator_count(count: float, text: str) -> float:
    if not math.isfinite(count) or not 0 < count <= MAX_ACCELERATOR_COUNT:
        raise ValueError(f"accelerator count must be more than 0 and at most "
                         f"{MAX_ACCELERATOR_COUNT}, got {shown(text)}")
    return count


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
            out, ordered = [_one_accelerator(p) for p in parts[:MAX_ACCELERATOR_CHOICES + 1]], text[0] == "["
        else:
            out, ordered = [_one_accelerator(text)], False
    elif isinstance(value, list):
        out = [_one_accelerator(str(v)) for v in value[:MAX_ACCELERATOR_CHOICES + 1]]
        ordered = len(value) > 1
    elif isinstance(value, dict):
        out, ordered = [], False
        for name, count in list(value.items())[:MAX_ACCELERATOR_CHOICES + 1]:
            if count is None:
                out.append(_one_accelerator(str(name)))
            elif isinstance(count, bool) or not isinstance(count, (int, float)):
                raise ValueError(f"accelerator count for {shown(str(name))} must be a number above 0")
            else:
                out.append({_short(str(name), "an accelerator name"): _accelerator_count(
                    float(count), f"{name}:{count}")})
    else:
        raise ValueError("expected an accelerator such as 'V100:1', a mapping or a list")
    if len(out) > MAX_ACCELERATOR_CHOICES:
        raise ValueError(f"at most {MAX_ACCELERATOR_CHOICES} accelerator choices")
    return out, ordered


def parse_infra(infra: str) -> tuple[str | None, str | None, str | None]:
    """'aws', 'aws/us-east-2', 'gcp/*/us-east4-b', '*/us-east-1', 'k8s/my-context' ->
    (cloud, region, zone); '*' means any. A Kubernetes context may contain '/'."""
    head, _, rest = _short(infra, "infra").partition("/")
    if head.lower() in ("k8s", "kubernetes"):
        return "kubernetes", rest or None, None
    parts = [head] + (rest.split("/") if rest else [])
    if len(parts) > 3 or any(not p.strip() for p in parts):
        raise ValueError(f"expected cloud[/region[/zone]] ('*' for any), got {shown(infra)}")
    cloud, region, zone = (parts + [None, None])[:3]
    return tuple(None if p == "*" else p for p in (cloud, region, zone))  # type: ignore[return-value]


def parse_duration(value: Any) -> float:
    """max_wait: seconds as a number, or '30s', '10m', '2h', '1d', '1h30m'; at most MAX_WAIT_S."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _number(float(value), 0, MAX_WAIT_S)
    text = _short(str(value), "a duration")
    if re.fullmatch(r"\d+(?:\.\d+)?", text, re.ASCII):
        return _number(float(text), 0, MAX_WAIT_S)
    if not text or _DURATION.sub("", text).strip():
        raise ValueError(f"expected a duration such as 600, '30s', '10m' or '2h', got {shown(text)}")
    return _number(sum(float(n) * _SECONDS[u.lower()] for n, u in _DURATION.findall(text)), 0, MAX_WAIT_S)


def parse_deadline_duration(value: Any, *, positive: bool = True) -> float:
    """deadline.compute, changeover, checkpoint_every, `--compute-time`: seconds, as max_wait's
    durations ('48h', '30s', '1h30m', a number of seconds); at most MAX_WAIT_S, more than 0
    when `positive`."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"expected a duration such as '48h', '30m' or 600, got {describe_value(value)}")
    seconds = parse_duration(value)
    if positive and seconds <= 0:
        raise ValueError(f"must be more than 0, got {describe_value(value)}")
    return seconds


def parse_when(value: Any) -> float | datetime:
    """deadline.by, `--deadline`: a duration from launch ('70h', '3d', 600 seconds), returned in
    seconds, or an ISO 8601 time ('2026-12-11T18:00:00Z'), returned as an aware datetime (one
    without an offset is the launching machine's local time)."""
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.astimezone()
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"expected a time such as '2026-12-11T18:00:00Z' or a duration from launch such as "
                         f"'70h', got {describe_value(value)}")
    text = _short(str(value), "a deadline")
    if _DURATION.sub("", text).strip() == "" or re.fullmatch(r"\d+(?:\.\d+)?", text, re.ASCII):
        return parse_deadline_duration(text)
    try:
        when = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise ValueError(f"expected a time such as '2026-12-11T18:00:00Z' or a duration from launch such as "
                         f"'70h', got {shown(text)}") from None
    return when if when.tzinfo is not None else when.astimezone()


def check_deadline_policy(name: str) -> str:
    """deadline.policy: a name of policy/deadline.py's DEADLINE_POLICIES (with did-you-mean)."""
    text = _short(name, "a policy name").lower()
    if text not in DEADLINE_POLICIES:
        close = difflib.get_close_matches(text, list(DEADLINE_POLICIES), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ValueError(f"unknown deadline policy {shown(name)}; known: {', '.join(DEADLINE_POLICIES)}{hint}")
    return text


def parse_ports(value: Any) -> list[tuple[int, int]]:
    """ports: 8080, '8080', '10000-10010' or a list of those; each within 1..65535."""
    items = value if isinstance(value, list) else [value]
    if len(items) > MAX_PORT_ENTRIES:
        raise ValueError(f"at most {MAX_PORT_ENTRIES} ports or port ranges, got {len(items)}")
    out: list[tuple[int, int]] = []
    low, high = PORT_RANGE
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (int, str)):
            raise ValueError(f"expected a port like 8080 or '10000-10010', got {describe_value(item)}")
        match = _PORT.fullmatch(_short(str(item), "a port"))
        if not match:
            raise ValueError(f"expected a port like 8080 or '10000-10010', got {describe_value(item)}")
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) else first
        if not low <= first <= last <= high:
            raise ValueError(f"ports are {low}..{high} (a range low-high), got {describe_value(item)}")
        out.append((first, last))
    return out


# -- file mounts -----------------------------------------------------------------------------


def normalize_mount_target(target: str) -> str:
    """A file-mount target, normalised ('~/a/./b/' -> '~/a/b'), refused if it leaves its root.

    `~/x` and relative targets live under the node's home, absolute ones under `/` (allowed, as
    in SkyPilot). A `..` that climbs above that root would write outside the instance's tree, so
    it is refused rather than silently clipped. Control characters and `/` itself are refused."""
    if not target.strip():
        raise ValueError("a mount target must not be empty")
    if len(target) > MAX_MOUNT_TARGET_CHARS:
        raise ValueError(f"a mount target is at most {MAX_MOUNT_TARGET_CHARS} characters")
    if _CONTROL.search(target):
        raise ValueError(f"a mount target must not hold control characters: {shown(target)}")
    if target == "~" or target.startswith("~/"):
        prefix, rest, root = "~/", target[1:], "~ (the home directory)"
    elif target.startswith("/"):
        prefix, rest, root = "/", target, "/"
    else:
        prefix, rest, root = "", target, "the home directory"
    parts: list[str] = []
    for part in rest.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise ValueError(f"mount target {shown(target)} climbs above {root}")
            parts.pop()
        else:
            parts.append(part)
    if not parts:
        if prefix == "/":
            raise ValueError("cannot mount over /")
        return "~"
    return prefix + "/".join(parts)
