"""A state dir on a full disk (issue 21 item 4): a command says so in one line, never a
traceback, and leaves no half-written file behind that would break the next command once
there is room."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from spotctl.cli.main import cli

from conftest import EXAMPLES, embedded_spot, spotctl_env


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs, filled to the last block; unmounted at the end."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a small real filesystem (tmpfs) needs root and mount")
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], check=True)
    try:
        subprocess.run(["dd", "if=/dev/zero", f"of={disk / 'ballast'}", "bs=4k"], capture_output=True)
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)


@pytest.mark.parametrize("args", [["launch", "--dry-run"], ["launch", "-y", "-d"]])
def test_a_full_state_dir_is_one_line_and_leaves_nothing_half_written(full_disk: Path, args: list[str]) -> None:
    home = full_disk / "home"
    env = {"SPOTCTL_HOME": str(home), "SPOTCTL_CLOUDS": "local"}
    result = CliRunner().invoke(cli, [*args, str(EXAMPLES / "quickstart.yaml")], env=env)
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: no space left on device"), result.stderr
    assert "Traceback" not in result.output
    left = [p.name for p in home.rglob("*") if p.is_file()]
    assert not [n for n in left if n.endswith(".tmp")], left  # no temporary file left
    (full_disk / "ballast").unlink()  # room again: the next command works as on a new machine
    again = CliRunner().invoke(cli, ["launch", "--dry-run", str(EXAMPLES / "quickstart.yaml")], env=env)
    assert again.exit_code == 0, again.output


def test_status_says_why_jobs_wait_on_a_full_state_dir(tmp_path: Path) -> None:
    """A running job whose state dir's disk fills up: `status` still answers, and says why
    nothing moves (the embedded server cannot record progress), instead of a silent RUNNING."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a small real filesystem (tmpfs) needs root and mount")
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256m", "tmpfs", str(disk)], check=True)
    home = disk / "home"
    home.mkdir()
    try:
        with embedded_spot(home, spotctl_env(home)) as spot:
            task = tmp_path / "task.yaml"
            task.write_text("name: wait\nrun: sleep 600\n")
            job_id = spot.launch_detached(str(task))
            spot.wait_running(job_id)
            calm = spot.run("status")
            assert calm.exit_code == 0 and "disk is full" not in calm.stderr
            subprocess.run(["dd", "if=/dev/zero", f"of={disk / 'ballast'}", "bs=1M"], capture_output=True)
            try:
                full = spot.run("status")
                assert full.exit_code == 0, full.output
                assert "Note: the state dir's disk is full" in full.stderr and "running jobs wait" in full.stderr
            finally:
                (disk / "ballast").unlink()
            assert spot.run("cancel", "-y", str(job_id)).exit_code == 0
            spot.wait_status(job_id, "CANCELLED", timeout=60)
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)
