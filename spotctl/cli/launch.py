"""spotctl launch: start a managed job and (unless -d) follow it to its end."""

from __future__ import annotations

import asyncio
import sys
import uuid
from datetime import UTC, datetime

import click
import yaml
from rich.console import Console
from rich.markup import escape

from spotctl.cli.arrays import check_num_jobs, check_priority, launch_array, wait_submitted
from spotctl.cli.catalog import price_age_lines
from spotctl.cli.common import async_command, confirm, console, err_console, exit_code_for, fail, open_client, settings
from spotctl.cli.fleet_view import fleet_lines, order_by_fleet
from spotctl.cli.follow import follow, print_result
from spotctl.cli.pool import check_pool, pool_job_plan
from spotctl.cli.render import safe
from spotctl.client import JobIdTaken, SpotClient
from spotctl.config import Settings
from spotctl.embedded import ServerError
from spotctl.launch import (
    Overrides,
    Plan,
    bucket_regions,
    check_launchable,
    delete_buckets,
    plan,
    secrets_given_inline,
    stage_tasks,
)
from spotctl.models import DEFAULT_PRIORITY, MAX_PRIORITY, MIN_PRIORITY, Candidate, hours_text
from spotctl.models.array import MAX_ARRAY_JOBS
from spotctl.models.naming import job_workflow_id

JOB_ID_TRIES = 5
"""Starts a launch tries before it gives up when each finds its id taken by an existing job."""


class _BlockDumper(yaml.SafeDumper):
    """Dumps multi-line strings (setup, run) as `|` blocks, the way users write them."""


_BlockDumper.add_representer(
    str,
    lambda d, v: d.represent_scalar("tag:yaml.org,2002:str", v, style="|" if "\n" in v else None),
)


def _print_plans(p: Plan, s: Settings) -> None:
    """The plan of a job, or of every task of a pipeline (each with its own candidates)."""
    if not p.is_pipeline:
        _print_plan(p, s)
        return
    console.print(f"[bold]Pipeline[/bold] {escape(repr(p.name))}: {len(p.task_plans)} tasks, run one after "
                  "another, each on its own cluster")
    for tp in p.task_plans:
        console.print()
        _print_plan(tp, s, heading=f"Task {tp.index}/{len(p.task_plans)}")


def _print_plan(p: Plan, s: Settings, heading: str = "Task") -> None:
    console.print(f"[bold]{heading}[/bold] {escape(repr(p.name))} ({escape(p.task.source_path or 'command line')})")
    dump = p.display_dump()
    console.print(yaml.dump(dump, Dumper=_BlockDumper, sort_keys=False).rstrip(), markup=False)
    console.print(f"[bold]Resources[/bold] {escape(safe(p.resources))}")
    console.print(f"[bold]Recovery[/bold] {escape(p.recovery.strategy)}")
    if p.deadline is not None:
        _print_deadline(p)
    console.print("[bold]Placement candidates[/bold] (tried in this order):")
    console.print(f"      {'where':<32} {'type':<16} {'market':<9} {'price':>10}   {'spot':>9} {'on-demand':>10}",
                  markup=False)
    _print_candidates(p, p.candidates)
    _print_price_ages(console, p, s)
    for line in fleet_lines(p, s):
        console.print(line, markup=False)
    if p.ondemand_candidates:
        console.print("[bold]On-demand candidates[/bold] (when the deadline's slack runs short or spot has no capacity):")
        _print_candidates(p, p.ondemand_candidates)
    for note in p.notes:
        console.print(f"[yellow]Note:[/yellow] {escape(safe(note))}")
    if p.unsupported:
        console.print("[yellow]Parsed but not supported yet (ignored when launching):[/yellow]")
        for line in p.unsupported:
            console.print(f"  - {safe(line)}", markup=False)


def _print_deadline(p: Plan) -> None:
    """A deadline job's figures: what it needs, by when, the slack it starts with."""
    d = p.deadline
    assert d is not None
    left = (d.by - datetime.now(UTC)).total_seconds()
    checkpoint = f", checkpoint every {hours_text(d.checkpoint_every_s)}" if d.checkpoint_every_s else ""
    console.print(f"[bold]Deadline[/bold] {d.by.isoformat(timespec='seconds')} (in {hours_text(left)}): compute "
                  f"{hours_text(d.compute_s)}, slack {hours_text(left - d.compute_s)}, changeover "
                  f"{hours_text(d.changeover_s)}{checkpoint}, policy {escape(d.policy)}")


def _print_candidates(p: Plan, candidates: list[Candidate]) -> None:
    for i, c in enumerate(candidates, 1):
        market = "spot" if c.use_spot else "on-demand"
        spot, ondemand = p.prices.get((c.cloud, c.region, c.zone, c.instance_type), (None, None))
        console.print(f"  {i:>2}. {c.location:<32} {c.instance_type:<16} {market:<9} ${c.price:.4f}/h"
                      f"   {_usd(spot):>9} {_usd(ondemand):>10}", markup=False)


def _print_price_ages(out: Console, p: Plan, s: Settings) -> None:
    """Where the prices shown come from and how old they are, one line per cloud (dry-run, and
    before the launch's question, which quotes a price)."""
    for line in price_age_lines({c.cloud for c in [*p.candidates, *p.ondemand_candidates]}, s.home):
        out.print(f"Prices: {line}", markup=False, soft_wrap=True)


def _warn_inline_secrets(keys: list[str]) -> None:
    """`--secret KEY=VALUE` works, but says where the value can be read and what to do instead."""
    if not keys:
        return
    given = " ".join(f"--secret {k}=..." for k in keys)
    instead = " ".join(f"--secret {k}" for k in keys)
    one = len(keys) == 1
    err_console.print(f"Warning: {safe(given)} {'puts its value' if one else 'put their values'} in the command "
                      "line, which `ps` shows to every local user while spotctl runs (and your shell's history "
                      f"keeps): export {safe(' '.join(keys))} and give `{safe(instead)}` instead.",
                      soft_wrap=True, markup=False)


def _usd(price: float | None) -> str:
    return "-" if price is None else f"${price:.4f}"


async def _stage_and_start(client: SpotClient, p: Plan, job_id: int, pool: str | None = None) -> None:
    """Stage the job's files and start its workflow; on failure nothing of it is left."""
    s = client.settings
    # The workdir and local file mounts travel through the job's ephemeral bucket, so a worker
    # on another machine can fetch them; nothing of it is left if the start fails.
    plans = p.task_plans or [p]
    regions = bucket_regions([c for tp in plans for c in tp.candidates])
    staged = await asyncio.to_thread(stage_tasks, [tp.task for tp in plans], job_id, s, regions)
    spec = p.to_pipeline_spec(job_id, staged, s.notify) if p.is_pipeline else p.to_spec(job_id, staged[0], s.notify)
    if pool is not None:  # a job on a pool: its worker is the pool's (workflows/pool_job.py)
        spec = spec.model_copy(update={"pool": pool})
    try:
        await client.start_job(spec)
    except BaseException:
        await asyncio.to_thread(delete_buckets, spec.ephemeral_buckets, s)
        raise


async def _start_with_free_id(client: SpotClient, p: Plan, pool: str | None = None) -> int:
    """Allocate the job's id, stage and start it; its id. One request id for the whole launch,
    so a retried allocation gets the same id. A start that finds its id taken by an existing
    job (an allocator restarted behind it) never shadows that job: it takes the next free id."""
    request_id = str(uuid.uuid4())
    try:
        job_id = await client.allocate_job_id(request_id)
        for _ in range(JOB_ID_TRIES):
            try:
                await _stage_and_start(client, p, job_id, pool)
                return job_id
            except JobIdTaken:
                taken, job_id = job_id, await client.allocate_job_id(request_id, at_least=job_id + 1)
                err_console.print(f"Job id {taken} belongs to an existing job; launching as job {job_id} instead.",
                                  markup=False)
            except BaseException:
                # Nothing of the job exists: its id goes back, so the next launch gets it.
                await client.release_job_id(job_id)
                raise
    except JobIdTaken as exc:
        job_id = exc.job_id
    raise ServerError(f"job ids up to {job_id} all belong to existing jobs: the job-id allocator is behind "
                      "them and cannot get past (is another spotctl server using this Temporal namespace?)")


async def _launch_array(client: SpotClient, p: Plan, count: int, detach: bool, pool: str | None) -> None:
    """`--num-jobs N`: the array's submitter runs when this returns (--async), or every job
    exists (without); either way the jobs are Temporal's: a Ctrl-C here loses none."""
    first = await launch_array(client, p, count, pool)
    last = first + count - 1
    err_console.print(f"Job array [bold]{first}[/bold] {escape(repr(p.name))}: {count} managed jobs, ids {first}-{last}"
                      f"{', being submitted' if detach else ''}.")
    if not detach:
        await wait_submitted(client, first, count)
        err_console.print(f"All {count} jobs submitted.")
    console.print(str(first)) if not sys.stdout.isatty() else None
    err_console.print(f"See them with `spotctl status --array {first}`, cancel them with "
                      f"`spotctl cancel --array {first}`.")


@click.command()
@click.argument("entrypoint", metavar="YAML_OR_COMMAND")
@click.option("-n", "--name", help="Job name (default: the task's name).")
@click.option("-d", "--detach", is_flag=True, help="Return once the job is submitted; do not follow its logs.")
@click.option("--async", "async_", is_flag=True,
              help="SkyPilot's name for -d: return at once (with --num-jobs: once the array's submitter runs, "
                   "before its jobs exist).")
@click.option("--num-jobs", type=int, metavar="N",
              help=f"Launch a job array: N jobs (1-{MAX_ARRAY_JOBS:,}) with consecutive ids, each with "
                   "SKYPILOT_JOB_RANK (0..N-1) and SKYPILOT_NUM_JOBS (N) in its environment; staged once "
                   "(docs/many-jobs.md).")
@click.option("--priority", type=int, metavar="N",
              help=f"Override resources.priority ({MIN_PRIORITY}..{MAX_PRIORITY}, default {DEFAULT_PRIORITY}): "
                   "a higher one gets launch slots first, then the one waiting longest (docs/many-jobs.md).")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--dry-run", is_flag=True, help="Print the parsed task and placement candidates; start nothing.")
@click.option("--infra", help="Override resources.infra: cloud[/region[/zone]], '*' for any, e.g. aws/us-east-1.")
@click.option("--cloud", help="Override resources.cloud.")
@click.option("--region", help="Override resources.region.")
@click.option("--gpus", help="Override resources.accelerators, e.g. V100:2.")
@click.option("--cpus", help="Override resources.cpus, e.g. 4 or 4+.")
@click.option("--memory", help="Override resources.memory in GB, e.g. 16 or 16+.")
@click.option("-t", "--instance-type", help="Override resources.instance_type, e.g. p3.2xlarge.")
@click.option("--use-spot/--no-use-spot", default=None, help="Override resources.use_spot.")
@click.option("--num-nodes", metavar="N", help="Override num_nodes.")
@click.option("--job-recovery", metavar="STRATEGY",
              help="Override the job_recovery strategy: EAGER_NEXT_REGION, FAILOVER or NONE.")
@click.option("--env", "envs", multiple=True, metavar="KEY[=VALUE]",
              help="Set an environment variable (repeatable); KEY alone takes $KEY from this shell.")
@click.option("--env-file", metavar="PATH", help="Set environment variables from a dotenv file (--env wins).")
@click.option("--secret", "secrets", multiple=True, metavar="KEY[=VALUE]",
              help="Set a secret environment variable (repeatable); never printed, encrypted in Temporal. "
                   "Prefer KEY alone: it takes $KEY from this shell, so the value is not in the command line "
                   "(which `ps` shows while spotctl runs).")
@click.option("--compute-time", metavar="DURATION",
              help="Override deadline.compute: the compute the job needs, e.g. 48h (with --deadline).")
@click.option("--deadline", metavar="WHEN",
              help="Override deadline.by: an ISO 8601 time, or a duration from now such as 70h or 3d; the job "
                   "moves between spot and on-demand to finish by then (docs/deadlines.md).")
@click.option("-p", "--pool", "pool", metavar="POOL",
              help="Run the job on a worker of pool POOL (`spotctl pool apply`) instead of its own cluster.")
@async_command
async def launch(entrypoint: str, name: str | None, detach: bool, async_: bool, num_jobs: int | None,
                 priority: int | None, yes: bool, dry_run: bool, infra: str | None,
                 cloud: str | None, region: str | None, gpus: str | None, cpus: str | None, memory: str | None,
                 instance_type: str | None, use_spot: bool | None, num_nodes: str | None, job_recovery: str | None,
                 envs: tuple[str, ...], env_file: str | None, secrets: tuple[str, ...], compute_time: str | None,
                 deadline: str | None, pool: str | None) -> None:
    """Launch a managed spot job from a SkyPilot task YAML, or from a command.

    Relative paths in the task (workdir, file_mounts sources) are taken from the current
    directory, as `sky launch` does. The task file may be a pipe: `<(make-task)`, /dev/stdin."""
    check_num_jobs(num_jobs)
    check_priority(priority)
    detach = detach or async_
    s = settings()
    overrides = Overrides(name=name, infra=infra, cloud=cloud, region=region, gpus=gpus, cpus=cpus, memory=memory,
                          instance_type=instance_type, use_spot=use_spot, num_nodes=num_nodes,
                          job_recovery=job_recovery, envs=list(envs), env_file=env_file, secrets=list(secrets),
                          compute_time=compute_time, deadline=deadline)
    _warn_inline_secrets(secrets_given_inline(list(secrets)))
    p = plan(entrypoint, overrides, s, dry_run=dry_run)
    order_by_fleet(p, s)  # a job ranked by expected cost: the order its first provisioning will use
    if priority is not None:
        for tp in [p, *p.task_plans]:
            tp.priority = priority
    if num_jobs is not None and p.is_pipeline:
        fail("--num-jobs launches copies of one task, not of a pipeline")
    if dry_run:
        _print_plans(p, s)
        # The launch's own checks, after the plan: what a launch would refuse, the dry run
        # refuses too, with the same message and exit code (and creates nothing either).
        check_launchable(p, s)
        return
    check_launchable(p, s)
    if pool is not None:
        p = pool_job_plan(p, pool)
    for line in p.unsupported:
        err_console.print(f"[yellow]Warning:[/yellow] {escape(safe(line))}", markup=True)
    if not yes:
        _print_price_ages(err_console, p, s)  # the figures the question quotes, dated
        best = p.candidates[0]
        what = f"pipeline of {len(p.task_plans)} tasks, the first" if p.is_pipeline else "managed job"
        what = f"array of {num_jobs} managed jobs" if num_jobs is not None else what
        confirm(f"Launching {what} {p.name!r} ({safe(p.resources)}), first try {best.location} "
                f"{best.instance_type} at ${best.price:.4f}/h. Proceed?", yes_flag="-y")
    client = await open_client(s, start_server=True)
    if not await client.wait_for_worker(timeout=10.0):
        raise ServerError(f"no spotctl worker is polling task queue 'spotctl' on {s.temporal_address} "
                          f"(namespace {s.temporal.namespace}); start one with `spotctl worker`")
    if pool is not None:
        await check_pool(client, p, pool)
    if num_jobs is not None:
        await _launch_array(client, p, num_jobs, detach, pool)
        return
    job_id = await _start_with_free_id(client, p, pool)
    err_console.print(f"Managed job [bold]{job_id}[/bold] {escape(repr(p.name))} submitted. "
                      f"Web UI: {s.ui_url}/namespaces/{s.temporal.namespace}/workflows/{job_workflow_id(job_id)}")
    if detach:
        console.print(str(job_id)) if not sys.stdout.isatty() else None
        err_console.print(f"Follow it with `spotctl logs {job_id}`, see all jobs with `spotctl status`.")
        return
    state = await follow(client, job_id, progress=True)  # Ctrl-C: StoppedFollowing, exit 101
    await client.wait_visible(job_id, state.status)
    print_result(state)
    sys.exit(exit_code_for(state.status))
