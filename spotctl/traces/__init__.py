"""Spot traces (shared): load and check trace files of spot availability or preemption
(`{"metadata": {"gap_seconds": G}, "data": [n0, n1, ...]}`, one file per zone, named
`ZONE_ACCELERATOR_COUNT.json`), read what their names say, and price them from the catalogs.

Used by the local cloud (a zone that follows a trace, clouds/local_trace.py), by the
benchmarks (bench/economics.py, bench/economics_e2e.py) and by `python -m
spotctl.traces.cloud_config`, which writes a local-cloud config that plays a folder of traces.
Every bad input is a `TraceError` whose message is one line naming the file. See docs/traces.md.
"""

from spotctl.traces.errors import TraceError
from spotctl.traces.files import MAX_FILE_BYTES, MAX_GAP_S, MAX_VALUE, Trace, load_folder, load_trace
from spotctl.traces.naming import TraceName, parse_name, region_of_zone
from spotctl.traces.pricing import price_trace

__all__ = [
    "MAX_FILE_BYTES",
    "MAX_GAP_S",
    "MAX_VALUE",
    "Trace",
    "TraceError",
    "TraceName",
    "load_folder",
    "load_trace",
    "parse_name",
    "price_trace",
    "region_of_zone",
]
