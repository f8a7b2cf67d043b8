"""Heartbeats from a background task, at a fixed cadence, whatever the activity awaits.

An activity that heartbeats only between its own steps misses its heartbeat time-out as soon
as one step is slow (a cloud call, a large file copy), and is then retried while the first
try still runs. A background task beats every HEARTBEAT_EVERY_S instead; the heartbeat's
answer is also how a cancel reaches the activity (at its next await).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from temporalio import activity

HEARTBEAT_EVERY_S = 2.0
"""Well under the workflow's heartbeat time-out (models.HEARTBEAT_TIMEOUT_S)."""
HEARTBEAT_THROTTLE = timedelta(seconds=3)
"""The worker sends an activity's heartbeats to the server at most this often (Temporal's
default is 0.8 x the heartbeat time-out, 12 s here). A cancel reaches an activity only in a
heartbeat's answer, so this is how late a cancelled job stops its program, and the price is
one heartbeat call per running job per this interval."""


class Progress:
    """What the activity is doing now; sent with every heartbeat (shown in the web UI), with
    the `checkpoint` (JSON) when one is set: what a retry of the activity need not redo."""

    def __init__(self, text: str = "") -> None:
        self.text = text
        self.checkpoint: Any = None

    def __call__(self, text: str) -> None:
        self.text = text


def last_checkpoint() -> Any:
    """The checkpoint the previous try of this activity last sent (None on a first try): the
    server keeps a try's last heartbeat for the next one."""
    details = activity.info().heartbeat_details
    return details[1] if len(details) > 1 else None


@asynccontextmanager
async def heartbeating(progress: Progress | None = None, every_s: float = HEARTBEAT_EVERY_S) -> AsyncIterator[Progress]:
    """Beat every `every_s` seconds while the block runs; yields the Progress to update."""
    progress = progress or Progress()

    async def loop() -> None:
        while True:
            if progress.checkpoint is None:
                activity.heartbeat(progress.text)
            else:
                activity.heartbeat(progress.text, progress.checkpoint)
            await asyncio.sleep(every_s)

    task = asyncio.get_running_loop().create_task(loop())
    try:
        yield progress
    finally:
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
