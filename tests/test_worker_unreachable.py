"""A worker that cannot reach Temporal for its whole connect timeout exits with code 3 and one
line (issue 27, item 4): not a traceback, and not SIGABRT/SIGSEGV from the Temporal core's
threads at interpreter exit, which hid the code its supervisor reads."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from spotctl.worker import EXIT_UNREACHABLE

COMMANDS = {"python -m spotctl.worker": ["-m", "spotctl.worker"], "spotctl worker": ["-m", "spotctl", "worker"]}


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_worker_that_gives_up_connecting_exits_3_with_one_line(tmp_path: Path, command: str) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SPOTCTL_")}
    env = {**clean, "SPOTCTL_HOME": str(tmp_path / "home"), "SPOTCTL_CLOUDS": "local",
           "SPOTCTL_TEMPORAL_ADDRESS": f"127.0.0.1:{closed_port()}", "SPOTCTL_CONNECT_TIMEOUT_S": "1"}
    for _ in range(3):  # the abort at exit came now and then, not every time
        done = subprocess.run([sys.executable, *COMMANDS[command]], capture_output=True, text=True, timeout=60,
                              cwd=tmp_path, env=env)
        assert done.returncode == EXIT_UNREACHABLE, (done.returncode, done.stderr[-2000:])
        assert "Traceback" not in done.stderr, done.stderr
        said = [line for line in done.stderr.splitlines() if "exiting" in line]  # the retries are warnings before it
        assert len(said) == 1 and "cannot reach Temporal at 127.0.0.1:" in said[0] and "after 1s" in said[0], done.stderr


def test_a_bad_connect_timeout_is_one_line_and_exit_2(tmp_path: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SPOTCTL_")}
    done = subprocess.run([sys.executable, "-m", "spotctl.worker"], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path, env={**clean, "SPOTCTL_HOME": str(tmp_path / "home"),
                                             "SPOTCTL_CONNECT_TIMEOUT_S": "0"})
    assert done.returncode == 2 and "SPOTCTL_CONNECT_TIMEOUT_S" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
