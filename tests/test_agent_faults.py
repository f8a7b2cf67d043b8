"""The node agent when its own processes die (issue 21): a supervisor killed mid-run takes
nothing with it; a new one adopts the program and publishes the program's own exit code, and
when no process saw the end the phase is `lost`, never given a made-up exit code."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from test_agent import agent, attempt, marker, wait_exit, wait_for  # noqa: F401 - fixtures

from spotctl.node_agent.agent import pid_alive


def _pid(d: Path, name: str) -> int:
    return int((d / name).read_text())


def test_a_killed_supervisor_is_replaced_and_the_program_runs_on_once(
    tmp_path: Path, marker: str, attempt: Path  # noqa: F811
) -> None:
    runs = tmp_path / "runs"
    (attempt / "run.sh").write_text(f"echo ran >> {runs}\nfor i in $(seq 1 30); do echo line $i; sleep 0.05; done\nexit 3\n")
    started = agent(tmp_path, marker, "start", str(attempt), "run")
    wait_for(lambda: "line 5\n" in (attempt / "output.log").read_text())
    os.kill(_pid(attempt, "run.spid"), signal.SIGKILL)
    assert pid_alive(started["pid"])  # the program is not the supervisor's to take along
    revived = agent(tmp_path, marker, "revive", str(attempt), "run")
    assert revived["revived"] is True and revived["exit_code"] is None
    assert agent(tmp_path, marker, "revive", str(attempt), "run")["revived"] is False  # one at a time
    assert wait_exit(tmp_path, marker, attempt)["exit_code"] == 3  # the program's own code
    log = (attempt / "output.log").read_text()
    assert [ln for ln in log.splitlines() if ln.startswith("line ")] == [f"line {i}" for i in range(1, 31)]
    assert "a new one adopts the running program" in log
    assert runs.read_text() == "ran\n"
    assert agent(tmp_path, marker, "revive", str(attempt), "run")["revived"] is False  # ended


def test_a_program_that_ended_while_no_supervisor_lived_keeps_its_exit_code(
    tmp_path: Path, marker: str, attempt: Path  # noqa: F811
) -> None:
    (attempt / "run.sh").write_text("sleep 0.5; exit 7\n")
    started = agent(tmp_path, marker, "start", str(attempt), "run")
    os.kill(_pid(attempt, "run.spid"), signal.SIGKILL)
    wait_for(lambda: not pid_alive(started["pid"]))
    time.sleep(0.3)
    assert not (attempt / "run.exit").exists()
    agent(tmp_path, marker, "revive", str(attempt), "run")
    assert wait_exit(tmp_path, marker, attempt)["exit_code"] == 7


def test_an_end_nobody_saw_is_lost_not_an_exit_code(tmp_path: Path, marker: str, attempt: Path) -> None:  # noqa: F811
    (attempt / "run.sh").write_text("sleep 1; exit 0\n")
    started = agent(tmp_path, marker, "start", str(attempt), "run")
    for name in ("run.spid", "run.kpid"):  # spotctl's processes die, the program lives on
        os.kill(_pid(attempt, name), signal.SIGKILL)
    assert agent(tmp_path, marker, "revive", str(attempt), "run")["revived"] is True
    assert pid_alive(started["pid"])
    wait_for(lambda: (attempt / "run.exit").exists(), timeout=15)
    assert not pid_alive(started["pid"])  # the adopter waited for the program to end
    assert (attempt / "run.exit").read_text().startswith("lost: ")
    status = agent(tmp_path, marker, "status", str(attempt), "run")
    assert status["exit_code"] is None and status["running"] is False


@pytest.fixture
def tiny_disk(tmp_path: Path):
    """An attempt dir on a 2 MiB tmpfs of its own (unmounted after the test)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a small real filesystem (tmpfs) needs root and mount")
    mnt = tmp_path / "home"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], check=True)
    try:
        d = mnt / ".spotctl" / "job-1" / "attempt-1"
        d.mkdir(parents=True)
        (d / "env.json").write_text("{}")
        yield d
    finally:
        if subprocess.run(["umount", str(mnt)]).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], check=True)


def test_the_exit_code_is_recorded_on_a_full_disk(tmp_path: Path, marker: str, tiny_disk: Path) -> None:  # noqa: F811
    """The program fills the disk, its supervisor keeps beating (and says the disk is full),
    and the program's own exit code is published: no 137, no hang."""
    (tiny_disk / "run.sh").write_text("yes x | head -c 4000000; sleep 3; exit 5\n")
    agent(tmp_path, marker, "start", str(tiny_disk), "run")
    wait_for(lambda: b"nospace" in (tiny_disk / "run.beat").read_bytes(), timeout=15)
    assert shutil.disk_usage(tiny_disk).free < 64 << 10
    assert wait_exit(tmp_path, marker, tiny_disk)["exit_code"] == 5
    assert supervisor_gone(tiny_disk)


def supervisor_gone(d: Path) -> bool:
    return wait_for(lambda: not pid_alive(_pid(d, "run.spid")), timeout=10)
