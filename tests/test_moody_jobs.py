"""Managed jobs on a moody local cloud: slow to boot, slow to answer, throttling, hanging.

Each test here failed on the first controller: a cancel during a slow provision left the VM
running; a slow liveness call timed out a healthy monitor; throttling failed the job; a
failed node left the others running."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from spotctl.models.naming import job_of_cluster

from conftest import Spot
from test_jobs import write_task

SetMood = Callable[..., None]


@pytest.fixture
def moody(spot_clean: Spot) -> Iterator[SetMood]:
    """`moody(field=value, ...)` sets the fields on every region of the shared local cloud;
    the calm config comes back before the leak check."""
    cloud = spot_clean.cloud
    cloud.config()
    calm = cloud.config_path.read_text()

    def set_mood(**fields: Any) -> None:
        data = yaml.safe_load(cloud.config_path.read_text())
        for region in data["regions"].values():
            region.update(fields)
        cloud.config_path.write_text(yaml.safe_dump(data))

    yield set_mood
    cloud.config_path.write_text(calm)


def clusters_made(spot: Spot, job_id: int) -> dict[str, int]:
    """How many instances each cluster of the job ever had (terminated ones included)."""
    counts: dict[str, int] = {}
    for inst in spot.cloud.list_instances(alive_only=False):
        if job_of_cluster(inst.cluster_name) == job_id:
            counts[inst.cluster_name] = counts.get(inst.cluster_name, 0) + 1
    return counts


def test_cancel_at_any_moment_of_a_slow_provision_leaks_nothing(spot_clean: Spot, moody: SetMood) -> None:
    """A 30 s boot, cancelled 1, 5 and 25 s in: each job ends CANCELLED with no instance left
    (the leak check of spot_clean), and its instances were terminated, not left booting."""
    moody(provision_delay_s=30)
    ids = [spot_clean.launch_detached("-n", f"slowboot{i}", "echo never") for i in range(3)]
    launched = time.monotonic()
    for job_id, at in zip(ids, (1, 5, 25), strict=True):
        time.sleep(max(0.0, launched + at - time.monotonic()))
        job = spot_clean.job(job_id)
        assert job["status"] in ("PENDING", "STARTING"), job
        assert spot_clean.run("cancel", "-y", str(job_id)).exit_code == 0
    for job_id in ids:
        job = spot_clean.wait_status(job_id, "CANCELLED", timeout=30)
        assert job["started_at"] is None
    assert spot_clean.alive_instances() == []
    assert all(n == 1 for job_id in ids for n in clusters_made(spot_clean, job_id).values())


def test_a_hung_liveness_call_causes_no_recovery(spot_clean: Spot, moody: SetMood, tmp_path: Path) -> None:
    """`instance_states` hangs for 60 s while the job runs: the job stays RUNNING on its first
    attempt (no false recovery, no second VM) and succeeds."""
    task = write_task(tmp_path, """
        name: steady
        run: |
          for i in $(seq 1 40); do echo "tick $i"; sleep 1; done
    """)
    job_id = spot_clean.launch_detached(task)
    spot_clean.wait_running(job_id)
    moody(api_hang_s=60, api_hang_rate=1.0, api_hang_calls=["instance_states"])
    deadline = time.monotonic() + 25  # past the heartbeat time-out (15 s) and the old 25 s failure
    while time.monotonic() < deadline:
        job = spot_clean.job(job_id)
        assert job["status"] == "RUNNING" and job["attempt"] == 1, job
        time.sleep(1)
    moody(api_hang_s=0, api_hang_rate=0.0, api_hang_calls=None)
    job = spot_clean.wait_status(job_id, "SUCCEEDED", timeout=60)
    assert job["recoveries"] == 0 and job["attempt"] == 1
    logs = spot_clean.run("logs", "--no-follow", str(job_id)).stdout
    assert all(f"tick {i}\n" in logs for i in range(1, 41)) and "recovery" not in logs
    assert clusters_made(spot_clean, job_id) == {f"spotctl-{job_id}-1": 1}


def test_jobs_succeed_on_a_slow_throttling_cloud(spot_clean: Spot, moody: SetMood) -> None:
    """Boot 3 s, every call 0.3 s slower, one call in five throttled: jobs run to SUCCEEDED
    with no false recovery and one VM per attempt."""
    moody(provision_delay_s=3, api_latency_s=0.3, throttle_rate=0.2)
    ids = [spot_clean.launch_detached("-n", f"moody{i}", f"echo moody {i}") for i in range(4)]
    for job_id in ids:
        job = spot_clean.wait_status(job_id, "SUCCEEDED", "FAILED", "FAILED_CONTROLLER", timeout=120)
        assert job["status"] == "SUCCEEDED" and job["recoveries"] == 0 and job["attempt"] == 1, job
        assert clusters_made(spot_clean, job_id) == {f"spotctl-{job_id}-1": 1}
    moody(throttle_rate=0.0, api_latency_s=0.0)


def test_a_failed_node_stops_the_others(spot_clean: Spot, tmp_path: Path) -> None:
    """Rank 1 fails at once; rank 0 would sleep for 1000 s. The job ends FAILED with rank 1's
    code within seconds, and rank 0 got SIGTERM (as SkyPilot does)."""
    task = write_task(tmp_path, """
        name: pair-fails
        num_nodes: 2
        run: |
          if [ "$SKYPILOT_NODE_RANK" = 1 ]; then sleep 1; echo "rank 1 fails"; exit 4; fi
          trap 'echo "rank 0 got SIGTERM"; exit 143' TERM
          sleep 1000 & wait
    """)
    started = time.monotonic()
    result = spot_clean.run("launch", "-y", task)
    assert result.exit_code == 100, result.output
    assert time.monotonic() - started < 30
    assert "rank 0 got SIGTERM" in result.stdout and "rank 1 fails" in result.stdout
    job = spot_clean.job(int(result.stderr.split("Managed job ")[1].split()[0]))
    assert job["status"] == "FAILED" and job["exit_code"] == 4


def test_cancels_race_launches(spot_clean: Spot, moody: SetMood) -> None:
    """Cancels from other threads at random moments of slow launches: every job CANCELLED,
    nothing left (the Done-shows run of this, 20 jobs on a harsher cloud, is in bench/)."""
    moody(provision_delay_s=4, api_latency_s=0.2, throttle_rate=0.2)
    ids = [spot_clean.launch_detached("-n", f"race{i}", "sleep 1000") for i in range(4)]
    delays = (0.2, 2.5, 5.0, 8.0)

    def cancel_later(job_id: int, after: float) -> None:
        time.sleep(after)
        spot_clean.run("cancel", "-y", str(job_id))

    threads = [threading.Thread(target=cancel_later, args=(j, d)) for j, d in zip(ids, delays, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for job_id in ids:
        spot_clean.wait_status(job_id, "CANCELLED", timeout=60)
    moody(throttle_rate=0.0, api_latency_s=0.0)
