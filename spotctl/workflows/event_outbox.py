"""A job's status events, delivered in order to its webhook and event_callback.

Every status change becomes a JobEvent in an ordered queue held in the workflow (so in its
history: a worker that dies loses nothing); one background coroutine delivers the head event
with activities and only then drops it, so each event reaches the receiver at least once, in
order, with the same event id on every delivery. The webhook is retried with exponential
backoff until it answers (up to notify.give_up_after_s, or a 4xx that says never); the callback
runs with a time-out and its failure is only logged: no delivery problem ever changes the job.
The job's workflow waits for the queue to drain before it ends, and hands undelivered events
to its next run on continue-as-new. Deterministic, no I/O.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from spotctl.models import (
        HEARTBEAT_TIMEOUT_S,
        MAX_CALLBACK_ENV_BYTES,
        WEBHOOK_REJECTED_ERROR,
        Activities,
        CallbackOutcome,
        CallbackRequest,
        JobEvent,
        JobSpec,
        JobState,
        JobStatus,
        NotifySettings,
        WebhookRequest,
        cluster_name,
        notify_queue,
    )
    from spotctl.policy.costs import job_cost
    from spotctl.skypilot_ids import task_id
    from spotctl.workflows.job_view import describe

NOTIFICATIONS = "notifications"
"""The patch under which a job with a webhook or an event_callback delivers its events."""
NOTIFY_QUEUE = "notify-queue"
"""The patch that delivers events on their own task queue (models.notify_queue), whose slots
bound how many deliveries a worker runs at once, apart from job work."""
_WEBHOOK_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                             maximum_interval=timedelta(seconds=60),
                             non_retryable_error_types=[WEBHOOK_REJECTED_ERROR])
_CALLBACK_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=3)
"""A callback's own exit code is returned, never retried; this only covers a worker lost
while it ran (so a callback may run twice then: SPOTCTL_EVENT_ID tells the repeats apart)."""


MAX_PENDING_EVENTS = 500
"""Events kept waiting for a webhook that is down; past it the oldest waiting one is dropped
(with a warning), so the workflow's state and continue-as-new input stay small."""


class EventOutbox:
    """The events of one workflow (a job, a pipeline task, or a pipeline's own end)."""

    def __init__(self, *, job_id: int, name: str, notify: NotifySettings | None, callback: str | None,
                 spec: JobSpec | None = None, pending: list[JobEvent] | None = None, seq: int = 0) -> None:
        self._job_id, self._name, self._spec = job_id, name, spec
        self._settings = notify or NotifySettings()
        self._notify = notify if notify is not None and notify.url else None
        """The webhook's settings, None without a webhook."""
        self._callback = callback or None
        self._callback_envs = _callback_envs(spec, job_id) if self._callback and spec is not None else {}
        self._queue: list[JobEvent] = list(pending or [])
        self._seq = seq
        self._delivering = False
        self._started = False
        self._task: asyncio.Task | None = None
        self.enabled = (self._notify is not None or self._callback is not None) and workflow.patched(NOTIFICATIONS)
        if self.enabled:
            self._start()  # events carried over continue-as-new go out now, not at the next change

    @property
    def pending(self) -> list[JobEvent]:
        """Events not yet delivered (the head one may be under way): carried on continue-as-new."""
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
        await workflow.wait_condition(lambda: not self._queue and not self._delivering)

    async def _deliver_forever(self) -> None:
        while True:
            await workflow.wait_condition(lambda: bool(self._queue))
            self._delivering = True
            try:
                await self._deliver(self._queue[0])
            finally:
                self._queue.pop(0)
                self._delivering = False

    async def _deliver(self, event: JobEvent) -> None:
        queue = notify_queue(workflow.info().task_queue) if workflow.patched(NOTIFY_QUEUE) else None
        if self._notify is not None and event.status in self._notify.on:
            try:
                await workflow.execute_activity(
                    Activities.DELIVER_WEBHOOK,
                    WebhookRequest(event=event, url=self._notify.url or "", timeout_s=self._notify.timeout_s),
                    start_to_close_timeout=timedelta(seconds=self._notify.timeout_s + 10),
                    schedule_to_close_timeout=timedelta(seconds=self._notify.give_up_after_s),
                    heartbeat_timeout=timedelta(seconds=HEARTBEAT_TIMEOUT_S), retry_policy=_WEBHOOK_RETRY,
                    task_queue=queue, summary=f"webhook: {event.status.value}")
            except ActivityError as err:
                workflow.logger.warning("job %s: event %s not delivered to the webhook: %s",
                                        self._job_id, event.event_id, describe(err))
        if self._callback is not None:
            timeout = self._settings.callback_timeout_s
            try:
                outcome = await workflow.execute_activity(
                    Activities.RUN_EVENT_CALLBACK,
                    CallbackRequest(event=event, command=self._callback, timeout_s=timeout, envs=self._callback_envs),
                    result_type=CallbackOutcome, start_to_close_timeout=timedelta(seconds=timeout + 30),
                    heartbeat_timeout=timedelta(seconds=HEARTBEAT_TIMEOUT_S), retry_policy=_CALLBACK_RETRY,
                    task_queue=queue, summary=f"event_callback: {event.status.value}")
                if outcome.timed_out or outcome.exit_code:
                    how = "timed out" if outcome.timed_out else f"exited with code {outcome.exit_code}"
                    workflow.logger.warning("job %s: event_callback for %s %s", self._job_id, event.event_id, how)
            except ActivityError as err:
                workflow.logger.warning("job %s: event_callback for %s failed: %s",
                                        self._job_id, event.event_id, describe(err))

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
            cloud=s.cloud, region=s.region, at=workflow.now(),
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
