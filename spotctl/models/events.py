"""Status events as webhooks and event callbacks hear them, and the notify settings a job carries.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from spotctl.models.chat import DEFAULT_CHAT_ON, ChatKind
from spotctl.models.status import JobStatus

DEFAULT_NOTIFY_ON = ("RECOVERING", "SUCCEEDED", "CANCELLED", "FAILED", "FAILED_SETUP", "FAILED_PRECHECKS",
                     "FAILED_NO_RESOURCE", "FAILED_CONTROLLER")
"""The statuses a webhook hears by default: recoveries and every end (not each start)."""


class NotifySettings(BaseModel):
    """`notify:` of config.yaml, carried in the job's spec (encrypted like every payload), so
    a worker on another machine delivers where the launching user asked."""

    url: str | None = None
    """The webhook: a JSON POST per event (Slack-compatible `text` field)."""
    on: list[JobStatus] = Field(default_factory=lambda: [JobStatus(s) for s in DEFAULT_NOTIFY_ON])
    """The statuses the webhook is told about (the event_callback hears every one)."""
    timeout_s: float = 10.0
    """One POST's time-out."""
    give_up_after_s: float = 86400.0
    """A webhook down longer than this (counted from the status change) loses the event, with
    a warning in the worker's log: events waiting for it must end some day."""
    callback_timeout_s: float = 60.0
    """How long an event_callback may run before it is killed."""
    link: str | None = None
    """The link in Slack and Discord messages: a URL template with {JOB_ID} and {WORKFLOW_ID}
    (e.g. a dashboard's job page); None: the worker's Temporal UI."""


class JobEvent(BaseModel):
    """One status change, as webhooks and event callbacks hear it. Delivered at least once;
    `event_id` is the same on every delivery of it, so a receiver can drop repeats."""

    event_id: str
    """'<job id>-<n>' for a job's n-th event, '<job id>-task<i>-<n>' for a pipeline task's."""
    job_id: int
    name: str
    """The job's name (a pipeline's name for its tasks' events)."""
    status: JobStatus
    previous: JobStatus | None = None
    reason: str | None = None
    """Why it failed or recovers (failure reason or progress detail), when known."""
    recoveries: int = 0
    cost_usd: float | None = None
    """What the job (this task, in a pipeline) cost so far, at the prices paid."""
    task: int | None = None
    task_name: str | None = None
    task_id: str = ""
    """SkyPilot's task id (SKYPILOT_TASK_ID of the job's programs)."""
    cluster_name: str | None = None
    """The attempt's cluster, when it has one."""
    cloud: str | None = None
    region: str | None = None
    at: datetime
    give_up_at: datetime | None = None
    """When delivery gives up on it (`at` + notify.give_up_after_s): it travels with the event
    across continue-as-new and to the events' own workflow, so a long outage gives each event
    up at its time, not a fresh give_up_after_s per run. Never sent to a receiver."""


class ChatTarget(BaseModel):
    """One Slack or Discord incoming webhook, as the task gave it (its URL with $VARs filled)."""

    kind: ChatKind
    webhook_url: str
    """A secret: shown only as scheme://host/… anywhere (activities/webhook.shown_url)."""
    channel: str | None = None
    username: str | None = None
    message: str | None = None
    """The template; None: spotctl's default message (job id, name, status, reason, cost, link)."""
    notify_on: list[JobStatus] = Field(default_factory=lambda: [JobStatus(s) for s in DEFAULT_CHAT_ON])
    """The status filter."""


class ChatRequest(BaseModel):
    """Post one event to one chat target (activity deliver_chat)."""

    event: JobEvent
    target: ChatTarget
    timeout_s: float = 10.0
    link: str | None = None
    """`notify.link` of config.yaml (a URL template with {JOB_ID} / {WORKFLOW_ID}); None: the
    worker's Temporal UI."""


class EventsHandoff(BaseModel):
    """What a job's (a task's, a pipeline's) workflow leaves undelivered when it ends: a
    JobEventsWorkflow of its own delivers it, so no webhook outage holds up the job's end."""

    job_id: int
    name: str
    notify: NotifySettings | None = None
    callback: str | None = None
    callback_envs: dict[str, str] = Field(default_factory=dict)
    """The task's envs and secrets for its callback, as the job's workflow had them."""
    events: list[JobEvent]
    """In order; the first may have been delivered already (at least once: same event id)."""
    seq: int = 0
    chat: list[ChatTarget] = Field(default_factory=list)
    """The task's Slack and Discord targets."""


class WebhookRequest(BaseModel):
    """POST one event to the webhook (activity deliver_webhook)."""

    event: JobEvent
    url: str
    timeout_s: float = 10.0


class CallbackRequest(BaseModel):
    """Run the task's event_callback for one event (activity run_event_callback)."""

    event: JobEvent
    command: str
    timeout_s: float = 60.0
    envs: dict[str, str] = Field(default_factory=dict)
    """The task's envs and secrets, as SkyPilot gives them to its callback (a webhook URL or a
    token often lives there); empty when they are larger than MAX_CALLBACK_ENV_BYTES."""


MAX_CALLBACK_ENV_BYTES = 16 * 1024
"""The most of the task's envs and secrets copied into each callback's request (each one is
kept in the job's history)."""


class CallbackOutcome(BaseModel):
    """How the callback ended: its exit code, or None when it was killed at its time-out."""

    exit_code: int | None
    timed_out: bool = False
