"""Bad input gets a clear error, exit code 2, and nothing is created."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from conftest import Spot

pytestmark = pytest.mark.quick  # `pytest -m quick`: the fast loop (README, Tests)


def count_jobs(spot: Spot) -> int:
    return len(spot.status())


CASES = {
    "malformed_yaml": ("name: x\nrun: [echo\n", ["task.yaml:", "not valid YAML"]),
    "unknown_field": ("name: x\nstup: echo hi\nrun: echo hi\n", ["task.yaml:2", "stup", "did you mean 'setup'"]),
    "unknown_resources_field": ("resources:\n  cpuz: 2\nrun: echo\n", ["task.yaml:2", "resources.cpuz", "'cpus'"]),
    "wrong_type": ("num_nodes: two\nrun: echo hi\n", ["task.yaml:1", "num_nodes"]),
    "no_run": ("name: x\nsetup: echo hi\n", ["task.yaml", "run"]),
    "missing_workdir": ("workdir: ./does-not-exist\nrun: echo\n", ["task.yaml", "workdir", "does-not-exist"]),
    "nothing_offers_it": ("resources:\n  accelerators: H100:8\nrun: echo\n", ["task.yaml", "resources", "H100"]),
    "env_without_value": ("envs:\n  TOKEN:\nrun: echo\n", ["envs.TOKEN", "--env TOKEN=VALUE"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_task_file(spot_clean: Spot, tmp_path: Path, case: str) -> None:
    text, expected = CASES[case]
    path = tmp_path / "task.yaml"
    path.write_text(textwrap.dedent(text))
    before = count_jobs(spot_clean)
    result = spot_clean.run("launch", "-y", str(path))
    assert result.exit_code == 2, result.output
    for piece in expected:
        assert piece in result.stderr, (piece, result.stderr)
    assert "Traceback" not in result.output
    assert count_jobs(spot_clean) == before
    assert spot_clean.alive_instances() == []


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--env", "FOO", "echo hi"], "--env FOO"),
        (["--cpus", "lots", "echo hi"], "--cpus"),
        (["--cloud", "azure", "echo hi"], "azure"),
        (["missing-file.yaml"], "no such file"),
    ],
)
def test_bad_command_line(spot_clean: Spot, args: list[str], expected: str) -> None:
    before = count_jobs(spot_clean)
    result = spot_clean.run("launch", "-y", *args)
    assert result.exit_code == 2, result.output
    assert expected in result.stderr
    assert count_jobs(spot_clean) == before


def test_dry_run_starts_nothing_and_lists_unsupported(spot_clean: Spot, tmp_path: Path) -> None:
    path = tmp_path / "task.yaml"
    path.write_text("name: dry\nresources:\n  cpus: 2+\n  ports: 8080\nsecrets:\n  KEY: abc\nrun: echo hi\n")
    before = count_jobs(spot_clean)
    result = spot_clean.run("launch", "--dry-run", str(path))
    assert result.exit_code == 0, result.output
    assert "Placement candidates" in result.stdout
    assert "local/local-east/local-east-1a" in result.stdout and "local.medium" in result.stdout
    assert "local.small" not in result.stdout  # 1 cpu does not satisfy 2+
    assert "not supported yet" in result.stdout and "ports" in result.stdout
    assert "secrets: not supported" not in result.stdout  # secrets are supported now
    assert count_jobs(spot_clean) == before
