"""A job's status events, delivered in order to its webhook, its Slack and Discord targets and its
event_callback.

Every status change becomes a JobEvent in an ordered queue held in the workflow (so in its
history: a worker that dies loses nothing); one background coroutine delivers the head event
with activities and only then drops it, so each event reaches the receiver at least once, in
order, with the same event id on every delivery. The webhook is retried with exponential
backoff until it answers, or a 4xx says never, or the event's own deadline passes (when it
happened + notify.give_up_after_s, carried with it); the callback runs with a time-out and its
failure is only logged: no delivery problem ever changes the job.

Undelivered events go with the workflow's state on continue-as-new. When the workflow ends it
waits a moment (HANDOFF_AFTER) for its last events and hands what is left to a workflow of
their own (JobEventsWorkflow, at the end of this module, id `<the job's or task's workflow
id>-events`, abandoned by its parent), so a webhook outage never holds up a job's end, a
pipeline's next task or a cancel. Each workflow's events reach the receiver in order (a pipeline's tasks and its own end
are separate streams, each numbered on its own). Deterministic, no I/O.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from spotctl.activities import NotifyActivities  # its typed references only (passed through)
    from spotctl.models import (
        CHAT_REJECTED_ERROR,
        HEARTBEAT_TIMEOUT_S,
        MAX_CALLBACK_ENV_BYTES,
        WEBHOOK_REJECTED_ERROR,
        CallbackRequest,
        ChatRequest,
        ChatTarget,
        EventsHandoff,
        JobEvent,
        JobSpec,
        JobState,
        JobStatus,
        NotifySettings,
        WebhookRequest,
        cluster_name,
        notify_queue,
    )
    from spotctl.models.naming import EVENTS_WORKFLOW, events_workflow_id
    from spotctl.models.skypilot_ids import task_id
    from spotctl.policy import job_cost
    from spotctl.workflows.job_summary import describe
    from spotctl.workflows.shielded import shielded
    from spotctl.workflows.visibility import internal_child

NOTIFICATIONS = "notifications"
"""The patch under which a job with a webhook or an event_callback delivers its events."""
NOTIFY_QUEUE = "notify-queue"
"""The patch that delivers events on their own task queue (models.notify_queue), whose slots
bound how many deliveries a worker runs at once, apart from job work."""
EVENTS_HANDOFF = "events-handoff"
"""The patch under which a workflow that ends with events undelivered after HANDOFF_AFTER hands
them to a JobEventsWorkflow instead of waiting for them (up to give_up_after_s, a day)."""
EVENT_DEADLINES = "event-deadlines"
"""The patch that gives the webhook only what is left of an event's own deadline (JobEvent.
give_up_at), and gives up at once an event past it, instead of a fresh give_up_after_s each
time its delivery starts (each run after continue-as-new)."""
CHAT_NOTIFICATIONS = "chat-notifications"
"""The patch under which a job's Slack and Discord targets (SkyPilot's `event_callback:` list)
get each event, after the webhook and before the callback."""
HANDOFF_AFTER = timedelta(seconds=5)
"""How long an ending workflow waits for its last events before handing them off: a receiver
that is up takes them well within it, so most jobs never need an events workflow."""


_WEBHOOK_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                             maximum_interval=timedelta(seconds=60),
                             non_retryable_error_types=[WEBHOOK_REJECTED_ERROR])
_CHAT_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                          maximum_interval=timedelta(seconds=60),
                          non_retryable_error_types=[CHAT_REJECTED_ERROR])
"""As the webhook's; a 429's Retry-After replaces the backoff (the activity's next_retry_delay)."""
_CALLBACK_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=3)
"""A callback's own exit code is returned, never retried; this only covers a worker lost
while it ran (so a callback may run twice then: SPOTCTL_EVENT_ID tells the repeats apart)."""


MAX_PENDING_EVENTS = 500
"""Events kept waiting for a webhook that is down; past it the oldest waiting one is dropped
(with a warning), so the workflow's state and continue-as-new input stay small."""


class EventOutbox:
    """The events of one workflow (a job, a pipeline task, or a pipeline's own end)."""

    def __init__(self, *, job_id: int, name: str, notify: NotifySettings | None, callback: str | None,
                 spec: JobSpec | None = None, pending: list[JobEvent] | None = None, seq: int = 0,
                 callback_envs: dict[str, str] | None = None, chat: list[ChatTarget] | None = None) -> None:
        self._job_id, self._name, self._spec = job_id, name, spec
        self._settings = notify or NotifySettings()
        self._notify = notify if notify is not None and notify.url else None
        """The webhook's settings, None without a webhook."""
        self._callback = callback or None
        self._chat = list(chat or [])
        """Slack and Discord targets, in the task's order."""
        self._callback_envs = (callback_envs if callback_envs is not None
                               else _callback_envs(spec, job_id) if self._callback and spec is not None else {})
        # Events carried from a run before deadlines were kept get theirs now, once.
        self._queue: list[JobEvent] = [e if e.give_up_at else e.model_copy(update={"give_up_at": self._deadline()})
                                       for e in pending or []]
        self._seq = seq
        self._delivering = False
        self._in_callback = False
        self._closing = False
        """Set when the workflow hands its events off: no further delivery starts here."""
        self._started = False
        self._task: asyncio.Task | None = None
        self.enabled = ((self._notify is not None or self._callback is not None or bool(self._chat))
                        and workflow.patched(NOTIFICATIONS))
        if self.enabled:
            self._start()  # events carried over continue-as-new go out now, not at the next change

    @property
    def pending(self) -> list[JobEvent]:
        """Events not yet delivered (the head one may be under way), each with its deadline:
        carried on continue-as-new."""
        return list(self._queue)

    @property
    def seq(self) -> int:
        return self._seq

    def record(self, state: JobState, previous: JobStatus | None) -> None:
        """Queue the event of `state`'s new status (the caller saw it change) and make sure the
        delivery coroutine runs."""
        if not self.enabled:
            return
        self._seq += 1
        self._queue.append(self._event(state, previous))
        if len(self._queue) > MAX_PENDING_EVENTS:  # the head may be under way: keep it
            dropped = self._queue.pop(1)
            workflow.logger.warning("job %s: %d events wait for delivery; dropped %s (%s)", self._job_id,
                                    len(self._queue), dropped.event_id, dropped.status.value)
        self._start()

    def _start(self) -> None:
        if not self._started and self._queue:
            self._started = True
            self._task = asyncio.create_task(self._deliver_forever())

    async def drained(self) -> None:
        """Wait until every queued event was delivered (or given up on)."""
        if not self.enabled:
            return
        self._start()
        await workflow.wait_condition(self._idle)

    async def finish(self) -> None:
        """The workflow is about to end: wait up to HANDOFF_AFTER for its last events, then hand
        those still undelivered to a JobEventsWorkflow and return, so delivery never holds up
        the job's end. A callback under way is let finish first (its time-out bounds it;
        cut off, it would run twice); a webhook POST under way is simply sent again."""
        if not self.enabled:
            return
        self._start()
        if self._idle():
            return
        if not workflow.patched(EVENTS_HANDOFF):
            await workflow.wait_condition(self._idle)
            return
        try:
            await workflow.wait_condition(self._idle, timeout=HANDOFF_AFTER)
            return
        except (TimeoutError, asyncio.CancelledError):  # a cancel only hurries the hand-off
            pass
        self._closing = True
        await shielded(workflow.wait_condition(lambda: not self._in_callback))
        if self._queue:
            await self._hand_off()

    async def _hand_off(self) -> None:
        """Start the events' own workflow (a child the parent's end does not touch) with the
        undelivered events; it delivers them as this workflow would have."""
        info = workflow.info()
        handoff = EventsHandoff(job_id=self._job_id, name=self._name, notify=self._settings, callback=self._callback,
                                callback_envs=self._callback_envs, events=list(self._queue), seq=self._seq,
                                chat=self._chat)
        task = self._spec.task if self._spec is not None else None
        first_id = events_workflow_id(self._job_id, task.index if task is not None else None)
        for workflow_id in (first_id, f"{first_id}-{info.run_id}"):  # the second if a reused job id holds the first
            try:
                await shielded(workflow.start_child_workflow(
                    JobEventsWorkflow.run, handoff, id=workflow_id, task_queue=info.task_queue,
                    parent_close_policy=ParentClosePolicy.ABANDON,
                    static_summary=f"job {self._job_id}: {len(handoff.events)} undelivered events",
                    search_attributes=internal_child()))
            except WorkflowAlreadyStartedError:
                continue
            workflow.logger.info("job %s: %d undelivered events handed to workflow %s", self._job_id,
                                 len(handoff.events), workflow_id)
            return

    def _idle(self) -> bool:
        return not self._queue and not self._delivering

    def _deadline(self) -> datetime:
        """When an event recorded now is given up."""
        return workflow.now() + timedelta(seconds=self._settings.give_up_after_s)

    async def _deliver_forever(self) -> None:
        while True:
            await workflow.wait_condition(lambda: bool(self._queue) and not self._closing)
            self._delivering = True
            done = False
            try:
                done = await self._deliver(self._queue[0])
            finally:
                if done or not self._closing:  # an event whose callback did not run is handed off
                    self._queue.pop(0)
                self._delivering = False

    async def _deliver(self, event: JobEvent) -> bool:
        """Deliver `event`: False when the hand-off stopped it before its callback."""
        queue = notify_queue(workflow.info().task_queue) if workflow.patched(NOTIFY_QUEUE) else None
        if self._notify is not None and event.status in self._notify.on:
            await self._post(event, queue)
        for target in self._chat:
            if event.status in target.notify_on and workflow.patched(CHAT_NOTIFICATIONS):
                await self._post_chat(event, target, queue)
        if self._callback is not None:
            if self._closing:
                return False
            timeout = self._settings.callback_timeout_s
            self._in_callback = True
            try:
                outcome = await workflow.execute_activity_method(
                    NotifyActivities.run_event_callback,
                    CallbackRequest(event=event, command=self._callback, timeout_s=timeout, envs=self._callback_envs),
                    start_to_close_timeout=timedelta(seconds=timeout + 30),
                    heartbeat_timeout=timedelta(seconds=HEARTBEAT_TIMEOUT_S), retry_policy=_CALLBACK_RETRY,
                    task_queue=queue, summary=f"event_callback: {event.status.value}")
                if outcome.timed_out or outcome.exit_code:
                    how = "timed out" if outcome.timed_out else f"exited with code {outcome.exit_code}"
                    workflow.logger.warning("job %s: event_callback for %s %s", self._job_id, event.event_id, how)
            except ActivityError as err:
                workflow.logger.warning("job %s: event_callback for %s failed: %s",
                                        self._job_id, event.event_id, describe(err))
            finally:
                self._in_callback = False
        return True

    async def _post(self, event: JobEvent, queue: str | None) -> None:
        """The webhook, retried until it takes the event or the event's deadline passes."""
        assert self._notify is not None
        give_up_after = timedelta(seconds=self._notify.give_up_after_s)
        if workflow.patched(EVENT_DEADLINES) and event.give_up_at is not None:
            give_up_after = event.give_up_at - workflow.now()
            if give_up_after <= timedelta(0):
                workflow.logger.warning("job %s: event %s given up: the webhook did not take it within %.0f s",
                                        self._job_id, event.event_id, self._notify.give_up_after_s)
                return
        try:
            await workflow.execute_activity_method(
                NotifyActivities.deliver_webhook,
                WebhookRequest(event=event, url=self._notify.url or "", timeout_s=self._notify.timeout_s),
                start_to_close_timeout=timedelta(seconds=self._notify.timeout_s + 10),
                schedule_to_close_timeout=give_up_after,
                heartbeat_timeout=timedelta(seconds=HEARTBEAT_TIMEOUT_S), retry_policy=_WEBHOOK_RETRY,
                task_queue=queue, summary=f"webhook: {event.status.value}")
        except ActivityError as err:
            workflow.logger.warning("job %s: event %s not delivered to the webhook: %s",
                                    self._job_id, event.event_id, describe(err))

    async def _post_chat(self, event: JobEvent, target: ChatTarget, queue: str | None) -> None:
        """One Slack or Discord target, retried as the webhook is, until it takes the event, or
        refuses it for good (logged, named), or the event's deadline passes."""
        settings = self._settings
        give_up_after = (event.give_up_at - workflow.now() if event.give_up_at is not None
                         else timedelta(seconds=settings.give_up_after_s))
        if give_up_after <= timedelta(0):
            workflow.logger.warning("job %s: event %s given up: %s did not take it within %.0f s",
                                    self._job_id, event.event_id, target.kind, settings.give_up_after_s)
            return
        try:
            await workflow.execute_activity_method(
                NotifyActivities.deliver_chat,
                ChatRequest(event=event, target=target, timeout_s=settings.timeout_s, link=settings.link),
                start_to_close_timeout=timedelta(seconds=settings.timeout_s + 10),
                schedule_to_close_timeout=give_up_after,
                heartbeat_timeout=timedelta(seconds=HEARTBEAT_TIMEOUT_S), retry_policy=_CHAT_RETRY,
                task_queue=queue, summary=f"{target.kind}: {event.status.value}")
        except ActivityError as err:
            workflow.logger.warning("job %s: event %s not delivered to %s: %s",
                                    self._job_id, event.event_id, target.kind, describe(err))

    def _event(self, s: JobState, previous: JobStatus | None) -> JobEvent:
        spec = self._spec
        task = spec.task if spec is not None else None
        prefix = f"{self._job_id}-task{task.index}" if task is not None else f"{self._job_id}"
        reason = s.failure_reason if s.status.is_failure else s.detail
        return JobEvent(
            event_id=f"{prefix}-{self._seq}", job_id=self._job_id,
            name=task.pipeline_name if task is not None else self._name,
            status=s.status, previous=previous, reason=reason, recoveries=s.recoveries,
            cost_usd=job_cost(s, workflow.now(), {}).cost if s.history else 0.0,
            task=task.index if task is not None else None, task_name=task.name if task is not None else None,
            task_id=task_id(spec) if spec is not None else "",
            cluster_name=cluster_name(self._job_id, s.attempt) if s.attempt and s.cloud else None,
            cloud=s.cloud, region=s.region, at=workflow.now(), give_up_at=self._deadline(),
        )


def _callback_envs(spec: JobSpec, job_id: int) -> dict[str, str]:
    """The task's envs and secrets for its callback, unless they are too large to copy into
    every event's request (then none, and the worker's log says so)."""
    envs = {**spec.envs, **spec.secrets}
    size = sum(len(k.encode()) + len(v.encode()) for k, v in envs.items())
    if size <= MAX_CALLBACK_ENV_BYTES:
        return envs
    workflow.logger.warning("job %s: the task's envs and secrets (%d bytes) are more than %d: its event_callback "
                            "runs without them", job_id, size, MAX_CALLBACK_ENV_BYTES)
    return {}


@workflow.defn(name=EVENTS_WORKFLOW)
class JobEventsWorkflow:
    """the last status events of a job (a pipeline task, a pipeline) whose
workflow has ended before its webhook took them.

A job never waits for its receivers: a workflow that ends with events undelivered hands them
here (event_outbox.EventOutbox.finish, as a child its parent's end does not touch, id
`<job's workflow id>-events`) and returns at once. This workflow delivers them as the job's
would have, with the same activities on the same queue: in order, at least once, with the
same event ids, each given up at its own deadline; it ends when none is left. Its input and
its progress are in its history, so a worker that dies loses nothing. It has no search
attributes and a type of its own, so job listings (`WorkflowType IN (...)`) never show it.
Deterministic, no I/O.
    """

    @workflow.run
    async def run(self, handoff: EventsHandoff) -> int:
        """Deliver the handed-off events; how many there were."""
        outbox = EventOutbox(job_id=handoff.job_id, name=handoff.name, notify=handoff.notify,
                             callback=handoff.callback, callback_envs=handoff.callback_envs, chat=handoff.chat,
                             pending=handoff.events, seq=handoff.seq)
        await outbox.drained()
        return len(handoff.events)
