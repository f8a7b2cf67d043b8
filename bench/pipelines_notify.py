"""Benchmark: issue 12, what a pipeline and status notifications cost.

    python bench/pipelines_notify.py [--rounds 5] [--jobs 20]

An in-process worker, a private Temporal dev server, the local cloud (one process per VM).
1. Pipelines: `--rounds` times, three one-line tasks run as three single jobs one after
   another (the anchor: what a user would script without pipelines) and as one 3-task pipeline;
   reported: wall time of each, their ratio, and the hand-over gap between tasks (a task's end
   to the next task's cluster being asked for).
2. Notifications: `--jobs` jobs at once with a webhook on 127.0.0.1 hearing every status;
   reported: the delay from a transition (the event's `at`) to its POST arriving, and the
   events per job. Then the webhook is down while the same number of jobs run, and comes back:
   reported is how long after its return every event had arrived.
Prints Markdown for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from harness import Bench, bench_environment  # noqa: E402
from webhook_receiver import Receiver, running_receiver  # noqa: E402

from spotctl.models import JobSpec, JobStatus, NotifySettings, PipelineSpec, PipelineTask  # noqa: E402

TASKS = ("prep", "train", "eval")


def task_spec(bench: Bench, job_id: int, name: str, now: datetime, **extra: object) -> JobSpec:
    return JobSpec(job_id=job_id, name=name, run=f"echo {name}", candidates=bench.candidates[:4],
                   submitted_at=now, launch_retry_initial_s=2.0, **extra)


async def single_jobs(bench: Bench, first_id: int) -> float:
    started = time.monotonic()
    for i, name in enumerate(TASKS):
        await bench.client.start_job(task_spec(bench, first_id + i, name, datetime.now(UTC)))
        state = await bench.client.result(first_id + i)
        assert state.status == JobStatus.SUCCEEDED, state
    return time.monotonic() - started


async def pipeline(bench: Bench, job_id: int) -> tuple[float, list[float]]:
    now = datetime.now(UTC)
    tasks = [task_spec(bench, job_id, name, now, task=PipelineTask(index=i, count=len(TASKS), name=name,
                                                                    pipeline_name="bench"))
             for i, name in enumerate(TASKS)]
    started = time.monotonic()
    await bench.client.start_job(PipelineSpec(job_id=job_id, name="bench", tasks=tasks, submitted_at=now))
    state = await bench.client.result(job_id)
    wall = time.monotonic() - started
    assert state.status == JobStatus.SUCCEEDED, state
    records = sorted(state.history, key=lambda r: r.attempt)
    gaps = [(b.launched_at - a.ended_at).total_seconds() for a, b in zip(records, records[1:], strict=False)
            if a.task != b.task and a.ended_at and b.launched_at]
    return wall, gaps


async def notified_jobs(bench: Bench, receiver: Receiver, first_id: int, count: int) -> list[int]:
    notify = NotifySettings(url=receiver.url(), on=list(JobStatus))
    ids = list(range(first_id, first_id + count))
    for job_id in ids:
        await bench.client.start_job(task_spec(bench, job_id, f"n{job_id}", datetime.now(UTC), notify=notify))
    return ids


def arrivals(receiver: Receiver, ids: list[int]) -> list[tuple[dict, float]]:
    out = []
    for r in receiver.requests:
        body = json.loads(r["body"])
        if body["job_id"] in ids:
            out.append((body, r["at"]))
    return out


async def wait_events(receiver: Receiver, ids: list[int], per_job: int, timeout: float = 300) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = {b["event_id"] for b, _ in arrivals(receiver, ids)}
        if len(got) >= per_job * len(ids):
            return time.monotonic()
        await asyncio.sleep(0.1)
    raise TimeoutError("events missing")


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def main(rounds: int, jobs: int) -> None:
    async with bench_environment("pipelines", capacity=1000) as bench:
        singles, pipes, gaps = [], [], []
        next_id = 1
        for _ in range(rounds):
            singles.append(await single_jobs(bench, next_id))
            next_id += len(TASKS)
            wall, g = await pipeline(bench, next_id)
            pipes.append(wall)
            gaps += g
            next_id += 1
        with running_receiver(stamp=True) as receiver:
            ids = await notified_jobs(bench, receiver, next_id, jobs)
            next_id += jobs
            for job_id in ids:
                await bench.client.result(job_id)
            per_job = 4  # PENDING, STARTING, RUNNING, SUCCEEDED
            await wait_events(receiver, ids, per_job)
            delays = [at - datetime.fromisoformat(b["at"]).timestamp() for b, at in arrivals(receiver, ids)]
            receiver.answer = 503
            down_ids = await notified_jobs(bench, receiver, next_id, jobs)
            while not all(s.status.is_terminal for s in await asyncio.gather(*map(bench.client.get_job, down_ids))):
                await asyncio.sleep(0.2)
            await asyncio.sleep(5)
            receiver.answer = 200
            back = time.monotonic()
            done = await wait_events(receiver, down_ids, per_job)
            repeats = len([1 for b, _ in arrivals(receiver, down_ids)]) - per_job * jobs

    print(f"| measure ({rounds} rounds; {jobs} jobs) | value |\n|---|---|")
    print(f"| 3 single jobs one after another (anchor) | median {statistics.median(singles):.2f} s |")
    print(f"| the same 3 tasks as one pipeline | median {statistics.median(pipes):.2f} s "
          f"({statistics.median(pipes) / statistics.median(singles):.2f}x the anchor) |")
    print(f"| hand-over between tasks (end -> next cluster asked for) | median {statistics.median(gaps):.2f} s, "
          f"max {max(gaps):.2f} s ({len(gaps)} hand-overs) |")
    print(f"| transition -> webhook POST arrived | median {statistics.median(delays) * 1000:.0f} ms, "
          f"p95 {pct(delays, 0.95) * 1000:.0f} ms, max {max(delays) * 1000:.0f} ms ({len(delays)} events) |")
    print(f"| webhook down while {jobs} jobs ran, then back: all {per_job * jobs} events in | "
          f"{done - back:.1f} s after its return ({repeats} requests were refused or repeated while down) |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.jobs))
