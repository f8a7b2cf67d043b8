"""models/naming.py: every name spotctl gives comes back whole from its parse, a parse takes
nothing its format never makes, and the names are the ones running jobs, buckets and recorded
histories already carry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spotctl.models import naming

pytestmark = pytest.mark.quick

ids = st.integers(min_value=0, max_value=2**63 - 1)
PAIRS: list[tuple[str, Callable[..., str], Callable[[str], Any], st.SearchStrategy]] = [
    ("job workflow", naming.job_workflow_id, naming.parse_job_workflow_id, st.tuples(ids)),
    ("task workflow", naming.task_workflow_id, naming.parse_task_workflow_id, st.tuples(ids, ids)),
    ("events workflow", naming.events_workflow_id, naming.parse_events_workflow_id,
     st.tuples(ids, st.none() | ids)),
    ("cluster", naming.cluster_name, naming.parse_cluster_name, st.tuples(ids, ids)),
    ("ephemeral bucket", naming.ephemeral_bucket, naming.parse_ephemeral_bucket, st.tuples(ids)),
]


def _unpacked(args: tuple) -> Any:
    """What a parse returns for format(*args): the one number, or the tuple."""
    return args[0] if len(args) == 1 else args


@pytest.mark.parametrize(("what", "fmt", "parse", "args"), PAIRS, ids=[p[0] for p in PAIRS])
def test_parse_gives_back_what_format_was_given(what, fmt, parse, args) -> None:
    @settings(deadline=None)  # a loaded machine (the suite runs in parallel) is no failure
    @given(args)
    def check(values: tuple) -> None:
        assert parse(fmt(*values)) == _unpacked(values)
    check()


# Strings near the names (their pieces, digits of other scripts, leading zeros, signs) as well
# as any text: whatever a parse takes, its format makes again exactly.
near = st.lists(st.sampled_from(["spotctl", "-", "job", "task", "events", "files", "0", "07", "12", "٣", "+1",
                                 " ", "\n", "x"]), max_size=9).map("".join)


@pytest.mark.parametrize(("what", "fmt", "parse", "args"), PAIRS, ids=[p[0] for p in PAIRS])
def test_parse_refuses_what_format_never_makes(what, fmt, parse, args) -> None:
    @settings(deadline=None)  # a loaded machine (the suite runs in parallel) is no failure
    @given(near | st.text(max_size=40))
    def check(text: str) -> None:
        parsed = parse(text)
        if parsed is not None:
            assert fmt(*(parsed if isinstance(parsed, tuple) else (parsed,))) == text
    check()


def test_names_are_the_ones_already_given() -> None:
    """Running jobs, buckets and recorded histories carry these: a format never changes."""
    assert naming.job_workflow_id(12) == "spotctl-job-12"
    assert naming.task_workflow_id(12, 1) == "spotctl-job-12-task-1"
    assert naming.events_workflow_id(12) == "spotctl-job-12-events"
    assert naming.events_workflow_id(12, 1) == "spotctl-job-12-task-1-events"
    assert naming.cluster_name(12, 3) == "spotctl-12-3"
    assert naming.node_name("spotctl-12-3", 0) == "spotctl-12-3-0"
    assert naming.ephemeral_bucket(7) == "spotctl-job-7-files"
    assert naming.instance_tags("spotctl-7-2") == {"spotctl-cluster": "spotctl-7-2", "spotctl-job": "7",
                                                   "spotctl-attempt": "2"}
    assert naming.instance_tags("my-cluster") == {"spotctl-cluster": "my-cluster"}
    assert (naming.JOB_WORKFLOW, naming.PIPELINE_WORKFLOW, naming.TASK_WORKFLOW, naming.EVENTS_WORKFLOW) == (
        "SpotJobWorkflow", "SpotPipelineWorkflow", "SpotTaskWorkflow", "JobEventsWorkflow")


def test_parse_tells_the_names_apart() -> None:
    """The sweeper and the clouds read a job id only from a name of the kind they look at."""
    assert naming.job_of_cluster("spotctl-12-3") == 12 and naming.job_of_cluster("my-cluster") is None
    assert naming.job_of_cluster("spotctl-12") is None and naming.job_of_cluster("spotctl-12-3-0") is None
    assert naming.parse_ephemeral_bucket("spotctl-job-7-files") == 7
    assert naming.parse_ephemeral_bucket("spotctl-job-7") is None
    assert naming.parse_job_workflow_id("spotctl-job-id-allocator") is None
    assert naming.parse_job_workflow_id("spotctl-job-12-task-1") is None
    assert naming.parse_job_workflow_id("spotctl-job-012") is None
    assert naming.parse_cluster_name("spotctl-٣-1") is None
    assert naming.parse_events_workflow_id("spotctl-job-12-task-1-events") == (12, 1)
    assert naming.parse_events_workflow_id("spotctl-job-12-events") == (12, None)
