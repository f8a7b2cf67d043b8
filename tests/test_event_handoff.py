"""Issue 22, item 3: a webhook outage never holds up a job, a pipeline's next task or a cancel.

A job's (a task's) workflow used to wait until its last events were delivered or given up
(notify.give_up_after_s, a day by default) before it ended, so during an outage a pipeline's
next task did not start and a cancelled pipeline sat in CANCELLING. Now an ending workflow
hands what its webhook has not taken to a workflow of their own (JobEventsWorkflow) and ends.
Real jobs on the local cloud, the embedded server and worker, a webhook on 127.0.0.1 that
answers 503 and then comes back: what is checked is what a user and a receiver see."""

from __future__ import annotations

import asyncio
import textwrap
import time
from pathlib import Path

from temporalio.client import Client
from test_notifications import ALL, closed_within, events_of, first_deliveries, notify_config
from webhook_receiver import Receiver

from spotctl.client import workflow_id
from spotctl.models import search_attributes as sa
from spotctl.models.naming import EVENTS_WORKFLOW, events_workflow_id, task_workflow_id

from conftest import Spot

GIVE_UP_AFTER_S = 3600
"""Far longer than any wait below: nothing here may wait for it."""


def pipeline_file(tmp_path: Path, first: str, second: str) -> str:
    path = tmp_path / "pipeline.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: hooked
        ---
        name: first
        resources: {{cpus: 1+}}
        run: {first}
        ---
        name: second
        resources: {{cpus: 1+}}
        run: {second}
    """))
    return str(path)


def streams(receiver: Receiver, job_id: int) -> dict[int | None, list[tuple[str, str]]]:
    """Each task's events (None: the pipeline's own), (event id, status) in the order they
    first arrived."""
    got: dict[int | None, list[tuple[str, str]]] = {}
    for e in first_deliveries(events_of(receiver, job_id)):
        got.setdefault(e["task"], []).append((e["event_id"], e["status"]))
    return got


def numbered(prefix: str, statuses: list[str]) -> list[tuple[str, str]]:
    return [(f"{prefix}-{n}", status) for n, status in enumerate(statuses, 1)]


def workflow_status(spot: Spot, workflow_ids: list[str]) -> dict[str, str | None]:
    """Each workflow's execution status and type (None: there is no such workflow)."""

    async def ask() -> dict[str, str | None]:
        client = await Client.connect(f"127.0.0.1:{spot.env['SPOTCTL_PORT']}")
        found: dict[str, str | None] = {}
        for wid in workflow_ids:
            async for e in client.list_workflows(sa.internal(f"WorkflowId = '{wid}'")):  # jobs' parts too
                found[wid] = f"{e.workflow_type} {e.status.name if e.status else '?'}"
            found.setdefault(wid, None)
        return found

    return asyncio.run(ask())


def test_a_pipeline_goes_on_and_ends_while_its_webhook_is_down(spot_clean: Spot, tmp_path: Path,
                                                               receiver: Receiver) -> None:
    receiver.answer = 503
    with notify_config(spot_clean, url=receiver.url(), on=ALL, give_up_after_s=GIVE_UP_AFTER_S):
        job_id = spot_clean.launch_detached(pipeline_file(tmp_path, "echo one", "echo two"))
    started = time.monotonic()
    job = spot_clean.wait_status(job_id, "SUCCEEDED", timeout=90)
    took = time.monotonic() - started
    assert [t["status"] for t in job["tasks"]] == ["SUCCEEDED", "SUCCEEDED"]
    tried = {(e["task"], e["status"]) for e in events_of(receiver, job_id)}
    assert tried == {(0, "PENDING"), (1, "PENDING"), (None, "SUCCEEDED")}  # each stream's first, retried

    # The events wait in workflows of their own, which no job listing shows.
    deadline = time.monotonic() + 20  # the pipeline's own, once its last event has waited HANDOFF_AFTER
    while True:
        waiting = workflow_status(spot_clean, [events_workflow_id(job_id, 0), events_workflow_id(job_id, 1),
                                               events_workflow_id(job_id)])
        if set(waiting.values()) == {f"{EVENTS_WORKFLOW} RUNNING"} or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert set(waiting.values()) == {f"{EVENTS_WORKFLOW} RUNNING"}, waiting
    rows = [j for j in spot_clean.status() if j["job_id"] == job_id]
    assert len(rows) == 1 and len({j["job_id"] for j in spot_clean.status()}) == len(spot_clean.status())

    receiver.answer = 200
    assert closed_within(spot_clean, job_id, 120)
    got = streams(receiver, job_id)
    assert got == {
        0: numbered(f"{job_id}-task0", ["PENDING", "STARTING", "RUNNING", "SUCCEEDED"]),
        1: numbered(f"{job_id}-task1", ["PENDING", "STARTING", "RUNNING", "SUCCEEDED"]),
        None: numbered(f"{job_id}", ["SUCCEEDED"]),
    }
    print(f"two-task pipeline with its webhook down: SUCCEEDED {took:.1f}s after launch")


def test_a_cancel_during_a_webhook_outage_ends_the_pipeline_at_once(spot_clean: Spot, tmp_path: Path,
                                                                    receiver: Receiver) -> None:
    receiver.answer = 503
    with notify_config(spot_clean, url=receiver.url(), on=ALL, give_up_after_s=GIVE_UP_AFTER_S):
        job_id = spot_clean.launch_detached(pipeline_file(tmp_path, "sleep 1000", "echo never"))
    spot_clean.wait_status(job_id, "RUNNING", timeout=60)
    assert spot_clean.run("cancel", "-y", str(job_id)).exit_code == 0
    asked = time.monotonic()
    job = spot_clean.wait_status(job_id, "CANCELLED", timeout=60)
    assert [t["status"] for t in job["tasks"]] == ["CANCELLED", "CANCELLED"]
    ended = {"SpotPipelineWorkflow CANCELED", "SpotTaskWorkflow FAILED"}  # a task's cancel carries its state: docs/temporal-ui.md
    deadline = asked + 30  # each part waits HANDOFF_AFTER (5 s) for its last events, not give_up_after_s
    while set((closed := workflow_status(spot_clean, [workflow_id(job_id), task_workflow_id(job_id, 0)])).values()) \
            != ended and time.monotonic() < deadline:
        time.sleep(0.3)
    assert set(closed.values()) == ended, closed
    took = time.monotonic() - asked
    assert spot_clean.alive_instances() == []

    receiver.answer = 200
    assert closed_within(spot_clean, job_id, 120)
    assert streams(receiver, job_id) == {
        0: numbered(f"{job_id}-task0", ["PENDING", "STARTING", "RUNNING", "CANCELLING", "CANCELLED"]),
        None: numbered(f"{job_id}", ["CANCELLED"]),
    }
    print(f"pipeline cancelled with its webhook down: ended {took:.1f}s after the cancel")
