"""An embedded spotctl on the lab's emulated clouds, for job tests: AWS (moto) and GCP (the fake
GCE and fake-gcs-server), each VM they hand out a fake VM reached over real SSH.

- `lab_spot(home, moto_endpoint, clouds=..., aws_regions=..., gcp_regions=...)`: the embedded
  server + worker with the lab's endpoints, users and mounters in its environment.
- `lab_fleets(spot, moto_endpoint, root)`: clean clouds with fake VMs behind both for one test;
  afterwards every unfinished job is cancelled and waited for, then the leak check: no
  instance alive in moto or the fake GCE, no bucket in S3 or GCS, no VM process or sshd.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from fake_vm import lab_leftovers
from gce_lab import PROJECT, GceFleet, shared_gce
from gcs_lab import raw_client, shared_fake_gcs
from moto_lab import IMAGE_REGIONS, moto_instances, publish_ubuntu_image, reset_moto
from vm_lab import VmFleet

from spotctl.clouds import aws as aws_cloud
from spotctl.clouds import aws_clients, gcp_clients
from spotctl.remote import ssh

from conftest import Spot, embedded_spot, spotctl_env

TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED", "FAILED_NO_RESOURCE", "FAILED_CONTROLLER", "FAILED_SETUP",
            "FAILED_PRECHECKS")


def lab_env(home: Path, moto_endpoint: str, *, clouds: str, aws_regions: str, gcp_regions: str) -> dict[str, str]:
    return spotctl_env(home) | {
        "SPOTCTL_CLOUDS": clouds,
        "SPOTCTL_AWS_ENDPOINT": moto_endpoint,
        "SPOTCTL_AWS_REGIONS": aws_regions,
        "SPOTCTL_AWS_SSH_USER": "root",
        "SPOTCTL_AWS_MOUNTER": "sync",  # mount-s3 would be downloaded from AWS: the lab stays on loopback
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "SPOTCTL_GCP_ENDPOINT": shared_gce().endpoint,
        "SPOTCTL_GCS_ENDPOINT": shared_fake_gcs(),
        "SPOTCTL_GCP_PROJECT": PROJECT,
        "SPOTCTL_GCP_REGIONS": gcp_regions,
        "SPOTCTL_GCP_SSH_USER": "root",
        "SPOTCTL_GCP_MOUNTER": "sync",  # gcsfuse would come from Google's apt repository
    }


@contextmanager
def lab_spot(home: Path, moto_endpoint: str, *, clouds: str = "aws,gcp", aws_regions: str = "us-east-1",
             gcp_regions: str = "us-central1,us-east1") -> Iterator[Spot]:
    aws_clients.forget_clients()
    gcp_clients.forget_clients()
    try:
        env = lab_env(home, moto_endpoint, clouds=clouds, aws_regions=aws_regions, gcp_regions=gcp_regions)
        with embedded_spot(home, env) as spot:
            yield spot
    finally:
        ssh.close_all()
        aws_clients.forget_clients()
        gcp_clients.forget_clients()


@dataclass
class Fleets:
    aws: VmFleet
    gcp: GceFleet

    def gce_running(self) -> str:
        """The name of the one GCE instance that runs."""
        [name] = self.gcp.running()
        return name


def _wait_gone(alive: Callable[[], list], timeout: float = 30) -> list:
    deadline = time.monotonic() + timeout
    while (left := alive()) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


@contextmanager
def lab_fleets(spot: Spot, moto_endpoint: str, root: Path) -> Iterator[Fleets]:
    reset_moto(moto_endpoint)
    aws_cloud.forget_caches()
    for region in IMAGE_REGIONS:
        publish_ubuntu_image(region)
    gce = shared_gce()
    gce.reset()
    fleets = Fleets(VmFleet(root / "aws-vms"), GceFleet(gce, root / "gce-vms"))
    fleets.aws.install()
    fleets.gcp.install()
    try:
        yield fleets
    finally:
        spot.run("cancel", "-a", "-y")  # a failed test's job must not leak into the next one
    try:
        for job in spot.status():
            spot.wait_status(job["job_id"], *TERMINAL, timeout=90)
        assert _wait_gone(moto_instances) == [], "instances left running in moto"
        left = _wait_gone(lambda: [(i["zone"], i["name"]) for i in gce.instances()])
        assert left == [], f"instances left in the fake GCE: {left}"
        s3 = aws_clients.aws_client(spot.settings, "s3", "us-east-1")
        assert [b["Name"] for b in s3.list_buckets().get("Buckets", [])] == [], "S3 buckets left"
        gcs_buckets = [b.name for b in raw_client(shared_fake_gcs()).list_buckets()]
        assert gcs_buckets == [], f"GCS buckets left: {gcs_buckets}"
    finally:
        fleets.aws.uninstall()
        fleets.gcp.uninstall()
        gce.delete_all()
        ssh.close_all()
    assert lab_leftovers() == []
