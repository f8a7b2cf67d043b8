"""Benchmark: how fast a preemption is noticed, and what watching many jobs costs.

    python bench/preemption.py [--jobs 20] [--preemptions 10]

Runs an in-process worker against a private Temporal dev server and the local cloud, then
1. preempts running jobs (no notice) and measures preempt -> RECOVERING (live query);
   anchor, same run: a cancel signal -> CANCELLING round-trip (Temporal alone, no cloud);
2. holds N jobs RUNNING and counts batched cloud liveness calls per second, against 1 job.
Prints a Markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import bench_environment  # noqa: E402

from spotctl.client import SpotClient  # noqa: E402
from spotctl.models import JobSpec, JobStatus, cluster_name  # noqa: E402


def spec(job_id: int, candidates, run: str) -> JobSpec:
    return JobSpec(job_id=job_id, name=f"bench-{job_id}", run=run, candidates=candidates,
                   submitted_at=datetime.now(UTC), launch_retry_initial_s=1.0)


async def wait_status(client: SpotClient, job_id: int, *wanted: JobStatus, poll: float = 0.02) -> float:
    while True:
        state = await client.get_job(job_id)
        if state.status in wanted:
            return time.perf_counter()
        await asyncio.sleep(poll)


def pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


async def main(jobs: int, preemptions: int) -> None:
    async with bench_environment("bench", capacity=1000) as b:
        client, cloud, deps, candidates = b.client, b.cloud, b.deps, b.candidates
        next_id = iter(range(1, 100_000))

        # 1. preemption -> RECOVERING, and the cancel round-trip anchor
        detect, anchor = [], []
        for _ in range(preemptions):
            jid = next(next_id)
            await client.start_job(spec(jid, candidates, "sleep 1000"))
            await wait_status(client, jid, JobStatus.RUNNING)
            await asyncio.sleep(0.3)
            t0 = time.perf_counter()
            await asyncio.to_thread(cloud.preempt_cluster, cluster_name(jid, 1), 0)
            detect.append(await wait_status(client, jid, JobStatus.RECOVERING, JobStatus.STARTING) - t0)
            await wait_status(client, jid, JobStatus.RUNNING)
            t0 = time.perf_counter()
            await client.cancel(jid)
            anchor.append(await wait_status(client, jid, JobStatus.CANCELLING, JobStatus.CANCELLED) - t0)
            await wait_status(client, jid, JobStatus.CANCELLED)

        # 2. liveness calls per second with 1 job vs N jobs running
        async def calls_per_s(n: int, seconds: float = 5.0) -> float:
            ids = [next(next_id) for _ in range(n)]
            for jid in ids:
                await client.start_job(spec(jid, candidates, "sleep 1000"))
            for jid in ids:
                await wait_status(client, jid, JobStatus.RUNNING, poll=0.2)
            before, t0 = deps.watchers.calls("local"), time.perf_counter()
            await asyncio.sleep(seconds)
            rate = (deps.watchers.calls("local") - before) / (time.perf_counter() - t0)
            for jid in ids:
                await client.cancel(jid)
            for jid in ids:
                await wait_status(client, jid, JobStatus.CANCELLED, poll=0.2)
            return rate

        one, many = await calls_per_s(1), await calls_per_s(jobs)
        left = cloud.list_instances(alive_only=True)

    print(f"| preempt -> RECOVERING (n={preemptions}) | median {statistics.median(detect):.2f} s | "
          f"p90 {pct(detect, 0.9):.2f} s | max {max(detect):.2f} s |")
    print(f"| anchor: cancel signal -> CANCELLING | median {statistics.median(anchor):.3f} s | "
          f"ratio {statistics.median(detect) / statistics.median(anchor):.1f}x | |")
    print(f"| cloud liveness calls/s, 1 job running | {one:.2f} | | |")
    print(f"| cloud liveness calls/s, {jobs} jobs running | {many:.2f} | ratio {many / one:.2f}x | |")
    print(f"| instances left | {len(left)} | | |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--preemptions", type=int, default=10)
    args = parser.parse_args()
    asyncio.run(main(args.jobs, args.preemptions))
