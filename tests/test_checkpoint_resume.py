"""The reason spotctl exists: a checkpointing job preempted at random points still ends with
the result of an uninterrupted run, losing at most one checkpoint interval per preemption."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

from conftest import EXAMPLES, Spot, launched_id

STEPS = 40


def uninterrupted_result(tmp_path: Path, steps: int = STEPS) -> str:
    ckpt = tmp_path / "baseline"
    env = {**os.environ, "CHECKPOINT_DIR": str(ckpt), "TOTAL_STEPS": str(steps), "STEP_SECONDS": "0"}
    subprocess.run([sys.executable, str(EXAMPLES / "checkpoint_resume" / "train.py")], env=env, check=True,
                   capture_output=True)
    return json.loads((ckpt / "result.json").read_text())["result"]


def example_with_bucket(tmp_path: Path, bucket: str, steps: int = STEPS) -> Path:
    """The example, with its own bucket and a longer run; the workdir is copied along."""
    shutil.copytree(EXAMPLES / "checkpoint_resume", tmp_path / "checkpoint_resume")
    text = (EXAMPLES / "checkpoint_resume.yaml").read_text()
    text = text.replace("spotctl-ckpt-demo", bucket).replace('TOTAL_STEPS: "60"', f'TOTAL_STEPS: "{steps}"')
    text = text.replace('STEP_SECONDS: "0.5"', 'STEP_SECONDS: "0.2"')
    assert f'TOTAL_STEPS: "{steps}"' in text and 'STEP_SECONDS: "0.2"' in text
    path = tmp_path / "checkpoint_resume.yaml"
    path.write_text(text)
    return path


def program_started(spot: Spot, job_id: int, attempt: int, timeout: float = 60) -> None:
    """Wait until the `attempt`-th copy of train.py has said how it starts: RUNNING is the
    cluster's, and a preemption before the program's first line would prove nothing about resuming."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        logs = spot.run("logs", "--no-follow", str(job_id)).stdout
        if logs.count("resumed from step") + logs.count("starting fresh") >= attempt:
            return
        time.sleep(0.1)
    raise AssertionError(f"attempt {attempt} of job {job_id} printed nothing in {timeout} s")


def test_three_random_preemptions_same_result(spot_clean: Spot, tmp_path: Path) -> None:
    # 100 steps (20 s): on a loaded machine, seeing the third attempt start took longer than
    # what was left of a 40-step run, which then ended before its preemption.
    steps = 100
    expected = uninterrupted_result(tmp_path, steps)
    bucket = f"ckpt-test-{uuid.uuid4().hex[:8]}"
    bucket_dir = spot_clean.home / "local_buckets" / bucket
    rng = random.Random(20261129)
    placeholder = Path("/checkpoint")  # the empty bind-mount target the local cloud makes on the host
    had_placeholder = placeholder.exists()
    try:
        job_id = launched_id(spot_clean.run("launch", "-y", "-d", str(example_with_bucket(tmp_path, bucket, steps))).stderr)
        for attempt in (1, 2, 3):
            spot_clean.wait_running(job_id, attempt)
            program_started(spot_clean, job_id, attempt)
            time.sleep(rng.uniform(0.3, 1.5))  # a random point of the run
            notice = "1" if attempt == 2 else "0"  # one with a notice (SIGTERM, save, exit 143)
            assert spot_clean.run("debug", "preempt", str(job_id), "--notice", notice).exit_code == 0
        job = spot_clean.wait_status(job_id, "SUCCEEDED", timeout=120)
        assert job["recoveries"] == 3
        assert json.loads((bucket_dir / "result.json").read_text())["result"] == expected

        logs = spot_clean.run("logs", "--no-follow", str(job_id)).stdout
        assert f"result: {expected}" in logs
        assert logs.count("--- recovery ") == 3
        printed = [int(line.split()[1]) for line in logs.splitlines() if line.startswith("step ")]
        assert sorted(set(printed)) == list(range(1, steps + 1))
        recomputed = len(printed) - len(set(printed))
        assert recomputed <= 3, f"{recomputed} steps recomputed for 3 preemptions"
        assert logs.count("resumed from step") == 3
        assert not (spot_clean.home / "local_buckets" / f"spotctl-job-{job_id}-files").exists()
    finally:
        shutil.rmtree(bucket_dir, ignore_errors=True)
        if not had_placeholder and placeholder.is_dir() and not any(placeholder.iterdir()):
            placeholder.rmdir()


def test_random_preemptions_from_the_cloud_config(spot_clean: Spot, tmp_path: Path) -> None:
    """The demo mode: two regions take spot VMs back at random (mean 1 s), one never does.
    The job survives whatever chance does; every recovery was a preemption."""
    expected = uninterrupted_result(tmp_path)
    config = spot_clean.cloud.config_path
    original = config.read_text()
    east_west = original.replace("preemption_mtbf_s: null", "preemption_mtbf_s: 1.0", 2)
    assert east_west.count("preemption_mtbf_s: 1.0") == 2 and "local-eu" in east_west
    bucket = f"ckpt-test-{uuid.uuid4().hex[:8]}"
    placeholder, had_placeholder = Path("/checkpoint"), Path("/checkpoint").exists()
    config.write_text(east_west)
    try:
        result = spot_clean.run("launch", "-y", str(example_with_bucket(tmp_path, bucket)))
        assert result.exit_code == 0, result.output
        job = spot_clean.job(launched_id(result.stderr))
        assert job["status"] == "SUCCEEDED"
        outcomes = [r["outcome"] for r in job["history"]]
        assert outcomes[-1] == "succeeded" and set(outcomes[:-1]) <= {"preempted"}
        assert job["recoveries"] == len(outcomes) - 1
        assert f"result: {expected}" in result.stdout
    finally:
        config.write_text(original)
        shutil.rmtree(spot_clean.home / "local_buckets" / bucket, ignore_errors=True)
        if not had_placeholder and placeholder.is_dir() and not any(placeholder.iterdir()):
            placeholder.rmdir()
