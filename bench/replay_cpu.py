"""Benchmark: the worker CPU a workflow costs, by workflow runner (issue 27), in CPU time.

    python bench/replay_cpu.py [--reps 5] [--rounds 3] [--runners today,pure,spotctl,none] [--match TEXT]

Replays every recorded history (tests/histories/*.json) with `temporalio.worker.Replayer`, as
tests/test_replay.py does, and measures the process's CPU time (time.process_time: every
thread, the SDK core's included; other load on the machine moves it far less than wall time,
though not to nothing) around the replay. One repetition replays the histories `--rounds`
times in one call (each replay is a new workflow run, as a worker starts one per job); the
runners take turns, repetition by repetition, and the first repetition of each is a warm-up,
not counted. Printed: the median per replayed history and per workflow task (the histories'
WorkflowTaskCompleted events), steady (from the end of the first replay on, as in a running
worker), and with the replayer's start-up.

Runners: `today` is the SDK's default sandbox (what spotctl's worker ran before issue 27);
`pure` passes spotctl's pure packages through it (models, policy; activities is passed through
already for its typed references); `spotctl` is the worker's runner now (worker/sandbox.py:
the workflows' own modules passed through as well); `all` passes all of spotctl through;
`none` is no sandbox at all (for reference only). A bad flag is one line and exit 2.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from spotctl.codec import data_converter_for_key
from spotctl.worker.sandbox import workflow_runner
from spotctl.workflows import ALL_WORKFLOWS

HISTORIES = Path(__file__).resolve().parent.parent / "tests" / "histories"
MAX_REPS, MAX_ROUNDS, MAX_MATCH = 50, 20, 100
RUNNERS: dict[str, Callable[[], WorkflowRunner]] = {
    "today": SandboxedWorkflowRunner,
    "pure": lambda: SandboxedWorkflowRunner(restrictions=SandboxRestrictions.default.with_passthrough_modules(
        "spotctl.models", "spotctl.policy", "spotctl.activities")),
    "spotctl": workflow_runner,
    "all": lambda: SandboxedWorkflowRunner(restrictions=SandboxRestrictions.default.with_passthrough_modules("spotctl")),
    "none": UnsandboxedWorkflowRunner,
}


class Usage(ValueError):
    """A bad flag: printed as one line, exit 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # type: ignore[override]
        raise Usage(message)


def bounded(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be in [{low}, {high}] (got {value})")
        return value
    return parse


def parse(argv: list[str]) -> argparse.Namespace:
    ap = Parser(prog="replay_cpu", description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=bounded(2, MAX_REPS), default=5, help="repetitions per runner, the first a warm-up")
    ap.add_argument("--rounds", type=bounded(1, MAX_ROUNDS), default=3, help="replays of every history per repetition")
    ap.add_argument("--runners", default="today,pure,spotctl,none", help=f"comma-separated, of {', '.join(RUNNERS)}")
    ap.add_argument("--match", default="", help="only the histories whose file name contains this")
    a = ap.parse_args(argv)
    a.runners = [r.strip() for r in a.runners.split(",") if r.strip()]
    unknown = [r for r in a.runners if r not in RUNNERS]
    if not a.runners or unknown or len(a.runners) > len(RUNNERS):
        raise Usage(f"--runners: expected some of {', '.join(RUNNERS)} (got {','.join(unknown) or 'none'})")
    if len(a.match) > MAX_MATCH:
        raise Usage(f"--match: at most {MAX_MATCH} characters")
    return a


def workflow_tasks(text: str) -> int:
    return sum(1 for e in json.loads(text)["events"] if e["eventType"] in ("EVENT_TYPE_WORKFLOW_TASK_COMPLETED",
                                                                            "WorkflowTaskCompleted"))


async def replay_cpu_s(runner: WorkflowRunner, histories: list[WorkflowHistory], rounds: int) -> tuple[float, float]:
    """CPU seconds of one replay call over `histories`, `rounds` times over: in all, and from
    the first replay's end on (the steady cost, without the replayer's start-up, which a
    worker pays once: the sandbox's validation run of every workflow type)."""
    replayer = Replayer(workflows=ALL_WORKFLOWS, data_converter=data_converter_for_key(bytes(32)),
                        workflow_runner=runner)

    async def each() -> AsyncIterator[WorkflowHistory]:
        for _ in range(rounds):
            for history in histories:
                yield history

    t0 = time.process_time()
    first = None
    async with replayer.workflow_replay_iterator(each()) as results:
        async for result in results:
            if result.replay_failure:  # a broken runner is not a fast one
                raise result.replay_failure
            first = time.process_time() if first is None else first
    end = time.process_time()
    return end - t0, end - (first or t0)


async def measure(a: argparse.Namespace) -> None:
    paths = [p for p in sorted(HISTORIES.glob("*.json")) if a.match in p.name]
    if not paths:
        raise Usage(f"--match: no history in tests/histories matches {a.match!r}")
    texts = [p.read_text() for p in paths]
    histories = [WorkflowHistory.from_json(f"replay-{p.stem}", t) for p, t in zip(paths, texts, strict=True)]
    tasks = sum(workflow_tasks(t) for t in texts)
    replays = len(histories) * a.rounds
    print(f"{len(histories)} histories ({tasks} workflow tasks), {a.rounds} rounds, {a.reps - 1} counted repetitions")
    if replays < 2:
        raise Usage("--rounds: at least 2 replays are needed (the first one is the start-up)")
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in a.runners}
    for _ in range(a.reps):  # interleaved, so a change in the machine's load falls on every runner alike
        for name in a.runners:
            runs[name].append(await replay_cpu_s(RUNNERS[name](), histories, a.rounds))
    # the steady figure leaves the first replay out: its tasks are the first history's
    steady_tasks = tasks * a.rounds - workflow_tasks(texts[0])
    for name in a.runners:
        counted = runs[name][1:]
        total = statistics.median(t for t, _ in counted)
        steady = [s for _, s in counted]
        cpu = statistics.median(steady)
        print(f"{name:8} {1000 * cpu / (replays - 1):6.1f} ms CPU per replayed history, "
              f"{1000 * cpu / steady_tasks:5.2f} ms per workflow task, steady "
              f"(median of {len(counted)}; spread {1000 * (max(steady) - min(steady)) / (replays - 1):.1f} ms); "
              f"{1000 * total / replays:6.1f} ms with the replayer's start-up", flush=True)


def main(argv: list[str]) -> int:
    try:
        args = parse(argv)
        asyncio.run(measure(args))
    except Usage as e:
        print(f"replay_cpu: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
