"""start_run: start the user's `run` detached on every node and return at once; stop_run: stop it."""

from __future__ import annotations

import asyncio
import json
import time

from temporalio import activity

from spotctl.activities.deps import Deps
from spotctl.activities.heartbeat import heartbeating
from spotctl.activities.node import Node, nodes_of, phase_script
from spotctl.activities.setup import prepare_node
from spotctl.activities.space import out_of_space_noted
from spotctl.activities.watch import unreachable_is_preemption
from spotctl.models import ActivityNames, AttemptRef
from spotctl.node_agent.agent_hooks import EVENT, HOOKS_JSON  # the node agent's files are the contract
from spotctl.remote.base import NodeUnreachable


async def write_hooks(ref: AttemptRef, node: Node) -> None:
    """The job's preemption hooks next to run.sh, in declaration order: one script each (a
    phase script: it starts where `run` starts) and hooks.json, which the run's supervisor reads
    when a notice comes (node_agent/agent_hooks.py). Nothing is written for a job without any."""
    hooks = [h for h in ref.job.hooks if EVENT in h.events]
    if not hooks:
        return
    entries = []
    for i, hook in enumerate(hooks, 1):
        await node.write(f"hook-{i}.sh", phase_script(ref, node, hook.run))
        entries.append({"script": f"hook-{i}.sh", "timeout_s": hook.timeout_s})
    await node.write(HOOKS_JSON, json.dumps(entries))


class RunActivities:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @activity.defn(name=ActivityNames.START_RUN)
    async def start_run(self, ref: AttemptRef) -> None:
        """Idempotent: the agent refuses a second start of the same attempt's run, so a retry
        never starts the user's program twice. With `ref.prepare` (a pool job) the node is
        prepared first, as the setup activity would: one activity, not two, between a worker
        being granted and the job's program running."""
        async with heartbeating(), out_of_space_noted("node disk"):
            try:
                for node in nodes_of(ref, self.deps.cloud(ref.cluster.cloud).runner):
                    if ref.prepare:
                        await prepare_node(self.deps, ref, node)
                    await node.write("run.sh", phase_script(ref, node, ref.job.run))
                    await write_hooks(ref, node)
                    await node.agent("start", node.attempt_dir, "run")
            except NodeUnreachable as exc:
                await unreachable_is_preemption(self.deps, ref, exc)

    @activity.defn(name=ActivityNames.STOP_RUN)
    async def stop_run(self, ref: AttemptRef) -> None:
        """Stop the attempt's program on every node, and return once it has ended: SIGTERM,
        then SIGKILL after STOP_RUN_GRACE_S (a cancelled pool job; its worker is kept for the
        next job, so the program must be gone before the worker is handed on). Idempotent:
        signalling an ended program is a no-op; a node that is gone has nothing left to stop."""
        nodes = nodes_of(ref, self.deps.cloud(ref.cluster.cloud).runner)
        async with heartbeating():
            for node in nodes:
                try:
                    await _stop(node)
                except NodeUnreachable:
                    activity.logger.info("node %s of job %s is unreachable: nothing to stop", node.rank, ref.job.job_id)


STOP_RUN_GRACE_S = 10.0
"""How long a cancelled pool job's program has between SIGTERM and SIGKILL."""


async def _stop(node: Node) -> None:
    deadline = time.monotonic() + STOP_RUN_GRACE_S
    sig = "TERM"
    while True:
        answer = await node.agent("signal", node.attempt_dir, "run", sig)
        if answer.get("exit_code") is not None or not answer.get("running", True):
            return
        if time.monotonic() >= deadline:
            sig = "KILL"
        await asyncio.sleep(0.2)
