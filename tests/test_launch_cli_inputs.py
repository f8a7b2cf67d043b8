"""What a newcomer (or a script) hands `spotctl launch` besides a task file on disk: a pipe as
the task file or the env file, empty or odd flag values, a secret on the command line, no
terminal to answer the prompt. Each is either done as a user expects or refused in one line
with exit 2; nothing hangs and nothing is created. The shell forms (`<(...)`, `| ... /dev/stdin`)
run the real CLI in a real bash."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from spotctl.cli.main import cli
from spotctl.task import input_files

from conftest import Spot


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    return tmp_path / "home"


def env_of(home: Path, **extra: str) -> dict[str, str]:
    return {"SPOTCTL_HOME": str(home), "SPOTCTL_CLOUDS": "local", **extra}


def invoke(home: Path, *args: str, **extra_env: str) -> Result:
    return CliRunner().invoke(cli, ["launch", *args], env=env_of(home, **extra_env))


def shell(home: Path, script: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    """`script` in bash, `spotctl` being this checkout's CLI (a real process, real fds)."""
    spotctl = f"{shlex.quote(sys.executable)} -m spotctl"
    return subprocess.run(["bash", "-c", script.replace("spotctl", spotctl)], input=stdin, capture_output=True,
                          text=True, timeout=120, env={**os.environ, **env_of(home)})


def refused(code: int, stderr: str, *pieces: str) -> None:
    """Exit 2 with one clear error line; never a traceback."""
    assert code == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:"), stderr
    for piece in pieces:
        assert piece in lines[0], (piece, lines[0])


# -- a task file or an env file that is a pipe -----------------------------------------------


def test_task_file_from_process_substitution_is_read(home: Path, tmp_path: Path) -> None:
    (tmp_path / "code").mkdir()
    task = "name: piped\\nworkdir: code\\nrun: echo hi\\n"
    done = shell(home, f"spotctl launch --dry-run <(printf '{task}')")
    assert done.returncode == 0, done.stderr
    assert "Task 'piped' (/dev/fd/" in done.stdout and "workdir: code" in done.stdout
    # Relative paths in it are taken from the current directory, as in any task file.
    missing = shell(home, "spotctl launch --dry-run <(printf 'workdir: nowhere\\nrun: echo hi\\n')")
    refused(missing.returncode, missing.stderr, "/dev/fd/", "workdir", str(tmp_path / "nowhere"))


def test_task_file_on_stdin_is_read(home: Path) -> None:
    done = shell(home, "spotctl launch --dry-run /dev/stdin", stdin="name: from-stdin\nrun: echo hi\n")
    assert done.returncode == 0, done.stderr
    assert "Task 'from-stdin' (/dev/stdin)" in done.stdout
    bad = shell(home, "spotctl launch --dry-run /dev/stdin", stdin="run: [unclosed\n")
    refused(bad.returncode, bad.stderr, "/dev/stdin")


def test_env_file_from_a_pipe_is_read(home: Path) -> None:
    done = shell(home, "spotctl launch --dry-run --env-file <(printf 'A=1\\nexport B=\"two\"\\n') 'echo $A'")
    assert done.returncode == 0, done.stderr
    assert "A: '1'" in done.stdout and "B: two" in done.stdout


def test_a_fifo_written_by_another_process_is_read(home: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "app.env"
    os.mkfifo(fifo)

    def write() -> None:
        time.sleep(0.3)  # after the CLI opened it
        with fifo.open("w") as f:
            f.write("LATE=arrived\n")

    writer = threading.Thread(target=write)
    writer.start()
    try:
        result = invoke(home, "--dry-run", "--env-file", str(fifo), "echo $LATE")
    finally:
        writer.join(timeout=10)
    assert result.exit_code == 0, result.output
    assert "LATE: arrived" in result.stdout


@pytest.mark.parametrize("as_task_file", [True, False], ids=["task file", "env file"])
def test_a_fifo_nobody_writes_is_refused_in_time(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                as_task_file: bool) -> None:
    monkeypatch.setattr(input_files, "PIPE_READ_TIMEOUT_S", 1.0)
    fifo = tmp_path / "silent"
    os.mkfifo(fifo)
    args = [str(fifo)] if as_task_file else ["--env-file", str(fifo), "echo hi"]
    started = time.monotonic()
    result = invoke(home, "--dry-run", *args)
    assert time.monotonic() - started < 10, "reading a silent FIFO hung"
    refused(result.exit_code, result.stderr, str(fifo), "still open after 1 s")
    assert not (home / "server").exists()


def test_an_endless_device_is_refused_at_the_size_limit(home: Path) -> None:
    result = invoke(home, "--dry-run", "--env-file", "/dev/zero", "echo hi")
    refused(result.exit_code, result.stderr, "/dev/zero", "--env-file", "larger than the limit")
    result = invoke(home, "--dry-run", "/dev/zero")
    refused(result.exit_code, result.stderr, "/dev/zero", "larger than the limit")


# -- flag values -----------------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["--gpus", "--cpus", "--memory", "--cloud", "--region", "--infra", "--name",
                                  "--instance-type", "--num-nodes", "--job-recovery", "--env-file"])
def test_an_empty_flag_value_is_refused_not_ignored(home: Path, flag: str) -> None:
    result = invoke(home, "--dry-run", f"{flag}=", "echo hi")
    refused(result.exit_code, result.stderr, flag, "empty value")


@pytest.mark.parametrize(("flag", "value"), [("--gpus", "V100:１"), ("--gpus", "V１00"), ("--cpus", "４"),
                                             ("--memory", "１６+")])
def test_counts_must_be_ascii_digits(home: Path, flag: str, value: str) -> None:
    result = invoke(home, "--dry-run", flag, value, "echo hi")
    refused(result.exit_code, result.stderr, flag, "ASCII")


# -- --secret --------------------------------------------------------------------------------


def test_secret_value_on_the_command_line_is_warned_about(home: Path) -> None:
    result = invoke(home, "--dry-run", "--secret", "HF_TOKEN=hf_visible_in_ps", "echo hi")
    assert result.exit_code == 0, result.output
    assert "hf_visible_in_ps" not in result.output
    (warning,) = [line for line in result.stderr.splitlines() if line.startswith("Warning:")]
    assert "--secret HF_TOKEN=..." in warning and "`ps`" in warning and "`--secret HF_TOKEN`" in warning


def test_secret_by_name_takes_the_environment_and_is_not_warned_about(home: Path) -> None:
    result = invoke(home, "--dry-run", "--secret", "HF_TOKEN", "echo hi", HF_TOKEN="hf_from_env")
    assert result.exit_code == 0, result.output
    assert "HF_TOKEN: <secret>" in result.stdout and "hf_from_env" not in result.output
    assert "Warning" not in result.stderr
    unset = invoke(home, "--dry-run", "--secret", "HF_TOKEN", "echo hi")
    refused(unset.exit_code, unset.stderr, "--secret HF_TOKEN", "not set")


# -- no terminal to answer the prompt --------------------------------------------------------


def test_launch_without_a_terminal_says_to_give_y(home: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "spotctl", "launch", "echo hi"], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=120, env={**os.environ, **env_of(home)})
    assert done.returncode == 2, done.stderr
    assert "Aborted" not in done.stderr and "Traceback" not in done.stderr
    error = done.stderr.strip().splitlines()[-1]
    assert error.startswith("Error:") and "not a terminal" in error and "-y" in error
    assert not (home / "server").exists(), "a launch that was not confirmed started the server"


def test_cancel_without_a_terminal_says_to_give_y(spot: Spot) -> None:
    result = spot.run("cancel", "999999")  # CliRunner: stdin is not a terminal, and empty
    assert result.exit_code == 2, result.output
    assert "Aborted" not in result.output
    assert "-y" in result.stderr.strip().splitlines()[-1]
