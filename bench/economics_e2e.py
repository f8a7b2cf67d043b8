"""The real system on a trace: real managed jobs through the real workflows on a local cloud
whose zones follow spot traces, each job's measured cost, switches and finish beside what the
replay of the same trace window predicts (issue 24, item 5). The prediction is bench/econ_sim.py's
replay (`one_job`: the benchmark's own, one job in one zone from its start offset, with the work
since the last checkpoint lost at a preemption); there is no second replay.

    python bench/economics_e2e.py                      # 12 jobs with deadlines (needs --compute-time/--deadline)
    python bench/economics_e2e.py --no-deadline        # the same jobs as plain spot, EAGER_NEXT_REGION
    python bench/economics_e2e.py --jobs 2 --compute-h 2 --json out.json
    python bench/economics_e2e.py --measure            # spotctl's own latencies at 1 s = 1 tick
    python bench/economics.py --e2e ...                # the same (economics.py hands its argv over)
    python bench/economics_e2e.py --json bench/economics_e2e.json --report   # + its BENCHMARKS.md section
    python bench/economics_e2e.py --from-json bench/economics_e2e.json --report  # the section of a saved run

Set-up: a fresh SPOTCTL_HOME with the embedded server (temporal dev server + worker), its
local cloud written by spotctl.traces.cloud_config: one region per job (`jNN-<region>`) with
one zone that follows the job's trace zone from the job's own offset (`start_s`), so a dozen
jobs play a dozen windows at once without sharing a zone's count. The instance type is the
catalog's (p3.2xlarge, V100:1) at the catalog's prices. Each job is a real program
(bench/e2e_job.py, in process mode: a real process per node) that computes by sleeping,
checkpoints every `--checkpoint-h` to a bucket mounted live, resumes from it, and reports its
progress through SPOTCTL_PROGRESS_FILE. Jobs are launched with the CLI (`spotctl launch -y -d`,
and `--compute-time`/`--deadline` unless `--no-deadline`).

Time: trace time = wall time x scale, scale = gap / `--tick-s` (195 s ticks every 1.5 s:
scale 130; 8 h of compute is ~3.7 min, an 11 h deadline ~5 min: the whole run takes ~6-8
minutes with deadlines, ~11 without, whose jobs get a 20 h window). Costs and times are read
from `spotctl status --json` in wall units and multiplied by the scale: the dollars are the
catalog's dollars for the trace's hours.

How spotctl's own latencies translate (`--measure`, medians of 3 on this 2-core machine shared
with other work; docs/traces.md has both modes): in process mode a job runs 0.85 s after its
launch (provisioning 0.1 s, file mounts + setup + start 0.65 s); a trace drop is seen 0.86 s
later (the monitor's instance_states poll every liveness_interval_s = 1 s), and the job runs
again 0.83 s after that on a zone with spot: 1.7 s from drop to running. At scale 130 (1 tick =
1.5 s) that is 0.03 h to see a drop and 0.06 h from drop to running again: about one tick,
and 0.03-0.06 h is within the published changeover range (0.02-0.4 h). The replay charges
each (re)start `--changeover-h` (default 0.06), and the deadline jobs are told the same
changeover (in wall seconds). A launch that finds no capacity is retried at most max(a tick, 2 s)
later (the traced local cloud's launch_retry_max_s): 0.07 h at scale 130. For latencies under 10% of
a tick, run at `--tick-s 15` (scale 13: an 11 h deadline then takes ~45 minutes).

Why measured and predicted differ: the replay asks the policy where the workflow does (a
launch, a preemption, the on-demand watch's checks; `one_job(points="product")`) but at tick
boundaries, the real job whenever its workflow looks (mid-tick); a wait for capacity ends at the next retry, not at
the tick; a restart costs the real latency of that restart, not the mean; the launch of a
dozen jobs through the CLI takes seconds; checkpoint timing is in the program's own clock; a
deadline job's policy is told the restarts it measured and keeps a checkpoint interval in hand
(docs/deadlines.md), the replay the declared changeover only. A job's finish is its program's
successful end (`done_at`); the teardown after it is not counted.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import statistics
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from click.testing import CliRunner  # noqa: E402
from econ_e2e_report import section, write_section  # noqa: E402
from econ_sim import JobRun, Zone, one_job  # noqa: E402

from spotctl.cli.main import cli  # noqa: E402
from spotctl.clouds.local import LocalCloud  # noqa: E402
from spotctl.clouds.local_processes import processes_of  # noqa: E402
from spotctl.config import load_settings  # noqa: E402
from spotctl.embedded import EmbeddedServer  # noqa: E402
from spotctl.policy.deadline import DeadlineJob  # noqa: E402
from spotctl.traces import Trace, TraceError, load_folder, price_trace  # noqa: E402
from spotctl.traces.cloud_config import cloud_config, render  # noqa: E402
from spotctl.workflows.deadline_driver import OnDemandWatch  # noqa: E402

REPORT_COMMAND = "python bench/economics.py --e2e --json bench/economics_e2e.json --report"
"""The command the BENCHMARKS.md section shows (the default run: 12 deadline jobs)."""
DEFAULT_TRACES = REPO / "bench" / "traces" / "availability" / "1-node" / "aws-02-15-2023"
TERMINAL = {"SUCCEEDED", "FAILED", "FAILED_SETUP", "FAILED_NO_RESOURCE", "FAILED_CONTROLLER", "CANCELLED"}
POLL_S = 2.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ts(text: str | None) -> float | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() if text else None


@dataclass
class Deployment:
    """A private embedded spotctl: its home, environment and CLI."""

    home: Path
    env: dict[str, str]
    left_behind: dict[str, Any] = field(default_factory=dict)
    """Filled at the end: the instances alive and instance processes found after every job
    was cancelled and the server stopped (terminated then, so the machine is clean)."""

    @property
    def cloud(self) -> LocalCloud:
        return LocalCloud(load_settings(self.home))

    def run(self, *args: str) -> tuple[int, str, str]:
        r = CliRunner().invoke(cli, list(args), env=self.env, catch_exceptions=False)
        return r.exit_code, r.stdout, r.stderr

    def status(self) -> list[dict[str, Any]]:
        code, out, err = self.run("status", "--json", "--all")
        if code != 0:
            raise RuntimeError(f"spotctl status failed: {err.strip() or out.strip()}")
        return list(json.loads(out))

    def launch(self, *args: str) -> int:
        code, out, err = self.run("launch", "-y", "-d", *args)
        for line in err.splitlines():
            if code == 0 and line.startswith("Managed job "):
                return int(line.split()[2])
        raise RuntimeError(f"spotctl launch failed ({code}): {(err or out).strip()}")


@contextmanager
def deployment(config: dict[str, Any]) -> Iterator[Deployment]:
    """A fresh SPOTCTL_HOME with the given local-cloud config and the embedded server; at the
    end the server is stopped, every instance and process checked gone, the home removed."""
    home = Path(tempfile.mkdtemp(prefix="spotctl-e2e-"))
    env = {"SPOTCTL_HOME": str(home), "SPOTCTL_PORT": str(_free_port()), "SPOTCTL_UI_PORT": str(_free_port()),
           "SPOTCTL_CODEC_PORT": str(_free_port()), "SPOTCTL_CLOUDS": "local"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    settings = load_settings(home)
    cloud_dir = Path(settings.local_cloud_dir)
    cloud_dir.mkdir(parents=True, exist_ok=True)
    (cloud_dir / "config.yaml").write_text(render(config))
    server = EmbeddedServer(settings)
    dep = Deployment(home, env)
    try:
        server.ensure_running()
        yield dep
    finally:
        try:
            dep.run("cancel", "-a", "-y")
            _wait_no_instances(dep.cloud)
        finally:
            server.stop()
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        left = [i.id for i in dep.cloud.list_instances()]
        procs = {i.id: p for i in dep.cloud.list_instances(alive_only=False) if (p := processes_of(i.id))}
        dep.left_behind.update(instances=left, processes=procs)
        if left:
            dep.cloud.terminate(left)
        shutil.rmtree(home, ignore_errors=True)


def _wait_no_instances(cloud: LocalCloud, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while cloud.list_instances() and time.monotonic() < end:
        time.sleep(0.5)


# ---- the jobs ------------------------------------------------------------------------------

@dataclass
class JobPlan:
    index: int
    trace: Trace
    offset_s: float
    """Trace time at the clock's origin in this job's region."""
    region: str
    job_id: int = 0


@dataclass
class JobRow:
    job: int
    zone: str
    window: str
    status: str
    measured_cost: float | None
    predicted_cost: float
    measured_finish_h: float | None
    predicted_finish_h: float | None
    switches: int
    predicted_switches: int
    recoveries: int
    predicted_preemptions: int
    cost_ratio: float | None = None
    finish_ratio: float | None = None
    late: bool | None = None
    """A deadline job that finished after its deadline (None: no deadline, or not finished)."""
    ended_h: float | None = None
    """When the whole job ended (after its final teardown), from its submission."""
    restart_h: float | None = None
    """The longest restart the job measured (cluster asked for -> program running)."""
    attempts: list[dict[str, Any]] = field(default_factory=list)


def _plan_jobs(traces: list[Trace], n: int, window_h: float, seed: int, min_share: float) -> list[JobPlan]:
    usable = [t for t in traces if sum(1 for v in t.values if v > 0) / len(t.values) >= min_share] or traces
    rng = random.Random(seed)
    plans = []
    for i in range(n):
        t = usable[i % len(usable)]
        ticks = int(window_h * 3600 / t.gap_s) + 2
        start_tick = rng.randrange(0, max(1, len(t.values) - ticks))
        offer = price_trace(t)
        plans.append(JobPlan(i + 1, t, start_tick * t.gap_s, f"j{i + 1:02d}-{offer.region}"))
    return plans


def _task(plan: JobPlan, workdir: Path, compute_s: float, ckpt_s: float, itype: str, run_id: str,
          deadline: str = "") -> str:
    """The job's task; `deadline` is its `deadline:` block's body (empty: no deadline)."""
    return textwrap.dedent(f"""\
        name: e2e-j{plan.index:02d}
        resources:
          cloud: local
          region: {plan.region}
          instance_type: {itype}
          use_spot: true
        workdir: {workdir}
        file_mounts:
          ~/ckpt:
            name: e2e-{run_id}-j{plan.index:02d}
            mode: MOUNT
        envs:
          COMPUTE_S: "{compute_s:.3f}"
          CKPT_EVERY_S: "{ckpt_s:.3f}"
          CKPT_DIR: ~/ckpt
        run: python3 e2e_job.py
        """) + (f"deadline: {{{deadline}}}\n" if deadline else "")


def _switches(history: list[dict[str, Any]]) -> int:
    markets = [h.get("use_spot") for h in history if h.get("use_spot") is not None]
    return sum(1 for a, b in zip(markets, markets[1:], strict=False) if a != b)


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def run_jobs(args: argparse.Namespace) -> dict[str, Any]:
    traces = load_folder(args.traces)
    gap = traces[0].gap_s
    scale = gap / args.tick_s
    deadline_h = None if args.no_deadline else args.deadline_h
    window_h = deadline_h or args.compute_h * 2.5
    plans = _plan_jobs(traces, args.jobs, window_h, args.seed, 0.5 if args.no_deadline else 0.0)
    regions: dict[str, Any] = {}
    itype = ""
    for p in plans:
        cfg = cloud_config([p.trace], scale=gap / args.tick_s, start_s=p.offset_s, prefix=f"j{p.index:02d}-")
        regions.update(cfg["regions"])
        itype, types = next(iter(cfg["instance_types"].items()))
    config = {"regions": regions, "instance_types": {itype: types}}
    offer = price_trace(plans[0].trace)
    compute_s = args.compute_h * 3600 / scale
    ckpt_s = args.checkpoint_h * 3600 / scale
    max_wall = window_h * 3600 / scale + args.slack_s
    run_id = f"{os.getpid()}"
    work = Path(tempfile.mkdtemp(prefix="spotctl-e2e-work-"))
    shutil.copy(Path(__file__).with_name("e2e_job.py"), work / "e2e_job.py")
    rows: list[JobRow] = []
    left: dict[str, Any] = {}
    try:
        with deployment(config) as dep:
            left = dep.left_behind
            origin = dep.cloud.trace_origin()
            flags = [] if deadline_h is None else ["--compute-time", f"{compute_s:.0f}s",
                                                   "--deadline", f"{deadline_h * 3600 / scale:.0f}s"]
            # The flags say compute and deadline; the block what they cannot (in wall seconds too).
            block = "" if deadline_h is None else (f"changeover: {args.changeover_h * 3600 / scale:.2f}s, "
                                                   f"checkpoint_every: {ckpt_s:.2f}s, policy: {args.policy}")
            for p in plans:
                task = work / f"j{p.index:02d}.yaml"
                task.write_text(_task(p, work, compute_s, ckpt_s, itype, run_id, block))
                p.job_id = dep.launch(str(task), *flags)
            t0 = time.monotonic()
            ids = {p.job_id for p in plans}
            while time.monotonic() - t0 < max_wall:
                jobs = [j for j in dep.status() if j["job_id"] in ids]
                if all(j["status"] in TERMINAL for j in jobs):
                    break
                time.sleep(POLL_S)
            final = {j["job_id"]: j for j in dep.status()}
            for p in plans:
                rows.append(_row(p, final[p.job_id], origin, scale, deadline_h, args, offer.spot_price or 0.0,
                                 offer.ondemand_price or 0.0, max_wall))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary = _summary(rows, args, scale, deadline_h, _shown_path(args.traces))
    summary["left_behind"] = {"instances": len(left.get("instances", [])),
                              "processes": sum(len(p) for p in left.get("processes", {}).values())}
    return summary


def _row(p: JobPlan, job: dict[str, Any], origin: float, scale: float, deadline_h: float | None,
         args: argparse.Namespace, spot: float, ondemand: float, max_wall: float) -> JobRow:
    submitted = _ts(job["submitted_at"]) or origin
    ended = _ts(job.get("ended_at"))
    start_s = (submitted - origin) * scale + p.offset_s
    predicted = predict(p.trace, start_s, args, deadline_h, spot, ondemand, max_wall * scale / 3600)
    # A deadline job's finish is its program's successful end (done_at); the teardown comes after.
    done = _ts(job.get("done_at")) or ended
    finish = (done - submitted) * scale / 3600 if done and job["status"] == "SUCCEEDED" else None
    cost = job.get("cost_usd")
    measured_cost = cost * scale if cost is not None else None
    tick = int(start_s // p.trace.gap_s)
    predicted_finish = predicted.outcome.finish_h if predicted.done else None
    return JobRow(
        job=p.job_id, zone=p.trace.zone, window=f"{p.trace.zone}@tick {tick} ({start_s / 3600:.1f} h)",
        status=job["status"], measured_cost=measured_cost, predicted_cost=predicted.outcome.cost,
        measured_finish_h=finish, predicted_finish_h=predicted_finish,
        switches=_switches(job.get("history", [])), predicted_switches=predicted.switches,
        recoveries=int(job.get("recoveries", 0)), predicted_preemptions=predicted.preemptions,
        cost_ratio=_ratio(measured_cost, predicted.outcome.cost), finish_ratio=_ratio(finish, predicted_finish),
        late=None if deadline_h is None or finish is None else finish > deadline_h,
        ended_h=(ended - submitted) * scale / 3600 if ended else None,
        restart_h=job["restart_s"] * scale / 3600 if job.get("restart_s") is not None else None,
        attempts=[{k: h.get(k) for k in ("attempt", "region", "zone", "use_spot", "outcome", "cost_usd", "hours")}
                  for h in job.get("history", [])])


def predict(trace: Trace, start_s: float, args: argparse.Namespace, deadline_h: float | None, spot: float,
            ondemand: float, horizon_h: float) -> JobRun:
    """The replay's prediction for one job (bench/econ_sim.py, the benchmark's own replay):
    its zone's window from the job's own start, checkpoints every --checkpoint-h, the same
    policy (or plain spot without a deadline), asked where the workflow asks it (`points="product"`:
    at launches and preemptions, on on-demand at the watch's checks, never on a running spot
    attempt), told the spells it has seen."""
    first = int(start_s // trace.gap_s) % len(trace.values)
    values = list(trace.values[first:]) + list(trace.values[:first])
    zone = Zone(name=trace.zone, region=trace.zone, cloud="aws", instance_type="p3.2xlarge",
                avail=[v > 0 for v in values], spot_price=spot, ondemand_price=ondemand)
    # As the product asks its policy (deadline_driver, the `deadline-restarts` patch): the safety
    # net keeps a checkpoint interval in hand. The measured restarts are not known here.
    job = DeadlineJob(compute_h=args.compute_h, deadline_h=deadline_h or horizon_h, changeover_h=args.changeover_h,
                      check_h=args.checkpoint_h)
    return one_job(None if deadline_h is None else args.policy, job, zone, trace.gap_s / 3600,
                   args.checkpoint_h, horizon_h, points="product",
                   max_check_h=OnDemandWatch.MAX_CHECK_EVERY_S * scale_of(trace, args) / 3600)


def scale_of(trace: Trace, args: argparse.Namespace) -> float:
    """Trace seconds per wall second."""
    return trace.gap_s / args.tick_s


def _summary(rows: list[JobRow], args: argparse.Namespace, scale: float, deadline_h: float | None,
             traces: str) -> dict[str, Any]:
    def spread(xs: list[float]) -> dict[str, float] | None:
        if not xs:
            return None
        errs = [abs(1 - x) for x in xs]
        return {"mean_abs_error": statistics.fmean(errs), "max_abs_error": max(errs), "n": len(xs)}

    done = [r for r in rows if r.status == "SUCCEEDED"]
    return {
        "traces": traces, "scale": scale, "tick_s": args.tick_s, "compute_h": args.compute_h,
        "deadline_h": deadline_h, "changeover_h": args.changeover_h, "checkpoint_h": args.checkpoint_h,
        "policy": None if deadline_h is None else args.policy,
        "jobs": [asdict(r) for r in rows],
        "agreement": {"cost": spread([r.cost_ratio for r in done if r.cost_ratio is not None]),
                      "finish": spread([r.finish_ratio for r in done if r.finish_ratio is not None]),
                      "succeeded": len(done), "jobs": len(rows),
                      "predicted_to_finish": sum(1 for r in rows if r.predicted_finish_h is not None),
                      "same_outcome": sum(1 for r in rows if (r.status == "SUCCEEDED") == (r.predicted_finish_h
                                                                                         is not None))},
    }


def _fmt(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def table(summary: dict[str, Any]) -> str:
    head = (f"{'job':>4}  {'trace window':<34} {'status':<10} {'cost $ meas/pred':>18} {'ratio':>6}  "
            f"{'finish h meas/pred':>19} {'ratio':>6}  {'switches':>8}  {'recov/preempt':>13}")
    lines = [head]
    for r in summary["jobs"]:
        lines.append(
            f"{r['job']:>4}  {r['window']:<34} {r['status']:<10} "
            f"{_fmt(r['measured_cost'], '8.2f')} / {_fmt(r['predicted_cost'], '7.2f'):>7} {_fmt(r['cost_ratio'], '6.2f')}  "
            f"{_fmt(r['measured_finish_h'], '8.2f')} / {_fmt(r['predicted_finish_h'], '8.2f'):>8} "
            f"{_fmt(r['finish_ratio'], '6.2f')}  {r['switches']:>3}/{r['predicted_switches']:<4}  "
            f"{r['recoveries']:>6}/{r['predicted_preemptions']:<6}")
    a = summary["agreement"]
    for what in ("cost", "finish"):
        s = a[what]
        lines.append(f"agreement, {what}: " + ("no finished job" if s is None else
                     f"mean |measured/predicted - 1| = {s['mean_abs_error']:.1%}, max {s['max_abs_error']:.1%} "
                     f"over {s['n']} jobs"))
    left = summary.get("left_behind", {})
    lines.append(f"{a['succeeded']}/{a['jobs']} jobs succeeded ({a['predicted_to_finish']} predicted to, same outcome "
                 f"for {a['same_outcome']}); agreement over the finished jobs; left behind after cancel -a and "
                 f"the server's stop: {left.get('instances', 0)} instances, {left.get('processes', 0)} processes")
    lines.append(f"scale {summary['scale']:.0f} "
                 f"(1 tick = {summary['tick_s']} s), changeover {summary['changeover_h']} h, "
                 f"deadline {summary['deadline_h'] or 'none'}")
    return "\n".join(lines)


# ---- spotctl's own latencies, in wall seconds ----------------------------------------------

def measure(args: argparse.Namespace) -> dict[str, Any]:
    """One job on spot in a zone whose trace drops to 0 once it runs (1 s ticks, scale 1);
    the other region's zone always has spot. Wall seconds: launch -> running, trace drop ->
    the workflow's end of the attempt (detection), -> running again in the other region."""
    out: dict[str, Any] = {}
    work = Path(tempfile.mkdtemp(prefix="spotctl-e2e-measure-"))
    try:
        drop = work / "a.json"
        drop.write_text(json.dumps({"metadata": {"gap_seconds": 1}, "data": [1] * 4 + [0] * 100000}))
        keep = work / "b.json"
        keep.write_text(json.dumps({"metadata": {"gap_seconds": 1}, "data": [1]}))
        for mode in ("process", "simulated"):
            samples = [_measure_once(work, drop, keep, mode == "simulated") for _ in range(args.repeat)]
            out[mode] = {k: statistics.median(s[k] for s in samples) for k in samples[0]}
            out[mode]["samples"] = len(samples)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def _measure_once(work: Path, drop: Path, keep: Path, simulate: bool) -> dict[str, float]:
    def region(trace: Path, factor: float, zone: str) -> dict[str, Any]:
        return {"zones": [zone], "capacity": 8, "price_factor": factor, "preemption_notice_s": 0,
                "trace": {"zones": {zone: str(trace)}, "scale": 1.0}}

    config: dict[str, Any] = {"regions": {"m-east": region(drop, 1.0, "m-east-1a"), "m-west": region(keep, 1.1,
                                                                                                    "m-west-1a")},
                              "instance_types": {"m.small": {"cpus": 1, "memory_gb": 2, "spot_price": 0.1,
                                                             "ondemand_price": 0.3}}}
    if simulate:
        config["simulate"] = {"run_s": 3600, "lines_per_s": 1}
    # The e2e jobs' shape: a workdir and a bucket mounted live (both are set up on every launch).
    (work / "wd").mkdir(exist_ok=True)
    shutil.copy(Path(__file__).with_name("e2e_job.py"), work / "wd" / "e2e_job.py")
    task = work / "measure.yaml"
    task.write_text(textwrap.dedent(f"""\
        name: measure
        resources: {{cloud: local, instance_type: m.small, use_spot: true}}
        workdir: {work / "wd"}
        file_mounts:
          ~/ckpt: {{name: e2e-measure-{os.getpid()}, mode: MOUNT}}
        envs: {{COMPUTE_S: "100000", CKPT_EVERY_S: "5", CKPT_DIR: ~/ckpt}}
        run: python3 e2e_job.py
        """))
    with deployment(config) as dep:
        t_launch = time.time()
        job_id = dep.launch(str(task))
        job = _wait(dep, job_id, lambda j: j["status"] == "RUNNING" and j["attempt"] == 1)
        first_run = _ts(job["run_started_at"]) or 0.0
        (dep.cloud.root / "trace_origin").write_text(f"{time.time()}\n")  # the drop comes in 4 s
        t_drop = time.time() + 4.0
        job = _wait(dep, job_id, lambda j: j["status"] == "RUNNING" and j["attempt"] == 2, timeout=60)
        first = job["history"][0]
        again = _ts(job["run_started_at"]) or 0.0
        result = {
            "submit_to_running_s": first_run - t_launch,
            "provision_s": (_ts(first["started_at"]) or 0) - (_ts(first["launched_at"]) or 0),
            "setup_to_running_s": first_run - (_ts(first["started_at"]) or 0),
            "drop_to_detected_s": (_ts(first["ended_at"]) or 0) - t_drop,
            "detected_to_running_s": again - (_ts(first["ended_at"]) or 0),
            "drop_to_running_s": again - t_drop,
        }
    if dep.left_behind.get("instances") or dep.left_behind.get("processes"):
        raise RuntimeError(f"left behind: {dep.left_behind}")
    return result


def _wait(dep: Deployment, job_id: int, cond: Any, timeout: float = 60) -> dict[str, Any]:
    end = time.monotonic() + timeout
    job: dict[str, Any] = {}
    while time.monotonic() < end:
        job = next((j for j in dep.status() if j["job_id"] == job_id), {})
        if job and cond(job):
            return job
        time.sleep(0.1)
    raise RuntimeError(f"job {job_id} never got there in {timeout:.0f} s; last seen {job.get('status')}")


# ---- the command ---------------------------------------------------------------------------

def parse(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="economics_e2e", description=__doc__.split("\n\n")[0])
    ap.add_argument("--traces", type=Path, default=DEFAULT_TRACES, help="a folder of 1-node trace files")
    ap.add_argument("--jobs", type=int, default=12)
    ap.add_argument("--compute-h", type=float, default=8.0)
    ap.add_argument("--deadline-h", type=float, default=11.0)
    ap.add_argument("--no-deadline", action="store_true",
                    help="plain spot jobs (EAGER_NEXT_REGION), without --compute-time/--deadline")
    ap.add_argument("--policy", default="spotctl", help="the deadline policy the replay uses")
    ap.add_argument("--tick-s", type=float, default=1.5, help="wall seconds per trace tick")
    ap.add_argument("--changeover-h", type=float, default=0.06, help="trace hours a restart costs in the replay")
    ap.add_argument("--checkpoint-h", type=float, default=0.25, help="trace hours of compute between checkpoints")
    ap.add_argument("--slack-s", type=float, default=60.0, help="wall seconds to wait past the window")
    ap.add_argument("--seed", type=int, default=24)
    ap.add_argument("--measure", action="store_true", help="measure spotctl's latencies instead")
    ap.add_argument("--repeat", type=int, default=3, help="with --measure: runs per mode")
    ap.add_argument("--json", type=Path, help="also write the results as JSON here")
    ap.add_argument("--report", action="store_true",
                    help="write the run's section of BENCHMARKS.md (between its markers)")
    ap.add_argument("--from-json", type=Path, help="no run: print (and with --report write) a saved result")
    args = ap.parse_args(argv)
    bounds = [(1 <= args.jobs <= 64, "--jobs must be in 1..64"),
              (0 < args.compute_h <= 1000, "--compute-h must be in (0, 1000]"),
              (args.compute_h < args.deadline_h <= 10000, "--deadline-h must be more than --compute-h"),
              (0.1 <= args.tick_s <= 60, "--tick-s must be in 0.1..60"),
              (0 <= args.changeover_h < args.compute_h, "--changeover-h must be in [0, compute)"),
              (0 < args.checkpoint_h <= args.compute_h, "--checkpoint-h must be in (0, compute]"),
              (1 <= args.repeat <= 20, "--repeat must be in 1..20")]
    for ok, message in bounds:
        if not ok:
            ap.exit(2, f"economics_e2e: {message}\n")
    return args


def _has_deadline_flags() -> bool:
    return "--compute-time" in CliRunner().invoke(cli, ["launch", "--help"]).output


def _shown_path(folder: Path) -> str:
    """The traces' folder as the report names it: relative to the repository when inside it,
    else its name alone (no machine's path in a committed result)."""
    try:
        return str(folder.resolve().relative_to(REPO))
    except ValueError:
        return folder.name


def main(argv: list[str] | None = None) -> int:
    args = parse(list(sys.argv[1:] if argv is None else argv))
    if args.from_json:
        try:
            result = json.loads(args.from_json.read_text())
            text = table(result)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            print(f"economics_e2e: {args.from_json}: not a result of this benchmark ({exc})", file=sys.stderr)
            return 2
        print(text)
        if args.report:
            write_section(section(result, REPORT_COMMAND))
        return 0
    if args.measure:
        result = measure(args)
        for mode, m in result.items():
            print(f"{mode}: " + ", ".join(f"{k} {v:.2f}" for k, v in m.items() if k != "samples"))
    else:
        if not args.no_deadline and not _has_deadline_flags():
            print("economics_e2e: this spotctl has no launch --compute-time/--deadline yet; "
                  "run with --no-deadline", file=sys.stderr)
            return 2
        try:
            result = run_jobs(args)
        except TraceError as exc:
            print(f"economics_e2e: {exc}", file=sys.stderr)
            return 2
        print(table(result))
        if args.report:
            write_section(section(result, REPORT_COMMAND))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    left = result.get("left_behind", {}) if not args.measure else {}
    return 1 if left.get("instances") or left.get("processes") else 0


if __name__ == "__main__":
    sys.exit(main())

