"""Zones of the local cloud that follow a spot trace (a region's `trace:` in config.yaml).

A trace says, tick by tick, how many spot instances a zone has (docs/traces.md). The zone
behaves like it: a spot create fails with NoCapacity (zone scope, the error a real cloud's
InsufficientInstanceCapacity becomes) while the zone's value is 0 or that many spot
instances already run there; running spot instances are preempted through the ordinary
preemption path (the region's notice, SIGTERM, SIGKILL at the deadline) when the value drops
below their number, newest first: the trace counts instances, and the one that arrived last
is the one the count no longer holds. On-demand is untouched unless `ondemand: false`.

Trace time = (wall time - origin) * scale + start_s. The origin is written once, to
`trace_origin` in the cloud's directory, the first time any process needs it, so the CLI, the
worker and a restarted worker agree on the trace time without talking to each other.

Enforcement is lazy, like random preemptions: every state-reading call (the monitor's
`instance_states` poll among them, every liveness_interval_s) applies what the trace did
meanwhile. Nothing is missed between two calls: an instance is preempted if ANY tick since it
was created held fewer instances than its place in the zone (oldest first, 1-based), so a dip
shorter than the poll interval still strikes, at the next call.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING

from spotctl.clouds.base import InstanceState, NoCapacity
from spotctl.files import create_once
from spotctl.models import ErrorScope

if TYPE_CHECKING:
    from spotctl.clouds.local_config import LocalCloudConfig, TraceConfig
    from spotctl.clouds.local_instance import LocalInstance
    from spotctl.traces import Trace

ORIGIN_FILE = "trace_origin"


class TraceMixin:
    """LocalCloud's trace-following zones: the refusal of creates and the lazy preemptions."""

    root: Path
    if TYPE_CHECKING:  # provided by LocalCloud and PreemptionMixin

        def config(self) -> LocalCloudConfig: ...
        def _state(self) -> AbstractContextManager[dict[str, LocalInstance]]: ...
        def _load(self) -> dict[str, LocalInstance]: ...
        def _preempt(self, instance_ids: list[str], notice_s: float | None, wait: bool) -> None: ...

    def trace_origin(self) -> float:
        """The wall time (epoch seconds) at which every trace of this cloud is at its start_s;
        recorded by the first process that asks, read by all the others."""
        path = self.root / ORIGIN_FILE
        try:
            return float(path.read_text().strip())
        except FileNotFoundError:
            self.root.mkdir(parents=True, exist_ok=True)
            create_once(path, f"{time.time():.6f}\n".encode(), 0o644)  # one winner if several race
            return float(path.read_text().strip())

    def trace_time(self, trace: TraceConfig, at: float | None = None, origin: float | None = None) -> float:
        """Trace seconds at wall time `at` (now by default) for a region's trace."""
        wall = time.time() if at is None else at
        return (wall - (self.trace_origin() if origin is None else origin)) * trace.scale + trace.start_s

    def zone_value(self, region: str, zone: str, at: float | None = None) -> int | None:
        """Spot instances the zone's trace holds now (None: the zone follows no trace)."""
        tc = self.config().regions[region].trace if region in self.config().regions else None
        if tc is None or zone not in tc.traces:
            return None
        return tc.traces[zone].value_at(self.trace_time(tc, at))

    def _trace_refusal(self, cfg: LocalCloudConfig, region: str, zone: str, use_spot: bool,
                       instances: dict[str, LocalInstance], adding: int) -> None:
        """Raise NoCapacity when the zone's trace cannot hold `adding` more instances now.
        Called under the state lock by a create, so two creates never both take the last one."""
        rc = cfg.regions.get(region)
        tc = rc.trace if rc else None
        if tc is None or zone not in tc.traces:
            return
        if not use_spot:
            if not tc.ondemand:
                raise NoCapacity(f"no on-demand capacity in {zone} (the zone follows a trace with ondemand: false)",
                                 scope=ErrorScope.ZONE)
            return
        trace = tc.traces[zone]
        t = self.trace_time(tc)
        value = trace.value_at(t)
        running = len(_holding(instances.values(), region, zone))
        if running + adding > value:
            raise NoCapacity(f"no spot capacity in {zone} (trace: {value} at tick {trace.tick_at(t)}, "
                             f"{running} running)", scope=ErrorScope.ZONE)

    def _enforce_traces(self) -> None:
        """Preempt the spot instances the traces no longer hold (see the module docstring)."""
        try:
            cfg = self.config()
        except Exception:  # noqa: BLE001 - a broken config makes no preemption; create reports it
            return
        traced = {(name, z): rc.trace for name, rc in cfg.regions.items() if rc.trace for z in rc.trace.traces}
        if not traced:
            return
        now = time.time()
        due: list[str] = []
        by_zone: dict[tuple[str, str], list[LocalInstance]] = {}
        for inst in _holding(self._load().values()):  # lock-free peek; _preempt claims under the lock
            if (inst.region, inst.zone) in traced:
                by_zone.setdefault((inst.region, inst.zone), []).append(inst)
        origin = self.trace_origin() if by_zone else 0.0
        for (region, zone), held in by_zone.items():
            tc = traced[(region, zone)]
            trace = tc.traces[zone]
            now_tick = _absolute_tick(trace, self.trace_time(tc, now, origin))
            for place, inst in enumerate(sorted(held, key=lambda i: (i.created_at, i.id)), start=1):
                born = _absolute_tick(trace, self.trace_time(tc, inst.created_at.timestamp(), origin))
                if _lowest(trace, born + 1, now_tick) < place:
                    due.append(inst.id)
        if due:
            self._preempt(due, None, wait=False)


def _holding(instances: Iterable[LocalInstance], region: str | None = None,
             zone: str | None = None) -> list[LocalInstance]:
    """Alive spot instances not already being preempted (optionally of one zone)."""
    return [i for i in instances
            if i.use_spot and i.state.is_alive and i.state != InstanceState.PREEMPTED and i.preempt_deadline is None
            and (region is None or i.region == region) and (zone is None or i.zone == zone)]


def _absolute_tick(trace: Trace, t_s: float) -> int:
    """The tick count since the trace's start (not wrapped)."""
    return int(t_s // trace.gap_s) if t_s >= 0 else 0


def _lowest(trace: Trace, first: int, last: int) -> int:
    """The smallest value of ticks first..last (absolute, wrapping around the trace's end);
    a large number when the range is empty."""
    if last < first:
        return 1 << 30
    n = len(trace.values)
    if last - first + 1 >= n:
        return min(trace.values)
    a, b = first % n, last % n
    return min(trace.values[a:b + 1]) if a <= b else min(min(trace.values[a:]), min(trace.values[:b + 1]))
