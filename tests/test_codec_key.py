"""A lost or broken codec key is one line that says what to do, never a new key, a traceback,
a hang or a 2 GB read.

Hostile testing: deleting `codec.key` made the next command write a new key into a home whose
history the old key encrypted (every command then failed with a key mismatch, and a restarted
worker stayed up logging while its job stalled); a key that is a directory gave a traceback;
one linked to /dev/zero was read until 2.7 GB. The real CLI and the real embedded default run
here, in a private home each (test_supervisor's `embedded` fixture, which checks that nothing
is left running).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import test_supervisor
from test_supervisor import Embedded, kill, spotctl, wait_until

embedded = test_supervisor.embedded
"""A private home and ports; everything stopped and checked gone at the end (test_supervisor.py)."""

RESTORE = "restore it from your backup"


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


def test_deleted_key_is_never_recreated_and_the_worker_stops_until_it_is_back(
        embedded: Embedded, tmp_path: Path) -> None:
    task = tmp_path / "ticks.yaml"
    task.write_text("name: ticks\nrun: |\n  for i in $(seq 1 20); do echo tick $i; sleep 0.5; done\n")
    launched = spotctl(embedded.env, "launch", "-y", "-d", str(task))
    assert launched.returncode == 0, launched.stderr
    wait_until(lambda: embedded.jobs_directly().get(1) == "RUNNING", 30, "job 1 to run")
    key = embedded.home / "codec.key"
    backup = tmp_path / "codec.key.backup"
    shutil.move(key, backup)

    # The worker restarts (a crash, an upgrade): without its key it stops with one line and a
    # non-zero code, instead of staying up with a new key and a stalled job.
    server = embedded.server
    kill(server.worker.pid())
    log = embedded.home / "server" / "worker.log"
    wait_until(lambda: "is missing but" in log.read_text(), 30, "the worker to say the key is missing")
    supervisor_log = embedded.home / "server" / "supervisor.log"
    wait_until(lambda: "exited with code 2" in supervisor_log.read_text(), 30, "the worker to exit with code 2")
    assert "Traceback" not in log.read_text()

    # Every command says the same in one line, exit 2, and none writes a new key.
    for args in (("status",), ("server", "start"), ("logs", "1", "--no-follow")):
        result = spotctl(embedded.env, *args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        line = one_line(result.stderr)
        assert str(key) in line and RESTORE in line and "fresh SPOTCTL_HOME" in line, line
        assert not os.path.lexists(key), f"{args} created a new key"

    # The key restored, the supervisor's next restart of the worker carries the job to its end.
    shutil.move(backup, key)
    wait_until(lambda: embedded.jobs_directly().get(1) == "SUCCEEDED", 90, "job 1 to succeed with its key back")
    assert embedded.jobs() == {1: "SUCCEEDED"}


def _make_bad(kind: str, path: Path) -> None:
    if kind == "directory":
        path.mkdir()
    elif kind == "dev-zero-link":
        path.symlink_to("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(path, 0o600)
    elif kind == "huge":
        path.write_bytes(b"A" * (4 << 20))
    elif kind == "dangling-link":
        path.symlink_to(path.with_name("gone"))


BAD_KINDS = ("directory", "dev-zero-link", "fifo", "huge", "dangling-link")


@pytest.mark.parametrize("kind", BAD_KINDS)
@pytest.mark.parametrize("where", ["home", "SPOTCTL_CODEC_KEY_FILE"])
def test_bad_key_file_is_one_line_and_exit_2(embedded: Embedded, tmp_path: Path, kind: str, where: str) -> None:
    env = dict(embedded.env)
    if where == "home":
        embedded.home.mkdir(mode=0o700)
        path = embedded.home / "codec.key"
    else:
        path = tmp_path / "mounted-key"
        env["SPOTCTL_CODEC_KEY_FILE"] = str(path)
    _make_bad(kind, path)
    result = spotctl(env, "server", "start", timeout=60)
    assert result.returncode == 2, (result.stdout, result.stderr)
    line = one_line(result.stderr)
    assert str(path) in line and RESTORE in line and "Traceback" not in line, line
    assert not (embedded.home / "server" / "temporal.db").exists(), "a server started without a key"
    if kind == "dangling-link":
        assert path.is_symlink() and not path.exists(), "a key was written through a dangling link"


def test_worker_with_another_key_stops_naming_both_keys(embedded: Embedded, tmp_path: Path) -> None:
    """A key replaced by another valid one (copied from another home): the restarted worker
    takes the job's next task, cannot decrypt it, and exits 2 with one line naming both key ids,
    instead of staying up and failing every task. With the right key back the job ends."""
    task = tmp_path / "ticks.yaml"
    task.write_text("name: ticks\nrun: |\n  for i in $(seq 1 20); do echo tick $i; sleep 0.5; done\n")
    launched = spotctl(embedded.env, "launch", "-y", "-d", str(task))
    assert launched.returncode == 0, launched.stderr
    wait_until(lambda: embedded.jobs_directly().get(1) == "RUNNING", 30, "job 1 to run")
    key = embedded.home / "codec.key"
    backup = tmp_path / "codec.key.backup"
    shutil.copy2(key, backup)
    key.write_bytes(os.urandom(32))

    kill(embedded.server.worker.pid())
    log = embedded.home / "server" / "worker.log"
    supervisor_log = embedded.home / "server" / "supervisor.log"
    wait_until(lambda: "exited with code 2" in supervisor_log.read_text(), 60, "the worker to exit with code 2")
    errors = [line for line in log.read_text().splitlines() if " ERROR spotctl.worker: " in line]
    assert errors and "was encrypted with codec key 'spotctl-" in errors[-1] and "but this process has" in errors[-1]

    shutil.copy2(backup, key)
    wait_until(lambda: embedded.jobs_directly().get(1) == "SUCCEEDED", 120, "job 1 to succeed with its key back")
