"""Every SkyPilot task file of the compatibility corpus must load, with the meaning SkyPilot gives it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from spotctl.task import Pipeline, load_task_file

CORPUS = Path(__file__).parents[2] / "shared" / "compat" / "skypilot-yaml"
FILES = sorted(CORPUS.glob("*.yaml")) if CORPUS.is_dir() else []

needs_corpus = pytest.mark.skipif(
    not CORPUS.is_dir(), reason=f"compat corpus not found at {CORPUS} (the repo's sibling ../shared)"
)

pytestmark = pytest.mark.quick  # `pytest -m quick`: the fast loop (README, Tests)


def load(name: str) -> Pipeline:
    return load_task_file(CORPUS / name)


@needs_corpus
def test_corpus_is_not_empty() -> None:
    assert FILES, f"no .yaml files in {CORPUS}"


@needs_corpus
@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_every_file_parses(path: Path) -> None:
    pipeline = load_task_file(path)
    assert pipeline.tasks
    for task in pipeline.tasks:
        assert task.source_path == str(path)
        assert task.run, "every corpus task has a run command"
        # The normalised views must work on every real file, too.
        assert task.resource_requests()
        task.recovery()
        task.file_mount_list()
        task.unsupported()


PIPELINES = {
    "spot_pipeline-bert_qa_train_eval.yaml": ("bert_qa", ["train", "eval"]),
    "spot_pipeline-multi_jobs.yaml": ("pipeline", ["train1", "train2", "eval1", "eval2"]),
    "spot_pipeline-single.yaml": ("dag-name", ["simple-task"]),
    "tests-failed_setup_pipeline.yaml": ("pipeline", ["a", "b", "eval1", "eval2"]),
    "tests-pipeline_aws.yaml": ("pipeline", ["a", "b", "eval1", "eval2"]),
    "tests-pipeline_gcp.yaml": ("pipeline", ["a", "b", "eval1", "eval2"]),
    "tests-test_managed_jobs_retry.yaml": (None, [None, None]),
}


@needs_corpus
@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_pipelines_have_their_tasks(name: str) -> None:
    pipeline = load(name)
    want_name, want_tasks = PIPELINES[name]
    assert pipeline.name == want_name
    assert [t.name for t in pipeline.tasks] == want_tasks
    assert pipeline.is_pipeline == (len(want_tasks) > 1)


@needs_corpus
def test_single_task_pipeline_name_comes_from_task() -> None:
    pipeline = load("tests-minimal.yaml")
    assert pipeline.name == "min" and not pipeline.is_pipeline


@needs_corpus
def test_pipeline_gcp_infra_with_wildcard_region() -> None:
    [req] = load("tests-pipeline_gcp.yaml").tasks[0].resource_requests()
    assert (req.cloud, req.region, req.zone) == ("gcp", None, "us-east4-b")
    assert req.cpus == 2 and req.cpus_at_least and req.memory_gb == 4 and req.memory_at_least


@needs_corpus
def test_pipeline_aws_region() -> None:
    [req] = load("tests-pipeline_aws.yaml").tasks[0].resource_requests()
    assert (req.cloud, req.region, req.zone) == ("aws", "us-east-2", None)


@needs_corpus
def test_fractional_accelerator() -> None:
    [req] = load("job_queue-job.yaml").tasks[0].resource_requests()
    assert req.accelerators == {"T4": 0.5}
    assert req.use_spot is True  # managed spot jobs default to spot


@needs_corpus
def test_spot_recovery_is_job_recovery() -> None:
    task = load("spot-resnet.yaml").tasks[0]
    assert task.recovery().strategy == "FAILOVER"
    assert task.num_nodes == 2
    [req] = task.resource_requests()
    assert req.accelerators == {"V100": 1} and req.cloud == "aws"


@needs_corpus
def test_lowercase_job_recovery_name() -> None:
    assert load("managed_job_with_storage.yaml").tasks[0].recovery().strategy == "FAILOVER"


@needs_corpus
def test_retry_file_max_restarts() -> None:
    first, second = load("tests-test_managed_jobs_retry.yaml").tasks
    assert first.recovery().max_restarts_on_errors == 1
    assert first.recovery().strategy == "EAGER_NEXT_REGION"
    assert second.recovery().max_restarts_on_errors == 0


@needs_corpus
def test_single_pipeline_cpus_at_least() -> None:
    [req] = load("spot_pipeline-single.yaml").tasks[0].resource_requests()
    assert req.cpus == 2 and req.cpus_at_least
    assert req.memory_gb == 8 and req.memory_at_least


@needs_corpus
def test_any_of_expands() -> None:
    reqs = load("tests-failed_setup_pipeline.yaml").tasks[0].resource_requests()
    assert [r.cloud for r in reqs] == ["aws", "gcp"]
    assert all(r.cpus == 2 and not r.cpus_at_least for r in reqs)


@needs_corpus
def test_storage_file_mounts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    task = load("managed_job_with_storage.yaml").tasks[0]
    mounts = {m.target: m for m in task.file_mount_list()}
    assert mounts["~/bucket_workdir"].bucket == "sky-workdir-zhwu"
    assert mounts["~/bucket_workdir"].mode == "COPY"
    assert mounts["~/bucket_workdir"].persistent is False
    assert mounts["~/bucket_workdir"].source == str(tmp_path / "examples")  # relative to the cwd, as SkyPilot
    assert mounts["/output_path"].bucket == "sky-output-bucket"
    assert mounts["/output_path"].mode == "MOUNT"
    assert mounts["/public-bucket"].source == "s3://fah-public-data-covid19-cryptic-pockets"
    assert mounts["/tmp/workdir"].source == "~/tmp-workdir"
    assert mounts["/tmp/workdir"].mode == "COPY"
    assert task.resolved_workdir() == str(tmp_path / "examples")


@needs_corpus
def test_secrets_without_values_parse_and_take_overrides() -> None:
    task = load("spot-bert_qa.yaml").tasks[0]
    assert task.envs == {"WANDB_RESUME": "allow"}
    assert task.secrets == {"WANDB_API_KEY": None}
    assert not any(line.startswith("secrets:") for line in task.unsupported())
    given = load_task_file(CORPUS / "spot-bert_qa.yaml", secret_overrides={"WANDB_API_KEY": "k"})
    assert given.tasks[0].secrets == {"WANDB_API_KEY": "k"}


REFUSED_BY_LAUNCH = {
    "managed_job_with_storage.yaml": "workdir: directory",  # `workdir: examples`, relative to the cwd
    "spot-bert_qa.yaml": "file_mounts./checkpoint: bucket name is empty",  # "Fill in your bucket name"
    "spot-lightning_cifar10.yaml": "file_mounts./checkpoint: bucket name is empty",
    "spot-resnet.yaml": "file_mounts./checkpoint: bucket name is empty",
    "spot_pipeline-bert_qa_train_eval.yaml": "workdir: directory",  # `workdir: ~/transformers`
}
"""The files a launch refuses as they are (run from an empty directory), and why."""


@needs_corpus
@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_every_file_dry_runs_with_candidates(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`spotctl launch --dry-run FILE` lists candidates with prices for every file, with no cloud
    credentials at all (the catalogs of every enabled cloud are enough), and agrees with
    `launch`: it exits 0 for the files a launch accepts, and 2 with the launch's own message for
    the ones it refuses (an empty bucket name, a missing workdir)."""
    from click.testing import CliRunner

    from spotctl.cli import launch as launch_module
    from spotctl.cli.main import cli
    from spotctl.launch import planning

    class ReachedServer(Exception):
        """Where a launch would start the server: it passed every check."""

    async def no_server(*args: object, **kwargs: object) -> None:
        raise ReachedServer

    monkeypatch.chdir(tmp_path)
    env = {"SPOTCTL_HOME": str(tmp_path / "home"), "SPOTCTL_CLOUDS": "local,aws,gcp"}
    result = CliRunner().invoke(cli, ["launch", "--dry-run", str(path)], env=env)
    rows = [line for line in result.stdout.splitlines() if re.match(r"\s*\d+\. ", line)]
    assert rows and all("$" in row for row in rows), result.output
    assert "Traceback" not in result.output

    # The launch, as with credentials for every cloud, stopped where it would contact the server.
    monkeypatch.setattr(planning, "why_unusable", lambda name, settings: None)
    monkeypatch.setattr(launch_module, "open_client", no_server)
    launched = CliRunner().invoke(cli, ["launch", "-y", "-d", str(path)], env=env)
    if path.name in REFUSED_BY_LAUNCH:
        assert result.exit_code == launched.exit_code == 2, (result.output, launched.output)
        assert REFUSED_BY_LAUNCH[path.name] in result.stderr
        assert result.stderr == launched.stderr
    else:
        assert result.exit_code == 0, result.output
        assert isinstance(launched.exception, ReachedServer), launched.output
    assert not (tmp_path / "home" / "local_buckets").exists()
