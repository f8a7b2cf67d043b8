# ruff: noqa: F811  (pytest fixtures imported from moto_lab and test_ssh_runner)
"""What a VM gets to reach its job's buckets (storage's node_sync, clouds/aws_node_creds.py, the
agent's bucket_sync), against moto over HTTP: short-lived STS credentials scoped to the mount's
bucket prefix, never the worker's own keys; renewed in sync.json and re-read by the agent.

What moto can tell and what it cannot: moto issues real temporary credentials (AssumeRole:
an ASIA... key, a session token, an expiry) and, with IAM auth on, checks their signature and
the assumed role's own policies. It does NOT apply a session policy (moto 5's assumed-role
check reads only the role's policies) and ignores expiry. So the scope is checked here by
evaluating the session policy moto recorded with moto's own IAM policy engine, and the reach
of the credentials on a real S3 is what AWS's policy evaluation makes of that document.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import boto3
import pytest
import s3_lab as lab
from botocore.config import Config
from fake_vm import lab_leftovers, lab_missing
from moto_lab import AwsLab, aws_env, aws_lab, moto_server  # noqa: F401 (fixtures)
from s3_lab import S3Lab
from test_ssh_runner import Lab as VmLab
from test_ssh_runner import client_key  # noqa: F401 (a fixture)

from spotctl.activities.node import Node
from spotctl.activities.node_credentials import CredentialRenewer
from spotctl.clouds import aws_clients, aws_node_creds
from spotctl.models import AttemptRef, Candidate, ClusterHandle, FileMount, JobSpec, Location
from spotctl.node_agent import agent_mounters, bucket_sync
from spotctl.node_agent.bucket_sync import S3Client
from spotctl.remote import ssh
from spotctl.storage.base import StorageError
from spotctl.storage.s3 import S3Store

s3_lab = lab.s3_lab  # the fixtures, shared by module attribute
moto_s3_endpoint = lab.moto_s3_endpoint
needs_vms = pytest.mark.skipif(lab_missing() is not None, reason=f"the lab cannot run here: {lab_missing()}")

ACCOUNT = "123456789012"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/spotctl-nodes"
JOB_BUCKET, OTHER_BUCKET = "job-one-bucket", "job-two-bucket"


@pytest.fixture
def buckets(s3_lab: S3Lab):
    raw = s3_lab.client()
    for b in (JOB_BUCKET, OTHER_BUCKET):
        raw.create_bucket(Bucket=b)
    yield raw
    s3_lab.disable_auth()
    for b in (JOB_BUCKET, OTHER_BUCKET):
        for key in s3_lab.keys(b):
            raw.delete_object(Bucket=b, Key=key)
        raw.delete_bucket(Bucket=b)


@pytest.fixture
def vm_lab(tmp_path: Path, client_key: tuple[str, str]) -> Iterator[VmLab]:  # noqa: F811
    """Real sshd VMs (test_ssh_runner's Lab); none left behind."""
    vms = VmLab(tmp_path, *client_key)
    try:
        yield vms
    finally:
        ssh.close_all()
        for vm in vms.vms:
            vm.stop()
        assert lab_leftovers() == []


def recorded_session_policy() -> dict:
    """The session policy of the last AssumeRole moto answered (what the worker asked for)."""
    from moto.sts.models import sts_backends

    return json.loads(sts_backends[ACCOUNT]["aws"].assumed_roles[-1].policy)


def permitted(policy: dict, action: str, resource: str) -> bool:
    """moto's own IAM policy engine on the document."""
    from moto.iam.access_control import IAMPolicy, PermissionResult

    return IAMPolicy(json.dumps(policy)).is_action_permitted(action, resource) == PermissionResult.PERMITTED


def seconds_left(expiration: str) -> float:
    when = datetime.datetime.fromisoformat(expiration.replace("Z", "+00:00"))
    return when.timestamp() - time.time()


def test_a_node_gets_short_lived_credentials_never_the_workers_keys(s3_lab: S3Lab, buckets) -> None:
    """GetFederationToken (the default issuer): the entry holds a temporary key, a session
    token and an expiry, and nothing of the worker's long-lived key pair."""
    sync = S3Store(s3_lab.settings).node_sync(JOB_BUCKET, "ckpt/run-1")
    text = json.dumps(sync)
    assert lab.ACCESS_KEY not in text and lab.SECRET_KEY not in text
    assert sync["access_key"] and sync["secret_key"] and sync["session_token"]
    assert 0 < seconds_left(sync["expiration"]) <= s3_lab.settings.aws.node_credentials_ttl_s + 60
    assert (sync["bucket"], sync["prefix"], sync["region"]) == (JOB_BUCKET, "ckpt/run-1", "us-east-1")


def test_the_session_policy_reaches_only_the_mounts_prefix(s3_lab: S3Lab, buckets) -> None:
    """AssumeRole with a session policy: the document the worker sent names the job's bucket
    prefix and nothing else (object calls, listing of that prefix only)."""
    s3_lab.settings.aws.node_role_arn = ROLE_ARN
    sync = S3Store(s3_lab.settings).node_sync(JOB_BUCKET, "ckpt/run-1")
    assert sync["access_key"].startswith("ASIA") and sync["session_token"]
    policy = recorded_session_policy()
    own, other = f"arn:aws:s3:::{JOB_BUCKET}", f"arn:aws:s3:::{OTHER_BUCKET}"
    for action in ("s3:GetObject", "s3:PutObject", "s3:DeleteObject"):
        assert permitted(policy, action, f"{own}/ckpt/run-1/step")
        assert not permitted(policy, action, f"{other}/ckpt/run-1/step")  # another job's bucket
        assert not permitted(policy, action, f"{own}/ckpt/run-2/step")  # another run's prefix
        assert not permitted(policy, action, f"{own}/step")
    for action in ("s3:DeleteBucket", "s3:PutBucketPolicy", "s3:ListAllMyBuckets", "iam:CreateAccessKey",
                   "ec2:RunInstances", "sts:GetFederationToken"):
        assert not permitted(policy, action, own) and not permitted(policy, action, "*")
    assert not permitted(policy, "s3:ListBucket", other)
    listing = [s for s in policy["Statement"] if s["Action"] == "s3:ListBucket"]
    assert listing == [{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": own,
                        "Condition": {"StringLike": {"s3:prefix": ["ckpt/run-1", "ckpt/run-1/*"]}}}]
    # The whole bucket when the mount is the whole bucket, still no other bucket.
    S3Store(s3_lab.settings).node_sync(OTHER_BUCKET, "")
    whole = recorded_session_policy()
    assert permitted(whole, "s3:GetObject", f"{other}/any/key")
    assert not permitted(whole, "s3:GetObject", f"{own}/any/key")


def test_the_agent_syncs_with_the_issued_credentials_under_moto_auth(s3_lab: S3Lab, buckets, tmp_path: Path) -> None:
    """With IAM auth on, the worker is an IAM user allowed S3 and AssumeRole; the node's
    credentials are the role session's, which moto authenticates (session token included)."""
    iam = boto3.client("iam", region_name="us-east-1", endpoint_url=s3_lab.endpoint,
                       aws_access_key_id=lab.ACCESS_KEY, aws_secret_access_key=lab.SECRET_KEY)
    key_id, secret = s3_lab.iam_user("worker")
    iam.create_role(RoleName="spotctl-nodes", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/worker"}}]}))
    iam.put_role_policy(RoleName="spotctl-nodes", PolicyName="s3", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
    iam.put_user_policy(UserName="worker", PolicyName="assume", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}]}))
    os.environ.update(AWS_ACCESS_KEY_ID=key_id, AWS_SECRET_ACCESS_KEY=secret)
    from spotctl.clouds.aws_clients import forget_clients

    forget_clients()
    s3_lab.settings.aws.node_role_arn = ROLE_ARN
    s3_lab.enable_auth()
    sync = S3Store(s3_lab.settings).node_sync(JOB_BUCKET, "ckpt")
    assert key_id not in json.dumps(sync) and secret not in json.dumps(sync)
    local = tmp_path / "ckpt"
    local.mkdir()
    (local / "step").write_text("7")
    mount = bucket_sync.CachedMount(JOB_BUCKET, "ckpt", str(local), bucket_sync.client_for(sync))
    assert mount.push() == ["step"]
    s3_lab.disable_auth()
    assert s3_lab.body(JOB_BUCKET, "ckpt/step") == b"7"


def test_sts_refusing_is_one_clear_error(s3_lab: S3Lab, buckets) -> None:
    """A worker that may not call STS (here an IAM user allowed S3 only): the mount fails with
    one line saying what to configure, and no key is shipped instead."""
    key_id, secret = s3_lab.iam_user("s3-only")
    os.environ.update(AWS_ACCESS_KEY_ID=key_id, AWS_SECRET_ACCESS_KEY=secret)
    from spotctl.clouds.aws_clients import forget_clients

    forget_clients()
    s3_lab.enable_auth()
    with pytest.raises(StorageError, match=r"cannot get scoped credentials for a node .*aws.node_role_arn") as info:
        S3Store(s3_lab.settings).node_sync(JOB_BUCKET, "ckpt")
    assert "\n" not in str(info.value) and secret not in str(info.value)


def test_no_credentials_are_shipped_to_a_vm_with_its_own_role(s3_lab: S3Lab, buckets) -> None:
    sync = S3Store(s3_lab.settings).node_sync(JOB_BUCKET, "ckpt", credentials=False)
    assert not {"access_key", "secret_key", "session_token", "expiration"} & set(sync)


def test_issued_credentials_are_shared_until_half_their_life(s3_lab: S3Lab, buckets) -> None:
    """Every node of a cluster, and a renewal check soon after, reuse one STS answer; the
    cache never hands out credentials with less than half their life left."""
    s3_lab.settings.aws.node_role_arn = ROLE_ARN
    from moto.sts.models import sts_backends

    roles = sts_backends[ACCOUNT]["aws"].assumed_roles
    first = S3Store(s3_lab.settings).node_sync(JOB_BUCKET, "a")
    again = S3Store(s3_lab.settings).node_sync(JOB_BUCKET, "a")
    assert again["access_key"] == first["access_key"] and len(roles) == 1
    S3Store(s3_lab.settings).node_sync(JOB_BUCKET, "b")  # another prefix: its own credentials
    assert len(roles) == 2
    key = next(k for k in aws_node_creds._cache if k[3] == "a")
    aws_node_creds._cache[key]["expiration"] = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(
        seconds=s3_lab.settings.aws.node_credentials_ttl_s / 2 - 5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    renewed = S3Store(s3_lab.settings).node_sync(JOB_BUCKET, "a")
    assert renewed["access_key"] != first["access_key"] and len(roles) == 3


def test_the_agent_takes_renewed_credentials_from_sync_json(s3_lab: S3Lab, buckets, tmp_path: Path) -> None:
    """The agent's client holds credentials about to expire (here: keys moto refuses); the
    worker has written renewed ones to sync.json: the client re-reads them before its next
    call, and the push lands. Before the renewal is there, the old ones are used."""
    key_id, secret = s3_lab.iam_user("renewed")
    soon = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=60)).strftime("%Y-%m-%dT%H:%M:%SZ")
    later = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    target = str(tmp_path / "ckpt")
    entry = {"kind": "s3", "bucket": JOB_BUCKET, "prefix": "ckpt", "region": "us-east-1",
             "endpoint": s3_lab.endpoint, "target": target, "mode": "MOUNT_CACHED",
             "access_key": "AKIAEXPIRING00000000", "secret_key": "old", "expiration": soon}
    sync_json = tmp_path / "sync.json"
    sync_json.write_text(json.dumps([entry]))
    client = bucket_sync.client_for(entry, reload=lambda: bucket_sync.entry_of(str(sync_json), target))
    os.makedirs(target)
    (Path(target) / "f").write_text("x")
    mount = bucket_sync.CachedMount(JOB_BUCKET, "ckpt", target, client)
    s3_lab.enable_auth()
    with pytest.raises(bucket_sync.S3Error):  # not renewed yet: the expiring ones, refused here
        mount.push()
    sync_json.write_text(json.dumps([{**entry, "access_key": key_id, "secret_key": secret, "expiration": later}]))
    client.renewals.next_at = 0.0  # the re-read is paced (RELOAD_EVERY_S); the test does not wait
    assert mount.push() == ["f"]
    s3_lab.disable_auth()
    assert s3_lab.keys(JOB_BUCKET) == ["ckpt/f"]


def test_mount_s3_gets_renewable_credentials_through_credential_process(s3_lab: S3Lab, buckets,
                                                                         tmp_path: Path) -> None:
    """mount-s3 outlives the credentials it starts with, so it gets a 0600 AWS config whose
    credential_process re-reads sync.json. An AWS SDK (botocore here, the CRT in mount-s3)
    reads it and reaches the bucket with the entry's credentials; none in the environment."""
    s3_lab.settings.aws.node_role_arn = ROLE_ARN
    target = str(tmp_path / "data")
    entry = {**S3Store(s3_lab.settings).node_sync(JOB_BUCKET, "data"), "target": target, "mode": "MOUNT"}
    sync_json = tmp_path / "sync.json"
    sync_json.write_text(json.dumps([entry]))
    config = Path(agent_mounters._credentials_profile({**entry, "sync_json": str(sync_json)}))
    assert stat.S_IMODE(config.stat().st_mode) == 0o600 and entry["secret_key"] not in config.read_text()
    assert sys.executable in config.read_text()
    saved = {k: os.environ.pop(k, None) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ["AWS_CONFIG_FILE"] = str(config)
    try:
        session = boto3.session.Session(profile_name=agent_mounters.PROFILE)
        creds = session.get_credentials().get_frozen_credentials()
        assert (creds.access_key, creds.token) == (entry["access_key"], entry["session_token"])
        s3 = session.client("s3", region_name="us-east-1", endpoint_url=s3_lab.endpoint,
                            config=Config(retries={"max_attempts": 1}))
        s3.put_object(Bucket=JOB_BUCKET, Key="data/x", Body=b"1")
    finally:
        os.environ.update({k: v for k, v in saved.items() if v is not None})
        os.environ["AWS_CONFIG_FILE"] = lab.LAB_ENV["AWS_CONFIG_FILE"]
    assert s3_lab.keys(JOB_BUCKET) == ["data/x"]
    sync_json.unlink()  # the attempt ended: the process has nothing more to give
    assert bucket_sync.credential_process(str(sync_json), target) == 1


def test_s3_client_without_renewal_keeps_what_it_was_given(s3_lab: S3Lab) -> None:
    """Given credentials with no expiry (an older worker's sync.json) are used as before."""
    client = S3Client("us-east-1", endpoint=s3_lab.endpoint, access_key="AKIAX", secret_key="s")
    assert client._credentials() == ("AKIAX", "s", None)


# -- the worker renews them on a running node (over real SSH to a lab VM) -----------------


def attempt_ref(**cluster: str) -> AttemptRef:
    job = JobSpec(job_id=1, name="renew", run="true", candidates=[], submitted_at=0.0, file_mounts=[
        FileMount(target="~/ckpt", bucket=JOB_BUCKET, bucket_path="ckpt", store="s3", mode="MOUNT_CACHED"),
        FileMount(target="~/conf", bucket=JOB_BUCKET, bucket_path="conf", store="s3", mode="COPY")])
    handle = ClusterHandle(cluster_name="spotctl-1-1", cloud=cluster.get("cloud", "aws"), region="us-east-1",
                           zone="us-east-1a", instance_type="m6i.large", use_spot=True, instance_ids=["i-1"],
                           node_ips=["127.0.0.1"])
    return AttemptRef(job=job, attempt=1, recovery_count=0, cluster=handle)


@needs_vms
def test_the_worker_renews_a_running_nodes_credentials_at_half_life(s3_lab: S3Lab, buckets, vm_lab: VmLab) -> None:
    """The watch's renewer writes sync.json (0600) on the VM with fresh scoped credentials at
    once, then not again until half their life is gone; then with newly issued ones. A node
    whose phase ended is left alone; a refusing STS is logged and retried, never raised."""
    s3_lab.settings.aws.node_role_arn = ROLE_ARN
    vm = vm_lab.vm()
    node = Node(0, "i-1", vm_lab.runner(vm), "/root/.spotctl/job-1/attempt-1")
    on_disk = vm.home / ".spotctl" / "job-1" / "attempt-1" / "sync.json"
    renewer = CredentialRenewer(SimpleNamespace(settings=s3_lab.settings), attempt_ref())
    asyncio.run(renewer.renew_if_due([node], {}))
    [first] = json.loads(on_disk.read_text())
    assert stat.S_IMODE(on_disk.stat().st_mode) == 0o600
    assert (first["target"], first["prefix"], first["mode"]) == ("/root/ckpt", "ckpt", "MOUNT_CACHED")
    assert first["access_key"].startswith("ASIA") and lab.SECRET_KEY not in on_disk.read_text()
    half = s3_lab.settings.aws.node_credentials_ttl_s / 2
    assert half - 60 < renewer.renew_at - time.time() <= half
    on_disk.unlink()
    asyncio.run(renewer.renew_if_due([node], {}))  # not due: nothing is written
    assert not on_disk.exists()
    # Half their life gone: the issuer's cache no longer hands them out, the renewer is due.
    for creds in aws_node_creds._cache.values():
        creds["expiration"] = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(
            seconds=half - 1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    renewer.renew_at = time.time()
    asyncio.run(renewer.renew_if_due([node], {}))
    [second] = json.loads(on_disk.read_text())
    assert second["access_key"] != first["access_key"] and seconds_left(second["expiration"]) > half
    # The phase ended on the node: its file is not rewritten (the agent deleted it).
    on_disk.unlink()
    renewer.renew_at = 0.0
    asyncio.run(renewer.renew_if_due([node], {0: 0}))
    assert not on_disk.exists()
    # STS refusing: logged, retried a minute later, the watch goes on.
    aws_node_creds.forget()
    s3_lab.settings.aws.node_role_arn = None
    key_id, secret = s3_lab.iam_user("no-sts")
    os.environ.update(AWS_ACCESS_KEY_ID=key_id, AWS_SECRET_ACCESS_KEY=secret)
    from spotctl.clouds.aws_clients import forget_clients

    forget_clients()
    s3_lab.enable_auth()
    renewer.renew_at = 0.0
    asyncio.run(renewer.renew_if_due([node], {}))
    assert 50 < renewer.renew_at - time.time() <= 60 and not on_disk.exists()


@needs_vms
def test_a_vm_with_its_own_role_gets_no_credentials_to_renew(s3_lab: S3Lab, buckets, vm_lab: VmLab) -> None:
    """aws.instance_profile: the AWS VM's sync.json names the bucket only (the agent uses the
    instance role through IMDS), and there is nothing to renew; a GCP VM reading the same S3
    bucket still gets scoped credentials."""
    s3_lab.settings.aws.instance_profile = "spotctl-node-profile"
    vm = vm_lab.vm()
    node = Node(0, "i-1", vm_lab.runner(vm), "/root/.spotctl/job-1/attempt-1")
    on_disk = vm.home / ".spotctl" / "job-1" / "attempt-1" / "sync.json"
    renewer = CredentialRenewer(SimpleNamespace(settings=s3_lab.settings), attempt_ref())
    asyncio.run(renewer.renew_if_due([node], {}))
    [entry] = json.loads(on_disk.read_text())
    assert not {"access_key", "secret_key", "session_token", "expiration"} & set(entry)
    assert renewer.renew_at == float("inf")
    gcp = CredentialRenewer(SimpleNamespace(settings=s3_lab.settings), attempt_ref(cloud="gcp"))
    asyncio.run(gcp.renew_if_due([node], {}))
    [entry] = json.loads(on_disk.read_text())
    assert entry["session_token"] and gcp.renew_at < float("inf")


def test_a_prefix_too_long_for_a_session_policy_gets_its_whole_bucket_only(s3_lab: S3Lab, buckets) -> None:
    """STS takes at most 2048 characters of session policy: a mount of a very long prefix gets
    its whole bucket, still no other one."""
    s3_lab.settings.aws.node_role_arn = ROLE_ARN
    prefix = "/".join(["deep" * 50] * 5)
    sync = S3Store(s3_lab.settings).node_sync(JOB_BUCKET, prefix)
    policy = recorded_session_policy()
    assert sync["session_token"] and len(json.dumps(policy, separators=(",", ":"))) <= 2048
    assert permitted(policy, "s3:PutObject", f"arn:aws:s3:::{JOB_BUCKET}/{prefix}/x")
    assert not permitted(policy, "s3:PutObject", f"arn:aws:s3:::{OTHER_BUCKET}/{prefix}/x")


def test_vms_are_launched_with_the_configured_instance_profile(aws_lab: AwsLab) -> None:
    """aws.instance_profile (a name or an ARN): EC2 launches every VM with it, so the VM's
    own role reaches its buckets; without the setting, no profile."""
    iam = aws_clients.aws_client(aws_lab.settings, "iam", "us-east-1")
    arn = iam.create_instance_profile(InstanceProfileName="spotctl-nodes")["InstanceProfile"]["Arn"]
    where = Location(cloud="aws", region="us-east-1")
    plain = aws_lab.cloud.create("spotctl-9-1", aws_candidate(), 1, "spotctl-9-1")
    for profile in ("spotctl-nodes", arn):
        aws_lab.settings.aws.instance_profile = profile
        name = f"spotctl-9-{2 + (profile == arn)}"
        handle = aws_lab.cloud.create(name, aws_candidate(), 1, name)
        [inst] = aws_lab.describe("us-east-1", handle.instance_ids).values()
        assert inst["IamInstanceProfile"]["Arn"] == arn
        aws_lab.cloud.terminate(handle.instance_ids, where)
    [inst] = aws_lab.describe("us-east-1", plain.instance_ids).values()
    assert "IamInstanceProfile" not in inst
    aws_lab.cloud.terminate(plain.instance_ids, where)


def aws_candidate() -> Candidate:
    return Candidate(cloud="aws", region="us-east-1", zone="us-east-1a", instance_type="m6i.large", use_spot=True,
                     price=0.05)
