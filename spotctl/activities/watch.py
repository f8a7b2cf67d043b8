"""Waiting for a phase (setup or run) to end on every node, shipping its output meanwhile.

Shared by setup and monitor. It re-attaches by what the node and the log store say (the exit
files and the store's size), never by a counter of its own, so a retry after a worker crash
continues where the last one stopped, without a gap or a duplicated line.
"""

from __future__ import annotations

import asyncio
import time

from temporalio import activity
from temporalio.exceptions import ApplicationError

from spotctl.activities.deps import Deps
from spotctl.activities.node import Node
from spotctl.clouds.base import InstanceState
from spotctl.models import PREEMPTED_ERROR, AttemptRef
from spotctl.remote.base import NodeUnreachable

CHUNK = 1 << 20
LOST_GRACE_S = 10.0
"""How long a phase whose processes vanished on a live instance is given before it is taken
as ended by a kill (the cloud may still be marking the instance as preempted)."""


async def ship_logs(deps: Deps, ref: AttemptRef, node: Node) -> int:
    """Copy new bytes of the node's output.log to the log store; return how many."""
    store = deps.logs
    shipped = 0
    while True:
        offset = store.size(ref.job.job_id, ref.attempt, node.rank)
        data = await asyncio.to_thread(node.runner.read_file, node.output_log, offset, CHUNK)
        if not data:
            return shipped
        store.append_at(ref.job.job_id, ref.attempt, node.rank, offset, data)
        shipped += len(data)
        if len(data) < CHUNK:
            return shipped


async def check_alive(deps: Deps, ref: AttemptRef) -> None:
    """Raise a non-retryable Preempted error when the cloud says an instance is not running."""
    cloud = deps.cloud(ref.cluster.cloud)
    states = await asyncio.to_thread(cloud.instance_states, ref.cluster.instance_ids)
    dead = {i: s for i, s in states.items() if not s.is_alive}
    if dead:
        preempted = any(s in (InstanceState.PREEMPTED, InstanceState.STOPPED, InstanceState.GONE) for s in dead.values())
        what = "preempted" if preempted else "terminated"
        raise ApplicationError(
            f"instance {', '.join(f'{i} ({s.value})' for i, s in dead.items())} {what} in "
            f"{ref.cluster.region}/{ref.cluster.zone}",
            {"region": ref.cluster.region, "zone": ref.cluster.zone, "cloud": ref.cluster.cloud},
            type=PREEMPTED_ERROR,
            non_retryable=True,
        )


async def wait_for_phase(deps: Deps, ref: AttemptRef, nodes: list[Node], phase: str) -> list[int]:
    """Poll until `phase` has an exit code on every node; return them by rank."""
    codes: dict[int, int] = {}
    last_liveness = 0.0
    lost_since: dict[int, float] = {}
    while True:
        for node in nodes:
            if node.rank in codes:
                continue
            try:
                await ship_logs(deps, ref, node)
                code = await node.read_exit_code(phase)
            except NodeUnreachable:
                code = None  # transient until the cloud says otherwise (checked below)
            if code is not None:
                await ship_logs(deps, ref, node)
                codes[node.rank] = code
        if len(codes) == len(nodes):
            return [codes[n.rank] for n in nodes]
        activity.heartbeat(f"{phase}: {len(codes)}/{len(nodes)} nodes done")
        now = time.monotonic()
        if now - last_liveness >= deps.liveness_interval_s:
            last_liveness = now
            await check_alive(deps, ref)
            for node in nodes:
                if node.rank in codes:
                    continue
                status = await node.agent("status", node.attempt_dir, phase)
                if not status.get("lost"):
                    lost_since.pop(node.rank, None)
                    continue
                first = lost_since.setdefault(node.rank, now)
                if now - first >= LOST_GRACE_S:
                    await check_alive(deps, ref)
                    codes[node.rank] = 137
        await asyncio.sleep(deps.poll_interval_s)
