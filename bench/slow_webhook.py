"""Benchmark: issue 21, a slow webhook must not slow a worker's jobs.

    python bench/slow_webhook.py [--jobs 100] [--trickle-every 5] [--limit 600] [--plot]

One deployment (bench/fleet.py: the embedded server and a `spotctl worker` process with its
default limits, the local cloud's simulated instances), two phases in the same run:
1. without a webhook: N jobs launched 32 at a time, first launch -> all RUNNING; then 10% of
   them preempted at random moments within 10 s: preemption -> RUNNING again; cancel all;
2. the same with every job's webhook (every status) on a hostile server on 127.0.0.1 that
   answers one byte of an endless head every `--trickle-every` seconds (the POST's 10 s time-out
   never fires on a per-read clock), the server serving every attempt for as long as it lasts.
Reported per phase: launch time, recovery p50/p95/max, and in phase 2 how many POSTs the server
fed at most at once and how long the attempts it saw closed had lasted. A phase that does not
get every job RUNNING within `--limit` seconds is reported as such (the old code never did at
70 jobs). Prints Markdown for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fleet import Fleet, fleet  # noqa: E402
from webhook_receiver import Receiver, running_receiver  # noqa: E402

from spotctl.client import JOB_WORKFLOW, SpotClient  # noqa: E402
from spotctl.models import JobSpec, JobStatus, NotifySettings, cluster_name  # noqa: E402
from spotctl.policy.placement import rank_candidates  # noqa: E402

LAUNCH_CONCURRENCY = 32
PREEMPT_SPREAD_S = 10.0


class TooSlow(Exception):
    """A phase did not reach its goal within the limit."""


@dataclass
class Phase:
    name: str
    jobs: int
    launch_s: float | None = None
    """First launch -> all RUNNING; None when they were not all RUNNING within the limit."""
    running_at_limit: int = 0
    back: list[float] = field(default_factory=list)
    """Preemption -> RUNNING again, per preempted job."""
    most_fed: int = 0
    attempt_s: list[float] = field(default_factory=list)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def count(client: SpotClient, where: str) -> int:
    q = f"WorkflowType = '{JOB_WORKFLOW}' AND ExecutionStatus = 'Running' AND {where}"
    return (await client.temporal.count_workflows(q)).count


async def wait_count(client: SpotClient, where: str, want: int, limit_s: float) -> int:
    """Wait until `want` workflows match; how many matched at the end."""
    deadline = time.monotonic() + limit_s
    while (have := await count(client, where)) < want and time.monotonic() < deadline:
        await asyncio.sleep(0.25)
    return have


async def launch(client: SpotClient, f: Fleet, ids: list[int], notify: NotifySettings | None, limit_s: float,
                 phase: Phase) -> None:
    candidates = rank_candidates(f.cloud.offerings(), [])
    gate = asyncio.Semaphore(LAUNCH_CONCURRENCY)

    async def one(jid: int) -> None:
        async with gate:
            await client.start_job(JobSpec(job_id=jid, name=f"bench-{jid}", run="simulated", candidates=candidates,
                                           submitted_at=datetime.now(UTC), notify=notify))

    t0 = time.perf_counter()
    await asyncio.gather(*(one(jid) for jid in ids))
    mine = f"SpotctlJobId >= {ids[0]} AND SpotctlJobId <= {ids[-1]}"
    phase.running_at_limit = await wait_count(client, f"{mine} AND SpotctlStatus = 'RUNNING'", len(ids), limit_s)
    if phase.running_at_limit < len(ids):
        raise TooSlow(f"{phase.running_at_limit} of {len(ids)} RUNNING after {limit_s:.0f} s")
    phase.launch_s = time.perf_counter() - t0


async def preempt(client: SpotClient, f: Fleet, ids: list[int], seed: int, limit_s: float, phase: Phase) -> None:
    rng = random.Random(seed)
    victims = rng.sample(ids, max(1, len(ids) // 10))
    at = sorted(rng.uniform(0, PREEMPT_SPREAD_S) for _ in victims)
    by_cluster = {i.cluster_name: i.id for i in f.cloud.list_instances()}
    instance = {jid: by_cluster[cluster_name(jid, 1)] for jid in victims}
    when: dict[int, float] = {}

    def strike() -> None:
        cloud = f.cloud
        for k, jid in enumerate(victims):
            time.sleep(max(0.0, at[k] - (time.time() - started)))
            cloud.preempt(instance[jid], notice_s=0)
            when[jid] = time.time()

    started = time.time()
    thread = threading.Thread(target=strike)
    thread.start()
    await asyncio.to_thread(thread.join)
    mine = f"SpotctlJobId >= {ids[0]} AND SpotctlJobId <= {ids[-1]}"
    back = await wait_count(client, f"{mine} AND SpotctlRecoveries >= 1 AND SpotctlStatus = 'RUNNING'",
                            len(victims), limit_s)
    if back < len(victims):
        raise TooSlow(f"{back} of {len(victims)} preempted jobs RUNNING again after {limit_s:.0f} s")
    for jid in victims:
        job = await client.get_job(jid)
        phase.back.append(job.run_started_at.timestamp() - when[jid])


async def cancel_all(client: SpotClient, f: Fleet, limit_s: float) -> None:
    _, result = f.cli("cancel", "-a", "-y")
    if result.returncode != 0:
        raise RuntimeError(f"cancel -a failed: {result.stderr.strip()[-500:]}")
    deadline = time.monotonic() + limit_s
    while await count(client, "SpotctlJobId >= 0") and time.monotonic() < deadline:
        await asyncio.sleep(0.5)


async def run_phase(client: SpotClient, f: Fleet, phase: Phase, ids: list[int], notify: NotifySettings | None,
                    seed: int, limit_s: float) -> None:
    print(f"[{phase.name}] launching {len(ids)} jobs", flush=True)
    try:
        await launch(client, f, ids, notify, limit_s, phase)
        print(f"[{phase.name}] all RUNNING in {phase.launch_s:.1f} s; preempting {max(1, len(ids) // 10)}", flush=True)
        await asyncio.sleep(3)
        await preempt(client, f, ids, seed, limit_s, phase)
    except TooSlow as exc:
        print(f"[{phase.name}] {exc}", flush=True)


async def measure(f: Fleet, n: int, trickle_every_s: float, seed: int, limit_s: float) -> list[Phase]:
    client = await SpotClient.connect(f.settings)
    await asyncio.sleep(3)
    plain = Phase("without a webhook", n)
    await run_phase(client, f, plain, list(range(1, n + 1)), None, seed, limit_s)
    await cancel_all(client, f, limit_s)
    slow = Phase("with a slow webhook", n)
    with running_receiver() as hostile:
        hostile.answer, hostile.trickle_every_s = "trickle", trickle_every_s
        notify = NotifySettings(url=hostile.url(), on=list(JobStatus), give_up_after_s=600)
        watching = True

        def watch() -> None:
            while watching:
                slow.most_fed = max(slow.most_fed, hostile.trickling)
                time.sleep(0.1)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            await run_phase(client, f, slow, list(range(n + 1, 2 * n + 1)), notify, seed, limit_s)
        finally:
            watching = False
            watcher.join(5)
        slow.attempt_s = list(hostile.closed_after_s)
        print(f"[{slow.name}] {len(hostile.requests)} POSTs; at most {slow.most_fed} fed at once", flush=True)
        _release(hostile)
    return [plain, slow]


def _release(hostile: Receiver) -> None:
    """Let the held POSTs go (they are answered 200 from now on) before the fleet stops."""
    hostile.answer = 200


def row(p: Phase) -> str:
    launch = (f"{p.launch_s:.1f} s ({p.jobs / p.launch_s:.1f} jobs/s)" if p.launch_s is not None
              else f"not all RUNNING: {p.running_at_limit} of {p.jobs} at the limit")
    back = (f"p50 {pct(p.back, .5):.2f} s, p95 {pct(p.back, .95):.2f} s, max {max(p.back):.2f} s ({len(p.back)} jobs)"
            if p.back else "-")
    return f"| {p.name} | {launch} | {back} |"


def report(phases: list[Phase], n: int, trickle_every_s: float) -> str:
    plain, slow = phases
    lines = [f"| {n} jobs, one worker | first launch -> all RUNNING | preemption -> RUNNING again |",
             "|---|---|---|", row(plain), row(slow)]
    if slow.attempt_s:
        lines.append("")
        lines.append(f"The hostile server (one byte every {trickle_every_s:g} s): at most {slow.most_fed} POSTs "
                     f"fed at once; the {len(slow.attempt_s)} attempts it saw end lasted median "
                     f"{statistics.median(slow.attempt_s):.1f} s, max {max(slow.attempt_s):.1f} s.")
    return "\n".join(lines)


def plot(phases: list[Phase], out: Path) -> bool:
    """Launch time and recovery times, with and without the slow webhook; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    names = [p.name for p in phases]
    left.bar(names, [p.launch_s or 0 for p in phases], color=["#4c72b0", "#dd8452"])
    left.set_ylabel("s")
    left.set_title(f"{phases[0].jobs} jobs: first launch -> all RUNNING")
    right.boxplot([p.back or [0] for p in phases], labels=names)
    right.set_ylabel("s")
    right.set_title("preemption -> RUNNING again")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--trickle-every", type=float, default=5.0, help="seconds between the hostile server's bytes")
    parser.add_argument("--limit", type=float, default=600.0, help="seconds a phase may take to get its jobs RUNNING")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--plot", type=Path, nargs="?", const=Path(__file__).parent / "plots" / "slow_webhook.png",
                        help="write a PNG (default bench/plots/slow_webhook.png; needs matplotlib)")
    args = parser.parse_args()
    with fleet() as f:
        phases = asyncio.run(measure(f, args.jobs, args.trickle_every, args.seed, args.limit))
    print(report(phases, args.jobs, args.trickle_every))
    if args.plot is not None and plot(phases, args.plot):
        print(f"plot: {args.plot}")
    return 0 if all(p.launch_s is not None and p.back for p in phases) else 1


if __name__ == "__main__":
    sys.exit(main())
