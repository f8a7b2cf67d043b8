"""A durable controller: the worker can die mid-job without the job noticing."""

from __future__ import annotations

import json
import os
import signal
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from webhook_receiver import Receiver

from spotctl.embedded import EmbeddedServer

from conftest import Spot, embedded_spot, pid_dead, spotctl_env


@pytest.fixture
def own_spot(tmp_path: Path) -> Iterator[Spot]:
    """A private server + worker (this test kills workers; others must not notice)."""
    with embedded_spot(tmp_path / "home", spotctl_env(tmp_path / "home")) as spot:
        yield spot
    assert spot.alive_instances() == []


def test_worker_killed_mid_run_program_not_restarted(own_spot: Spot, tmp_path: Path) -> None:
    task = tmp_path / "counter.yaml"
    task.write_text(textwrap.dedent("""
        name: counter
        run: |
          echo "started pid $$"
          for i in $(seq 1 60); do echo "tick $i"; sleep 0.5; done
    """))
    job_id = own_spot.launch_detached(str(task))
    own_spot.wait_running(job_id)
    instances_before = [i.id for i in own_spot.alive_instances()]
    server = EmbeddedServer(own_spot.settings)
    old_worker = server.worker.pid()
    time.sleep(1.5)
    os.killpg(old_worker, signal.SIGKILL)  # no goodbye: a crash
    deadline = time.monotonic() + 5
    while not pid_dead(old_worker) and time.monotonic() < deadline:
        time.sleep(0.05)
    server.ensure_running()  # a new worker, as an operator (or systemd) would start
    assert server.worker.pid() != old_worker

    own_spot.wait_status(job_id, "SUCCEEDED", timeout=90)
    logs = own_spot.run("logs", "--no-follow", str(job_id)).stdout
    assert logs.count("started pid") == 1, logs  # never restarted
    ticks = [int(line.split()[1]) for line in logs.splitlines() if line.startswith("tick ")]
    assert ticks == list(range(1, 61)), ticks  # no gap, no duplicate
    job = own_spot.job(job_id)
    assert job["attempt"] == 1 and job["recoveries"] == 0
    all_instances = own_spot.cloud.list_instances(alive_only=False)
    assert [i.id for i in all_instances] == instances_before  # no second VM


def test_server_restart_mid_job_loses_nothing(own_spot: Spot, tmp_path: Path) -> None:
    """Stop the embedded Temporal server while a job runs and start it again: the SQLite
    history carries the job on; the program keeps running and is not restarted."""
    task = tmp_path / "counter.yaml"
    task.write_text(textwrap.dedent("""
        name: survivor
        run: |
          echo "started pid $$"
          for i in $(seq 1 30); do echo "tick $i"; sleep 0.3; done
    """))
    job_id = own_spot.launch_detached(str(task))
    own_spot.wait_running(job_id)
    server = EmbeddedServer(own_spot.settings)
    worker_pid = server.worker.pid()
    time.sleep(1.0)
    assert server.temporal.stop()
    time.sleep(2.0)  # the program goes on alone
    server.ensure_running()
    assert server.worker.pid() == worker_pid  # the worker rode out the outage

    job = own_spot.wait_status(job_id, "SUCCEEDED", timeout=90)
    logs = own_spot.run("logs", "--no-follow", str(job_id)).stdout
    assert logs.count("started pid") == 1, logs
    ticks = [int(line.split()[1]) for line in logs.splitlines() if line.startswith("tick ")]
    assert ticks == list(range(1, 31)), ticks
    assert job["attempt"] == 1 and job["recoveries"] == 0


def test_worker_killed_mid_pipeline_loses_no_task_and_no_event(own_spot: Spot, tmp_path: Path,
                                                               receiver: Receiver) -> None:
    """A crash during a pipeline's middle task: every task runs once, in order, on one VM each,
    and the webhook still gets each task's transitions and the pipeline's end, numbered without
    a gap (a repeat of an event id is allowed: at-least-once)."""
    task = tmp_path / "pipeline.yaml"
    task.write_text(textwrap.dedent("""\
        name: crashy
        ---
        name: first
        run: echo "first started"
        ---
        name: middle
        run: |
          echo "middle started"
          for i in $(seq 1 24); do echo "tick $i"; sleep 0.5; done
        ---
        name: last
        run: echo "last started"
    """))
    (own_spot.home / "config.yaml").write_text(f"notify:\n  url: {receiver.url()}\n  on: [RUNNING, SUCCEEDED]\n")
    job_id = own_spot.launch_detached(str(task))
    own_spot.wait_running(job_id, attempt=2)
    server = EmbeddedServer(own_spot.settings)
    old_worker = server.worker.pid()
    os.killpg(old_worker, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while not pid_dead(old_worker) and time.monotonic() < deadline:
        time.sleep(0.05)
    server.ensure_running()

    job = own_spot.wait_status(job_id, "SUCCEEDED", timeout=120)
    logs = own_spot.run("logs", "--no-follow", str(job_id)).stdout
    assert [logs.count(f"{t} started") for t in ("first", "middle", "last")] == [1, 1, 1], logs
    assert [int(line.split()[1]) for line in logs.splitlines() if line.startswith("tick ")] == list(range(1, 25))
    assert [r["attempt"] for r in job["history"]] == [1, 2, 3] and job["recoveries"] == 0
    assert len(own_spot.cloud.list_instances(alive_only=False)) == 3  # no second VM for any task
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not _pipeline_end_seen(receiver):
        time.sleep(0.2)
    seen: dict[str, tuple] = {}
    for request in receiver.requests:
        e = json.loads(request["body"])
        seen.setdefault(e["event_id"], (e["task"], e["status"]))
    assert sorted(seen.values(), key=lambda v: (v[0] is None, v[0] or 0, v[1])) == [
        (0, "RUNNING"), (0, "SUCCEEDED"), (1, "RUNNING"), (1, "SUCCEEDED"), (2, "RUNNING"), (2, "SUCCEEDED"),
        (None, "SUCCEEDED")]


def _pipeline_end_seen(receiver: Receiver) -> bool:
    return any(json.loads(r["body"])["task"] is None for r in receiver.requests)
