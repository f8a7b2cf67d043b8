"""What every activity needs: settings, the log store and the clouds. Built once per worker."""

from __future__ import annotations

from dataclasses import dataclass, field

from spotctl.clouds.base import Cloud
from spotctl.clouds.registry import get_cloud
from spotctl.config import Settings
from spotctl.storage.log_store import LogStore


@dataclass
class Deps:
    settings: Settings
    poll_interval_s: float = 0.5
    """How often a running phase is polled for new log bytes and its exit."""
    liveness_interval_s: float = 3.0
    """How often the cloud is asked whether the instances are still alive while a phase runs."""
    _clouds: dict[str, Cloud] = field(default_factory=dict)

    @property
    def logs(self) -> LogStore:
        return LogStore(self.settings.logs_dir)

    def cloud(self, name: str) -> Cloud:
        if name not in self._clouds:
            self._clouds[name] = get_cloud(name, self.settings)
        return self._clouds[name]

    def enabled_clouds(self) -> list[Cloud]:
        return [self.cloud(name) for name in self.settings.clouds]
