"""The event-loop lag probe that slows node polls while the worker is busy (loop_pressure.py):
it brakes when the loop runs late, lets go when it keeps time again, and leaves no task
behind once nothing is watched."""

from __future__ import annotations

import asyncio
import time

from spotctl.activities.deps import Deps
from spotctl.activities.loop_pressure import MAX_SLOWDOWN, LoopPressure
from spotctl.activities.watch import poll_pace_s
from spotctl.config import Settings


async def _until(check, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def test_slows_down_while_the_loop_runs_late_and_recovers() -> None:
    pressure = LoopPressure()
    pressure.watch()
    pressure.watch()  # two phases watched: one probe
    try:
        assert pressure.slowdown() == 1.0

        async def hog() -> None:  # a busy interpreter: the loop is blocked 0.3 s at a time
            for _ in range(8):
                time.sleep(0.3)
                await asyncio.sleep(0)

        await hog()
        assert pressure.slowdown() >= 4.0, pressure.lag_s
        assert pressure.slowdown() <= MAX_SLOWDOWN
        assert await _until(lambda: pressure.slowdown() == 1.0, timeout=10), pressure.lag_s
    finally:
        pressure.unwatch()
    assert pressure._probe is not None  # one phase still watched: the probe runs on
    pressure.unwatch()
    assert pressure._probe is None and pressure.slowdown() == 1.0
    await asyncio.sleep(0.01)
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "spotctl-loop-pressure"]  # all_tasks: pending ones


async def test_a_pool_jobs_exit_polls_keep_the_budgets_pace_while_the_loop_runs_late(settings: Settings) -> None:
    """A pool job's exit seen late holds a worker other jobs wait for: its polls take the node-
    poll budget's share but not the brake (watch.poll_pace_s); an ordinary job's take both."""
    deps = Deps(settings, node_polls_per_s=100.0)
    deps.watching = 50  # 50 phases share 100 polls a second: each every 0.5 s
    deps.pressure.lag_s = 10.0  # a loop running far behind: the brake at its most
    assert poll_pace_s(deps, brake=False) == 0.5
    assert poll_pace_s(deps) == 0.5 * MAX_SLOWDOWN
