"""start_run: start the user's `run` detached on every node and return at once."""

from __future__ import annotations

from temporalio import activity

from spotctl.activities.deps import Deps
from spotctl.activities.heartbeat import heartbeating
from spotctl.activities.node import nodes_of, phase_script
from spotctl.activities.space import out_of_space_noted
from spotctl.activities.watch import unreachable_is_preemption
from spotctl.models import ActivityNames, AttemptRef
from spotctl.remote.base import NodeUnreachable


class RunActivities:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @activity.defn(name=ActivityNames.START_RUN)
    async def start_run(self, ref: AttemptRef) -> None:
        """Idempotent: the agent refuses a second start of the same attempt's run, so a retry
        never starts the user's program twice."""
        async with heartbeating(), out_of_space_noted("node disk"):
            try:
                for node in nodes_of(ref, self.deps.cloud(ref.cluster.cloud).runner):
                    await node.write("run.sh", phase_script(ref, node, ref.job.run))
                    await node.agent("start", node.attempt_dir, "run")
            except NodeUnreachable as exc:
                await unreachable_is_preemption(self.deps, ref, exc)
