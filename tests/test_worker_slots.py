"""A worker's slots (worker/pool.py): launches beyond `max_concurrent_launches` wait as
PENDING with a reason, and running jobs' monitors never hold the slots that a preempted job's
teardown and relaunch need."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from conftest import Spot, embedded_spot, spotctl_env


@pytest.fixture
def tight(tmp_path: Path) -> Iterator[Spot]:
    """A private spotctl whose worker creates one cluster at a time and runs at most three
    short activities at once, on a local cloud whose API answers slowly (2 s a call)."""
    home = tmp_path / "home"
    env = {**spotctl_env(home), "SPOTCTL_MAX_LAUNCHES": "1", "SPOTCTL_MAX_ACTIVITIES": "3"}
    with embedded_spot(home, env) as spot:
        cloud = spot.cloud
        cloud.config()
        data = yaml.safe_load(cloud.config_path.read_text())
        for region in data["regions"].values():
            region["api_latency_s"] = 2
        cloud.config_path.write_text(yaml.safe_dump(data))
        try:
            yield spot
        finally:
            spot.run("cancel", "-a", "-y")
            deadline = time.monotonic() + 60
            while spot.alive_instances() and time.monotonic() < deadline:
                time.sleep(0.5)
            assert spot.alive_instances() == []


def test_launches_past_the_cap_wait_as_pending_and_monitors_leave_slots_free(tight: Spot) -> None:
    ids = [tight.launch_detached("-n", f"slot{i}", "sleep 1000") for i in range(3)]
    seen_waiting: dict = {}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not seen_waiting:
        for job in tight.status():
            if job["job_id"] in ids and job["status"] == "PENDING" and "launch slot" in (job.get("detail") or ""):
                seen_waiting = job
        time.sleep(0.2)
    assert seen_waiting, "no job showed that it waits for a launch slot"
    for job_id in ids:
        tight.wait_running(job_id, timeout=120)
    # Three monitors run, and the worker takes at most three other activities at once: the
    # monitors are on their own queue, so a preempted job still gets torn down and relaunched.
    victim = ids[0]
    assert tight.run("debug", "preempt", str(victim)).exit_code == 0
    job = tight.wait_running(victim, attempt=2, timeout=120)
    assert job["recoveries"] == 1
    assert all(tight.job(j)["status"] == "RUNNING" for j in ids)
