"""AWS without AWS: an in-process moto server that spotctl's boto3 clients reach over HTTP.

Fixtures (import them into a test module explicitly; the lead may move them to conftest.py):
- `moto_server`: one ThreadedMotoServer on 127.0.0.1 (a free port) for the session.
- `aws_env`: dummy credentials and region in the environment, the shared credentials and
  config files pointed at empty files (root's ~/.aws never leaks in), all restored after.
- `aws_lab`: per test: moto wiped (`POST /moto-api/reset`), spotctl's client and AWS caches
  forgotten, an Ubuntu 22.04 AMI published in the regions that need one, settings whose
  `aws.endpoint_url` is the server; at the end no instance may be left alive in moto.

Helpers reach moto's in-process backend for what EC2's API cannot do: a spot interruption
(`preempt`), a capacity error in one zone (`failing_run_instances`), throttling (`failing`).
"""

from __future__ import annotations

import atexit
import logging
import os
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from spotctl.clouds import aws as aws_cloud
from spotctl.clouds import aws_clients
from spotctl.clouds.aws import AwsCloud
from spotctl.config import Settings, load_settings

ACCOUNT = "123456789012"  # moto's default account
IMAGE_REGIONS = ("us-east-1", "us-east-2", "us-west-2", "eu-west-1", "eu-central-1")
"""Where `aws_lab` publishes an Ubuntu 22.04 AMI (moto ships none); ap-northeast-1 is left
without one, to see the "no image" error."""
ENV_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION", "AWS_PROFILE",
            "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "AWS_ENDPOINT_URL", "AWS_EC2_METADATA_DISABLED")


# -- environment -----------------------------------------------------------------------------

@contextmanager
def aws_environment(tmp: Path, *, credentials: bool = True) -> Iterator[None]:
    """Dummy keys (or none) in the environment, empty AWS files, no instance-metadata probe;
    everything restored afterwards, and boto3 sessions forgotten both ways."""
    saved = {k: os.environ.get(k) for k in ENV_KEYS}
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "credentials").write_text("")
    (tmp / "config").write_text("")
    for k in ENV_KEYS:
        os.environ.pop(k, None)
    os.environ.update(AWS_SHARED_CREDENTIALS_FILE=str(tmp / "credentials"), AWS_CONFIG_FILE=str(tmp / "config"),
                      AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true")
    if credentials:
        os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    aws_clients.forget_clients()
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        aws_clients.forget_clients()


# -- moto's backend --------------------------------------------------------------------------

def backend(region: str) -> Any:
    from moto.ec2.models import ec2_backends

    return ec2_backends[ACCOUNT][region]


def moto_instances(*, alive_only: bool = True) -> list[Any]:
    """Every instance moto holds in the account, across regions (alive ones by default)."""
    from moto.ec2.models import ec2_backends

    out = []
    for region in list(ec2_backends[ACCOUNT].keys()):
        for inst in backend(region).all_instances():
            if not alive_only or inst.state in ("pending", "running"):
                out.append(inst)
    return out


def preempt(region: str, instance_id: str, *, stop: bool = False) -> None:
    """A spot interruption as EC2 reports it: terminated (or stopped) with StateReason
    Server.SpotInstanceTermination (Server.SpotInstanceShutdown for a stop)."""
    from moto.ec2.models.instances import StateReason

    inst = backend(region).get_instance(instance_id)
    if stop:
        inst.stop()
        code = "Server.SpotInstanceShutdown"
    else:
        inst.terminate()
        code = "Server.SpotInstanceTermination"
    inst.state_reason = StateReason(f"{code}: Spot instance termination", code)


def publish_ubuntu_image(region: str, *, name_date: str = "20240501") -> str:
    """An Ubuntu 22.04 AMI of Canonical's account in moto's region (moto ships none)."""
    from moto.ec2.models.amis import Ami, random_ami_id

    b = backend(region)
    ami_id = random_ami_id()
    b.amis[ami_id] = Ami(b, ami_id, name=f"ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-{name_date}",
                         owner_id=aws_cloud.UBUNTU_OWNER, public=True, architecture="x86_64",
                         virtualization_type="hvm", root_device_type="ebs", root_device_name="/dev/sda1",
                         creation_date=datetime.strptime(name_date, "%Y%m%d").replace(tzinfo=UTC))
    return ami_id


@contextmanager
def failing(region: str, method: str, code: str, *, when: Callable[..., bool] = lambda *a, **kw: True,
            message: str = "injected by the test") -> Iterator[list[int]]:
    """Make moto's `method` of the region's backend raise EC2ClientError(code) for the calls
    `when` accepts (it gets the backend call's arguments). Yields a list holding the count of
    injected failures."""
    from moto.ec2.exceptions import EC2ClientError

    b = backend(region)
    original = getattr(b, method)
    hits = [0]

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if when(*args, **kwargs):
            hits[0] += 1
            raise EC2ClientError(code, message)
        return original(*args, **kwargs)

    setattr(b, method, wrapper)
    try:
        yield hits
    finally:
        delattr(b, method)  # the instance attribute goes; the class's method shows again


def failing_run_instances(region: str, zone: str, code: str = "InsufficientInstanceCapacity") -> Any:
    """run_instances raises `code` in `zone` only (e.g. no capacity there)."""
    return failing(region, "run_instances", code, when=lambda *a, **kw: kw.get("placement") == zone,
                   message=f"We currently do not have sufficient capacity in the Availability Zone {zone}.")


# -- fixtures --------------------------------------------------------------------------------

_shared: list[str] = []


def shared_moto() -> str:
    """The endpoint of THE moto server of this process, started on first use and stopped when
    the process exits. moto keeps one global state per process, so a second server would only
    wipe the first one's state (and every fixture resets it per test anyway)."""
    if not _shared:
        from moto.server import ThreadedMotoServer

        os.environ["MOTO_EC2_LOAD_DEFAULT_AMIS"] = "false"  # ~0.3 s per region per reset; the lab publishes its own
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one INFO line per request otherwise
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        atexit.register(server.stop)
        host, port = server.get_host_and_port()
        _shared.append(f"http://{host}:{port}")
    return _shared[0]


@pytest.fixture(scope="session")
def moto_server() -> str:
    """The endpoint URL of the moto server running in this process."""
    return shared_moto()


def reset_moto(endpoint: str) -> None:
    req = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST", data=b"")
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200


@pytest.fixture
def aws_env(tmp_path: Path) -> Iterator[Path]:
    """Dummy AWS credentials for the test (restored after); yields the dir of the empty files."""
    with aws_environment(tmp_path / "aws-env"):
        yield tmp_path / "aws-env"


@dataclass
class AwsLab:
    endpoint: str
    settings: Settings
    cloud: AwsCloud
    images: dict[str, str] = field(default_factory=dict)

    def ec2(self, region: str) -> Any:
        return aws_clients.aws_client(self.settings, "ec2", region)

    def describe(self, region: str, ids: list[str]) -> dict[str, dict]:
        """{id: instance} as boto3 describes them (what a user would look at)."""
        out = {}
        for res in self.ec2(region).describe_instances(InstanceIds=ids)["Reservations"]:
            for inst in res["Instances"]:
                out[inst["InstanceId"]] = inst
        return out


def lab_settings(tmp_path: Path, endpoint: str, **aws: Any) -> Settings:
    settings = load_settings(home=tmp_path / "spotctl-home")
    settings.aws.endpoint_url = endpoint
    for k, v in aws.items():
        setattr(settings.aws, k, v)
    return settings


@pytest.fixture
def aws_lab(moto_server: str, aws_env: Path, tmp_path: Path) -> Iterator[AwsLab]:
    reset_moto(moto_server)
    aws_cloud.forget_caches()
    settings = lab_settings(tmp_path, moto_server)
    lab = AwsLab(moto_server, settings, AwsCloud(settings),
                 images={r: publish_ubuntu_image(r) for r in IMAGE_REGIONS})
    yield lab
    alive = [(i.id, i.placement) for i in moto_instances()]
    for inst in moto_instances():
        inst.terminate()
    aws_cloud.forget_caches()
    assert not alive, f"instances left running in moto: {alive}"
