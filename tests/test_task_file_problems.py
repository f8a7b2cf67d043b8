"""Task-file inputs that used to slip through (issue 21): YAML 1.1 keys silently renamed or
dropped, special files and the state dir in a workdir, sparse files, a pipeline task without
`run`, reserved mount targets, and launch checks that stopped at the first problem. Each is
refused by `launch --dry-run` and by `launch` with one line per problem and exit code 2."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from spotctl.cli.main import cli
from spotctl.task import TaskError, parse_task_text

pytestmark = pytest.mark.quick  # `pytest -m quick`: the fast loop (README, Tests)


def task_error(text: str) -> str:
    with pytest.raises(TaskError) as info:
        parse_task_text(text, source="t.yaml")
    return str(info.value)


def dry_run(tmp_path: Path, text: str, *args: str) -> Result:
    """`spotctl launch --dry-run task.yaml` run from tmp_path, with a state dir of its own."""
    (tmp_path / "task.yaml").write_text(text)
    env = {"SPOTCTL_HOME": str(tmp_path / "home"), "SPOTCTL_CLOUDS": "local"}
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path)
        return CliRunner().invoke(cli, ["launch", "--dry-run", *args, "task.yaml"], env=env)


def refused(result: Result, *pieces: str) -> list[str]:
    """Exit 2, no traceback, every piece in the error lines; returns the lines."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    for piece in pieces:
        assert piece in result.stderr, (piece, result.stderr)
    return result.stderr.strip().splitlines()


# -- YAML 1.1 keys ----------------------------------------------------------------------------


def test_boolean_env_keys_are_refused_not_renamed() -> None:
    """`NO` and `OFF` are both the boolean false in YAML 1.1: they became one variable False=b."""
    message = task_error("run: echo\nenvs:\n  NO: a\n  OFF: b\n")
    assert message.splitlines() == [
        "t.yaml:3: envs.NO: YAML reads this key as a boolean, not as the text NO; quote it: 'NO'",
        "t.yaml:4: envs.OFF: YAML reads this key as a boolean, not as the text OFF; quote it: 'OFF'",
    ]


@pytest.mark.parametrize("text, expected", [
    ("envs:\n  ~: x\n", "t.yaml:3: envs.~: YAML reads this key as null (no value), not as the text ~; quote it: '~'"),
    ("secrets:\n  yes: x\n", "t.yaml:3: secrets.yes: YAML reads this key as a boolean"),
    ("file_mounts:\n  ~: ./d\n", "t.yaml:3: file_mounts.~: YAML reads this key as null"),
    ("file_mounts:\n  /d:\n    name: b\n    on: x\n", "t.yaml:5: file_mounts./d.on: YAML reads this key as a boolean"),
    ("envs:\n  1: x\n", "t.yaml:3: envs.1: YAML reads this key as a number"),
])
def test_keys_that_are_not_text_are_refused(text: str, expected: str) -> None:
    assert task_error("run: echo\n" + text).startswith(expected)


def test_quoted_keys_are_kept() -> None:
    task = parse_task_text("run: echo\nenvs:\n  'NO': a\n  \"OFF\": b\nfile_mounts:\n  '~/d': /tmp\n").tasks[0]
    assert task.envs == {"NO": "a", "OFF": "b"}
    assert list(task.file_mounts) == ["~/d"]


def test_duplicate_keys_are_refused_with_both_lines() -> None:
    message = task_error("run: echo 1\nname: x\nrun: echo 2\nresources:\n  cpus: 1\n  cpus: 2\n")
    assert message.splitlines() == [
        "t.yaml:3: run: given twice (lines 1 and 3); YAML would keep only the last",
        "t.yaml:6: resources.cpus: given twice (lines 5 and 6); YAML would keep only the last",
    ]


def test_merge_keys_are_not_duplicates() -> None:
    """`<<: *anchor` then a key of the anchor: the written key wins, as YAML means it."""
    task = parse_task_text("run: echo\nenvs:\n  <<: {A: '1', B: '2'}\n  B: '3'\n").tasks[0]
    assert task.envs == {"A": "1", "B": "3"}


def test_duplicate_key_in_the_cli(tmp_path: Path) -> None:
    lines = refused(dry_run(tmp_path, "run: echo 1\nrun: echo 2\n"), "task.yaml:2: run: given twice (lines 1 and 2)")
    assert len(lines) == 1


def test_parse_problems_of_every_document_are_reported_together() -> None:
    """Unknown keys of one level, a duplicate key, and a later document's bad value: all of them."""
    message = task_error("stup: x\nrn: y\n---\nrun: 1\nrun: echo\n---\nnum_nodes: x\nrun: z\n")
    assert message.splitlines() == [
        "t.yaml:1: stup: unknown field (did you mean 'setup'?)",
        "t.yaml:2: rn: unknown field (did you mean 'run'?)",
        "t.yaml:5: run: given twice (lines 4 and 5); YAML would keep only the last",
        "t.yaml:7: num_nodes: expected a whole number, got 'x'",
    ]


def test_the_problems_shown_have_a_bound(tmp_path: Path) -> None:
    """A generated file with 200 unknown keys: 50 lines and a count, not 200 lines."""
    text = "run: echo\n" + "".join(f"zz{i}: 1\n" for i in range(200))
    lines = refused(dry_run(tmp_path, text), "task.yaml:2: zz0: unknown field")
    assert len(lines) == 51 and lines[-1] == "... and 150 more problems"


# -- what a launch would upload ---------------------------------------------------------------


class ReachedServer(Exception):
    """Raised where a launch would start the server: every check before it passed."""


@pytest.fixture
def launch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """`spotctl launch [--dry-run] task.yaml` in tmp_path (state dir tmp_path/home); a real
    launch stops where it would contact the server, so a missed check fails the test instead
    of starting a job."""
    async def no_server(*args: object, **kwargs: object) -> None:
        raise ReachedServer

    from spotctl.cli import launch as launch_module
    monkeypatch.setattr(launch_module, "open_client", no_server)
    monkeypatch.chdir(tmp_path)
    env = {"SPOTCTL_HOME": str(tmp_path / "home"), "SPOTCTL_CLOUDS": "local,aws,gcp"}

    def invoke(text: str, *args: str) -> tuple[Result, Result]:
        """(the dry run's result, the launch's), which must agree."""
        (tmp_path / "task.yaml").write_text(text)
        dry = CliRunner().invoke(cli, ["launch", "--dry-run", *args, "task.yaml"], env=env)
        real = CliRunner().invoke(cli, ["launch", "-y", "-d", *args, "task.yaml"], env=env)
        return dry, real

    return invoke


def both_refused(results: tuple[Result, Result], *pieces: str) -> list[str]:
    """The dry run and the launch both exit 2 with the same lines, holding every piece."""
    dry, real = results
    lines = refused(dry, *pieces)
    assert refused(real) == lines
    return lines


def make_socket(path: Path) -> None:
    import socket
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(path))


def test_special_files_in_the_workdir_are_refused(launch, tmp_path: Path) -> None:
    """A FIFO made the launch's copy raise (exit 1, a traceback) after a dry run that said fine."""
    wd = tmp_path / "wd"
    (wd / "sub").mkdir(parents=True)
    os.mkfifo(wd / "pipe")
    make_socket(wd / "sub" / "sock")
    (wd / "ok.txt").write_text("fine")
    lines = both_refused(launch("workdir: ./wd\nrun: echo\n"))
    assert sorted(lines) == sorted([
        f"Error: task.yaml:1: workdir: {wd / 'pipe'} is a named pipe (FIFO), not a regular file: it cannot be "
        "uploaded (move it out of the folder)",
        f"task.yaml:1: workdir: {wd / 'sub' / 'sock'} is a socket, not a regular file: it cannot be uploaded "
        "(move it out of the folder)"]), lines
    assert not (tmp_path / "home" / "local_buckets").exists()


def test_a_fifo_as_a_mount_source_is_refused(launch, tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    both_refused(launch("file_mounts:\n  /data/p: ./pipe\nrun: echo\n"),
                 "task.yaml:2: file_mounts./data/p:", "is a named pipe (FIFO)")


def test_the_state_dir_is_never_uploaded(launch, tmp_path: Path) -> None:
    """`workdir: .` from the folder holding the state dir copied the bucket into itself until
    Errno 36; a mount source holding it likewise."""
    (tmp_path / "home").mkdir()
    both_refused(launch("workdir: .\nrun: echo\n"),
                 f"task.yaml:1: workdir: {tmp_path / 'home'} is spotctl's state dir")
    lines = both_refused(launch("file_mounts:\n  /all: ./\nrun: echo\n"),
                         f"task.yaml:2: file_mounts./all: {tmp_path / 'home'} is spotctl's state dir")
    assert len(lines) == 1
    (tmp_path / "home" / "local_buckets" / "b").mkdir(parents=True)
    both_refused(launch("workdir: ./home/local_buckets\nrun: echo\n"),
                 f"task.yaml:1: workdir: {tmp_path / 'home' / 'local_buckets'} is inside spotctl's state dir")


def test_a_sparse_file_is_refused_and_a_dense_one_is_not(launch, tmp_path: Path) -> None:
    """A 2 GB file with no data became 2 GB in the bucket and on each node."""
    wd = tmp_path / "wd"
    wd.mkdir()
    with open(wd / "disk.img", "wb") as f:
        f.truncate(2 * 1024**3)
    assert os.stat(wd / "disk.img").st_blocks * 512 < 1024**2  # really sparse here
    both_refused(launch("workdir: ./wd\nrun: echo\n"),
                 f"task.yaml:1: workdir: {wd / 'disk.img'} is a sparse file (2.0 GiB long, 0 B on disk)")
    (wd / "disk.img").unlink()
    with open(wd / "small.img", "wb") as f:  # a hole below the bound: fine
        f.truncate(1024**2)
    (wd / "data.bin").write_bytes(os.urandom(256 * 1024))
    dry, real = launch("workdir: ./wd\nrun: echo\n")
    assert dry.exit_code == 0, dry.output
    assert isinstance(real.exception, ReachedServer)


def test_an_upload_tree_has_a_bound(launch, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from spotctl.launch import staging_scan
    monkeypatch.setattr(staging_scan, "MAX_STAGED_FILES", 5)
    (tmp_path / "wd").mkdir()
    for i in range(8):
        (tmp_path / "wd" / f"f{i}").write_text("x")
    lines = both_refused(launch("workdir: ./wd\nrun: echo\n"),
                         "task.yaml:1: workdir: more than 5 files to upload before the job starts")
    assert len(lines) == 1


def test_a_launch_with_a_fifo_in_its_workdir_is_one_line_and_no_job(spot_clean, tmp_path: Path) -> None:
    """The real launch, server and all: exit 2, no traceback, no job, no bucket."""
    wd = tmp_path / "wd"
    wd.mkdir()
    os.mkfifo(wd / "pipe")
    (tmp_path / "task.yaml").write_text(f"workdir: {wd}\nrun: echo hi\n")
    before = len(spot_clean.status())
    result = spot_clean.run("launch", "-y", "-d", str(tmp_path / "task.yaml"))
    assert result.exit_code == 2, result.output
    assert "is a named pipe (FIFO)" in result.stderr and "Traceback" not in result.output
    assert len(spot_clean.status()) == before
    buckets = spot_clean.home / "local_buckets"
    assert not buckets.exists() or not list(buckets.glob("spotctl-job-*"))


def test_staging_itself_refuses_before_creating_a_bucket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whoever calls stage(), a FIFO is a TaskError before any bucket exists (it was an
    exception from the copy, after the job's bucket was made)."""
    from spotctl.config import load_settings
    from spotctl.launch import stage
    from spotctl.task import load_task_file
    monkeypatch.setenv("SPOTCTL_CLOUDS", "local")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "wd").mkdir()
    os.mkfifo(tmp_path / "wd" / "pipe")
    (tmp_path / "task.yaml").write_text("workdir: ./wd\nrun: echo\n")
    settings = load_settings(tmp_path / "home")
    with pytest.raises(TaskError, match="is a named pipe"):
        stage(load_task_file(tmp_path / "task.yaml").tasks[0], 1, settings)
    assert not (tmp_path / "home" / "local_buckets").exists() or not any((tmp_path / "home" / "local_buckets").iterdir())


# -- every problem in one run -----------------------------------------------------------------

BERT_QA = """\
name: bert_qa
workdir: ./missing

resources:
  accelerators: V100:1

file_mounts:
  /checkpoint:
    name: # NOTE: Fill in your bucket name
    mode: MOUNT
envs:
  WANDB_RESUME: allow

secrets:
  WANDB_API_KEY:

run: |
  python run_qa.py --output_dir /checkpoint/bert_qa/
"""


def test_every_problem_of_a_file_is_reported_at_once(launch, tmp_path: Path) -> None:
    """SkyPilot's bert_qa.yaml with a missing workdir never mentioned its empty bucket name
    until the workdir existed."""
    lines = both_refused(launch(BERT_QA))
    assert lines == [
        f"Error: task.yaml:2: workdir: directory {tmp_path / 'missing'} does not exist",
        "task.yaml:8: file_mounts./checkpoint: bucket name is empty (set name: to a bucket name)",
        "task.yaml:15: secrets.WANDB_API_KEY: no value given; export WANDB_API_KEY and pass --secret WANDB_API_KEY",
    ]


def test_placement_problems_come_with_the_launch_checks(launch, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No candidate at all, and a missing workdir: both said, not one after the other."""
    monkeypatch.setenv("WANDB_API_KEY", "k")
    lines = both_refused(launch(BERT_QA.replace("V100:1", "H100:99"), "--secret", "WANDB_API_KEY"))
    assert lines[0].startswith("Error: task.yaml: resources: no usable cloud") and "H100:99" in lines[0]
    assert lines[1:] == [
        f"task.yaml:2: workdir: directory {tmp_path / 'missing'} does not exist",
        "task.yaml:8: file_mounts./checkpoint: bucket name is empty (set name: to a bucket name)",
    ]


def test_a_pipeline_task_without_run_is_named_with_its_line(launch) -> None:
    lines = both_refused(launch("name: p\n---\nname: a\nrun: echo a\n---\nname: b\nsetup: echo b\n---\nrun: echo c\n"
                                "workdir: ./nope\n"))
    assert lines[0] == "Error: task.yaml:6: task 1 (b): run: a managed job needs a run command"
    assert lines[1].startswith("task.yaml:10: task 2: workdir: directory ") and len(lines) == 2


# -- mount targets ---------------------------------------------------------------------------


@pytest.mark.parametrize("target, mode, expected", [
    ("~/.spotctl", "MOUNT", "~/.spotctl on each node holds spotctl's agent"),
    ("~/.spotctl/data", "COPY", "~/.spotctl on each node holds spotctl's agent"),
    (".spotctl", "MOUNT", "~/.spotctl on each node holds spotctl's agent"),
    ("'~'", "MOUNT", "a MOUNT at ~ would put a bucket in place of the home directory"),
])
def test_reserved_mount_targets_are_refused(launch, target: str, mode: str, expected: str) -> None:
    both_refused(launch(f"file_mounts:\n  {target}:\n    name: okname\n    mode: {mode}\nrun: echo\n"),
                 "task.yaml:2: file_mounts.", expected)


def test_a_mount_at_the_workdirs_target_is_refused(launch, tmp_path: Path) -> None:
    (tmp_path / "wd").mkdir()
    (tmp_path / "data").mkdir()
    both_refused(launch("workdir: ./wd\nfile_mounts:\n  ~/sky_workdir: ./data\nrun: echo\n"),
                 "task.yaml:3: file_mounts.~/sky_workdir: the workdir is copied to ~/sky_workdir, so a mount "
                 "there would be merged into it")
    dry, real = launch("workdir: ./wd\nfile_mounts:\n  ~/sky_workdir/data: ./data\nrun: echo\n")  # under it: fine
    assert dry.exit_code == 0, dry.output
    assert isinstance(real.exception, ReachedServer)


# -- event_callback and webhook --------------------------------------------------------------


def test_callback_envs_over_their_bound_are_refused(launch) -> None:
    """Over 16 KiB, the callback silently got none of them (only the worker's log said so)."""
    big = "x" * 9000
    both_refused(launch(f"envs:\n  A: {big}\n  B: {big}\nevent_callback: echo $A\nrun: echo\n"),
                 "task.yaml:4: event_callback: the callback is given the task's envs and secrets only up to "
                 "16384 bytes, and these are 18002")
    dry, _ = launch(f"envs:\n  A: {big}\n  B: {big}\nrun: echo\n")  # no callback: no bound but envs'
    assert dry.exit_code == 0, dry.output


def test_a_webhook_url_with_a_password_is_taken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """urllib took `user:pass@host` for the host, so every POST failed for a day: the URL is now
    taken and its credentials go as Basic auth (test_notify_delivery checks the header)."""
    from spotctl.config import load_settings
    monkeypatch.delenv("SPOTCTL_NOTIFY_URL", raising=False)
    (tmp_path / "config.yaml").write_text("notify:\n  url: https://bob:s3cr3tT0ken@hooks.example.com/x\n")
    notify = load_settings(tmp_path).notify
    assert notify is not None and notify.url == "https://bob:s3cr3tT0ken@hooks.example.com/x"
