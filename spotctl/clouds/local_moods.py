"""The local cloud's moods: API latency, throttling, hangs and a cap on concurrent calls.

Real cloud APIs answer in hundreds of milliseconds, throttle bursts (RequestLimitExceeded),
sometimes hang until the client gives up, and limit how many calls may be in flight. The
local cloud answers in milliseconds, so without this nothing would exercise spotctl's
time-outs, back-off and error handling before a real cloud did. Each region's settings
(local_config.RegionConfig) are applied around the Cloud-protocol calls only, in a fixed
order: take a concurrency slot, wait the latency, maybe hang, maybe throttle, then do the
call. A hang or a throttle fails *before* the call's effect, so a failed call changed nothing.

The concurrency cap is shared by every process using the cloud (the CLI and the workers):
a region with `max_concurrent_api_calls: N` has N slot files under `<cloud dir>/api_slots/`,
and a call holds a non-blocking flock on one of them for its whole duration (latency and
hang included). No free slot means Throttled at once, as a real cloud does.
"""

from __future__ import annotations

import fcntl
import os
import random
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from spotctl.clouds.base import CloudError, ErrorKind, Throttled
from spotctl.clouds.local_config import RegionConfig


@dataclass(frozen=True)
class Mood:
    """The effective moodiness of one call: the worst over the regions it touches."""

    latency_s: float = 0.0
    throttle_rate: float = 0.0
    hang_s: float = 0.0
    hang_rate: float = 0.0
    caps: dict[str, int] = field(default_factory=dict)
    """Region -> max concurrent calls, for the touched regions that set a cap."""

    @classmethod
    def worst(cls, call: str, regions: dict[str, RegionConfig]) -> Mood:
        """Max latency, max rates, the longest hang of the regions where this call may hang,
        and every touched region's cap (a call takes a slot in each)."""
        if not regions:
            return cls()
        hanging = [r for r in regions.values() if r.api_hang_rate > 0 and r.api_hang_s > 0
                   and (r.api_hang_calls is None or call in r.api_hang_calls)]
        return cls(
            latency_s=max(r.api_latency_s for r in regions.values()),
            throttle_rate=max(r.throttle_rate for r in regions.values()),
            hang_s=max((r.api_hang_s for r in hanging), default=0.0),
            hang_rate=max((r.api_hang_rate for r in hanging), default=0.0),
            caps={name: r.max_concurrent_api_calls for name, r in regions.items()
                  if r.max_concurrent_api_calls is not None},
        )


def _strikes(rate: float) -> bool:
    """True with probability `rate`; rate 0 never draws (and never strikes), rate 1 always."""
    return rate > 0 and random.random() < rate


@contextmanager
def moody_call(call: str, where: str, mood: Mood, slots_dir: Path) -> Iterator[None]:
    """Apply `mood` around the body (the call's effect); `where` names the regions in errors."""
    with _slots(call, where, mood.caps, slots_dir):
        if mood.latency_s > 0:
            time.sleep(mood.latency_s)
        if _strikes(mood.hang_rate):
            time.sleep(mood.hang_s)
            raise CloudError(f"local cloud {call} in {where} timed out after {mood.hang_s:g}s (simulated hang)",
                             kind=ErrorKind.UNAVAILABLE)
        if _strikes(mood.throttle_rate):
            raise Throttled(f"local cloud {call} in {where}: RequestLimitExceeded (simulated)")
        yield


def _safe(region: str) -> str:
    """A region name as a directory name (config keys are free-form strings)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", region) or "_"


@contextmanager
def _slots(call: str, where: str, caps: dict[str, int], slots_dir: Path) -> Iterator[None]:
    """Hold one free slot of every capped region for the body, or raise Throttled at once.

    flock locks belong to the open file, so two threads of one process compete like two
    processes do; a crashed holder's lock goes with its process."""
    held: list[int] = []
    try:
        for region, cap in sorted(caps.items()):
            fd = _take_slot(slots_dir / _safe(region), cap)
            if fd is None:
                raise Throttled(f"local cloud {call} in {where}: RequestLimitExceeded (simulated: more than "
                                f"{cap} concurrent API calls in {region})")
            held.append(fd)
        yield
    finally:
        for fd in held:
            os.close(fd)  # releases the flock


def _take_slot(region_dir: Path, cap: int) -> int | None:
    """An fd holding the flock of a free slot file of the region, or None when all are busy."""
    region_dir.mkdir(parents=True, exist_ok=True)
    for n in range(cap):
        fd = os.open(region_dir / f"slot-{n}", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return fd
    return None

