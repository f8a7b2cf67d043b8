"""The benchmark's trace folders (bench/economics.py): each file loaded, checked, named and
priced by spotctl.traces (the product's one loader, also the trace-driven local cloud's),
then held as a priced `Trace` for the replay.

What is the benchmark's own: a folder's files must share one tick (the replay steps all zones
together), and a folder and a file have the benchmark's bounds (MAX_FILES, MAX_TICKS: the
replay's memory and time). A bad file or folder raises spotctl.traces.TraceError, one line
saying what and where; the CLI prints it and exits 2.

Format: `{"metadata": {"gap_seconds": G}, "data": [n0, n1, ...]}`, named
`ZONE_ACCELERATOR_COUNT.json` (e.g. `us-east-1a_v100_1.json`) or `ZONE_TYPE.json` for the GCP
machine-type files (`us-central1-a_c3-88.json`); docs/traces.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from spotctl import traces as product
from spotctl.traces import TraceError

__all__ = ["MAX_FILES", "MAX_TICKS", "Trace", "TraceError", "load_folder"]

MAX_TICKS = 2_000_000
"""Ticks per file the replay takes (the shipped files have a few thousand)."""
MAX_FILES = 64
"""Trace files per folder the replay takes."""


@dataclass(frozen=True)
class Trace:
    """One zone's spot trace, priced."""

    zone: str
    region: str
    cloud: str
    instance_type: str
    gap_s: int | float
    values: tuple[int, ...]
    spot_price: float
    ondemand_price: float

    @property
    def span_h(self) -> float:
        return len(self.values) * self.gap_s / 3600.0


def _priced(t: product.Trace) -> Trace:
    if len(t.values) > MAX_TICKS:
        raise TraceError(f"{t.path}: too many ticks for the replay ({len(t.values)} > {MAX_TICKS})")
    o = product.price_trace(t)
    assert o.spot_price is not None and o.ondemand_price is not None  # price_trace offers only priced ones
    gap = int(t.gap_s) if t.gap_s == int(t.gap_s) else t.gap_s
    return Trace(zone=o.zone, region=o.region, cloud=o.cloud, instance_type=o.instance_type, gap_s=gap,
                 values=t.values, spot_price=o.spot_price, ondemand_price=o.ondemand_price)


def load_folder(folder: Path) -> list[Trace]:
    """Every `*.json` trace of a folder (sorted by zone), priced; all must share one gap."""
    if Path(folder).is_dir() and len(list(Path(folder).glob("*.json"))) > MAX_FILES:
        raise TraceError(f"{folder}: too many trace files for the replay (more than {MAX_FILES})")
    traces = sorted((_priced(t) for t in product.load_folder(folder)), key=lambda t: t.zone)
    gaps = {t.gap_s for t in traces}
    if len(gaps) > 1:
        raise TraceError(f"{folder}: the files' gap_seconds differ ({sorted(gaps)}); one folder, one tick")
    return traces
