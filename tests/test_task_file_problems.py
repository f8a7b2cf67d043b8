"""Task-file inputs that used to slip through (issue 21): YAML 1.1 keys silently renamed or
dropped, special files and the state dir in a workdir, sparse files, a pipeline task without
`run`, reserved mount targets, and launch checks that stopped at the first problem. Each is
refused by `launch --dry-run` and by `launch` with one line per problem and exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from spotctl.cli.main import cli
from spotctl.task import TaskError, parse_task_text


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
