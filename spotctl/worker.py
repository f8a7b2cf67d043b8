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
import time
from datetime import timedelta
from pathlib import Path

from temporalio.client import Client
from temporalio.worker import Worker

from spotctl.activities import all_activities
from spotctl.activities.deps import Deps
from spotctl.activities.heartbeat import HEARTBEAT_THROTTLE
from spotctl.config import Settings, load_settings
from spotctl.connect import connect, ensure_search_attributes
from spotctl.models import TASK_QUEUE
from spotctl.sweeper import start_sweeper, stop_sweeper
from spotctl.workflows import ALL_WORKFLOWS

log = logging.getLogger("spotctl.worker")


async def connect_with_retry(settings: Settings, give_up_after_s: float = 120.0) -> Client:
    """Connect, retrying while the server is still starting (or briefly away), so a worker
    started together with its server does not die of being first."""
    deadline = time.monotonic() + give_up_after_s
    delay = 0.2
    while True:
        try:
            return await connect(settings)
        except RuntimeError as exc:
            if time.monotonic() + delay > deadline:
                raise
            log.warning("cannot reach Temporal at %s (%s); retrying in %.1fs", settings.temporal_address, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


async def run_worker(settings: Settings, *, ready_file: Path | None = None, stop: asyncio.Event | None = None) -> None:
    """Run a worker until `stop` is set or SIGTERM/SIGINT arrives."""
    client = await connect_with_retry(settings)
    await ensure_search_attributes(client, settings.temporal.namespace)
    worker = Worker(
        client,
        task_queue=TASK_QUEUE,
        workflows=ALL_WORKFLOWS,
        activities=all_activities(Deps(settings)),
        max_concurrent_activities=1000,
        max_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
        graceful_shutdown_timeout=timedelta(seconds=5),
    )
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    async with worker:
        sweeper = start_sweeper(client, settings)  # terminates leftovers of jobs that are over
        try:
            if ready_file is not None:
                ready_file.write_text(str(os.getpid()))
            log.info("worker polling %s on %s", TASK_QUEUE, settings.temporal_address)
            await stop.wait()
        finally:
            await stop_sweeper(sweeper)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ready = os.environ.get("SPOTCTL_WORKER_READY_FILE")
    asyncio.run(run_worker(load_settings(), ready_file=Path(ready) if ready else None))


if __name__ == "__main__":
    main()
