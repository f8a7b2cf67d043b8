"""Benchmark: issue 6's done-show, managed jobs on a cloud as slow and moody as a real one.

    python bench/moody.py [--jobs 20] [--boot 30] [--latency 2] [--throttle 0.2]

Every region boots instances in `--boot` s, adds `--latency` s to every API call and throttles
a `--throttle` fraction of them. Then:
1. N jobs (`sleep 1000`) are each cancelled at a random moment in their first boot+15 s
   (during create, the wait for the boot, setup, or the run): all must end CANCELLED with no
   instance left and at most one VM per attempt;
2. N jobs (`echo`) run to SUCCEEDED with no recovery and one VM per attempt.
Prints a Markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Bench, bench_environment  # noqa: E402

from spotctl.models import JobSpec, JobStatus  # noqa: E402


def set_moods(bench: Bench, **fields: float) -> None:
    data = yaml.safe_load(bench.cloud.config_path.read_text())
    for region in data["regions"].values():
        region.update(fields)
    bench.cloud.config_path.write_text(yaml.safe_dump(data))


async def launch(bench: Bench, job_id: int, run: str) -> None:
    spec = JobSpec(job_id=job_id, name=f"moody-{job_id}", run=run, candidates=bench.candidates,
                   submitted_at=datetime.now(UTC), launch_retry_initial_s=2.0)
    await bench.client.start_job(spec)


async def final(bench: Bench, job_id: int):
    return await bench.client.result(job_id)


def vms_per_attempt(bench: Bench, job_ids: range) -> Counter:
    """How many instances each attempt's cluster ever had (terminated ones included)."""
    wanted = {f"spotctl-{j}-" for j in job_ids}
    clusters = Counter(i.cluster_name for i in bench.cloud.list_instances(alive_only=False)
                       if any(i.cluster_name.startswith(w) for w in wanted))
    return Counter(clusters.values())


async def cancel_at(bench: Bench, job_id: int, at: float, started: float) -> tuple[str, float]:
    await asyncio.sleep(max(0.0, started + at - time.monotonic()))
    seen = (await bench.client.get_job(job_id)).status.value
    t0 = time.monotonic()
    await bench.client.cancel(job_id)
    state = await final(bench, job_id)
    assert state.status == JobStatus.CANCELLED, state
    return seen, time.monotonic() - t0


async def main(jobs: int, boot: float, latency: float, throttle: float) -> None:
    async with bench_environment("moody", capacity=4 * jobs) as bench:
        set_moods(bench, provision_delay_s=boot, api_latency_s=latency, throttle_rate=throttle)
        rng = random.Random(6)
        # 1. cancels at random moments
        ids = range(1, jobs + 1)
        started = time.monotonic()
        await asyncio.gather(*(launch(bench, j, "sleep 1000") for j in ids))
        moments = [rng.uniform(0, boot + 15) for _ in ids]
        results = await asyncio.gather(*(cancel_at(bench, j, at, started) for j, at in zip(ids, moments, strict=True)))
        cancel_wall = time.monotonic() - started
        left_after_cancel = len(bench.cloud.list_instances(alive_only=True))
        seen = Counter(s for s, _ in results)
        stop_s = sorted(d for _, d in results)
        vms_cancelled = vms_per_attempt(bench, ids)
        # 2. jobs that run to the end
        ids2 = range(jobs + 1, 2 * jobs + 1)
        t0 = time.monotonic()
        await asyncio.gather(*(launch(bench, j, "echo ok") for j in ids2))
        states = await asyncio.gather(*(final(bench, j) for j in ids2))
        run_wall = time.monotonic() - t0
        outcomes = Counter(s.status.value for s in states)
        recoveries = sum(s.recoveries for s in states)
        to_running = sorted((s.started_at - s.submitted_at).total_seconds() for s in states if s.started_at)
        vms_ok = vms_per_attempt(bench, ids2)
        left = len(bench.cloud.list_instances(alive_only=True))
        calls = bench.deps.watchers.calls("local")
        failures = bench.deps.watchers.failures("local")
    print(f"moody cloud: boot {boot:g} s, API latency {latency:g} s, throttled {throttle:.0%}, {jobs} jobs per part\n")
    print("| measure | value |")
    print("|---|---|")
    print(f"| cancelled jobs ending CANCELLED | {sum(seen.values())}/{jobs} (status when cancelled: "
          + ", ".join(f"{k} {v}" for k, v in sorted(seen.items())) + ") |")
    print(f"| cancel -> CANCELLED | median {statistics.median(stop_s):.1f} s, p90 {stop_s[int(0.9 * (len(stop_s) - 1))]:.1f} s, max {stop_s[-1]:.1f} s |")
    print(f"| instances alive after the cancels | {left_after_cancel} |")
    print(f"| VMs per attempt (cancelled jobs) | {dict(vms_cancelled)} |")
    print(f"| jobs run to the end | {dict(outcomes)}, {recoveries} recoveries |")
    print(f"| submit -> RUNNING | median {statistics.median(to_running):.1f} s, max {to_running[-1]:.1f} s (anchor: boot {boot:g} s) |")
    print(f"| VMs per attempt (succeeded jobs) | {dict(vms_ok)} |")
    print(f"| liveness calls / failed (throttled or slow) | {calls} / {failures} |")
    print(f"| instances alive at the end | {left} |")
    print(f"| wall time | cancels {cancel_wall:.0f} s, runs {run_wall:.0f} s |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--boot", type=float, default=30.0)
    parser.add_argument("--latency", type=float, default=2.0)
    parser.add_argument("--throttle", type=float, default=0.2)
    args = parser.parse_args()
    asyncio.run(main(args.jobs, args.boot, args.latency, args.throttle))
