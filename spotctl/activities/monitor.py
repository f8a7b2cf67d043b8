"""monitor: follow the running program until it exits everywhere, or its VM is taken back."""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from spotctl.activities.deps import Deps
from spotctl.activities.drain import until_worker_drains
from spotctl.activities.fleet import note_preempted
from spotctl.activities.heartbeat import heartbeating
from spotctl.activities.node import nodes_of
from spotctl.activities.watch import STOP_GRACE_S, NodeStopper, wait_for_phase
from spotctl.models import PREEMPTED_ERROR, ActivityNames, AttemptRef, RunOutcome


class MonitorActivities:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @activity.defn(name=ActivityNames.MONITOR)
    async def monitor(self, ref: AttemptRef) -> RunOutcome:
        """Long-running; heartbeats from a background task. Returns the exit codes, or raises
        a non-retryable `Preempted` ApplicationError when the cloud says an instance is gone.
        A retry after a worker crash, or on another worker when this one drains (drain.py),
        re-attaches to the same program (it is never restarted)."""
        nodes = nodes_of(ref, self.deps.cloud(ref.cluster.cloud).runner)
        stopper = NodeStopper(STOP_GRACE_S)
        try:
            async with heartbeating() as progress:
                codes = await until_worker_drains(wait_for_phase(self.deps, ref, nodes, "run", progress, stopper))
        except ApplicationError as err:
            if err.type == PREEMPTED_ERROR:
                activity.metric_meter().create_counter(
                    "spotctl_preemptions", "preemptions the monitors detected").add(1, {"cloud": ref.cluster.cloud})
                await note_preempted(self.deps, ref.job.job_id, ref.attempt, ref.cluster)
            raise
        return RunOutcome(exit_codes=codes, first_failed_rank=stopper.first_failed)
