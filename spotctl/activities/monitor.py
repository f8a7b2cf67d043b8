"""monitor: follow the running program until it exits everywhere, or its VM is taken back."""

from __future__ import annotations

from temporalio import activity

from spotctl.activities.deps import Deps
from spotctl.activities.node import nodes_of
from spotctl.activities.watch import wait_for_phase
from spotctl.models import Activities, AttemptRef, RunOutcome


class MonitorActivities:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @activity.defn(name=Activities.MONITOR)
    async def monitor(self, ref: AttemptRef) -> RunOutcome:
        """Long-running and heartbeating. Returns the exit codes, or raises a non-retryable
        `Preempted` ApplicationError when the cloud says an instance is gone. A retry after a
        worker crash re-attaches to the same program (it is never restarted)."""
        nodes = nodes_of(ref, self.deps.cloud(ref.cluster.cloud).runner)
        return RunOutcome(exit_codes=await wait_for_phase(self.deps, ref, nodes, "run"))
