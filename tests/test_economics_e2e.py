"""bench/economics_e2e.py end to end, small: one real job (plain spot, no deadline) on a
trace-driven local cloud beside its replay; it finishes, the two agree, nothing is left.
Plus the replay itself on hand-made traces, and the harness's bad input."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import economics_e2e  # noqa: E402
from econ_sim import Zone, one_job  # noqa: E402

from spotctl.policy.deadline import DeadlineJob  # noqa: E402


def zone(values: list[int]) -> Zone:
    return Zone(name="us-east-1a", region="us-east-1", cloud="aws", instance_type="p3.2xlarge",
                avail=[v > 0 for v in values], spot_price=1.0, ondemand_price=3.0)


def trace_dir(tmp_path: Path, values: list[int], gap: int = 60) -> Path:
    d = tmp_path / "traces"
    d.mkdir()
    (d / "us-east-1a_v100_1.json").write_text(json.dumps({"metadata": {"gap_seconds": gap}, "data": values}))
    return d


@pytest.mark.quick
def test_the_replay_pays_spot_waits_when_there_is_none_and_loses_work_since_the_checkpoint() -> None:
    # econ_sim.one_job, the benchmark's replay of one job as the e2e runs it (1-minute ticks).
    plain = DeadlineJob(compute_h=1.0, deadline_h=10.0, changeover_h=0.0)
    # 30 min of spot, 30 min without, then spot: 0.5 h banked, the rest after the gap.
    r = one_job(None, plain, zone([1] * 30 + [0] * 30 + [1] * 100), gap_h=1 / 60, checkpoint_h=0.25, horizon_h=10)
    assert r.done and r.outcome.finish_h == pytest.approx(1.5) and r.outcome.cost == pytest.approx(1.0)
    assert r.preemptions == 1
    # 20 min of spot, then none: 0.25 h banked, 5 min lost.
    r = one_job(None, plain, zone([1] * 20 + [0] * 10 + [1] * 100), gap_h=1 / 60, checkpoint_h=0.25, horizon_h=10)
    assert r.outcome.finish_h == pytest.approx(20 / 60 + 10 / 60 + 0.75)
    # A deadline too close for waiting: the policy takes on-demand (one switch when spot returns, or none).
    tight = DeadlineJob(compute_h=1.0, deadline_h=1.2, changeover_h=0.02)
    r2 = one_job("spotctl", tight, zone([0] * 200), gap_h=1 / 60, checkpoint_h=0.25, horizon_h=10)
    assert r2.done and r2.outcome.finish_h <= 1.2 and r2.outcome.ondemand_h > 0.9


@pytest.mark.quick
def test_the_replay_at_the_products_decision_points_moves_to_spot_at_a_check_from_the_checkpoint() -> None:
    """`points="product"`: on on-demand the policy is asked at the watch's checks only, and a
    move to spot resumes from the last checkpoint (the on-demand work since is lost), as the
    workflow does; at every tick the move comes when spot does, with nothing lost."""
    job = DeadlineJob(compute_h=2.0, deadline_h=4.0, changeover_h=0.1, check_h=0.25)
    z = zone([0] * 90 + [1] * 400)  # 1.5 h without spot (wait, then on-demand), then spot for good
    tick = one_job("spotctl", job, z, gap_h=1 / 60, checkpoint_h=0.25, horizon_h=6)
    prod = one_job("spotctl", job, z, gap_h=1 / 60, checkpoint_h=0.25, horizon_h=6, points="product")
    assert tick.done and prod.done and tick.switches == prod.switches == 1
    assert tick.outcome.spot_h + tick.outcome.ondemand_h == pytest.approx(2.0)
    assert prod.outcome.spot_h + prod.outcome.ondemand_h > 2.0  # work lost at the move
    assert prod.outcome.finish_h > tick.outcome.finish_h and prod.outcome.cost > tick.outcome.cost
    with pytest.raises(ValueError):
        one_job("spotctl", job, z, gap_h=1 / 60, checkpoint_h=0.25, horizon_h=6, points="sometimes")


@pytest.mark.quick
@pytest.mark.parametrize("argv", [["--jobs", "0"], ["--compute-h", "12", "--deadline-h", "10"], ["--tick-s", "0"]])
def test_bad_bounds_are_one_line_and_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        economics_e2e.main(argv)
    assert done.value.code == 2
    assert capsys.readouterr().err.strip().count("\n") == 0


def test_one_real_job_agrees_with_its_replay_and_leaves_nothing(tmp_path: Path) -> None:
    # 1 h of compute on a zone with spot 40 min of every hour: wherever the window starts, a
    # preemption, a wait, a resume from the checkpoint. 1 tick (60 s) = 0.5 s: scale 120.
    traces = trace_dir(tmp_path, ([1] * 40 + [0] * 20) * 40)
    out = tmp_path / "e2e.json"
    code = economics_e2e.main(["--traces", str(traces), "--no-deadline", "--jobs", "1", "--compute-h", "1",
                               "--tick-s", "0.5", "--checkpoint-h", "0.1", "--changeover-h", "0.05",
                               "--seed", "0", "--json", str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    (job,) = result["jobs"]
    assert job["status"] == "SUCCEEDED", job
    assert job["predicted_finish_h"] is not None and job["measured_finish_h"] is not None
    # Loose on purpose (a loaded machine stretches the real job's restarts): within 35%.
    assert 0.65 < job["cost_ratio"] < 1.35 and 0.65 < job["finish_ratio"] < 1.35, job
    assert job["recoveries"] >= 1 and job["predicted_preemptions"] >= 1
    # (economics_e2e's deployment() raises if an instance or a process was left, and removes its home.)
