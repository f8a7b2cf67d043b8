"""A slow webhook cannot starve a worker (issue 21): anyone who launches a job names its webhook,
and a server that trickles one byte every few seconds beats urllib's per-read time-out. Each
POST once held a thread of the worker's shared pool for hours, and every retry another, until
no job on the worker could launch. Now a POST has a total deadline, holds no thread, and runs
in the notify queue's own slots (worker.max_concurrent_notifications); each job has at most
one delivery under way. Real jobs on
the local cloud, a private embedded server whose worker has 4 activity threads, a hostile
webhook on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from webhook_receiver import Receiver, running_receiver

from conftest import Spot, embedded_spot, spotctl_env

SLOW_JOBS = 6
"""More jobs with the slow webhook than the worker has activity threads."""
NOTIFY_SLOTS = 3
"""The worker's worker.max_concurrent_notifications: deliveries under way at once."""
ALL = ["PENDING", "STARTING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLING", "CANCELLED"]


@pytest.fixture
def few_threads(tmp_path: Path) -> Iterator[Spot]:
    """A private spotctl whose worker has the fewest activity threads allowed (4), and
    NOTIFY_SLOTS deliveries at once."""
    home = tmp_path / "home"
    env = {**spotctl_env(home), "SPOTCTL_ACTIVITY_THREADS": "4", "SPOTCTL_MAX_NOTIFICATIONS": str(NOTIFY_SLOTS)}
    with embedded_spot(home, env) as spot:
        try:
            yield spot
        finally:
            spot.run("cancel", "-a", "-y")
            deadline = time.monotonic() + 60
            while spot.alive_instances() and time.monotonic() < deadline:
                time.sleep(0.5)
            assert spot.alive_instances() == []


@pytest.fixture
def trickler() -> Iterator[Receiver]:
    """A webhook that answers one byte every 2 s, forever (under the 10 s POST time-out)."""
    with running_receiver() as state:
        state.answer, state.trickle_every_s = "trickle", 2.0
        yield state


def launch_and_time(spot: Spot, tmp_path: Path, name: str) -> float:
    """Seconds from `launch` to SUCCEEDED of a short job without a webhook."""
    task = tmp_path / f"{name}.yaml"
    task.write_text(yaml.safe_dump({"name": name, "resources": {"cpus": "1+"}, "run": f"echo {name}"}))
    start = time.monotonic()
    job_id = spot.launch_detached(str(task))
    spot.wait_status(job_id, "SUCCEEDED", timeout=120)
    return time.monotonic() - start


def test_jobs_launch_and_finish_in_normal_time_while_a_webhook_trickles(
        few_threads: Spot, trickler: Receiver, tmp_path: Path) -> None:
    baseline = launch_and_time(few_threads, tmp_path, "before")

    config = few_threads.home / "config.yaml"
    config.write_text(yaml.safe_dump({"notify": {"url": trickler.url(), "on": ALL}}))
    try:
        slow = [few_threads.launch_detached("-n", f"slow{i}", f"echo slow{i}") for i in range(SLOW_JOBS)]
    finally:
        config.unlink()
    deadline = time.monotonic() + 60
    while trickler.trickling < NOTIFY_SLOTS and time.monotonic() < deadline:
        time.sleep(0.2)
    assert trickler.trickling >= NOTIFY_SLOTS, "the slow webhook was not called"

    most_at_once = 0
    watching = True

    def watch() -> None:
        nonlocal most_at_once
        while watching:
            most_at_once = max(most_at_once, trickler.trickling)
            time.sleep(0.1)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        during = [launch_and_time(few_threads, tmp_path, f"during{i}") for i in range(2)]
        for job_id in slow:  # the slow webhook does not hold up its own jobs' work either
            few_threads.wait_status(job_id, "SUCCEEDED", timeout=120)
        deadline = time.monotonic() + 60  # attempts end at their 10 s deadline, NOTIFY_SLOTS at a time
        while len(trickler.closed_after_s) < 2 * SLOW_JOBS and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        watching = False
        watcher.join(5)
    for took in during:
        assert took < baseline + 30, f"a job took {took:.0f} s with the slow webhook, {baseline:.0f} s without"
    # The worker delivers NOTIFY_SLOTS events at once, and an attempt ends before its retry starts.
    # The receiver sees an attempt's connection close up to a trickle write late, so a retry may
    # overlap the attempt it follows by that much: one more at most, never a second wave.
    assert most_at_once <= NOTIFY_SLOTS + 1, f"{most_at_once} POSTs trickled at once, the worker's bound is {NOTIFY_SLOTS}"
    assert {json.loads(r["body"])["job_id"] for r in trickler.requests} == set(slow)  # each job called it
    assert len(trickler.closed_after_s) >= 2 * SLOW_JOBS, "attempts did not end at their deadline"
    assert max(trickler.closed_after_s) < 13, f"an attempt outlived its 10 s deadline: {trickler.closed_after_s}"
    trickler.answer = 200  # the events still waiting go out, and the workflows can end
