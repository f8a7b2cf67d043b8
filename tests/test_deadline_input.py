"""A task's deadline at launch (docs/deadlines.md): the `deadline:` block and the
`--compute-time`/`--deadline` flags, read through the CLI's dry run as a user runs it. Bad
input is one clear line and exit 2, with the numbers; SkyPilot's files are unaffected."""

from __future__ import annotations

import re
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from spotctl.cli.main import cli

pytestmark = pytest.mark.quick  # `pytest -m quick`: the fast loop (README, Tests)


@pytest.fixture
def dry_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    env = {"SPOTCTL_HOME": str(tmp_path / "home"), "SPOTCTL_CLOUDS": "local"}

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(cli, ["launch", "--dry-run", *args], env=env)

    return invoke


def task(tmp_path: Path, deadline: str | None) -> str:
    path = tmp_path / "task.yaml"
    block = f"deadline:\n{textwrap.indent(textwrap.dedent(deadline), '  ')}" if deadline else ""
    path.write_text(f"name: due\nresources:\n  cpus: 1+\nrun: echo hi\n{block}")
    return str(path)


def refused(result: Result) -> str:
    """The one line a refusal prints (exit code 2, no traceback)."""
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


def markets(result: Result) -> tuple[set[str], set[str]]:
    """The markets of the placement candidates and of the on-demand candidates the plan lists."""
    spot: set[str] = set()
    ondemand: set[str] = set()
    into = spot
    for line in result.stdout.splitlines():
        if line.startswith("On-demand candidates"):
            into = ondemand
        elif line.strip()[:3].rstrip(".").strip().isdigit() and ". " in line[:6]:
            into.add(line.split()[3])
    return spot, ondemand


def test_the_block_plans_both_markets_and_shows_the_figures(dry_run, tmp_path: Path) -> None:
    result = dry_run(task(tmp_path, """\
        compute: 48h
        by: 70h
        changeover: 0.4h
        checkpoint_every: 30m
        policy: uniform-progress
    """))
    assert result.exit_code == 0, result.output
    line = next(x for x in result.stdout.splitlines() if x.startswith("Deadline "))
    assert "(in 70h): compute 48h, slack 22h, changeover 0.4h, checkpoint every 0.5h, policy uniform-progress" in line
    assert markets(result) == ({"spot"}, {"on-demand"})


def test_the_flags_give_a_deadline_to_any_task(dry_run, tmp_path: Path) -> None:
    when = (datetime.now(UTC) + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    result = dry_run("--compute-time", "1h30m", "--deadline", when, task(tmp_path, None))
    assert result.exit_code == 0, result.output
    assert "compute 1.5h" in result.stdout and f"Deadline {when[:-1]}+00:00" in result.stdout
    # The flags win over the block.
    result = dry_run("--compute-time", "2h", "--deadline", "3d", task(tmp_path, "compute: 48h\nby: 70h\n"))
    assert result.exit_code == 0, result.output
    assert "(in 72h): compute 2h, slack 70h" in result.stdout


def test_without_a_deadline_the_plan_is_unchanged(dry_run, tmp_path: Path) -> None:
    result = dry_run(task(tmp_path, None))
    assert result.exit_code == 0, result.output
    assert "Deadline" not in result.stdout and "On-demand candidates" not in result.stdout
    assert markets(result) == ({"spot"}, set())


def test_a_deadline_shorter_than_the_compute_is_refused_with_the_numbers(dry_run, tmp_path: Path) -> None:
    line = refused(dry_run(task(tmp_path, "compute: 48h\nby: 40h\n")))
    assert line.endswith("deadline.by: deadline in 40h is shorter than the compute it needs (48h): "
                         "on-demand from now could not make it"), line
    line = refused(dry_run("--deadline", "40h", task(tmp_path, "compute: 48h\nby: 70h\n")))
    assert line == ("Error: --deadline: deadline in 40h is shorter than the compute it needs (48h): "
                    "on-demand from now could not make it")


def test_a_deadline_already_past_is_refused(dry_run, tmp_path: Path) -> None:
    line = refused(dry_run("--compute-time", "1h", "--deadline", "2020-01-01T00:00:00Z", task(tmp_path, None)))
    assert "--deadline: the deadline 2020-01-01T00:00:00+00:00 is already past (" in line and "h ago)" in line


def test_what_is_missing_is_said(dry_run, tmp_path: Path) -> None:
    line = refused(dry_run(task(tmp_path, "by: 70h\n")))
    assert "deadline: a deadline needs the compute time the job takes: add `compute:`" in line
    assert "--compute-time DURATION" in line
    line = refused(dry_run("--deadline", "70h", task(tmp_path, None)))
    assert line.startswith("Error: --deadline: a deadline needs the compute time")
    line = refused(dry_run("--compute-time", "5h", task(tmp_path, None)))
    assert line.startswith("Error: --compute-time: a compute time needs a deadline: add `by:`")


@pytest.mark.parametrize("flag, value, words", [
    ("--deadline", "4x", "expected a time such as '2026-12-11T18:00:00Z' or a duration from launch such as '70h', got '4x'"),
    ("--deadline", "x" * 500, "a deadline is too long (500 characters; at most 128)"),
    ("--compute-time", "0", "must be more than 0, got '0'"),
    ("--compute-time", "-3h", "expected a duration"),
    ("--compute-time", "9999d", "must be at most"),
    ("--deadline", "2999-01-01T00:00:00Z", "away: at most 365 days"),
])
def test_bad_flag_values_are_one_line(dry_run, tmp_path: Path, flag: str, value: str, words: str) -> None:
    other = ("--deadline", "70h") if flag == "--compute-time" else ("--compute-time", "1h")
    line = refused(dry_run(flag, value, *other, task(tmp_path, None)))
    assert line.startswith(f"Error: {flag}: ") and words in line, line


@pytest.mark.parametrize("block, words", [
    ("compute: 48h\nby: 70h\npolicy: uniform\n", "unknown deadline policy 'uniform'; known: spotctl, "
     "uniform-progress, greedy (did you mean 'uniform-progress'?)"),
    ("compute: 48h\nby: 70h\nchekpoint_every: 1h\n", "deadline.chekpoint_every: unknown field (did you mean "
     "'checkpoint_every'?)"),
    ("compute: [1]\nby: 70h\n", "deadline.compute:"),
    ("compute: 48h\nby: tomorrow\n", "deadline.by: expected a time such as"),
    ("compute: 48h\nby: 70h\ncheckpoint_every: 0\n", "deadline.checkpoint_every: must be more than 0"),
])
def test_bad_blocks_are_refused_with_their_line(dry_run, tmp_path: Path, block: str, words: str) -> None:
    line = refused(dry_run(task(tmp_path, block)))
    assert words in line and re.search(r"task\.yaml:[5-9]: deadline\.", line), line
