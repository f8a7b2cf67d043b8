# ruff: noqa: F811  (pytest fixtures imported from moto_lab)
"""AwsCloud against moto over HTTP: what a user would check in the EC2 console."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from moto_lab import (  # noqa: F401 - fixtures
    AwsLab,
    aws_env,
    aws_environment,
    aws_lab,
    backend,
    failing,
    failing_run_instances,
    lab_settings,
    moto_instances,
    moto_server,
    preempt,
)

from spotctl.clouds import aws_clients
from spotctl.clouds.aws import NO_CREDENTIALS, AwsCloud, client_token, forget_caches
from spotctl.clouds.aws_keys import SECURITY_GROUP, key_pair_name
from spotctl.clouds.base import CloudError, InstanceState, NoCapacity, Throttled
from spotctl.clouds.registry import get_cloud
from spotctl.models import Candidate, ErrorKind, ErrorScope, Location

REGION = "us-east-1"


def cand(zone: str = "us-east-1a", itype: str = "g4dn.xlarge", *, spot: bool = True, region: str = REGION,
         price: float = 0.16) -> Candidate:
    return Candidate(cloud="aws", region=region, zone=zone, instance_type=itype, use_spot=spot, price=price)


def at(region: str = REGION) -> Location:
    return Location(cloud="aws", region=region)


def tags(inst: dict) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in inst.get("Tags", [])}


def test_registry_builds_aws_without_io(tmp_path: Path) -> None:
    settings = lab_settings(tmp_path, "http://127.0.0.1:9")  # nothing listens there
    cloud = get_cloud("aws", settings)
    assert isinstance(cloud, AwsCloud) and cloud.name == "aws"
    assert not settings.ssh_dir.exists()


def test_offerings_come_from_the_catalog(aws_lab: AwsLab) -> None:
    offers = aws_lab.cloud.offerings()
    regions = {o.region for o in offers}
    assert regions == {"us-east-1", "us-east-2", "us-west-2", "eu-west-1", "eu-central-1", "ap-northeast-1"}
    by = {(o.zone, o.instance_type): o for o in offers}
    t4 = by[("us-east-1a", "g4dn.xlarge")]
    assert t4.cloud == "aws" and t4.accelerators == {"T4": 1} and t4.cpus == 4 and t4.memory_gb == 16
    assert 0 < t4.spot_price < t4.ondemand_price
    assert by[("us-west-2a", "p4d.24xlarge")].accelerators == {"A100": 8}
    assert by[("us-east-1a", "p5.48xlarge")].accelerators == {"H100": 8}
    assert by[("us-east-1a", "m6i.large")].accelerators == {}
    assert {"V100", "A10G", "L4"} <= {a for o in offers for a in o.accelerators}
    # settings.aws.regions narrows the cloud to those regions
    aws_lab.settings.aws.regions = ["eu-west-1"]
    assert {o.region for o in AwsCloud(aws_lab.settings).offerings()} == {"eu-west-1"}


def test_spot_prices_are_live_and_cached(aws_lab: AwsLab) -> None:
    prices = aws_lab.cloud.spot_prices(REGION)
    assert prices[("us-east-1a", "g4dn.xlarge")] == pytest.approx(0.00001)  # moto's fixed price
    with failing(REGION, "describe_spot_price_history", "InternalError") as hits:
        assert aws_lab.cloud.spot_prices(REGION) == prices  # from the cache: no call
        assert hits[0] == 0
        forget_caches()
        with pytest.raises(CloudError) as err:
            aws_lab.cloud.spot_prices(REGION)
        assert hits[0] >= 1 and err.value.kind == ErrorKind.UNAVAILABLE and err.value.retryable


def test_create_spot_cluster_tags_key_pair_and_security_group(aws_lab: AwsLab) -> None:
    handle = aws_lab.cloud.create("spotctl-7-2", cand(), 2, "spotctl-7-2")
    assert (handle.cloud, handle.region, handle.zone, handle.instance_type) == ("aws", REGION, "us-east-1a",
                                                                                  "g4dn.xlarge")
    assert handle.use_spot and handle.price == 0.16 and len(handle.instance_ids) == 2
    described = aws_lab.describe(REGION, handle.instance_ids)
    for rank, iid in enumerate(handle.instance_ids):
        inst = described[iid]
        assert inst["InstanceLifecycle"] == "spot"
        assert inst["Placement"]["AvailabilityZone"] == "us-east-1a"
        assert inst["AmiLaunchIndex"] == rank
        assert inst["ImageId"] == aws_lab.images[REGION]
        assert tags(inst) == {"spotctl-cluster": "spotctl-7-2", "spotctl-job": "7", "spotctl-attempt": "2",
                              "spotctl-node": str(rank), "Name": f"spotctl-7-2-{rank}"}
        assert inst["KeyName"].startswith("spotctl-")
        assert [g["GroupName"] for g in inst["SecurityGroups"]] == [SECURITY_GROUP]
    ec2 = aws_lab.ec2(REGION)
    volumes = ec2.describe_volumes(Filters=[{"Name": "tag:spotctl-cluster", "Values": ["spotctl-7-2"]}])["Volumes"]
    assert len(volumes) == 2
    # the key pair is the user's key, imported once
    public = (aws_lab.settings.ssh_dir / "spotctl_ed25519.pub").read_text()
    assert described[handle.instance_ids[0]]["KeyName"] == key_pair_name(public)
    assert [k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]] == [key_pair_name(public)]
    # the security group opens tcp/22 only
    group = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [SECURITY_GROUP]}])
    [perms] = [g["IpPermissions"] for g in group["SecurityGroups"]]
    assert [(p["IpProtocol"], p["FromPort"], p["ToPort"]) for p in perms] == [("tcp", 22, 22)]
    # a second cluster reuses key pair and group
    other = aws_lab.cloud.create("spotctl-8-1", cand("us-east-1b"), 1, "spotctl-8-1")
    assert len(ec2.describe_key_pairs()["KeyPairs"]) == 1
    assert len(ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [SECURITY_GROUP]}])
               ["SecurityGroups"]) == 1
    aws_lab.cloud.terminate(handle.instance_ids + other.instance_ids, at())


def test_create_on_demand_has_no_market_options(aws_lab: AwsLab) -> None:
    handle = aws_lab.cloud.create("spotctl-3-1", cand("us-west-2b", "m6i.large", spot=False, region="us-west-2"),
                                  1, "spotctl-3-1")
    [inst] = aws_lab.describe("us-west-2", handle.instance_ids).values()
    assert "InstanceLifecycle" not in inst and not handle.use_spot
    assert inst["InstanceType"] == "m6i.large" and handle.region == "us-west-2"
    aws_lab.cloud.terminate(handle.instance_ids, at("us-west-2"))


def test_private_key_is_owner_only(aws_lab: AwsLab) -> None:
    handle = aws_lab.cloud.create("spotctl-1-1", cand(), 1, "spotctl-1-1")
    key = aws_lab.cloud.private_key_path()
    assert key.read_bytes().startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    aws_lab.cloud.terminate(handle.instance_ids, at())


def test_same_token_twice_makes_one_cluster(aws_lab: AwsLab) -> None:
    first = aws_lab.cloud.create("spotctl-5-1", cand(), 2, "spotctl-5-1")
    again = aws_lab.cloud.create("spotctl-5-1", cand(), 2, "spotctl-5-1")
    assert again.instance_ids == first.instance_ids
    # even a retry at another zone of the region returns what the first call made
    elsewhere = aws_lab.cloud.create("spotctl-5-1", cand("us-east-1c"), 2, "spotctl-5-1")
    assert elsewhere.instance_ids == first.instance_ids and elsewhere.zone == "us-east-1a"
    assert len(moto_instances()) == 2
    aws_lab.cloud.terminate(first.instance_ids, at())


def test_capacity_error_in_one_zone(aws_lab: AwsLab) -> None:
    with failing_run_instances(REGION, "us-east-1a") as hits:
        with pytest.raises(NoCapacity) as err:
            aws_lab.cloud.create("spotctl-9-1", cand("us-east-1a"), 2, "spotctl-9-1")
        assert (err.value.kind, err.value.scope) == (ErrorKind.CAPACITY, ErrorScope.ZONE)
        assert "InsufficientInstanceCapacity" in str(err.value)
        assert hits[0] == 1 and moto_instances() == []
        handle = aws_lab.cloud.create("spotctl-9-1", cand("us-east-1b"), 2, "spotctl-9-1")  # zone b has room
    assert handle.zone == "us-east-1b" and len(handle.instance_ids) == 2
    aws_lab.cloud.terminate(handle.instance_ids, at())


@pytest.mark.parametrize("code,kind,scope", [
    ("VcpuLimitExceeded", ErrorKind.QUOTA, ErrorScope.REGION),
    ("SpotMaxPriceTooLow", ErrorKind.PRICE, ErrorScope.ZONE),
    ("Unsupported", ErrorKind.CAPACITY, ErrorScope.ZONE),
])
def test_quota_and_price_errors(aws_lab: AwsLab, code: str, kind: ErrorKind, scope: ErrorScope) -> None:
    with failing_run_instances(REGION, "us-east-1a", code), pytest.raises(NoCapacity) as err:
        aws_lab.cloud.create("spotctl-9-1", cand(), 1, "spotctl-9-1")
    assert (err.value.kind, err.value.scope) == (kind, scope)


def test_throttling_maps_to_throttled(aws_lab: AwsLab) -> None:
    with failing(REGION, "describe_instances", "RequestLimitExceeded"), pytest.raises(Throttled) as err:
        aws_lab.cloud.find_cluster("spotctl-1-1", at())
    assert err.value.kind == ErrorKind.THROTTLED and err.value.retryable
    assert err.value.scope == ErrorScope.REGION  # EC2 throttles per account and region


def test_auth_failure_is_invalid_for_the_whole_cloud(aws_lab: AwsLab) -> None:
    with failing(REGION, "describe_instances", "AuthFailure"), pytest.raises(CloudError) as err:
        aws_lab.cloud.create("spotctl-1-1", cand(), 1, "spotctl-1-1")
    assert (err.value.kind, err.value.scope) == (ErrorKind.INVALID, ErrorScope.CLOUD) and not err.value.retryable


def test_no_image_in_region_is_invalid(aws_lab: AwsLab) -> None:
    c = cand("ap-northeast-1a", "m6i.large", region="ap-northeast-1")  # the lab published no Ubuntu AMI there
    with pytest.raises(CloudError) as err:
        aws_lab.cloud.create("spotctl-2-1", c, 1, "spotctl-2-1")
    assert (err.value.kind, err.value.scope) == (ErrorKind.INVALID, ErrorScope.REGION)
    assert "Ubuntu 22.04" in str(err.value) and moto_instances() == []


def test_unreachable_endpoint_is_unavailable(tmp_path: Path, aws_env: Path) -> None:
    cloud = AwsCloud(lab_settings(tmp_path, "http://127.0.0.1:9"))
    with pytest.raises(CloudError) as err:
        cloud.find_cluster("spotctl-1-1", at())
    assert err.value.kind == ErrorKind.UNAVAILABLE
    assert "EndpointConnectionError" in (cloud.check(verify=True) or "")


def test_states_preemption_user_termination_and_gone(aws_lab: AwsLab) -> None:
    handle = aws_lab.cloud.create("spotctl-4-1", cand(), 3, "spotctl-4-1")
    a, b, c = handle.instance_ids
    assert aws_lab.cloud.instance_states([a, b, c], at()) == {x: InstanceState.RUNNING for x in (a, b, c)}
    preempt(REGION, a)
    preempt(REGION, b, stop=True)
    aws_lab.ec2(REGION).terminate_instances(InstanceIds=[c])  # the user, in the console
    ghost = "i-0123456789abcdef0"
    states = aws_lab.cloud.instance_states([a, b, c, ghost], at())
    assert states == {a: InstanceState.PREEMPTED, b: InstanceState.PREEMPTED, c: InstanceState.TERMINATED,
                      ghost: InstanceState.GONE}
    with pytest.raises(CloudError) as err:
        aws_lab.cloud.instance_states([a], None)
    assert err.value.kind == ErrorKind.INVALID
    aws_lab.cloud.terminate(handle.instance_ids, at())


def test_user_stop_is_stopped(aws_lab: AwsLab) -> None:
    handle = aws_lab.cloud.create("spotctl-4-2", cand(spot=False), 1, "spotctl-4-2")
    aws_lab.ec2(REGION).stop_instances(InstanceIds=handle.instance_ids)
    assert aws_lab.cloud.instance_states(handle.instance_ids, at()) == {handle.instance_ids[0]: InstanceState.STOPPED}
    aws_lab.cloud.terminate(handle.instance_ids, at())


def test_host_maintenance_is_told_apart_from_a_user_stop(aws_lab: AwsLab) -> None:
    """AWS stopping an instance for its host (a scheduled retirement) is MAINTENANCE."""
    from moto.ec2.models.instances import StateReason

    handle = aws_lab.cloud.create("spotctl-4-3", cand(spot=False), 1, "spotctl-4-3")
    [iid] = handle.instance_ids
    inst = backend(REGION).get_instance(iid)
    inst.stop()
    inst.state_reason = StateReason("Server.ScheduledStop: Stopped due to scheduled retirement",
                                    "Server.ScheduledStop")
    assert aws_lab.cloud.instance_states([iid], at()) == {iid: InstanceState.MAINTENANCE}
    aws_lab.cloud.terminate(handle.instance_ids, at())


def test_terminate_is_idempotent_and_ignores_unknown_ids(aws_lab: AwsLab) -> None:
    handle = aws_lab.cloud.create("spotctl-6-1", cand(), 2, "spotctl-6-1")
    ghost = "i-0123456789abcdef0"
    aws_lab.cloud.terminate([handle.instance_ids[0], ghost], at())
    states = aws_lab.cloud.instance_states(handle.instance_ids, at())
    assert states[handle.instance_ids[0]] == InstanceState.TERMINATED
    assert states[handle.instance_ids[1]] == InstanceState.RUNNING  # not touched by the retry
    aws_lab.cloud.terminate(handle.instance_ids + [ghost], at())
    aws_lab.cloud.terminate(handle.instance_ids, at())  # again: a no-op
    aws_lab.cloud.terminate([], at())
    assert set(aws_lab.cloud.instance_states(handle.instance_ids, at()).values()) == {InstanceState.TERMINATED}


def test_find_cluster_is_region_scoped(aws_lab: AwsLab) -> None:
    east = aws_lab.cloud.create("spotctl-11-1", cand(), 2, "spotctl-11-1")
    west = aws_lab.cloud.create("spotctl-11-1", cand("us-west-2a", region="us-west-2"), 1, "spotctl-11-1")
    assert aws_lab.cloud.find_cluster("spotctl-11-1", at()) == east.instance_ids
    assert aws_lab.cloud.find_cluster("spotctl-11-1", at("us-west-2")) == west.instance_ids
    assert aws_lab.cloud.find_cluster("spotctl-11-1", at("eu-west-1")) == []
    assert aws_lab.cloud.find_cluster("spotctl-11-1") == east.instance_ids + west.instance_ids
    preempt(REGION, east.instance_ids[0], stop=True)  # a preempted instance counts until terminated
    assert aws_lab.cloud.find_cluster("spotctl-11-1", at()) == east.instance_ids
    aws_lab.cloud.terminate(east.instance_ids, at())
    aws_lab.cloud.terminate(west.instance_ids, at("us-west-2"))
    assert aws_lab.cloud.find_cluster("spotctl-11-1") == []


def test_ready_handle_fills_in_addresses(aws_lab: AwsLab) -> None:
    handle = aws_lab.cloud.create("spotctl-12-1", cand(), 2, "spotctl-12-1")
    backend(REGION).get_instance(handle.instance_ids[1]).nics[0].public_ip = "10.201.1.2"
    ready = aws_lab.cloud.ready_handle(handle)
    described = aws_lab.describe(REGION, handle.instance_ids)
    assert ready.node_ips[0] == described[handle.instance_ids[0]]["PublicIpAddress"]
    assert ready.node_ips[1] == "10.201.1.2"
    assert ready.instance_ids == handle.instance_ids
    aws_lab.cloud.terminate(handle.instance_ids, at())


def test_tagged_instances_across_regions(aws_lab: AwsLab) -> None:
    east = aws_lab.cloud.create("spotctl-13-1", cand(), 1, "spotctl-13-1")
    west = aws_lab.cloud.create("spotctl-14-1", cand("us-west-2a", region="us-west-2"), 1, "spotctl-14-1")
    aws_lab.ec2(REGION).run_instances(ImageId=aws_lab.images[REGION], MinCount=1, MaxCount=1)  # not spotctl's
    gone = aws_lab.cloud.create("spotctl-15-1", cand(), 1, "spotctl-15-1")
    aws_lab.cloud.terminate(gone.instance_ids, at())
    preempt(REGION, east.instance_ids[0], stop=True)  # stopped by the interruption: still holds a disk
    found = {t.id: t for t in aws_lab.cloud.tagged_instances()}
    assert set(found) == set(east.instance_ids + west.instance_ids)
    e = found[east.instance_ids[0]]
    assert (e.cluster_name, e.region, e.zone, e.state) == ("spotctl-13-1", REGION, "us-east-1a",
                                                           InstanceState.PREEMPTED)
    w = found[west.instance_ids[0]]
    assert (w.cluster_name, w.region, w.state) == ("spotctl-14-1", "us-west-2", InstanceState.RUNNING)
    assert w.created_at.tzinfo is not None
    aws_lab.cloud.terminate(west.instance_ids, at("us-west-2"))
    aws_lab.cloud.terminate(east.instance_ids, at())
    for inst in moto_instances():  # the stranger's instance
        inst.terminate()


def test_check_ok_with_credentials(aws_lab: AwsLab) -> None:
    assert aws_lab.cloud.check(verify=True) is None


def test_check_without_credentials(tmp_path: Path, moto_server: str) -> None:
    with aws_environment(tmp_path / "no-creds", credentials=False):
        aws_clients.forget_clients()
        cloud = AwsCloud(lab_settings(tmp_path, moto_server))
        assert cloud.check() == NO_CREDENTIALS


def test_check_rejected_credentials(aws_lab: AwsLab) -> None:
    with failing(REGION, "describe_regions", "AuthFailure"):
        line = aws_lab.cloud.check(verify=True)
    assert line is not None and "refused" in line and "AuthFailure" in line


def test_terminate_needs_a_region(aws_lab: AwsLab) -> None:
    with pytest.raises(CloudError):
        aws_lab.cloud.terminate(["i-0123456789abcdef0"], None)


def test_client_token_is_short_and_per_placement() -> None:
    long = "spotctl-" + "9" * 80
    t = client_token(long, cand())
    assert len(t) <= 64 and t.isascii()
    assert client_token(long, cand()) == t  # a retry of the same call: same token
    assert client_token(long, cand("us-east-1b")) != t  # another placement of the attempt
    assert client_token("spotctl-1-1", cand()).startswith("spotctl-1-1-")
