"""spotctl's own faults on a node are not the user's program's (issue 21): a job whose node
agent's supervisor is SIGKILLed runs on to its own end, and when spotctl's processes on a
live node are lost with the program's exit code, the attempt is recovered as an
infrastructure failure, without using the restart budget and without a made-up exit code."""

from __future__ import annotations

import os
import signal
import textwrap
import time
from pathlib import Path

from conftest import Spot


def attempt_dir(spot: Spot, job_id: int, attempt: int = 1) -> Path:
    (instance,) = spot.alive_instances()
    return spot.cloud.instance_home(instance.id) / ".spotctl" / f"job-{job_id}" / f"attempt-{attempt}"


def wait_for_line(path: Path, line: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and f"{line}\n" in path.read_text():
            return
        time.sleep(0.1)
    raise AssertionError(f"{line!r} never appeared in {path}")


def test_a_killed_supervisor_does_not_fail_a_healthy_job(spot_clean: Spot, tmp_path: Path) -> None:
    task = tmp_path / "slow.yaml"
    task.write_text(textwrap.dedent("""
        name: slow-printer
        run: |
          echo "started attempt $SPOTCTL_ATTEMPT"
          for i in $(seq 1 60); do echo "line $i"; sleep 0.25; done
    """))
    job_id = spot_clean.launch_detached(str(task))
    spot_clean.wait_running(job_id)
    d = attempt_dir(spot_clean, job_id)
    wait_for_line(d / "output.log", "line 10")
    os.kill(int((d / "run.spid").read_text()), signal.SIGKILL)
    job = spot_clean.wait_status(job_id, "SUCCEEDED", "FAILED", timeout=90)
    assert job["status"] == "SUCCEEDED", job
    assert job["exit_code"] == 0 and job["recoveries"] == 0 and job["attempt"] == 1
    logs = spot_clean.run("logs", "--no-follow", str(job_id)).stdout
    assert [ln for ln in logs.splitlines() if ln.startswith("line ")] == [f"line {i}" for i in range(1, 61)]
    assert logs.count("started attempt") == 1  # one copy of the program, never restarted
    # No SIGKILL's 137 anywhere (not the whole dict: its timestamps and costs hold "137" by chance)
    assert "137" not in logs + str(job.get("failure_reason") or "")
    assert 137 not in [job["exit_code"], *(r.get("exit_code") for r in job["history"])], job


def test_a_lost_node_agent_is_recovered_without_the_restart_budget(spot_clean: Spot, tmp_path: Path) -> None:
    """Every process spotctl had on the node is killed with the program (as by `kill -9 -1`):
    nobody saw how the program ended. max_restarts_on_errors is 0, yet the job recovers."""
    task = tmp_path / "lost.yaml"
    task.write_text(textwrap.dedent("""
        name: lost-agent
        resources:
          job_recovery:
            max_restarts_on_errors: 0
        run: |
          echo "attempt $SPOTCTL_ATTEMPT"
          if [ "$SPOTCTL_ATTEMPT" = 1 ]; then sleep 1000; fi
    """))
    job_id = spot_clean.launch_detached(str(task))
    spot_clean.wait_running(job_id)
    d = attempt_dir(spot_clean, job_id)
    wait_for_line(d / "output.log", "attempt 1")
    for name in ("run.spid", "run.kpid"):
        os.kill(int((d / name).read_text()), signal.SIGKILL)
    os.killpg(int((d / "run.pid").read_text()), signal.SIGKILL)
    job = spot_clean.wait_status(job_id, "SUCCEEDED", "FAILED", "FAILED_CONTROLLER", timeout=90)
    assert job["status"] == "SUCCEEDED", job
    assert job["recoveries"] == 1 and job["exit_code"] == 0
    assert [r["outcome"] for r in job["history"]] == ["node failure", "succeeded"]
    logs = spot_clean.run("logs", "--no-follow", str(job_id)).stdout
    assert "--- recovery 1: node failure in " in logs and "attempt 2" in logs
