"""shielded(): await to its end whatever cancel arrives meanwhile, inside a workflow.

A job's last teardown and the hand-off of its last events must run to their end even when a
second Temporal cancel arrives while they run: each cancel is noted and the same task awaited
again. Deterministic, no I/O.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def shielded(awaitable: Awaitable[T]) -> T:
    """The result of `awaitable`, awaited to its end however often the caller is cancelled."""
    task = asyncio.ensure_future(awaitable)
    while True:
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done():
                return task.result()
