"""Benchmark: N concurrent managed jobs on one machine, the controller's cost and speed.

    python bench/run.py                  # N = 100, 300, 1000; writes BENCHMARKS.md + bench/plots/
    python bench/run.py --jobs 1000 --workers 2
    python bench/run.py --quick          # N = 50, prints, fails past twice a target (CI runs it)

Each N gets a fresh embedded deployment (bench/fleet.py): the `temporal` dev server with its
SQLite file, `spotctl worker` process(es), the local cloud in its benchmark mode (simulated
instances: no process per VM). Measured per N:
- RSS of the server and the worker(s) with N jobs RUNNING, minus the same processes' RSS
  before the first launch (the anchor), per job; CPU % of each over a steady window;
- launch throughput: first launch to all N RUNNING (jobs started 32 at a time by a client);
- 10% of the jobs preempted at random moments within 10 s: preemption -> the workflow seeing it
  (the attempt's end, on the workflow's clock) and -> RUNNING again, p50/p95/max;
- `spotctl status` and `status --json` wall time (a CLI process, as a user runs it), against
  the same command with no job (the anchor: the CLI's start-up);
- `spotctl cancel -a -y` to every job's workflow closed, and the instances left.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fleet import Fleet, fleet, preempt_at_random  # noqa: E402
from measures import Row, pct  # noqa: E402
from report import QUICK_LIMITS, TARGETS, quick_failures, write_report  # noqa: E402

from spotctl.client import JOB_WORKFLOW, SpotClient  # noqa: E402
from spotctl.models import JobSpec  # noqa: E402
from spotctl.policy import rank_candidates  # noqa: E402

METHOD = __doc__.split("\n\n", 2)[2].strip()
"""What is measured and how, for BENCHMARKS.md (this docstring's part after the usage)."""
LAUNCH_CONCURRENCY = 32
PREEMPT_SPREAD_S = 10.0
WAIT_LIMIT_S = 900.0


async def count(client: SpotClient, where: str) -> int:
    q = f"WorkflowType = '{JOB_WORKFLOW}' AND ExecutionStatus = 'Running' AND {where}"
    return (await client.temporal.count_workflows(q)).count


async def wait_count(client: SpotClient, where: str, want: int, what: str) -> None:
    deadline = time.monotonic() + WAIT_LIMIT_S
    while (have := await count(client, where)) != want:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: {have} of {want} after {WAIT_LIMIT_S:.0f}s")
        await asyncio.sleep(0.25)


async def launch(client: SpotClient, f: Fleet, n: int) -> tuple[float, float, float]:
    """Seconds from the first launch to all RUNNING, and the CPU % of (server, workers) meanwhile."""
    s0, w0 = f.cpu()
    took = await _launch(client, f, n)
    s1, w1 = f.cpu()
    return took, (s1 - s0) / took * 100, (w1 - w0) / took * 100


async def _launch(client: SpotClient, f: Fleet, n: int) -> float:
    candidates = rank_candidates(f.cloud.offerings(), [])
    gate = asyncio.Semaphore(LAUNCH_CONCURRENCY)

    async def one(jid: int) -> None:
        async with gate:
            await client.start_job(JobSpec(job_id=jid, name=f"bench-{jid}", run="simulated", candidates=candidates,
                                           submitted_at=datetime.now(UTC)))

    t0 = time.perf_counter()
    await asyncio.gather(*(one(jid) for jid in range(1, n + 1)))
    await wait_count(client, "SpotctlStatus = 'RUNNING'", n, "jobs RUNNING")
    return time.perf_counter() - t0


async def steady(f: Fleet, window: float) -> tuple[float, float]:
    """CPU % of (server, workers) over the window."""
    s0, w0 = f.cpu()
    await asyncio.sleep(window)
    s1, w1 = f.cpu()
    return (s1 - s0) / window * 100, (w1 - w0) / window * 100


async def preempt(client: SpotClient, f: Fleet, n: int, seed: int) -> tuple[list[float], list[float]]:
    """Preempt 10% of the jobs; (detection seconds, back-to-RUNNING seconds) per job."""
    when = await asyncio.to_thread(preempt_at_random, f, list(range(1, n + 1)), seed, PREEMPT_SPREAD_S)
    victims = list(when)
    await wait_count(client, "SpotctlRecoveries >= 1 AND SpotctlStatus = 'RUNNING'", len(victims), "recovered jobs")
    detect, back = [], []
    for jid in victims:
        job = await client.get_job(jid)
        detect.append(job.history[0].ended_at.timestamp() - when[jid])
        back.append(job.run_started_at.timestamp() - when[jid])
    return detect, back


async def cancel_all(client: SpotClient, f: Fleet) -> tuple[float, int]:
    t0 = time.perf_counter()
    _, result = f.cli("cancel", "-a", "-y")
    if result.returncode != 0:
        raise RuntimeError(f"cancel -a failed: {result.stderr.strip()[-500:]}")
    await wait_count(client, "SpotctlJobId >= 0", 0, "jobs still open after cancel -a")
    took = time.perf_counter() - t0
    deadline = time.monotonic() + 60
    while (left := len(f.cloud.list_instances(alive_only=True))) and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    return took, left


def timed_status(f: Fleet, *args: str) -> float:
    took, result = f.cli("status", *args)
    if result.returncode != 0:
        raise RuntimeError(f"status {' '.join(args)} failed: {result.stderr.strip()[-500:]}")
    return took


def measure(n: int, workers: int, window: float, seed: int, profile: Path | None = None) -> Row:
    """One N on a fresh deployment (started and stopped outside the event loop: its start-up
    runs its own)."""
    with fleet(workers=workers) as f, profiling(f, profile, n):
        return asyncio.run(_measure(f, n, workers, window, seed))


@contextmanager
def profiling(f: Fleet, out: Path | None, n: int) -> Iterator[None]:
    """py-spy (`pip install py-spy`) on every worker for the whole measurement, if asked."""
    if out is None:
        yield
        return
    out.mkdir(parents=True, exist_ok=True)
    spies = [subprocess.Popen(["py-spy", "record", "--pid", str(pid), "--format", "raw", "--rate", "50", "--gil",
                               "--output", str(out / f"worker-{k}-N{n}.txt")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for k, pid in enumerate(f.worker_pids)]
    try:
        yield
    finally:
        for spy in spies:
            spy.send_signal(signal.SIGINT)
        for spy in spies:
            spy.wait(timeout=60)


async def _measure(f: Fleet, n: int, workers: int, window: float, seed: int) -> Row:
    client = await SpotClient.connect(f.settings)
    await asyncio.sleep(3)
    status_0 = timed_status(f)
    rss_server_0, rss_workers_0 = f.rss()
    print(f"[N={n}] launching", flush=True)
    launch_s, cpu_launch_server, cpu_launch_workers = await launch(client, f, n)
    print(f"[N={n}] all RUNNING in {launch_s:.1f}s; steady window {window:.0f}s", flush=True)
    await asyncio.sleep(5)
    cpu_server, cpu_workers = await steady(f, window)
    rss_server, rss_workers = f.rss()
    load = os.getloadavg()[0]
    print(f"[N={n}] preempting {max(1, n // 10)} jobs", flush=True)
    detect, back = await preempt(client, f, n, seed)
    status_s = timed_status(f)
    status_json_s = timed_status(f, "--json")
    print(f"[N={n}] cancelling all", flush=True)
    cancel_s, left = await cancel_all(client, f)
    return Row(n, workers, rss_server_0, rss_workers_0, rss_server, rss_workers, cpu_server, cpu_workers,
               launch_s, len(detect), detect, back, status_s, status_json_s, status_0, cancel_s, left, load,
               cpu_launch_server, cpu_launch_workers)


def summary(row: Row) -> str:
    return (f"N={row.jobs} workers={row.workers}: {row.mib_per_job:.2f} MiB/job "
            f"(server {row.rss_server_0:.0f}->{row.rss_server:.0f} MiB, workers {row.rss_workers_0:.0f}->"
            f"{row.rss_workers:.0f} MiB); CPU server {row.cpu_server:.0f}% workers {row.cpu_workers:.0f}%; "
            f"launch {row.launch_s:.1f}s ({row.launch_rate:.1f} jobs/s, CPU server {row.cpu_launch_server:.0f}% "
            f"workers {row.cpu_launch_workers:.0f}%); detection p50 {pct(row.detect, .5):.2f}s "
            f"p95 {pct(row.detect, .95):.2f}s max {max(row.detect):.2f}s; RUNNING again p50 "
            f"{pct(row.back, .5):.2f}s p95 {pct(row.back, .95):.2f}s; status {row.status_s:.2f}s "
            f"(--json {row.status_json_s:.2f}s, no jobs {row.status_0_s:.2f}s); cancel-all {row.cancel_s:.1f}s; "
            f"left {row.left}; load {row.load:.1f}")


def command_line(rows: list[Row]) -> str:
    """The arguments that measure the kept rows, for the report's command line: a
    `--report-only` run has no measuring command of its own, and a fixed one goes stale when
    rows are added. One run per worker count (rows are kept by (jobs, workers), so runs one
    after the other add up to the file), `--workers` only where it is not the default 1."""
    runs = []
    for workers in sorted({r.workers for r in rows}):
        ns = sorted({r.jobs for r in rows if r.workers == workers})
        runs.append("--jobs " + ",".join(map(str, ns)) + (f" --workers {workers}" if workers != 1 else ""))
    return " && python bench/run.py ".join(runs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", default="100,300,1000", help="comma-separated N (default 100,300,1000)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--window", type=float, default=30.0, help="steady-state window, seconds")
    parser.add_argument("--quick", action="store_true", help="N=50, no report; exit 1 past twice a target")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--rows", type=Path, default=Path(__file__).parent / "results.json",
                        help="where measured rows are kept between runs (the report uses all of them)")
    parser.add_argument("--no-report", action="store_true", help="measure and print only")
    parser.add_argument("--report-only", action="store_true", help="write the report from the kept rows only")
    parser.add_argument("--profile", type=Path, help="record py-spy profiles (collapsed stacks) of the worker(s) "
                        "and the server into this directory")
    args = parser.parse_args()
    if args.report_only:
        rows = [Row(**r) for r in json.loads(args.rows.read_text())]
        write_report(rows, command_line(rows), method=METHOD)
        return 0
    ns = [50] if args.quick else [int(x) for x in args.jobs.split(",")]
    window = 10.0 if args.quick else args.window
    rows = [measure(n, args.workers, window, args.seed, args.profile) for n in ns]
    for row in rows:
        print(summary(row))
    if args.quick:
        failures = quick_failures(rows[0])
        for failure in failures:
            print(f"FAIL: {failure}")
        print("targets:", json.dumps(TARGETS), "quick limits:", json.dumps(QUICK_LIMITS))
        return 1 if failures else 0
    if not args.no_report:
        kept = json.loads(args.rows.read_text()) if args.rows.exists() else []
        fresh = {(r.jobs, r.workers) for r in rows}
        kept = [r for r in kept if (r["jobs"], r["workers"]) not in fresh] + [asdict(r) for r in rows]
        args.rows.write_text(json.dumps(kept, indent=1) + "\n")
        rows = [Row(**r) for r in kept]
        write_report(rows, command_line(rows), method=METHOD)
    return 0


if __name__ == "__main__":
    sys.exit(main())
