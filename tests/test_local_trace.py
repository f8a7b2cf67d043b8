"""Zones of the local cloud that follow a spot trace: capacity refused while the zone has no
spot, running spot instances preempted with the region's notice when the value drops (newest
first), on-demand untouched, in process mode and simulated mode; a bad trace is one line.

Real local cloud, real processes; small trace files written by each test, with 1 s ticks so
a drop comes within seconds. The trace clock's origin is written by the test (trace_origin),
so "the drop comes at second N" holds however slow the machine is to get there.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

from spotctl.clouds.base import CloudError, ErrorKind, InstanceState, NoCapacity
from spotctl.clouds.local import PREEMPTION_REASON, LocalCloud
from spotctl.config import load_settings
from spotctl.models import Candidate

from conftest import Spot


def trace_file(folder: Path, name: str, values: list[int], gap: float = 1.0) -> Path:
    p = folder / name
    p.write_text(json.dumps({"metadata": {"gap_seconds": gap}, "data": values}))
    return p


def follow(cloud: LocalCloud, region: str, zone_traces: dict[str, Path], *, scale: float = 1.0,
           notice_s: float = 0.0, simulate: bool = False, origin: float | None = None, **trace: object) -> None:
    """Make `region` of the default config follow the traces, the way a user edits config.yaml."""
    cloud.config()  # writes the default file
    data = yaml.safe_load(cloud.config_path.read_text())
    data["regions"][region].update(preemption_notice_s=notice_s, trace={
        "zones": {z: str(p) for z, p in zone_traces.items()}, "scale": scale, **trace})
    if simulate:
        data["simulate"] = {"run_s": 3600, "lines_per_s": 1}
    cloud.config_path.write_text(yaml.safe_dump(data))
    (cloud.root / "trace_origin").write_text(f"{time.time() if origin is None else origin}\n")


def cand(zone: str = "local-east-1a", use_spot: bool = True) -> Candidate:
    return Candidate(cloud="local", region="local-east", zone=zone, instance_type="local.small",
                     use_spot=use_spot, price=0.01)


def wait_state(cloud: LocalCloud, iid: str, want: InstanceState, timeout: float = 10) -> float:
    """Poll instance_states (the monitor's call) until `want`; the seconds it took."""
    t0 = time.monotonic()
    while (state := cloud.instance_states([iid])[iid]) != want:
        assert time.monotonic() - t0 < timeout, f"{iid} still {state}, never {want}"
        time.sleep(0.05)
    return time.monotonic() - t0


def test_a_zone_at_zero_refuses_spot_with_the_capacity_error_and_takes_on_demand(cloud: LocalCloud,
                                                                                   tmp_path: Path) -> None:
    follow(cloud, "local-east", {"local-east-1a": trace_file(tmp_path, "a.json", [0])})
    with pytest.raises(NoCapacity) as err:
        cloud.create("job-1-0", cand(), 1, "t1")
    assert err.value.kind == ErrorKind.CAPACITY and "no spot capacity in local-east-1a" in str(err.value)
    assert cloud.list_instances() == []  # all or nothing
    h = cloud.create("job-2-0", cand(use_spot=False), 1, "t2")
    assert cloud.instance_states(h.instance_ids)[h.instance_ids[0]] == InstanceState.RUNNING
    h2 = cloud.create("job-3-0", cand("local-east-1b"), 1, "t3")  # the other zone follows no trace
    assert len(h2.instance_ids) == 1


def test_a_zone_holds_no_more_spot_than_its_value(cloud: LocalCloud, tmp_path: Path) -> None:
    follow(cloud, "local-east", {"local-east-1a": trace_file(tmp_path, "a.json", [2])})
    cloud.create("job-1-0", cand(), 1, "t1")
    cloud.create("job-2-0", cand(), 1, "t2")
    with pytest.raises(NoCapacity, match=r"trace: 2 at tick 0, 2 running"):
        cloud.create("job-3-0", cand(), 1, "t3")


def test_ondemand_false_refuses_on_demand_too(cloud: LocalCloud, tmp_path: Path) -> None:
    follow(cloud, "local-east", {"local-east-1a": trace_file(tmp_path, "a.json", [1])}, ondemand=False)
    with pytest.raises(NoCapacity, match="no on-demand capacity"):
        cloud.create("job-1-0", cand(use_spot=False), 1, "t1")


@pytest.mark.parametrize("simulate", [False, True], ids=["process", "simulated"])
def test_a_drop_preempts_the_newest_spot_instance_with_the_regions_notice(cloud: LocalCloud, tmp_path: Path,
                                                                         simulate: bool) -> None:
    # 2 spot instances can be had for 3 s, then 1: the newer one goes, with a 1 s notice.
    follow(cloud, "local-east", {"local-east-1a": trace_file(tmp_path, "a.json", [2, 2, 2] + [1] * 100)},
           notice_s=1.0, simulate=simulate)
    old = cloud.create("job-1-0", cand(), 1, "t1").instance_ids[0]
    new = cloud.create("job-2-0", cand(), 1, "t2").instance_ids[0]
    od = cloud.create("job-3-0", cand(use_spot=False), 1, "t3").instance_ids[0]
    took = wait_state(cloud, new, InstanceState.PREEMPTED)
    assert 1.0 <= took < 6.0
    states = cloud.instance_states([old, new, od])
    assert states == {old: InstanceState.RUNNING, new: InstanceState.PREEMPTED, od: InstanceState.RUNNING}
    inst = next(i for i in cloud.list_instances(alive_only=False) if i.id == new)
    assert inst.state_reason == PREEMPTION_REASON and inst.preempt_deadline and inst.preempted_at
    assert (inst.preempted_at - inst.preempt_deadline).total_seconds() > -0.1  # the notice was given
    notice = cloud.instance_home(new) / ".spotctl" / "preemption_notice"
    assert notice.exists()
    with pytest.raises(NoCapacity):  # the zone is full again at 1
        cloud.create("job-4-0", cand(), 1, "t4")


def test_a_dip_shorter_than_the_poll_still_strikes(cloud: LocalCloud, tmp_path: Path) -> None:
    # a 0.2 s tick at 0 between two of 1: the next call after it preempts, however late it comes.
    follow(cloud, "local-east", {"local-east-1a": trace_file(tmp_path, "a.json", [1] * 5 + [0] + [1] * 100, gap=0.2)})
    iid = cloud.create("job-1-0", cand(), 1, "t1").instance_ids[0]
    time.sleep(1.5)  # nobody polls during the dip (tick 5: 1.0 s .. 1.2 s)
    assert cloud.instance_states([iid])[iid] == InstanceState.PREEMPTED  # no notice: ended by this very call


def test_scale_and_start_s_place_the_clock(cloud: LocalCloud, tmp_path: Path) -> None:
    # 60 trace seconds a wall second, starting at 120 s: tick 2 (value 5) now, tick 8 (7) in 6 s.
    follow(cloud, "local-east", {"local-east-1a": trace_file(tmp_path, "a.json", [0, 0, 5, 0, 0, 0, 0, 0, 7],
                                                             gap=60)}, scale=60, start_s=120)
    now = float((cloud.root / "trace_origin").read_text())
    assert cloud.zone_value("local-east", "local-east-1a", at=now) == 5
    assert cloud.zone_value("local-east", "local-east-1a", at=now + 6.2) == 7
    assert cloud.zone_value("local-east", "local-east-1b") is None


def test_launch_retries_wait_at_most_a_tick_on_a_traced_cloud(cloud: LocalCloud, tmp_path: Path) -> None:
    cloud.config()
    assert cloud.launch_retry_max_s == 300.0  # untraced: as before
    follow(cloud, "local-east", {"local-east-1a": trace_file(tmp_path, "a.json", [1], gap=195)}, scale=130)
    assert cloud.launch_retry_max_s == 2.0  # a tick is 1.5 s; never below the first wait
    follow(cloud, "local-east", {"local-east-1a": trace_file(tmp_path, "a.json", [1], gap=60)}, scale=2)
    assert cloud.launch_retry_max_s == 30.0


def test_the_origin_is_recorded_once_for_every_process(cloud: LocalCloud, tmp_path: Path) -> None:
    cloud.config()
    first = cloud.trace_origin()
    time.sleep(0.05)
    assert LocalCloud(load_settings(home=cloud.spotctl_home)).trace_origin() == first


@pytest.mark.parametrize(("values", "gap", "says"), [
    ([], 1, "data is empty"), ([1], 0, "gap_seconds must be > 0"), ("x", 1, "data must be a list"),
])
def test_a_bad_trace_in_the_config_is_one_clear_line(cloud: LocalCloud, tmp_path: Path, values: object,
                                                     gap: float, says: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"metadata": {"gap_seconds": gap}, "data": values}))
    follow(cloud, "local-east", {"local-east-1a": bad})
    problem = cloud.check()
    assert problem is not None and "\n" not in problem
    assert "regions.local-east.trace.zones.local-east-1a" in problem and str(bad) in problem and says in problem
    with pytest.raises(CloudError) as err:
        cloud.create("job-1-0", cand(), 1, "t1")
    assert str(err.value) == problem and not err.value.retryable


def test_a_trace_of_a_zone_the_region_lacks_is_refused(cloud: LocalCloud, tmp_path: Path) -> None:
    follow(cloud, "local-east", {"local-nowhere-1z": trace_file(tmp_path, "a.json", [1])})
    problem = cloud.check()
    assert problem and "zones the region does not have: local-nowhere-1z" in problem and "\n" not in problem


def test_a_managed_job_on_a_traced_zone_fails_over_when_the_zone_drops(own_spot: Spot, tmp_path: Path) -> None:
    """A real job (embedded Temporal, worker, agent) on spot in local-east-1a, whose trace holds
    one instance for 10 minutes and then none (local-east-1b has none at all): when the trace
    clock reaches the drop, the monitor's poll preempts it, the job is RECOVERING, then RUNNING
    in another region (EAGER_NEXT_REGION), one recovery counted."""
    cloud = own_spot.cloud
    follow(cloud, "local-east", {"local-east-1a": trace_file(tmp_path, "a.json", [1] * 600 + [0] * 600),
                                 "local-east-1b": trace_file(tmp_path, "b.json", [0])})
    task = tmp_path / "task.yaml"
    task.write_text(
        "name: traced\nresources:\n  cloud: local\n  instance_type: local.small\n  use_spot: true\n"
        "run: |\n"
        '  if [ "$SPOTCTL_RECOVERY_COUNT" = 0 ]; then while true; do sleep 0.1; done; fi\n'
        "  echo done elsewhere\n")
    job_id = own_spot.launch_detached(str(task))
    job = own_spot.wait_running(job_id, 1, timeout=60)
    assert (job["history"][0]["region"], job["history"][0]["zone"]) == ("local-east", "local-east-1a")
    (cloud.root / "trace_origin").write_text(f"{time.time() - 599}\n")  # fast-forward: the drop in ~1 s
    own_spot.wait_status(job_id, "RECOVERING", "RUNNING", timeout=30)
    job = own_spot.wait_status(job_id, "SUCCEEDED", timeout=60)
    assert job["recoveries"] == 1
    assert [r["outcome"] for r in job["history"]] == ["preempted", "succeeded"]
    assert job["history"][1]["region"] != "local-east"
    assert "done elsewhere" in own_spot.run("logs", "--no-follow", str(job_id)).stdout
    deadline = time.monotonic() + 15
    while own_spot.alive_instances() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert own_spot.alive_instances() == []
