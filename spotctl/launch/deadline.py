"""A task's deadline at launch: `deadline:` with `--compute-time`/`--deadline` applied, checked
and resolved to a DeadlineSpec (times absolute, durations in seconds).

Refused here, before anything is created (TaskError, exit 2), with the numbers: a deadline
already past, a deadline shorter than the compute the job needs (on-demand from now could not
make it), a deadline without a compute time (or a compute time without a deadline).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from spotctl.models import DEFAULT_CHANGEOVER_S, DeadlineSpec, hours_text
from spotctl.task import MAX_WAIT_S, Task, TaskError, parse_deadline_duration, parse_when


def _flag_value(text: str, flag: str, parse: Callable[[str], Any]) -> Any:
    try:
        return parse(text)
    except ValueError as exc:
        raise TaskError(str(exc), field=flag) from None


def _error(task: Task, message: str, field: str, *key: str) -> TaskError:
    """A problem of the flag `field` (no file, no line) or of the task's `deadline:` key."""
    if field.startswith("--"):
        return TaskError(message, field=field)
    return TaskError(message, path=task.source_path, line=task.line_at(*key) or task.line_at("deadline"), field=field)


def resolve_deadline(task: Task, compute_time: str | None, deadline: str | None,
                     now: datetime | None = None) -> DeadlineSpec | None:
    """The job's deadline (None: it has none), the flags over the task's `deadline:`."""
    block = task.deadline
    if block is None and compute_time is None and deadline is None:
        return None
    now = now or datetime.now(UTC)
    when = (_flag_value(deadline, "--deadline", parse_when) if deadline is not None
            else parse_when(block.by) if block is not None and block.by is not None else None)
    if compute_time is not None:
        compute_s = _flag_value(compute_time, "--compute-time", parse_deadline_duration)
    elif block is not None and block.compute is not None:
        compute_s = parse_deadline_duration(block.compute)
    else:
        raise _error(task, "a deadline needs the compute time the job takes: add `compute:` (e.g. `compute: 48h`) "
                     "to the task's `deadline:` block, or pass --compute-time DURATION",
                     "--deadline" if deadline is not None else "deadline", "deadline")
    if when is None:
        raise _error(task, "a compute time needs a deadline: add `by:` (an ISO 8601 time, or a duration from "
                     "launch such as `70h`) to the task's `deadline:` block, or pass --deadline WHEN",
                     "--compute-time" if compute_time is not None else "deadline", "deadline")
    by = now + timedelta(seconds=when) if isinstance(when, float) else when
    field = "--deadline" if deadline is not None else "deadline.by"
    left = (by - now).total_seconds()
    if left <= 0:
        raise _error(task, f"the deadline {by.isoformat(timespec='seconds')} is already past "
                     f"({hours_text(-left)} ago)", field, "deadline", "by")
    if left > MAX_WAIT_S:
        raise _error(task, f"the deadline is {hours_text(left)} away: at most {MAX_WAIT_S / 86400:.0f} days",
                     field, "deadline", "by")
    if left < compute_s:
        raise _error(task, f"deadline in {hours_text(left)} is shorter than the compute it needs "
                     f"({hours_text(compute_s)}): on-demand from now could not make it", field, "deadline", "by")
    changeover = (parse_deadline_duration(block.changeover, positive=False)
                  if block is not None and block.changeover is not None else DEFAULT_CHANGEOVER_S)
    checkpoint = (parse_deadline_duration(block.checkpoint_every)
                  if block is not None and block.checkpoint_every is not None else None)
    return DeadlineSpec(compute_s=compute_s, by=by.astimezone(UTC), changeover_s=changeover,
                        checkpoint_every_s=checkpoint, policy=(block.policy if block and block.policy else "spotctl"))
