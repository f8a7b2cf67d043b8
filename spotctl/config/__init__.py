"""Settings (shared): config.yaml and the SPOTCTL_* environment, read once into a typed `Settings`
through one table of every setting (table.py: variable, key, type, bounds, default, meaning;
kinds.py: one parser per type); the notify block's checks.
"""

from spotctl.config.settings import (
    Settings,
    TLSConfig,
    WorkerConfig,
    default_home,
    load_settings,
    secure_home,
)
from spotctl.config.table import SETTINGS, ConfigError, Setting, default, env_value

__all__ = [
    "SETTINGS",
    "ConfigError",
    "Setting",
    "Settings",
    "TLSConfig",
    "WorkerConfig",
    "default",
    "default_home",
    "env_value",
    "load_settings",
    "secure_home",
]
