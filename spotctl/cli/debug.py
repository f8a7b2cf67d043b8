"""spotctl debug: make things happen that clouds do on their own (for demos and tests)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import click

from spotctl.cli.common import async_command, console, err_console, fail, open_client, resolve_job, settings
from spotctl.cli.follow import describe
from spotctl.client import SpotClient
from spotctl.clouds.registry import get_cloud
from spotctl.models import JobState, JobStatus, cluster_name

WAIT_TIMEOUT_S = 120.0
"""How long `preempt --wait` waits, each time, for the job to run (again). Bounded, so a pasted
demo never hangs on a job that waits for capacity for ever; long enough for a relaunch."""
POLL_S = 0.25


@click.group()
def debug() -> None:
    """Simulate cloud events on the local cloud."""


@debug.command("preempt")
@click.argument("job_id", type=int, required=False)
@click.option("-n", "--name", help="Pick the newest job with this name.")
@click.option("--notice", type=float, default=None,
              help="Seconds of notice (SIGTERM first, then kill); default: the region's configured notice.")
@click.option("--wait", is_flag=True,
              help="Wait until the job runs before preempting it, and after, until it runs again (a new attempt "
                   "RUNNING) or ends, so that the next command sees the relaunched job (for scripts and demos).")
@click.option("--timeout", type=float, default=WAIT_TIMEOUT_S, show_default=True,
              help="With --wait: seconds to wait at most, each time.")
@async_command
async def preempt(job_id: int | None, name: str | None, notice: float | None, wait: bool, timeout: float) -> None:
    """Take the job's current instances back, the way a cloud preempts a spot VM."""
    s = settings()
    client = await open_client(s, start_server=False)
    jid = await resolve_job(client, job_id, name)
    state = await client.get_job(jid)
    if wait:
        state = await _wait_for(client, state, lambda st: st.status == JobStatus.RUNNING, "run", timeout)
    if state.status.is_terminal or not state.cloud or not state.attempt:
        fail(f"job {jid} has no instance to preempt (it is {state.status.value})", 1)
    cloud = get_cloud(state.cloud, s)
    preempt = getattr(cloud, "preempt_cluster", None)  # only a simulated cloud can
    if preempt is None:
        fail(f"the {state.cloud} cloud cannot simulate preemptions", 1)
    name_ = state.worker if state.pool and state.worker else cluster_name(jid, state.attempt)  # a pool job: its worker
    ids = await asyncio.to_thread(preempt, name_, notice)
    if not ids:
        hint = "" if wait else "; `--wait` waits until it runs"
        fail(f"job {jid} has no alive instance right now (attempt {state.attempt} in {state.region}){hint}", 1)
    console.print(f"Preempted {', '.join(ids)} of job {jid} in {state.region}/{state.zone}")
    if wait:
        preempted = state.attempt
        state = await _wait_for(client, state, lambda st: st.status == JobStatus.RUNNING and st.attempt > preempted,
                                "run again", timeout)
        if state.status.is_terminal:
            console.print(f"Job {jid} ended: {state.status.value}")
        else:
            console.print(f"Job {jid} runs again: attempt {state.attempt} in {state.region}/{state.zone}")


async def _wait_for(client: SpotClient, state: JobState, done: Callable[[JobState], bool], what: str,
                    timeout: float) -> JobState:
    """Poll the job until `done` holds or it ends; after `timeout` seconds, fail saying where it is."""
    deadline = time.monotonic() + timeout
    with err_console.status(f"Waiting for job {state.job_id} to {what}..."):
        while not (done(state) or state.status.is_terminal):
            if time.monotonic() >= deadline:
                fail(f"job {state.job_id} did not {what} within {timeout:.0f}s; it is {describe(state)[4:]}. "
                     f"`spotctl status` and `spotctl logs {state.job_id}` show more", 1)
            await asyncio.sleep(POLL_S)
            state = await client.get_job(state.job_id)
    return state
