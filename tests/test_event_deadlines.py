"""Issue 22, item 7: an event is given up at its own deadline (when it happened +
notify.give_up_after_s), however often its job continues as new meanwhile.

Each run used to give the head event a fresh give_up_after_s, so a job that waits for capacity
(continuing as new every few rounds) during a long webhook outage never gave it up: its queue
grew to MAX_PENDING_EVENTS and later events were dropped without a word. Scripted activities
(tests/test_workflow_races.py) and time skipping make hours of outage take seconds; the webhook
is a scripted deliver_webhook that records each attempt (with the server's time) and answers
503 while the test says it is down."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from test_workflow_races import FakeCloud, job_spec
from timeskip import quick_skipping_env  # noqa: F401  (a skip costs 10 ms, not a second: timeskip.py)

from spotctl.client import job_end
from spotctl.models import ActivityNames, JobState, JobStatus, NotifySettings, WebhookRequest
from spotctl.models.naming import events_workflow_id
from spotctl.worker import job_workers, running
from spotctl.workflows import ALL_WORKFLOWS

GIVE_UP_AFTER = timedelta(hours=1)
"""Short, so the test's wall time stays small: every webhook try is a real activity call."""


@dataclass
class ScriptedWebhook:
    """deliver_webhook that answers 503 while `down`: each attempt (event id, when the server
    scheduled it) is kept, each event's time, and each event taken."""

    down: bool = True
    attempts: list[tuple[str, datetime]] = field(default_factory=list)
    happened: dict[str, datetime] = field(default_factory=dict)
    runs: dict[str, set[str]] = field(default_factory=dict)
    """The workflow runs that tried each event."""
    taken: list[str] = field(default_factory=list)

    def activity(self) -> Callable:
        hook = self

        @activity.defn(name=ActivityNames.DELIVER_WEBHOOK)
        async def deliver_webhook(req: WebhookRequest) -> None:
            hook.attempts.append((req.event.event_id, activity.info().current_attempt_scheduled_time))
            hook.happened[req.event.event_id] = req.event.at
            hook.runs.setdefault(req.event.event_id, set()).add(activity.info().workflow_run_id)
            if hook.down:
                raise ApplicationError("the webhook answered 503")
            hook.taken.append(req.event.event_id)

        return deliver_webhook

    def tried(self, event_id: str) -> list[datetime]:
        return [at for eid, at in self.attempts if eid == event_id]


async def test_the_head_event_is_given_up_at_its_deadline_across_continue_as_new(
        skipping_env: WorkflowEnvironment) -> None:
    """A job waits ~2.5 h for capacity (continuing as new every few rounds) while its webhook
    is down: PENDING and STARTING, its first events, are tried until their deadline (1 h after
    they happened) and never after it; once the webhook is back the events of the run that
    followed arrive, in order."""
    client: Client = skipping_env.client
    cloud, hook = FakeCloud(capacity_after_rounds=10), ScriptedWebhook()
    notify = NotifySettings(url="http://127.0.0.1:9/hook", on=list(JobStatus),
                            give_up_after_s=GIVE_UP_AFTER.total_seconds())
    spec = job_spec(notify=notify, launch_retry_initial_s=60.0, launch_retry_max_s=1800.0,
                    continue_as_new_after_events=40)
    queue, workflow_id = f"deadlines-{uuid.uuid4()}", f"deadlines-{uuid.uuid4()}"
    async with running(job_workers(client, queue, ALL_WORKFLOWS, [*cloud.activities(), hook.activity()])):
        handle = await client.start_workflow("SpotJobWorkflow", spec, id=workflow_id, task_queue=queue,
                                             result_type=JobState)
        state = await job_end(handle)
        runs = [e async for e in client.list_workflows(f"WorkflowId = '{workflow_id}'")]
        hook.down = False
        await client.get_workflow_handle(events_workflow_id(spec.job_id)).result()

    assert state.status == JobStatus.SUCCEEDED and cloud.instances == {}
    assert (state.started_at - state.submitted_at) > 2 * GIVE_UP_AFTER  # the outage outlived the deadlines
    assert len(runs) >= 4, "the job did not continue as new while it waited"
    for n in (1, 2):  # PENDING, STARTING: both when the job began (STARTING may never be tried)
        event_id = f"{spec.job_id}-{n}"
        if event_id in hook.happened:
            deadline = hook.happened[event_id] + GIVE_UP_AFTER
            late = [at - deadline for at in hook.tried(event_id) if at > deadline]
            assert late == [], f"{event_id} tried after its deadline, by {late[:3]}... ({len(late)} times)"
    assert len(hook.runs[f"{spec.job_id}-1"]) >= 2, "PENDING never crossed a continue-as-new undelivered"
    assert hook.taken == [f"{spec.job_id}-{n}" for n in (3, 4)]  # RUNNING, SUCCEEDED
