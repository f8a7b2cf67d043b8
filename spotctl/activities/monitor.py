"""monitor: follow the running program until it exits everywhere, or its VM is taken back."""

from __future__ import annotations

import asyncio

from temporalio import activity
from temporalio.exceptions import ApplicationError

from spotctl.activities.deps import Deps
from spotctl.activities.drain import until_worker_drains
from spotctl.activities.fleet import note_preempted
from spotctl.activities.heartbeat import heartbeating
from spotctl.activities.node import MAX_PROGRESS_BYTES, PROGRESS_FILE, Node, nodes_of, progress_of
from spotctl.activities.pool_release import release_early
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
        re-attaches to the same program (it is never restarted). A pool job's worker is given
        back to its pool here, as soon as the program's end is seen (pool_release.py)."""
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
                if ref.job.deadline is not None:
                    raise await _with_progress(err, nodes) from None
            raise
        released = await release_early(ref)
        return RunOutcome(exit_codes=codes, first_failed_rank=stopper.first_failed, released=released)


async def _with_progress(err: ApplicationError, nodes: list[Node]) -> ApplicationError:
    """The Preempted error with what a deadline job last reported of its progress (the head
    node's $SPOTCTL_PROGRESS_FILE, where its disk can still be read): the workflow sees an
    error's details, so this is how the progress reaches it at the decision point that needs
    it, with no new activity and no read while the job runs. Bounded and best effort: a node
    that cannot be read, or a report that is garbage, leaves it out (the running-time rule)."""
    details = dict(err.details[0]) if err.details and isinstance(err.details[0], dict) else {}
    try:
        raw = await asyncio.wait_for(asyncio.to_thread(
            nodes[0].runner.read_file, f"{nodes[0].attempt_dir}/{PROGRESS_FILE}", 0, MAX_PROGRESS_BYTES), 5)
    except Exception:  # noqa: BLE001 - the node is gone, or slow: no report
        raw = b""
    progress = progress_of(raw)
    if progress is not None:
        details["progress"] = progress
    return ApplicationError(str(err.message), details, type=err.type, non_retryable=True)
