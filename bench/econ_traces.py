"""The benchmark's trace files: load, validate, name, price (bench/economics.py).

One small module so that, once spotctl/traces/ (the product's loader for the trace-driven
local cloud) is merged, the swap is one import. Same strictness: a file that is malformed,
empty, has a gap <= 0, values that are not non-negative integers, or is too large raises
TraceError with one line saying what and where; the CLI prints it and exits 2.

Format: `{"metadata": {"gap_seconds": G}, "data": [n0, n1, ...]}`, named
`ZONE_ACCELERATOR_COUNT.json` (e.g. `us-east-1a_v100_1.json`) or `ZONE_TYPE.json` for the GCP
machine-type files (`us-central1-a_c3-88.json`). Prices come from spotctl's catalog.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from spotctl.catalog import load_offerings
from spotctl.models import Offering

MAX_FILE_BYTES = 16 * 2**20
MAX_TICKS = 2_000_000
MAX_VALUE = 1_000_000
MAX_FILES = 64


class TraceError(ValueError):
    """A trace file or folder the benchmark cannot use (one line: what and where)."""


@dataclass(frozen=True)
class Trace:
    """One zone's spot trace, priced."""

    zone: str
    region: str
    cloud: str
    instance_type: str
    gap_s: int
    values: tuple[int, ...]
    spot_price: float
    ondemand_price: float

    @property
    def span_h(self) -> float:
        return len(self.values) * self.gap_s / 3600.0


def read_values(path: Path) -> tuple[int, list[int]]:
    """(gap_seconds, values) of one file, validated."""
    try:
        size = path.stat().st_size
    except OSError as e:
        raise TraceError(f"{path}: cannot read ({e.strerror})") from None
    if size > MAX_FILE_BYTES:
        raise TraceError(f"{path}: too large ({size} bytes > {MAX_FILE_BYTES})")
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TraceError(f"{path}: not a trace file (malformed JSON: {e})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("metadata"), dict) or "data" not in doc:
        raise TraceError(f'{path}: not a trace file (expected {{"metadata": {{"gap_seconds": G}}, "data": [...]}})')
    gap = doc["metadata"].get("gap_seconds")
    if isinstance(gap, bool) or not isinstance(gap, int | float) or gap != gap or gap <= 0 or gap != int(gap):
        raise TraceError(f"{path}: gap_seconds must be a whole number of seconds > 0 (got {gap!r})")
    data = doc["data"]
    if not isinstance(data, list) or not data:
        raise TraceError(f"{path}: empty trace (no data)")
    if len(data) > MAX_TICKS:
        raise TraceError(f"{path}: too many ticks ({len(data)} > {MAX_TICKS})")
    for i, v in enumerate(data):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0 or v > MAX_VALUE:
            raise TraceError(f"{path}: data[{i}] = {v!r} is not a non-negative integer (<= {MAX_VALUE})")
    return int(gap), data


NAME = re.compile(r"^(?P<zone>[a-z0-9-]+?)_(?P<acc>[A-Za-z0-9]+)_(?P<count>\d+)\.json$")
TYPE_NAME = re.compile(r"^(?P<zone>[a-z0-9-]+?)_(?P<family>[a-z][a-z0-9]*)-(?P<size>\d+)\.json$")


def _price(path: Path, offerings: list[Offering], what: str) -> Offering:
    found = [o for o in offerings if o.spot_price is not None and o.ondemand_price is not None]
    if not found:
        raise TraceError(f"{path}: the catalog has no spot and on-demand price for {what}")
    return min(found, key=lambda o: (o.ondemand_price or 0.0, o.instance_type))


def price(path: Path) -> Offering:
    """The catalog offering a file stands for: accelerator and count in the zone (AWS's
    p3.2xlarge for `v100_1`), or the instance type `FAMILY-*-SIZE` (GCP's `c3-88`)."""
    m = NAME.match(path.name)
    if m:
        zone, acc, count = m["zone"], m["acc"].lower(), int(m["count"])
        for cloud in ("aws", "gcp"):
            offs = [o for o in load_offerings(cloud) if o.zone == zone
                    and {k.lower(): n for k, n in o.accelerators.items()} == {acc: count}]
            if offs:
                return _price(path, offs, f"{acc} x{count} in {zone}")
        raise TraceError(f"{path}: the catalog cannot price it (no offering with {count} {acc} in zone {zone})")
    m = TYPE_NAME.match(path.name)
    if m:
        zone, family, size = m["zone"], m["family"], m["size"]
        for cloud in ("gcp", "aws"):
            offs = [o for o in load_offerings(cloud) if o.zone == zone
                    and o.instance_type.startswith(family + "-") and o.instance_type.endswith("-" + size)]
            if offs:
                return _price(path, offs, f"{family}-*-{size} in {zone}")
        raise TraceError(f"{path}: the catalog cannot price it (no {family}-*-{size} instance type in zone {zone})")
    raise TraceError(f"{path}: name is not ZONE_ACCELERATOR_COUNT.json (e.g. us-east-1a_v100_1.json)")


def load_trace(path: Path) -> Trace:
    gap, values = read_values(path)
    o = price(path)
    assert o.spot_price is not None and o.ondemand_price is not None
    return Trace(zone=o.zone, region=o.region, cloud=o.cloud, instance_type=o.instance_type, gap_s=gap,
                 values=tuple(values), spot_price=o.spot_price, ondemand_price=o.ondemand_price)


def load_folder(folder: Path) -> list[Trace]:
    """Every `*.json` trace of a folder (sorted by zone); all must share one gap."""
    if not folder.is_dir():
        raise TraceError(f"{folder}: no such folder of trace files")
    files = sorted(folder.glob("*.json"))
    if not files:
        raise TraceError(f"{folder}: no trace files (*.json) in it")
    if len(files) > MAX_FILES:
        raise TraceError(f"{folder}: too many trace files ({len(files)} > {MAX_FILES})")
    traces = [load_trace(f) for f in files]
    gaps = {t.gap_s for t in traces}
    if len(gaps) > 1:
        raise TraceError(f"{folder}: the files' gap_seconds differ ({sorted(gaps)}); one folder, one tick")
    if len({t.zone for t in traces}) != len(traces):
        raise TraceError(f"{folder}: two files for one zone")
    return traces
