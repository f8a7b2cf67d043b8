"""A local-cloud config.yaml that plays a folder of traces (docs/traces.md).

    python -m spotctl.traces.cloud_config --traces DIR --scale S [--start-s X] [--simulate]
        [--notice-s N] [--out PATH]

One region per trace region (`us-east-1a` -> region `us-east-1`), one zone per trace, each
zone following its file; one instance type named as in the catalog (p3.2xlarge with
accelerators V100: 1) at the catalog's prices, so a job's cost is in dollars. Regions whose
catalog prices differ from the first region's get a price_factor (on-demand's ratio). The
output is plain data for the local cloud's config (clouds/local_config.py), which validates
it: this package sits below clouds/ and does not import it. A bad trace, or one no catalog
prices, is one line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from spotctl.models import Offering
from spotctl.traces.errors import TraceError
from spotctl.traces.files import Trace, load_folder
from spotctl.traces.pricing import price_trace

HEADER = """\
# spotctl local cloud following spot traces, written by `python -m spotctl.traces.cloud_config`.
# Every zone follows its trace file (docs/traces.md): spot creates fail while the zone has no
# spot left, running spot instances are preempted when its value drops; on-demand is always there.
# Trace time = (now - the origin in trace_origin) * scale + start_s.
"""


def cloud_config(traces: list[Trace], *, scale: float, start_s: float = 0.0, notice_s: float = 0.0,
                 capacity: int = 64, prefix: str = "", simulate: dict[str, float] | None = None,
                 ondemand: bool = True) -> dict[str, Any]:
    """The config as data. `prefix` names regions and zones `<prefix><name>` (so one cloud can
    play the same zone at several offsets, one region each: bench/economics_e2e.py)."""
    if not traces:
        raise TraceError("no trace to write a local cloud config for")
    priced = [(t, price_trace(t)) for t in traces]
    types = {o.instance_type for _, o in priced}
    if len(types) > 1:
        raise TraceError(f"{traces[0].path.parent}: the traces are of several instance types "
                         f"({', '.join(sorted(types))}); one folder must be of one")
    base = priced[0][1]
    regions: dict[str, dict[str, Any]] = {}
    for trace, offer in priced:
        region = regions.setdefault(prefix + offer.region, {
            "zones": [], "capacity": capacity, "price_factor": _factor(offer, base),
            "preemption_notice_s": notice_s,
            "trace": {"zones": {}, "scale": scale, "start_s": start_s, "ondemand": ondemand},
        })
        region["zones"].append(prefix + trace.zone)
        region["trace"]["zones"][prefix + trace.zone] = str(trace.path.resolve())
    out: dict[str, Any] = {}
    if simulate is not None:
        out["simulate"] = simulate
    out["regions"] = regions
    out["instance_types"] = {base.instance_type: {
        "cpus": base.cpus, "memory_gb": base.memory_gb, "accelerators": dict(base.accelerators),
        "spot_price": base.spot_price, "ondemand_price": base.ondemand_price,
    }}
    return out


def _factor(offer: Offering, base: Offering) -> float:
    if not offer.ondemand_price or not base.ondemand_price:
        return 1.0
    return round(offer.ondemand_price / base.ondemand_price, 6)


def render(config: dict[str, Any]) -> str:
    return HEADER + yaml.safe_dump(config, sort_keys=False)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m spotctl.traces.cloud_config", description=__doc__.split("\n\n")[0])
    ap.add_argument("--traces", required=True, help="a folder of trace files (ZONE_ACCELERATOR_COUNT.json)")
    ap.add_argument("--scale", type=float, required=True, help="trace seconds per wall second")
    ap.add_argument("--start-s", type=float, default=0.0, help="trace time at the clock's origin (seconds)")
    ap.add_argument("--notice-s", type=float, default=0.0, help="preemption notice in wall seconds")
    ap.add_argument("--simulate", action="store_true", help="the benchmark mode: instances run no process")
    ap.add_argument("--run-s", type=float, default=3600.0, help="with --simulate: the simulated program's run time")
    ap.add_argument("--out", default="-", help="where to write the config (default: stdout)")
    args = ap.parse_args(argv)
    if not 0 < args.scale <= 1e7 or not 0 <= args.start_s or not 0 <= args.notice_s or not 0 <= args.run_s:
        print("cloud_config: --scale must be in (0, 1e7], --start-s, --notice-s and --run-s >= 0", file=sys.stderr)
        return 2
    try:
        traces = load_folder(args.traces)
        text = render(cloud_config(traces, scale=args.scale, start_s=args.start_s, notice_s=args.notice_s,
                                   simulate={"run_s": args.run_s, "lines_per_s": 1.0} if args.simulate else None))
    except TraceError as exc:
        print(f"cloud_config: {exc}", file=sys.stderr)
        return 2
    if args.out == "-":
        sys.stdout.write(text)
    else:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
