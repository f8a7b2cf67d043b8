"""Settings (shared): config.yaml and the SPOTCTL_* environment, read once into a typed `Settings`;
the notify block's checks.
"""

from spotctl.config.settings import (
    ConfigError,
    Settings,
    TLSConfig,
    WorkerConfig,
    default_home,
    load_settings,
    secure_home,
)

__all__ = [
    "ConfigError",
    "Settings",
    "TLSConfig",
    "WorkerConfig",
    "default_home",
    "load_settings",
    "secure_home",
]
