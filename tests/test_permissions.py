"""$SPOTCTL_HOME is its owner's only: 0700 dirs, 0600 files, after a real job.

The CLI runs as a real process here (not in-process like the other tests), because the umask
is set in its entry point and inherited from there by the embedded server and worker it starts.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import REPO, pid_dead, spotctl_env


def spotctl(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "spotctl.cli.main", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=240)


@pytest.fixture
def private_spot(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """A fresh home that spotctl itself creates (its parent is world-readable, like ~)."""
    parent = tmp_path / "user"
    parent.mkdir()
    parent.chmod(0o755)
    home = parent / "spotctl-home"
    env = {**os.environ, **spotctl_env(home)}
    env.pop("SPOTCTL_TEMPORAL_ADDRESS", None)
    try:
        yield home, env
    finally:
        pids = [int(p.read_text()) for p in (home / "server").glob("*.pid") if p.read_text().strip()]
        spotctl(env, "server", "stop")
        assert all(pid_dead(p) for p in pids), f"left running: {pids}"


def loose_entries(home: Path) -> list[str]:
    """Everything under home (home included) that group or others may read, write or enter."""
    loose = []
    for root, dirs, files in os.walk(home):
        for name in [".", *dirs, *files]:
            path = Path(root) / name if name != "." else Path(root)
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                continue  # a symlink's own mode means nothing; its target is walked itself
            if stat.S_IMODE(mode) & 0o077:
                loose.append(f"{oct(stat.S_IMODE(mode))} {path.relative_to(home)}")
    return loose


def test_home_and_everything_in_it_is_private(private_spot: tuple[Path, dict[str, str]]) -> None:
    home, env = private_spot
    done = spotctl(env, "launch", "-y", "-n", "perm", "echo private > out.txt; echo done")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "done" in done.stdout
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    for must_exist in ("server/temporal.db", "codec.key", "logs"):
        assert (home / must_exist).exists(), must_exist
    assert stat.S_IMODE((home / "codec.key").stat().st_mode) == 0o600
    assert loose_entries(home) == []


def test_existing_loose_home_is_tightened(private_spot: tuple[Path, dict[str, str]]) -> None:
    home, env = private_spot
    home.mkdir(mode=0o755)
    home.chmod(0o755)
    assert spotctl(env, "--help").returncode == 0  # any command: the entry point does it
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
