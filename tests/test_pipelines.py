"""Managed pipelines end to end on the local cloud: tasks in order, each on its own cluster
with its own recovery, SkyPilot's task ids, one job in `status`, `logs`, `cancel`; every
pipeline file of the SkyPilot corpus dry-runs."""

from __future__ import annotations

import asyncio
import os
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_compat_yaml import CORPUS, PIPELINES, needs_corpus

from spotctl.cli.main import cli
from spotctl.client import SpotClient
from spotctl.models import JobState
from spotctl.models.naming import job_of_cluster, task_workflow_id

from conftest import Spot


def pipeline_file(tmp_path: Path, middle: str, *, first: str = "echo prep done") -> str:
    """prep, then train (`middle`), then eval; each prints its SkyPilot ids."""
    ids = 'echo "$RANDOM_TAG id=$SKYPILOT_TASK_ID ids=$(echo "$SKYPILOT_TASK_IDS" | tr "\\n" ",") attempt=$SPOTCTL_ATTEMPT"'
    path = tmp_path / "pipeline.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: trio
        ---
        name: prep
        resources: {{cpus: 1+}}
        envs: {{RANDOM_TAG: prep}}
        run: |
          {ids}
          {first}
        ---
        name: train
        resources: {{cpus: 1+}}
        envs: {{RANDOM_TAG: train}}
        run: |
          {ids}
          {middle}
        ---
        name: eval
        resources: {{cpus: 1+}}
        envs: {{RANDOM_TAG: eval}}
        run: |
          {ids}
          echo eval done
    """))
    return str(path)


def id_lines(logs: str) -> dict[str, list[str]]:
    """task tag -> the 'id=... ids=... attempt=...' lines it printed, in order."""
    out: dict[str, list[str]] = {}
    for line in logs.splitlines():
        tag, _, rest = line.partition(" id=")
        if rest and tag in ("prep", "train", "eval"):
            out.setdefault(tag, []).append(rest)
    return out


def test_three_tasks_in_order_with_a_preemption_in_the_middle(spot_clean: Spot, tmp_path: Path) -> None:
    ticks = 'for i in $(seq 1 16); do echo "tick $i"; sleep 0.25; done'
    job_id = spot_clean.launch_detached(pipeline_file(tmp_path, ticks))
    spot_clean.wait_running(job_id, attempt=2)  # train is task 1; prep used attempt 1
    preempted = spot_clean.run("debug", "preempt", str(job_id), "--notice", "0")
    assert preempted.exit_code == 0, preempted.output
    job = spot_clean.wait_status(job_id, "SUCCEEDED", timeout=90)

    assert [t["name"] for t in job["tasks"]] == ["prep", "train", "eval"]
    assert [t["status"] for t in job["tasks"]] == ["SUCCEEDED"] * 3
    assert [t["recoveries"] for t in job["tasks"]] == [0, 1, 0]
    assert job["recoveries"] == 1
    assert [(r["attempt"], r["task"], r["outcome"]) for r in job["history"]] == [
        (1, 0, "succeeded"), (2, 1, "preempted"), (3, 1, "succeeded"), (4, 2, "succeeded")]

    logs = spot_clean.run("logs", "--no-follow", str(job_id)).stdout
    order = [logs.index(s) for s in ("prep done", "tick 16", "eval done")]
    assert order == sorted(order), logs
    assert logs.count("--- recovery ") == 1, logs
    seen = id_lines(logs)
    assert [len(seen[t]) for t in ("prep", "train", "eval")] == [1, 2, 1], seen
    task_ids = {t: {line.split(" ")[0] for line in lines} for t, lines in seen.items()}
    assert all(len(ids) == 1 for ids in task_ids.values()), task_ids  # stable across train's recovery
    prep_id, train_id, eval_id = (next(iter(task_ids[t])) for t in ("prep", "train", "eval"))
    assert len({prep_id, train_id, eval_id}) == 3
    assert prep_id.endswith(f"_trio_{job_id}-0") and eval_id.endswith(f"_trio_{job_id}-2")
    listed = {line.split(" ")[1] for lines in seen.values() for line in lines}
    assert listed == {f"ids={prep_id},{train_id},{eval_id},"}  # SKYPILOT_TASK_IDS: all, in order
    assert [line.split(" ")[2] for line in seen["train"]] == ["attempt=2", "attempt=3"]

    one = spot_clean.run("logs", "--no-follow", "--task", "1", str(job_id))
    assert one.exit_code == 0, one.output
    assert "tick 16" in one.stdout and "prep done" not in one.stdout and "eval done" not in one.stdout
    bad = spot_clean.run("logs", "--no-follow", "--task", "3", str(job_id))
    assert bad.exit_code == 2 and "task" in bad.stderr

    table = spot_clean.run("status").stdout
    assert "↳" in table and "train" in table


def job_state(spot: Spot, job_id: int) -> JobState:
    """The job's state as the CLI reads it (the structured failure is not in `--json`)."""
    async def get() -> JobState:
        return await (await SpotClient.connect(spot.settings)).get_job(job_id)
    return asyncio.run(get())


def test_a_failed_task_ends_the_pipeline_and_later_tasks_never_start(spot_clean: Spot, tmp_path: Path) -> None:
    job_id = spot_clean.launch_detached(pipeline_file(tmp_path, "echo failing; exit 3"))
    job = spot_clean.wait_status(job_id, "FAILED", timeout=60)
    assert [t["status"] for t in job["tasks"]] == ["SUCCEEDED", "FAILED", "CANCELLED"]
    assert job["exit_code"] == 3 and "train" in job["failure_reason"]
    failure = job_state(spot_clean, job_id).failure  # the reason as data too: the failing task's own, under its label
    assert failure is not None and failure.task is not None and failure.task.startswith("task 1/3 ")
    assert f"{failure.task}: {failure.message}" == job["failure_reason"]
    assert [r["task"] for r in job["history"]] == [0, 1]  # eval was never provisioned
    assert "eval done" not in spot_clean.run("logs", "--no-follow", str(job_id)).stdout


def test_cancel_stops_the_running_task_and_the_rest(spot_clean: Spot, tmp_path: Path) -> None:
    job_id = spot_clean.launch_detached(pipeline_file(tmp_path, "echo never", first="sleep 600"))
    spot_clean.wait_running(job_id, attempt=1)
    assert spot_clean.run("cancel", "-y", str(job_id)).exit_code == 0
    job = spot_clean.wait_status(job_id, "CANCELLED", timeout=60)
    assert [t["status"] for t in job["tasks"]] == ["CANCELLED"] * 3
    assert [r["task"] for r in job["history"]] == [0]


def test_a_task_workflow_terminated_outside_spotctl_leaves_no_instance(spot_clean: Spot, tmp_path: Path) -> None:
    """Someone terminates the running task's workflow (web UI, `temporal workflow terminate`):
    it tears nothing down and returns no row, so the pipeline's final teardown must find the
    task's cluster by the job's tag, not by the attempts its own rows recorded."""
    job_id = spot_clean.launch_detached(pipeline_file(tmp_path, "echo never", first="sleep 600"))
    spot_clean.wait_running(job_id, attempt=1)

    async def terminate_task() -> None:
        client = await SpotClient.connect(spot_clean.settings)
        await client.temporal.get_workflow_handle(task_workflow_id(job_id, 0)).terminate("an operator's mistake")

    def of_job() -> list:
        return [i for i in spot_clean.alive_instances() if job_of_cluster(i.cluster_name) == job_id]

    try:
        asyncio.run(terminate_task())
        job = spot_clean.wait_status(job_id, "FAILED_CONTROLLER", timeout=60)
        assert [t["status"] for t in job["tasks"]] == ["FAILED_CONTROLLER", "CANCELLED", "CANCELLED"]
        failure = job_state(spot_clean, job_id).failure
        assert failure is not None and failure.message.startswith("task workflow: ")
        assert of_job() == []
    finally:
        spot_clean.cloud.terminate([i.id for i in of_job()])


def test_launch_follows_a_pipeline_to_its_end(spot_clean: Spot, tmp_path: Path) -> None:
    result = spot_clean.run("launch", "-y", pipeline_file(tmp_path, "echo trained"))
    assert result.exit_code == 0, result.output
    out = result.stdout
    order = [out.index(s) for s in ("prep done", "trained", "eval done")]
    assert order == sorted(order), out
    assert "SUCCEEDED" in result.output


@needs_corpus
@pytest.mark.parametrize("name", sorted(n for n, (_, tasks) in PIPELINES.items() if len(tasks) > 1))
def test_every_corpus_pipeline_dry_runs_with_all_its_tasks(name: str, tmp_path: Path) -> None:
    (tmp_path / "transformers").mkdir()  # bert_qa's workdir (~/transformers)
    env = {"HOME": str(tmp_path), "SPOTCTL_HOME": str(tmp_path / "home"), "SPOTCTL_CLOUDS": "local,aws,gcp"}
    secrets = ["--secret", "WANDB_API_KEY=not-a-key"] if "bert" in name else []
    result = CliRunner().invoke(cli, ["launch", "--dry-run", *secrets, str(CORPUS / name)], env=env)
    assert result.exit_code == 0, result.output
    tasks = PIPELINES[name][1]
    assert f"{len(tasks)} tasks" in result.output
    for i, task in enumerate(tasks):
        assert f"Task {i}/{len(tasks)} '{task or f'task-{i}'}'" in result.output
    assert result.output.count("Placement candidates") == len(tasks)
    assert not os.path.exists(tmp_path / "home" / "temporal")  # a dry run starts nothing


def test_the_example_pipeline_hands_its_model_from_train_to_eval(spot_clean: Spot) -> None:
    """examples/pipeline.yaml: what train writes to the shared bucket, eval reads; the bucket
    (persistent: false) is gone with the pipeline."""
    repo = Path(__file__).resolve().parents[1]
    result = spot_clean.run("launch", "-y", str(repo / "examples" / "pipeline.yaml"))
    assert result.exit_code == 0, result.output
    assert "read: weights after 3 steps" in result.stdout
    assert not (spot_clean.home / "local_buckets" / "spotctl-pipeline-demo").exists()
