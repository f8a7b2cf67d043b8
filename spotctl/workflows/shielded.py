"""shielded() and until_done(): await to its end whatever cancel arrives meanwhile, inside a workflow.

A job's last teardown and the hand-off of its last events must run to their end even when a
second Temporal cancel arrives while they run: each cancel is noted and the same task awaited
again. A cancelled activity (a job's) or task workflow (a pipeline's) is waited for until it
has stopped the same way, so the teardown after it finds everything it made.
Deterministic, no I/O.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Protocol, TypeVar

from temporalio import workflow

T = TypeVar("T")


class Ending(Protocol):
    """What until_done waits for: an activity's or a child workflow's handle."""

    def done(self) -> bool: ...


async def shielded(awaitable: Awaitable[T]) -> T:
    """The result of `awaitable`, awaited to its end however often the caller is cancelled."""
    task = asyncio.ensure_future(awaitable)
    while True:
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done():
                return task.result()


async def until_done(handle: Ending) -> None:
    """Wait until `handle` is done, however often the caller is cancelled meanwhile."""
    while not handle.done():
        try:
            await workflow.wait_condition(handle.done)
        except asyncio.CancelledError:
            continue
