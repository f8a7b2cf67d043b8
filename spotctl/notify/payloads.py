"""What a status event looks like to the outside: a webhook's JSON body and an event_callback's
environment. Pure (no I/O), so the delivering activities (activities/notify.py) stay thin and
the shapes are tested without a network.

The webhook body is small, flat JSON with a Slack-compatible `text` line, so the same URL works
for a Slack/Mattermost/Discord-slack incoming webhook and for a program that reads the fields.
The callback environment is SkyPilot's (sky/jobs/utils.py `event_callback_func`): JOB_ID,
TASK_ID (the task's 0-based index in its pipeline), JOB_STATUS, CLUSTER_NAME, TASK_NAME,
SKYPILOT_TASK_ID and EVENT_TYPE=Spot, so a SkyPilot callback script runs unchanged; spotctl
adds SPOTCTL_EVENT_ID (for dropping repeats: delivery is at least once), SPOTCTL_JOB_NAME and
SPOTCTL_PREVIOUS_STATUS.
"""

from __future__ import annotations

import re
from typing import Any

from spotctl.models import JobEvent

MAX_REASON_CHARS = 300
"""A failure reason can be a whole stack trace; the one-line `text` keeps its start."""

_BREAKS = re.compile(r"[\x00-\x1f\x7f-\x9f]+")


def one_line(text: str, limit: int) -> str:
    """`text` on one line (control characters become spaces), at most `limit` characters."""
    flat = " ".join(_BREAKS.sub(" ", text).split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def slack_escape(text: str) -> str:
    """Slack reads <...> as links and mentions (<!channel>): a job name or reason must not."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def summary(event: JobEvent) -> str:
    """One line for people, e.g. `spotctl job 12 'bert-qa' is RECOVERING (recovery 1):
    preempted in aws/us-east-1 · cost so far $0.42`."""
    text = f"spotctl job {event.job_id} '{one_line(event.name, 100)}'"
    if event.task is not None:
        text += f" task {event.task}" + (f" '{one_line(event.task_name, 100)}'" if event.task_name else "")
    text += f" is {event.status.value}"
    if event.status.value == "RECOVERING":
        text += f" (recovery {event.recoveries})"
    elif event.recoveries:
        text += f" (after {event.recoveries} recover{'y' if event.recoveries == 1 else 'ies'})"
    if event.reason:
        text += f": {one_line(event.reason, MAX_REASON_CHARS)}"
    if event.cloud:
        text += f" in {event.cloud}" + (f"/{event.region}" if event.region else "")
    if event.cost_usd is not None:
        text += f" · cost {'' if event.status.is_terminal else 'so far '}${event.cost_usd:.2f}"
    return slack_escape(text)


def payload(event: JobEvent) -> dict[str, Any]:
    """The JSON body of one webhook POST. `event_id` is the same on every delivery of an event
    (also sent as the Idempotency-Key header), so a receiver can drop repeats."""
    return {
        "event_id": event.event_id,
        "job_id": event.job_id,
        "name": event.name,
        "status": event.status.value,
        "previous": event.previous.value if event.previous else None,
        "reason": event.reason,
        "recoveries": event.recoveries,
        "cost_usd": event.cost_usd,
        "task": event.task,
        "task_name": event.task_name,
        "task_id": event.task_id,
        "cluster_name": event.cluster_name,
        "cloud": event.cloud,
        "region": event.region,
        "at": event.at.isoformat(),
        "text": summary(event),
    }


def _env_value(value: object) -> str:
    """Environment values cannot hold NUL; nothing else is changed."""
    return str(value).replace("\x00", "")


def callback_env(event: JobEvent) -> dict[str, str]:
    """The variables an event_callback sees (on top of the worker's environment): SkyPilot's
    names and meanings first, then spotctl's additions."""
    env = {
        # SkyPilot (sky/jobs/utils.py event_callback_func):
        "JOB_ID": str(event.job_id),
        "TASK_ID": str(event.task if event.task is not None else 0),
        "JOB_STATUS": event.status.value,
        "CLUSTER_NAME": event.cluster_name or "",
        "TASK_NAME": event.task_name or event.name,
        "SKYPILOT_TASK_ID": event.task_id or "N.A.",
        "EVENT_TYPE": "Spot",
        # spotctl:
        "SPOTCTL_EVENT_ID": event.event_id,
        "SPOTCTL_JOB_NAME": event.name,
        "SPOTCTL_PREVIOUS_STATUS": event.previous.value if event.previous else "",
    }
    return {name: _env_value(value) for name, value in env.items()}
