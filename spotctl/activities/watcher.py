"""One batched watcher per cloud, shared by every job of the worker.

A worker holds many running jobs; asking the cloud about each job's instances every second
would cost one API call per job per second. Instead each monitor registers the instances it
cares about and reads the answer of the watcher's last batched `instance_states` call; one
call per cloud per interval serves them all.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from spotctl.clouds.base import Cloud, InstanceState

FORGET_AFTER_S = 60.0
"""Instances nobody asked about for this long are dropped from the batch."""


class CloudWatcher:
    def __init__(self, cloud: Cloud, interval_s: float) -> None:
        self.cloud = cloud
        self.interval_s = interval_s
        self._wanted: dict[str, float] = {}
        self._states: dict[str, InstanceState] = {}
        self._generation = 0
        self._refreshed = asyncio.Condition()
        self._task: asyncio.Task | None = None
        self._listeners: dict[str, set[asyncio.Event]] = {}
        self.calls = 0
        """How many batched cloud calls were made (for benchmarks)."""

    async def states(self, ids: list[str]) -> dict[str, InstanceState]:
        """The instances' states from a batched call made after this request began (a death
        already seen is final and returned at once)."""
        now = time.monotonic()
        for i in ids:
            self._wanted[i] = now
        self._ensure_running()
        if any(i in self._states and not self._states[i].is_alive for i in ids):
            return {i: self._states.get(i, InstanceState.GONE) for i in ids}
        async with self._refreshed:
            start = self._generation
            # Bounded: if the cloud does not answer, the caller treats it as a transient fault.
            await asyncio.wait_for(self._refreshed.wait_for(lambda: self._generation > start),
                                   timeout=max(30.0, 5 * self.interval_s))
        return {i: self._states.get(i, InstanceState.GONE) for i in ids}

    async def sleep_unless_dead(self, ids: list[str], seconds: float) -> None:
        """Sleep up to `seconds`, waking early when a batched call sees one of `ids` not
        running, so a monitor that polls its node slowly still notices a preemption at once."""
        now = time.monotonic()
        for i in ids:
            self._wanted[i] = now
        self._ensure_running()
        if any(i in self._states and not self._states[i].is_alive for i in ids):
            return
        woken = asyncio.Event()
        for i in ids:
            self._listeners.setdefault(i, set()).add(woken)
        try:
            await asyncio.wait_for(woken.wait(), timeout=seconds)
        except TimeoutError:
            pass
        finally:
            for i in ids:
                listeners = self._listeners.get(i)
                if listeners is not None:
                    listeners.discard(woken)
                    if not listeners:
                        del self._listeners[i]

    def _ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def _loop(self) -> None:
        while self._wanted:
            cutoff = time.monotonic() - FORGET_AFTER_S
            for i in [i for i, t in self._wanted.items() if t < cutoff]:
                del self._wanted[i]
            ids = list(self._wanted)
            if ids:
                try:
                    states = await asyncio.to_thread(self.cloud.instance_states, ids)
                    self.calls += 1
                    self._states.update(states)
                except Exception:  # a failed batch: waiters try again next round
                    pass
                else:
                    for i, state in states.items():
                        if not state.is_alive:
                            for woken in self._listeners.get(i, ()):
                                woken.set()
                    async with self._refreshed:
                        self._generation += 1
                        self._refreshed.notify_all()
            await asyncio.sleep(self.interval_s)


class Watchers:
    """The worker's watchers, one per cloud, made on first use."""

    def __init__(self, cloud_for: Callable[[str], Cloud], interval_for: Callable[[str], float]) -> None:
        self._cloud_for = cloud_for
        self._interval_for = interval_for
        self._watchers: dict[str, CloudWatcher] = {}

    def get(self, cloud_name: str) -> CloudWatcher:
        if cloud_name not in self._watchers:
            self._watchers[cloud_name] = CloudWatcher(self._cloud_for(cloud_name), self._interval_for(cloud_name))
        return self._watchers[cloud_name]
