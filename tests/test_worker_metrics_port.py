"""`spotctl worker` with a metrics port that is taken: one clear line and exit 1, before it
connects anywhere (a second worker on the same host with the same port, say)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path


def test_taken_metrics_port_is_one_line_and_exit_1(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "SPOTCTL_HOME": str(tmp_path / "home"), "SPOTCTL_METRICS_PORT": str(port),
               "SPOTCTL_TEMPORAL_ADDRESS": "127.0.0.1:1"}  # never reached: metrics come first
        result = subprocess.run([sys.executable, "-m", "spotctl.cli.main", "worker"], env=env,
                                capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("Error") or "cannot" in line]
    assert any(f"cannot serve metrics on 127.0.0.1:{port}" in line and "in use" in line for line in lines), result.stderr
    assert "Traceback" not in result.stderr
