"""User-facing errors for task files: the TaskError type and how a problem is worded.

A task file is usually written by hand, so a bad one must be reported the way a compiler would:
`task.yaml:7: resources.cpuz: unknown field (did you mean 'cpus'?)`. The YAML loader
(`task_yaml`) keeps the start line of every key and list item in a `LineMap` (path tuple ->
1-based line); pydantic's errors are turned here into one plain sentence about one field, with
that field's line. Whatever the input, the message is one line without control characters, so
the CLI can print it as is (exit code 2). Several problems of one file are reported together, as
a compiler does: `TaskErrors` holds them and prints one such line each.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError

from spotctl.task.values import describe_value, is_url  # noqa: F401  (is_url: old import path)

Path_ = tuple[str | int, ...]
"""A position inside a document: mapping keys and list indexes, e.g. ('resources', 'any_of', 0)."""

LineMap = dict[Path_, int]

_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_MAX_PART = 200
MAX_SHOWN_PROBLEMS = 50
"""Lines a TaskErrors prints; a file with more problems is far from right, and the rest would
only bury the first ones (a generated file can hold thousands of unknown keys)."""
"""Longest piece (field name, message) shown; keys and values come from the user's file."""


def _printable(text: str) -> str:
    """Escape control characters (ANSI escapes, newlines) and cut what is far too long."""
    text = _UNPRINTABLE.sub(lambda m: repr(m.group(0))[1:-1], text)
    return text if len(text) <= _MAX_PART * 2 else text[: _MAX_PART * 2] + "..."


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
        return _printable(where) + _printable(what) + _printable(f"{self.message}{hint}")


class TaskErrors(TaskError):
    """Several problems found in one run (one line each, in the order found), so a user fixes
    them all at once instead of meeting them one launch at a time. Its own fields are the
    first problem's; `errors` holds them all (never a TaskErrors)."""

    errors: list[TaskError]

    def __init__(self, errors: list[TaskError]) -> None:
        flat = [e for err in errors for e in (err.errors if isinstance(err, TaskErrors) else [err])]
        first = flat[0]
        super().__init__(first.message, path=first.path, line=first.line, field=first.field, hint=first.hint)
        self.errors = flat

    def __reduce__(self) -> tuple[Any, ...]:
        return (TaskErrors, (self.errors,))

    def __str__(self) -> str:
        shown = [str(e) for e in self.errors[:MAX_SHOWN_PROBLEMS]]
        if len(self.errors) > MAX_SHOWN_PROBLEMS:
            shown.append(f"... and {len(self.errors) - MAX_SHOWN_PROBLEMS} more problems")
        return "\n".join(shown)


def combined(errors: list[TaskError]) -> TaskError:
    """One error to raise for a non-empty list of problems: the problem itself when there is
    one (its message unchanged), else a TaskErrors of all of them, duplicates dropped."""
    unique = list({str(e): e for err in errors
                   for e in (err.errors if isinstance(err, TaskErrors) else [err])}.values())
    return unique[0] if len(unique) == 1 else TaskErrors(unique)


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


def unknown_field_error(
    key: str, allowed: Iterable[str], path: Path_, lines: LineMap, source: str | None
) -> TaskError:
    """'unknown field', with the closest allowed key at that level as a hint."""
    close = difflib.get_close_matches(str(key)[:_MAX_PART], sorted(allowed), n=1, cutoff=0.6)
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
    "finite_number": "a finite number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
    "none_required": "nothing",
}


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
            message = _plain_message(dict(err))
    if message is None:
        message = f"expected {' or '.join(expected)}, got {describe_value(value)}"
    full = prefix + path
    return TaskError(
        message, path=source, line=line_of(lines, full), field=format_field(full) or None
    )


def _plain_message(err: dict[str, Any]) -> str:  # noqa: D103
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
              "less_than_equal": ("le", "at most"), "less_than": ("lt", "less than"),
              "too_long": ("max_length", "at most"), "too_short": ("min_length", "at least")}
    if kind in bounds:
        key, words = bounds[kind]
        if kind in ("too_long", "too_short"):
            return f"must have {words} {ctx.get(key)} entries, got {ctx.get('actual_length')}"
        return f"must be {words} {ctx.get(key)}, got {describe_value(err['input'])}"
    return str(err["msg"])
