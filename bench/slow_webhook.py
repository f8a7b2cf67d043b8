"""Benchmark: issue 21, a slow webhook must not slow a worker's other jobs.

    python bench/slow_webhook.py [--jobs 100] [--rounds 2] [--trickle-every 5] [--limit 600] [--plot]

One deployment (bench/fleet.py: the embedded server and a `spotctl worker` process with its
default limits, the local cloud's simulated instances). Two phases, each `--rounds` times in
the same run, alternating which goes first (the machine's load drifts):
- without: N background jobs without a webhook are launched and RUNNING; then N measured jobs
  (no webhook) are launched 32 at a time: first launch -> all RUNNING; 10% of them preempted
  at random moments within 10 s: preemption -> RUNNING again; then everything is cancelled;
- with a slow webhook: the same, but the N background jobs' webhook (every status) is a hostile
  server on 127.0.0.1 that answers one byte of an endless head every `--trickle-every` seconds
  (a POST's 10 s time-out never fires on a per-read clock), and the measured jobs are launched
  once the server is feeding as many POSTs as the worker delivers at once.
The measured jobs are the same in both; only the background jobs' webhook differs. Also
reported: the background launch in each phase (the slow-webhook jobs' own launch), how many
POSTs the server fed at most at once, how long the attempts it saw end had lasted. A phase
whose jobs are not all RUNNING within `--limit` s is reported as such. Prints Markdown for
BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fleet import Fleet, fleet, preempt_at_random  # noqa: E402
from webhook_receiver import Receiver, running_receiver  # noqa: E402

from spotctl.client import JOB_WORKFLOW, SpotClient  # noqa: E402
from spotctl.config import WorkerConfig  # noqa: E402
from spotctl.models import JobSpec, JobStatus, NotifySettings  # noqa: E402
from spotctl.policy import rank_candidates  # noqa: E402

LAUNCH_CONCURRENCY = 32
PREEMPT_SPREAD_S = 10.0


class TooSlow(Exception):
    """A phase did not reach its goal within the limit."""


@dataclass
class Phase:
    name: str
    jobs: int
    launch_s: list[float] = field(default_factory=list)
    """Measured jobs: first launch -> all RUNNING, per round."""
    background_s: list[float] = field(default_factory=list)
    """Background jobs: first launch -> all RUNNING, per round."""
    stuck: str = ""
    """Why a round did not finish (jobs not RUNNING within the limit), if one did not."""
    back: list[float] = field(default_factory=list)
    """Preemption -> RUNNING again, per preempted job, all rounds."""
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


async def launch(client: SpotClient, f: Fleet, ids: list[int], notify: NotifySettings | None,
                 limit_s: float) -> float:
    """Seconds from the first launch of `ids` to all of them RUNNING (raises TooSlow past the limit)."""
    candidates = rank_candidates(f.cloud.offerings(), [])
    gate = asyncio.Semaphore(LAUNCH_CONCURRENCY)

    async def one(jid: int) -> None:
        async with gate:
            await client.start_job(JobSpec(job_id=jid, name=f"bench-{jid}", run="simulated", candidates=candidates,
                                           submitted_at=datetime.now(UTC), notify=notify))

    t0 = time.perf_counter()
    await asyncio.gather(*(one(jid) for jid in ids))
    mine = f"SpotctlJobId >= {ids[0]} AND SpotctlJobId <= {ids[-1]}"
    running = await wait_count(client, f"{mine} AND SpotctlStatus = 'RUNNING'", len(ids), limit_s)
    if running < len(ids):
        raise TooSlow(f"{running} of {len(ids)} RUNNING after {limit_s:.0f} s")
    return time.perf_counter() - t0


async def preempt(client: SpotClient, f: Fleet, ids: list[int], seed: int, limit_s: float, phase: Phase) -> None:
    when = await asyncio.to_thread(preempt_at_random, f, ids, seed, PREEMPT_SPREAD_S)
    victims = list(when)
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


async def wait_fed(hostile: Receiver, want: int, limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while hostile.trickling < want and time.monotonic() < deadline:
        await asyncio.sleep(0.2)


@contextmanager
def watching(hostile: Receiver, phase: Phase) -> Iterator[None]:
    """Keep `phase.most_fed` at the most POSTs the hostile server fed at once."""
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.1):
            phase.most_fed = max(phase.most_fed, hostile.trickling)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join(5)


async def run_phase(client: SpotClient, f: Fleet, phase: Phase, first_id: int, hostile: Receiver | None,
                    seed: int, limit_s: float) -> None:
    """One round of a phase: background jobs, then the measured ones; everything cancelled after."""
    n = phase.jobs
    background, measured = list(range(first_id, first_id + n)), list(range(first_id + n, first_id + 2 * n))
    notify = None
    if hostile is not None:
        notify = NotifySettings(url=hostile.url(), on=list(JobStatus), give_up_after_s=3600)
    try:
        print(f"[{phase.name}] launching {n} background jobs", flush=True)
        phase.background_s.append(await launch(client, f, background, notify, limit_s))
        if hostile is not None:
            await wait_fed(hostile, min(n, WorkerConfig().max_concurrent_notifications), 60)
            print(f"[{phase.name}] the hostile server feeds {hostile.trickling} POSTs", flush=True)
        print(f"[{phase.name}] launching {n} measured jobs", flush=True)
        phase.launch_s.append(await launch(client, f, measured, None, limit_s))
        print(f"[{phase.name}] all RUNNING in {phase.launch_s[-1]:.1f} s; preempting {max(1, n // 10)}", flush=True)
        await asyncio.sleep(3)
        await preempt(client, f, measured, seed, limit_s, phase)
    except TooSlow as exc:
        phase.stuck = str(exc)
        print(f"[{phase.name}] {exc}", flush=True)
    finally:
        if hostile is not None:
            hostile.answer = 200  # the held events go out at their next retry: the workflows can end
        await cancel_all(client, f, limit_s)


async def measure(f: Fleet, n: int, rounds: int, trickle_every_s: float, seed: int, limit_s: float) -> list[Phase]:
    client = await SpotClient.connect(f.settings)
    await asyncio.sleep(3)
    plain, slow = Phase("without", n), Phase("with a slow webhook", n)
    next_id = 1
    for r in range(rounds):
        for phase in ([plain, slow] if r % 2 == 0 else [slow, plain]):
            if phase is plain:
                await run_phase(client, f, phase, next_id, None, seed + r, limit_s)
            else:
                with running_receiver() as hostile, watching(hostile, phase):
                    hostile.answer, hostile.trickle_every_s = "trickle", trickle_every_s
                    await run_phase(client, f, phase, next_id, hostile, seed + r, limit_s)
                    phase.attempt_s += hostile.closed_after_s
            next_id += 2 * n
    return [plain, slow]


def row(p: Phase) -> str:
    if p.stuck:
        return f"| {p.name} | {p.stuck} | | |"
    background = ", ".join(f"{x:.1f}" for x in p.background_s)
    launch = ", ".join(f"{x:.1f}" for x in p.launch_s)
    back = (f"p50 {pct(p.back, .5):.2f} s, p95 {pct(p.back, .95):.2f} s, max {max(p.back):.2f} s ({len(p.back)} jobs)"
            if p.back else "-")
    return (f"| {p.name} | {background} s | {launch} s (median {statistics.median(p.launch_s):.1f} s) | {back} |")


def report(phases: list[Phase], n: int, trickle_every_s: float) -> str:
    slow = phases[-1]
    lines = [f"| background webhook ({n} + {n} jobs, one worker) | background: launch -> all RUNNING, per round "
             f"| measured: launch -> all RUNNING, per round | measured: preemption -> RUNNING again |",
             "|---|---|---|---|", *map(row, phases)]
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
    for k, p in enumerate(phases, start=1):
        left.plot([k] * len(p.launch_s), p.launch_s, "o", color="#4c72b0")
        if p.launch_s:
            left.plot([k - 0.2, k + 0.2], [statistics.median(p.launch_s)] * 2, color="#dd8452")
    left.set_xticks(range(1, len(phases) + 1), names)
    left.set_xlim(0.5, len(phases) + 0.5)
    left.set_ylim(bottom=0)
    left.set_ylabel("s")
    left.set_title(f"{phases[0].jobs} jobs: launch -> all RUNNING (rounds)")
    right.boxplot([p.back or [0] for p in phases])
    right.set_xticks(range(1, len(phases) + 1), names)
    right.set_ylim(bottom=0)
    right.set_ylabel("s")
    right.set_title("preemption -> RUNNING again")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2, help="times each phase runs, alternating the order")
    parser.add_argument("--trickle-every", type=float, default=5.0, help="seconds between the hostile server's bytes")
    parser.add_argument("--limit", type=float, default=600.0, help="seconds a phase may take to get its jobs RUNNING")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--json", type=Path, help="also write the measured phases here (JSON)")
    parser.add_argument("--plot", type=Path, nargs="?", const=Path(__file__).parent / "plots" / "slow_webhook.png",
                        help="write a PNG (default bench/plots/slow_webhook.png; needs matplotlib)")
    args = parser.parse_args()
    with fleet() as f:
        phases = asyncio.run(measure(f, args.jobs, args.rounds, args.trickle_every, args.seed, args.limit))
    print(report(phases, args.jobs, args.trickle_every))
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(p) for p in phases], indent=1) + "\n")
    if args.plot is not None and plot(phases, args.plot):
        print(f"plot: {args.plot}")
    return 0 if not any(p.stuck for p in phases) else 1


if __name__ == "__main__":
    sys.exit(main())
