"""bench/economics_e2e.py's BENCHMARKS.md section: the per-job table (measured beside the
replay's prediction), the agreement figures and why the two differ, between its own markers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from measures import put_section

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- bench/economics_e2e.py: begin -->", "<!-- bench/economics_e2e.py: end -->"


def _f(x: float | None, spec: str = ".2f") -> str:
    return "-" if x is None else format(x, spec)


def _late(r: dict[str, Any], deadline_h: float | None) -> str:
    if deadline_h is None:
        return "-"
    if r["measured_finish_h"] is None:
        return "not done"
    over = r["measured_finish_h"] - deadline_h
    return f"**late** by {over:.2f} h" if over > 0 else f"no ({-over:.2f} h early)"


def section(s: dict[str, Any], command: str) -> str:
    """The section for one run's summary (economics_e2e.run_jobs's result)."""
    d = s["deadline_h"]
    a = s["agreement"]
    scale = s["scale"]
    rows = ["| job | trace window | status | cost $ measured / predicted | finish h measured / predicted "
            "| switches measured / predicted | preemptions measured / predicted | longest restart h | late |",
            "|---|---|---|---|---|---|---|---|---|"]
    for r in s["jobs"]:
        rows.append(f"| {r['job']} | {r['window']} | {r['status']} | {_f(r['measured_cost'])} / "
                    f"{_f(r['predicted_cost'])} | {_f(r['measured_finish_h'])} / {_f(r['predicted_finish_h'])} | "
                    f"{r['switches']} / {r['predicted_switches']} | {r['recoveries']} / "
                    f"{r['predicted_preemptions']} | {_f(r.get('restart_h'), '.3f')} | {_late(r, d)} |")
    late = [r for r in s["jobs"] if r.get("late")]
    agree = []
    for what in ("cost", "finish"):
        x = a[what]
        agree.append(f"- {what}: " + ("no finished job" if x is None else
                     f"mean \\|measured / predicted - 1\\| = {x['mean_abs_error']:.1%}, largest "
                     f"{x['max_abs_error']:.1%}, over {x['n']} finished jobs"))
    same_sw = sum(1 for r in s["jobs"] if r["switches"] == r["predicted_switches"])
    same_pre = sum(1 for r in s["jobs"] if r["recoveries"] == r["predicted_preemptions"])
    left = s.get("left_behind", {})
    tails = [r["ended_h"] - r["measured_finish_h"] for r in s["jobs"]
             if r.get("ended_h") is not None and r["measured_finish_h"] is not None]
    restarts = [r["restart_h"] for r in s["jobs"] if r.get("restart_h") is not None]
    if tails:
        agree.append(f"- the final teardown after the program's end: {min(tails):.3f} to {max(tails):.3f} h "
                     "(not counted against the deadline)")
    if restarts:
        agree.append(f"- the longest restart each job measured: {min(restarts):.3f} to {max(restarts):.3f} h "
                     f"(declared changeover {s['changeover_h']} h)")
    tick_h = s["tick_s"] * scale / 3600
    return "\n".join([
        BEGIN,
        "## The real system on a trace (bench/economics_e2e.py), issue 24",
        "",
        f"    {command}",
        "",
        f"{len(s['jobs'])} real jobs through the real workflows on the local cloud, each in its own region whose "
        f"zone follows one zone of `{Path(s['traces']).name}` from the job's own start offset (process mode: a "
        f"real process per node; the program computes by sleeping, checkpoints every {s['checkpoint_h']} h of "
        f"compute to a bucket mounted live and reports its progress through SPOTCTL_PROGRESS_FILE). Each job "
        f"needs {s['compute_h']} h of compute"
        + (f" by {d} h after its launch (`--compute-time`/`--deadline`, policy `{s['policy']}`, declared "
           f"changeover {s['changeover_h']} h)" if d is not None else " (plain spot, no deadline)")
        + f". Time scale {scale:.0f}: one trace tick ({tick_h:.3f} h) in {s['tick_s']} s of wall time. Measured: "
        "cost and times from `spotctl status --json`, multiplied by the scale; a job's finish is its program's "
        "successful end (`done_at`), from its submission. Predicted: bench/econ_sim.py's replay of the same "
        "window (`one_job`: the same policy code, ticks, the declared changeover per start, the work since "
        "the last checkpoint lost at a preemption; asked where the workflow asks it: at launches and "
        "preemptions, on on-demand at the watch's checks, a move to spot resuming from the checkpoint, never "
        "on a running spot attempt; told the spells seen).",
        "",
        *rows,
        "",
        "Agreement (finished jobs):",
        "",
        *agree,
        f"- switches equal in {same_sw} of {len(s['jobs'])} jobs, preemptions (recoveries) equal in {same_pre}; "
        f"{a['succeeded']}/{a['jobs']} jobs succeeded ({a['predicted_to_finish']} predicted to)"
        + (f"; late: {len(late)} of {len(s['jobs'])}" if d is not None else ""),
        f"- left after the run: {left.get('instances', 0)} instances, {left.get('processes', 0)} processes",
        "",
        "Why they differ. The replay decides at the workflow's decision points, at tick boundaries, with "
        "the declared changeover; the real "
        "workflow decides when it looks (a preemption is seen up to a monitor poll later, about a second of "
        f"wall time: {scale / 3600:.3f} h of trace time at this scale; a wait for capacity ends at the next "
        "provisioning round, not at the tick) and each of its restarts costs its own latency (provisioning, "
        "file mounts, setup, start: about 0.85 s of wall time, 0.03 h here, more when the machine is busy). "
        "The deadline jobs are also more cautious than the replay: their policy is told the restarts they "
        "measured and keeps a checkpoint interval in hand before a spot run (the `deadline-restarts` patch, "
        "docs/deadlines.md), so a real job may take on-demand a little earlier than its prediction and pay "
        "a little more for it. A decision at the margin (the slack at the reserve when spot comes back, a "
        "drop seen just before or after a check) can go either way from one real run to the next, so one "
        "job's figures can differ by a whole switch or preemption between two runs of the same window. At "
        "a slower scale (docs/traces.md: `--tick-s 15`) spotctl's own latencies shrink against a tick and "
        "the two converge.",
        END,
    ])


def write_section(text: str, path: Path = ROOT / "BENCHMARKS.md") -> None:
    """Replace the section between its markers, or add it at the end."""
    put_section(text, BEGIN, END, path)
