"""Every cloud call an activity makes goes through `cloud_call`: in a thread, with a time-out.

Real cloud APIs can hang (a GCE insert, a throttled DescribeInstances); an activity that waits
on one without bound misses its heartbeats and is taken for dead. So each call gets its own
time-out, shorter than any heartbeat time-out, and a call that runs out of time is a transient
`CloudError(kind=UNAVAILABLE)` like any other network fault.

The calls run on their own thread pool: a hung call keeps its thread until the cloud answers,
and it must not starve the default pool that node I/O (log shipping, agent calls) uses.

A cancel (the user cancelled the job) does not abandon a call that may be changing the cloud
(creating a VM): the activity waits for the call to return first, up to its time-out, so the
workflow's teardown that follows sees what the call made.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from spotctl.clouds.base import CloudError, ErrorKind

T = TypeVar("T")

CLOUD_CALL_TIMEOUT_S = 10.0
"""Longest wait for one cloud API call; well under models.HEARTBEAT_TIMEOUT_S (heartbeats
come from a background task, so this bounds staleness, not liveness)."""

_POOL = ThreadPoolExecutor(max_workers=64, thread_name_prefix="spotctl-cloud")


def submit(fn: Callable[..., T], *args) -> asyncio.Future[T]:
    """Start `fn(*args)` in the cloud thread pool (for callers that track the call itself)."""
    return asyncio.get_running_loop().run_in_executor(_POOL, functools.partial(fn, *args))


async def wait_call(future: asyncio.Future[T], name: str, timeout: float = CLOUD_CALL_TIMEOUT_S) -> T:
    """The call's answer; CloudError(UNAVAILABLE) after `timeout` s (the call goes on)."""
    try:
        return await asyncio.wait_for(asyncio.shield(future), timeout)
    except TimeoutError:
        raise CloudError(f"{name} did not answer within {timeout:g}s", kind=ErrorKind.UNAVAILABLE) from None


async def cloud_call(fn: Callable[..., T], *args, timeout: float = CLOUD_CALL_TIMEOUT_S) -> T:
    """`fn(*args)` in the cloud thread pool; CloudError(UNAVAILABLE) after `timeout` s."""
    future = submit(fn, *args)
    try:
        return await wait_call(future, getattr(fn, "__name__", "cloud call"), timeout)
    except asyncio.CancelledError:
        # Let a call that may be changing the cloud finish (bounded), so what it made is
        # visible to the teardown that follows the cancel.
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout)
        except BaseException:  # noqa: BLE001 - the cancel is what matters now
            pass
        raise


THROTTLED_RETRY_S = (0.5, 1.0, 2.0, 4.0)
"""How long an idempotent call waits before it is asked again after "slow down"."""


async def patient_call(fn: Callable[..., T], *args, timeout: float = CLOUD_CALL_TIMEOUT_S) -> T:
    """`cloud_call` for idempotent calls (find, states, terminate), asked again in place when
    the cloud throttles: a throttled call did nothing, and failing the whole activity for it
    makes Temporal's backoff (up to a minute between tries) the price of one busy API."""
    for delay in THROTTLED_RETRY_S:
        try:
            return await cloud_call(fn, *args, timeout=timeout)
        except CloudError as exc:
            if exc.kind != ErrorKind.THROTTLED:
                raise
        await asyncio.sleep(delay)
    return await cloud_call(fn, *args, timeout=timeout)
