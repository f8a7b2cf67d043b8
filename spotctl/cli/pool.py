"""spotctl pool apply/status/down: SkyPilot's `sky jobs pool ...` (docs/many-jobs.md "Pools")."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid

import click
from rich.markup import escape
from temporalio.service import RPCError

from spotctl.cli.common import async_command, confirm, console, err_console, fail, open_client, settings
from spotctl.cli.pool_jobs import checked_pool_name
from spotctl.cli.render import safe
from spotctl.client import SpotClient, ensure_search_attributes
from spotctl.client.pools import ask_down, pool_names, pool_running, pool_state, start_pool, take_down, update_pool
from spotctl.embedded import ServerError
from spotctl.launch import Plan, bucket_regions, delete_buckets, stage_tasks
from spotctl.launch.pools import PoolPlan, config_changes, fits_pool, plan_pool, pool_config
from spotctl.models.pool import DOWN_CANCEL, DOWN_DRAIN, MAX_WORKERS, PoolSpec, PoolState

DOWN_WAIT_S = 600.0
"""How long `pool down` waits for the last worker to be torn down before it returns."""


@click.group()
def pool() -> None:
    """Pools of workers that jobs share (`spotctl launch -p POOL`), as `sky jobs pool`."""


@pool.command("apply")
@click.argument("pool_yaml", required=False, metavar="POOL_YAML")
@click.option("-p", "--pool", "name", required=True, help="The pool's name.")
@click.option("--workers", type=click.IntRange(1, MAX_WORKERS), help="A fixed number of workers (overrides the file).")
@click.option("--idle-timeout", type=click.FloatRange(0, 7 * 86400), metavar="SECONDS",
              help="How long a worker above min_workers stays idle before it is torn down (a new pool only; "
                   "default: the file's pool.downscale_delay_seconds, else 60).")
@click.option("--mode", type=click.Choice(["rolling", "blue_green"]), metavar="[rolling|blue_green]",
              help="SkyPilot's way to replace a running pool's workers for a changed file; spotctl does not "
                   "replace them yet: a changed setup, resources, file_mounts, workdir, envs or secrets is "
                   "refused whatever the mode (`pool down`, then apply).")
@click.option("--probe-interval", type=click.FloatRange(1, 86400), default=60.0, hidden=True,
              help="Seconds between checks that the idle workers still live (for tests and demos).")
@click.option("--continue-as-new-after", "continue_after", type=click.IntRange(20, 10_000), default=10_000,
              hidden=True, help="History events before the pool's workflow continues as new (for tests).")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@async_command
async def apply(pool_yaml: str | None, name: str, workers: int | None, idle_timeout: float | None, mode: str | None,
                probe_interval: float, continue_after: int, yes: bool) -> None:
    """Create pool POOL from POOL_YAML (a task YAML with a `pool:` section), or change the
    worker counts of the existing pool POOL (the file's, or --workers). A file whose setup,
    resources, file_mounts, workdir, envs or secrets differ from the running pool's is refused
    (exit 2, nothing changed): its workers would have to be made again."""
    s = settings()
    checked_pool_name(name)
    if pool_yaml is None and workers is None:
        fail("give a POOL_YAML, or --workers N to resize an existing pool")
    planned = plan_pool(pool_yaml, s) if pool_yaml is not None else None
    counts = (workers, workers) if workers is not None else (planned.min_workers, planned.max_workers) if planned else None
    assert counts is not None
    for line in planned.plan.unsupported if planned else ():
        err_console.print(f"[yellow]Warning:[/yellow] {escape(safe(line))}", markup=True)
    client = await open_client(s, start_server=True)
    if await pool_running(client.temporal, name):
        if planned is not None:
            await _refuse_changed_config(client, name, planned, pool_yaml or "")
        await update_pool(client.temporal, name, *counts)
        note = " (setup, resources and files stay as created: `pool down` then `apply` to change them)" if planned else ""
        err_console.print(f"Pool {escape(repr(name))} updated: {_counts(*counts)}{note}.", markup=True)
        return
    if planned is None:
        fail(f"pool {name!r} does not exist; give a POOL_YAML to create it")
    p = planned.plan
    if not yes:
        best = p.candidates[0]
        confirm(f"Creating pool {name!r}: {_counts(*counts)} of {safe(p.resources)}, first try {best.location} "
                f"{best.instance_type} at ${best.price:.4f}/h each. Proceed?", yes_flag="-y")
    if not await client.wait_for_worker(timeout=10.0):
        raise ServerError("no spotctl worker is polling task queue 'spotctl'; start one with `spotctl worker`")
    pool_id = await client.allocate_job_id(str(uuid.uuid4()))
    staged = (await asyncio.to_thread(stage_tasks, [p.task], pool_id, s, bucket_regions(p.candidates)))[0]
    job = p.to_spec(pool_id, staged, None).model_copy(update={"name": name, "run": ""})
    timeout = idle_timeout if idle_timeout is not None else planned.idle_timeout_s
    spec = PoolSpec(name=name, job=job, min_workers=counts[0], max_workers=counts[1],
                    idle_timeout_s=DEFAULT_IDLE_TIMEOUT_S if timeout is None else timeout, probe_s=probe_interval,
                    config=pool_config(p), continue_as_new_after_events=continue_after)
    try:
        await start_pool(client.temporal, spec)
    except BaseException:
        await asyncio.to_thread(delete_buckets, job.ephemeral_buckets, s)
        raise
    err_console.print(f"Pool [bold]{escape(name)}[/bold] created: {_counts(*counts)}. Submit jobs with "
                      f"`spotctl launch -p {escape(name)} JOB_YAML`; see it with `spotctl pool status {escape(name)}`.")


DEFAULT_IDLE_TIMEOUT_S = 60.0


async def _refuse_changed_config(client: SpotClient, name: str, planned: PoolPlan, path: str) -> None:
    """Exit 2, nothing changed, when the file differs from the running pool in what its workers
    are made of: applying it needs new workers, which spotctl does not make in place yet."""
    st = await pool_state(client.temporal, name)
    changed = config_changes(st.config, pool_config(planned.plan)) if st is not None else []
    if changed:
        shown = safe(path)
        fail(f"pool {name!r} runs with another {', '.join(changed)}; applying {shown} needs new workers: "
             f"`spotctl pool down {name}`, then `spotctl pool apply -p {name} {shown}` (nothing was changed)")


def pool_job_plan(p: Plan, name: str) -> Plan:
    """A job for pool `name` as it will run: what the workers hold already (setup, workdir,
    file mounts) is the pool's; the job's own are ignored with a warning, as SkyPilot does."""
    checked_pool_name(name)
    t = p.task
    ignored = [k for k, given in (("setup", t.setup), ("workdir", t.workdir), ("file_mounts", t.file_mounts)) if given]
    if ignored:
        err_console.print(f"[yellow]Warning:[/yellow] {', '.join(ignored)} of a job on pool {escape(repr(name))} "
                          "are ignored: the pool's workers were set up by the pool's YAML.", markup=True)
        t = t.model_copy(update={"setup": None, "workdir": None, "file_mounts": {}})
    return dataclasses.replace(p, task=t)


async def check_pool(client: SpotClient, p: Plan, name: str) -> None:
    """Exit 2 (nothing created) when pool `name` does not run or its workers cannot serve the job."""
    st = await pool_state(client.temporal, name)
    if st is None:
        fail(f"pool {name!r} does not exist (create it with `spotctl pool apply -p {name} POOL_YAML`)")
    if st.status in ("DRAINING", "CANCELLING"):
        fail(f"pool {name!r} is going down; it takes no new jobs")
    fits_pool(p, set(st.instance_types), name)
    try:  # the job's SpotctlPool attribute: a server and a worker started before it existed lack it
        await ensure_search_attributes(client.temporal, client.settings.temporal.namespace)
    except RPCError:
        pass  # no right to list or add them here: the next worker start registers it


def _counts(low: int, high: int) -> str:
    return f"{low} worker{'s' if low != 1 else ''}" if low == high else f"{low} to {high} workers"


@pool.command("status")
@click.argument("name", required=False, metavar="[POOL]")
@async_command
async def status(name: str | None) -> None:
    """Show the pools (or pool POOL: each worker, its job, lifetime and cost, and the pool's spend)."""
    s = settings()
    client = await open_client(s, start_server=False)
    names = [checked_pool_name(name)] if name else await pool_names(client.temporal)
    states = [st for st in await asyncio.gather(*(pool_state(client.temporal, n) for n in names)) if st is not None]
    if name and not states:
        fail(f"no pool {name!r} (see `spotctl pool status`)", 1)
    if not states:
        console.print("No pools.")
        return
    console.print(f"{'POOL':<20} {'STATUS':<11} {'WORKERS':<9} {'WANTED':<9} {'QUEUED':>6} {'SPEND':>10}  RESOURCES",
                  markup=False)
    for st in states:
        ready = sum(1 for w in st.workers if w.phase in ("idle", "busy"))
        wanted = f"{st.min_workers}-{st.max_workers}" if st.min_workers != st.max_workers else str(st.max_workers)
        console.print(f"{st.name:<20} {st.status:<11} {ready:<9} {wanted:<9} {st.queued:>6} ${st.spend:>9.4f}  "
                      f"{safe(st.resources)}", markup=False)
    if name:
        _print_workers(states[0])


def _print_workers(st: PoolState) -> None:
    console.print()
    console.print(f"{'WORKER':<22} {'STATE':<13} {'PLACE':<34} {'MARKET':<9} {'JOB':>6} {'LIFETIME':>9} {'COST':>10}",
                  markup=False)
    for w in st.workers:
        c = w.cluster
        place = f"{c.cloud}/{c.region}/{c.zone} {c.instance_type}" if c else "-"
        market = ("spot" if c.use_spot else "on-demand") if c else "-"
        life = (st.now - w.launched_at).total_seconds()
        cost = c.price * life / 3600 if c else 0.0
        job = str(w.job_id) if w.job_id is not None else "-"
        console.print(f"{w.name:<22} {w.phase:<13} {place:<34} {market:<9} {job:>6} {_duration(life):>9} "
                      f"${cost:>9.4f}", markup=False)
        if w.detail:
            console.print(f"    {safe(w.detail)}", markup=False)
    if st.queued:
        first = ", ".join(str(j) for j in st.queued_jobs)
        console.print(f"{st.queued} job(s) waiting for a worker, next: {first}", markup=False)
    if st.detail:
        console.print(f"Note: {safe(st.detail)}", markup=False)
    console.print(f"Spend so far: ${st.spend:.4f}", markup=False)


def _duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}h{rest // 60:02d}m" if h else f"{rest // 60}m{rest % 60:02d}s"


@pool.command("down")
@click.argument("name", metavar="POOL")
@click.option("--cancel", "mode", flag_value=DOWN_CANCEL,
              help="Cancel the pool's waiting and running jobs, then tear every worker down.")
@click.option("--drain", "mode", flag_value=DOWN_DRAIN,
              help="Let the waiting and running jobs finish (new ones are refused), then tear every worker down.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@async_command
async def down(name: str, mode: str | None, yes: bool) -> None:
    """Take pool POOL down: no VM of it is left. With jobs waiting or running, say first what
    happens to them: --cancel cancels them, --drain (the default) lets them finish first."""
    s = settings()
    client = await open_client(s, start_server=False)
    st = await pool_state(client.temporal, checked_pool_name(name))
    if st is None:
        fail(f"no pool {name!r} (see `spotctl pool status`)", 1)
    mode = mode or DOWN_DRAIN
    running = sorted(w.job_id for w in st.workers if w.job_id is not None)
    what = _fate(st.queued, running, mode)
    if not yes:
        confirm(f"Taking pool {name!r} down ({len(st.workers)} worker(s)); {what}. Proceed?", yes_flag="-y")
    else:
        err_console.print(f"Taking pool {name!r} down; {what}.", markup=False)
    if mode == DOWN_DRAIN and (st.queued or running):
        await ask_down(client.temporal, name, mode)
        err_console.print(f"Pool {name!r} is draining; it goes down once its jobs are done "
                          f"(`spotctl pool status {name}` shows how far).", markup=False)
        return
    with err_console.status(f"Tearing down pool {name!r}..."):
        last = await take_down(client.temporal, name, mode, timeout_s=DOWN_WAIT_S)
    if last is None:
        fail(f"pool {name!r} is still going down after {DOWN_WAIT_S:.0f}s; `spotctl pool status {name}` shows it", 1)
    err_console.print(f"Pool {name!r} is down: every worker torn down; it cost ${last.spend:.4f}.", markup=False)


def _fate(queued: int, running: list[int], mode: str) -> str:
    if not queued and not running:
        return "no job is waiting or running on it"
    jobs = f"{queued} waiting job(s) and {len(running)} running job(s)"
    if mode == DOWN_CANCEL:
        return f"{jobs} will be CANCELLED (--cancel)"
    return f"{jobs} will run to their end first, new jobs are refused (--drain; --cancel cancels them)"

