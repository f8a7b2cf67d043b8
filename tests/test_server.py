"""The embedded server's life: fresh start, reuse, ids from 1, stop with nothing left behind."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from spotctl.cli.main import cli
from spotctl.config import load_settings
from spotctl.embedded import EmbeddedServer, cmdline

from conftest import REPO, free_port, pid_dead, spotctl_env


def spotctl(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """The real console entry point, in a separate process, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "spotctl", *args], env={**os.environ, **env}, cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_quickstart_on_a_fresh_state_dir(tmp_path: Path) -> None:
    """README's quickstart: launch starts everything, status shows the job, stop ends it all."""
    env = spotctl_env(tmp_path / "home")
    server = EmbeddedServer(load_settings(tmp_path / "home"))
    try:
        first = spotctl(env, "launch", "-y", "-n", "hello", "examples/quickstart.yaml")
        assert first.returncode == 0, first.stderr
        assert "Hello from managed job 1" in first.stdout
        assert "starting the embedded Temporal server" in first.stderr
        temporal_pid, worker_pid = server.temporal.pid(), server.worker.pid()
        supervisor_pid = server.supervisor.pid()
        assert temporal_pid and worker_pid and supervisor_pid

        second = spotctl(env, "launch", "-y", "-d", "echo again")
        assert second.returncode == 0, second.stderr
        assert "starting the embedded" not in second.stderr  # reused
        assert (server.temporal.pid(), server.worker.pid()) == (temporal_pid, worker_pid)
        third = spotctl(env, "launch", "-y", "-d", "echo third")
        ids = [int(line.split()[2]) for r in (second, third) for line in r.stderr.splitlines() if line.startswith("Managed job")]
        assert ids == [2, 3]

        status = spotctl(env, "status", "--json")
        jobs = {j["job_id"]: j for j in json.loads(status.stdout)}
        assert sorted(jobs) == [1, 2, 3]
        assert jobs[1]["status"] == "SUCCEEDED" and jobs[1]["name"] == "hello"

        # The web UI (on 127.0.0.1 only) shows the job's workflow.
        ui = f"http://127.0.0.1:{env['SPOTCTL_UI_PORT']}"
        with urllib.request.urlopen(f"{ui}/api/v1/namespaces/default/workflows/spotctl-job-1", timeout=10) as resp:
            described = json.loads(resp.read())
        assert described["workflowExecutionInfo"]["type"]["name"] == "SpotJobWorkflow"
        dashboard = spotctl(env, "dashboard", "--temporal-ui", "1")
        assert dashboard.stdout.strip() == f"{ui}/namespaces/default/workflows/spotctl-job-1"
    finally:
        stop = spotctl(env, "server", "stop")
    assert stop.returncode == 0 and "temporal server" in stop.stdout
    assert pid_dead(temporal_pid) and pid_dead(worker_pid) and pid_dead(supervisor_pid)
    assert server.status()["temporal_pid"] is None


def test_server_start_stop_status_and_stale_pid(tmp_path: Path) -> None:
    env = spotctl_env(tmp_path / "home")
    runner = CliRunner()
    started = runner.invoke(cli, ["server", "start"], env=env)
    assert started.exit_code == 0, started.output
    assert "Started" in started.stdout
    again = runner.invoke(cli, ["server", "start"], env=env)
    assert "Already running" in again.stdout
    st = json.loads(runner.invoke(cli, ["server", "status", "--json"], env=env).stdout)
    pids = [st["supervisor_pid"], st["temporal_pid"], st["worker_pid"]]
    assert all(pids)
    # The web UI decodes payloads through the worker's codec endpoint.
    assert f"--ui-codec-endpoint http://127.0.0.1:{env['SPOTCTL_CODEC_PORT']} " in cmdline(st["temporal_pid"])
    stopped = runner.invoke(cli, ["server", "stop"], env=env)
    assert stopped.exit_code == 0 and "worker" in stopped.stdout
    assert all(pid_dead(p) for p in pids)
    assert "Nothing was running" in runner.invoke(cli, ["server", "stop"], env=env).stdout

    # A stale pid file (its process long gone) is reported and replaced, not trusted.
    server_dir = tmp_path / "home" / "server"
    (server_dir / "temporal.pid").write_text("999999")
    restarted = runner.invoke(cli, ["server", "start"], env=env)
    try:
        assert restarted.exit_code == 0, restarted.output
        assert "stale pid file" in restarted.stderr
    finally:
        runner.invoke(cli, ["server", "stop"], env=env)


def test_port_in_use_gets_a_clear_message(tmp_path: Path) -> None:
    port = free_port()
    env = {**spotctl_env(tmp_path / "home"), "SPOTCTL_PORT": str(port)}
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", port))
        blocker.listen()
        result = CliRunner().invoke(cli, ["server", "start"], env=env)
    assert result.exit_code == 1
    assert f"port {port}" in result.stderr and "SPOTCTL_PORT" in result.stderr
    assert "Traceback" not in result.output
    assert EmbeddedServer(load_settings(tmp_path / "home")).status()["temporal_pid"] is None


def test_read_only_commands_do_not_start_a_server(tmp_path: Path) -> None:
    env = spotctl_env(tmp_path / "home")
    result = CliRunner().invoke(cli, ["status"], env=env)
    assert result.exit_code == 1
    assert "not running" in result.stderr
    assert not (tmp_path / "home" / "server" / "temporal.pid").exists()


@pytest.fixture(autouse=True)
def _no_env_leak(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests make their own servers: never talk to the session's one."""
    for key in ("SPOTCTL_HOME", "SPOTCTL_PORT", "SPOTCTL_UI_PORT", "SPOTCTL_TEMPORAL_ADDRESS"):
        monkeypatch.delenv(key, raising=False)
