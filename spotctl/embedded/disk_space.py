"""Whether the state dir's disk has room: with the embedded default, the Temporal database, the
local cloud and the log store live there, and on a full disk they cannot record progress.
Running jobs then wait (nothing is lost) but look stuck, so `status` says why."""

from __future__ import annotations

import shutil

from spotctl.config import Settings

LOW_SPACE_BYTES = 32 * 1024 * 1024
"""Below this much free space the embedded server's database may fail its next write."""


def low_space_note(settings: Settings) -> str | None:
    """One line for `status` when the state dir's disk is (nearly) full, else None."""
    try:
        free = shutil.disk_usage(settings.home).free
    except OSError:
        return None
    if free >= LOW_SPACE_BYTES:
        return None
    what = "the embedded Temporal server, the local cloud and the log store" if settings.uses_embedded_server \
        else "the local cloud and the log store"
    return (f"the state dir's disk is full ({free // 1024} KiB free under {settings.home}): {what} cannot record "
            "progress there; running jobs wait (nothing is lost) until there is room.")
