"""bench/economics.py's figures: the JSON rows, the BENCHMARKS.md section and its plots."""

from __future__ import annotations

import statistics
from pathlib import Path

from econ_run import MULTI, POLICIES, FolderResult, Setting
from econ_sim import Tally
from measures import put_section

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- bench/economics.py: begin -->", "<!-- bench/economics.py: end -->"


def figures(t: Tally) -> dict:
    runs = len(t.costs)
    return {
        "runs": runs,
        "cost_vs_ondemand": round(statistics.fmean(c / b for c, b in zip(t.costs, t.baselines, strict=True)), 4),
        "miss_rate": round(t.misses / runs, 4) if runs else 0.0,
        "vs_optimal": round(statistics.fmean(c / o for c, o in zip(t.costs, t.optima, strict=True)), 4),
    }


def rows(results: list[FolderResult]) -> dict:
    out, multi = [], []
    for res in results:
        for (s, p), t in res.tallies.items():
            out.append({"policy": p, "traces": res.name, "deadline_h": s.deadline_h, "changeover_h": s.changeover_h,
                        **figures(t)})
        for s, t in res.multi_optimal.items():
            f = figures(t)
            multi.append({"traces": res.name, "deadline_h": s.deadline_h, "changeover_h": s.changeover_h,
                          "runs": f["runs"], "cost_vs_ondemand": f["cost_vs_ondemand"]})
    return {"results": out, "multi_zone_optimal": multi}


def table(res: FolderResult, settings: list[Setting]) -> str:
    head = "| deadline / changeover | " + " | ".join(POLICIES) + " | optimal, all zones |"
    lines = [head, "|---" * (len(POLICIES) + 2) + "|"]
    for s in settings:
        cells = []
        for p in POLICIES:
            f = figures(res.tallies[(s, p)])
            cell = f"{f['cost_vs_ondemand']:.3f}"
            if p not in ("on-demand", "optimal"):
                cell += f" ({f['vs_optimal']:.2f}x)"
            if f["miss_rate"]:
                cell += f", **{100 * f['miss_rate']:.0f}% late**"
            cells.append(cell)
        multi = figures(res.multi_optimal[s])["cost_vs_ondemand"]
        lines.append(f"| {s.deadline_h:g} h / {s.changeover_h:g} h | " + " | ".join(cells) + f" | {multi:.3f} |")
    return "\n".join(lines)


def averages(res: FolderResult, settings: list[Setting]) -> dict[str, dict[str, float]]:
    out = {}
    for p in POLICIES:
        fs = [figures(res.tallies[(s, p)]) for s in settings]
        out[p] = {k: statistics.fmean(f[k] for f in fs) for k in ("cost_vs_ondemand", "miss_rate", "vs_optimal")}
    return out


def plots(results: list[FolderResult], settings: list[Setting], out_dir: Path) -> list[str]:
    """Cost against deadline slack per policy; where each policy's time goes. [] without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    main = results[0]
    deadlines = sorted({s.deadline_h for s in settings})
    changeovers = sorted({s.changeover_h for s in settings})
    fig, axes = plt.subplots(1, len(changeovers), figsize=(4 * len(changeovers), 3.6), sharey=True, squeeze=False)
    for ax, d in zip(axes[0], changeovers, strict=True):
        for p in POLICIES:
            ys = [figures(main.tallies[(s, p)])["cost_vs_ondemand"] for D in deadlines for s in settings
                  if s.deadline_h == D and s.changeover_h == d]
            xs = [D - settings[0].compute_h for D in deadlines]
            ax.plot(xs, ys, "o-" if p not in MULTI else "s--", label=p)
        ax.set_title(f"changeover {d:g} h")
        ax.set_xlabel("deadline slack, h (deadline - 48 h)")
    axes[0][0].set_ylabel("cost / on-demand")
    axes[0][-1].legend(fontsize=7)
    fig.suptitle(f"{main.name}: cost against deadline slack", fontsize=9)
    fig.tight_layout()
    fig.savefig(out_dir / "economics_cost_vs_slack.png", dpi=100)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(7, 3.6))
    shown = [p for p in POLICIES if p != "optimal"]
    parts = ("spot_h", "ondemand_h", "idle_h", "changeover_h")
    labels = ("spot", "on-demand", "idle", "changeover")
    bottoms = [0.0] * len(shown)
    for part, label in zip(parts, labels, strict=True):
        shares = []
        for p in shown:
            ts = [main.tallies[(s, p)] for s in settings]
            total = sum(t.spot_h + t.ondemand_h + t.idle_h + t.changeover_h for t in ts) or 1.0
            shares.append(sum(getattr(t, part) for t in ts) / total)
        ax.bar(shown, shares, bottom=bottoms, label=label)
        bottoms = [b + v for b, v in zip(bottoms, shares, strict=True)]
    ax.set_ylabel("share of the job's time")
    ax.set_title(f"{main.name}: where the time goes (all settings)", fontsize=9)
    ax.tick_params(axis="x", labelsize=7)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "economics_time_shares.png", dpi=100)
    plt.close(fig)
    return ["bench/plots/economics_cost_vs_slack.png", "bench/plots/economics_time_shares.png"]


def targets(res: FolderResult, settings: list[Setting]) -> list[str]:
    """Issue 24's targets, checked on one folder's figures."""
    def f(p: str, s: Setting) -> dict:
        return figures(res.tallies[(s, p)])

    misses = sum(f("spotctl", s)["miss_rate"] for s in settings)
    worse = [s for s in settings if f("spotctl", s)["cost_vs_ondemand"] > f("uniform-progress", s)["cost_vs_ondemand"]]
    vs_opt = statistics.fmean(f("spotctl", s)["vs_optimal"] for s in settings)
    cheaper = [1 - f("spotctl-multi-region", s)["cost_vs_ondemand"] / f("uniform-progress", s)["cost_vs_ondemand"]
               for s in settings]
    eager = [f("eager-next-region", s) for s in settings]

    def ok(cond: bool) -> str:
        return "**met**" if cond else "**not met**"

    return [
        f"- spotctl misses no deadline: {ok(misses == 0)} (late in {100 * misses / len(settings):.1f}% of runs).",
        f"- spotctl costs no more than Uniform Progress in every setting: {ok(not worse)} "
        + (f"(more in {', '.join(f'{s.deadline_h:g} h / {s.changeover_h:g} h' for s in worse)})." if worse else
           f"(cheaper by {100 * min(1 - f('spotctl', s)['cost_vs_ondemand'] / f('uniform-progress', s)['cost_vs_ondemand'] for s in settings):.1f}% "
           f"to {100 * max(1 - f('spotctl', s)['cost_vs_ondemand'] / f('uniform-progress', s)['cost_vs_ondemand'] for s in settings):.1f}%)."),
        f"- spotctl within 15% of the single-zone optimum on average: {ok(vs_opt <= 1.15)} ({vs_opt:.3f}x).",
        f"- spotctl-multi-region at least 20% cheaper than single-region Uniform Progress: {ok(min(cheaper) >= 0.2)} "
        f"({100 * min(cheaper):.0f}% to {100 * max(cheaper):.0f}% cheaper, {100 * statistics.fmean(cheaper):.0f}% on average).",
        f"- beside them, EAGER_NEXT_REGION (spot only): {statistics.fmean(e['cost_vs_ondemand'] for e in eager):.3f} of "
        f"on-demand on average, late in {100 * statistics.fmean(e['miss_rate'] for e in eager):.1f}% of runs "
        f"(up to {100 * max(e['miss_rate'] for e in eager):.0f}% in one setting).",
    ]


def no_deadline_table(plain: list[dict]) -> str:
    """Plain spot jobs (no deadline), EAGER_NEXT_REGION, by ranking: one row per folder and changeover."""
    if not plain:
        return ""
    by = {(r["traces"], r["changeover_h"], r["ranking"]): r for r in plain}
    lines = ["### Jobs without a deadline: price order or the fleet memory's expected cost", "",
             "48 h of compute on spot only, EAGER_NEXT_REGION (spotctl.policy.recovery.order_candidates), candidates "
             "in price order (`fleet.ranking: price`, the default) or ranked by expected cost within the strategy "
             "(`expected-cost`: spotctl.policy.rank_within_strategy over the fleet memory's view, the workflow's "
             "WorkAhead), from the same start offsets; followed for 4x the compute. Cost: share of on-demand from "
             "launch; hours to finish and preemptions: averages per run.", "",
             "| traces / changeover | price: cost | hours | preemptions | expected-cost: cost | hours | preemptions |",
             "|---|---|---|---|---|---|---|"]
    for (name, d, r), row in by.items():
        if r != "price":
            continue
        other = by[(name, d, "expected-cost")]

        def cells(x: dict) -> str:
            late = f" ({100 * x['unfinished']:.0f}% unfinished)" if x["unfinished"] else ""
            cost = "-" if x["cost_vs_ondemand"] is None else f"{x['cost_vs_ondemand']:.4f}"
            hours = "-" if x["finish_h"] is None else f"{x['finish_h']:.2f}"
            return f"{cost}{late} | {hours} | {x['preemptions']:.2f}"
        lines.append(f"| {name} / {d:g} h | {cells(row)} | {cells(other)} |")
    return "\n".join(lines)


def section(results: list[FolderResult], settings: list[Setting], argv: str, method: str, notes: str,
            images: list[str], extra: str = "") -> str:
    parts = [BEGIN, "## Deadlines on real spot traces (bench/economics.py), issue 24", "",
             f"    python bench/economics.py {argv}".rstrip(), "", method, "",
             f"### Issue 24's targets, on the shipped AWS traces ({results[0].name}), published setup", "",
             *targets(results[0], settings), ""]
    for res in results:
        parts += [f"### {res.name}: {len(res.zones)} zones ({', '.join(res.zones)}), tick {res.gap_s} s, "
                  f"{res.span_h:.0f} h of trace, {len(res.offsets)} start offsets", "", table(res, settings), ""]
        avg = averages(res, settings)
        parts.append("Averages over the settings: " + "; ".join(
            f"{p} {a['cost_vs_ondemand']:.3f} ({a['vs_optimal']:.2f}x optimal"
            + (f", {100 * a['miss_rate']:.1f}% late" if a["miss_rate"] else "") + ")"
            for p, a in avg.items() if p not in ("on-demand", "optimal")) + ". "
            + f"spotctl costs no more than uniform-progress in {sum(1 for s in settings if figures(res.tallies[(s, 'spotctl')])['cost_vs_ondemand'] <= figures(res.tallies[(s, 'uniform-progress')])['cost_vs_ondemand'])} of {len(settings)} settings.")
        parts.append("")
    if extra:
        parts += [extra, ""]
    parts += [*[f"![{Path(i).stem}]({i})" for i in images], "", notes, END]
    return "\n".join(parts)


def write_section(text: str) -> None:
    put_section(text, BEGIN, END)
