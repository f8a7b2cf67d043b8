"""Waiting for a phase (setup or run) to end on every node, shipping its output meanwhile.

Shared by setup and monitor. It re-attaches by what the node and the log store say (the exit
files and the store's size), never by a counter of its own, so a retry after a worker crash
continues where the last one stopped, without a gap or a duplicated line.

Three outcomes are kept apart:
- the program exited: its exit code is returned (unless the node had a preemption notice, in
  which case a SIGTERM'd program's exit is the preemption's doing);
- the instance was preempted: only when the cloud says it is not running (or the node saw the
  preemption notice) is a non-retryable `Preempted` error raised;
- a transient fault (node unreachable, the cloud API slow): the loop keeps going (the
  caller heartbeats from a background task); an unreachable but running instance is never
  relaunched.

spotctl's own faults are never the program's: a node agent supervisor that stopped beating is
replaced (`revive`; the program runs on), and a phase whose end no process saw (`lost`) raises
a non-retryable `NodeFailure`, which the workflow recovers without the restart budget. A full
disk is waited out with its reason in the job's status (space.py).

On a multi-node run the first node that exits non-zero ends the job, so the others are
stopped (SIGTERM, then SIGKILL after STOP_GRACE_S) instead of burning money until they end
by themselves, as SkyPilot does. The job's exit code is the first failed node's.
"""

from __future__ import annotations

import asyncio
import time

from temporalio import activity
from temporalio.exceptions import ApplicationError

from spotctl.activities.deps import Deps
from spotctl.activities.heartbeat import Progress
from spotctl.activities.node import Node, PhaseLost, exit_code_of, nodes_of
from spotctl.activities.node_credentials import CredentialRenewer
from spotctl.activities.space import NODE_FULL_MARK, Notes, StoreFull, is_no_space
from spotctl.models import NODE_FAILURE_ERROR, PREEMPTED_ERROR, AttemptRef
from spotctl.remote.base import NodeUnreachable
from spotctl.storage.log_store_base import LogStore

CHUNK = 1 << 20
LOST_GRACE_S = 15.0
"""How long a phase's beat counter may stand still (the supervisor beats every 2 s) on a
live instance before its supervisor is taken as dead and a new one is started (`revive`)."""
LOST_CHECK_POLLS = 3
"""With many jobs, a phase's supervisor beat is read once every this many poll intervals."""
STOP_GRACE_S = 30.0
"""How long the other nodes of a failed multi-node run get between SIGTERM and SIGKILL."""


async def ship_logs(deps: Deps, ref: AttemptRef, node: Node) -> int:
    """Copy new bytes of the node's output.log to the log store; return how many."""
    shipped = 0
    while True:
        n, _ = await asyncio.to_thread(_ship_chunk, deps.logs, ref, node)
        shipped += n
        if n < CHUNK:
            return shipped


def _ship_chunk(store: LogStore, ref: AttemptRef, node: Node, exit_file: str | None = None) -> tuple[int, bytes]:
    """Blocking, in a worker thread: the store's size (a stat, or a bucket's memory), one
    round trip to the node, one append to the store; returns (bytes shipped, the exit file).
    With `exit_file` (a poll) that file is read in the same round trip as the log (one call
    to the node, not two); without, it is b'' and only the log is read."""
    offset = store.size(ref.job.job_id, ref.attempt, node.rank)
    if exit_file is None:
        data, raw_code = node.runner.read_file(node.output_log, offset, CHUNK), b""
    else:
        data, raw_code = node.runner.read_files([(node.output_log, offset, CHUNK), (exit_file, 0, 64)])
    if data:
        try:
            store.append_at(ref.job.job_id, ref.attempt, node.rank, offset, data)
        except OSError as exc:
            if is_no_space(exc):
                raise StoreFull(str(exc)) from exc
            raise
    return len(data), raw_code


async def poll_node(deps: Deps, ref: AttemptRef, node: Node, phase: str) -> tuple[int, int | None]:
    """One round trip to the node: its new log bytes (shipped to the store) and the phase's
    exit code, if any; returns (bytes shipped, exit code). The log is read before the exit
    file, so once the code is there the caller ships once more to get the last bytes.
    Everything blocking happens in one worker thread: with 1,000 monitors polling, the event
    loop must never wait on a disk or a lock (the log store's stat, mkdir, flock, write)."""
    shipped, raw_code = await asyncio.to_thread(_ship_chunk, deps.logs, ref, node, node.exit_file(phase))
    if shipped == CHUNK:  # a burst of output: the rest, chunk by chunk
        shipped += await ship_logs(deps, ref, node)
    return shipped, exit_code_of(raw_code)


def node_failure_error(ref: AttemptRef, rank: int, phase: str, why: str) -> ApplicationError:
    """spotctl's own machinery lost the phase on a live node: the workflow recovers the attempt
    without charging the restart budget, and reports no exit code."""
    return ApplicationError(
        f"node {rank} of {ref.cluster.cloud}/{ref.cluster.region}/{ref.cluster.zone} lost the {phase} "
        f"(an infrastructure failure, not the program's): {why}",
        {"cloud": ref.cluster.cloud, "region": ref.cluster.region, "zone": ref.cluster.zone},
        type=NODE_FAILURE_ERROR,
        non_retryable=True,
    )


def preempted_error(ref: AttemptRef, why: str) -> ApplicationError:
    return ApplicationError(
        f"{why} in {ref.cluster.cloud}/{ref.cluster.region}/{ref.cluster.zone}",
        {"cloud": ref.cluster.cloud, "region": ref.cluster.region, "zone": ref.cluster.zone},
        type=PREEMPTED_ERROR,
        non_retryable=True,
    )


async def check_alive(deps: Deps, ref: AttemptRef, nodes: list[Node] | None = None,
                      phase: str | None = None, max_age_s: float | None = None) -> None:
    """Raise `Preempted` when the cloud says an instance is not running, after shipping what
    the nodes' disks still hold (a stopped spot VM keeps its disk). A slow or failing cloud
    API is a transient fault: nothing is raised, the next check asks again.

    With `phase`: a phase that ended on every node before the VM was taken (its exit codes
    are on the kept disks) is not a preemption; the caller reads the codes. Without this, a
    program that finished just after the last poll and just before the VM went was run again.

    With `max_age_s`, the watcher's last answer will do if it is that recent (a periodic
    check); without, a batched call made after this one began is waited for."""
    watcher = deps.watchers.get(ref.cluster.location)
    try:
        states = await watcher.states(ref.cluster.instance_ids, max_age_s)
    except TimeoutError:
        activity.logger.warning("cloud %s did not answer a liveness check", ref.cluster.cloud)
        return
    dead = {i: s for i, s in states.items() if not s.is_alive}
    if dead:
        for node in nodes or []:
            try:
                await ship_logs(deps, ref, node)
            except NodeUnreachable:
                pass  # the disk went with the instance
        if phase and nodes and await _all_ended(nodes, phase):
            return
        raise preempted_error(ref, "instance " + ", ".join(f"{i} {s.value}" for i, s in dead.items()))


async def _all_ended(nodes: list[Node], phase: str) -> bool:
    """Whether every node's disk holds the phase's exit code."""
    for node in nodes:
        try:
            if await node.read_exit_code(phase) is None:
                return False
        except (NodeUnreachable, PhaseLost):  # a lost phase on a dead instance: its preemption
            return False
    return True


async def node_has_notice(node: Node) -> bool:
    """Whether the node saw a preemption notice (the cloud's warning before taking it back)."""
    try:
        return bool(await asyncio.to_thread(node.runner.read_file, node.notice_file, 0, 64))
    except NodeUnreachable:
        return False


async def unreachable_is_preemption(deps: Deps, ref: AttemptRef, exc: NodeUnreachable) -> None:
    """Called when a node did not answer: raise Preempted if the cloud says it is gone, else
    re-raise the NodeUnreachable so Temporal retries the activity in place."""
    # With the nodes: a stopped instance's disk still holds output no monitor has shipped yet
    # (a worker died after starting the run, and the instance was preempted meanwhile).
    await check_alive(deps, ref, nodes_of(ref, deps.cloud(ref.cluster.cloud).runner))
    raise exc


class NodeStopper:
    """Stops the other nodes once one node's run failed: SIGTERM now, SIGKILL after a grace."""

    def __init__(self, grace_s: float) -> None:
        self.grace_s = grace_s
        self.first_failed: int | None = None
        self._termed_at: float | None = None
        self._killed = False

    async def after(self, nodes: list[Node], codes: dict[int, int], now: float) -> None:
        if self.first_failed is None:
            self.first_failed = next((r for r, c in codes.items() if c != 0), None)
            if self.first_failed is None:
                return
        if self._termed_at is None:
            self._termed_at = now
            await self._signal(nodes, codes, "TERM")
        elif not self._killed and now - self._termed_at >= self.grace_s:
            self._killed = True
            await self._signal(nodes, codes, "KILL")

    async def _signal(self, nodes: list[Node], codes: dict[int, int], sig: str) -> None:
        for node in nodes:
            if node.rank in codes:
                continue
            activity.logger.info("node %s failed: SIG%s to node %s", self.first_failed, sig, node.rank)
            try:
                await node.agent("signal", node.attempt_dir, "run", sig)
            except (NodeUnreachable, RuntimeError) as exc:  # it is asked again by the next round
                activity.logger.warning("could not stop node %s: %s", node.rank, exc)


async def wait_for_phase(deps: Deps, ref: AttemptRef, nodes: list[Node], phase: str,
                         progress: Progress, stopper: NodeStopper | None = None) -> list[int]:
    """Poll until `phase` has an exit code on every node; return them by rank. With a
    `stopper` (the run phase), a node that fails stops the others."""
    deps.watching += 1  # the poll budget is shared by every phase being waited for
    deps.pressure.watch()
    try:
        return await _poll_until_ended(deps, ref, nodes, phase, progress, stopper,
                                       quiet_backoff=ref.job.pool is None)
    finally:
        deps.watching -= 1
        deps.pressure.unwatch()


def poll_pace_s(deps: Deps, *, brake: bool = True) -> float:
    """The least time between two polls of one phase: the worker's node-poll budget shared by
    every watched phase, stretched while the event loop runs late (loop_pressure.py), so a
    burst of recoveries is not queued behind log shipping. Without `brake` (a pool job, whose
    exit frees a worker other jobs wait for: seeing it late is lost throughput, not just log
    latency) the budget's share alone."""
    share = deps.watching / (deps.node_polls_per_s or 1.0)  # set in Deps.__post_init__
    return share * deps.pressure.slowdown() if brake else share


async def _poll_until_ended(deps: Deps, ref: AttemptRef, nodes: list[Node], phase: str,
                            progress: Progress, stopper: NodeStopper | None, *, quiet_backoff: bool = True) -> list[int]:
    """The poll loop of wait_for_phase. Without `quiet_backoff` (a job on a pool: its worker
    waits, held and idle, until its exit is seen) a quiet program is polled as often as the
    worker's poll budget allows (poll_pace_s), not less and less often, nor slower while the
    event loop runs late."""
    codes: dict[int, int] = {}
    interval = deps.cloud(ref.cluster.cloud).liveness_interval_s
    last_liveness = last_lost_check = time.monotonic()
    beats: dict[int, tuple[bytes, float]] = {}
    unreachable: set[int] = set()
    watcher = deps.watchers.get(ref.cluster.location)
    delay = deps.poll_interval_s
    dead_seen = False
    renewer = CredentialRenewer(deps, ref)
    notes = Notes()
    while True:
        active = False
        for node in nodes:
            if node.rank in codes:
                continue
            try:
                shipped, code = await poll_node(deps, ref, node, phase)
                active |= shipped > 0
                unreachable.discard(node.rank)
                if code is not None:
                    await ship_logs(deps, ref, node)
                notes.set(f"store {node.rank}", None)
            except StoreFull:
                # The phase ends only once its output is kept: the node holds it meanwhile.
                notes.set(f"store {node.rank}", f"no space left on device (log store): node {node.rank}'s "
                          "output waits on the node until the store has room")
                continue
            except NodeUnreachable:
                unreachable.add(node.rank)  # transient until the cloud says otherwise
                # Its supervisor's beat could not be read meanwhile: the grace starts afresh
                # once the node answers, or a long freeze would look like a dead supervisor.
                beats.pop(node.rank, None)
                continue
            except PhaseLost as lost:
                await ship_logs(deps, ref, node)
                await check_alive(deps, ref, nodes)  # a preemption, if the cloud took the node
                raise node_failure_error(ref, node.rank, phase, str(lost)) from None
            if code is not None:
                if code != 0 and await node_has_notice(node):
                    raise preempted_error(ref, f"preemption notice on node {node.rank} (program exited {code})")
                codes[node.rank] = code
        if len(codes) == len(nodes):
            notes.problems.clear()
            await notes.publish()
            if phase == "run":  # a renewal that crossed the agent's own delete goes too
                await renewer.forget(nodes)
            return [codes[n.rank] for n in nodes]
        await renewer.renew_if_due(nodes, codes)  # the nodes' bucket credentials, at half-life
        detail = f"{phase}: {len(codes)}/{len(nodes)} nodes done"
        detail += f", {len(unreachable)} unreachable" if unreachable else ""
        progress(detail + (f"; waiting: {notes.text}" if notes.text else ""))
        await notes.publish()
        now = time.monotonic()
        if stopper is not None and len(nodes) > 1:
            await stopper.after(nodes, codes, now)
        if now - last_liveness >= interval or unreachable or dead_seen:
            last_liveness = now
            await check_alive(deps, ref, nodes, phase, max_age_s=None if unreachable else interval)
        # A supervisor's beat is read every few polls' time (LOST_GRACE_S still bounds how
        # long a vanished one goes unnoticed, plus this), not on a fixed clock for every job.
        if now - last_lost_check >= max(deps.lost_check_interval_s, LOST_CHECK_POLLS * poll_pace_s(deps)):
            last_lost_check = now
            await _settle_lost(deps, ref, nodes, phase, codes, beats, unreachable, now, notes)
        # A quiet program is polled less and less often (up to max_poll_interval_s); output
        # brings the pace back. The watcher wakes the loop at once if an instance dies.
        # And with many phases watched, each is polled less often (node_polls_per_s in all).
        delay = deps.poll_interval_s if active or not quiet_backoff else min(delay * 1.5, deps.max_poll_interval_s)
        # Woken by a death: the next round checks at once (it ships the last bytes first).
        pace = poll_pace_s(deps, brake=quiet_backoff)
        dead_seen = await watcher.sleep_unless_dead(ref.cluster.instance_ids, max(delay, pace))


async def _settle_lost(deps: Deps, ref: AttemptRef, nodes: list[Node], phase: str, codes: dict[int, int],
                       beats: dict[int, tuple[bytes, float]], unreachable: set[int], now: float,
                       notes: Notes) -> None:
    """A phase whose supervisor died (its beat counter stopped, no exit file) on a live
    instance gets a new supervisor, which adopts the program if it still runs and publishes
    its real exit code (or `lost`, when no process saw the end). The death of spotctl's own
    process is never taken for the program's. One small file read per node, no process
    spawned unless a beat stopped, so this scales with the worker's jobs. The beat also says
    whether the node's disk is full (a reason for `notes`)."""
    for node in nodes:
        if node.rank in codes or node.rank in unreachable:
            continue
        try:
            beat = await asyncio.to_thread(node.runner.read_file, f"{node.attempt_dir}/{phase}.beat", 0, 64)
        except NodeUnreachable:
            continue
        full = NODE_FULL_MARK in beat  # the agent's word that the attempt's disk is full
        notes.set(f"node {node.rank}", f"no space left on device (node {node.rank} disk)" if full else None)
        last, since = beats.get(node.rank, (None, now))
        if beat != last:
            beats[node.rank] = (beat, now)
        elif now - since >= LOST_GRACE_S:
            await check_alive(deps, ref, nodes, phase)
            beats[node.rank] = (beat, now)  # the new supervisor gets a grace of its own
            try:
                answer = await node.agent("revive", node.attempt_dir, phase)
            except (NodeUnreachable, RuntimeError, ValueError) as exc:  # asked again after the next grace
                activity.logger.warning("job %s node %s: %s supervisor silent, revive failed: %s",
                                        ref.job.job_id, node.rank, phase, exc)
                continue
            if answer.get("revived"):
                activity.logger.warning("job %s node %s: the %s supervisor was lost; a new one adopted it",
                                        ref.job.job_id, node.rank, phase)
