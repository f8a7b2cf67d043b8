"""Status notifications end to end (issue 12): real jobs on the local cloud, the embedded
Temporal server and worker, a webhook on 127.0.0.1 and SkyPilot's event_callback. What is
checked is what a receiver sees: every status change, in order, each event id once (or again
only as a repeat), and that no delivery problem changes or holds up the job for long."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode
from webhook_receiver import Receiver

from spotctl.client import SpotClient, workflow_id
from spotctl.launch import Overrides, plan
from spotctl.models import JobStatus
from spotctl.models.naming import task_workflow_id
from spotctl.workflows.event_outbox import events_workflow_id

from conftest import Spot

ALL = ["PENDING", "STARTING", "RUNNING", "RECOVERING", "SUCCEEDED", "FAILED", "CANCELLING", "CANCELLED"]
WITH_ONE_RECOVERY = ["PENDING", "STARTING", "RUNNING", "RECOVERING", "STARTING", "RUNNING", "SUCCEEDED"]


@contextmanager
def notify_config(spot: Spot, **notify: object) -> Iterator[None]:
    """`notify:` in the spotctl home's config.yaml for the block (the launch reads it)."""
    path = spot.home / "config.yaml"
    path.write_text(yaml.safe_dump({"notify": notify}))
    try:
        yield
    finally:
        path.unlink()


def task_file(tmp_path: Path, run: str, callback: str | None = None) -> str:
    path = tmp_path / "task.yaml"
    body = {"name": "noisy", "resources": {"cpus": "1+"}, "run": run, "envs": {"PAGER_CHANNEL": "ops"}}
    if callback:
        body["event_callback"] = callback
    path.write_text(yaml.safe_dump(body))
    return str(path)


def events_of(receiver: Receiver, job_id: int) -> list[dict]:
    bodies = [json.loads(r["body"]) for r in receiver.requests]
    return [b for b in bodies if b["job_id"] == job_id]


def wait_for_event(receiver: Receiver, job_id: int, status: str, timeout: float = 60) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = events_of(receiver, job_id)
        if any(e["status"] == status for e in got):
            return got
        time.sleep(0.1)
    raise AssertionError(f"no {status} event for job {job_id}; got {events_of(receiver, job_id)}")


def first_deliveries(events: list[dict]) -> list[dict]:
    """Each event id once, in the order it first arrived (a repeat is allowed, never a gap)."""
    seen: dict[str, dict] = {}
    for e in events:
        seen.setdefault(e["event_id"], e)
    return list(seen.values())


def test_a_recovery_delivers_exactly_the_expected_events(spot_clean: Spot, tmp_path: Path,
                                                         receiver: Receiver) -> None:
    calls = tmp_path / "callback.log"
    callback = f'echo "$JOB_ID $SKYPILOT_TASK_ID $JOB_STATUS $CLUSTER_NAME $TASK_NAME $TASK_ID $PAGER_CHANNEL" >> {calls}'
    ticks = 'for i in $(seq 1 12); do echo "tick $i"; sleep 0.25; done'
    with notify_config(spot_clean, url=receiver.url(), on=ALL):
        job_id = spot_clean.launch_detached(task_file(tmp_path, ticks, callback))
    spot_clean.wait_running(job_id, 1)
    assert spot_clean.run("debug", "preempt", str(job_id), "--notice", "0").exit_code == 0
    got = wait_for_event(receiver, job_id, "SUCCEEDED")

    assert [e["status"] for e in got] == WITH_ONE_RECOVERY
    assert [e["event_id"] for e in got] == [f"{job_id}-{n}" for n in range(1, 8)]
    assert [e["previous"] for e in got] == [None] + WITH_ONE_RECOVERY[:-1]
    assert [e["recoveries"] for e in got] == [0, 0, 0, 1, 1, 1, 1]
    recovering = got[3]
    assert recovering["cluster_name"] == f"spotctl-{job_id}-1" and "preempted" in recovering["reason"]
    assert got[-1]["cluster_name"] == f"spotctl-{job_id}-2" and got[-1]["cost_usd"] > 0
    assert f"spotctl job {job_id} 'noisy' is SUCCEEDED" in got[-1]["text"]
    assert {r["headers"]["Idempotency-Key"] for r in receiver.requests} == {e["event_id"] for e in got}

    deadline = time.monotonic() + 30  # the callback runs after the webhook, event by event
    while time.monotonic() < deadline and len(calls.read_text().splitlines() if calls.exists() else []) < 7:
        time.sleep(0.1)
    lines = [line.split(" ") for line in calls.read_text().splitlines()]
    assert [line[2] for line in lines] == WITH_ONE_RECOVERY
    assert {line[0] for line in lines} == {str(job_id)} and {line[4] for line in lines} == {"noisy"}
    assert len({line[1] for line in lines}) == 1 and lines[0][1].endswith(f"_noisy_{job_id}-0")
    assert lines[2][3] == f"spotctl-{job_id}-1" and lines[5][3] == f"spotctl-{job_id}-2"
    assert {line[5] for line in lines} == {"0"}  # SkyPilot: the task's index
    assert {line[6] for line in lines} == {"ops"}  # the task's envs, as SkyPilot passes them


def test_a_webhook_down_for_a_while_gets_every_event_once_back(spot_clean: Spot, tmp_path: Path,
                                                               receiver: Receiver) -> None:
    receiver.answer = 503
    with notify_config(spot_clean, url=receiver.url(), on=ALL):
        job_id = spot_clean.launch_detached(task_file(tmp_path, "echo quick"))
    spot_clean.wait_status(job_id, "SUCCEEDED", timeout=60)
    time.sleep(3)  # the webhook stays down while the job ends; its events wait in the workflow
    assert {e["status"] for e in events_of(receiver, job_id)} == {"PENDING"}  # retried, never past it
    receiver.answer = 200
    got = first_deliveries(wait_for_event(receiver, job_id, "SUCCEEDED", timeout=90))
    assert [e["status"] for e in got] == ["PENDING", "STARTING", "RUNNING", "SUCCEEDED"]
    assert [e["event_id"] for e in got] == [f"{job_id}-{n}" for n in range(1, 5)]


def test_default_statuses_and_a_rejecting_webhook(spot_clean: Spot, tmp_path: Path, receiver: Receiver) -> None:
    with notify_config(spot_clean, url=receiver.url()):  # default `on`: recoveries and ends only
        job_id = spot_clean.launch_detached(task_file(tmp_path, "exit 4"))
    assert [e["status"] for e in wait_for_event(receiver, job_id, "FAILED")] == ["FAILED"]
    receiver.answer = 404  # "never": given up at once, the job is not held
    with notify_config(spot_clean, url=receiver.url()):
        job_id = spot_clean.launch_detached(task_file(tmp_path, "exit 0"))
    spot_clean.wait_status(job_id, "SUCCEEDED", timeout=60)
    assert closed_within(spot_clean, job_id, 30)


def test_a_hanging_callback_is_cut_off_and_the_job_goes_on(spot_clean: Spot, tmp_path: Path,
                                                           receiver: Receiver) -> None:
    marker = f"sleep 600.{os.getpid()}"
    with notify_config(spot_clean, callback_timeout_s=1):
        job_id = spot_clean.launch_detached(task_file(tmp_path, "echo fine", callback=marker))
    job = spot_clean.wait_status(job_id, "SUCCEEDED", timeout=60)
    assert job["exit_code"] in (0, None)
    assert closed_within(spot_clean, job_id, 60)  # 4 events, each callback killed after 1 s
    left = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout.split()
    assert left == [], f"callback processes left: {left}"


def closed_within(spot: Spot, job_id: int, timeout: float) -> bool:
    """Whether the job's workflow has ended in time, and so has every workflow that took over
    its last events (its own and its tasks', JobEventsWorkflow): every event delivered or
    given up."""

    async def status(client: Client, workflow_id: str) -> WorkflowExecutionStatus | None:
        try:
            return (await client.get_workflow_handle(workflow_id).describe()).status
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return None
            raise

    async def closed(client: Client) -> bool:
        if await status(client, workflow_id(job_id)) in (None, WorkflowExecutionStatus.RUNNING):  # Completed, Failed or Canceled
            return False
        parts: list[int | None] = [None]  # the job's (a pipeline's) own, then each task's
        while await status(client, task_workflow_id(job_id, len(parts) - 1)) is not None:
            parts.append(len(parts) - 1)
        for task in parts:  # an events workflow exists only if the part ended with events undelivered
            if await status(client, events_workflow_id(job_id, task)) == WorkflowExecutionStatus.RUNNING:
                return False
        return True

    async def wait() -> bool:
        client = await Client.connect(f"127.0.0.1:{spot.env['SPOTCTL_PORT']}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if await closed(client):
                return True
            await asyncio.sleep(0.3)
        return False

    return asyncio.run(wait())


def pipeline_file(tmp_path: Path) -> str:
    path = tmp_path / "pipeline.yaml"
    path.write_text(textwrap.dedent("""\
        name: duo
        ---
        name: first
        resources: {cpus: 1+}
        run: echo one
        ---
        name: second
        resources: {cpus: 1+}
        run: exit 5
    """))
    return str(path)


def test_a_pipeline_reports_each_task_and_its_own_end(spot_clean: Spot, tmp_path: Path,
                                                      receiver: Receiver) -> None:
    with notify_config(spot_clean, url=receiver.url(), on=["SUCCEEDED", "FAILED", "CANCELLED"]):
        job_id = spot_clean.launch_detached(pipeline_file(tmp_path))
    spot_clean.wait_status(job_id, "FAILED", timeout=60)
    assert closed_within(spot_clean, job_id, 30)
    events = first_deliveries(events_of(receiver, job_id))
    got = [(e["task"], e["task_name"], e["status"]) for e in events]
    assert got == [(0, "first", "SUCCEEDED"), (1, "second", "FAILED"), (None, None, "FAILED")]
    assert events[-1]["cost_usd"] >= events[0]["cost_usd"] + events[1]["cost_usd"] - 1e-9 > 0  # both tasks'
    assert "task 1/2 'second'" in events[-1]["reason"] and events[-1]["event_id"] == f"{job_id}-1"


def test_events_cross_continue_as_new_without_a_gap_or_a_repeat(spot_clean: Spot, tmp_path: Path,
                                                                 receiver: Receiver) -> None:
    """A job that restarts (and continues as new every 2 attempts) while its webhook is down
    hands its undelivered events to its next run: once the webhook is back it gets every
    transition, numbered 1..n, in order, each once."""
    counter = tmp_path / "runs"
    path = tmp_path / "flaky.yaml"
    path.write_text(yaml.safe_dump({
        "name": "flaky", "resources": {"job_recovery": {"max_restarts_on_errors": 5}},
        "run": f'echo x >> {counter}; [ "$(wc -l < {counter})" -ge 4 ] && exit 0 || exit 1'}))
    with notify_config(spot_clean, url=receiver.url(), on=ALL):
        settings = spot_clean.settings
        p = plan(str(path), Overrides(), settings)
    receiver.answer = 503

    async def run() -> tuple[int, int]:
        client = await SpotClient.connect(settings)
        job_id = await client.allocate_job_id()
        spec = p.to_spec(job_id, notify=settings.notify).model_copy(update={"continue_as_new_after_attempts": 2})
        await client.start_job(spec)
        while (await client.get_job(job_id)).status != JobStatus.SUCCEEDED:
            await asyncio.sleep(0.2)
        runs = [e async for e in client.temporal.list_workflows(f"WorkflowId = '{workflow_id(job_id)}'")]
        return job_id, len(runs)

    job_id, runs = asyncio.run(run())
    assert runs >= 2  # it did continue as new, with its events undelivered
    back = len(receiver.requests)
    receiver.answer = 200
    assert closed_within(spot_clean, job_id, 90)
    expected = ["PENDING"] + ["STARTING", "RUNNING", "RECOVERING"] * 3 + ["STARTING", "RUNNING", "SUCCEEDED"]
    got = first_deliveries(events_of(receiver, job_id))
    assert [e["status"] for e in got] == expected
    assert [e["event_id"] for e in got] == [f"{job_id}-{n}" for n in range(1, len(expected) + 1)]
    after = [json.loads(r["body"])["event_id"] for r in receiver.requests[back:]]
    assert sorted(after) == sorted(set(after)) and len(set(after)) == len(expected)
