"""Node activities meeting an instance that was preempted while no poll looked at it.

A worker can die right after starting the run, and the spot VM can be taken back before
another worker retries: the retried activity finds the node stopped. The output the program
wrote meanwhile is still on the stopped VM's disk and must reach the log store before the
attempt ends as preempted (teardown deletes that disk).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from spotctl.activities.deps import Deps
from spotctl.activities.node import nodes_of
from spotctl.activities.run import RunActivities
from spotctl.activities.setup import SetupActivities
from spotctl.activities.watch import check_alive
from spotctl.clouds.local import LocalCloud
from spotctl.config import Settings
from spotctl.models import PREEMPTED_ERROR, AttemptRef, Candidate, JobSpec

CANDIDATE = Candidate(cloud="local", region="local-east", zone="local-east-1a", instance_type="local.small",
                      use_spot=True, price=0.01)


async def test_retried_start_run_on_a_preempted_node_ships_what_the_program_wrote(
        settings: Settings, cloud: LocalCloud) -> None:
    handle = cloud.provision("spotctl-1-1", CANDIDATE, 1)
    spec = JobSpec(job_id=1, name="orphaned-run", run="for i in 1 2 3; do echo line-$i; done; sleep 600",
                   candidates=[], submitted_at=datetime.now(UTC))
    ref = AttemptRef(job=spec, attempt=1, recovery_count=0, cluster=handle)
    deps = Deps(settings)
    env = ActivityEnvironment()
    await env.run(SetupActivities(deps).setup, ref)
    await env.run(RunActivities(deps).start_run, ref)  # ... and the worker "dies" here
    runner = cloud.runner(handle, 0)
    deadline = time.monotonic() + 10
    while b"line-3" not in runner.read_file("~/.spotctl/job-1/attempt-1/output.log"):
        assert time.monotonic() < deadline, "the program never printed"
        time.sleep(0.05)
    cloud.preempt(handle.instance_ids[0], notice_s=0)

    with pytest.raises(ApplicationError) as failure:
        await env.run(RunActivities(deps).start_run, ref)  # Temporal's retry, on another worker

    assert failure.value.type == PREEMPTED_ERROR
    assert deps.logs.read(1, 1, 0) == b"line-1\nline-2\nline-3\n"
    cloud.terminate(handle.instance_ids)


async def test_a_run_that_ended_just_before_the_vm_was_taken_is_not_a_preemption(
        settings: Settings, cloud: LocalCloud) -> None:
    """The program exits 0 right after a poll, the VM is taken right after that: its exit code
    is on the kept disk, so the attempt succeeded; running it again would redo finished work."""
    handle = cloud.provision("spotctl-2-1", CANDIDATE, 1)
    spec = JobSpec(job_id=2, name="just-in-time", run="echo done", candidates=[], submitted_at=datetime.now(UTC))
    ref = AttemptRef(job=spec, attempt=1, recovery_count=0, cluster=handle)
    deps = Deps(settings)
    env = ActivityEnvironment()
    await env.run(SetupActivities(deps).setup, ref)
    await env.run(RunActivities(deps).start_run, ref)
    runner = cloud.runner(handle, 0)
    deadline = time.monotonic() + 10
    while not runner.read_file("~/.spotctl/job-2/attempt-1/run.exit").strip():
        assert time.monotonic() < deadline, "the program never ended"
        time.sleep(0.05)
    cloud.preempt(handle.instance_ids[0], notice_s=0)
    nodes = nodes_of(ref, cloud.runner)

    await env.run(check_alive, deps, ref, nodes, "run")  # ended: no Preempted
    with pytest.raises(ApplicationError) as failure:
        await env.run(check_alive, deps, ref, nodes)  # a liveness check outside a phase
    assert failure.value.type == PREEMPTED_ERROR
    cloud.terminate(handle.instance_ids)
