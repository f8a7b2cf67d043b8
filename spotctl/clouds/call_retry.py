"""Asking a cloud again, for commands a person waits for (`spotctl catalog refresh`).

A job's cloud calls are retried by spotctl's policy (activities, forever, with the error's kind
in hand); a CLI command cannot wait forever, so here a call that failed for a reason of the
moment (THROTTLED, UNAVAILABLE: a rate limit, a 5xx, a time-out) is asked again a few times
with a growing pause, and any other failure, or the last one, is raised as the cloud's CloudError.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from spotctl.clouds.base import CloudError
from spotctl.models import ErrorKind

__all__ = ["PAUSE_S", "TRIES", "retried"]

TRIES = 3
PAUSE_S = 1.0
"""The first pause between tries; doubled each time (1 s, 2 s)."""

T = TypeVar("T")


def retried(call: Callable[[], T], where: str, errors: tuple[type[BaseException], ...],
            to_error: Callable[[BaseException, str], CloudError]) -> T:
    """`call()`, asked again when it fails for a reason of the moment, at most TRIES times;
    raises `to_error(exc, where)` otherwise."""
    for attempt in range(TRIES):
        try:
            return call()
        except errors as exc:
            error = to_error(exc, where)
            if error.kind not in (ErrorKind.THROTTLED, ErrorKind.UNAVAILABLE) or attempt + 1 == TRIES:
                raise error from exc
        time.sleep(PAUSE_S * 2 ** attempt)
    raise AssertionError("unreachable")
