"""Benchmark: many running jobs on one worker.

    python bench/scale.py [--jobs 100] [--window 20]

Starts N jobs (each `sleep`s on its own local-cloud instance) on an in-process worker against
a private Temporal dev server, waits until all are RUNNING, then measures a steady-state
window: CPU used by this process (worker + a bench client that is idle in the window) and by
the Temporal server, and the batched cloud liveness calls. Anchor, same run: the CPU of the
same window with a single job running. Then cancels everything and checks nothing is left.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import bench_environment  # noqa: E402

from spotctl.models import JobSpec, JobStatus  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if int(Path(f"/proc/{entry}/stat").read_text().rsplit(") ", 1)[1].split()[1]) == pid:
                    found.append(int(entry))
            except (OSError, IndexError):
                pass
    return found


async def main(jobs: int, window: float) -> None:
    server_pids_before = set(children(os.getpid()))
    async with bench_environment("scale", capacity=10000) as b:
        client, cloud, deps, candidates = b.client, b.cloud, b.deps, b.candidates
        server_pids = [p for p in set(children(os.getpid())) - server_pids_before
                       if "temporal" in Path(f"/proc/{p}/cmdline").read_text()]

        async def start(ids: range) -> float:
            t0 = time.perf_counter()
            for jid in ids:
                await client.start_job(JobSpec(job_id=jid, name=f"scale-{jid}", run="sleep 3600", candidates=candidates,
                                               submitted_at=datetime.now(UTC)))
            pending = set(ids)
            while pending:
                for jid in list(pending):
                    if (await client.get_job(jid)).status == JobStatus.RUNNING:
                        pending.discard(jid)
                await asyncio.sleep(0.2)
            return time.perf_counter() - t0

        async def measure() -> tuple[float, float, float]:
            me0, srv0, calls0 = cpu_seconds(os.getpid()), sum(map(cpu_seconds, server_pids)), deps.watchers.calls("local")
            await asyncio.sleep(window)
            me1, srv1, calls1 = cpu_seconds(os.getpid()), sum(map(cpu_seconds, server_pids)), deps.watchers.calls("local")
            return (me1 - me0) / window * 100, (srv1 - srv0) / window * 100, (calls1 - calls0) / window

        await start(range(1, 2))
        one = await measure()
        ramp = await start(range(2, jobs + 2))
        many = await measure()
        for jid in range(1, jobs + 2):
            await client.cancel(jid)
        t0 = time.perf_counter()
        for jid in range(1, jobs + 2):
            while not (await client.get_job(jid, live=False)).status.is_terminal:
                await asyncio.sleep(0.2)
        drain = time.perf_counter() - t0
        left = cloud.list_instances(alive_only=True)

    print(f"| jobs running | 1 | {jobs + 1} | ratio |")
    print("|---|---|---|---|")
    print(f"| worker process CPU % (steady, {window:.0f} s) | {one[0]:.1f} | {many[0]:.1f} | {many[0] / max(one[0], 0.1):.1f}x |")
    print(f"| Temporal server CPU % | {one[1]:.1f} | {many[1]:.1f} | {many[1] / max(one[1], 0.1):.1f}x |")
    print(f"| cloud liveness calls/s | {one[2]:.2f} | {many[2]:.2f} | {many[2] / max(one[2], 0.01):.1f}x |")
    print(f"| {jobs} launches to all RUNNING | | {ramp:.1f} s ({jobs / ramp:.1f} jobs/s) | |")
    print(f"| cancel all to all CANCELLED | | {drain:.1f} s | |")
    print(f"| instances left | | {len(left)} | |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--window", type=float, default=20.0)
    args = parser.parse_args()
    asyncio.run(main(args.jobs, args.window))
