"""Preemption of local-cloud instances, the way a spot interruption works.

A notice file with the deadline, one SIGTERM to the user's programs, SIGKILL of everything
at the deadline. A preemption is first *claimed* under the state lock (`preempt_deadline`
on the record) so that however many processes notice it, the programs get exactly one
SIGTERM; the waiting happens outside the lock. Random preemptions (`preemption_mtbf_s`) are
drawn at launch (`preempt_at`) and enforced lazily by every state-reading call, which also
finishes claims whose deadline passed (the process that claimed them may have died), so no
daemon is needed.

A mixin of LocalCloud rather than functions over it: it is one concern of the same object
(it reads and claims under the cloud's lock, ends instances the cloud's way), kept in its
own file so local.py stays about the instance table and the Cloud protocol.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from spotctl.clouds.base import InstanceState
from spotctl.clouds.local_processes import signal_users
from spotctl.node_agent.agent_notice import write_notice

if TYPE_CHECKING:
    from spotctl.clouds.local_config import LocalCloudConfig
    from spotctl.clouds.local_instance import LocalInstance

log = logging.getLogger(__name__)

NOTICE_POLL_S = 0.05
PREEMPTION_REASON = "local.SpotInstanceTermination"


def _epoch(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


class PreemptionMixin:
    """preempt, preempt_cluster and the lazy enforcement of due preemptions (LocalCloud's)."""

    if TYPE_CHECKING:  # provided by LocalCloud

        def config(self) -> LocalCloudConfig: ...
        def _state(self) -> AbstractContextManager[dict[str, LocalInstance]]: ...
        def _load(self) -> dict[str, LocalInstance]: ...
        def _cluster(self, cluster_name: str, *, alive_only: bool) -> list[LocalInstance]: ...
        def _end(self, instance_ids: list[str], final: InstanceState, reason: str) -> None: ...
        def _has_processes(self, instance_id: str) -> bool: ...

    def preempt(self, instance_id: str, notice_s: float | None = None) -> None:
        """Preempt one instance the way a cloud does; returns once it is PREEMPTED.

        notice_s None means the region's `preemption_notice_s`. With a notice the programs
        get the deadline in ~/.spotctl/preemption_notice and one SIGTERM, and everything is
        killed when the notice runs out. Safe from any process (the
        CLI uses it); a no-op on an instance that is not alive."""
        self._preempt([instance_id], notice_s, wait=True)

    def preempt_cluster(self, cluster_name: str, notice_s: float | None = None) -> list[str]:
        """Preempt every alive node of the cluster at once (one shared notice period, not one
        per node); returns the ids preempted, by node rank. For `spotctl debug preempt`."""
        ids = [i.id for i in self._cluster(cluster_name, alive_only=True)]
        self._preempt(ids, notice_s, wait=True)
        return ids

    def _preempt(self, instance_ids: list[str], notice_s: float | None, wait: bool) -> None:
        """Claim, warn, then (now or in a background thread) kill and mark PREEMPTED.

        The claim is made under the lock, so a concurrent preemption of the same instance (a
        CLI and a worker enforcing the same `preempt_at`) never signals twice; the caller
        that lost the race only waits (if `wait`) for the winner's deadline. Nothing sleeps
        while holding the lock."""
        if not instance_ids:
            return
        cfg = self.config() if notice_s is None else None
        now = time.time()
        claimed: dict[str, float] = {}  # id -> deadline (epoch seconds)
        homes: dict[str, str] = {}
        waiting: dict[str, float] = {}  # claimed by someone else: wait for their deadline
        with self._state() as instances:
            for iid in instance_ids:
                inst = instances.get(iid)
                if inst is None or not inst.state.is_alive:
                    continue
                if inst.preempt_deadline is not None:
                    theirs = inst.preempt_deadline.timestamp()
                    waiting[iid] = theirs if notice_s is None else min(theirs, now + notice_s)
                    continue
                if notice_s is not None:
                    notice = notice_s
                else:
                    region = cfg.regions.get(inst.region) if cfg else None
                    notice = region.preemption_notice_s if region else 0.0
                deadline = now + max(0.0, notice)
                inst.preempt_deadline = _epoch(deadline)
                claimed[iid] = deadline
                homes[iid] = inst.home
        for iid, deadline in claimed.items():
            if deadline > now:
                write_notice(homes[iid], deadline)
                if self._has_processes(iid):
                    signal_users(iid, signal.SIGTERM)
        pending = {**claimed, **waiting}
        if wait:
            self._finish_preemptions(pending)
            return
        due_now = [iid for iid, d in claimed.items() if d <= now]
        if due_now:
            self._end(due_now, InstanceState.PREEMPTED, PREEMPTION_REASON)
        later = {iid: d for iid, d in claimed.items() if d > now}
        if later:
            threading.Thread(
                target=self._finish_preemptions_quietly, args=(later,), name="local-preempt", daemon=True
            ).start()

    def _finish_preemptions(self, deadlines: dict[str, float]) -> None:
        """Kill and mark each instance at its deadline. Like a real cloud, the instance (and
        its disk, where the program's last log lines are) lives until then even if its
        programs exited early on the SIGTERM."""
        pending = dict(deadlines)
        while pending:
            now = time.time()
            done = [iid for iid, d in pending.items() if d <= now]
            if done:
                self._end(done, InstanceState.PREEMPTED, PREEMPTION_REASON)
                for iid in done:
                    del pending[iid]
            if pending:
                time.sleep(NOTICE_POLL_S)

    def _finish_preemptions_quietly(self, deadlines: dict[str, float]) -> None:
        """Background variant: an error here must not kill the worker; the next state read
        finishes whatever this left (its deadlines are in the state file)."""
        try:
            self._finish_preemptions(deadlines)
        except Exception:  # noqa: BLE001 - logged; lazily retried by _enforce_preemptions
            log.exception("local cloud: finishing preemptions %s failed", sorted(deadlines))

    def _enforce_preemptions(self) -> None:
        """Preempt alive instances whose `preempt_at` passed, and finish claimed preemptions
        whose deadline passed (their claimer may have died or be another process). Called by
        every state-reading method so random preemptions happen without a daemon. Does not
        wait for notices: a poll must stay fast, so the SIGKILL at the deadline runs in a
        background thread."""
        now = time.time()
        due: list[str] = []
        finished: list[str] = []
        for inst in self._load().values():  # lock-free peek: state.json is replaced atomically
            if not inst.state.is_alive:
                continue
            if inst.preempt_deadline is not None:
                if inst.preempt_deadline.timestamp() <= now:
                    finished.append(inst.id)
            elif inst.preempt_at is not None and inst.preempt_at.timestamp() <= now:
                due.append(inst.id)
        if finished:  # ended directly, never via the waiting loop: a poll must not block
            self._end(finished, InstanceState.PREEMPTED, PREEMPTION_REASON)
        if due:
            self._preempt(due, None, wait=False)
