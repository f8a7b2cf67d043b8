"""The Temporal runtime spotctl's clients use: core (Rust) logs go to Python logging.

The SDK's default runtime prints core's log lines (e.g. a WARN about a payload above 512 KB)
straight onto the process's stdout, where they break scripts that read `spotctl launch -d`'s
job id. Forwarded to the `temporalio.core` Python logger instead, they end on stderr (through
logging's last-resort handler, or the worker's configured handlers) and stdout carries only
what spotctl prints on purpose.
"""

from __future__ import annotations

import logging

from temporalio.runtime import LogForwardingConfig, LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter

CORE_LOGGER = logging.getLogger("temporalio.core")

_runtime: Runtime | None = None


def spotctl_runtime() -> Runtime:
    """One runtime per process (each runtime owns native threads), created on first use."""
    global _runtime
    if _runtime is None:
        _runtime = Runtime(telemetry=TelemetryConfig(logging=LoggingConfig(
            filter=TelemetryFilter(core_level="WARN", other_level="ERROR"),
            forwarding=LogForwardingConfig(logger=CORE_LOGGER),
        )))
    return _runtime
