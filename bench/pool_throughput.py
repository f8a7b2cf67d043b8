"""Benchmark: a job array through a pool (issue 25, "Measured"), against ordinary jobs.

    python bench/pool_throughput.py                       # 10,000 jobs of 10 s, 200 workers
    python bench/pool_throughput.py --jobs 2000           # a smaller array, same pool
    python bench/pool_throughput.py --quick               # 100 jobs, 20 workers, 3 s jobs; prints only

On a private embedded deployment (bench/fleet.py: the `temporal` server, one `spotctl worker`,
the local cloud in its benchmark mode, whose programs are timers of `--job-s` seconds and whose
instances run no process), in this order:
- the anchor: `--ordinary` jobs of the same program as one ordinary array (each job provisions
  its own cluster), from launch to the last one done;
- `spotctl pool apply` of `--workers` workers, then `launch -y --async --num-jobs N -p POOL` (the
  real CLI, a subprocess) at the default priority 500 and, right after, a second array of N/10
  at priority 900 on the same pool: the command's return, and all job workflows existing
  (accepted), are timed apart;
- 5% of the workers preempted (no notice) at random moments through the run's middle;
- every second: the controller's RSS (server and worker), the pool's queue and busy workers.
Then, from every job's recorded state (its attempts: when it got a worker, when it gave it back)
and from the workers' sandboxes (each run's start file and env.json, as the simulated node keeps
them): jobs per second, how much of the workers' time went to jobs and to programs while jobs
waited, the overhead per job (time holding a worker beyond the program's own), the order the two
priorities were served in, and that each rank ran to its end exactly once with no VM left.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from statistics import mean

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fleet import Fleet, fleet  # noqa: E402
from measures import pct  # noqa: E402
from pool_counts import per_job  # noqa: E402

from spotctl.client import SpotClient  # noqa: E402
from spotctl.client.arrays import array_query  # noqa: E402
from spotctl.client.pools import pool_state  # noqa: E402
from spotctl.models import JobState, JobStatus  # noqa: E402
from spotctl.models.naming import job_workflow_id  # noqa: E402
from spotctl.models.pool import PoolRequest, pool_workflow_id  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
POOL = "bench"
HIGH = 900
PREEMPT_FRACTION = 0.05
WAIT_LIMIT_S = 3600.0


def ts(d: datetime | None) -> float:
    return d.timestamp() if d else float("nan")


def launch(f: Fleet, workdir: Path, n: int, *extra: str) -> tuple[float, int]:
    """`spotctl launch -y --async --num-jobs n ...` of the task; (seconds to return, first id).
    A launch whose pool check (a query of the pool, before any id is taken) timed out on the
    busy worker is tried again, and counted in the time: nothing was created."""
    t0 = time.perf_counter()
    for _ in range(5):
        _, done = f.cli("launch", "-y", "--async", "--num-jobs", str(n), *extra, str(workdir / "job.yaml"))
        if done.returncode == 0:
            return time.perf_counter() - t0, int(done.stdout.strip().splitlines()[-1])
        if "check_pool" not in done.stderr:
            break
        print("  launch: the pool check timed out (nothing created); again", flush=True)
    raise RuntimeError(f"launch failed: {done.stderr.strip()}")


async def wait_until(pred, what: str, every: float = 0.5) -> float:
    """Poll the async predicate until true; the time.time() it became so."""
    deadline = time.monotonic() + WAIT_LIMIT_S
    while not await pred():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(every)
    return time.time()


async def ordinary(f: Fleet, client: SpotClient, workdir: Path, n: int, job_s: float) -> dict:
    """The anchor: n ordinary jobs (each its own cluster), launched as one array."""
    t0 = time.time()
    _, first = launch(f, workdir, n, "-n", "bench-ordinary")
    q = array_query(first, n)
    await wait_until(lambda: _done(client, q, n), "ordinary jobs done")
    t1 = time.time()
    jobs = await client.list_jobs(q)
    over = [ts(j.ended_at) - ts(j.submitted_at) - job_s for j in jobs]
    return {"jobs": n, "wall_s": t1 - t0, "jobs_per_s": n / (t1 - t0), "succeeded": sum(j.status == JobStatus.SUCCEEDED for j in jobs),
            "overhead_p50_s": pct(over, 0.5), "overhead_p95_s": pct(over, 0.95), "overhead_mean_s": mean(over)}


async def _done(client: SpotClient, q: str, n: int) -> bool:
    terminal = " OR ".join(f"SpotctlStatus = '{s.value}'" for s in JobStatus if s.is_terminal)
    return await client.count_jobs(f"{q} AND ({terminal})") >= n


def preempt_workers(f: Fleet, pool_id: int, count: int, start_s: float, spread_s: float, seed: int,
                    log: list[dict], runs: dict[str, dict], job_s: float) -> None:
    """Take back `count` workers of the pool (no notice), at random moments in
    [start_s, start_s + spread_s) from now, reading each one's runs (runs_on) at once: the pool
    tears a lost worker down, and the local cloud deletes its disk. Blocking: run it in a thread."""
    rng = random.Random(seed)
    at = sorted(start_s + rng.uniform(0, spread_s) for _ in range(count))
    t0 = time.time()
    cloud = f.cloud
    for when in at:
        time.sleep(max(0.0, when - (time.time() - t0)))
        alive = [i for i in cloud.list_instances() if i.cluster_name.startswith(f"spotctl-{pool_id}-")]
        victim = rng.choice(alive)
        cloud.preempt(victim.id, notice_s=0)
        log.append({"at": time.time(), "worker": victim.cluster_name})
        runs.update(runs_on(cloud.instance_home(victim.id), job_s))


def runs_on(home: Path, job_s: float) -> dict[str, dict]:
    """Every run started on the instance at `home`, from the simulated node's files (its start
    file, env.json): "instance/job/attempt" -> the job, its rank, when it began, when its program
    ended (began + job_s, or where the instance's clock stopped at a preemption), and whether it
    ran to its end."""
    from spotctl.remote.local import stopped_marker

    try:
        stopped = stopped_marker(home).stat().st_mtime
    except FileNotFoundError:
        stopped = None
    runs = {}
    for start in home.glob(".spotctl/job-*/attempt-*/run.simstart"):
        attempt = start.parent
        jid = int(attempt.parent.name.removeprefix("job-"))
        began = float(start.read_text())
        env_file = attempt / "env.json"
        env = json.loads(env_file.read_text()) if env_file.exists() else {}
        finished = stopped is None or stopped >= began + job_s
        runs[f"{home.parent.name}/{jid}/{attempt.name}"] = {"worker": home.parent.name,
            "job": jid, "rank": env.get("SKYPILOT_JOB_RANK"), "began": began,
            "ended": began + job_s if finished else stopped, "finished": finished}
    return runs


def analyse(jobs: list[JobState], runs: list[dict], high_ids: set[int], workers: int, job_s: float,
            accepted_at: float) -> dict:
    """Throughput, busy fractions, overhead and priority order from the jobs' recorded states
    (each attempt: when the job got its worker, when it gave it back) and the runs' start files."""
    holds = [(ts(a.started_at), ts(a.ended_at)) for j in jobs for a in j.history if a.started_at and a.ended_at]
    first_grant, last_grant = min(h[0] for h in holds), max(h[0] for h in holds)
    w0, w1 = max(first_grant, accepted_at), last_grant  # jobs were waiting all through [w0, w1]
    if w1 <= w0:
        w0 = first_grant
    window = max(w1 - w0, 1e-9)
    held = sum(max(0.0, min(e, w1) - max(s, w0)) for s, e in holds)
    prog = sum(max(0.0, min(r["ended"], w1) - max(r["began"], w0)) for r in runs)
    began = {r["job"]: r["began"] for r in runs if r["finished"]}
    ok = [j for j in jobs if j.status == JobStatus.SUCCEEDED and j.history and j.job_id in began]
    last = {j.job_id: (ts(j.history[-1].started_at), ts(j.history[-1].ended_at)) for j in ok}
    overhead = [last[j][1] - last[j][0] - job_s for j in last]
    before_run = [began[j] - last[j][0] for j in last]
    after_run = [last[j][1] - began[j] - job_s for j in last]
    order = sorted(ok, key=lambda j: last[j.job_id][0])
    high_at = [k for k, j in enumerate(order) if j.job_id in high_ids]
    first_high = min((last[j][0] for j in last if j in high_ids), default=float("nan"))
    last_high = max((last[j][0] for j in last if j in high_ids), default=float("nan"))
    low_between = sum(1 for j in last if j not in high_ids and first_high < last[j][0] < last_high)
    gaps = worker_gaps(runs, w0, w1)
    return {
        "window_s": window, "held_fraction": held / (workers * window), "program_fraction": prog / (workers * window),
        "overhead_mean_s": mean(overhead), "overhead_p50_s": pct(overhead, 0.5), "overhead_p95_s": pct(overhead, 0.95),
        "grant_to_program_p50_s": pct(before_run, 0.5), "program_end_to_release_p50_s": pct(after_run, 0.5),
        "grant_to_program_mean_s": mean(before_run), "program_end_to_release_mean_s": mean(after_run),
        "high_first_grant_index": high_at[0] if high_at else None,
        "high_last_grant_index": high_at[-1] if high_at else None,
        "low_granted_between_first_and_last_high": low_between,
        "end": max(ts(j.ended_at) for j in jobs), "first_grant": first_grant,
        "worker_gap_mean_s": mean(gaps) if gaps else float("nan"), "worker_gap_p50_s": pct(gaps, 0.5),
        "worker_gap_p95_s": pct(gaps, 0.95), "worker_gaps": len(gaps),
    }


def worker_gaps(runs: list[dict], w0: float, w1: float) -> list[float]:
    """The worker's own view of the overhead per job: on each worker, from one program's end
    to the next program's start, for the hand-overs inside [w0, w1] (jobs waiting all along),
    whoever gave the worker back (the job's monitor or its workflow) and however late the
    jobs' own records are written."""
    by_worker: dict[str, list[dict]] = {}
    for r in runs:
        by_worker.setdefault(r.get("worker", ""), []).append(r)
    gaps = []
    for rs in by_worker.values():
        rs.sort(key=lambda r: r["began"])
        for a, b in zip(rs, rs[1:], strict=False):
            if a["finished"] and w0 <= a["ended"] and b["began"] <= w1:
                gaps.append(b["began"] - a["ended"])
    return gaps


def sample(f: Fleet, client: SpotClient, pool_id: int, stop: asyncio.Event, out: list[dict]) -> asyncio.Task:
    async def loop() -> None:
        while not stop.is_set():
            try:
                st = await pool_state(client.temporal, POOL)
            except Exception as exc:  # noqa: BLE001 - a busy server missed one sample: the next one counts
                print(f"  (sample skipped: {exc})", flush=True)
                await asyncio.sleep(1.0)
                continue
            server, worker = f.rss()
            busy = sum(w.phase == "busy" for w in st.workers) if st else 0
            alive = sum(w.phase in ("idle", "busy") for w in st.workers) if st else 0
            carried = len(json.dumps([w.model_dump(mode="json") for w in st.workers])) if st else 0
            out.append({"t": time.time(), "queued": st.queued if st else 0, "busy": busy, "alive": alive,
                        "rss_server_mib": server, "rss_worker_mib": worker, "workers_json_bytes": carried})
            await asyncio.sleep(1.0)
    return asyncio.create_task(loop())


async def run(f: Fleet, a: argparse.Namespace, workdir: Path) -> dict:
    client = await SpotClient.connect(f.settings)
    result: dict = {"jobs": a.jobs, "high_jobs": a.jobs // 10, "workers": a.workers, "job_s": a.job_s,
                    "worker_processes": a.worker_processes, "load_before": os.getloadavg(),
                    "started": datetime.now().isoformat(timespec="seconds")}
    if a.ordinary:
        print(f"anchor: {a.ordinary} ordinary jobs", flush=True)
        result["ordinary"] = await ordinary(f, client, workdir, a.ordinary, a.job_s)
        print(f"  {result['ordinary']}", flush=True)
    t0 = time.time()
    took, done = f.cli("pool", "apply", "-y", "-p", POOL, "--workers", str(a.workers), str(workdir / "pool.yaml"))
    if done.returncode != 0:
        raise RuntimeError(done.stderr)

    async def ready() -> bool:
        st = await pool_state(client.temporal, POOL)
        return st is not None and sum(w.phase == "idle" for w in st.workers) >= a.workers
    await wait_until(ready, "pool ready", 1.0)
    result["pool_ready_s"] = time.time() - t0
    st = await pool_state(client.temporal, POOL)
    assert st is not None
    pool_id = st.pool_id
    print(f"pool of {a.workers} ready in {result['pool_ready_s']:.1f} s", flush=True)
    rss0 = f.rss()
    samples: list[dict] = []
    stop = asyncio.Event()
    high_n = a.jobs // 10
    t_submit = time.time()
    returned, first = launch(f, workdir, a.jobs, "-p", POOL, "-n", "bench-pool")
    main_accepted_at = await wait_until(lambda: _count_is(client, array_query(first, a.jobs), a.jobs), "accepted", 0.25)
    print(f"all {a.jobs} jobs of the array accepted {main_accepted_at - t_submit:.1f} s after its launch started",
          flush=True)
    returned_high, first_high = launch(f, workdir, high_n, "-p", POOL, "-n", "bench-pool-high", "--priority", str(HIGH))
    sampler = sample(f, client, pool_id, stop, samples)  # after the launches: its queries load the worker too
    q_all = f"(({array_query(first, a.jobs)}) OR ({array_query(first_high, high_n)}))"
    total = a.jobs + high_n
    print(f"launch returned in {returned:.2f} s (+{returned_high:.2f} s for the priority-{HIGH} array)", flush=True)
    expected = total / a.workers * (a.job_s + 2.5)
    victims = max(1, round(a.workers * PREEMPT_FRACTION))
    preempted: list[dict] = []
    runs: dict[str, dict] = {}
    killer = threading.Thread(target=preempt_workers, args=(f, pool_id, victims, 0.2 * expected, 0.5 * expected,
                                                            a.seed, preempted, runs, a.job_s), daemon=True)
    killer.start()
    accepted_at = await wait_until(lambda: _count_is(client, q_all, total), "all accepted", 0.5)
    rss_full = f.rss()
    result["submission"] = {"command_returned_s": returned, "high_command_returned_s": returned_high,
                            "array_accepted_s": main_accepted_at - t_submit, "all_accepted_s": accepted_at - t_submit}
    print(f"all {total} jobs accepted {accepted_at - t_submit:.1f} s after the first launch started", flush=True)
    done_at = await wait_until(lambda: _done(client, q_all, total), "all done", 1.0)
    stop.set()
    await sampler
    killer.join()
    print(f"all {total} jobs done {done_at - t_submit:.1f} s after submission", flush=True)
    jobs = await client.list_jobs(q_all)
    high_ids = set(range(first_high, first_high + high_n))
    for i in f.cloud.list_instances():
        runs.update(runs_on(f.cloud.instance_home(i.id), a.job_s))
    result["pool"] = analyse(jobs, list(runs.values()), high_ids, a.workers, a.job_s, accepted_at)
    result["pool"]["wall_s"] = done_at - t_submit
    result["pool"]["jobs_per_s"] = total / (done_at - t_submit)
    result["pool"]["steady_jobs_per_s"] = total / (result["pool"]["end"] - result["pool"]["first_grant"])
    result["pool"]["ideal_jobs_per_s"] = a.workers / a.job_s
    result["preempted"] = preempted
    sample_ids = sorted(j.job_id for j in jobs)[:: max(1, total // a.count_sample)]
    result["counts_per_job"] = await per_job(client.temporal, [job_workflow_id(i) for i in sample_ids],
                                             pool_workflow_id(POOL), total)
    states = [j.status for j in jobs]
    recoveries = sum(j.recoveries for j in jobs)
    finished: dict[int, int] = {}
    ranks: dict[str, int] = {}
    for r in runs.values():
        if r["finished"]:
            finished[r["job"]] = finished.get(r["job"], 0) + 1
            key = f"{'high' if r['job'] in high_ids else 'low'}:{r['rank']}"
            ranks[key] = ranks.get(key, 0) + 1
    result["exactly_once"] = {
        "jobs": len(jobs), "succeeded": sum(s == JobStatus.SUCCEEDED for s in states),
        "not_succeeded": sorted({s.value for s in states if s != JobStatus.SUCCEEDED}),
        "recoveries": recoveries, "runs_started": len(runs),
        "runs_cut_by_preemption": sum(not r["finished"] for r in runs.values()),
        "jobs_with_one_finished_run": sum(n == 1 for n in finished.values()),
        "jobs_with_more_finished_runs": sum(n > 1 for n in finished.values()),
        "ranks_once": sum(v == 1 for v in ranks.values()), "ranks_expected": total,
    }
    peak = max(samples, key=lambda s: s["queued"]) if samples else None
    wait_n = peak["queued"] if peak else 0
    running = a.workers
    per_job_mib = (sum(rss_full) - sum(rss0)) / total
    req = PoolRequest(job_id=first + a.jobs - 1, seq=1, priority=500, submitted_at=jobs[0].submitted_at)
    result["memory"] = {
        "rss_before_mib": {"server": rss0[0], "worker": rss0[1]},
        "rss_all_accepted_mib": {"server": rss_full[0], "worker": rss_full[1]},
        "controller_mib_per_job": per_job_mib,
        "worker_mib_per_job": (rss_full[1] - rss0[1]) / total,
        "peak_queued": wait_n,
        "carried_bytes_per_waiting_job": len(req.model_dump_json()),
        "carried_bytes_per_busy_worker": max((s["workers_json_bytes"] for s in samples), default=0) / max(1, running),
        "rss_peak_mib": max((s["rss_server_mib"] + s["rss_worker_mib"] for s in samples), default=0),
    }
    result["timeline_origin"] = t_submit
    result["timeline"] = [{k: (round(v - t_submit, 2) if k == "t" else v) for k, v in s.items()} for s in samples]
    took, down = f.cli("pool", "down", "-y", POOL)
    if down.returncode != 0:
        raise RuntimeError(down.stderr)
    cloud = f.cloud
    deadline = time.monotonic() + 300
    while cloud.list_instances() and time.monotonic() < deadline:
        await asyncio.sleep(1)
    result["instances_left"] = len(cloud.list_instances())
    return result


async def _count_is(client: SpotClient, q: str, n: int) -> bool:
    return await client.count_jobs(q) >= n


def write_files(workdir: Path, job_s: float) -> None:
    (workdir / "pool.yaml").write_text("pool:\n  workers: 1\nsetup: echo ready\n")
    (workdir / "job.yaml").write_text("run: echo rank $SKYPILOT_JOB_RANK of $SKYPILOT_NUM_JOBS\n")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=10_000, help="the main array (a second of jobs/10 at priority 900)")
    p.add_argument("--workers", type=int, default=200)
    p.add_argument("--job-s", type=float, default=10.0, help="each job's program, seconds")
    p.add_argument("--ordinary", type=int, default=200, help="ordinary jobs in the anchor (0: none)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--worker-processes", type=int, default=1, help="`spotctl worker` processes (bench/fleet.py)")
    p.add_argument("--count-sample", type=int, default=50, help="jobs whose histories are counted")
    p.add_argument("--quick", action="store_true", help="100 jobs, 20 workers, 3 s jobs, 20 ordinary; prints only")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "pool_throughput.json")
    p.add_argument("--no-report", action="store_true", help="do not write BENCHMARKS.md and the plot")
    p.add_argument("--before", type=Path, help="an earlier result (JSON) to set against this one in the report")
    p.add_argument("--note", default="", help="a paragraph for the report (e.g. how the size was scaled)")
    a = p.parse_args()
    if a.quick:
        a.jobs, a.workers, a.job_s, a.ordinary = 100, 20, 3.0, 20
    with fleet(workers=a.worker_processes, run_s=a.job_s, lines_per_s=0.5) as f:
        workdir = Path(f.settings.home) / "bench-files"
        workdir.mkdir()
        write_files(workdir, a.job_s)
        result = asyncio.run(run(f, a, workdir))
    result["command_args"] = " ".join(sys.argv[1:]) or "(defaults)"
    result["scaled_note"] = a.note
    if a.before:
        result["before"] = {k: v for k, v in json.loads(a.before.read_text()).items() if k != "timeline"}
    print(json.dumps({k: v for k, v in result.items() if k != "timeline"}, indent=1, default=str))
    if not a.quick:
        a.out.write_text(json.dumps(result, indent=1, default=str) + "\n")
        if not a.no_report:
            from pool_report import write_report
            write_report(result)
    once = result["exactly_once"]
    return 0 if once["succeeded"] == once["jobs"] and result["instances_left"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
