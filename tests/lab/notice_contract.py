"""The interruption-notice scenario, the same on every cloud: run by test_aws_jobs.py (EC2's
spot interruption notice, from the lab VM's IMDSv2) and test_gcp_jobs.py (GCE's preemption
notice, from its metadata server), each with its own spot, task and way to post the notice."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from job_lab import launch, logs, wait_for_log

from conftest import Spot


def check_notice_gets_sigterm_and_loses_no_step(spot: Spot, task: Path, steps: int,
                                                post_notice: Callable[[], None]) -> None:
    """A notice on the running VM: the program gets SIGTERM and saves its step, the job runs
    again (attempt 2) and resumes at exactly that step, and ends with every step done once.
    `task` is a COUNTER task of `steps` steps checkpointing to a bucket; `post_notice` posts
    the cloud's notice for the job's one running instance."""
    job_id = launch(spot, task)
    wait_for_log(spot, job_id, r"^step 6$")
    post_notice()
    saved = int(wait_for_log(spot, job_id, r"SIGTERM at step (\d+), saved", timeout=30).group(1))
    spot.wait_running(job_id, attempt=2, timeout=120)
    resumed = int(wait_for_log(spot, job_id, r"(?s)SIGTERM at step.*^resuming at (\d+)$").group(1))
    assert resumed == saved, f"saved step {saved}, resumed at {resumed}: steps were lost"
    job = spot.wait_status(job_id, "SUCCEEDED", timeout=150)
    assert job["recoveries"] == 1
    assert f"done {steps}" in logs(spot, job_id)
