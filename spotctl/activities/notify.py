"""deliver_webhook and run_event_callback: status events leave spotctl here.

The job's workflow keeps an ordered queue of events (workflows/event_outbox.py) and calls these
one at a time, so each must be safe to repeat (Temporal retries) and must end: a webhook POST
has a total deadline of at most webhook.MAX_POST_TIMEOUT_S (well under the 15 s heartbeat
time-out) and holds no thread, and an event_callback is killed, with its whole process group, at
its time-out or when the activity is cancelled. Both run on the notify task queue (worker/pool.py),
whose own slots bound how many a worker runs at once, so a slow receiver never starves job work.
The work itself is in activities/webhook.py, activities/chat.py (Slack and Discord, deliver_chat)
and activities/event_callback.py.
"""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from spotctl.activities.chat import post_chat
from spotctl.activities.deps import Deps
from spotctl.activities.event_callback import run_callback
from spotctl.activities.heartbeat import heartbeating
from spotctl.activities.webhook import post_event, shown_url
from spotctl.models import (
    WEBHOOK_REJECTED_ERROR,
    ActivityNames,
    CallbackOutcome,
    CallbackRequest,
    ChatRequest,
    WebhookRequest,
)

BAD_EVENT_CALLBACK_ERROR = "BadEventCallback"
"""ApplicationError type (non-retryable) of run_event_callback for a command bash cannot be
given (a NUL byte; task parsing refuses those, this guards older specs)."""

__all__ = ["BAD_EVENT_CALLBACK_ERROR", "WEBHOOK_REJECTED_ERROR", "NotifyActivities"]


class NotifyActivities:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @activity.defn(name=ActivityNames.DELIVER_WEBHOOK)
    async def deliver_webhook(self, req: WebhookRequest) -> None:
        """POST the event's JSON to the webhook, once; the workflow's retry policy repeats it."""
        async with heartbeating() as progress:
            progress(f"posting event {req.event.event_id} to {shown_url(req.url)}")
            status = await post_event(req)
        activity.logger.info("event %s delivered to %s (%d)", req.event.event_id, shown_url(req.url), status)

    @activity.defn(name=ActivityNames.DELIVER_CHAT)
    async def deliver_chat(self, req: ChatRequest) -> None:
        """POST the event's message to one Slack or Discord webhook, once; the workflow's retry
        policy repeats it (after the platform's Retry-After when it gave one)."""
        kind, shown = req.target.kind, shown_url(req.target.webhook_url)
        async with heartbeating() as progress:
            progress(f"posting event {req.event.event_id} to {kind} {shown}")
            status = await post_chat(req, self._ui_base())
        activity.logger.info("event %s delivered to %s %s (%d)", req.event.event_id, kind, shown, status)

    def _ui_base(self) -> str:
        """The namespace's page in this deployment's Temporal UI (the default message link). An
        embedded server's worker is given its address as SPOTCTL_TEMPORAL_ADDRESS (embedded/
        procs.py), so that address on the embedded port means the embedded UI's own port."""
        settings = self.deps.settings
        embedded = settings.temporal.address in (None, f"127.0.0.1:{settings.embedded.port}")
        ui = f"http://127.0.0.1:{settings.embedded.ui_port}" if embedded else settings.ui_url
        return f"{ui}/namespaces/{settings.temporal.namespace}"

    @activity.defn(name=ActivityNames.RUN_EVENT_CALLBACK)
    async def run_event_callback(self, req: CallbackRequest) -> CallbackOutcome:
        """Run the task's event_callback for one event; its exit code is returned, not raised."""
        if "\x00" in req.command:
            raise ApplicationError("event_callback contains a NUL byte", type=BAD_EVENT_CALLBACK_ERROR,
                                   non_retryable=True)
        async with heartbeating() as progress:
            progress(f"running the event_callback for {req.event.event_id} ({req.event.status.value})")
            return await run_callback(req)
