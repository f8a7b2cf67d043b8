"""How jobs look in a terminal and in JSON."""

from __future__ import annotations

from datetime import UTC, datetime

from rich.markup import escape
from rich.table import Table

from spotctl.models import JobState, JobStatus

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
        row = [str(j.job_id), escape(j.name), escape(j.resources), ago(j.submitted_at), duration(total_seconds(j)),
               duration(job_seconds(j)), str(j.recoveries), f"[{style}]{j.status.value}[/{style}]" if style else j.status.value]
        if show_all:
            row += [j.cloud or "-", j.region or "-", escape(j.failure_reason or j.detail or "-")]
        table.add_row(*row)
    return table
