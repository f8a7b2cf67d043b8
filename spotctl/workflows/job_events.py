"""JobEventsWorkflow: the last status events of a job (a pipeline task, a pipeline) whose
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

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from spotctl.models import EventsHandoff
    from spotctl.models.naming import EVENTS_WORKFLOW
    from spotctl.workflows.event_outbox import EventOutbox


@workflow.defn(name=EVENTS_WORKFLOW)
class JobEventsWorkflow:
    @workflow.run
    async def run(self, handoff: EventsHandoff) -> int:
        """Deliver the handed-off events; how many there were."""
        outbox = EventOutbox(job_id=handoff.job_id, name=handoff.name, notify=handoff.notify,
                             callback=handoff.callback, callback_envs=handoff.callback_envs,
                             pending=handoff.events, seq=handoff.seq)
        await outbox.drained()
        return len(handoff.events)
