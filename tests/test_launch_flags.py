"""SkyPilot's launch flags override the task, as `sky launch` does; a bad value is one line and
exit 2. Each is checked through the CLI's dry run, on the plan it prints."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from spotctl.cli.main import cli

pytestmark = pytest.mark.quick  # `pytest -m quick`: the fast loop (README, Tests)


@pytest.fixture
def dry_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FOO", raising=False)
    env = {"SPOTCTL_HOME": str(tmp_path / "home"), "SPOTCTL_CLOUDS": "local,aws,gcp"}

    def invoke(*args: str, **extra_env: str) -> Result:
        return CliRunner().invoke(cli, ["launch", "--dry-run", *args], env={**env, **extra_env})

    return invoke


def resources(result: Result) -> str:
    return next(line for line in result.stdout.splitlines() if line.startswith("Resources "))


def candidates(result: Result) -> list[list[str]]:
    """Each candidate row as [where, type, market, price, ...]."""
    return [line.split()[1:] for line in result.stdout.splitlines() if re.match(r"\s*\d+\. ", line)]


def ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output
    return result


def refused(result: Result, *pieces: str) -> None:
    """Exit 2 with one clear error line naming the flag; never a traceback."""
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.stderr
    for piece in pieces:
        assert piece in lines[0], (piece, lines[0])
    assert "Traceback" not in result.output


# -- --env KEY, --env-file ------------------------------------------------------------------


def test_env_without_value_takes_the_callers_variable(dry_run) -> None:
    out = ok(dry_run("--env", "FOO", "echo $FOO", FOO="from-shell")).stdout
    assert "FOO: from-shell" in out


def test_env_without_value_refused_when_unset(dry_run) -> None:
    refused(dry_run("--env", "FOO", "echo hi"), "--env FOO", "FOO is not set")


def test_secret_without_value_takes_the_callers_variable(dry_run, tmp_path: Path) -> None:
    (tmp_path / "t.yaml").write_text("secrets:\n  TOKEN:\nrun: echo\n")
    out = ok(dry_run("--secret", "TOKEN", "t.yaml", TOKEN="s3cr3t")).stdout
    assert "s3cr3t" not in out and "TOKEN: <secret>" in out


def test_env_file(dry_run, tmp_path: Path) -> None:
    (tmp_path / "app.env").write_text(
        "# settings\nexport A=1\nB='two # words'\nC=\"x\\\"y\"  # a comment\nD=plain # a comment\nE=from-file\n")
    (tmp_path / "t.yaml").write_text("envs:\n  A: yaml\n  E: yaml\nrun: echo\n")
    out = ok(dry_run("--env-file", "app.env", "--env", "E=flag", "t.yaml")).stdout
    # --env wins over --env-file, which wins over the task's envs (SkyPilot's order).
    for line in ("A: '1'", "B: 'two # words'", "C: x\"y", "D: plain", "E: flag"):
        assert line in out, (line, out)


@pytest.mark.parametrize("text, piece", [
    ("NOT A LINE\n", "app.env:1: --env-file: expected KEY=VALUE"),
    ("OK=1\n1BAD=2\n", "app.env:2: --env-file: '1BAD' is not a valid variable name"),
    ('A="open\n', "app.env:1: --env-file: a \"quoted\" value must end on its line"),
])
def test_bad_env_file(dry_run, tmp_path: Path, text: str, piece: str) -> None:
    (tmp_path / "app.env").write_text(text)
    refused(dry_run("--env-file", "app.env", "echo"), piece)


def test_env_file_missing_or_too_big(dry_run, tmp_path: Path) -> None:
    refused(dry_run("--env-file", "nope.env", "echo"), "nope.env: --env-file: file not found")
    (tmp_path / "big.env").write_text("A=" + "x" * (2 << 20))
    refused(dry_run("--env-file", "big.env", "echo"), "--env-file", "larger than the limit")


# -- resource flags -------------------------------------------------------------------------


def test_num_nodes(dry_run) -> None:
    assert resources(ok(dry_run("--num-nodes", "3", "echo"))).startswith("Resources 3x")


@pytest.mark.parametrize("value", ["0", "-1", "two", "1001", "9" * 40, "²", " "])
def test_bad_num_nodes(dry_run, value: str) -> None:
    refused(dry_run("--num-nodes", value, "echo"), "--num-nodes")


def test_infra_region(dry_run) -> None:
    result = ok(dry_run("--infra", "aws/us-east-1", "echo"))
    assert "aws/us-east-1" in resources(result)
    assert all(row[0].startswith("aws/us-east-1/") for row in candidates(result))


def test_infra_cloud_only(dry_run) -> None:
    rows = candidates(ok(dry_run("--infra", "gcp", "echo")))
    assert rows and all(row[0].startswith("gcp/") for row in rows)


def test_infra_zone_with_any_region(dry_run) -> None:
    rows = candidates(ok(dry_run("--infra", "gcp/*/us-east4-b", "echo")))
    assert rows and all(row[0].startswith("gcp/") and row[0].endswith("/us-east4-b") for row in rows)


def test_infra_replaces_the_tasks_location(dry_run, tmp_path: Path) -> None:
    (tmp_path / "t.yaml").write_text("resources:\n  infra: aws/us-east-2\nrun: echo\n")
    rows = candidates(ok(dry_run("--infra", "local", "t.yaml")))
    assert rows and all(row[0].startswith("local/") for row in rows)


@pytest.mark.parametrize("args, piece", [
    (["--infra", "aws/a/b/c"], "--infra: expected cloud[/region[/zone]]"),
    (["--infra", "azure"], "--infra: cloud 'azure' is not enabled"),
    (["--infra", "aws", "--cloud", "gcp"], "give either --infra or --cloud/--region"),
])
def test_bad_infra(dry_run, args: list[str], piece: str) -> None:
    refused(dry_run(*args, "echo"), piece)


def test_memory(dry_run) -> None:
    result = ok(dry_run("--memory", "16+", "--infra", "local", "echo"))
    assert "mem=16+" in resources(result)
    assert {row[1] for row in candidates(result)} == {"local.large"}
    assert "mem=16]" in resources(ok(dry_run("--memory", "16", "echo")))


@pytest.mark.parametrize("value", ["lots", "0", "-4", "nan", "16++"])
def test_bad_memory(dry_run, value: str) -> None:
    refused(dry_run("--memory", value, "echo"), "--memory")


def test_use_spot(dry_run, tmp_path: Path) -> None:
    (tmp_path / "t.yaml").write_text("resources:\n  use_spot: false\nrun: echo\n")
    assert {row[2] for row in candidates(ok(dry_run("--no-use-spot", "echo")))} == {"on-demand"}
    assert not resources(ok(dry_run("--no-use-spot", "echo"))).endswith(" spot")
    assert {row[2] for row in candidates(ok(dry_run("--use-spot", "t.yaml")))} == {"spot"}
    assert {row[2] for row in candidates(ok(dry_run("t.yaml")))} == {"on-demand"}


def test_instance_type(dry_run) -> None:
    result = ok(dry_run("-t", "local.medium", "echo"))
    assert "local.medium" in resources(result)
    assert {row[1] for row in candidates(result)} == {"local.medium"}
    assert {row[1] for row in candidates(ok(dry_run("--instance-type", "m6i.xlarge", "echo")))} == {"m6i.xlarge"}


def test_bad_instance_type(dry_run) -> None:
    refused(dry_run("-t", "bad type", "echo"), "--instance-type")
    refused(dry_run("-t", "x" * 500, "echo"), "--instance-type")
    refused(dry_run("-t", "no.such.type", "echo"), "no.such.type")  # nothing offers it


def test_job_recovery(dry_run, tmp_path: Path) -> None:
    assert "Recovery EAGER_NEXT_REGION" in ok(dry_run("echo")).stdout
    assert "Recovery FAILOVER" in ok(dry_run("--job-recovery", "failover", "echo")).stdout
    assert "Recovery NONE" in ok(dry_run("--job-recovery", "NONE", "echo")).stdout
    (tmp_path / "t.yaml").write_text(
        "resources:\n  job_recovery:\n    strategy: FAILOVER\n    max_restarts_on_errors: 3\nrun: echo\n")
    assert "Recovery EAGER_NEXT_REGION" in ok(dry_run("--job-recovery", "EAGER_NEXT_REGION", "t.yaml")).stdout


def test_job_recovery_keeps_the_tasks_other_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from spotctl.config import load_settings
    from spotctl.launch import Overrides, plan

    monkeypatch.setenv("SPOTCTL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SPOTCTL_CLOUDS", "local")
    (tmp_path / "t.yaml").write_text(
        "resources:\n  job_recovery:\n    strategy: FAILOVER\n    max_restarts_on_errors: 3\nrun: echo\n")
    spec = plan(str(tmp_path / "t.yaml"), Overrides(job_recovery="none", num_nodes="2"), load_settings()).to_spec(1)
    assert (spec.recovery.strategy, spec.recovery.max_restarts_on_errors, spec.num_nodes) == ("NONE", 3, 2)


def test_bad_job_recovery(dry_run) -> None:
    refused(dry_run("--job-recovery", "EAGER", "echo"), "--job-recovery", "unknown recovery strategy")


def test_resources_show_what_the_candidates_can_serve(dry_run, tmp_path: Path) -> None:
    """An any_of of A100 or V100 where only V100 is sold shows V100, not the first request."""
    (tmp_path / "a.yaml").write_text("resources:\n  any_of:\n    - accelerators: A100:1\n"
                                     "    - accelerators: V100:1\nrun: echo hi\n")
    result = ok(dry_run("a.yaml", SPOTCTL_CLOUDS="local"))
    assert resources(result) == "Resources 1x[V100:1] spot"
    assert all(row[1] == "local.v100" for row in candidates(result))
