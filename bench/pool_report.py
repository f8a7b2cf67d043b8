"""The BENCHMARKS.md section "Many jobs: pools" and its plot, from bench/pool_throughput.py's
result (bench/pool_throughput.json), written through measures.put_section."""

from __future__ import annotations

from pathlib import Path

from measures import put_section

ROOT = Path(__file__).resolve().parents[1]
PLOT = ROOT / "bench" / "plots" / "pool_throughput.png"
BEGIN, END = "<!-- pool-throughput:begin -->", "<!-- pool-throughput:end -->"


def plot(r: dict) -> bool:
    """Queue, busy workers and preemptions over the run; where a pool job's time goes."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    tl = r["timeline"]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"width_ratios": [2.2, 1]})
    t = [s["t"] for s in tl]
    ax.plot(t, [s["queued"] for s in tl], label="jobs waiting (pool queue)", color="tab:orange")
    ax2 = ax.twinx()
    ax2.plot(t, [s["busy"] for s in tl], label="workers busy", color="tab:blue")
    ax2.plot(t, [s["alive"] for s in tl], label="workers up", color="tab:gray", linestyle=":")
    ax2.set_ylim(0, r["workers"] * 1.15)
    ax2.set_ylabel("workers")
    t0 = r["timeline_origin"]
    for p in r["preempted"]:
        ax.axvline(p["at"] - t0, color="tab:red", alpha=0.4, linewidth=0.8)
    ax.set_xlabel("seconds since the array's launch (red: a worker preempted)")
    ax.set_ylabel("jobs waiting")
    ax.set_title(f"{r['jobs'] + r['high_jobs']:,} jobs of {r['job_s']:g} s on {r['workers']} workers")
    lines = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    ax.legend(lines, [str(x.get_label()) for x in lines], loc="upper right", fontsize=8)
    p = r["pool"]
    names = ["grant ->\nprogram", "program end ->\nrelease", "pool: all", "ordinary:\nall"]
    vals = [p["grant_to_program_mean_s"], p["program_end_to_release_mean_s"], p["overhead_mean_s"],
            r.get("ordinary", {}).get("overhead_mean_s", 0.0)]
    bx.bar(names, vals, color=["tab:blue", "tab:blue", "tab:green", "tab:gray"])
    bx.axhline(1.0, color="tab:red", linestyle="--", linewidth=0.8, label="target (pool job) < 1 s")
    bx.set_ylabel("seconds per job beyond its program (mean)")
    bx.legend(fontsize=8)
    bx.tick_params(axis="x", labelsize=8)
    fig.tight_layout()
    PLOT.parent.mkdir(exist_ok=True)
    fig.savefig(PLOT, dpi=110)
    plt.close(fig)
    return True


def _yes(ok: bool) -> str:
    return "met" if ok else "**not met**"


def section(r: dict, plotted: bool) -> str:
    p, s, m, once = r["pool"], r["submission"], r["memory"], r["exactly_once"]
    total = r["jobs"] + r["high_jobs"]
    o = r.get("ordinary")
    lines = [
        BEGIN,
        "## Many jobs: pools",
        "",
        f"`python bench/pool_throughput.py {r['command_args']}` ({r['started']}, 2 shared cores, other work "
        "running). The local cloud's benchmark mode: each job's program is a timer of "
        f"{r['job_s']:g} s on a simulated instance (no process), so what is measured is spotctl's own cost: the "
        "workflows, activities and node polls. One `spotctl worker`, the embedded server. Arrays launched by the "
        f"real CLI: {r['jobs']:,} jobs at priority 500, then {r['high_jobs']:,} at priority 900, on a pool of "
        f"{r['workers']} workers; {len(r['preempted'])} workers (5%) preempted with no notice during the run.",
        "",
    ]
    if r.get("scaled_note"):
        lines += [r["scaled_note"], ""]
    lines += [
        "| | measured | target |",
        "|---|---|---|",
        f"| jobs through the pool | {p['jobs_per_s']:.1f} jobs/s launch to last done ({p['wall_s']:.0f} s); "
        f"{p['steady_jobs_per_s']:.1f} jobs/s first grant to last done; the pool's ideal {p['ideal_jobs_per_s']:.0f} "
        f"jobs/s ({r['workers']} workers / {r['job_s']:g} s) | |",
        f"| workers busy while jobs waited | held by a job {p['held_fraction']:.1%}; running a program "
        f"{p['program_fraction']:.1%} (over the {p['window_s']:.0f} s from all jobs accepted to the last grant; "
        f"lost workers count as idle) | >= 90%: {_yes(p['held_fraction'] >= 0.9)} (held) |",
        f"| overhead per pool job (worker held beyond its program) | mean {p['overhead_mean_s']:.2f} s, p50 "
        f"{p['overhead_p50_s']:.2f} s, p95 {p['overhead_p95_s']:.2f} s: grant to program start "
        f"{p['grant_to_program_mean_s']:.2f} s, program end to release {p['program_end_to_release_mean_s']:.2f} s "
        f"(mean); {p['overhead_mean_s'] / r['job_s']:.1%} of the job's own {r['job_s']:g} s | < 1 s: "
        f"{_yes(p['overhead_mean_s'] < 1.0)} (mean) |",
    ]
    waiting = [x for x in r["timeline"] if x["queued"] > 0]
    if waiting:
        busy = sum(x["busy"] for x in waiting) / max(1, sum(x["alive"] for x in waiting))
        lines.append(
            f"| the pool's own count while jobs waited (sampled each second) | {busy:.1%} of its up workers busy "
            f"(granted, not yet given back); fewest busy at once: {min(x['busy'] for x in waiting)} | |")
    if o:
        lines.append(
            f"| the same work as ordinary jobs (anchor, same run) | {o['jobs']} jobs, each its own cluster: "
            f"overhead mean {o['overhead_mean_s']:.2f} s, p50 {o['overhead_p50_s']:.2f} s (submit to done beyond the "
            f"program; the local cloud provisions at once); {o['jobs_per_s']:.1f} jobs/s for {o['jobs']} at once. "
            f"Pool overhead / ordinary: {p['overhead_mean_s'] / o['overhead_mean_s']:.2f}x | |")
    lines += [
        f"| submission of the array | `launch --num-jobs {r['jobs']:,} --async -p` returned in "
        f"{s['command_returned_s']:.2f} s; all {r['jobs']:,} jobs accepted (their workflows exist) "
        f"{s['array_accepted_s']:.1f} s after it started ({r['jobs'] / s['array_accepted_s']:.0f} jobs/s; 10,000 "
        f"at that rate: ~{10_000 * s['array_accepted_s'] / r['jobs']:.0f} s). The second array's command, launched "
        f"then: {s['high_command_returned_s']:.2f} s | < 30 s: {_yes(s['command_returned_s'] < 30)} (the command "
        f"returning); {_yes(10_000 * s['array_accepted_s'] / r['jobs'] < 30)} (all 10,000 accepted, extrapolated) |",
        f"| priorities | the first priority-900 job got the {p['high_first_grant_index'] + 1}th grant, the last "
        f"the {p['high_last_grant_index'] + 1}th; {p['low_granted_between_first_and_last_high']} priority-500 "
        "jobs were granted a worker between the first and the last priority-900 grant | higher first |",
        f"| exactly once | {once['succeeded']:,}/{once['jobs']:,} SUCCEEDED; {once['runs_started']:,} runs started, "
        f"{once['runs_cut_by_preemption']} cut by a preemption ({once['recoveries']} recoveries); "
        f"{once['jobs_with_one_finished_run']:,} jobs ran to their end exactly once, "
        f"{once['jobs_with_more_finished_runs']} more than once; {once['ranks_once']:,}/{once['ranks_expected']:,} "
        f"(array, rank) pairs seen exactly once in the runs' env.json; {r['instances_left']} VMs left | none lost, "
        "none twice, no VM |",
        f"| memory on the controller | {m['controller_mib_per_job'] * 1024:.0f} KiB RSS per job in the system "
        f"(server + worker, all {total:,} accepted: {m['peak_queued']:,} waiting at the peak and {r['workers']} "
        f"running), of which the worker {m['worker_mib_per_job'] * 1024:.0f} KiB; the pool workflow carries "
        f"{m['carried_bytes_per_waiting_job']} bytes per waiting job (its queue entry) and "
        f"{m['carried_bytes_per_busy_worker']:.0f} bytes per worker | |",
        "",
    ]
    stages = r.get("stages") or ([{"label": "before", "pool": r["before"]["pool"]}] if r.get("before") else [])
    if stages:
        stages = [*stages, {"label": r.get("label", "this run"), "pool": p}]
        lines += ["Step by step (the same script and size, one run each, on the same shared machine):", "",
                  "| | " + " | ".join(st["label"] for st in stages) + " |",
                  "|---|" + "---|" * len(stages)]
        for label, key in (("overhead per pool job, mean", "overhead_mean_s"),
                           ("overhead per pool job, p50", "overhead_p50_s"),
                           ("grant to program start, mean", "grant_to_program_mean_s"),
                           ("program end to release, mean", "program_end_to_release_mean_s"),
                           ("workers held by a job while jobs waited", "held_fraction"),
                           ("workers running a program while jobs waited", "program_fraction"),
                           ("jobs/s, launch to last done", "jobs_per_s"),
                           ("a worker's gap from one program's end to the next's start, mean", "worker_gap_mean_s"),
                           ("a worker's gap, p50", "worker_gap_p50_s")):
            if any(key not in st["pool"] for st in stages):
                continue  # a run from before the script measured it
            fmt = "{:.1%}" if "fraction" in key else "{:.2f}"
            lines.append(f"| {label} | " + " | ".join(fmt.format(st["pool"][key]) for st in stages) + " |")
        lines.append("")
    if r.get("notes"):
        lines += [r["notes"], ""]
    if plotted:
        lines += ["![pool throughput](bench/plots/pool_throughput.png)", ""]
    lines.append(END)
    return "\n".join(lines)


def write_report(r: dict) -> None:
    put_section(section(r, plot(r)), BEGIN, END)
