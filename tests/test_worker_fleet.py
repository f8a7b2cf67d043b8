"""Three workers against one server: one drains on SIGTERM, one is SIGKILLed, every job
still finishes once.

A draining worker hands its monitors over at once (activities/drain.py) and exits well
inside its drain time-out; a killed worker's monitors move when their heartbeats time out.
Either way the programs keep running and are never started twice. The first also serves
Prometheus metrics.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from spotctl.client import connect, workflow_id
from spotctl.models import ActivityNames

from conftest import Spot, embedded_spot, free_port, pid_dead, spotctl_env

JOBS = 9
DRAIN_TIMEOUT_S = 20.0
TICKS = 80  # 40 s of program: it outlasts both kills and the killed worker's heartbeat time-out


class ExtraWorker:
    """`python -m spotctl.worker` in its own session, as a second machine would run it."""

    def __init__(self, spot: Spot, tmp: Path, name: str, metrics_port: int = 0) -> None:
        self.metrics_port = metrics_port
        self.ready = tmp / f"{name}.ready"
        self.log = (tmp / f"{name}.log").open("wb")
        env = {**os.environ, **spot.env,
               "SPOTCTL_TEMPORAL_ADDRESS": spot.settings.temporal_address,
               "SPOTCTL_WORKER_READY_FILE": str(self.ready),
               "SPOTCTL_DRAIN_TIMEOUT_S": str(DRAIN_TIMEOUT_S),
               "SPOTCTL_METRICS_PORT": str(metrics_port)}
        self.proc = subprocess.Popen([sys.executable, "-m", "spotctl.worker"], env=env, start_new_session=True,
                                     stdout=self.log, stderr=subprocess.STDOUT)

    @property
    def identity_prefix(self) -> str:
        return f"{self.proc.pid}@"  # the SDK's default worker identity is pid@host

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not (self.ready.exists() and self.ready.read_text() == str(self.proc.pid)):
            assert self.proc.poll() is None, f"worker exited {self.proc.returncode}"
            assert time.monotonic() < deadline, "worker never polled"
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self.log.close()


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[tuple[Spot, list[ExtraWorker]]]:
    """A private embedded server with its worker, plus two more worker processes."""
    with embedded_spot(tmp_path / "home", spotctl_env(tmp_path / "home")) as spot:
        extra = [ExtraWorker(spot, tmp_path, "worker-a", metrics_port=free_port()),
                 ExtraWorker(spot, tmp_path, "worker-b")]
        try:
            for worker in extra:
                worker.wait_ready()
            yield spot, extra
        finally:
            for worker in extra:
                worker.stop()
    assert all(pid_dead(w.proc.pid) for w in extra)
    assert spot.alive_instances() == []


async def _monitor_owners(spot: Spot, job_ids: list[int]) -> dict[int, str]:
    """Which worker runs each job's monitor now (the identity of its last poller)."""
    client = await connect(spot.settings)
    owners: dict[int, str] = {}
    for job_id in job_ids:
        description = await client.get_workflow_handle(workflow_id(job_id)).describe()
        for pending in description.raw_description.pending_activities:
            if pending.activity_type.name == ActivityNames.MONITOR and pending.last_worker_identity:
                owners[job_id] = pending.last_worker_identity
    return owners


def monitor_owners(spot: Spot, job_ids: list[int]) -> dict[int, str]:
    return asyncio.run(_monitor_owners(spot, job_ids))


def wait_owners(spot: Spot, job_ids: list[int], ok, timeout: float) -> dict[int, str]:
    deadline = time.monotonic() + timeout
    owners = monitor_owners(spot, job_ids)
    while not ok(owners) and time.monotonic() < deadline:
        time.sleep(0.25)
        owners = monitor_owners(spot, job_ids)
    return owners


def test_drained_and_killed_workers_lose_no_job(fleet: tuple[Spot, list[ExtraWorker]], tmp_path: Path) -> None:
    spot, (draining, killed) = fleet
    task = tmp_path / "ticker.yaml"
    release = tmp_path / "release"
    # After its ticks a program waits (5 min at most) until the killed worker's monitors have
    # moved: launching nine jobs on a loaded machine can take longer than the ticks.
    task.write_text(textwrap.dedent(f"""
        name: ticker
        run: |
          echo "started pid $$"
          for i in $(seq 1 {TICKS}); do echo "tick $i"; sleep 0.5; done
          for i in $(seq 1 1200); do [ -e {release} ] && break; sleep 0.25; done
    """))
    job_ids = [spot.launch_detached(str(task)) for _ in range(JOBS)]
    for job_id in job_ids:
        spot.wait_running(job_id, timeout=90)
    owners = wait_owners(spot, job_ids, lambda o: len(o) == JOBS, timeout=20)
    held = {w: [j for j, who in owners.items() if who.startswith(w.identity_prefix)] for w in (draining, killed)}
    instances = sorted(i.id for i in spot.alive_instances())
    # worker.metrics_port: the SDK's worker metrics, in Prometheus' text format.
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{draining.metrics_port}/metrics", timeout=5).read().decode()
    assert 'task_queue="spotctl-monitor"' in metrics, metrics[:2000]

    # SIGTERM: the worker stops polling, hands its monitors over at once and exits cleanly,
    # long before its drain time-out (nothing else of it was running).
    started = time.monotonic()
    draining.proc.send_signal(signal.SIGTERM)
    assert draining.proc.wait(DRAIN_TIMEOUT_S + 10) == 0
    drained_in = time.monotonic() - started
    assert drained_in < DRAIN_TIMEOUT_S / 2, f"drain took {drained_in:.1f}s"
    moved = wait_owners(spot, held[draining], lambda o: len(o) == len(held[draining]) and not any(
        who.startswith(draining.identity_prefix) for who in o.values()), timeout=10)
    assert not any(who.startswith(draining.identity_prefix) for who in moved.values()), moved

    # SIGKILL: no goodbye; its monitors move when their heartbeats time out.
    os.killpg(killed.proc.pid, signal.SIGKILL)
    killed.proc.wait(10)
    wait_owners(spot, held[killed], lambda o: len(o) == len(held[killed]) and not any(
        who.startswith(killed.identity_prefix) for who in o.values()), timeout=120)
    release.touch()

    for job_id in job_ids:
        job = spot.wait_status(job_id, "SUCCEEDED", "FAILED", "FAILED_CONTROLLER", timeout=120)
        assert job["status"] == "SUCCEEDED", job
        assert job["attempt"] == 1 and job["recoveries"] == 0, job
        logs = spot.run("logs", "--no-follow", str(job_id)).stdout
        assert logs.count("started pid") == 1, logs  # never started twice
        ticks = [int(line.split()[1]) for line in logs.splitlines() if line.startswith("tick ")]
        assert ticks == list(range(1, TICKS + 1)), (job_id, ticks)  # no gap, no duplicate
    assert sorted(i.id for i in spot.cloud.list_instances(alive_only=False)) == instances  # no second VM
    print(f"monitors held: drained worker {len(held[draining])}, killed worker {len(held[killed])}; "
          f"drain took {drained_in:.1f}s")
