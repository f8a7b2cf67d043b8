"""How far behind its clock the worker's event loop runs, so log shipping yields to control.

A worker with 1,000 running jobs spends most of its CPU on node polls (new log lines and
exit codes, `worker.node_polls_per_s`). When preemptions come in a burst, the same interpreter
must also record them, tear down and relaunch; with polls at full pace those wait behind them
(BENCHMARKS.md: detection at N = 1,000). A preemption is seen by the batched liveness call,
not by node polls, so polls can slow down without a job losing anything but log latency
(but for a pool job, whose exit seen late holds a worker other jobs wait for: its polls keep
the budget's pace, watch.poll_pace_s).

A probe sleeps a quarter second at a time and measures how late it wakes (asyncio's
scheduling lag, which grows when the interpreter is busy: every activity and every workflow
task of this process competes for it). `slowdown()` is 1 while the loop keeps time and grows
with the lag, up to MAX_SLOWDOWN; node polls stretch their pace by it. The probe runs only
while some phase is watched.
"""

from __future__ import annotations

import asyncio

PROBE_S = 0.25
CALM_LAG_S = 0.02
"""A lag under this is noise (timer granularity, a GC pause): full pace."""
MAX_SLOWDOWN = 8.0
"""Polls never slow more than this (1,000 jobs: each polled every 40 s instead of 5 s at most)."""
SMOOTHING = 0.3
"""Weight of the newest sample in the moving average: a single slow tick does not brake."""


class LoopPressure:
    """The event loop's lag, measured while something needs it (`watching`)."""

    def __init__(self) -> None:
        self.lag_s = 0.0
        self._users = 0
        self._probe: asyncio.Task | None = None

    def slowdown(self) -> float:
        """1 when the loop keeps time; up to MAX_SLOWDOWN as it falls behind."""
        return min(MAX_SLOWDOWN, max(1.0, self.lag_s / CALM_LAG_S))

    def watch(self) -> None:
        """One more user: start the probe with the first."""
        self._users += 1
        if self._probe is None or self._probe.done():
            self._probe = asyncio.get_running_loop().create_task(self._measure(), name="spotctl-loop-pressure")

    def unwatch(self) -> None:
        """One user fewer: stop the probe with the last (a worker with nothing to watch must
        not keep a task, and a stopping worker must not find one pending)."""
        self._users = max(0, self._users - 1)
        if self._users == 0 and self._probe is not None:
            self._probe.cancel()
            self._probe = None
            self.lag_s = 0.0

    async def _measure(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(PROBE_S)
            late = max(0.0, loop.time() - start - PROBE_S)
            self.lag_s = (1 - SMOOTHING) * self.lag_s + SMOOTHING * late
