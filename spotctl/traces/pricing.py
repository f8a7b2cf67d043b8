"""What a trace costs: the catalog offering (cloud, region, instance type, prices) it was measured on.

A trace's name says the zone and the accelerator (`us-east-1a_v100_1`: one V100, which AWS
sells as p3.2xlarge) or a machine type's token (`us-central1-a_c3-88`: GCP's `c3-...-88`, e.g.
c3-highcpu-88). The offering comes from spotctl's shipped catalogs, so the benchmark and the
trace-driven local cloud count in the same dollars as `status`'s cost columns. A trace no
catalog prices is one clear line, never a guess.
"""

from __future__ import annotations

from spotctl.catalog import load_offerings
from spotctl.models import Offering
from spotctl.traces.errors import TraceError
from spotctl.traces.files import Trace
from spotctl.traces.naming import TraceName, parse_name

PRICED_CLOUDS = ("aws", "gcp")
"""The catalogs searched, in this order."""


def _matches(o: Offering, name: TraceName) -> bool:
    if o.zone != name.zone or o.spot_price is None or o.ondemand_price is None:
        return False
    if name.count is not None:
        return {k.lower(): v for k, v in o.accelerators.items()} == {name.token.lower(): name.count}
    family, _, size = name.token.partition("-")
    itype = o.instance_type.lower()
    return bool(size) and itype.startswith(family.lower() + "-") and itype.endswith("-" + size.lower())


def price_trace(trace: Trace) -> Offering:
    """The cheapest (on-demand) catalog offering in the trace's zone that fits its name;
    raises TraceError ("cannot price") when no shipped catalog has one."""
    name = trace.name or parse_name(trace.path)
    found = [o for cloud in PRICED_CLOUDS for o in load_offerings(cloud) if _matches(o, name)]
    if not found:
        family, _, size = name.token.partition("-")
        what = f"{name.token.upper()} x{name.count}" if name.count is not None else f"a {family}-*-{size} machine type"
        raise TraceError(f"{trace.path}: cannot price: no catalog offering ({', '.join(PRICED_CLOUDS)}) "
                         f"in zone {name.zone} with {what}")
    return min(found, key=lambda o: (o.ondemand_price or 0.0, o.instance_type))
