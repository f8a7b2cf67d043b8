"""How jobs look in a terminal and in JSON."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

from rich.markup import escape
from rich.table import Table

from spotctl.models import JobState, JobStatus

NAME_WIDTH = 40
RESOURCES_WIDTH = 60
PLACE_WIDTH = 24

# Characters a terminal acts on instead of showing: C0/C1 controls (ESC starts colour and
# cursor sequences, CR/LF move the line), DEL, and the bidi and line-separator marks that
# reorder or split what is shown.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
# What json.dumps leaves raw inside strings (it escapes C0 controls itself; outside strings
# JSON has only ASCII punctuation and its own newlines).
_UNSAFE_IN_JSON = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _visible(ch: str) -> str:
    return _NAMED.get(ch) or (f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")


def safe(text: str) -> str:
    """User-provided text (names, failure reasons, resources) as it may be printed: control
    characters become visible escapes (ESC -> `\\x1b`, newline -> `\\n`), so a job's name
    cannot recolour the terminal, move the cursor or fake extra rows."""
    return _UNSAFE.sub(lambda m: _visible(m.group()), text)


def clip(text: str, width: int) -> str:
    """At most `width` characters, the cut marked with `…`: one long value must not push the
    other columns of a table out of sight."""
    return text if len(text) <= width else text[: width - 1] + "…"


def cell(text: str | None, width: int | None = None) -> str:
    """A table cell from user-provided text: safe, clipped, and markup-escaped for rich."""
    shown = safe(text or "-")
    return escape(clip(shown, width) if width else shown)


def jobs_json(jobs: list[JobState]) -> str:
    """`status --json`: the JSON list scripts read. json.dumps escapes C0 controls; the other
    characters of `safe`'s set are escaped here too (as \\uXXXX, still valid JSON)."""
    text = json.dumps([as_json(j) for j in jobs], indent=2, ensure_ascii=False)
    return _UNSAFE_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


STATUS_STYLE = {
    JobStatus.SUCCEEDED: "green",
    JobStatus.RUNNING: "cyan",
    JobStatus.CANCELLED: "yellow",
    JobStatus.CANCELLING: "yellow",
    JobStatus.RECOVERING: "magenta",
}


def _now() -> datetime:
    return datetime.now(UTC)


def duration(seconds: float | None) -> str:
    """SkyPilot-like short durations: 45s, 3m 2s, 1h 5m, 2d 3h."""
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def ago(when: datetime | None) -> str:
    if when is None:
        return "-"
    secs = (_now() - when).total_seconds()
    if secs < 60:
        return f"{int(secs)} secs ago"
    if secs < 3600:
        return f"{int(secs // 60)} mins ago"
    if secs < 86400:
        return f"{int(secs // 3600)} hrs ago"
    return f"{int(secs // 86400)} days ago"


def total_seconds(job: JobState) -> float:
    return ((job.ended_at or _now()) - job.submitted_at).total_seconds()


def job_seconds(job: JobState) -> float | None:
    """Time spent RUNNING only, the current period included."""
    if job.started_at is None:
        return None
    running = (_now() - job.run_started_at).total_seconds() if job.run_started_at and not job.ended_at else 0.0
    return job.job_duration_s + running


def as_json(job: JobState) -> dict:
    data = job.model_dump(mode="json")
    data["total_duration_s"] = round(total_seconds(job), 3)
    data["job_duration_s"] = round(job_seconds(job) or 0.0, 3)
    return data


def status_table(jobs: list[JobState], *, show_all: bool) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    columns = ["ID", "NAME", "RESOURCES", "SUBMITTED", "TOT. DURATION", "JOB DURATION", "#RECOVERIES", "STATUS"]
    if show_all:
        columns += ["CLOUD", "REGION", "FAILURE"]
    for col in columns:
        table.add_column(col, no_wrap=col != "FAILURE", overflow="fold")
    for j in jobs:
        style = STATUS_STYLE.get(j.status, "red" if j.status.is_failure else "")
        row = [str(j.job_id), cell(j.name, NAME_WIDTH), cell(j.resources, RESOURCES_WIDTH), ago(j.submitted_at),
               duration(total_seconds(j)), duration(job_seconds(j)), str(j.recoveries),
               f"[{style}]{j.status.value}[/{style}]" if style else j.status.value]
        if show_all:
            row += [cell(j.cloud, PLACE_WIDTH), cell(j.region, PLACE_WIDTH), cell(j.failure_reason or j.detail)]
        table.add_row(*row)
    return table
