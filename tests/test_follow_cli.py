"""Following jobs from the CLI: Ctrl-C, the output on a pipe, errors for what does not exist,
the server after `server stop`, and the help texts."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from spotctl.cli.common import EXIT_NOT_FINISHED, EXIT_NOT_FOUND
from spotctl.cli.main import cli

from conftest import Spot, launched_id, spotctl_env


def _read_into(stream, sink: list[bytes]) -> None:
    for chunk in iter(lambda: stream.read1(4096), b""):
        sink.append(chunk)


@pytest.mark.parametrize("how", ["logs", "launch"])
def test_ctrl_c_while_following_leaves_the_job_running(spot_clean: Spot, how: str) -> None:
    """A real SIGINT to a real `spotctl logs ID` / `spotctl launch` (no -d): no 'Aborted!', the
    job keeps running, the message says how to follow it again, exit 101 (not finished)."""
    command = "echo following-me; sleep 60"
    if how == "logs":
        job_id = spot_clean.launch_detached(command)
        args = ["logs", str(job_id)]
    else:
        args = ["launch", "-y", command]
    proc = subprocess.Popen([sys.executable, "-m", "spotctl", *args], env={**os.environ, **spot_clean.env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out: list[bytes] = []
    reader = threading.Thread(target=_read_into, args=(proc.stdout, out), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        while b"following-me" not in b"".join(out):
            assert proc.poll() is None and time.monotonic() < deadline, b"".join(out)
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=30) == EXIT_NOT_FINISHED, err
    finally:
        proc.kill()
        proc.wait()
    if how == "launch":
        job_id = launched_id(err)
    assert "Aborted" not in err
    assert f"job {job_id}; it keeps running" in err and f"`spotctl logs {job_id}` follows it again" in err
    try:
        assert spot_clean.job(job_id)["status"] == "RUNNING"
    finally:
        assert spot_clean.run("cancel", "-y", str(job_id)).exit_code == 0
        spot_clean.wait_status(job_id, "CANCELLED")


def test_logs_on_a_pipe_are_the_bytes_only(spot_clean: Spot) -> None:
    """While the job provisions and runs quietly, a follow on a pipe adds nothing: stdout is the
    program's bytes, stderr is empty (the status line is for terminals)."""
    job_id = spot_clean.launch_detached("sleep 1.5; printf 'a\\xffb\\n'; sleep 1; printf 'no newline'")
    result = CliRunner().invoke(cli, ["logs", str(job_id)], env=spot_clean.env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.stdout_bytes == b"a\xffb\nno newline"
    assert result.stderr_bytes == b""


def test_logs_on_a_terminal_show_a_status_line_while_the_job_is_quiet(spot_clean: Spot, tmp_path: Path) -> None:
    """On a terminal (a real pty), a follow of a quiet job shows what the job does below the
    logs (rich's status line), and the program's output still arrives whole."""
    import pty

    # The job is quiet until the test has seen the status line (60 s at most): a fixed 3 s
    # raced the follow's start on a loaded machine.
    release = tmp_path / "release"
    job_id = spot_clean.launch_detached(
        f"echo first; for i in $(seq 600); do [ -e {release} ] && break; sleep 0.1; done; echo second")
    primary, secondary = pty.openpty()
    env = {**os.environ, **spot_clean.env, "TERM": "xterm", "COLUMNS": "100"}
    proc = subprocess.Popen([sys.executable, "-m", "spotctl", "logs", str(job_id)], env=env,
                            stdin=secondary, stdout=secondary, stderr=secondary, close_fds=True)
    os.close(secondary)
    seen = b""
    try:
        deadline = time.monotonic() + 90
        while proc.poll() is None and time.monotonic() < deadline:
            if select.select([primary], [], [], 0.5)[0]:
                try:
                    chunk = os.read(primary, 65536)
                except OSError:  # the child closed the pty
                    break
                seen += chunk
            quiet = seen[seen.find(b"first"):] if b"first" in seen else b""
            if f"Job {job_id} ".encode() in quiet and b"RUNNING" in quiet:
                release.touch()
        assert proc.wait(timeout=30) == 0, seen
    finally:
        proc.kill()
        os.close(primary)
    text = seen.decode(errors="replace")
    assert "first" in text and "second" in text
    quiet = text[text.index("first"):text.index("second")]
    assert f"Job {job_id} " in quiet and "RUNNING" in quiet, quiet  # the status line, between the lines


def test_no_such_attempt_or_job_exits_102(spot_clean: Spot) -> None:
    job_id = spot_clean.launch_detached("echo done")
    spot_clean.wait_status(job_id, "SUCCEEDED")
    for extra in (["--attempt", "9"], ["--attempt", "0"], ["--no-follow", "--attempt", "9"]):
        result = spot_clean.run("logs", str(job_id), *extra)
        assert result.exit_code == EXIT_NOT_FOUND, result.output
        assert f"job {job_id} has no attempt {extra[-1]} (attempts 1-1)" in result.stderr
        assert result.stdout == ""
    assert spot_clean.run("logs", str(job_id), "--attempt", "1").stdout == "done\n"

    result = spot_clean.run("dashboard", "--temporal-ui", "999999")
    assert result.exit_code == EXIT_NOT_FOUND and "no job with id 999999" in result.stderr
    assert result.stdout == ""
    result = spot_clean.run("dashboard", "--temporal-ui", str(job_id))
    assert result.exit_code == 0 and result.stdout.strip().endswith(f"/spotctl-job-{job_id}")
    assert spot_clean.run("dashboard", "--temporal-ui").exit_code == 0


def test_status_after_server_stop_brings_it_back(tmp_path: Path) -> None:
    """`server stop`, then `status`: the read-only command restarts the server of a used state
    dir, rather than say no job was ever launched there. A fresh dir gets the hint."""
    home = tmp_path / "home"
    env = spotctl_env(home)
    run = CliRunner().invoke
    fresh = run(cli, ["status"], env=env)
    assert fresh.exit_code == 1 and "`spotctl server start`" in fresh.stderr
    try:
        assert run(cli, ["server", "start"], env=env).exit_code == 0
        assert run(cli, ["server", "stop"], env=env).exit_code == 0
        after = run(cli, ["status"], env=env)
        assert after.exit_code == 0, after.output
        assert after.stdout.strip() == "No managed jobs."
    finally:
        assert run(cli, ["server", "stop"], env=env).exit_code == 0


def test_help_lists_aliases_and_options() -> None:
    out = CliRunner().invoke(cli, ["--help"]).stdout
    assert "queue" in out and "Same as `spotctl status`" in out
    out = CliRunner().invoke(cli, ["server", "status", "--help"]).stdout
    assert "--json" in out and "Machine-readable" in out
    out = CliRunner().invoke(cli, ["debug", "preempt", "--help"]).stdout
    assert "--wait" in out and "--timeout" in out
