# ruff: noqa: F811  (pytest fixtures imported from the lab modules)
"""The seed's promise, in the lab: one managed job that AWS and GCP take turns preempting.

boto3 talks HTTP to moto, google-cloud-compute to the fake GCE; every VM either cloud hands
out is a fake VM (a real sshd on its own loopback address) that spotctl reaches over SSH. The
job's checkpoint lives in an S3 bucket (moto) that the node agent keeps in step on whichever
cloud the job runs (MOUNT_CACHED), so a VM on GCP resumes from what a VM on AWS saved.

After every test: no instance alive in moto or the fake GCE, no bucket left in either store,
no VM process or sshd left (clouds_lab.lab_fleets).
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

from conftest import Spot

pytestmark = pytest.mark.skipif(lab_missing() is not None, reason=f"the lab cannot run here: {lab_missing()}")


@pytest.fixture(scope="module")
def both_spot(tmp_path_factory: pytest.TempPathFactory, moto_server: str) -> Iterator[Spot]:
    """An embedded spotctl whose jobs may go to AWS (moto: us-east-1 only) or GCP (the fake GCE:
    us-central1 and us-east1)."""
    with lab_spot(tmp_path_factory.mktemp("spotctl-both-home"), moto_server) as spot:
        yield spot


@pytest.fixture
def fleets(both_spot: Spot, moto_server: str, tmp_path: Path) -> Iterator[Fleets]:
    with lab_fleets(both_spot, moto_server, tmp_path) as fleets:
        yield fleets


def training_task(tmp: Path, bucket: str, steps: int) -> Path:
    (tmp / "counter.py").write_text(COUNTER.replace("STEPS", str(steps)))
    task = tmp / "bert_qa_standin.yaml"
    task.write_text(f"""
name: bert-qa-standin
workdir: {tmp}
resources:
  use_spot: true
  any_of:
    - {{cloud: aws, instance_type: t3.medium}}
    - {{cloud: gcp, instance_type: n2-standard-2}}
file_mounts:
  ~/ckpt:
    name: {bucket}
    store: s3
    mode: MOUNT_CACHED
    persistent: false
run: python3 counter.py
""")
    return task


STEPS = 44
"""The counter's steps (0.5 s each): each preemption comes at most 14 steps after a resume at
step 14 or less, so the third attempt still runs from step 30 or less to the end (70 made the
last attempt run twice as long for the same proof)."""


def test_job_preempted_on_aws_recovers_on_gcp_then_in_another_gcp_region(both_spot: Spot, fleets: Fleets,
                                                                          tmp_path: Path) -> None:
    job_id = launch(both_spot, training_task(tmp_path, f"lab-xcloud-{os.getpid()}", steps=STEPS))
    wait_for_log(both_spot, job_id, r"^step 14$")  # the agent pushes the checkpoint every 5 s
    job = both_spot.job(job_id)
    assert (job["cloud"], job["region"]) == ("aws", "us-east-1")  # the cheapest candidate first
    [iid] = fleets.aws.running()
    fleets.aws.preempt(iid)

    both_spot.wait_running(job_id, attempt=2, timeout=120)
    job = both_spot.job(job_id)
    assert (job["cloud"], job["region"]) == ("gcp", "us-central1")
    resumed_on_gcp = int(wait_for_log(both_spot, job_id, r"(?s)run id.*run id.*?^resuming at (\d+)$").group(1))
    assert resumed_on_gcp >= 3, f"the AWS checkpoint did not reach GCP (resumed at {resumed_on_gcp})"
    wait_for_log(both_spot, job_id, rf"^step {resumed_on_gcp + 14}$")
    fleets.gcp.preempt(fleets.gce_running())

    both_spot.wait_running(job_id, attempt=3, timeout=120)
    job = both_spot.job(job_id)
    assert (job["cloud"], job["region"]) == ("gcp", "us-east1")
    job = both_spot.wait_status(job_id, "SUCCEEDED", timeout=150)
    assert job["recoveries"] == 2

    text = logs(both_spot, job_id)
    ids = run_ids(text)
    assert len(ids) == 3 and len(set(ids)) == 1 and ids[0] not in ("", "None"), ids
    resumed = [int(s) for s in re.findall(r"^resuming at (\d+)$", text, re.M)]
    assert resumed[0] == 0 and resumed[1] >= 3 and resumed[2] > resumed[1], resumed
    # The result equals an uninterrupted run's: every step after the last resume, in order, to the end.
    assert steps_seen(text.split(f"resuming at {resumed[2]}")[-1]) == list(range(resumed[2] + 1, STEPS + 1))
    assert f"done {STEPS}" in text
