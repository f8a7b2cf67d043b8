"""What bench/run.py measures for one N (Row) and the percentile it reports them by; below
both run.py and report.py, which share them."""

from __future__ import annotations

from dataclasses import dataclass


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
