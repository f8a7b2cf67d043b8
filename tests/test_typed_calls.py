"""The workflow -> activity boundary is typed: a wrong request or result is a type error.

The job and pipeline workflows call activities, child workflows and signals by typed
reference (the SDK's method-reference forms, workflows/spot_job.py, pipeline.py,
event_outbox.py), so the type checker (`mypy`, run by .ci/run over spotctl/) matches each
argument and result with the implementation's signature. Here a small workflow module with a
right call and wrong ones goes through mypy's own API: each wrong one must be reported on its
line, the right one not. And the registered names, which every recorded history calls, are
still exactly models.ActivityNames.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from mypy import api as mypy_api

from spotctl.activities import (
    ArrayActivities,
    FleetActivities,
    MonitorActivities,
    NotifyActivities,
    PoolActivities,
    PricingActivities,
    ProvisionActivities,
    RunActivities,
    SetupActivities,
    TeardownActivities,
    ask_canceled_end,
)
from spotctl.models import ActivityNames
from spotctl.worker.pool import activity_name

REPO = Path(__file__).resolve().parent.parent

PROBE = textwrap.dedent('''
    from datetime import datetime, timedelta

    from temporalio import workflow

    from spotctl.activities import ProvisionActivities
    from spotctl.models import ClusterHandle, JobState, ProvisionRequest, ProvisionResult, ReadyRequest
    from spotctl.workflows import SpotJobWorkflow, SpotPipelineWorkflow, SpotTaskWorkflow


    class Probe(SpotJobWorkflow):
        async def right(self, req: ProvisionRequest) -> ProvisionResult:
            return await self._activity(ProvisionActivities.create_cluster, req, timedelta(minutes=1))

        async def wrong_request(self, cluster: ClusterHandle) -> None:
            ready = ReadyRequest(cluster=cluster, deadline=datetime(2026, 1, 1))
            await self._activity(ProvisionActivities.create_cluster, ready, timedelta(minutes=1))  # WRONG

        async def wrong_result(self, req: ProvisionRequest) -> ClusterHandle:
            return await self._activity(ProvisionActivities.create_cluster, req, timedelta(minutes=1))  # WRONG


    async def sdk_forms(req: ReadyRequest, state: JobState) -> None:
        await workflow.execute_activity_method(ProvisionActivities.create_cluster, req,  # WRONG
                                               start_to_close_timeout=timedelta(minutes=1))
        await workflow.start_child_workflow(SpotTaskWorkflow.run, state, id="x")  # WRONG
        pipeline = workflow.get_external_workflow_handle_for(SpotPipelineWorkflow.run, "x")
        await pipeline.signal(SpotPipelineWorkflow.task_status, state)  # WRONG
''')


def test_mypy_reports_a_wrong_activity_request_or_result(tmp_path: Path) -> None:
    probe = tmp_path / "probe_workflow.py"
    probe.write_text(PROBE)
    out, err, _ = mypy_api.run([str(probe), "--config-file", str(REPO / "pyproject.toml"), "--no-error-summary",
                                "--cache-dir", str(tmp_path / "mypy-cache")])
    assert not err, err
    wrong = {i for i, line in enumerate(PROBE.splitlines(), 1) if line.endswith("# WRONG")}
    reported = {int(line.split(":")[1]) for line in out.splitlines() if line.startswith(str(probe))
                and ": error:" in line}
    assert reported == wrong, out


@pytest.mark.quick  # `pytest -m quick`: the fast loop (README, Tests)
def test_the_typed_references_keep_the_registered_names() -> None:
    """What the workflows reference is what every recorded history calls (models.ActivityNames),
    and the method's own name too (the job workflow's activity summaries use it)."""
    refs = [ProvisionActivities.provision, ProvisionActivities.create_cluster, ProvisionActivities.wait_cluster_ready,
            SetupActivities.setup, RunActivities.start_run, MonitorActivities.monitor, TeardownActivities.teardown,
            PricingActivities.price_candidates, NotifyActivities.deliver_webhook, NotifyActivities.run_event_callback,
            NotifyActivities.deliver_chat,
            FleetActivities.fleet_outlooks, ArrayActivities.start_array_jobs, ArrayActivities.end_array,
            RunActivities.stop_run, PoolActivities.dead_workers, ask_canceled_end]
    names = sorted(v for k, v in vars(ActivityNames).items() if k.isupper())
    assert names == ["ask_canceled_end", "create_cluster", "dead_workers", "deliver_chat", "deliver_webhook", "end_array",
                     "fleet_outlooks", "monitor",
                     "price_candidates", "provision", "run_event_callback", "setup", "start_array_jobs", "start_run",
                     "stop_run", "teardown", "wait_cluster_ready"]
    assert sorted(activity_name(ref) for ref in refs) == names
    assert all(activity_name(ref) == ref.__name__ for ref in refs)
