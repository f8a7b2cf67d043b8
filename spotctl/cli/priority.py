"""spotctl set-priority: change a waiting job's priority (SkyPilot sets one only at launch)."""

from __future__ import annotations

import click

from spotctl.cli.arrays import check_priority
from spotctl.cli.common import async_command, console, fail, open_client, settings
from spotctl.models.naming import job_workflow_id
from spotctl.models.priority import PRIORITY_SIGNAL


@click.command(name="set-priority")
@click.argument("job_id", type=int)
@click.argument("priority", type=int)
@async_command
async def set_priority(job_id: int, priority: int) -> None:
    """Change a job's priority (-1000..1000, higher first: SkyPilot's resources.priority).

    A job waiting for a launch slot waits from now on under the new priority; one that runs
    keeps it for its next launch (a recovery)."""
    check_priority(priority, "PRIORITY")
    client = await open_client(settings(), start_server=False)
    state = await client.get_job(job_id)  # JobNotFound: exit 102
    if state.status.is_terminal:
        fail(f"job {job_id} has ended ({state.status.value}): its priority no longer matters")
    if state.is_pipeline:
        fail(f"job {job_id} is a pipeline: its priority is set at launch only")
    await client.temporal.get_workflow_handle(job_workflow_id(job_id)).signal(PRIORITY_SIGNAL, priority)
    console.print(f"Job {job_id}: priority {state.priority} -> {priority}")
