"""spotctl debug: make things happen that clouds do on their own (for demos and tests)."""

from __future__ import annotations

import asyncio

import click

from spotctl.cli.common import async_command, console, fail, open_client, resolve_job, settings
from spotctl.clouds.registry import get_cloud
from spotctl.models import cluster_name


@click.group()
def debug() -> None:
    """Simulate cloud events on the local cloud."""


@debug.command("preempt")
@click.argument("job_id", type=int, required=False)
@click.option("-n", "--name", help="Pick the newest job with this name.")
@click.option("--notice", type=float, default=None,
              help="Seconds of notice (SIGTERM first, then kill); default: the region's configured notice.")
@async_command
async def preempt(job_id: int | None, name: str | None, notice: float | None) -> None:
    """Take the job's current instances back, the way a cloud preempts a spot VM."""
    s = settings()
    client = await open_client(s, start_server=False)
    jid = await resolve_job(client, job_id, name)
    state = await client.get_job(jid)
    if state.status.is_terminal or not state.cloud or not state.attempt:
        fail(f"job {jid} has no instance to preempt (it is {state.status.value})", 1)
    cloud = get_cloud(state.cloud, s)
    if not hasattr(cloud, "preempt_cluster"):
        fail(f"the {state.cloud} cloud cannot simulate preemptions", 1)
    name_ = cluster_name(jid, state.attempt)
    ids = await asyncio.to_thread(cloud.preempt_cluster, name_, notice)
    if not ids:
        fail(f"job {jid} has no alive instance right now (attempt {state.attempt} in {state.region})", 1)
    console.print(f"Preempted {', '.join(ids)} of job {jid} in {state.region}/{state.zone}")
