"""`spotctl check` and placement without credentials: a cloud that cannot be used is named with
the reason, never a traceback; the catalog alone is enough for a dry run's prices."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from spotctl.cli.main import cli

REPO = Path(__file__).resolve().parents[1]


def run(tmp_path: Path, *args: str):
    env = {"SPOTCTL_HOME": str(tmp_path / "home"), "SPOTCTL_CLOUDS": "local,aws"}
    return CliRunner().invoke(cli, list(args), env=env)


def test_check_names_the_unusable_cloud_and_why(tmp_path: Path) -> None:
    result = run(tmp_path, "check", "--quick")
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines() if line.startswith("  ")}
    assert "ok" in lines["local"]
    assert "not usable" in lines["aws"] and "no AWS credentials found" in lines["aws"]


def test_dry_run_lists_aws_candidates_with_both_prices_without_credentials(tmp_path: Path) -> None:
    result = run(tmp_path, "launch", "--dry-run", "--cloud", "aws", str(REPO / "examples" / "bert_qa.yaml"))
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.output.splitlines() if re.match(r"\s*\d+\. ", line)]
    assert rows and all(r[1].startswith("aws/") for r in rows)
    prices = [float(r[4].lstrip("$").split("/")[0]) for r in rows]
    assert prices == sorted(prices), "cheapest first"
    spot, ondemand = float(rows[0][5].lstrip("$")), float(rows[0][6].lstrip("$"))
    assert 0 < spot < ondemand
    assert "no AWS credentials found" in result.output  # the note


def test_placement_leaves_out_a_cloud_without_credentials(tmp_path: Path) -> None:
    dry = run(tmp_path, "launch", "--dry-run", "echo hi")
    assert dry.exit_code == 0, dry.output
    assert "aws/" not in dry.output and "local/" in dry.output
    assert "aws: left out of placement: no AWS credentials found" in dry.output
    launch = run(tmp_path, "launch", "-y", "--cloud", "aws", "echo hi")
    assert launch.exit_code == 2
    assert "no usable cloud" in launch.output and "no AWS credentials found" in launch.output
    assert "Traceback" not in launch.output


def test_gcp_without_credentials_is_named_and_still_priced(tmp_path: Path) -> None:
    env = {"SPOTCTL_HOME": str(tmp_path / "home"), "SPOTCTL_CLOUDS": "local,gcp"}
    check = CliRunner().invoke(cli, ["check", "--quick"], env=env)
    assert check.exit_code == 0, check.output
    lines = {line.split()[0]: line for line in check.output.splitlines() if line.startswith("  ")}
    assert "not usable" in lines["gcp"] and "no GCP credentials found" in lines["gcp"]
    dry = CliRunner().invoke(cli, ["launch", "--dry-run", "--cloud", "gcp",
                                   str(REPO / "examples" / "bert_qa.yaml")], env=env)
    assert dry.exit_code == 0, dry.output
    rows = [line.split() for line in dry.output.splitlines() if re.match(r"\s*\d+\. ", line)]
    assert rows and all(r[1].startswith("gcp/") for r in rows)
    spot, ondemand = float(rows[0][5].lstrip("$")), float(rows[0][6].lstrip("$"))
    assert 0 < spot < ondemand
