# ruff: noqa: F811  (pytest fixtures imported from moto_lab)
"""Managed jobs on AWS, end to end, in the lab: boto3 talks HTTP to moto, the job runs over
real SSH (paramiko) on fake VMs, its checkpoint lives in an S3 bucket (moto) mounted with
MOUNT_CACHED by the node agent. A preemption in one region moves the job to another.

After every test: no instance alive in moto, no bucket left, no VM process or sshd left.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_vm import lab_leftovers, lab_missing
from job_lab import COUNTER, launch, logs, steps_seen, wait_for_log
from moto_lab import IMAGE_REGIONS, moto_instances, moto_server, publish_ubuntu_image, reset_moto  # noqa: F401
from notice_contract import check_notice_gets_sigterm_and_loses_no_step
from vm_lab import VmFleet

from spotctl.clouds import aws as aws_cloud
from spotctl.clouds import aws_clients
from spotctl.node_agent.agent_notice import _imds_notice
from spotctl.remote import ssh

from conftest import Spot, embedded_spot, spotctl_env

pytestmark = pytest.mark.skipif(lab_missing() is not None, reason=f"the lab cannot run here: {lab_missing()}")

REGIONS = "us-east-1,us-west-2"
WORKER_KEY, WORKER_SECRET = "AKIASPOTCTLWORKER001", "the-workers-long-lived-secret"
"""The worker's own key pair: no VM may ever hold it."""
NODE_ROLE = "arn:aws:iam::123456789012:role/spotctl-nodes"
def counter_task(tmp: Path, bucket: str, steps: int) -> Path:
    (tmp / "counter.py").write_text(COUNTER.replace("STEPS", str(steps)))
    task = tmp / "counter.yaml"
    task.write_text(f"""
name: counter
workdir: {tmp}
resources:
  cloud: aws
  instance_type: m6i.large
  use_spot: true
file_mounts:
  ~/ckpt:
    name: {bucket}
    store: s3
    mode: MOUNT_CACHED
    persistent: false
run: python3 counter.py
""")
    return task


@pytest.fixture(scope="module")
def aws_spot(tmp_path_factory: pytest.TempPathFactory, moto_server: str) -> Iterator[Spot]:
    """An embedded spotctl (server + worker) that places jobs on AWS = moto + fake VMs."""
    home = tmp_path_factory.mktemp("spotctl-aws-home")
    env = spotctl_env(home) | {
        "SPOTCTL_CLOUDS": "aws",
        "SPOTCTL_AWS_ENDPOINT": moto_server,
        "SPOTCTL_AWS_REGIONS": REGIONS,
        "SPOTCTL_AWS_SSH_USER": "root",
        "SPOTCTL_AWS_MOUNTER": "sync",  # mount-s3 would be downloaded from AWS: the lab stays on loopback
        "SPOTCTL_AWS_NODE_ROLE": NODE_ROLE,  # moto records AssumeRole's session policy (not federation's)
        "AWS_ACCESS_KEY_ID": WORKER_KEY,
        "AWS_SECRET_ACCESS_KEY": WORKER_SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    aws_clients.forget_clients()
    try:
        with embedded_spot(home, env) as spot:
            yield spot
    finally:
        ssh.close_all()
        aws_clients.forget_clients()


@pytest.fixture
def fleet(aws_spot: Spot, moto_server: str, tmp_path: Path) -> Iterator[VmFleet]:
    """A clean moto with Ubuntu images, and fake VMs for what it launches; the leak check."""
    reset_moto(moto_server)
    aws_cloud.forget_caches()
    for region in IMAGE_REGIONS:
        publish_ubuntu_image(region)
    vms = VmFleet(tmp_path / "vms", fallback_key=aws_spot.home / "ssh" / "id_ed25519.pub")
    vms.install()
    try:
        yield vms
        deadline = time.monotonic() + 30
        while moto_instances() and time.monotonic() < deadline:
            time.sleep(0.2)
        alive = [i.id for i in moto_instances()]
        assert alive == [], f"instances left running in moto: {alive}"
        buckets = [b["Name"] for b in aws_clients.aws_client(aws_spot.settings, "s3", "us-east-1")
                   .list_buckets().get("Buckets", [])]
        assert buckets == [], f"buckets left: {buckets}"
    finally:
        vms.uninstall()
        ssh.close_all()
    assert lab_leftovers() == []


def test_preempted_job_recovers_in_another_region_with_its_s3_checkpoint(aws_spot: Spot, fleet: VmFleet,
                                                                         tmp_path: Path) -> None:
    job_id = launch(aws_spot, counter_task(tmp_path, f"lab-ckpt-{os.getpid()}-1", steps=40))
    wait_for_log(aws_spot, job_id, r"^step 12$")
    first = aws_spot.job(job_id)
    assert (first["cloud"], first["region"], first["status"]) == ("aws", "us-east-1", "RUNNING")
    [iid] = fleet.running()
    fleet.preempt(iid)  # no notice: what was pushed in the last few seconds is all that is kept
    aws_spot.wait_running(job_id, attempt=2, timeout=120)
    job = aws_spot.wait_status(job_id, "SUCCEEDED", timeout=120)
    assert job["recoveries"] == 1 and job["region"] == "us-west-2"
    text = logs(aws_spot, job_id)
    resumed = int(re.findall(r"^resuming at (\d+)$", text, re.M)[-1])
    assert resumed >= 5, f"the checkpoint did not carry over (resumed at {resumed})"
    assert "done 40" in text
    # The result equals an uninterrupted run's: every step up to 40 was done, in order, each
    # after the checkpoint it resumed from.
    after = steps_seen(text.split(f"resuming at {resumed}")[-1])
    assert after == list(range(resumed + 1, 41))


def test_interruption_notice_gets_sigterm_and_loses_no_step(aws_spot: Spot, fleet: VmFleet, tmp_path: Path) -> None:
    def post_notice() -> None:
        [iid] = fleet.running()
        fleet.notice(iid, seconds=12)

    check_notice_gets_sigterm_and_loses_no_step(
        aws_spot, counter_task(tmp_path, f"lab-ckpt-{os.getpid()}-2", steps=60), 60, post_notice)


def test_metadata_notice_reaches_the_vm(fleet: VmFleet, aws_spot: Spot) -> None:
    """The agent's IMDSv2 client reads the notice from a lab VM's metadata service as it would
    from EC2's: nothing until a notice is posted, then its deadline."""
    ec2 = aws_clients.aws_client(aws_spot.settings, "ec2", "us-east-1")
    iid = ec2.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    vm = fleet.vms[iid]
    base = f"http://{vm.address}:{vm.metadata_port}"
    assert _imds_notice(base) is None
    fleet.notice(iid, seconds=60)
    deadline = _imds_notice(base)
    assert deadline is not None and 50 < deadline - time.time() <= 61
    fleet.preempt(iid)
    assert vm.processes() == []


def test_mount_of_an_s3_bucket_lands_in_the_bucket(aws_spot: Spot, fleet: VmFleet, tmp_path: Path) -> None:
    """MOUNT on a VM without mount-s3 (the lab's mounter is the agent's sync): what the program
    writes is in the bucket once the job has ended, and what the bucket held was there to read."""
    s3 = aws_clients.aws_client(aws_spot.settings, "s3", "us-east-1")
    bucket = f"lab-data-{os.getpid()}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="input/hello.txt", Body=b"from the bucket")
    task = tmp_path / "mount.yaml"
    task.write_text(f"""
name: mounter
resources: {{cloud: aws, instance_type: m6i.large}}
file_mounts:
  ~/data:
    source: s3://{bucket}/input
    mode: MOUNT
run: |
  cat ~/data/hello.txt; echo
  mkdir -p ~/data/out && echo written on the VM > ~/data/out/result.txt
""")
    try:
        job_id = launch(aws_spot, task)
        assert aws_spot.wait_status(job_id, "SUCCEEDED", "FAILED", timeout=90)["status"] == "SUCCEEDED"
        assert "from the bucket" in logs(aws_spot, job_id)
        body = s3.get_object(Bucket=bucket, Key="input/out/result.txt")["Body"].read()
        assert body == b"written on the VM\n"
    finally:
        for obj in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
            s3.delete_object(Bucket=bucket, Key=obj["Key"])
        s3.delete_bucket(Bucket=bucket)


CREDS_PROBE = """\
import glob, json, os, stat
[path] = glob.glob(os.path.expanduser("~/.spotctl/job-*/attempt-*/sync.json"))
print("sync.json mode", oct(stat.S_IMODE(os.stat(path).st_mode)))
for e in json.load(open(path)):
    print("entry", e["bucket"], e["prefix"], e["access_key"], bool(e.get("session_token")), e.get("expiration"))
print("worker key in env:", os.environ.get("AWS_ACCESS_KEY_ID"))
"""


def test_a_vm_holds_scoped_short_lived_credentials_never_the_workers_keys(aws_spot: Spot, fleet: VmFleet,
                                                                          tmp_path: Path) -> None:
    """Issue 21 item 8: what the job's program can read on its VM (its sync.json) is a role
    session's key with a token and an expiry, scoped to its own bucket; the worker's key pair
    is nowhere on the VM, and the file is gone once the run has ended."""
    from moto.sts.models import sts_backends

    bucket = f"lab-creds-{os.getpid()}"
    (tmp_path / "probe.py").write_text(CREDS_PROBE)
    task = tmp_path / "creds.yaml"
    task.write_text(f"""
name: creds
workdir: {tmp_path}
resources: {{cloud: aws, instance_type: m6i.large}}
file_mounts:
  ~/ckpt:
    name: {bucket}
    store: s3
    mode: MOUNT_CACHED
    persistent: false
run: python3 probe.py && echo saved > ~/ckpt/out
""")
    roles_before = len(sts_backends["123456789012"]["aws"].assumed_roles)
    job_id = launch(aws_spot, task)
    assert aws_spot.wait_status(job_id, "SUCCEEDED", "FAILED", timeout=90)["status"] == "SUCCEEDED"
    text = logs(aws_spot, job_id)
    assert "sync.json mode 0o600" in text
    [entry] = re.findall(r"^entry (\S+) (\S*) (\S+) (\S+) (\S+)$", text, re.M)
    assert entry[0] == bucket and entry[2].startswith("ASIA") and entry[3] == "True"
    expires = time.mktime(time.strptime(entry[4], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert 0 < expires - time.time() <= 3600 + 60
    assert "worker key in env: None" in text and WORKER_KEY not in text and WORKER_SECRET not in text
    # What the worker asked STS for: this job's bucket only.
    issued = sts_backends["123456789012"]["aws"].assumed_roles[roles_before:]
    assert issued, "no credentials were issued for the VM"
    for role in issued:
        assert role.role_arn == NODE_ROLE
        resources = json.dumps([s["Resource"] for s in json.loads(role.policy)["Statement"]])
        assert re.findall(r"arn:aws:s3:::([^/\"]+)", resources) == [bucket, bucket]
    # The VM's disk after the job: no sync.json, and the worker's keys in no file.
    [vm] = fleet.vms.values()
    left = [p for p in vm.home.rglob("*") if p.is_file() and not p.is_symlink()]
    assert not [p for p in left if p.name == "sync.json"]
    assert not [p for p in left if WORKER_SECRET.encode() in p.read_bytes() or WORKER_KEY.encode() in p.read_bytes()]
