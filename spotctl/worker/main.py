"""The worker: one process that runs spotctl's workflows and activities.

Many can run against one Temporal (on many machines); each polls the same task queue.
`python -m spotctl.worker` runs one in the foreground; the embedded server starts one in
the background the same way.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NoReturn

from temporalio.client import Client

from spotctl.activities import all_activities
from spotctl.activities.deps import Deps
from spotctl.client import connect, ensure_search_attributes, spotctl_runtime
from spotctl.codec import CodecKeyError, CodecServer, EncryptionCodec, load_key, serve_codec
from spotctl.config import ConfigError, Settings, load_settings, secure_home
from spotctl.models import TASK_QUEUE
from spotctl.notify import callback_cgroups
from spotctl.worker.pool import job_workers, running
from spotctl.worker.sweeper import start_sweeper, stop_sweeper
from spotctl.workflows import ALL_WORKFLOWS

log = logging.getLogger("spotctl.worker")


EXIT_UNREACHABLE = 3
"""How a worker exits when Temporal stayed unreachable for worker.connect_timeout_s (one line
logged): its supervisor starts it again; exit 2 is kept for settings that will never work."""


class TemporalUnreachable(Exception):
    """Temporal did not answer for the worker's whole connect timeout; the message is one line."""


async def connect_with_retry(settings: Settings, give_up_after_s: float | None = None) -> Client:
    """Connect, retrying while the server is still starting (or briefly away), so a worker
    started together with its server does not die of being first."""
    give_up_after_s = settings.worker.connect_timeout_s if give_up_after_s is None else give_up_after_s
    deadline = time.monotonic() + give_up_after_s
    delay = 0.2
    while True:
        try:
            return await connect(settings)
        except RuntimeError as exc:
            if time.monotonic() + delay > deadline:
                raise TemporalUnreachable(f"cannot reach Temporal at {settings.temporal_address} after "
                                          f"{give_up_after_s:.0f}s ({_first_line(exc)}); exiting") from exc
            log.warning("cannot reach Temporal at %s (%s); retrying in %.1fs", settings.temporal_address, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


def _first_line(exc: BaseException, limit: int = 300) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:limit]


def serves_embedded_ui(settings: Settings) -> bool:
    """True when this worker talks to the embedded server (embedded/server.py starts its worker with the
    embedded address set explicitly), whose web UI decodes payloads through this worker."""
    embedded = f"127.0.0.1:{settings.embedded.port}"
    return settings.embedded.codec_port > 0 and (settings.uses_embedded_server or settings.temporal_address == embedded)


def start_codec_server(client: Client, settings: Settings) -> CodecServer | None:
    """Serve the UI's codec endpoint if this worker belongs to the embedded server. Another worker
    of the same server may already serve it (the port is taken): then this one does not."""
    codec = client.data_converter.payload_codec
    if not isinstance(codec, EncryptionCodec) or not serves_embedded_ui(settings):
        return None
    try:
        server = serve_codec(codec, settings.embedded.codec_port, settings.embedded.ui_port)
    except OSError as exc:
        log.info("not serving the UI codec endpoint on 127.0.0.1:%d (%s)", settings.embedded.codec_port, exc.strerror)
        return None
    log.info("UI codec endpoint on http://127.0.0.1:%d", server.port)
    return server


def serve_metrics(settings: Settings) -> None:
    """Start the Prometheus endpoint (worker.metrics_port) before anything connects: the
    Temporal runtime that every client of this process shares serves it."""
    address = settings.worker.metrics_address
    if address is None:
        return
    try:
        spotctl_runtime(address)
    except Exception as exc:  # the core raises a plain RuntimeError for a taken port
        raise RuntimeError(f"cannot serve metrics on {address}: {exc}") from exc
    log.info("Prometheus metrics on http://%s/metrics", address)


async def run_worker(settings: Settings, *, ready_file: Path | None = None, stop: asyncio.Event | None = None) -> None:
    """Run a worker until `stop` is set or SIGTERM/SIGINT arrives; then drain: stop polling,
    hand running monitors to the other workers, give other activities
    `worker.drain_timeout_s` to finish, and return. A payload encrypted with another codec key
    stops it the same way, then raises CodecKeyError (main exits 2 with its one line)."""
    serve_metrics(settings)
    client = await connect_with_retry(settings)
    await ensure_search_attributes(client, settings.temporal.namespace)
    loop = asyncio.get_running_loop()
    # The activities' blocking calls (asyncio.to_thread) get a pool of their own size: the
    # default (a few threads on a small machine) would queue 1,000 monitors' polls behind a
    # hung cloud call.
    loop.set_default_executor(ThreadPoolExecutor(settings.worker.activity_threads, thread_name_prefix="activity"))
    workers = job_workers(client, TASK_QUEUE, ALL_WORKFLOWS, all_activities(Deps(settings)), settings.worker)
    stop = stop or asyncio.Event()
    foreign: list[CodecKeyError] = []
    codec = client.data_converter.payload_codec
    if isinstance(codec, EncryptionCodec):
        def on_foreign_key(exc: CodecKeyError) -> None:
            foreign.append(exc)
            stop.set()

        codec.on_foreign_key = on_foreign_key
        codec.refuse_plaintext = True  # see EncryptionCodec.refuse_plaintext
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    await asyncio.to_thread(callback_cgroups.sweep_orphans)  # callbacks of a worker that was killed
    async with running(workers):
        sweeper = start_sweeper(client, settings)  # terminates leftovers of jobs that are over
        codec_server = start_codec_server(client, settings)
        try:
            if ready_file is not None:
                ready_file.write_text(str(os.getpid()))
            log.info("worker polling %s on %s", TASK_QUEUE, settings.temporal_address)
            await stop.wait()
            log.info("draining: no new work; running activities get up to %.0fs", settings.worker.drain_timeout_s)
        finally:
            if codec_server is not None:
                await asyncio.to_thread(codec_server.stop)  # waits up to its 0.5 s poll
            await stop_sweeper(sweeper)
    await asyncio.to_thread(callback_cgroups.destroy_mine)  # a callback the drain cut off left no process
    if foreign:  # a worker with the wrong key stops, naming both keys, rather than fail every task
        raise foreign[0]


def main() -> None:
    # Before anything is created: the Temporal database, logs and job files are the owner's
    # only (0600 files, 0700 dirs), and so is whatever this worker's children create.
    os.umask(0o077)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ready = os.environ.get("SPOTCTL_WORKER_READY_FILE")  # set by the supervisor, not a setting
    try:
        # Before anything starts: a worker with a bad setting or without its key stops with one
        # line saying why (exit 2: its supervisor's log repeats that line; embedded/supervisor.py).
        settings = load_settings()
        secure_home(settings.home)
        load_key(settings.home)
        asyncio.run(run_worker(settings, ready_file=Path(ready) if ready else None))
    except ConfigError as exc:  # CodecKeyError is one too
        log.error("%s", exc)
        exit_now(2)
    except TemporalUnreachable as exc:
        log.error("%s", exc)
        exit_now(EXIT_UNREACHABLE)


def exit_now(code: int) -> NoReturn:
    """Exit with `code` without the interpreter's shutdown: the Temporal core's runtime threads
    (tokio, grpc) still alive then could abort the process (SIGABRT, SIGSEGV) and hide the code
    a supervisor reads. Everything this process owns is closed by now; logs are flushed first."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
