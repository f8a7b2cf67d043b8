"""`launch --dry-run` runs every check a launch runs: what `launch` refuses, the dry run refuses
with the same message and exit code (2), and neither creates anything (no bucket, no job)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from spotctl.cli import launch as launch_module
from spotctl.cli.main import cli


class ReachedServer(Exception):
    """Raised where a launch would start the server: every check before it has passed."""


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """`spotctl ARGS` in tmp_path, with a state dir of its own and a launch that stops where
    it would contact the server (so a missed check fails the test instead of starting a job)."""
    async def no_server(*args: object, **kwargs: object) -> None:
        servers.append(args)
        raise ReachedServer

    servers: list[tuple] = []
    monkeypatch.setattr(launch_module, "open_client", no_server)
    monkeypatch.chdir(tmp_path)
    env = {"SPOTCTL_HOME": str(tmp_path / "home"), "SPOTCTL_CLOUDS": "local,aws,gcp"}

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(cli, list(args), env=env)

    invoke.servers = servers  # type: ignore[attr-defined]
    return invoke


CASES = {
    "empty_bucket_name": ("file_mounts:\n  /data:\n    name:\n    mode: MOUNT\nrun: echo\n",
                          "file_mounts./data: bucket name is empty"),
    "missing_local_source": ("file_mounts:\n  /data: ./nope\nrun: echo\n",
                             "file_mounts./data: local source"),
    "pipeline_second_task": ("name: p\n---\nname: a\nrun: echo a\n---\nname: b\nfile_mounts:\n  /d: ./nope\n"
                             "run: echo b\n", "file_mounts./d: local source"),  # every task is checked
    "invalid_bucket_name": ("file_mounts:\n  /data:\n    name: Bad_Name\nrun: echo\n",
                            "invalid bucket name 'Bad_Name'"),
    "unsupported_store": ("file_mounts:\n  /data:\n    name: okname\n    store: r2\nrun: echo\n",
                          "r2 buckets are not supported yet"),
    "missing_bucket_source": ("file_mounts:\n  /data:\n    name: okname\n    source: ./nope\nrun: echo\n",
                              "file_mounts./data: local source"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_dry_run_refuses_what_launch_refuses(run, tmp_path: Path, case: str) -> None:
    text, expected = CASES[case]
    (tmp_path / "task.yaml").write_text(text)
    dry = run("launch", "--dry-run", "task.yaml")
    real = run("launch", "-y", "-d", "task.yaml")
    assert dry.exit_code == real.exit_code == 2, (dry.output, real.output, real.exception)
    assert expected in dry.stderr
    assert dry.stderr == real.stderr
    assert "Placement candidates" in dry.stdout  # the plan is still shown, then the refusal
    assert "Traceback" not in dry.output + real.output
    assert not (tmp_path / "home" / "local_buckets").exists()  # no bucket
    assert run.servers == []  # no server asked for a job id, so no job


def test_a_file_the_dry_run_passes_gets_to_the_server(run, tmp_path: Path) -> None:
    """The other half of the agreement: a named bucket with a local source passes both, and
    the dry run created neither the bucket nor the job."""
    (tmp_path / "data").mkdir()
    (tmp_path / "task.yaml").write_text("file_mounts:\n  /data:\n    name: okname\n    source: ./data\nrun: echo\n")
    assert run("launch", "--dry-run", "task.yaml").exit_code == 0
    assert not (tmp_path / "home" / "local_buckets").exists() and run.servers == []
    assert isinstance(run("launch", "-y", "-d", "task.yaml").exception, ReachedServer)
