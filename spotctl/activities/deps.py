"""What every activity needs: settings, the log store and the clouds. Built once per worker."""

from __future__ import annotations

from dataclasses import dataclass, field

from spotctl.activities.loop_pressure import LoopPressure
from spotctl.activities.watcher import Watchers
from spotctl.clouds.base import Cloud
from spotctl.clouds.registry import get_cloud
from spotctl.config import Settings
from spotctl.fleet import FleetStore, open_fleet
from spotctl.storage.log_store import open_log_store
from spotctl.storage.log_store_base import LogStore


@dataclass
class Deps:
    settings: Settings
    poll_interval_s: float = 0.5
    """How often a running phase that prints is polled for new log bytes and its exit."""
    max_poll_interval_s: float = 2.0
    """The slowest poll of a phase that prints nothing (its exit is seen at most this late)."""
    lost_check_interval_s: float = 5.0
    """How often a running phase's supervisor beat is read, to notice a vanished program."""
    node_polls_per_s: float | None = None
    """The most node polls a second this worker makes, all phases together (None: the
    setting worker.node_polls_per_s): with many jobs each is polled less often, so the
    worker's cost stays flat; preemptions are still seen at once (the batched watcher)."""
    watching: int = 0
    """Phases being waited for right now (set by watch.wait_for_phase)."""
    pressure: LoopPressure = field(default_factory=LoopPressure)
    """How late this worker's event loop runs: node polls slow down by it (loop_pressure.py)."""
    _clouds: dict[str, Cloud] = field(default_factory=dict)
    watchers: Watchers = field(init=False)

    def __post_init__(self) -> None:
        if self.node_polls_per_s is None:
            self.node_polls_per_s = self.settings.worker.node_polls_per_s
        self.watchers = Watchers(self.cloud, lambda name: self.cloud(name).liveness_interval_s)

    @property
    def fleet(self) -> FleetStore:
        """The fleet's memory (spotctl/fleet/): a path, opened per call."""
        return open_fleet(self.settings)

    @property
    def logs(self) -> LogStore:
        return open_log_store(self.settings)

    def cloud(self, name: str) -> Cloud:
        if name not in self._clouds:
            self._clouds[name] = get_cloud(name, self.settings)
        return self._clouds[name]

    def clouds_with_credentials(self) -> list[Cloud]:
        """The enabled clouds this worker has credentials for (one without cannot hold
        anything spotctl made, and asking it would only fail); all enabled ones, usable or
        not, are clouds.registry.enabled_clouds."""
        return [c for c in (self.cloud(name) for name in self.settings.clouds) if c.check() is None]
