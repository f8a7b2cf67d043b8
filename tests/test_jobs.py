"""Managed jobs end to end on the embedded default: real Temporal, real local cloud."""

from __future__ import annotations

import asyncio
import textwrap
import time
from pathlib import Path

import pytest

from spotctl.client import SpotClient
from spotctl.launch import Overrides, plan

from conftest import EXAMPLES, Spot, launched_id, pid_dead


def write_task(tmp_path: Path, body: str, name: str = "task.yaml") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return str(path)


@pytest.mark.quick  # the quick tier's one real job, end to end
def test_quickstart_job_succeeds_and_logs_replay(spot_clean: Spot) -> None:
    result = spot_clean.run("launch", "-y", "-n", "hello", str(EXAMPLES / "quickstart.yaml"))
    assert result.exit_code == 0, result.output
    assert "Hello from managed job" in result.stdout
    assert "step 3" in result.stdout and "done" in result.stdout
    job_id = launched_id(result.stderr)
    job = spot_clean.job(job_id)
    assert job["status"] == "SUCCEEDED"
    assert job["name"] == "hello" and job["cloud"] == "local" and job["region"] == "local-east"
    assert job["exit_code"] == 0 and job["recoveries"] == 0
    logs = spot_clean.run("logs", "-n", "hello", "--no-follow")
    assert logs.exit_code == 0
    assert logs.stdout == result.stdout  # the same bytes, again, from the log store
    assert "task id sky-managed-" in logs.stdout and f"_hello_{job_id}-0" in logs.stdout


def test_job_sees_skypilot_env_and_workdir(spot_clean: Spot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # `workdir: code` is taken from the cwd, as in SkyPilot
    workdir = tmp_path / "code"
    workdir.mkdir()
    (workdir / "train.py").write_text("print('training from workdir')\n")
    task = write_task(tmp_path, """
        name: envcheck
        workdir: code
        envs:
          MY_VAR: from-yaml
        run: |
          python3 train.py
          echo "rank=$SKYPILOT_NODE_RANK nodes=$SKYPILOT_NUM_NODES ips=$SKYPILOT_NODE_IPS"
          echo "same=$([ "$SKYPILOT_TASK_ID" = "$SKYPILOT_RUN_ID" ] && echo yes)"
          echo "job=$SPOTCTL_JOB_ID my=$MY_VAR cli=$CLI_VAR home_is_sandbox=$([ "$HOME" != /root ] && echo yes)"
    """)
    result = spot_clean.run("launch", "-y", "--env", "CLI_VAR=from-cli", task)
    assert result.exit_code == 0, result.output
    job_id = launched_id(result.stderr)
    assert "training from workdir" in result.stdout
    assert "rank=0 nodes=1 ips=127.0.0.1" in result.stdout
    assert "same=yes" in result.stdout
    assert f"job={job_id} my=from-yaml cli=from-cli home_is_sandbox=yes" in result.stdout


def test_run_exit_code_fails_job(spot_clean: Spot) -> None:
    result = spot_clean.run("launch", "-y", "-n", "exit3", "echo about to fail; exit 3")
    assert result.exit_code == 100, result.output
    assert "about to fail" in result.stdout
    assert "run exited with code 3" in result.stderr
    job = spot_clean.job(launched_id(result.stderr))
    assert job["status"] == "FAILED" and job["exit_code"] == 3
    table = spot_clean.run("status", "-a")
    assert "run exited with code 3" in table.stdout
    assert spot_clean.run("logs", "-n", "exit3", "--no-follow").exit_code == 100


def test_failing_setup_is_failed_setup(spot_clean: Spot, tmp_path: Path) -> None:
    task = write_task(tmp_path, """
        name: badsetup
        setup: |
          echo installing
          exit 7
        run: echo never runs
    """)
    result = spot_clean.run("launch", "-y", task)
    assert result.exit_code == 100, result.output
    assert "installing" in result.stdout and "never runs" not in result.stdout
    job = spot_clean.job(launched_id(result.stderr))
    assert job["status"] == "FAILED_SETUP" and job["exit_code"] == 7
    assert job["started_at"] is None  # never RUNNING


def test_restarts_on_errors_then_fails(spot_clean: Spot, tmp_path: Path) -> None:
    task = write_task(tmp_path, """
        name: retry
        resources:
          job_recovery:
            max_restarts_on_errors: 1
        run: |
          echo "attempt $SPOTCTL_ATTEMPT recovery $SPOTCTL_RECOVERY_COUNT"
          exit 1
    """)
    result = spot_clean.run("launch", "-y", task)
    assert result.exit_code == 100, result.output
    assert "attempt 1 recovery 0" in result.stdout and "attempt 2 recovery 1" in result.stdout
    job = spot_clean.job(launched_id(result.stderr))
    assert job["status"] == "FAILED" and job["recoveries"] == 1


def test_cancel_while_running_kills_program_and_instance(spot_clean: Spot, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    result = spot_clean.run("launch", "-y", "-d", "-n", "sleeper", f"echo $$ > {pid_file}; exec sleep 1000")
    assert result.exit_code == 0, result.output
    job_id = launched_id(result.stderr)
    spot_clean.wait_status(job_id, "RUNNING")
    deadline = time.monotonic() + 10
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    pid = int(pid_file.read_text())
    assert not pid_dead(pid)
    started = time.monotonic()
    cancel = spot_clean.run("cancel", "-y", str(job_id))
    assert cancel.exit_code == 0 and "cancelling" in cancel.stdout
    job = spot_clean.wait_status(job_id, "CANCELLED", timeout=10)
    elapsed = time.monotonic() - started
    assert elapsed < 10
    assert pid_dead(pid)
    assert spot_clean.alive_instances() == []
    assert job["failure_reason"] == "cancelled by user"
    logs = spot_clean.run("logs", "--no-follow", str(job_id))
    assert logs.exit_code == 103


def test_cancel_during_setup(spot_clean: Spot, tmp_path: Path) -> None:
    task = write_task(tmp_path, """
        name: slowsetup
        setup: sleep 1000
        run: echo never
    """)
    job_id = launched_id(spot_clean.run("launch", "-y", "-d", task).stderr)
    deadline = time.monotonic() + 20
    job: dict = {}
    while time.monotonic() < deadline:
        job = spot_clean.job(job_id)
        if job["status"] == "STARTING" and "setting up" in (job["detail"] or "") and spot_clean.alive_instances():
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"job {job_id} never reached its setup; last seen {job}")
    assert spot_clean.run("cancel", "-y", "-n", "slowsetup").exit_code == 0
    spot_clean.wait_status(job_id, "CANCELLED", timeout=10)
    assert spot_clean.alive_instances() == []


def test_cancel_before_the_worker_starts_it(spot_clean: Spot) -> None:
    """A cancel that arrives with the workflow's very first task (the job is PENDING)."""
    p = plan("echo never", Overrides(name="pending"), spot_clean.settings)

    async def start_and_cancel() -> int:
        client = await SpotClient.connect(spot_clean.settings)
        job_id = await client.allocate_job_id()
        await client.start_job(p.to_spec(job_id))
        await client.cancel(job_id)
        final = await client.result(job_id)
        assert final.status.value == "CANCELLED"
        return job_id

    job_id = asyncio.run(start_and_cancel())
    job = spot_clean.wait_status(job_id, "CANCELLED")
    assert job["started_at"] is None and job["attempt"] == 0


def test_no_capacity_waits_visibly_then_cancel(spot_clean: Spot, tmp_path: Path) -> None:
    spot_clean.cloud.config()  # writes the default file on first use
    config = spot_clean.cloud.config_path
    original = config.read_text()
    config.write_text(original.replace("capacity: 8", "capacity: 0"))
    try:
        job_id = launched_id(spot_clean.run("launch", "-y", "-d", "-n", "starved", "echo hi").stderr)
        deadline = time.monotonic() + 20
        job: dict = {}
        while time.monotonic() < deadline:
            job = spot_clean.job(job_id)
            if "no capacity" in (job.get("detail") or ""):
                break
            time.sleep(0.2)
        assert job["status"] == "STARTING" and "retry in" in job["detail"], job
        assert "no capacity in local-east" in job["failure_reason"]
        assert spot_clean.run("cancel", "-y", str(job_id)).exit_code == 0
        spot_clean.wait_status(job_id, "CANCELLED", timeout=10)
    finally:
        config.write_text(original)


def test_no_capacity_with_max_wait_is_failed_no_resource(spot_clean: Spot, tmp_path: Path) -> None:
    spot_clean.cloud.config()  # writes the default file on first use
    config = spot_clean.cloud.config_path
    original = config.read_text()
    config.write_text(original.replace("capacity: 8", "capacity: 0"))
    try:
        task = write_task(tmp_path, """
            name: impatient
            resources:
              job_recovery:
                max_wait: 3s
            run: echo hi
        """)
        result = spot_clean.run("launch", "-y", task)
        assert result.exit_code == 100, result.output
        job = spot_clean.job(launched_id(result.stderr))
        assert job["status"] == "FAILED_NO_RESOURCE"
        assert "no capacity" in job["failure_reason"]
    finally:
        config.write_text(original)


def test_status_json_fields_and_increasing_ids(spot_clean: Spot) -> None:
    ids = [launched_id(spot_clean.run("launch", "-y", "-d", "-n", f"batch{i}", f"echo job {i}").stderr) for i in range(3)]
    assert ids == [ids[0], ids[0] + 1, ids[0] + 2]
    for job_id in ids:
        spot_clean.wait_status(job_id, "SUCCEEDED")
    jobs = {j["job_id"]: j for j in spot_clean.status()}
    for i, job_id in enumerate(ids):
        job = jobs[job_id]
        assert job["name"] == f"batch{i}"
        for field in ("resources", "submitted_at", "total_duration_s", "job_duration_s", "recoveries", "cloud", "region"):
            assert field in job
        assert job["total_duration_s"] >= job["job_duration_s"] >= 0
    table = spot_clean.run("queue")
    for header in ("ID", "NAME", "RESOURCES", "SUBMITTED", "TOT. DURATION", "JOB DURATION", "#RECOVERIES", "STATUS"):
        assert header in table.stdout


def test_logs_and_cancel_of_unknown_job(spot_clean: Spot) -> None:
    assert spot_clean.run("logs", "99999", "--no-follow").exit_code == 102
    assert spot_clean.run("logs", "-n", "no-such-job").exit_code == 102
    assert spot_clean.run("cancel", "-y", "99999").exit_code == 102


def test_dashboard_prints_ui_address(spot_clean: Spot) -> None:
    job_id = spot_clean.launch_detached("true")  # a job that exists: `dashboard 999` exits 102
    result = spot_clean.run("dashboard", "--temporal-ui", str(job_id))
    port = spot_clean.env["SPOTCTL_UI_PORT"]
    assert result.stdout.strip() == f"http://127.0.0.1:{port}/namespaces/default/workflows/spotctl-job-{job_id}"
    spot_clean.wait_status(job_id, "SUCCEEDED")


def test_two_node_job_runs_on_both_nodes(spot_clean: Spot, tmp_path: Path) -> None:
    task = write_task(tmp_path, """
        name: pair
        num_nodes: 2
        run: |
          echo "rank $SKYPILOT_NODE_RANK of $SKYPILOT_NUM_NODES"
          [ "$SKYPILOT_NODE_RANK" = 1 ] && exit 4 || exit 0
    """)
    result = spot_clean.run("launch", "-y", task)
    assert result.exit_code == 100, result.output
    assert "rank 0 of 2" in result.stdout
    assert "(node-1) rank 1 of 2" in result.stdout
    job = spot_clean.job(launched_id(result.stderr))
    assert job["status"] == "FAILED" and job["exit_code"] == 4


def test_launch_asks_before_starting(spot_clean: Spot) -> None:
    before = len(spot_clean.status())
    declined = spot_clean.run("launch", "-n", "asked", "echo hi", input="n\n")
    assert declined.exit_code == 1 and "Proceed?" in declined.stderr
    assert len(spot_clean.status()) == before
    accepted = spot_clean.run("launch", "-d", "-n", "asked", "echo hi", input="y\n")
    assert accepted.exit_code == 0, accepted.output
    spot_clean.wait_status(launched_id(accepted.stderr), "SUCCEEDED")


def test_plain_temporal_cancel_also_cleans_up(spot_clean: Spot, tmp_path: Path) -> None:
    """Cancelling the workflow from Temporal (web UI, `temporal workflow cancel`) is a cancel too."""
    pid_file = tmp_path / "pid"
    job_id = launched_id(spot_clean.run("launch", "-y", "-d", f"echo $$ > {pid_file}; exec sleep 1000").stderr)
    spot_clean.wait_status(job_id, "RUNNING")

    async def cancel_workflow() -> None:
        client = await SpotClient.connect(spot_clean.settings)
        await client.temporal.get_workflow_handle(f"spotctl-job-{job_id}").cancel()

    asyncio.run(cancel_workflow())
    spot_clean.wait_status(job_id, "CANCELLED", timeout=10)
    assert pid_dead(int(pid_file.read_text()))
    assert spot_clean.alive_instances() == []


def test_cancel_all(spot_clean: Spot) -> None:
    ids = [launched_id(spot_clean.run("launch", "-y", "-d", "-n", f"bulk{i}", "sleep 1000").stderr) for i in range(2)]
    for job_id in ids:
        spot_clean.wait_status(job_id, "RUNNING", "STARTING")
    result = spot_clean.run("cancel", "-a", "-y")
    assert result.exit_code == 0 and all(f"Job {i}: cancelling" in result.stdout for i in ids)
    for job_id in ids:
        spot_clean.wait_status(job_id, "CANCELLED", timeout=10)


def test_unprovisionable_candidates_fail_prechecks(spot_clean: Spot) -> None:
    """A request that can never be served (here: a cloud this worker does not know) ends
    FAILED_PRECHECKS at once instead of waiting for capacity forever."""
    p = plan("echo never", Overrides(name="prechecks"), spot_clean.settings)
    bogus = [c.model_copy(update={"cloud": "nosuchcloud"}) for c in p.candidates[:2]]

    async def launch() -> int:
        client = await SpotClient.connect(spot_clean.settings)
        job_id = await client.allocate_job_id()
        await client.start_job(p.to_spec(job_id).model_copy(update={"candidates": bogus}))
        return job_id

    job = spot_clean.wait_status(asyncio.run(launch()), "FAILED_PRECHECKS", timeout=20)
    assert "nosuchcloud" in job["failure_reason"]


def test_job_ids_are_never_reused_even_if_the_allocator_is_terminated(spot_clean: Spot) -> None:
    before = spot_clean.launch_detached("echo before")
    spot_clean.wait_status(before, "SUCCEEDED")

    async def terminate_allocator() -> None:
        client = await SpotClient.connect(spot_clean.settings)
        await client.temporal.get_workflow_handle("spotctl-job-id-allocator").terminate("operator mistake")

    asyncio.run(terminate_allocator())
    after = spot_clean.launch_detached("echo after")
    assert after == before + 1
    spot_clean.wait_status(after, "SUCCEEDED")
