"""Pointing spotctl at an existing Temporal: `spotctl worker` + launch, no embedded server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from spotctl.embedded import temporal_binary

from conftest import REPO, free_port, pid_dead


def test_worker_against_a_plain_temporal_server(tmp_path: Path) -> None:
    port = free_port()
    # A server with none of spotctl's search attributes: the worker must register them.
    server = subprocess.Popen(
        [temporal_binary(), "server", "start-dev", "--headless", "--ip", "127.0.0.1", "--port", str(port),
         "--db-filename", str(tmp_path / "db.sqlite")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    env = {**os.environ, "SPOTCTL_HOME": str(tmp_path / "home"), "SPOTCTL_TEMPORAL_ADDRESS": f"127.0.0.1:{port}"}
    worker = None
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # no worker yet: launch must say so, not hang
            orphan = subprocess.run([sys.executable, "-m", "spotctl", "launch", "-y", "echo nobody runs me"],
                                    env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
            if "no spotctl worker is polling" in orphan.stderr:
                break
            time.sleep(0.3)
        assert orphan.returncode == 1 and "spotctl worker" in orphan.stderr, orphan.stderr
        worker = subprocess.Popen([sys.executable, "-m", "spotctl", "worker"], env=env, cwd=REPO,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True, text=True)
        deadline = time.monotonic() + 30
        launched = None
        while time.monotonic() < deadline:  # the worker needs the server up first
            launched = subprocess.run([sys.executable, "-m", "spotctl", "launch", "-y", "-n", "remote", "echo via cluster"],
                                      env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
            if launched.returncode == 0:
                break
            time.sleep(0.5)
        assert launched is not None and launched.returncode == 0, launched.stderr if launched else ""
        assert "via cluster" in launched.stdout
        assert "embedded" not in launched.stderr
        status = subprocess.run([sys.executable, "-m", "spotctl", "status", "--json"], env=env, cwd=REPO,
                                capture_output=True, text=True, timeout=60)
        jobs = json.loads(status.stdout)
        assert [(j["job_id"], j["status"]) for j in jobs] == [(1, "SUCCEEDED")]  # the refused launch made nothing
        assert not (tmp_path / "home" / "server").exists()  # nothing embedded was started
    finally:
        for proc in (worker, server):
            if proc is not None:
                os.killpg(proc.pid, 15)
                proc.wait(timeout=15)
    assert pid_dead(server.pid)
