"""Deadlines (docs/deadlines.md): a task that says how much compute it needs and by when runs
on spot while its slack allows and moves to on-demand when the slack no longer covers a
restart, and finishes in time; every switch is visible in `status` and `status -v`.

Real things: the embedded server and worker, the local cloud, a job that checkpoints into a
bucket and reports its progress through $SPOTCTL_PROGRESS_FILE; preemptions by
`spotctl debug preempt`, as a user would cause them. Durations are seconds, not hours.
"""

from __future__ import annotations

import json
import shutil
import textwrap
import time
import uuid
from datetime import datetime
from pathlib import Path

import yaml

from conftest import Spot, launched_id

STEPS = 20
STEP_S = 0.5
"""The job's compute: 20 steps of 0.5 s, 10 s in all."""


EAST_ONLY = {"cloud": "local", "region": "local-east"}
SPOT_EAST_ONDEMAND_WEST = {"cloud": "local", "any_of": [{"region": "local-east"},
                                                        {"region": "local-west", "use_spot": False}]}
"""Spot only in local-east; on-demand in local-east and local-west."""

PROGRAM = textwrap.dedent(f"""\
    n=$(cat ~/ckpt/steps 2>/dev/null); n=${{n:-0}}
    echo "resumed at step $n"
    while [ "$n" -lt {STEPS} ]; do
      sleep {STEP_S}
      n=$((n + 1))
      echo $n > ~/ckpt/steps
      python3 -c "print($n / {STEPS})" > "$SPOTCTL_PROGRESS_FILE"
    done
    echo "done at step $n"
""")
"""Resumes from the step its bucket keeps (none, or a write cut short by a preemption: from
the start); reports its progress after each step."""


SWITCH_REASONS = ("no longer covers a restart (5s x 2)", "the spotctl policy holds on-demand (slack ")
"""Why a job preempted every few seconds moves to on-demand: its slack reaches the reserve, or (on
a loaded machine, where each spot spell it saw was seconds long against 5 s restarts) the policy's
spell test refuses spot a little before that."""


def deadline_task(tmp_path: Path, bucket: str, *, by: str = "35s", changeover: str = "5s",
                  resources: dict | None = None, **deadline: str) -> str:
    """The job (PROGRAM) with its checkpoint bucket at ~/ckpt and a deadline."""
    path = tmp_path / "deadline.yaml"
    path.write_text(yaml.safe_dump({
        "name": "due", "resources": resources or EAST_ONLY,
        "file_mounts": {"~/ckpt": {"name": bucket, "mode": "MOUNT"}},
        "deadline": {"compute": f"{STEPS * STEP_S:g}s", "by": by, "changeover": changeover, **deadline},
        "run": PROGRAM}, sort_keys=False))
    return str(path)


def east_edited(spot: Spot, **fields: object) -> tuple[Path, str]:
    """Set `fields` of local-east in the local cloud's config; the config file and its text
    before, for the test to put back."""
    config = spot.cloud.config_path
    spot.cloud.config()
    original = config.read_text()
    data = yaml.safe_load(original)
    data["regions"]["local-east"].update(fields)
    config.write_text(yaml.safe_dump(data))
    return config, original


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_preempted_spot_moves_to_ondemand_and_meets_the_deadline(spot_clean: Spot, tmp_path: Path) -> None:
    bucket = f"due-{uuid.uuid4().hex[:8]}"
    try:
        job_id = spot_clean.launch_detached(deadline_task(tmp_path, bucket))
        # Take every spot VM back soon after it runs (a step or so of progress), until the job's
        # slack runs out and it moves to on-demand (which this cloud never takes back).
        attempt = 1
        deadline = time.monotonic() + 60
        job: dict = {}
        while time.monotonic() < deadline:
            job = spot_clean.wait_running(job_id, attempt, timeout=30)
            if job["market"] == "on-demand":
                break
            assert job["market"] == "spot", job
            time.sleep(0.8)
            preempted = spot_clean.run("debug", "preempt", str(job_id), "--notice", "0")
            assert preempted.exit_code == 0, (preempted.output, spot_clean.job(job_id),
                                              spot_clean.run("logs", "--no-follow", str(job_id)).output)
            attempt += 1
        assert job.get("market") == "on-demand", job
        job = spot_clean.wait_status(job_id, "SUCCEEDED", timeout=60)

        # In time: the deadline is 35 s after the launch.
        assert (_time(job["ended_at"]) - _time(job["submitted_at"])).total_seconds() < 35, job
        markets = ["spot" if r["use_spot"] else "on-demand" for r in job["history"]]
        assert markets[-1] == "on-demand" and set(markets[:-1]) == {"spot"}, markets
        assert [r["outcome"] for r in job["history"]][:-1] == ["preempted"] * (len(markets) - 1)
        assert len(job["switches"]) == 1
        switch = job["switches"][0]
        assert (switch["from_market"], switch["to_market"]) == ("spot", "on-demand")
        assert any(why in switch["reason"] for why in SWITCH_REASONS), switch
        assert job["progress_s"] > 0, "the job's reports counted"  # it resumed, not restarted
        logs = spot_clean.run("logs", "--no-follow", str(job_id)).stdout
        assert f"done at step {STEPS}" in logs

        # What a user sees: the market and slack in the table, the switch and why in -v.
        table = spot_clean.run("status", "-a", str(job_id))
        assert table.exit_code == 0
        header = table.stdout.splitlines()[0]
        assert "MARKET" in header and "SLACK" in header
        assert "on-demand" in table.stdout.splitlines()[1]
        verbose = spot_clean.run("status", "-v", str(job_id)).stdout
        assert "Market switches:" in verbose
        assert "spot -> on-demand at" in verbose and switch["reason"] in verbose
        # Both markets' bills: the on-demand attempt costs its on-demand price, SAVED is against on-demand.
        ondemand = job["history"][-1]
        assert ondemand["price"] == ondemand["ondemand_price"] and ondemand["cost_usd"] == ondemand["ondemand_usd"]
        assert job["cost_usd"] < job["ondemand_usd"]
    finally:
        shutil.rmtree(spot_clean.home / "local_buckets" / bucket, ignore_errors=True)


def test_ahead_of_pace_on_ondemand_returns_to_spot(spot_clean: Spot, tmp_path: Path) -> None:
    """Uniform Progress: no spot capacity at first, so the job, behind its pace, runs on
    on-demand; once ahead, and spot has capacity again, a spot cluster is made while the
    on-demand one runs on, and only then does the job move, resuming from its checkpoint."""
    bucket = f"due-{uuid.uuid4().hex[:8]}"
    config, original = east_edited(spot_clean, capacity=0)
    try:
        task = deadline_task(tmp_path, bucket, by="60s", changeover="2s", resources=SPOT_EAST_ONDEMAND_WEST,
                             checkpoint_every="1s", policy="uniform-progress")
        job_id = spot_clean.launch_detached(task)
        job = spot_clean.wait_running(job_id, 1, timeout=30)
        assert (job["market"], job["region"]) == ("on-demand", "local-west"), job
        config.write_text(original)  # spot capacity is back
        job = spot_clean.wait_status(job_id, "SUCCEEDED", timeout=60)
        markets = [("spot" if r["use_spot"] else "on-demand", r["outcome"]) for r in job["history"]]
        assert markets[0] == ("on-demand", "moved to spot") and markets[-1] == ("spot", "succeeded"), (
            markets, {k: job.get(k) for k in ("restart_s", "slack_s", "progress_s", "switches", "history", "submitted_at")})
        assert [(w["from_market"], w["to_market"]) for w in job["switches"]] == [("on-demand", "spot")]
        assert "ahead of pace" in job["switches"][0]["reason"]
        assert job["recoveries"] == 0  # a move, not a recovery
        logs = spot_clean.run("logs", "--no-follow", str(job_id)).stdout
        resumed = [int(line.split()[-1]) for line in logs.splitlines() if line.startswith("resumed at step")]
        assert resumed[0] == 0 and resumed[-1] > 0, resumed  # the spot run went on from the checkpoint
        assert f"done at step {STEPS}" in logs
        verbose = spot_clean.run("status", "-v", str(job_id)).stdout
        assert "on-demand -> spot at" in verbose and "moved to spot" in verbose
    finally:
        config.write_text(original)
        shutil.rmtree(spot_clean.home / "local_buckets" / bucket, ignore_errors=True)


def test_job_without_deadline_shows_as_before(spot_clean: Spot) -> None:
    """No deadline: no MARKET or SLACK column, no deadline keys in --json."""
    job_id = launched_id(spot_clean.run("launch", "-y", "-n", "plain", "echo hi").stderr)
    job = spot_clean.job(job_id)
    assert job["status"] == "SUCCEEDED"
    assert not {"market", "deadline_at", "slack_s", "progress_s", "switches"} & set(job)
    table = spot_clean.run("status", str(job_id)).stdout
    assert "MARKET" not in table and "SLACK" not in table
    assert "Deadline" not in spot_clean.run("status", "-v", str(job_id)).stdout
    assert json.loads(spot_clean.run("status", "--json", str(job_id)).stdout)[0]["history"][0]["use_spot"] is True


def test_restarts_slower_than_declared_still_meet_the_deadline(spot_clean: Spot, tmp_path: Path) -> None:
    """Each (re)start takes about 5 s (the region's provision_delay_s of 4 s, then setup) where
    the task declares a 1 s changeover: the workflow measures its restarts (cluster asked for
    -> program running) and its policy uses the longest as the changeover, so the move to
    on-demand comes while the slack still covers the real restart, and the program ends
    before the deadline (`done_at`; the final teardown comes after). The job declares what
    it really does: 20 steps of 0.5 s, each with its report, take about 11 s on a loaded
    machine, and a preemption loses at most a step (`checkpoint_every: 1s` bounds it)."""
    bucket = f"due-{uuid.uuid4().hex[:8]}"
    config, original = east_edited(spot_clean, provision_delay_s=4)
    try:
        job_id = spot_clean.launch_detached(deadline_task(tmp_path, bucket, by="40s", changeover="1s",
                                                          compute="11s", checkpoint_every="1s"))
        attempt = 1
        stop = time.monotonic() + 90
        job: dict = {}
        while time.monotonic() < stop:  # every spot VM is taken back 1.5 s after it runs
            job = spot_clean.wait_running(job_id, attempt, timeout=30)
            if job["market"] == "on-demand":
                break
            time.sleep(1.5)
            spot_clean.run("debug", "preempt", str(job_id), "--notice", "0")
            attempt += 1
        assert job.get("market") == "on-demand", job
        job = spot_clean.wait_status(job_id, "SUCCEEDED", timeout=60)

        assert job["restart_s"] > 4, job  # measured: far more than the declared 1 s
        facts = {k: job.get(k) for k in ("submitted_at", "deadline_at", "done_at", "restart_s", "switches")}
        facts["history"] = [{k: h.get(k) for k in ("use_spot", "launched_at", "started_at", "ended_at", "outcome")}
                            for h in job["history"]]
        assert _time(job["done_at"]) <= _time(job["deadline_at"]), facts  # the program ended in time
        assert _time(job["done_at"]) <= _time(job["ended_at"])
        switch = job["switches"][-1]
        assert (switch["from_market"], switch["to_market"]) == ("spot", "on-demand")
        assert "no longer covers a restart" in switch["reason"] and "1s x 2" not in switch["reason"], switch
        assert f"done at step {STEPS}" in spot_clean.run("logs", "--no-follow", str(job_id)).stdout
        verbose = spot_clean.run("status", "-v", str(job_id)).stdout
        assert "early" in verbose and "LATE" not in verbose
        assert not spot_clean.cloud.list_instances()  # torn down when it shows SUCCEEDED
    finally:
        config.write_text(original)
        shutil.rmtree(spot_clean.home / "local_buckets" / bucket, ignore_errors=True)
