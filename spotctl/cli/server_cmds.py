"""spotctl server start|stop|status and spotctl worker."""

from __future__ import annotations

import asyncio
import json
import logging

import click

from spotctl.cli.common import console, err_console, fail, settings
from spotctl.server import EmbeddedServer, ServerError


@click.group()
def server() -> None:
    """Manage the embedded Temporal server and worker (used when no address is configured)."""


def _embedded() -> EmbeddedServer:
    s = settings()
    if not s.uses_embedded_server:
        fail(f"a Temporal address is configured ({s.temporal_address}); the embedded server is not used", 2)
    return EmbeddedServer(s)


@server.command("start")
def server_start() -> None:
    """Start the server and worker in the background, under a supervisor that restarts them
    (a no-op if they run)."""
    srv = _embedded()
    try:
        started = srv.ensure_running(notify=lambda m: err_console.print(f"[dim]{m}[/dim]"))
    except ServerError as exc:
        fail(str(exc), 1)
    st = srv.status()
    console.print(f"{'Started' if started else 'Already running'}: Temporal at {st['address']}, "
                  f"web UI {st['ui']}, state in {st['state_dir']}")


@server.command("stop")
def server_stop() -> None:
    """Stop the supervisor, the worker and the server; nothing is left running. Running jobs
    resume when they start again (the next launch, status, logs or cancel starts them)."""
    stopped = _embedded().stop()
    console.print(f"Stopped: {', '.join(stopped)}" if stopped else "Nothing was running.")


@server.command("status")
@click.option("--json", "as_json", is_flag=True,
              help="Machine-readable output: a JSON object of the pids (null: not running), address, UI and state dir.")
def server_status(as_json: bool) -> None:
    """Show whether the supervisor, server and worker run, and where (starts nothing)."""
    st = _embedded().status()
    if as_json:
        console.print_json(json.dumps(st))
        return
    for key, value in st.items():
        console.print(f"{key:>12}: {value if value is not None else 'not running'}")


@click.command()
def worker() -> None:
    """Run a worker in the foreground against the configured Temporal."""
    from spotctl.worker import run_worker

    s = settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    err_console.print(f"Worker for {s.temporal_address} (namespace {s.temporal.namespace}); Ctrl-C stops it.")
    try:
        asyncio.run(run_worker(s))
    except RuntimeError as exc:
        fail(f"cannot run the worker against {s.temporal_address}: {exc}", 1)
