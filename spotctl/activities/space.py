"""Out of space, in the open: a full disk on a node or under the log store is waited out with
its reason in the job's status, never retried in silence, and no output a node wrote is dropped.

A phase whose output the log store cannot take (ENOSPC, EDQUOT) is not over, even when its
exit code is on the node: it ends once the store has it all (the node keeps the bytes meanwhile;
a cancel still ends the job). A node whose agent reports a full disk (its beat says `nospace`)
goes on as before; the reason only shows. The reasons reach the job as its detail through the
workflow's `note` signal (models.NOTE_SIGNAL), sent when they change. Any other activity that
fails for want of space (a node's disk during setup, the local cloud's state) says so the same
way before Temporal tries it again (`out_of_space_noted`).
"""

from __future__ import annotations

import errno
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from temporalio import activity

from spotctl.models import NOTE_SIGNAL

NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
NODE_FULL_MARK = b"nospace"
"""What the node agent appends to its beat counter while the attempt's disk is full."""


class StoreFull(Exception):
    """The log store refused bytes for want of space; the node still holds them."""


def is_no_space(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in NO_SPACE


class Notes:
    """The problems a watched phase waits out, by key; sent to the job when their text changes."""

    def __init__(self) -> None:
        self.problems: dict[str, str] = {}
        self._sent: str | None = None

    def set(self, key: str, problem: str | None) -> None:
        if problem is None:
            self.problems.pop(key, None)
        else:
            self.problems[key] = problem

    @property
    def text(self) -> str | None:
        return "; ".join(self.problems[k] for k in sorted(self.problems)) or None

    async def publish(self) -> None:
        """Signal the job's workflow when the text changed; a failed signal is tried again at
        the next call (the text still differs from what was sent)."""
        text = self.text
        if text == self._sent:
            return
        try:
            info = activity.info()
            await activity.client().get_workflow_handle(info.workflow_id or "").signal(NOTE_SIGNAL, text)
        except Exception as exc:  # noqa: BLE001 - a note is advice: the wait goes on without it
            activity.logger.warning("could not show %r in the job's status: %s", text, exc)
            return
        self._sent = text


@asynccontextmanager
async def out_of_space_noted(where: str) -> AsyncIterator[None]:
    """Around an activity's body: an OSError for want of space shows as the job's detail
    ("no space left on device (WHERE): PATH") before it propagates, so the retries that follow
    are not silent; the job's next step replaces the detail once there is room."""
    try:
        yield
    except OSError as exc:
        if is_no_space(exc):
            notes = Notes()
            notes.set(where, f"no space left on device ({where})" + (f": {exc.filename}" if exc.filename else ""))
            await notes.publish()
        raise
