"""One batched watcher per cloud region, shared by every job of the worker.

A worker holds many running jobs; asking the cloud about each job's instances every second
would cost one API call per job per second. Instead each monitor registers the instances it
cares about and reads the answer of the watcher's last batched `instance_states` call; one
call per region per interval serves them all (in chunks of CHUNK ids: real APIs cap how many
ids one call may name). A real cloud's instance ids belong to a region, so the batch is too.

The cloud may be slow, throttle or hang: each call has a time-out (activities/cloud_calls.py),
a failed call is logged (once per streak, then every minute) and asked again next interval,
and while a hung call still holds its thread no second one is started. Waiters are bounded
too: a monitor never takes a cloud that does not answer for a dead instance.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from spotctl.activities.cloud_calls import CLOUD_CALL_TIMEOUT_S, submit, wait_call
from spotctl.clouds.base import Cloud, CloudError, InstanceState
from spotctl.models import Location

log = logging.getLogger(__name__)

FORGET_AFTER_S = 60.0
"""Instances nobody asked about for this long are dropped from the batch."""
LOG_EVERY_S = 60.0
"""A streak of failed calls is logged at its start and then at most this often."""
CHUNK = 100
"""Most ids named in one `instance_states` call (EC2's DescribeInstances takes up to 1,000
ids, but smaller pages answer faster and fail alone)."""


def _states_in_chunks(cloud: Cloud, at: Location, ids: list[str]) -> dict[str, InstanceState]:
    """The batched call: one `instance_states` per CHUNK ids of the region (runs in a thread)."""
    states: dict[str, InstanceState] = {}
    for start in range(0, len(ids), CHUNK):
        states.update(cloud.instance_states(ids[start:start + CHUNK], at))
    return states


class CloudWatcher:
    def __init__(self, cloud: Cloud, interval_s: float, at: Location | None = None) -> None:
        self.cloud = cloud
        self.interval_s = interval_s
        self.at = at or Location(cloud=cloud.name, region="")
        self._wanted: dict[str, float] = {}
        self._states: dict[str, InstanceState] = {}
        self._answered_at: dict[str, float] = {}
        """When a successful batched call last answered about each instance (monotonic)."""
        self._generation = 0
        self._refreshed = asyncio.Condition()
        self._task: asyncio.Task | None = None
        self._listeners: dict[str, set[asyncio.Future[None]]] = {}
        self._inflight: asyncio.Future | None = None
        self._failing_since: float | None = None
        self._last_logged = 0.0
        self.calls = 0
        """How many batched cloud calls were made (for benchmarks)."""
        self.failures = 0
        """How many of them failed or timed out."""

    async def states(self, ids: list[str], max_age_s: float | None = None) -> dict[str, InstanceState]:
        """The instances' states from a batched call made after this request began, or with
        `max_age_s`, from one that answered within that many seconds (a monitor's periodic
        check: with 1,000 monitors, waiting for the next call each time costs more than the
        call). A death already seen is final and returned at once. Raises TimeoutError when no
        call succeeds within two call time-outs: the caller takes that as a transient fault."""
        now = time.monotonic()
        for i in ids:
            self._wanted[i] = now
        self._ensure_running()
        if self._seen_dead(ids):
            return {i: self._states.get(i, InstanceState.GONE) for i in ids}
        if max_age_s is not None and all(now - self._answered_at.get(i, -1e18) <= max_age_s for i in ids):
            return {i: self._states[i] for i in ids}
        # A call already in flight may not include ids registered after it began: wait for
        # one that answered about every id (ids the cloud does not know come back GONE).
        async with self._refreshed:
            start = self._generation
            await asyncio.wait_for(
                self._refreshed.wait_for(lambda: self._generation > start and all(i in self._states for i in ids)),
                timeout=2 * CLOUD_CALL_TIMEOUT_S + 2 * self.interval_s,
            )
        return {i: self._states[i] for i in ids}

    async def sleep_unless_dead(self, ids: list[str], seconds: float) -> bool:
        """Sleep up to `seconds`, waking early when a batched call sees one of `ids` not
        running, so a monitor that polls its node slowly still notices a preemption at once.
        True when it woke (or did not sleep) because one is not running."""
        now = time.monotonic()
        for i in ids:
            self._wanted[i] = now
        self._ensure_running()
        if self._seen_dead(ids):
            return True
        # A bare future and one timer: asyncio.wait_for would make a task per sleep, and a
        # worker sleeps 1,000 monitors at once.
        loop = asyncio.get_running_loop()
        woken: asyncio.Future[None] = loop.create_future()
        timer = loop.call_later(seconds, _wake, woken)
        for i in ids:
            self._listeners.setdefault(i, set()).add(woken)
        try:
            await woken
        finally:
            timer.cancel()
            for i in ids:
                listeners = self._listeners.get(i)
                if listeners is not None:
                    listeners.discard(woken)
                    if not listeners:
                        del self._listeners[i]
        return self._seen_dead(ids)

    def _seen_dead(self, ids: list[str]) -> bool:
        """Whether a batched call has already answered that one of `ids` is not running: a
        death is final, so callers return at once instead of waiting for the next call."""
        return any(i in self._states and not self._states[i].is_alive for i in ids)

    def _ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._loop())

    def _failed(self, why: str) -> None:
        self.failures += 1
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = self._last_logged = now
            log.warning("cloud %s: liveness call failed: %s (asking again every %gs)", self.cloud.name, why, self.interval_s)
        elif now - self._last_logged >= LOG_EVERY_S:
            self._last_logged = now
            log.warning("cloud %s: liveness calls failing for %.0fs: %s", self.cloud.name, now - self._failing_since, why)

    async def _call(self, ids: list[str]) -> dict[str, InstanceState] | None:
        """One batched call, or None if it failed (logged). A call still hung from an earlier
        round is waited for instead of starting another."""
        chunks = -(-len(ids) // CHUNK)
        if self._inflight is None or self._inflight.done():
            self._inflight = submit(_states_in_chunks, self.cloud, self.at, ids)
            self.calls += chunks
        try:
            states = await wait_call(self._inflight, "instance_states", CLOUD_CALL_TIMEOUT_S * chunks)
        except CloudError as exc:
            self._failed(str(exc))
            return None
        except Exception as exc:  # noqa: BLE001 - an adapter bug must not stop the watching
            self._failed(f"{type(exc).__name__}: {exc}")
            return None
        if self._failing_since is not None:
            log.info("cloud %s: liveness calls answer again after %.0fs", self.cloud.name,
                     time.monotonic() - self._failing_since)
            self._failing_since = None
        return states

    async def _loop(self) -> None:
        while self._wanted:
            cutoff = time.monotonic() - FORGET_AFTER_S
            for i in [i for i, t in self._wanted.items() if t < cutoff]:
                del self._wanted[i]
                self._states.pop(i, None)
                self._answered_at.pop(i, None)
            ids = list(self._wanted)
            if ids:
                states = await self._call(ids)
                if states is not None:
                    self._states.update(states)
                    answered = time.monotonic()
                    for i, state in states.items():
                        self._answered_at[i] = answered
                        if not state.is_alive:
                            for woken in self._listeners.get(i, ()):
                                _wake(woken)
                    async with self._refreshed:
                        self._generation += 1
                        self._refreshed.notify_all()
            await asyncio.sleep(self.interval_s)


def _wake(woken: asyncio.Future[None]) -> None:
    if not woken.done():
        woken.set_result(None)


class Watchers:
    """The worker's watchers, one per (cloud, region), made on first use."""

    def __init__(self, cloud_for: Callable[[str], Cloud], interval_for: Callable[[str], float]) -> None:
        self._cloud_for = cloud_for
        self._interval_for = interval_for
        self._watchers: dict[tuple[str, str], CloudWatcher] = {}

    def get(self, at: Location) -> CloudWatcher:
        key = (at.cloud, at.region)
        if key not in self._watchers:
            self._watchers[key] = CloudWatcher(self._cloud_for(at.cloud), self._interval_for(at.cloud),
                                               Location(cloud=at.cloud, region=at.region))
        return self._watchers[key]

    def calls(self, cloud_name: str) -> int:
        """Batched calls made to the cloud so far, every region together (for benchmarks)."""
        return sum(w.calls for (c, _), w in self._watchers.items() if c == cloud_name)

    def failures(self, cloud_name: str) -> int:
        return sum(w.failures for (c, _), w in self._watchers.items() if c == cloud_name)
