"""What the CLI shows of a managed pipeline (issue 12), from constructed states: how the
pipeline's rows and its running task's live state merge (spotctl/client/pipeline_view.py), the
status table's `↳` rows and `--json`'s `tasks`, the log markers between tasks, `logs --task`'s
usage errors, and the client-side read of the tasks' workflows (a fake Temporal client)."""

from __future__ import annotations

import asyncio
import io
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from rich.console import Console
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from spotctl.cli.follow import LogPrinter, followed
from spotctl.cli.jobs import _check_task
from spotctl.cli.render import DEADLINE_KEYS, as_json, job_in_full, short_failure, status_table
from spotctl.client import (
    JOB_TYPES,
    LISTING_QUERY,
    PIPELINE_WORKFLOW,
    TASK_WORKFLOW,
    attempt_tasks,
    merge,
    pipeline_state,
    rows_to_fetch,
    task_workflow_id,
)
from spotctl.models import AttemptRecord, JobState, JobStatus

pytestmark = pytest.mark.quick  # `pytest -m quick`: the fast loop (README, Tests)

T0 = datetime.now(UTC) - timedelta(hours=2)
NAMES = ("train", "eval", "export")


def record(attempt: int, task: int | None, *, ended: bool = True, outcome: str | None = "exit code 0",
           region: str = "local-east") -> AttemptRecord:
    start = T0 + timedelta(minutes=10 * attempt)
    return AttemptRecord(attempt=attempt, task=task, cloud="local", region=region, zone=f"{region}-1a",
                         instance_type="local.small", launched_at=start, started_at=start + timedelta(seconds=5),
                         ended_at=start + timedelta(minutes=9) if ended else None,
                         outcome=outcome if ended else None, price=0.01, use_spot=True, nodes=1)


def row(i: int, status: JobStatus = JobStatus.PENDING, **kw) -> JobState:
    return JobState(job_id=7, name=NAMES[i], task=i, resources=f"1x[cpus={i + 1}] spot", submitted_at=T0,
                    status=status, **kw)


def train_done() -> JobState:
    """Task 0: preempted once (attempts 1, 2), then succeeded."""
    return row(0, JobStatus.SUCCEEDED, attempt=2, recoveries=1, job_duration_s=600.0, cloud="local",
               region="local-west", zone="local-west-1a", started_at=T0 + timedelta(minutes=10),
               ended_at=T0 + timedelta(minutes=29), exit_code=0,
               history=[record(1, 0, outcome="preempted"), record(2, 0, region="local-west")])


def running_pipeline() -> JobState:
    """The pipeline's own state while task 1 runs: its row as of the task's start."""
    return JobState(job_id=7, name="pipe", status=JobStatus.STARTING, resources="1x[cpus=1] spot", submitted_at=T0,
                    detail="task 2/3 (eval)", tasks=[train_done(), row(1, JobStatus.STARTING), row(2)])


def eval_live() -> JobState:
    """Task 1's own state: preempted once (attempt 3), running attempt 4."""
    return row(1, JobStatus.RUNNING, attempt=4, recoveries=1, job_duration_s=120.0, cloud="local",
               region="local-eu", zone="local-eu-1a", started_at=T0 + timedelta(minutes=30),
               run_started_at=T0 + timedelta(minutes=45), detail="running",
               history=[record(3, 1, outcome="preempted"), record(4, None, ended=False, region="local-eu")])


# ---- merge -------------------------------------------------------------------------------

def test_names_and_ids() -> None:
    assert (PIPELINE_WORKFLOW, TASK_WORKFLOW) == ("SpotPipelineWorkflow", "SpotTaskWorkflow")
    assert task_workflow_id(7, 2) == "spotctl-job-7-task-2"
    assert JOB_TYPES == "WorkflowType IN ('SpotJobWorkflow', 'SpotPipelineWorkflow')"
    assert LISTING_QUERY.startswith(JOB_TYPES) and TASK_WORKFLOW not in LISTING_QUERY


def test_running_task_overlays_the_stale_row() -> None:
    parent = running_pipeline()
    assert rows_to_fetch(parent) == [1]  # ended rows are final, later ones never started
    job = merge(parent, {1: eval_live()})
    assert job.is_pipeline and [t.status for t in job.tasks] == [JobStatus.SUCCEEDED, JobStatus.RUNNING,
                                                                 JobStatus.PENDING]
    assert [t.task for t in job.tasks] == [0, 1, 2]
    assert job.status == JobStatus.RUNNING and job.recoveries == 2 and job.attempt == 4
    assert (job.cloud, job.region, job.zone) == ("local", "local-eu", "local-eu-1a")
    assert job.run_started_at == eval_live().run_started_at and job.job_duration_s == 720.0
    assert job.started_at == train_done().started_at and job.submitted_at == T0 and job.name == "pipe"
    assert job.detail == "task 1/3 'eval': running"
    assert [(r.attempt, r.task) for r in job.history] == [(1, 0), (2, 0), (3, 1), (4, 1)]
    assert job.ended_at is None and job.exit_code is None and job.failure_reason is None


def test_without_live_state_the_parent_rows_stand() -> None:
    job = merge(running_pipeline(), {})  # the task's workflow does not exist yet
    assert job.status == JobStatus.STARTING and job.tasks[1].status == JobStatus.STARTING
    assert job.detail == "task 1/3 'eval'" and job.attempt == 2 and job.region is None  # the task's, none yet


def test_status_before_between_and_while_cancelling() -> None:
    fresh = JobState(job_id=7, name="pipe", submitted_at=T0, tasks=[row(0), row(1), row(2)])
    assert rows_to_fetch(fresh) == [0]
    assert merge(fresh).status == JobStatus.PENDING
    between = running_pipeline().model_copy(update={"tasks": [train_done(), row(1), row(2)]})
    assert merge(between).status == JobStatus.STARTING  # task 0 ended, task 1 not started yet
    recovering = eval_live().model_copy(update={"status": JobStatus.RECOVERING})
    assert merge(running_pipeline(), {1: recovering}).status == JobStatus.RECOVERING
    cancelling = running_pipeline().model_copy(update={"status": JobStatus.CANCELLING, "cancel_requested": True})
    assert merge(cancelling, {1: eval_live()}).status == JobStatus.CANCELLING


def test_failed_pipeline_takes_the_failing_tasks_reason() -> None:
    failed_eval = row(1, JobStatus.FAILED, attempt=3, exit_code=3, failure_reason="run exited with code 3",
                      cloud="local", region="local-eu", zone="local-eu-1a", history=[record(3, 1, outcome="exit code 3")],
                      ended_at=T0 + timedelta(minutes=39))
    parent = JobState(job_id=7, name="pipe", status=JobStatus.FAILED, submitted_at=T0, exit_code=3,
                      failure_reason="task 1 (eval): run exited with code 3", ended_at=T0 + timedelta(minutes=40),
                      tasks=[train_done(), failed_eval, row(2, JobStatus.CANCELLED, failure_reason="not run")])
    assert rows_to_fetch(parent) == []
    job = merge(parent, {1: eval_live()})  # a final row is never overlaid
    assert job.status == JobStatus.FAILED and job.tasks[1].status == JobStatus.FAILED
    assert job.exit_code == 3 and job.failure_reason == "task 1/3 'eval': run exited with code 3"
    assert job.run_started_at is None and job.detail is None and job.region == "local-eu"
    assert short_failure(job.failure_reason) == "task 1/3 'eval': run exited with code 3"


def test_rows_of_a_pipeline_ended_outside_spotctl_are_closed() -> None:
    parent = running_pipeline().model_copy(update={"status": JobStatus.FAILED_CONTROLLER,
                                                   "failure_reason": "workflow terminated outside spotctl",
                                                   "ended_at": T0 + timedelta(hours=1)})
    job = merge(parent)
    assert [t.status for t in job.tasks] == [JobStatus.SUCCEEDED, JobStatus.FAILED_CONTROLLER, JobStatus.CANCELLED]
    assert job.status == JobStatus.FAILED_CONTROLLER and job.tasks[1].ended_at == parent.ended_at


def test_a_single_job_is_left_alone() -> None:
    job = eval_live().model_copy(update={"task": None})
    assert merge(job, {0: train_done()}) is job and rows_to_fetch(job) == []


def test_attempt_tasks_from_history_or_counters() -> None:
    job = merge(running_pipeline(), {1: eval_live().model_copy(update={"history": []})})
    assert attempt_tasks(job, [1, 2, 3, 4, 5]) == {1: 0, 2: 0, 3: 1, 4: 1, 5: None}


# ---- status table and --json -------------------------------------------------------------

def render(jobs: list[JobState], width: int | None = None) -> list[str]:
    out = Console(file=io.StringIO(), width=width or 100_000, color_system=None)
    out.print(status_table(jobs, show_all=True, width=width))
    return out.file.getvalue().splitlines()


def test_status_shows_a_line_per_task() -> None:
    single = eval_live().model_copy(update={"job_id": 8, "name": "solo", "task": None})
    pipe = merge(running_pipeline(), {1: eval_live()})
    lines = render([single, pipe])
    assert lines[0].split()[:3] == ["ID", "TASK", "NAME"]
    assert lines[1].split()[:2] == ["8", "solo"] and lines[2].split()[:2] == ["7", "pipe"]
    tasks = [line.split() for line in lines[3:]]
    assert [t[:3] for t in tasks] == [["↳", "0", "train"], ["↳", "1", "eval"], ["↳", "2", "export"]]
    assert "SUCCEEDED" in lines[3] and "RUNNING" in lines[4] and "PENDING" in lines[5] and "RUNNING" in lines[2]
    assert "1x[cpus=2] spot" in lines[4] and "local-eu" in lines[4]
    assert lines[5].split()[8:12] == ["-", "-", "0", "PENDING"]  # never started: no durations
    for width in (80, 60):
        narrow = render([single, pipe], width)
        assert max(len(line) for line in narrow) <= width
        assert [line.split()[:2] for line in narrow[3:]] == [["↳", "0"], ["↳", "1"], ["↳", "2"]]
    # Without a pipeline, the table is what it always was.
    assert render([single])[0].split()[:2] == ["ID", "NAME"]


def test_json_of_a_pipeline_and_of_a_job() -> None:
    single = eval_live().model_copy(update={"task": None})
    plain = as_json(single)
    assert "tasks" not in plain and "task" not in plain
    expected = (set(JobState.model_fields) - {"task", "tasks", "failure", "placement"} - DEADLINE_KEYS
                | {"total_duration_s", "last_run_started_at", "cost_usd", "ondemand_usd", "saved_pct"})
    assert set(plain) == expected
    data = json.loads(json.dumps(as_json(merge(running_pipeline(), {1: eval_live()}))))
    assert data["status"] == "RUNNING" and data["recoveries"] == 2 and len(data["history"]) == 4
    assert [(t["task"], t["name"], t["status"]) for t in data["tasks"]] == [
        (0, "train", "SUCCEEDED"), (1, "eval", "RUNNING"), (2, "export", "PENDING")]
    for task in data["tasks"]:
        assert set(task) == expected | {"task"}
    assert data["tasks"][2]["total_duration_s"] is None and data["tasks"][2]["cost_usd"] == 0
    assert data["cost_usd"] == pytest.approx(sum(t["cost_usd"] for t in data["tasks"]))
    assert data["tasks"][0]["total_duration_s"] == pytest.approx(19 * 60)  # its first launch to its end


def test_verbose_view_lists_tasks_and_whose_attempt() -> None:
    out = Console(file=io.StringIO(), width=200, color_system=None)
    out.print(job_in_full(merge(running_pipeline(), {1: eval_live()})))
    text = out.file.getvalue()
    assert "export" in text and "TASK" in text and "task 1/3 'eval': running" in text


# ---- logs --------------------------------------------------------------------------------

@dataclass
class FakeLogs:
    data: dict[int, bytes]

    def attempts(self, job_id: int) -> list[int]:
        return sorted(self.data)

    def ranks(self, job_id: int, attempt: int) -> list[int]:
        return [0] if attempt in self.data else []

    def read(self, job_id: int, attempt: int, rank: int, offset: int) -> bytes:
        return self.data[attempt][offset:]


@dataclass
class FakeClient:
    logs: FakeLogs = field(default_factory=lambda: FakeLogs({a: f"out {a}\n".encode() for a in (1, 2, 3, 4)}))


def printed(capsysbinary, state: JobState, **kw) -> str:
    LogPrinter(FakeClient(), 7, **kw).print_new(state)  # type: ignore[arg-type]
    return capsysbinary.readouterr().out.decode()


def test_logs_mark_tasks_and_recoveries_within_a_task(capsysbinary) -> None:
    job = merge(running_pipeline(), {1: eval_live()})
    assert printed(capsysbinary, job) == (
        "--- task 0/3 'train' ---\nout 1\n"
        "--- recovery 1: preempted in local-east/local-east-1a, relaunched in local-west/local-west-1a ---\nout 2\n"
        "--- task 1/3 'eval' ---\nout 3\n"
        "--- recovery 1: preempted in local-east/local-east-1a, relaunched in local-eu/local-eu-1a ---\nout 4\n")
    assert printed(capsysbinary, job, only_task=1) == (
        "out 3\n--- recovery 1: preempted in local-east/local-east-1a, relaunched in local-eu/local-eu-1a ---\n"
        "out 4\n")
    assert printed(capsysbinary, job, only_attempt=3) == "out 3\n"


def test_an_attempt_of_an_unknown_task_waits(capsysbinary) -> None:
    """Logs of attempt 4 exist before the state says whose it is: printed next time, with the
    right marker (once the job ended, everything is printed)."""
    stale = merge(running_pipeline(), {})
    printer = LogPrinter(FakeClient(), 7)  # type: ignore[arg-type]
    printer.print_new(stale)
    assert capsysbinary.readouterr().out.decode().endswith("out 2\n")
    printer.print_new(merge(running_pipeline(), {1: eval_live()}))
    assert capsysbinary.readouterr().out.decode().startswith("--- task 1/3 'eval' ---\nout 3\n")


def test_a_single_jobs_logs_are_as_before(capsysbinary) -> None:
    job = JobState(job_id=7, name="solo", submitted_at=T0, status=JobStatus.SUCCEEDED, attempt=2,
                   history=[record(1, None, outcome="preempted"), record(2, None, region="local-west")])
    client = FakeClient(FakeLogs({1: b"a\n", 2: b"b\n"}))
    LogPrinter(client, 7).print_new(job)  # type: ignore[arg-type]
    assert capsysbinary.readouterr().out.decode() == (
        "a\n--- recovery 1: preempted in local-east/local-east-1a, relaunched in local-west/local-west-1a ---\nb\n")


def test_logs_task_usage_errors(capsys) -> None:
    job = merge(running_pipeline(), {1: eval_live()})
    _check_task(job, 2, None)  # fine
    single = eval_live().model_copy(update={"task": None})
    for state, task, attempt, words in ((job, 3, None, "job 7 has no task 3 (tasks 0-2"),
                                        (job, -1, None, "has no task -1"),
                                        (single, 0, None, "job 7 is not a pipeline"),
                                        (job, 1, 3, "give --task or --attempt, not both")):
        with pytest.raises(SystemExit) as exc:
            _check_task(state, task, attempt)
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert words in err and len(err.strip().splitlines()) == 1
    assert followed(job, 0).status == JobStatus.SUCCEEDED and followed(job, None).status == JobStatus.RUNNING


# ---- reading the tasks' workflows (client side) ----------------------------------------

@dataclass
class FakeDescription:
    state: JobState
    status: WorkflowExecutionStatus = WorkflowExecutionStatus.RUNNING
    close_time: datetime | None = None

    async def memo(self) -> dict:
        return {"state": self.state.model_dump(mode="json")}


@dataclass
class FakeHandle:
    wf_id: str
    workflows: dict[str, JobState]
    queries: list[str]

    async def describe(self) -> FakeDescription:
        if self.wf_id not in self.workflows:
            raise RPCError("not found", RPCStatusCode.NOT_FOUND, b"")
        return FakeDescription(self.workflows[self.wf_id])

    async def query(self, name: str, result_type: type, rpc_timeout: object = None) -> JobState:
        self.queries.append(self.wf_id)
        return self.workflows[self.wf_id].model_copy(update={"detail": "live"})


@dataclass
class FakeTemporal:
    workflows: dict[str, JobState]
    queries: list[str] = field(default_factory=list)
    described: list[str] = field(default_factory=list)

    def get_workflow_handle(self, wf_id: str) -> FakeHandle:
        self.described.append(wf_id)
        return FakeHandle(wf_id, self.workflows, self.queries)


def test_pipeline_state_reads_only_the_unfinished_started_tasks() -> None:
    temporal = FakeTemporal({task_workflow_id(7, 1): eval_live()})
    job = asyncio.run(pipeline_state(temporal, running_pipeline(), live=True))  # type: ignore[arg-type]
    assert temporal.described == ["spotctl-job-7-task-1"] and temporal.queries == ["spotctl-job-7-task-1"]
    assert job.status == JobStatus.RUNNING and job.detail == "task 1/3 'eval': live"
    memo_only = asyncio.run(pipeline_state(FakeTemporal({task_workflow_id(7, 1): eval_live()}),  # type: ignore[arg-type]
                                           running_pipeline(), live=False))
    assert memo_only.detail == "task 1/3 'eval': running"
    not_yet = asyncio.run(pipeline_state(FakeTemporal({}), running_pipeline(), live=True))  # type: ignore[arg-type]
    assert not_yet.status == JobStatus.STARTING and not_yet.tasks[1].status == JobStatus.STARTING
