"""Recorded histories replay against the current workflow code.

A change that breaks replay would break every job running while workers are upgraded; such a
change needs `workflow.patched`. Histories are made by tests/histories/record.py: the
unprefixed ones by the first controller (workflows/legacy/controller_v1.py, frozen), the v2_ ones by
the current one (every path: success, failures, cancels while running and while provisioning,
capacity backoff, preemption with notice, continue-as-new) and by the job-id allocator.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from spotctl.codec import data_converter_for_key
from spotctl.models import JobSpec, JobState
from spotctl.worker.sandbox import workflow_runner
from spotctl.workflows import ALL_WORKFLOWS, JobIdAllocator, SpotJobWorkflow

pytestmark = pytest.mark.quick  # `pytest -m quick`: the fast loop (README, Tests)

HISTORY_DIR = Path(__file__).parent / "histories"
HISTORIES = sorted(HISTORY_DIR.glob("*.json"))
V1_HISTORIES = [p for p in HISTORIES if not p.stem.startswith("v2_")]
V2_HISTORIES = [p for p in HISTORIES if p.stem.startswith("v2_")]


async def replay(path: Path, workflows: list) -> object:
    history = WorkflowHistory.from_json(f"replay-{path.stem}", path.read_text())
    # spotctl's own converter (with the codec): histories recorded in clear must still replay;
    # the worker's own sandbox (worker/sandbox.py), so the replay covers what runs.
    replayer = Replayer(workflows=workflows, data_converter=data_converter_for_key(bytes(32)),
                        workflow_runner=workflow_runner())
    return await replayer.replay_workflow(history, raise_on_replay_failure=False)


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_history_replays(path: Path) -> None:
    result = await replay(path, ALL_WORKFLOWS)
    assert result.replay_failure is None, f"{path.name}: {result.replay_failure!r}"


def test_there_are_histories() -> None:
    assert len(V1_HISTORIES) >= 6, "the first controller's histories are frozen: never delete them"
    assert len(V2_HISTORIES) >= 8
    names = {p.stem for p in V2_HISTORIES}
    for needed in ("v2_succeeded", "v2_cancelled_provisioning", "v2_backoff_then_succeeded",
                   "v2_preempted_with_notice", "v2_continued_as_new_run1", "v2_job_id_allocator"):
        assert needed in names
    assert len(HISTORIES) >= 14


def test_a_history_covers_the_live_prices_path() -> None:
    """Recoveries re-price the candidates (the `live-prices` patch): a recorded history takes
    that path, so a change to it that running jobs would not survive fails here."""
    covered = [p.name for p in V2_HISTORIES if "live-prices" in _markers(p)]
    assert covered, "record one: python tests/histories/record.py preempted_with_notice=preempted_live_prices"
    assert all("price_candidates" in (HISTORY_DIR / name).read_text() for name in covered)


def test_histories_cover_the_task_queue_paths() -> None:
    """The monitor on its own queue (`monitor-queue`) and creates on the launch queue
    (`launch-slots`), including the wait for a launch slot (a schedule-to-start time-out,
    then PENDING and a second ask): recorded, so a change running jobs would not survive
    fails here."""
    queues = [p for p in V2_HISTORIES if "monitor-queue" in _markers(p)]
    assert queues, "record one: python tests/histories/record.py succeeded=queues_succeeded"
    slots = [p for p in V2_HISTORIES if "launch-slots" in _markers(p)]
    waited = [p.name for p in slots if "TIMEOUT_TYPE_SCHEDULE_TO_START" in p.read_text()]
    assert waited, "record one: python tests/histories/record.py waited_for_launch_slot=queues_waited_for_launch_slot"


def test_a_history_covers_the_priority_re_ask() -> None:
    """A job raised (`set-priority`) while it waited for a launch slot (the `launch-priority`
    patch): its create asked with its priority_key, cancelled and asked again under the new
    one; recorded, so a change running jobs would not survive fails here."""
    covered = [p.name for p in V2_HISTORIES if "launch-priority" in _markers(p)
               and "ACTIVITY_TASK_CANCELED" in p.read_text() and '"priorityKey":501' in p.read_text()]
    assert covered, "record one: python tests/histories/record.py priority_raised=priority_raised"


def test_histories_cover_job_arrays() -> None:
    """A job array's submitter (JobArray) and the allocator's block allocation replay."""
    assert any(_workflow_type(p) == "JobArray" for p in V2_HISTORIES), \
        "record one: python tests/histories/record.py job_array=job_array"
    assert any("allocate_block" in p.read_text() for p in V2_HISTORIES), \
        "record one: python tests/histories/record.py job_array=job_array"


def test_a_history_covers_the_deadline_path() -> None:
    """A deadline job (the `deadlines` patch) that moved from spot to on-demand: recorded, so
    a change to that path that running deadline jobs would not survive fails here; jobs
    without a deadline never take the patch."""
    covered = [p for p in V2_HISTORIES if "deadlines" in _markers(p)]
    assert covered, "record one: python tests/histories/record.py deadline_ondemand=deadline_ondemand"
    assert all("deadlines" not in _markers(p) for p in V2_HISTORIES if p not in covered)
    assert any(p.read_text().count('"name":"create_cluster"') >= 2 for p in covered), "a spot and an on-demand launch"


def test_a_history_covers_the_measured_restarts() -> None:
    """A deadline job whose policy is told its measured restarts and whose waits are capped to
    its safety net (the `deadline-restarts` patch), moved from spot to on-demand: recorded, so
    running jobs survive a change; the older deadline histories replay without it."""
    covered = [p for p in V2_HISTORIES if "deadline-restarts" in _markers(p)]
    assert covered, "record one: python tests/histories/record.py deadline_ondemand=deadline_restarts"
    assert any(p.read_text().count('"name":"create_cluster"') >= 2 for p in covered), "a spot and an on-demand launch"
    assert [p for p in V2_HISTORIES if "deadlines" in _markers(p) and p not in covered]


def test_a_history_covers_the_spells_seen() -> None:
    """A deadline job whose policy hears how long its spot attempts lived (the `deadline-spells`
    patch), moved from spot to on-demand: recorded, so running jobs survive a change; the
    deadline histories recorded before it replay without it."""
    covered = [p for p in V2_HISTORIES if "deadline-spells" in _markers(p)]
    assert covered, "record one: python tests/histories/record.py deadline_ondemand=deadline_spells"
    assert any(p.read_text().count('"name":"create_cluster"') >= 2 for p in covered), "a spot and an on-demand launch"
    assert [p for p in V2_HISTORIES if "deadline-restarts" in _markers(p) and p not in covered]


def test_a_history_covers_the_return_to_spot() -> None:
    """A deadline job on on-demand, watched by a durable timer, that made a spot cluster and
    moved to it (the `deadline-returns` patch): recorded, so running jobs survive a change."""
    covered = [p for p in V2_HISTORIES if "deadline-returns" in _markers(p)]
    assert covered, "record one: python tests/histories/record.py deadline_returned=deadline_returned"
    assert any('"timerFiredEventAttributes"' in p.read_text() and p.read_text().count('"name":"create_cluster"') >= 2
               for p in covered)


def test_histories_cover_both_controllers_and_the_allocator() -> None:
    """The unprefixed histories have no controller-v2 marker (they exercise the first controller, ControllerV1); the v2
    ones do; the allocator's history is there and is replayed with ALL_WORKFLOWS."""
    assert JobIdAllocator in ALL_WORKFLOWS
    for path in V1_HISTORIES:
        assert "controller-v2" not in _markers(path), path.name
    for path in V2_HISTORIES:
        text = path.read_text()
        if '"name":"JobIdAllocator"' in text.replace(" ", "") or _workflow_type(path) in ("SpotPipelineWorkflow",
                                                                                           "JobEventsWorkflow",
                                                                                           "JobArray", "SpotPoolWorkflow"):
            continue
        assert "controller-v2" in _markers(path), path.name


def test_histories_cover_pipelines_and_notifications() -> None:
    """A pipeline (the parent and each task, a child workflow) and a job that delivers its
    events (webhook and event_callback, the `notifications` patch) are recorded, so a change
    to either that running jobs would not survive fails here."""
    types = {p.stem: _workflow_type(p) for p in V2_HISTORIES}
    assert "SpotPipelineWorkflow" in types.values() and "SpotTaskWorkflow" in types.values()
    notified = [p for p in V2_HISTORIES if "notifications" in _markers(p)]
    assert notified, "record one: python tests/histories/record.py notified_preempted=notified_preempted"
    assert any("deliver_webhook" in p.read_text() and "run_event_callback" in p.read_text() for p in notified)


def test_a_history_covers_slack_and_discord() -> None:
    """A job with Slack and Discord targets (SkyPilot's event_callback list) posts each event to
    them with deliver_chat (the `chat-notifications` patch): recorded, so a change running jobs
    would not survive fails here."""
    chatty = [p for p in V2_HISTORIES if "chat-notifications" in _markers(p)]
    assert chatty, "record one: python tests/histories/record.py chat_notified=chat_notified"
    assert all("deliver_chat" in p.read_text() for p in chatty)


def test_a_history_covers_the_events_hand_off() -> None:
    """A job that ends with its webhook down hands its events to a JobEventsWorkflow (the
    `events-handoff` patch) and gives each up at its own deadline (`event-deadlines`): both
    workflows are recorded, so a change running jobs or their events would not survive fails here."""
    handed = [p for p in V2_HISTORIES if "events-handoff" in _markers(p)]
    assert handed, "record one: python tests/histories/record.py events_handed_off=events_handed_off"
    # every notified job's end takes the patch (its last event is still queued); one history hands off
    assert any("event-deadlines" in _markers(p) and "JobEventsWorkflow" in p.read_text() for p in handed)
    assert "JobEventsWorkflow" in {_workflow_type(p) for p in V2_HISTORIES}


def test_a_history_covers_the_pipeline_teardown_by_tag() -> None:
    """A pipeline whose task workflow was terminated outside spotctl tears the job's clusters
    down by tag (the `pipeline-teardown-by-tag` patch), though no row recorded an attempt."""
    covered = [p for p in V2_HISTORIES if "pipeline-teardown-by-tag" in _markers(p)]
    assert covered, "record one: python tests/histories/record.py pipeline_task_terminated=pipeline_task_terminated"
    assert all('"activityType":{"name":"teardown"}' in p.read_text() for p in covered)


def test_a_history_covers_the_pipeline_cancel_and_task_status_paths() -> None:
    """A pipeline whose task tells it its status (`pipeline-task-status`, in both workflows)
    and whose cancel is passed on (`pipeline-cancels`) is recorded, so a change to either
    that running pipelines would not survive fails here."""
    parents = [p for p in V2_HISTORIES if _workflow_type(p) == "SpotPipelineWorkflow"
               and "pipeline-cancels" in _markers(p) and "pipeline-task-status" in _markers(p)]
    assert parents, "record one: python tests/histories/record.py pipeline_cancelled=pipeline_cancelled"
    assert '"signalName":"task-status"' in parents[0].read_text().replace(" ", "")
    tasks = [p for p in V2_HISTORIES if _workflow_type(p) == "SpotTaskWorkflow"]
    assert any("pipeline-task-status" in _markers(p) for p in tasks)


def test_histories_cover_the_true_ends() -> None:
    """A failed job ends Failed (its status as the failure's type), a cancelled one Canceled
    (after its ask_canceled_end activity), a cancelled pipeline Canceled with its running task
    Failed CANCELLED and its tasks started in the internal division (`true-end-states`,
    `internal-children`); an allocator and a pool from before take `hide`: recorded, so a change running
    jobs would not survive fails here (docs/temporal-ui.md)."""
    ends = {p.stem: p.read_text() for p in V2_HISTORIES if "true-end-states" in _markers(p)}
    failed = "EVENT_TYPE_WORKFLOW_EXECUTION_FAILED"
    canceled = "EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED"
    assert any(failed in t and '"type":"FAILED_SETUP"' in t for t in ends.values()), \
        "record one: python tests/histories/record.py failed_setup=true_end_failed_setup"
    assert any(canceled in t and "ask_canceled_end" in t for t in ends.values()), \
        "record one: python tests/histories/record.py cancelled_running=true_end_cancelled"
    pipelines = [p for p in V2_HISTORIES if _workflow_type(p) == "SpotPipelineWorkflow"
                 and "internal-children" in _markers(p) and canceled in p.read_text()]
    assert pipelines, "record one: python tests/histories/record.py pipeline_cancelled=true_end_pipeline_cancelled"
    assert any(failed in t and '"type":"CANCELLED"' in t for t in ends.values())  # its task
    assert any('"name":"hide"' in p.read_text().replace(" ", "") for p in V2_HISTORIES), \
        "record one: python tests/histories/record.py allocator_hidden=allocator_hidden"
    assert any('"signalName":"pool-hide"' in p.read_text().replace(" ", "") for p in V2_HISTORIES), \
        "record one: python tests/histories/record.py pool_hidden=pool_hidden"
    assert all("true-end-states" not in _markers(p) for p in V2_HISTORIES
               if "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED" in p.read_text()), "a success never takes the patch"


def _workflow_type(path: Path) -> str:
    import json

    first = json.loads(path.read_text())["events"][0]
    return first["workflowExecutionStartedEventAttributes"]["workflowType"]["name"]


def _markers(path: Path) -> str:
    """The patch ids of a history's markers (in the marker details, base64)."""
    import base64
    import json

    found = []
    for event in json.loads(path.read_text())["events"]:
        marker = event.get("markerRecordedEventAttributes")
        if marker:
            for payload in marker.get("details", {}).get("patch-data", {}).get("payloads", []):
                found.append(base64.b64decode(payload["data"]).decode())
    return " ".join(found)


@workflow.defn(name="SpotJobWorkflow", sandboxed=False)
class _SleepsFirst(SpotJobWorkflow):
    """A deliberately incompatible change: one more timer before the first activity (after the
    patch check, so the replay fails on the timer, not on the marker)."""

    @workflow.run
    async def run(self, spec: JobSpec) -> JobState:
        if workflow.patched("controller-v2"):  # memoized: run() sees the same answer
            await workflow.sleep(1)
        return await super().run(spec)


async def test_replay_catches_an_incompatible_change() -> None:
    """The check bites: a changed workflow does not replay a recorded history."""
    path = HISTORY_DIR / "v2_succeeded.json"
    assert (await replay(path, ALL_WORKFLOWS)).replay_failure is None
    result = await replay(path, [_SleepsFirst, JobIdAllocator])
    assert result.replay_failure is not None
    assert "nondetermin" in str(result.replay_failure).lower(), result.replay_failure


def test_histories_cover_dying_clusters_and_a_continued_v1_job() -> None:
    """A cluster that died before it ran, then a backoff round (the `died-before-ready-backoff`
    patch), and the current controller's run that a first-controller job continued as new into
    (a carried state without events, task or waiting_since): recorded, so a change that such
    jobs would not survive fails here."""
    died = [p for p in V2_HISTORIES if "died-before-ready-backoff" in _markers(p)]
    assert died, "record one: python tests/histories/record.py died_before_ready_backoff=died_before_ready_backoff"
    assert all("TIMER_STARTED" in p.read_text() for p in died)
    assert (HISTORY_DIR / "v2_v1_continued.json").exists(), \
        "record one: python tests/histories/record.py v1_continued=v1_continued"


def test_a_history_covers_the_monitor_heartbeat_path() -> None:
    """The monitor's own heartbeat time-out (the `monitor-heartbeat` patch) is in a recorded
    history, so a change to it that running jobs would not survive fails here."""
    covered = [p.name for p in V2_HISTORIES if "monitor-heartbeat" in _markers(p)]
    assert covered, "record one: python tests/histories/record.py cancelled_running=monitor_heartbeat_cancelled"


def test_a_history_covers_the_fleet_memory_path() -> None:
    """A job ranked by expected cost reads the fleet's memory before each provisioning (the
    `fleet-memory` patch), its first and its recovery from a preemption: recorded, so a change
    to it that running jobs would not survive fails here."""
    covered = [p for p in V2_HISTORIES if "fleet-memory" in _markers(p)]
    assert covered, "record one: python tests/histories/record.py fleet_preempted=fleet_preempted"
    assert any(p.read_text().count('"activityType":{"name":"fleet_outlooks"}') >= 2 for p in covered)


def test_a_history_covers_the_pool_paths() -> None:
    """Jobs on a pool (the `pools` patch: a worker granted, preempted under the job, the job
    PENDING again and run on the replacement; a cancel that stops the program and keeps the
    worker) and the pool's own workflow are recorded, so a change that running pools and
    their jobs would not survive fails here."""
    jobs = [p for p in V2_HISTORIES if "pools" in _markers(p)]
    assert len(jobs) >= 2, "record them: python tests/histories/record.py pool_jobs=pool_jobs"
    assert any('"name":"stop_run"' in p.read_text() for p in jobs)
    assert all("pools" not in _markers(p) for p in V2_HISTORIES if p not in jobs)
    assert "SpotPoolWorkflow" in {_workflow_type(p) for p in V2_HISTORIES}


def test_a_history_covers_a_pool_job_raised_while_it_waits() -> None:
    """A job waiting for a pool's worker whose priority is raised (`pool-priority`): it asks
    the pool again, same attempt, with the new priority (two pool-request signals)."""
    path = HISTORY_DIR / "v2_pool_priority.json"
    assert path.exists(), "record it: python tests/histories/record.py pool_priority=pool_priority"
    markers = _markers(path)
    assert "\"pools\"" in markers and "\"pool-priority\"" in markers, markers
    assert path.read_text().count('"signalName":"pool-request"') == 2


def test_a_history_covers_a_pool_job_started_with_one_activity() -> None:
    """A job on a pool started by start_run alone, which prepares the node itself
    (`pool-quick-start`): no setup activity between the worker's grant and the program."""
    path = HISTORY_DIR / "v2_pool_quick_start.json"
    assert path.exists(), "record it: python tests/histories/record.py pool_quick_start=pool_quick_start"
    markers = _markers(path)
    assert "\"pools\"" in markers and "\"pool-quick-start\"" in markers, markers
    text = path.read_text()
    assert '"name":"start_run"' in text and '"name":"setup"' not in text


def test_a_history_covers_a_pool_job_released_by_its_monitor() -> None:
    """A job on a pool whose monitor gave the worker back itself as the program ended
    (`pool-early-release`): its workflow sends no release signal of its own."""
    path = HISTORY_DIR / "v2_pool_early_release.json"
    assert path.exists(), "record it: python tests/histories/record.py pool_early_release=pool_early_release"
    markers = _markers(path)
    assert "\"pools\"" in markers and "\"pool-early-release\"" in markers, markers
    text = path.read_text()
    assert '"signalName":"pool-request"' in text and '"signalName":"pool-release"' not in text


def test_a_history_covers_a_pool_granting_while_it_hands_over() -> None:
    """A pool whose run waits to continue as new (a worker being made) and meanwhile still hands
    freed workers to waiting jobs (`pool-handover-grants`): grants after the marker, then the
    continue-as-new."""
    path = HISTORY_DIR / "v2_pool_handover.json"
    assert path.exists(), "record it: python tests/histories/record.py pool_handover=pool_handover"
    assert "pool-handover-grants" in _markers(path)
    text = path.read_text()
    after = text[text.index('"EVENT_TYPE_MARKER_RECORDED"'):]
    assert '"signalName":"pool-grant"' in after and "EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW" in after
