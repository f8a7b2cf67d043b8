"""setup: put the agent, the workdir and file mounts on every node, then run `setup`."""

from __future__ import annotations

import asyncio
import json
import os

from temporalio import activity

from spotctl.activities.deps import Deps
from spotctl.activities.node import WORKDIR_ON_NODE, Node, job_env, nodes_of, phase_script
from spotctl.activities.watch import unreachable_is_preemption, wait_for_phase
from spotctl.remote.base import NodeUnreachable
from spotctl.models import Activities, AttemptRef, SetupOutcome


def _node_path(node: Node, target: str) -> str:
    """A mount target as a node path: `~` is the node's home."""
    if target == "~" or target.startswith("~/"):
        return node.runner.home + target[1:]
    return target


class SetupActivities:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def _prepare(self, ref: AttemptRef, node: Node) -> None:
        await node.install_agent()
        if ref.job.workdir:
            await asyncio.to_thread(node.runner.put_dir, ref.job.workdir, f"{node.runner.home}/{WORKDIR_ON_NODE}")
        for mount in ref.job.file_mounts:
            if mount.bucket or not mount.source:
                continue  # buckets are not supported yet; launch said so
            target = _node_path(node, mount.target)
            if os.path.isdir(mount.source):
                await asyncio.to_thread(node.runner.put_dir, mount.source, target)
            else:
                await asyncio.to_thread(node.runner.put_file, mount.source, target)
        await node.write("env.json", json.dumps(job_env(ref, node.rank, node.runner.home)))

    @activity.defn(name=Activities.SETUP)
    async def setup(self, ref: AttemptRef) -> SetupOutcome:
        """Prepare every node and run the task's `setup` there; return the first non-zero code.

        Idempotent: files are overwritten with the same content, and the agent refuses a second
        start of the setup phase, so a retry only waits for the setup already running."""
        nodes = nodes_of(ref, self.deps.cloud(ref.cluster.cloud).runner)
        try:
            await asyncio.gather(*(self._prepare(ref, n) for n in nodes))
            if not ref.job.setup:
                return SetupOutcome(exit_code=0)
            for node in nodes:
                await node.write("setup.sh", phase_script(ref, node, ref.job.setup))
                await node.agent("start", node.attempt_dir, "setup")
        except NodeUnreachable as exc:
            await unreachable_is_preemption(self.deps, ref, exc)
        codes = await wait_for_phase(self.deps, ref, nodes, "setup")
        return SetupOutcome(exit_code=next((c for c in codes if c != 0), 0))
