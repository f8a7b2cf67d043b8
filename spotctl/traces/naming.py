"""Trace file names: `ZONE_ACCELERATOR_COUNT.json` (`us-east-1a_v100_1.json`), or
`ZONE_TYPETOKEN.json` without a count (GCP's `us-central1-a_c3-88.json`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from spotctl.traces.errors import TraceError

_ZONE = re.compile(r"^[a-z][a-z0-9-]{1,60}[a-z0-9]$")
_TOKEN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,40}$")


@dataclass(frozen=True)
class TraceName:
    """What a trace file's name says: where it was measured and on what."""

    zone: str
    token: str
    """The accelerator (`v100`) or, without a count, a machine type's token (`c3-88`)."""
    count: int | None
    """Accelerators per instance; None when the token names a machine type."""

    @property
    def region(self) -> str:
        """The region by the zone's name: `us-east-1a` -> `us-east-1` (AWS: a trailing
        letter), `us-central1-a` -> `us-central1` (GCP: `-` and a letter)."""
        return region_of_zone(self.zone)


def region_of_zone(zone: str) -> str:
    m = re.fullmatch(r"(.+?)-?[a-z]", zone)
    return m.group(1) if m else zone


def parse_name(path: str | Path) -> TraceName:
    """Parse a trace file's name; raises TraceError naming the file when it does not fit."""
    p = Path(path)
    if p.suffix != ".json":
        raise TraceError(f"{p}: a trace file's name must end in .json (ZONE_ACCELERATOR_COUNT.json)")
    parts = p.stem.split("_")
    count: int | None = None
    if len(parts) == 3 and parts[2].isdigit():
        count = int(parts[2])
        if not 1 <= count <= 64:
            raise TraceError(f"{p}: accelerator count {count} in the name is not in 1..64")
        parts = parts[:2]
    if len(parts) != 2 or not _ZONE.match(parts[0]) or not _TOKEN.match(parts[1]):
        raise TraceError(f"{p}: the name must be ZONE_ACCELERATOR_COUNT.json (e.g. us-east-1a_v100_1.json) "
                         f"or ZONE_TYPE.json (e.g. us-central1-a_c3-88.json)")
    return TraceName(zone=parts[0], token=parts[1], count=count)
