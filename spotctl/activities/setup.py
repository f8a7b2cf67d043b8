"""setup: put the agent, the workdir and file mounts on every node, then run `setup`."""

from __future__ import annotations

import asyncio
import json

from temporalio import activity
from temporalio.exceptions import ApplicationError

from spotctl.activities.deps import Deps
from spotctl.activities.heartbeat import heartbeating
from spotctl.activities.mounts import materialize
from spotctl.activities.node import Node, job_env, nodes_of, phase_script
from spotctl.activities.space import out_of_space_noted
from spotctl.activities.watch import unreachable_is_preemption, wait_for_phase
from spotctl.models import MOUNT_ERROR, ActivityNames, AttemptRef, SetupOutcome
from spotctl.remote.base import NodeUnreachable
from spotctl.storage.base import StorageError


async def prepare_node(deps: Deps, ref: AttemptRef, node: Node) -> None:
    """The agent, the attempt's file mounts and its env.json on one node: what every phase
    needs before it starts (setup's first step; start_run's own for a pool job, AttemptRef.prepare)."""
    await node.install_agent()
    # Before any phase starts: the agent reads the attempt's mounts.json at each start.
    try:
        await materialize(deps.settings, node.runner, ref.job.file_mounts, ref.job.workdir_mount,
                          node.attempt_dir, ref.cluster.cloud)
    except StorageError as exc:  # a missing bucket will not appear by retrying
        raise ApplicationError(f"file mounts: {exc}", type=MOUNT_ERROR, non_retryable=True) from exc
    # Envs and secrets: created 0600 (the worker's umask), re-checked by the agent at start.
    cloud_env = deps.cloud(ref.cluster.cloud).node_env
    await node.write("env.json", json.dumps(job_env(ref, node.rank, node.runner.home, cloud_env)))


class SetupActivities:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @activity.defn(name=ActivityNames.SETUP)
    async def setup(self, ref: AttemptRef) -> SetupOutcome:
        """Prepare every node and run the task's `setup` there; return the first non-zero code.

        Idempotent: files are overwritten with the same content, and the agent refuses a second
        start of the setup phase, so a retry only waits for the setup already running."""
        nodes = nodes_of(ref, self.deps.cloud(ref.cluster.cloud).runner)
        async with heartbeating() as progress, out_of_space_noted("node disk"):
            try:
                progress("syncing workdir and file mounts")
                await asyncio.gather(*(prepare_node(self.deps, ref, n) for n in nodes))
                if not ref.job.setup:
                    return SetupOutcome(exit_code=0)
                for node in nodes:
                    await node.write("setup.sh", phase_script(ref, node, ref.job.setup))
                    await node.agent("start", node.attempt_dir, "setup")
            except NodeUnreachable as exc:
                await unreachable_is_preemption(self.deps, ref, exc)
            codes = await wait_for_phase(self.deps, ref, nodes, "setup", progress)
        return SetupOutcome(exit_code=next((c for c in codes if c != 0), 0))
