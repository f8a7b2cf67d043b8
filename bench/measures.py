"""What bench/run.py measures for one N (Row) and the percentile it reports them by, and how
every benchmark writes its own section of BENCHMARKS.md (put_section); below the scripts and
their reports, which share them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class Row:
    jobs: int
    workers: int
    rss_server_0: float
    rss_workers_0: float
    rss_server: float
    rss_workers: float
    cpu_server: float
    cpu_workers: float
    launch_s: float
    preempted: int
    detect: list[float]
    back: list[float]
    status_s: float
    status_json_s: float
    status_0_s: float
    cancel_s: float
    left: int
    load: float
    cpu_launch_server: float = 0.0
    cpu_launch_workers: float = 0.0

    @property
    def mib_per_job(self) -> float:
        return (self.rss_server + self.rss_workers - self.rss_server_0 - self.rss_workers_0) / self.jobs

    @property
    def launch_rate(self) -> float:
        return self.jobs / self.launch_s


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def put_section(section: str, begin: str, end: str, path: Path | None = None) -> None:
    """Replace a benchmark's section of BENCHMARKS.md (between its `begin` and `end` markers,
    `section` including them), or add it at the end: each script owns its section."""
    path = path or Path(__file__).resolve().parents[1] / "BENCHMARKS.md"
    text = path.read_text()
    if begin in text and end in text:
        text = text[: text.index(begin)] + section + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    path.write_text(text)
