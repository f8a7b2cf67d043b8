"""Preemption recovery end to end on the local cloud: strategies, markers, cancel mid-recovery."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

from conftest import Spot, launched_id


def long_task(tmp_path: Path, strategy: str | None, steps: int = 12, extra: str = "",
              until_preempted: bool = False) -> str:
    """until_preempted: the first attempt never ends by itself (a test that preempts it must
    not race the program's end on a loaded machine); the next ones run the ticks and end."""
    recovery = f"\n          job_recovery: {strategy}" if strategy else ""
    hold = 'if [ "$SPOTCTL_RECOVERY_COUNT" = 0 ]; then while true; do sleep 0.1; done; fi' if until_preempted else ""
    path = tmp_path / "task.yaml"
    path.write_text(textwrap.dedent(f"""
        name: recoverable
        resources:
          cpus: 1+{recovery}
        run: |
          echo "attempt $SPOTCTL_ATTEMPT recovery $SPOTCTL_RECOVERY_COUNT id $SKYPILOT_TASK_ID"
          for i in $(seq 1 {steps}); do echo "tick $i"; sleep 0.25; done
          {hold}
        {extra}
    """))
    return str(path)


def preempt_when_running(spot: Spot, job_id: int, *, attempt: int = 1) -> None:
    spot.wait_running(job_id, attempt)
    result = spot.run("debug", "preempt", str(job_id), "--notice", "0")
    assert result.exit_code == 0, result.output


def regions(job: dict) -> list[str]:
    return [f"{r['region']}/{r['zone']}" for r in job["history"]]


def test_eager_next_region_relaunches_elsewhere_with_same_ids(spot_clean: Spot, tmp_path: Path) -> None:
    job_id = launched_id(spot_clean.run("launch", "-y", "-d", long_task(tmp_path, None, until_preempted=True)).stderr)
    preempt_when_running(spot_clean, job_id)
    job = spot_clean.wait_status(job_id, "SUCCEEDED", timeout=60)
    assert job["recoveries"] == 1
    where = regions(job)
    assert where[0].startswith("local-east/") and not where[1].startswith("local-east/"), where
    assert [r["outcome"] for r in job["history"]] == ["preempted", "succeeded"]
    logs = spot_clean.run("logs", "--no-follow", str(job_id)).stdout
    assert "attempt 1 recovery 0" in logs and "attempt 2 recovery 1" in logs
    assert f"--- recovery 1: preempted in {where[0]}, relaunched in {where[1]} ---" in logs
    task_ids = {line.rsplit(" ", 1)[1] for line in logs.splitlines() if line.startswith("attempt ")}
    assert len(task_ids) == 1  # SKYPILOT_TASK_ID survives the recovery
    one = spot_clean.run("logs", "--no-follow", "--attempt", "2", str(job_id)).stdout
    assert "attempt 2" in one and "attempt 1 " not in one and "---" not in one


def test_failover_tries_the_same_zone_first(spot_clean: Spot, tmp_path: Path) -> None:
    job_id = launched_id(spot_clean.run("launch", "-y", "-d", long_task(tmp_path, "FAILOVER", until_preempted=True)).stderr)
    preempt_when_running(spot_clean, job_id)
    job = spot_clean.wait_status(job_id, "SUCCEEDED", timeout=60)
    assert job["recoveries"] == 1
    assert regions(job)[0] == regions(job)[1]


def test_none_fails_on_preemption(spot_clean: Spot, tmp_path: Path) -> None:
    job_id = launched_id(spot_clean.run("launch", "-y", "-d", long_task(tmp_path, "NONE", steps=100)).stderr)
    preempt_when_running(spot_clean, job_id)
    job = spot_clean.wait_status(job_id, "FAILED", timeout=30)
    assert "preempted" in job["failure_reason"] and job["recoveries"] == 0


def test_cancel_while_recovering_leaves_nothing(spot_clean: Spot, tmp_path: Path) -> None:
    config = spot_clean.cloud.config_path
    original = config.read_text()
    job_id = launched_id(spot_clean.run("launch", "-y", "-d", long_task(tmp_path, None, steps=400)).stderr)
    try:
        spot_clean.wait_running(job_id)
        config.write_text(original.replace("capacity: 8", "capacity: 0"))  # nowhere to go
        assert spot_clean.run("debug", "preempt", str(job_id), "--notice", "0").exit_code == 0
        spot_clean.wait_status(job_id, "RECOVERING", timeout=15)
        assert spot_clean.run("cancel", "-y", str(job_id)).exit_code == 0
        job = spot_clean.wait_status(job_id, "CANCELLED", timeout=15)
        assert job["recoveries"] == 1
    finally:
        config.write_text(original)


def test_debug_preempt_of_a_finished_job_is_refused(spot_clean: Spot) -> None:
    result = spot_clean.run("launch", "-y", "echo quick")
    job_id = launched_id(result.stderr)
    refused = spot_clean.run("debug", "preempt", str(job_id))
    assert refused.exit_code == 1 and "no instance to preempt" in refused.stderr


def test_many_recoveries_continue_as_new(spot_clean: Spot, tmp_path: Path) -> None:
    """A job that restarts often hands itself to fresh workflow runs and keeps its state."""
    import asyncio

    from spotctl.client import SpotClient, workflow_id
    from spotctl.launch import Overrides, plan

    counter = tmp_path / "runs"
    task = tmp_path / "flaky.yaml"
    task.write_text(textwrap.dedent(f"""
        name: flaky
        resources:
          job_recovery:
            max_restarts_on_errors: 5
        run: |
          echo x >> {counter}
          n=$(wc -l < {counter})
          echo "run $n"
          [ "$n" -ge 5 ] && exit 0 || exit 1
    """))
    p = plan(str(task), Overrides(), spot_clean.settings)

    async def run() -> tuple[int, list]:
        client = await SpotClient.connect(spot_clean.settings)
        job_id = await client.allocate_job_id()
        await client.start_job(p.to_spec(job_id).model_copy(update={"continue_as_new_after_attempts": 2}))
        await client.result(job_id)
        runs = [e async for e in client.temporal.list_workflows(f"WorkflowId = '{workflow_id(job_id)}'")]
        return job_id, runs

    job_id, runs = asyncio.run(run())
    job = spot_clean.wait_status(job_id, "SUCCEEDED")
    assert job["recoveries"] == 4 and job["attempt"] == 5
    assert [r["attempt"] for r in job["history"]] == [1, 2, 3, 4, 5]
    statuses = sorted(r.status.name for r in runs)
    assert statuses.count("CONTINUED_AS_NEW") == 2 and statuses.count("COMPLETED") == 1, statuses
    logs = spot_clean.run("logs", "--no-follow", str(job_id)).stdout
    assert [line for line in logs.splitlines() if line.startswith("run ")] == [f"run {i}" for i in range(1, 6)]
    assert logs.count("--- recovery ") == 4


def test_unreachable_but_alive_instance_is_not_relaunched(spot_clean: Spot, tmp_path: Path) -> None:
    """SkyPilot #10123 relaunched healthy jobs on status time-outs; a silent node whose
    instance the cloud says is running must be waited for, not replaced."""
    job_id = launched_id(spot_clean.run("launch", "-y", "-d", long_task(tmp_path, None, steps=24)).stderr)
    spot_clean.wait_running(job_id)
    (instance,) = spot_clean.alive_instances()
    spot_clean.cloud.set_unreachable(instance.id, True)
    try:
        time.sleep(4)  # several liveness checks while nothing answers
        job = spot_clean.job(job_id)
        assert job["status"] == "RUNNING" and job["recoveries"] == 0
    finally:
        spot_clean.cloud.set_unreachable(instance.id, False)
    job = spot_clean.wait_status(job_id, "SUCCEEDED", timeout=30)
    assert job["recoveries"] == 0 and job["attempt"] == 1
    ticks = [ln for ln in spot_clean.run("logs", "--no-follow", str(job_id)).stdout.splitlines() if ln.startswith("tick ")]
    assert ticks == [f"tick {i}" for i in range(1, 25)]


def test_preemption_notice_gives_the_program_time_to_checkpoint(spot_clean: Spot, tmp_path: Path) -> None:
    task = tmp_path / "notice.yaml"
    task.write_text(textwrap.dedent("""
        name: noticed
        run: |
          if [ "$SPOTCTL_RECOVERY_COUNT" = 0 ]; then
            trap 'echo "got TERM, deadline $(cat $SPOTCTL_PREEMPTION_DEADLINE_FILE)"; exit 143' TERM
            echo waiting; while true; do sleep 0.1; done
          fi
          echo "second life"
    """))
    job_id = launched_id(spot_clean.run("launch", "-y", "-d", str(task)).stderr)
    spot_clean.wait_running(job_id)
    time.sleep(0.5)
    asked = time.time()
    assert spot_clean.run("debug", "preempt", str(job_id), "--notice", "5").exit_code == 0
    job = spot_clean.wait_status(job_id, "SUCCEEDED", timeout=30)
    assert job["recoveries"] == 1 and job["history"][0]["outcome"] == "preempted"
    logs = spot_clean.run("logs", "--no-follow", str(job_id)).stdout
    line = next((ln for ln in logs.splitlines() if ln.startswith("got TERM")), None)
    assert line, logs
    assert abs(float(line.rsplit(" ", 1)[1]) - (asked + 5)) < 2
    assert "second life" in logs


def test_program_killed_on_a_live_instance_ends_the_attempt(spot_clean: Spot, tmp_path: Path) -> None:
    """The OOM killer (or a stray kill -9) takes the program and its supervisor while the VM
    lives on: the job must not hang. The program's parent (the agent's keeper) saw it die of
    SIGKILL, and the supervisor started in place of the dead one publishes that code."""
    import os
    import signal

    job_id = launched_id(spot_clean.run("launch", "-y", "-d", "-n", "victim", "exec sleep 1000").stderr)
    spot_clean.wait_running(job_id)
    (instance,) = spot_clean.alive_instances()
    attempt_dir = spot_clean.cloud.instance_home(instance.id) / ".spotctl" / f"job-{job_id}" / "attempt-1"
    for name in ("run.spid", "run.pid"):
        os.kill(int((attempt_dir / name).read_text()), signal.SIGKILL)
    job = spot_clean.wait_status(job_id, "FAILED", timeout=40)
    assert job["exit_code"] == 137 and job["recoveries"] == 0


def test_recover_on_exit_codes_restarts_without_using_the_budget(spot_clean: Spot, tmp_path: Path) -> None:
    """SkyPilot's recover_on_exit_codes: those codes always relaunch (max_restarts_on_errors
    is 0 here), any other non-zero code fails the job."""
    counter = tmp_path / "runs"
    task = tmp_path / "codes.yaml"
    task.write_text(textwrap.dedent(f"""
        name: codes
        resources:
          job_recovery:
            recover_on_exit_codes: [33]
        run: |
          echo x >> {counter}
          n=$(wc -l < {counter})
          echo "run $n"
          case $n in 1|2) exit 33;; 3) exit 0;; esac
    """))
    result = spot_clean.run("launch", "-y", str(task))
    assert result.exit_code == 0, result.output
    job = spot_clean.job(launched_id(result.stderr))
    assert job["status"] == "SUCCEEDED" and job["recoveries"] == 2
    assert [r["outcome"] for r in job["history"]] == ["exit code 33", "exit code 33", "succeeded"]
    counter.unlink()
    task.write_text(task.read_text().replace("3) exit 0", "3) exit 34"))
    failing = spot_clean.run("launch", "-y", str(task))
    assert failing.exit_code == 100
    job = spot_clean.job(launched_id(failing.stderr))
    assert job["status"] == "FAILED" and job["exit_code"] == 34 and job["recoveries"] == 2
