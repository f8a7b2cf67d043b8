"""bench/run.py's targets and its section of BENCHMARKS.md (a table per N, plots)."""

from __future__ import annotations

import os
import platform
from pathlib import Path

from measures import Row, pct, put_section

TARGETS = {"mib_per_job": 2.0, "launch_all_1000_s": 120.0, "detect_p50_s": 2.0, "detect_p95_s": 5.0,
           "status_s": 1.0}
"""Issue 11's targets (this 2-core, 24 GiB machine)."""
QUICK_LIMITS = {"mib_per_job": 2 * TARGETS["mib_per_job"], "detect_p50_s": 2 * TARGETS["detect_p50_s"]}
"""`--quick` fails past twice a target: a regression cannot land unseen, noise does not fail CI."""

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- bench/run.py: begin -->", "<!-- bench/run.py: end -->"


def quick_failures(row: Row) -> list[str]:
    out = []
    if row.mib_per_job > QUICK_LIMITS["mib_per_job"]:
        out.append(f"{row.mib_per_job:.2f} MiB per job > {QUICK_LIMITS['mib_per_job']}")
    if pct(row.detect, 0.5) > QUICK_LIMITS["detect_p50_s"]:
        out.append(f"detection p50 {pct(row.detect, 0.5):.2f}s > {QUICK_LIMITS['detect_p50_s']}s")
    if row.left:
        out.append(f"{row.left} instance(s) left after cancel-all")
    return out


def machine() -> str:
    mem = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
               if line.startswith("MemTotal"))
    return f"{os.cpu_count()} CPUs, {mem / 2**20:.0f} GiB, Linux {platform.release()}, Python {platform.python_version()}"


def table(rows: list[Row]) -> str:
    head = "| measure | " + " | ".join(f"N={r.jobs}" + (f", {r.workers} workers" if r.workers > 1 else "")
                                      for r in rows) + " |"
    lines = [head, "|---" * (len(rows) + 1) + "|"]

    def add(name: str, fmt) -> None:
        lines.append(f"| {name} | " + " | ".join(fmt(r) for r in rows) + " |")

    add("MiB per running job (server + workers)", lambda r: f"{r.mib_per_job:.2f}")
    add("server RSS, MiB (no jobs -> N)", lambda r: f"{r.rss_server_0:.0f} -> {r.rss_server:.0f}")
    add("worker RSS, MiB (no jobs -> N)", lambda r: f"{r.rss_workers_0:.0f} -> {r.rss_workers:.0f}")
    add("server CPU % (steady)", lambda r: f"{r.cpu_server:.0f}")
    add("worker CPU % (steady)", lambda r: f"{r.cpu_workers:.0f}")
    add("first launch -> all RUNNING", lambda r: f"{r.launch_s:.1f} s ({r.launch_rate:.1f} jobs/s)")
    add("CPU % while launching: server / worker", lambda r: f"{r.cpu_launch_server:.0f} / {r.cpu_launch_workers:.0f}")
    add("preempted (10%)", lambda r: f"{r.preempted}")
    add("detection p50 / p95 / max, s", lambda r: f"{pct(r.detect, .5):.2f} / {pct(r.detect, .95):.2f} / "
        f"{max(r.detect):.2f}")
    add("RUNNING again p50 / p95 / max, s", lambda r: f"{pct(r.back, .5):.2f} / {pct(r.back, .95):.2f} / "
        f"{max(r.back):.2f}")
    add("`spotctl status`, s (no jobs: anchor)", lambda r: f"{r.status_s:.2f} ({r.status_0_s:.2f})")
    add("`spotctl status --json`, s", lambda r: f"{r.status_json_s:.2f}")
    add("`cancel -a` -> all closed, s", lambda r: f"{r.cancel_s:.1f}")
    add("instances left", lambda r: f"{r.left}")
    add("load average (1 min) at steady state", lambda r: f"{r.load:.1f}")
    return "\n".join(lines)


def plots(rows: list[Row]) -> list[str]:
    """PNG plots next to this file; [] when matplotlib is not installed (`pip install -e '.[bench]'`)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    out_dir = Path(__file__).parent / "plots"
    out_dir.mkdir(exist_ok=True)
    single = sorted((r for r in rows if r.workers == 1), key=lambda r: r.jobs)
    fig, ax = plt.subplots(figsize=(6, 4))
    ns = [r.jobs for r in single]
    ax.plot(ns, [r.mib_per_job for r in single], "o-", label="server + worker")
    ax.plot(ns, [(r.rss_server - r.rss_server_0) / r.jobs for r in single], "s--", label="server")
    ax.plot(ns, [(r.rss_workers - r.rss_workers_0) / r.jobs for r in single], "^--", label="worker")
    ax.axhline(TARGETS["mib_per_job"], color="green", lw=1, label="target (2 MiB)")
    ax.axhline(18, color="red", lw=1, label="SkyPilot controller (~18 MiB)")
    ax.set_xscale("log")
    ax.set_xlabel("running jobs (N)")
    ax.set_ylabel("MiB of RSS per running job")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / "mib_per_job.png", dpi=100)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 4))
    data = [r.detect for r in single] + [r.back for r in single]
    labels = [f"detect\nN={r.jobs}" for r in single] + [f"running\nN={r.jobs}" for r in single]
    ax.boxplot(data, tick_labels=labels, whis=(5, 95))
    ax.axhline(TARGETS["detect_p50_s"], color="green", lw=1, label="detection p50 target")
    ax.axhline(15, color="red", lw=1, label="SkyPilot's poll (15 s)")
    ax.set_ylabel("seconds after the preemption")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / "preemption_latency.png", dpi=100)
    plt.close(fig)
    return ["bench/plots/mib_per_job.png", "bench/plots/preemption_latency.png"]


def write_report(rows: list[Row], argv: str, notes: str = "", *, method: str = "") -> None:
    """Replace bench/run.py's section of BENCHMARKS.md (between its markers); `method`: what
    was measured and how (run.METHOD)."""
    rows = sorted(rows, key=lambda r: (r.workers, r.jobs))
    images = plots(rows)
    section = "\n".join([
        BEGIN,
        "## 1,000 concurrent jobs on one machine (bench/run.py), issue 11",
        "",
        f"    python bench/run.py {argv}".rstrip(),
        "",
        f"Machine: {machine()}. " + method,
        "",
        table(rows),
        "",
        *[f"![{Path(i).stem}]({i})" for i in images],
        "",
        notes,
        END,
    ])
    put_section(section, BEGIN, END)
