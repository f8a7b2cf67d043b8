"""Loading trace files: `{"metadata": {"gap_seconds": G}, "data": [n0, n1, ...]}`, bounded.

A trace is input from outside (a folder anyone can point the benchmark or the local cloud
at), so every dimension has a bound and every violation is one `TraceError` line that names
the file and what is wrong: the CLI and the benchmark print it and exit 2, the local cloud
turns it into its own one-line config error.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from spotctl.traces.errors import TraceError
from spotctl.traces.naming import TraceName, parse_name

MAX_FILE_BYTES = 32 * 1024 * 1024
"""The shipped files are under 100 kB; a month at a 1 s tick is ~10 MB of JSON."""
MAX_VALUE = 100_000
"""Spot instances that could be had in one zone at one tick (the shipped files hold 0..16)."""
MAX_GAP_S = 86_400.0
"""At most a day between ticks."""
MAX_FILES = 1_000
"""Trace files read from one folder."""


@dataclass(frozen=True)
class Trace:
    """One zone's spot capacity, tick by tick."""

    path: Path
    name: TraceName | None
    """What the file's name says; None for a file loaded without a trace name (the local cloud
    names each trace's zone in its config)."""
    gap_s: float
    values: tuple[int, ...]

    @property
    def zone(self) -> str:
        return self.name.zone if self.name else ""

    @property
    def span_s(self) -> float:
        return self.gap_s * len(self.values)

    def tick_at(self, t_s: float) -> int:
        """The tick that holds trace time `t_s` (seconds from the trace's start), wrapping
        around at the end so a clock running past the trace keeps a defined value."""
        return int(t_s // self.gap_s) % len(self.values) if t_s >= 0 else 0

    def value_at(self, t_s: float) -> int:
        """Spot instances that can be had at trace time `t_s`."""
        return self.values[self.tick_at(t_s)]


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def load_trace(path: str | os.PathLike[str], *, named: bool = True) -> Trace:
    """Read and check one trace file; raises TraceError (one line naming the file). `named`:
    its name must say its zone and accelerator (ZONE_ACCELERATOR_COUNT.json)."""
    p = Path(path)
    name = parse_name(p) if named else None  # a name that says nothing is refused before reading
    try:
        size = p.stat().st_size
        if size > MAX_FILE_BYTES:
            raise TraceError(f"{p}: {size} bytes, more than the {MAX_FILE_BYTES} a trace file may have")
        with open(p, "rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise TraceError(f"{p}: cannot read: {_one_line(exc.strerror or exc)}") from exc
    if len(raw) > MAX_FILE_BYTES:
        raise TraceError(f"{p}: more than the {MAX_FILE_BYTES} bytes a trace file may have")
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise TraceError(f"{p}: not valid JSON: {_one_line(exc)}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("metadata"), dict) or "data" not in doc:
        raise TraceError(f'{p}: expected {{"metadata": {{"gap_seconds": G}}, "data": [n0, n1, ...]}}')
    gap = doc["metadata"].get("gap_seconds")
    if isinstance(gap, bool) or not isinstance(gap, int | float) or gap != gap:
        raise TraceError(f"{p}: metadata.gap_seconds must be a number of seconds, got {gap!r:.40}")
    if not 0 < gap <= MAX_GAP_S:
        raise TraceError(f"{p}: metadata.gap_seconds must be > 0 and <= {MAX_GAP_S:g}, got {gap:g}")
    data = doc["data"]
    if not isinstance(data, list):
        raise TraceError(f"{p}: data must be a list of counts, got {type(data).__name__}")
    if not data:
        raise TraceError(f"{p}: data is empty (no tick)")
    for i, v in enumerate(data):
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= MAX_VALUE:
            raise TraceError(f"{p}: data[{i}] must be a whole number in 0..{MAX_VALUE}, got {v!r:.40}")
    return Trace(path=p, name=name, gap_s=float(gap), values=tuple(data))


def load_folder(folder: str | os.PathLike[str]) -> list[Trace]:
    """Every `*.json` trace of a folder (not its subfolders), by zone; raises TraceError for a
    folder that is missing or holds none, or for the first bad file."""
    d = Path(folder)
    if not d.is_dir():
        raise TraceError(f"{d}: not a folder of trace files")
    files = sorted(f for f in d.glob("*.json") if f.is_file())
    if not files:
        raise TraceError(f"{d}: no trace file (*.json) in the folder")
    if len(files) > MAX_FILES:
        raise TraceError(f"{d}: {len(files)} trace files, more than the {MAX_FILES} one folder may have")
    traces = [load_trace(f) for f in files]
    seen: dict[str, Path] = {}
    for t in traces:
        if t.zone in seen:
            raise TraceError(f"{t.path}: a second trace of zone {t.zone} (also {seen[t.zone].name})")
        seen[t.zone] = t.path
    return traces
