"""The Temporal runtime spotctl's clients use: core (Rust) logs go to Python logging.

The SDK's default runtime prints core's log lines (e.g. a WARN about a payload above 512 KB)
straight onto the process's stdout, where they break scripts that read `spotctl launch -d`'s
job id. Forwarded to the `temporalio.core` Python logger instead, they end on stderr (through
logging's last-resort handler, or the worker's configured handlers) and stdout carries only
what spotctl prints on purpose.

A worker may also serve the SDK's metrics for Prometheus (worker.metrics_port): the runtime
owns that endpoint, so the worker asks for it before anything connects.
"""

from __future__ import annotations

import logging

from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    PrometheusConfig,
    Runtime,
    TelemetryConfig,
    TelemetryFilter,
)

CORE_LOGGER = logging.getLogger("temporalio.core")

_runtime: Runtime | None = None
_metrics_address: str | None = None


def spotctl_runtime(metrics_address: str | None = None) -> Runtime:
    """One runtime per process (each runtime owns native threads), created on first use;
    with `metrics_address` (host:port) it serves Prometheus metrics at /metrics there. Asking
    for metrics after the runtime was made without them is a programming error."""
    global _runtime, _metrics_address
    if _runtime is None:
        _runtime = Runtime(telemetry=TelemetryConfig(
            logging=LoggingConfig(
                filter=TelemetryFilter(core_level="WARN", other_level="ERROR"),
                forwarding=LogForwardingConfig(logger=CORE_LOGGER),
            ),
            metrics=PrometheusConfig(bind_address=metrics_address) if metrics_address else None,
        ))
        _metrics_address = metrics_address
    elif metrics_address and metrics_address != _metrics_address:
        raise RuntimeError(f"the Temporal runtime already runs with metrics at {_metrics_address}, not {metrics_address}")
    return _runtime
