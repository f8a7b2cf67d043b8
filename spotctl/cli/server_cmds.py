"""spotctl server start|stop|status, spotctl worker and spotctl codec-server."""

from __future__ import annotations

import asyncio
import json
import logging

import click

from spotctl.cli.common import console, err_console, fail, settings
from spotctl.codec import CodecKeyError
from spotctl.embedded import EmbeddedServer, ServerError


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
    except CodecKeyError as exc:
        fail(str(exc), 2)
    except ServerError as exc:
        fail(str(exc), 1)
    st = srv.status()
    console.print(f"{'Started' if started else 'Already running'}: Temporal at {st['address']}, "
                  f"web UI {st['ui']}, state in {st['state_dir']}")


@server.command("stop")
def server_stop() -> None:
    """Stop the supervisor, the worker and the server. Running jobs' programs and instances
    keep running (on a real cloud, billing) unwatched; the jobs resume when these start again
    (the next launch, status, logs or cancel starts them). `spotctl cancel -a -y` first ends them."""
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
    """Run a worker in the foreground against the configured Temporal.

    SIGTERM (or Ctrl-C) drains it: it stops taking work, hands its running monitors to the
    other workers at once and gives other running steps worker.drain_timeout_s (30 s) to
    finish. Prometheus metrics: set worker.metrics_port (SPOTCTL_METRICS_PORT)."""
    from spotctl.worker import EXIT_UNREACHABLE, TemporalUnreachable, exit_now, run_worker

    s = settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    err_console.print(f"Worker for {s.temporal_address} (namespace {s.temporal.namespace}); Ctrl-C stops it.")
    try:
        asyncio.run(run_worker(s))
    except CodecKeyError as exc:
        fail(str(exc), 2)
    except TemporalUnreachable as exc:  # one line and exit 3, never an abort from the core's threads
        err_console.print(f"Error: {exc}", markup=False, soft_wrap=True)
        exit_now(EXIT_UNREACHABLE)
    except RuntimeError as exc:
        fail(f"cannot run the worker against {s.temporal_address}: {exc}", 1)


@click.command("codec-server")
@click.option("--port", type=click.IntRange(1, 65535), default=8081, show_default=True,
              help="Port to serve /encode and /decode on.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind (0.0.0.0 in a container whose port is published on 127.0.0.1).")
@click.option("--ui-port", type=click.IntRange(1, 65535), default=8080, show_default=True,
              help="The web UI's port: only http://127.0.0.1:<ui-port> and http://localhost:<ui-port> may call it.")
def codec_server(port: int, host: str, ui_port: int) -> None:
    """Serve the web UI's codec endpoint on its own (deploy/: the UI of a Temporal cluster
    shows readable payloads). It decrypts with this machine's codec key, and answers a browser
    that reaches the UI and this endpoint at 127.0.0.1 or localhost only (e.g. through a tunnel);
    bound to loopback, only connections of the user that runs it."""
    import signal
    import threading

    from spotctl.codec import EncryptionCodec, load_key, serve_codec

    s = settings()
    try:
        codec = EncryptionCodec(load_key(s.home))
    except CodecKeyError as exc:
        fail(str(exc), 2)
    try:
        server = serve_codec(codec, port, ui_port, host)
    except OSError as exc:
        fail(f"cannot serve the codec endpoint on {host}:{port}: {exc.strerror}", 1)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    err_console.print(f"Codec endpoint on http://{host}:{server.port} for the web UI at http://127.0.0.1:{ui_port}; "
                      "Ctrl-C stops it.")
    stop.wait()
    server.stop()
