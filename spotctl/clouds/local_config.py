"""The local cloud's catalog: regions, zones, capacities and instance types, from config.yaml.

The file is written with commented defaults the first time it is needed, so users can shrink
capacity (to watch failover) or add regions without reading code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from spotctl.clouds.base import CloudError
from spotctl.files import create_once
from spotctl.traces import Trace, TraceError, load_trace

DEFAULT_CONFIG = """\
# spotctl local cloud: fake "VMs" that are sandbox directories on this machine.
# Each instance gets a home directory under instances/<id>/home; processes started on it
# carry SPOTCTL_LOCAL_INSTANCE=<id> so terminating the instance kills all of them.
#
# regions:        name -> zones, capacity and price factor
#   capacity:     at most this many alive instances in the region; more -> "no capacity"
#   price_factor: prices in the region are the instance type's base prices times this
#                 (distinct factors make the cheapest-first candidate order deterministic)
#   preemption_mtbf_s:   mean seconds a spot instance lives before a random preemption
#                        (null = never). Each spot instance draws its own preemption time
#                        at launch (exponential, this mean); on-demand ones are never
#                        preempted. Set e.g. 60 in one region to demo recovery/failover.
#   preemption_notice_s: seconds of warning before a preemption (0 = killed at once). The
#                        deadline (epoch seconds) is written to ~/.spotctl/preemption_notice
#                        on the instance, its programs get one SIGTERM, and whatever still
#                        runs at the deadline is SIGKILLed (like a spot interruption notice).
#   Preempt by hand: `spotctl debug preempt JOB_ID` (`--wait` waits until it runs again).
#
#   Moodiness (real clouds are slow and moody; all of it is off by default). It applies to the
#   Cloud API calls create, instance_states, find_cluster, terminate and tagged_instances, with
#   the settings of the region the call touches (the worst of them when it touches several,
#   and of all regions when it touches none, e.g. tagged_instances):
#   provision_delay_s:   seconds a new instance stays PENDING (unreachable: "booting")
#                        before it is RUNNING (0 = RUNNING at once)
#   api_latency_s:       seconds added to every call
#   throttle_rate:       fraction (0..1) of calls that fail with RequestLimitExceeded, doing nothing
#   api_hang_s / api_hang_rate: that fraction (0..1) of calls sleeps api_hang_s, then fails as
#                        "timed out", doing nothing
#   api_hang_calls:      the call names that may hang, e.g. [create, terminate] (null = all)
#   max_concurrent_api_calls: more calls than this in flight at once in the region, from any
#                        process, fail at once with RequestLimitExceeded (null = no limit)
#   Example: in local-west, `provision_delay_s: 20` and `throttle_rate: 0.2`.
#
# simulate: the benchmark mode (off unless set). New instances run no process at all: their
#   program is a timer that prints `lines_per_s` lines a second and exits with `exit_code`
#   after `run_s` seconds (setup takes `setup_s`); preemptions work as usual. For measuring
#   spotctl's own cost at thousands of jobs (bench/run.py), not for running real programs.
#   Example: `simulate: {run_s: 3600, lines_per_s: 1}`
#
#   trace: the region's zones follow spot traces (docs/traces.md; off unless set), e.g.
#     trace: {zones: {local-east-1a: traces/us-east-1a_v100_1.json}, scale: 130, start_s: 0}
#   zones:    zone -> trace file (a path relative to this file's folder, or absolute), in the
#             format of docs/traces.md. A zone's value at a tick is how many spot instances it
#             has: a spot create fails with "no capacity" while that many already run there
#             (always when it is 0), and running spot instances are preempted, newest first
#             and with the region's preemption_notice_s, when it drops below their number.
#   scale:    trace seconds per wall second (130: a 195 s tick every 1.5 s)
#   start_s:  the trace time at the trace clock's origin, which the cloud records once in
#             trace_origin (next to this file) the first time it reads a trace: every
#             process then agrees on the trace time. Delete that file to restart the clock.
#   ondemand: false makes on-demand creates in the traced zones fail too (default true)
#   `python -m spotctl.traces.cloud_config --traces DIR --scale S` writes a whole config
#   whose regions, zones and prices are a folder of traces'.
# instance_types: name -> cpus, memory_gb, accelerators, spot_price / ondemand_price (USD/h)
regions:
  local-east:
    zones: [local-east-1a, local-east-1b]
    capacity: 8
    price_factor: 1.0
    preemption_mtbf_s: null
    preemption_notice_s: 0
  local-west:
    zones: [local-west-1a, local-west-1b]
    capacity: 8
    price_factor: 1.1
    preemption_mtbf_s: null
    preemption_notice_s: 0
  local-eu:
    zones: [local-eu-1a]
    capacity: 8
    price_factor: 1.25
    preemption_mtbf_s: null
    preemption_notice_s: 0
instance_types:
  local.small:  {cpus: 1, memory_gb: 2, spot_price: 0.01, ondemand_price: 0.04}
  local.medium: {cpus: 2, memory_gb: 8, spot_price: 0.02, ondemand_price: 0.08}
  local.large:  {cpus: 4, memory_gb: 16, spot_price: 0.04, ondemand_price: 0.16}
  local.t4:     {cpus: 4, memory_gb: 16, accelerators: {T4: 1}, spot_price: 0.12, ondemand_price: 0.45}
  local.v100:   {cpus: 8, memory_gb: 61, accelerators: {V100: 1}, spot_price: 0.9, ondemand_price: 3.06}
"""


MoodyCall = Literal["create", "instance_states", "find_cluster", "terminate", "tagged_instances"]
"""The Cloud-protocol calls the moodiness settings apply to (offerings is catalog data, and
the local cloud's own helpers for tests and `spotctl debug` stay prompt)."""
MOODY_CALLS: tuple[str, ...] = get_args(MoodyCall)


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""The C loader when libyaml is there: the config is read on every moody API call."""


MAX_TRACE_SCALE = 1e7
"""Trace seconds per wall second: a year of trace in ~3 s."""


class TraceConfig(BaseModel):
    """A region's zones following spot traces; see DEFAULT_CONFIG's comments."""

    model_config = ConfigDict(extra="forbid")

    zones: dict[str, str] = Field(min_length=1, max_length=64)
    scale: float = Field(default=1.0, gt=0, le=MAX_TRACE_SCALE)
    start_s: float = Field(default=0.0, ge=0, le=100 * 365 * 86400)
    ondemand: bool = True
    _traces: dict[str, Trace] = PrivateAttr(default_factory=dict)
    """zone -> its trace, loaded when the config is parsed (load_config)."""

    @property
    def traces(self) -> dict[str, Trace]:
        return self._traces


class RegionConfig(BaseModel):
    """One region; see DEFAULT_CONFIG's comments for what each field does. Every moodiness
    field defaults to "off", so a config written before they existed behaves as it did."""

    model_config = ConfigDict(extra="forbid")

    zones: list[str] = Field(min_length=1)
    capacity: int = Field(default=8, ge=0)
    price_factor: float = Field(default=1.0, gt=0)
    preemption_mtbf_s: float | None = Field(default=None, gt=0)
    preemption_notice_s: float = Field(default=0, ge=0)
    provision_delay_s: float = Field(default=0, ge=0)
    api_latency_s: float = Field(default=0, ge=0)
    throttle_rate: float = Field(default=0, ge=0, le=1)
    api_hang_s: float = Field(default=0, ge=0)
    api_hang_rate: float = Field(default=0, ge=0, le=1)
    api_hang_calls: list[MoodyCall] | None = None
    max_concurrent_api_calls: int | None = Field(default=None, ge=1)
    trace: TraceConfig | None = None

    @model_validator(mode="after")
    def _traced_zones_exist(self) -> RegionConfig:
        if self.trace is not None:
            unknown = sorted(set(self.trace.zones) - set(self.zones))
            if unknown:
                raise ValueError(f"trace.zones names zones the region does not have: {', '.join(unknown)}")
        return self


class InstanceTypeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cpus: float = Field(gt=0)
    memory_gb: float = Field(gt=0)
    accelerators: dict[str, int] = Field(default_factory=dict)
    spot_price: float | None = Field(default=None, ge=0)
    ondemand_price: float | None = Field(default=None, ge=0)


class SimulateConfig(BaseModel):
    """The benchmark mode's program (see DEFAULT_CONFIG's comments)."""

    model_config = ConfigDict(extra="forbid")

    run_s: float = Field(default=3600.0, ge=0, le=10 * 365 * 86400)
    lines_per_s: float = Field(default=1.0, ge=0, le=10_000)
    exit_code: int = Field(default=0, ge=0, le=255)
    setup_s: float = Field(default=0.0, ge=0, le=86400)


class LocalCloudConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    simulate: SimulateConfig | None = None
    regions: dict[str, RegionConfig] = Field(min_length=1)
    instance_types: dict[str, InstanceTypeConfig] = Field(min_length=1)


def _fatal(message: str) -> CloudError:
    """A CloudError that retrying will not fix."""
    return CloudError(message, retryable=False)


def ensure_config(path: Path) -> None:
    """Write the default config unless one exists; never overwrite a user's file, even racing."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    create_once(path, DEFAULT_CONFIG.encode(), 0o600)


_LOADED: dict[Path, tuple[bytes, LocalCloudConfig]] = {}
"""The last config parsed per file, by its bytes: every call of the local cloud reads its
config (live edits count at once), and with thousands of jobs parsing the YAML each time was
a measurable share of the worker's time. Reading the small file is cheap; the bytes, not a
timestamp, decide (two quick edits of the same size share a timestamp)."""


def load_config(path: Path) -> LocalCloudConfig:
    """Parse and validate config.yaml; errors name the file and the offending field. The
    result is shared between calls while the file is unchanged: read it, never change it."""
    ensure_config(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise _fatal(f"{path}: cannot read: {exc}") from exc
    cached = _LOADED.get(path)
    if cached is not None and cached[0] == raw:
        return cached[1]
    config = _parse_config(path, raw)
    _LOADED[path] = (raw, config)
    return config


def _parse_config(path: Path, raw: bytes) -> LocalCloudConfig:
    try:
        data = yaml.load(raw.decode("utf-8", errors="replace"), Loader=_LOADER)
    except yaml.YAMLError as exc:
        raise _fatal(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise _fatal(f"{path}: expected a mapping with 'regions' and 'instance_types'")
    try:
        config = LocalCloudConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<top>'}: {e['msg']}" for e in exc.errors()
        )
        raise _fatal(f"{path}: invalid local cloud config: {problems}") from exc
    _load_traces(path, config)
    return config


def _load_traces(path: Path, config: LocalCloudConfig) -> None:
    """Read every region's trace files once per version of the config (a trace edited in
    place counts when config.yaml next changes); a bad one is the config's one-line error."""
    for region_name, region in config.regions.items():
        if region.trace is None:
            continue
        for zone, file in region.trace.zones.items():
            where = path.parent / Path(file).expanduser()
            try:
                region.trace.traces[zone] = load_trace(where, named=False)
            except TraceError as exc:
                raise _fatal(f"{path}: regions.{region_name}.trace.zones.{zone}: {exc}") from exc
