# ruff: noqa: F811  (pytest fixtures imported from the lab modules)
"""Managed jobs on GCP, end to end, in the lab: google-cloud-compute talks HTTP to the fake GCE,
the job runs over real SSH on fake VMs, its checkpoint lives in a GCS bucket (fake-gcs-server)
kept in step by the node agent (MOUNT_CACHED).

After every test: no instance alive in the fake GCE or moto, no bucket left, no VM process or
sshd left (clouds_lab.lab_fleets).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from clouds_lab import Fleets, lab_fleets, lab_spot
from fake_vm import lab_missing
from job_lab import COUNTER, launch, logs, run_ids, steps_seen, wait_for_log
from moto_lab import moto_server  # noqa: F401
from notice_contract import check_notice_gets_sigterm_and_loses_no_step

from conftest import Spot

pytestmark = pytest.mark.skipif(lab_missing() is not None, reason=f"the lab cannot run here: {lab_missing()}")


@pytest.fixture(scope="module")
def gcp_spot(tmp_path_factory: pytest.TempPathFactory, moto_server: str) -> Iterator[Spot]:
    """An embedded spotctl that places jobs on GCP only (the fake GCE: us-central1, us-east1)."""
    with lab_spot(tmp_path_factory.mktemp("spotctl-gcp-home"), moto_server, clouds="gcp") as spot:
        yield spot


@pytest.fixture
def fleets(gcp_spot: Spot, moto_server: str, tmp_path: Path) -> Iterator[Fleets]:
    with lab_fleets(gcp_spot, moto_server, tmp_path) as fleets:
        yield fleets


def counter_task(tmp: Path, bucket: str, steps: int) -> Path:
    (tmp / "counter.py").write_text(COUNTER.replace("STEPS", str(steps)))
    task = tmp / "counter.yaml"
    task.write_text(f"""
name: gcp-counter
workdir: {tmp}
resources:
  cloud: gcp
  instance_type: n2-standard-2
  use_spot: true
file_mounts:
  ~/ckpt:
    name: {bucket}
    store: gcs
    mode: MOUNT_CACHED
    persistent: false
run: python3 counter.py
""")
    return task


def inserted_zones(fleets: Fleets) -> list[str]:
    """The zones where an instance was inserted, in order (what GCE's activity log shows)."""
    ops = [o for o in fleets.gcp.fake.operations() if o["operationType"] == "insert" and not o.get("error")]
    return [o["zone"].rsplit("/", 1)[-1] for o in ops]


def test_preempted_gcp_job_recovers_in_another_region_with_its_gcs_checkpoint(gcp_spot: Spot, fleets: Fleets,
                                                                              tmp_path: Path) -> None:
    job_id = launch(gcp_spot, counter_task(tmp_path, f"lab-gcs-ckpt-{os.getpid()}-1", steps=40))
    wait_for_log(gcp_spot, job_id, r"^step 14$")  # the agent pushes the checkpoint every 5 s
    job = gcp_spot.job(job_id)
    assert (job["cloud"], job["region"], job["status"]) == ("gcp", "us-central1", "RUNNING")
    fleets.gcp.preempt(fleets.gce_running())
    gcp_spot.wait_running(job_id, attempt=2, timeout=120)
    job = gcp_spot.wait_status(job_id, "SUCCEEDED", timeout=120)
    assert job["recoveries"] == 1 and job["region"] == "us-east1"
    text = logs(gcp_spot, job_id)
    resumed = int(re.findall(r"^resuming at (\d+)$", text, re.M)[-1])
    assert resumed >= 5, f"the checkpoint did not carry over (resumed at {resumed})"
    assert steps_seen(text.split(f"resuming at {resumed}")[-1]) == list(range(resumed + 1, 41))
    ids = run_ids(text)
    assert len(ids) == 2 and ids[0] == ids[1]


def test_gcp_capacity_error_fails_over_to_the_next_zone(gcp_spot: Spot, fleets: Fleets, tmp_path: Path) -> None:
    with fleets.gcp.fake.fail_inserts("us-central1-a") as hits:
        job_id = launch(gcp_spot, counter_task(tmp_path, f"lab-gcs-ckpt-{os.getpid()}-2", steps=3))
        job = gcp_spot.wait_status(job_id, "SUCCEEDED", "FAILED", timeout=120)
    assert job["status"] == "SUCCEEDED" and job["recoveries"] == 0
    assert hits[0] >= 1
    assert inserted_zones(fleets) == ["us-central1-b"]
    assert "done 3" in logs(gcp_spot, job_id)
    for flag in ("-a", "-v"):  # the ON-DEMAND and SAVED figures say where their prices come from, dated
        shown = gcp_spot.run("status", flag, str(job_id))
        assert shown.exit_code == 0 and "Prices: gcp: shipped catalog, 2024 basis" in shown.stderr, shown.output


def test_gce_preemption_notice_gets_sigterm_and_loses_no_step(gcp_spot: Spot, fleets: Fleets, tmp_path: Path) -> None:
    check_notice_gets_sigterm_and_loses_no_step(
        gcp_spot, counter_task(tmp_path, f"lab-gcs-ckpt-{os.getpid()}-3", steps=36), 36,
        lambda: fleets.gcp.notice(fleets.gce_running(), seconds=10))  # GCE gives 30 s
