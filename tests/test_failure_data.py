"""Failure reasons carried as data (JobState.failure, models/status.py JobFailure): `status`,
`status -a`, `status -v ID` and `status --json` show exactly what they showed when the CLI
parsed the text back (cli/render.py's legacy path, still used for states from before the
field), and the field crosses Temporal both ways (an old state reads; an old reader ignores it)."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import create_model
from rich.console import Console

from spotctl.cli.render import as_json, job_in_full, jobs_json, status_table, table_reason
from spotctl.models import CandidateFailure, ErrorKind, ErrorScope, JobFailure, JobState, JobStatus
from spotctl.models.naming import label

pytestmark = pytest.mark.quick

T0 = datetime.now(UTC) - timedelta(hours=3)


def cand(where: str, why: str, kind: ErrorKind = ErrorKind.CAPACITY) -> CandidateFailure:
    return CandidateFailure(location=where, instance_type="local.small", reason=why, kind=kind, scope=ErrorScope.ZONE)


FAILURES = [
    JobFailure(head="no capacity for 120s", candidates=[
        cand("local/local-east/local-east-1a", "no capacity"), cand("local/local-east/local-east-1b", "no capacity"),
        cand("local/local-west/local-west-1a", "no capacity"),
        cand("local/local-eu/local-eu-1a", "quota exceeded", ErrorKind.QUOTA)]),
    JobFailure(candidates=[cand("aws/us-east-1/us-east-1a", "InsufficientInstanceCapacity; try later"),
                           cand("gcp/us-central1/us-central1-a", "ZONE_RESOURCE_POOL_EXHAUSTED\nsecond line")]),
    JobFailure(head="no candidate can ever be provisioned", candidates=[
        cand("aws/us-east-1/us-east-1a", "no AWS credentials found", ErrorKind.INVALID)]),
    JobFailure(head="no capacity for 3600s", message="local/local-east: instance never ran"),
    JobFailure(head="no capacity for 0s"),
    JobFailure(message="run exited with code 3"),
    JobFailure(message="controller error: boom\nTraceback line"),
    JobFailure(task=label(1, 3, "eval"), head="no capacity for 60s",
               candidates=[cand("local/local-east/local-east-1a", "no capacity")]),
    JobFailure(task=label(0, 2, "it's"), message="FAILED"),
]


def job(failure: JobFailure | None, *, legacy: bool, status: JobStatus = JobStatus.FAILED_NO_RESOURCE,
        job_id: int = 7) -> JobState:
    """A job as the workflow now leaves it, or (`legacy`) as one from before the field: the same text."""
    return JobState(job_id=job_id, name="train", status=status, submitted_at=T0, ended_at=T0 + timedelta(hours=1),
                    failure_reason=failure.text() if failure else None, failure=None if legacy else failure,
                    detail=None if status.is_terminal else "no capacity in 3 region(s), retry in 16s")


def shown(jobs: list[JobState]) -> str:
    """What `status`, `status -a` at two widths, `status -v ID` for each job and `--json` print."""
    now = T0 + timedelta(hours=2)
    out = Console(file=io.StringIO(), width=200, color_system=None)
    for show_all, width in ((False, None), (True, None), (True, 100)):
        out.print(status_table(jobs, show_all=show_all, width=width, now=now))
    for j in jobs:
        out.print(job_in_full(j, now=now))
    return out.file.getvalue() + json.dumps([as_json(j, now=now) for j in jobs], ensure_ascii=False)


@pytest.mark.parametrize("failure", FAILURES, ids=lambda f: f.text()[:30])
@pytest.mark.parametrize("status", [JobStatus.FAILED_NO_RESOURCE, JobStatus.STARTING])
def test_the_data_shows_as_the_text_did(failure: JobFailure, status: JobStatus) -> None:
    new, old = job(failure, legacy=False, status=status), job(failure, legacy=True, status=status)
    assert new.failure_data == failure and old.failure_data is None
    assert shown([new]) == shown([old])
    assert table_reason(new) == table_reason(old)


def test_a_pipeline_shows_as_it_did() -> None:
    """A pipeline's line, its task lines and `status -v` of it: the task's reason under its label."""
    def pipeline(legacy: bool) -> JobState:
        rows = [job(None, legacy=legacy, status=JobStatus.SUCCEEDED, job_id=9),
                job(FAILURES[0], legacy=legacy, job_id=9).model_copy(update={"task": 1}),
                job(JobFailure.of("not run: ..."), legacy=legacy, status=JobStatus.CANCELLED, job_id=9)]
        own = JobFailure.of_task(label(1, 3, "train"), rows[1])
        return job(own, legacy=legacy, job_id=9).model_copy(
            update={"tasks": rows, "failure_reason": f"{label(1, 3, 'train')}: {rows[1].failure_reason}"})
    new, old = pipeline(False), pipeline(True)
    assert new.failure_data is not None and new.failure_data.task == "task 1/3 'train'"
    assert new.failure_data.candidates == FAILURES[0].candidates
    assert old.failure_data is None
    assert shown([new]) == shown([old])


words = st.text(st.characters(categories=["L", "N", "Pd", "Pc", "Po"], exclude_characters=";:/"), min_size=1,
                max_size=12)
"""What clouds, regions, zones, instance types and the words of a reason are made of."""
candidates = st.builds(
    CandidateFailure, location=st.builds(lambda *p: "/".join(p), words, words, words), instance_type=words,
    reason=st.lists(words, max_size=3).map(" ".join), kind=st.sampled_from(ErrorKind), scope=st.sampled_from(ErrorScope))


@settings(deadline=None)  # a loaded machine (the suite runs in parallel) is no failure
@given(st.none() | st.sampled_from(["no capacity for 120s", "no candidate can ever be provisioned"]),
       st.lists(candidates, min_size=1, max_size=5))
def test_any_candidate_list_shows_as_its_text_did(head: str | None, listed: list[CandidateFailure]) -> None:
    failure = JobFailure(head=head, candidates=listed)
    assert shown([job(failure, legacy=False)]) == shown([job(failure, legacy=True)])


def test_a_reason_set_without_its_data_is_read_as_text() -> None:
    """A writer that changes failure_reason alone leaves stale data: the text wins."""
    stale = job(FAILURES[0], legacy=False).model_copy(update={"failure_reason": "workflow terminated outside spotctl"})
    assert stale.failure_data is None
    assert table_reason(stale) == "workflow terminated outside spotctl"


def test_the_field_crosses_temporal_both_ways() -> None:
    """A state from before the field reads (no failure); a state with it reads where the field is
    unknown (pydantic ignores it: an older CLI or worker); --json keeps the keys it always had."""
    new = job(FAILURES[0], legacy=False)
    dumped = new.model_dump(mode="json")
    assert JobState.model_validate({k: v for k, v in dumped.items() if k != "failure"}).failure is None
    assert JobState.model_validate(dumped) == new

    older = create_model("Older", **{name: (f.annotation, f) for name, f in JobState.model_fields.items()  # type: ignore
                                     if name != "failure"})  # the JobState of a spotctl from before the field
    assert older.model_validate(dumped).model_dump(mode="json") == {k: v for k, v in dumped.items() if k != "failure"}
    assert "failure" not in json.loads(jobs_json([new]))[0]
