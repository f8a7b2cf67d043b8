"""Where the controller's work goes, in counts: per launch, per quiet running job and minute, per cancel.

    python bench/controller_counts.py                      # N = 20 and 100, held quiet 120 s
    python bench/controller_counts.py --jobs 2 --hold 20   # the test's tiny run

Timing on a shared 2-core machine is noisy; counts are not. Each N gets a fresh embedded
deployment as bench/run.py uses it (bench/fleet.py: the `temporal` dev server on its SQLite
file, one `spotctl worker`, the local cloud's simulated instances printing `--lines-per-s`).
Three phases are measured between snapshots of every counter: launching the N jobs until all
are RUNNING, holding them RUNNING for `--hold` seconds, and `spotctl cancel -a -y` until every
job's workflow has closed and no instance is left. The counters:
- the server's own Prometheus metrics (the dev server serves them on a port of its own):
  frontend RPCs by method (`service_requests`), database operations by kind
  (`persistence_requests`; writes are the Create/Update/Append/Delete/Complete ones),
  visibility store operations (`visibility_persistence_requests`: search-attribute upserts
  among them) and history tasks by kind (`task_requests`: timers are the Timer* ones);
- the worker's SDK metrics (SPOTCTL_METRICS_PORT): its requests by operation, activities run
  by type, workflow tasks;
- the worker's node and cloud calls (node polls, file reads, agent commands, cloud liveness
  calls), counted by bench/counting/sitecustomize.py, which this script puts on the
  deployment's PYTHONPATH;
- the job workflows' history events by type (fetched between phases, outside the snapshots);
- the server's and the worker's CPU seconds (the one figure here that depends on load).
With two or more N, a quiet window's rate is split into a per-job part (the slope over N) and
a fixed part (what the deployment does with no job: its pollers, its own system workflows).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fleet import Fleet, fleet, free_port  # noqa: E402
from temporalio.api.enums.v1 import EventType  # noqa: E402

from spotctl.client import JOB_WORKFLOW, SpotClient, workflow_id  # noqa: E402
from spotctl.models import JobSpec  # noqa: E402
from spotctl.policy import rank_candidates  # noqa: E402

MAX_JOBS = 1000
MAX_SIZES = 4
HOLD_RANGE_S = (10.0, 1800.0)
MAX_LINES_PER_S = 100.0
LAUNCH_CONCURRENCY = 32
WAIT_LIMIT_S = 600.0
SETTLE_S = 5.0
"""After all are RUNNING, before the quiet window: the last launch's trailing tasks."""
COUNTING = Path(__file__).resolve().parent / "counting"
WRITE_OPS = re.compile(r"^(Create|Update|Append|Delete|Complete|RangeComplete|Put|Set|Upsert|Save|Conflict|Insert|"
                       r"Record|Lease|Extend|Add|Init|Trim|ForkHistory)")
"""persistence operations that write to the database (the others read)."""
LABEL = re.compile(r'(\w+)="([^"]*)"')
IGNORED_WORKER_OPS = {"GetSystemInfo", "DescribeNamespace"}


def parse_metrics(text: str) -> Counter[str]:
    """The counters this script reports, keyed `group name`, from Prometheus text."""
    out: Counter[str] = Counter()
    for line in text.splitlines():
        if not line or line.startswith("#") or "{" not in line:
            continue
        name, rest = line.split("{", 1)
        labels_text, _, value = rest.rpartition("}")
        labels = dict(LABEL.findall(labels_text))
        name = name.removesuffix("_total")
        try:
            v = float(value.split()[0])
        except (ValueError, IndexError):
            continue
        op = labels.get("operation", "")
        if name == "service_requests" and labels.get("service_name") == "frontend":
            out[f"server rpc {op}"] += v
        elif name == "persistence_requests":
            out[f"db {'write' if WRITE_OPS.match(op) else 'read'} {op}"] += v
        elif name == "visibility_persistence_requests":
            out[f"visibility {op}"] += v
        elif name == "task_requests":
            out[f"history task {op}"] += v
        elif name in ("temporal_request", "temporal_long_request") and op not in IGNORED_WORKER_OPS:
            out[f"worker rpc {op}"] += v
        elif name == "temporal_activity_execution_latency_count":
            out[f"activity {labels.get('activity_type', '?')}"] += v
        elif name == "temporal_workflow_task_execution_latency_count":
            out["worker workflow tasks"] += v
    return out


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        return r.read().decode()


def listening_ports(pid: int) -> set[int]:
    """TCP ports the process listens on (/proc: its socket inodes, matched in /proc/net/tcp*)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            cols = row.split()
            if cols[3] == "0A" and cols[9] in inodes:  # LISTEN
                ports.add(int(cols[1].rsplit(":", 1)[1], 16))
    return ports


def server_metrics_port(f: Fleet) -> int:
    """The dev server serves /metrics on a free port it picks (`--metrics-port`'s default)."""
    known = {f.settings.embedded.port, f.settings.embedded.ui_port}
    for port in sorted(listening_ports(f.server_pid) - known):
        try:
            if "persistence_requests" in scrape(port):
                return port
        except OSError:
            continue
    raise RuntimeError("the Temporal dev server serves no /metrics endpoint")


class Snapshots:
    """Every counter of the deployment at one moment."""

    def __init__(self, f: Fleet, counts_dir: Path) -> None:
        self.f = f
        self.counts_dir = counts_dir
        self.server_port = server_metrics_port(f)
        self.worker_port = f.settings.worker.metrics_port

    def take(self) -> Counter[str]:
        time.sleep(1.2)  # the worker's counts file is rewritten every second
        out = parse_metrics(scrape(self.server_port)) + parse_metrics(scrape(self.worker_port))
        for pid in self.f.worker_pids:
            path = self.counts_dir / f"{pid}.json"
            if path.exists():
                out.update({f"worker {k}": v for k, v in json.loads(path.read_text()).items()})
        server_cpu, worker_cpu = self.f.cpu()
        out["cpu server ms"] = server_cpu * 1000
        out["cpu worker ms"] = worker_cpu * 1000
        return out


def diff(a: Counter[str], b: Counter[str]) -> dict[str, float]:
    return {k: b.get(k, 0) - a.get(k, 0) for k in set(a) | set(b) if b.get(k, 0) != a.get(k, 0)}


async def history_events(client: SpotClient, n: int) -> Counter[str]:
    """History events of the N job workflows, by type."""
    events: Counter[str] = Counter()
    for jid in range(1, n + 1):
        history = await client.temporal.get_workflow_handle(workflow_id(jid)).fetch_history()
        for event in history.events:
            events["history event " + EventType.Name(event.event_type).removeprefix("EVENT_TYPE_")] += 1
            events["history events, all"] += 1
    return events


async def count_open(client: SpotClient, where: str) -> int:
    q = f"WorkflowType = '{JOB_WORKFLOW}' AND ExecutionStatus = 'Running' AND {where}"
    return (await client.temporal.count_workflows(q)).count


async def wait_for(client: SpotClient, where: str, want: int, what: str) -> None:
    deadline = time.monotonic() + WAIT_LIMIT_S
    while (have := await count_open(client, where)) != want:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: {have} of {want} after {WAIT_LIMIT_S:.0f}s")
        await asyncio.sleep(1.0)


class Phases:
    """Per phase, the counter deltas (for launch and cancel) or rates (the quiet window)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.launch: dict[str, float] = {}
        self.quiet: dict[str, float] = {}
        self.quiet_s = 0.0
        self.cancel: dict[str, float] = {}
        self.launch_s = self.cancel_s = 0.0


async def measure_phases(f: Fleet, counts_dir: Path, n: int, hold_s: float) -> Phases:
    client = await SpotClient.connect(f.settings)
    snaps = Snapshots(f, counts_dir)
    await asyncio.sleep(3)
    out = Phases(n)
    candidates = rank_candidates(f.cloud.offerings(), [])
    gate = asyncio.Semaphore(LAUNCH_CONCURRENCY)

    async def one(jid: int) -> None:
        async with gate:
            await client.start_job(JobSpec(job_id=jid, name=f"counts-{jid}", run="simulated", candidates=candidates,
                                           submitted_at=datetime.now(UTC)))

    s0 = snaps.take()
    t0 = time.monotonic()
    await asyncio.gather(*(one(jid) for jid in range(1, n + 1)))
    await wait_for(client, "SpotctlStatus = 'RUNNING'", n, "jobs RUNNING")
    out.launch_s = time.monotonic() - t0
    await asyncio.sleep(SETTLE_S)
    s1 = snaps.take()
    e1 = await history_events(client, n)
    out.launch = {**diff(s0, s1), **e1}

    s2 = snaps.take()
    t2 = time.monotonic()
    await asyncio.sleep(hold_s)
    s3 = snaps.take()
    out.quiet_s = time.monotonic() - t2 - 1.2
    e3 = await history_events(client, n)
    out.quiet = {**diff(s2, s3), **diff(e1, e3)}

    s4 = snaps.take()
    t4 = time.monotonic()
    _, result = f.cli("cancel", "-a", "-y")
    if result.returncode != 0:
        raise RuntimeError(f"cancel -a failed: {result.stderr.strip()[-500:]}")
    await wait_for(client, "SpotctlJobId >= 0", 0, "jobs still open after cancel -a")
    deadline = time.monotonic() + 60
    while f.cloud.list_instances(alive_only=True) and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    out.cancel_s = time.monotonic() - t4
    await asyncio.sleep(SETTLE_S)
    s5 = snaps.take()
    e5 = await history_events(client, n)
    out.cancel = {**diff(s4, s5), **diff(e3, e5)}
    if left := f.cloud.list_instances(alive_only=True):
        raise RuntimeError(f"{len(left)} instances left after cancel -a")
    return out


@contextmanager
def counted_fleet() -> Iterator[tuple[Fleet, Path]]:
    """bench/fleet.py's deployment with the worker's metrics endpoint on and the counting shim
    on its PYTHONPATH (both through the environment the supervisor passes on), then the
    environment as it was."""
    counts_dir = Path(tempfile.mkdtemp(prefix="spotctl-counts-"))
    extra = {"SPOTCTL_METRICS_PORT": str(free_port()), "SPOTCTL_BENCH_COUNTS_DIR": str(counts_dir),
             "PYTHONPATH": os.pathsep.join(p for p in (str(COUNTING), os.environ.get("PYTHONPATH")) if p)}
    saved = {k: os.environ.get(k) for k in extra}
    os.environ.update(extra)
    try:
        with fleet(workers=1) as f:
            yield f, counts_dir
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        for path in counts_dir.iterdir():
            path.unlink()
        counts_dir.rmdir()


def measure(n: int, hold_s: float, lines_per_s: float) -> Phases:
    with counted_fleet() as (f, counts_dir):
        _write_rate(f, lines_per_s)
        return asyncio.run(measure_phases(f, counts_dir, n, hold_s))


def _write_rate(f: Fleet, lines_per_s: float) -> None:
    """The simulated programs' output rate (bench/run.py's is 1 line a second)."""
    import yaml

    path = f.cloud.config_path
    data = yaml.safe_load(path.read_text())
    data["simulate"]["lines_per_s"] = lines_per_s
    path.write_text(yaml.safe_dump(data))


def table(runs: list[Phases]) -> list[str]:
    """The table: per launch, per quiet running job and minute (and the fixed part, with two or
    more N), per cancel; one row per counter that moved."""
    big = max(runs, key=lambda r: r.n)
    keys = sorted(set().union(*(set(r.launch) | set(r.quiet) | set(r.cancel) for r in runs)))

    def per_min(r: Phases, k: str) -> float:
        return r.quiet.get(k, 0.0) / (r.quiet_s / 60)

    split = len({r.n for r in runs}) > 1
    lines = ["| count | per launch | per quiet job-minute | fixed per minute | per cancel |", "|---|---|---|---|---|"]
    for k in keys:
        launch = big.launch.get(k, 0.0) / big.n
        cancel = big.cancel.get(k, 0.0) / big.n
        if split:
            xs = [r.n for r in runs]
            ys = [per_min(r, k) for r in runs]
            mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
            slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)
            job, fixed = slope, my - slope * mx
        else:
            job, fixed = per_min(big, k) / big.n, float("nan")
        if max(abs(launch), abs(job), abs(cancel)) < 0.05 and not (split and abs(fixed) >= 1):
            continue
        lines.append(f"| {k} | {launch:.2f} | {job:.2f} | {'-' if fixed != fixed else f'{fixed:.1f}'} | {cancel:.2f} |")
    lines += ["", "runs: " + "; ".join(f"N={r.n}: launch {r.launch_s:.0f}s, quiet {r.quiet_s:.0f}s, "
                                        f"cancel {r.cancel_s:.0f}s" for r in runs)]
    return lines


class OneLineParser(argparse.ArgumentParser):
    """A bad flag is one line and exit 2, no usage block."""

    def error(self, message: str):  # type: ignore[override]
        print(f"controller_counts.py: {message}", file=sys.stderr)
        raise SystemExit(2)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = OneLineParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", default="20,100", help=f"comma-separated N, each 1..{MAX_JOBS} (default 20,100)")
    parser.add_argument("--hold", type=float, default=120.0, help="seconds the jobs are held RUNNING (default 120)")
    parser.add_argument("--lines-per-s", type=float, default=1.0,
                        help="the simulated programs' output, lines a second (default 1, as bench/run.py)")
    parser.add_argument("--json", type=Path, help="also write the phases' raw counts here")
    args = parser.parse_args(argv)
    try:
        args.sizes = sorted({int(x) for x in args.jobs.split(",")})
    except ValueError:
        parser.error(f"--jobs must be comma-separated whole numbers, not {args.jobs!r}")
    if not 1 <= len(args.sizes) <= MAX_SIZES or not all(1 <= n <= MAX_JOBS for n in args.sizes):
        parser.error(f"--jobs takes 1 to {MAX_SIZES} sizes, each 1..{MAX_JOBS}, not {args.jobs!r}")
    if not HOLD_RANGE_S[0] <= args.hold <= HOLD_RANGE_S[1]:
        parser.error(f"--hold must be {HOLD_RANGE_S[0]:g}..{HOLD_RANGE_S[1]:g} seconds, not {args.hold:g}")
    if not 0 <= args.lines_per_s <= MAX_LINES_PER_S:
        parser.error(f"--lines-per-s must be 0..{MAX_LINES_PER_S:g}, not {args.lines_per_s:g}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    runs = []
    for n in args.sizes:
        print(f"[N={n}] launching, holding {args.hold:.0f}s, cancelling", flush=True)
        runs.append(measure(n, args.hold, args.lines_per_s))
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in runs], indent=1, sort_keys=True) + "\n")
    print("\n".join(table(runs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
