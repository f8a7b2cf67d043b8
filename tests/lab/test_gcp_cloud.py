# ruff: noqa: F811  (pytest fixtures imported from gce_lab)
"""clouds/gcp.py against the lab's fake Compute Engine, through google-cloud-compute over HTTP:
what a user would see in the console (instances, labels, scheduling), and what spotctl
concludes (states with their reasons, errors with kind and scope)."""

from __future__ import annotations

from pathlib import Path

import pytest
from gce_lab import GcpLab, gce_server, gcp_lab, lab_settings  # noqa: F401 - fixtures

from spotctl.clouds.base import CloudError, InstanceState, NoCapacity, Throttled
from spotctl.clouds.gcp import GcpCloud, node_name, request_id, split_id
from spotctl.clouds.registry import get_cloud
from spotctl.models import Candidate, ErrorKind, ErrorScope, Location

ZONE = "us-central1-a"
REGION = "us-central1"


def cand(zone: str = ZONE, *, spot: bool = True, instance_type: str = "n2-standard-2",
         accelerators: dict[str, int] | None = None) -> Candidate:
    return Candidate(cloud="gcp", region=zone.rsplit("-", 1)[0], zone=zone, instance_type=instance_type,
                     use_spot=spot, price=0.02, accelerators=accelerators or {})


def at(region: str = REGION) -> Location:
    return Location(cloud="gcp", region=region)


def cloud_of(lab: GcpLab) -> GcpCloud:
    return GcpCloud(lab.settings)


def described(lab: GcpLab) -> dict[str, dict]:
    """{name: instance} of every alive instance, as the API shows them."""
    return {i["name"]: i for i in lab.fake.instances()}


def test_registry_builds_gcp_without_io(tmp_path: Path) -> None:
    settings = lab_settings(tmp_path, "http://127.0.0.1:9")  # nothing listens there
    cloud = get_cloud("gcp", settings)
    assert cloud.name == "gcp" and cloud.node_env["SPOTCTL_METADATA_KIND"] == "gcp"
    offered = cloud.offerings()
    assert offered and {o.cloud for o in offered} == {"gcp"}
    assert cloud.spot_prices(REGION) == {}  # no live prices: the catalog's stand


def test_create_spot_cluster_labels_scheduling_and_ssh_key(gcp_lab: GcpLab) -> None:
    cloud = cloud_of(gcp_lab)
    handle = cloud.create("spotctl-7-1", cand(), 2, "spotctl-7-1")
    assert (handle.cloud, handle.region, handle.zone, handle.use_spot) == ("gcp", REGION, ZONE, True)
    assert handle.instance_ids == [f"{ZONE}/spotctl-7-1-0", f"{ZONE}/spotctl-7-1-1"]
    seen = described(gcp_lab)
    assert set(seen) == {"spotctl-7-1-0", "spotctl-7-1-1"}
    inst = seen["spotctl-7-1-1"]
    assert inst["labels"] == {"spotctl-cluster": "spotctl-7-1", "spotctl-job": "7", "spotctl-attempt": "1",
                              "spotctl-node": "1"}
    assert inst["scheduling"]["provisioningModel"] == "SPOT"
    assert inst["scheduling"]["instanceTerminationAction"] == "DELETE"
    assert inst["machineType"].endswith("/machineTypes/n2-standard-2")
    [keys] = [item["value"] for item in inst["metadata"]["items"] if item["key"] == "ssh-keys"]
    assert keys.startswith("root:ssh-ed25519 ")
    key_file = gcp_lab.settings.ssh_dir / "spotctl_ed25519"
    assert key_file.stat().st_mode & 0o777 == 0o600
    cloud.terminate(handle.instance_ids, at())
    assert described(gcp_lab) == {}


def test_vms_run_with_no_service_account_by_default(gcp_lab: GcpLab) -> None:
    """Not the project's default account with cloud-platform scope: a job's program gets no
    token from the metadata server (the bucket sync has the worker's downscoped one)."""
    cloud = cloud_of(gcp_lab)
    handle = cloud.create("spotctl-8-1", cand(), 2, "spotctl-8-1")
    try:
        seen = described(gcp_lab)
        assert set(seen) == {"spotctl-8-1-0", "spotctl-8-1-1"}
        assert [inst.get("serviceAccounts", []) for inst in seen.values()] == [[], []]
    finally:
        cloud.terminate(handle.instance_ids, at())
    assert described(gcp_lab) == {}


def test_vms_run_as_the_configured_service_account(gcp_lab: GcpLab) -> None:
    """gcp.service_account: every VM runs as the user's own least-privilege account."""
    email = "spotctl-nodes@my-project.iam.gserviceaccount.com"
    gcp_lab.settings.gcp.service_account = email
    cloud = cloud_of(gcp_lab)
    handle = cloud.create("spotctl-9-1", cand(), 1, "spotctl-9-1")
    try:
        [inst] = described(gcp_lab).values()
        assert inst["serviceAccounts"] == [{"email": email, "scopes": ["https://www.googleapis.com/auth/cloud-platform"]}]
    finally:
        cloud.terminate(handle.instance_ids, at())
        gcp_lab.settings.gcp.service_account = None
    assert described(gcp_lab) == {}


def test_ssh_is_opened_once_by_a_firewall_rule_for_the_spotctl_tag(gcp_lab: GcpLab) -> None:
    cloud = cloud_of(gcp_lab)
    first = cloud.create("spotctl-7-11", cand(), 1, "spotctl-7-11")
    second = cloud.create("spotctl-7-12", cand("us-east1-b"), 1, "spotctl-7-12")
    [rule] = [r for (_, name), r in gcp_lab.fake.firewalls.items()]
    assert rule["name"] == "spotctl-allow-ssh" and rule["targetTags"] == ["spotctl"]
    assert rule["allowed"] == [{"IPProtocol": "tcp", "ports": ["22"]}] and rule["direction"] == "INGRESS"
    assert all(i["tags"]["items"] == ["spotctl"] for i in described(gcp_lab).values())
    cloud.terminate(first.instance_ids + second.instance_ids)


def test_a_rule_made_meanwhile_by_another_worker_is_fine(gcp_lab: GcpLab) -> None:
    from spotctl.clouds import gcp_network

    cloud = cloud_of(gcp_lab)
    client = gcp_lab.client("FirewallsClient")
    gcp_network.ensure_ssh_firewall(client, gcp_lab.project, gcp_lab.endpoint, 5.0)  # "another worker"
    gcp_network.forget()
    handle = cloud.create("spotctl-7-13", cand(), 1, "spotctl-7-13")
    assert len(gcp_lab.fake.firewalls) == 1
    cloud.terminate(handle.instance_ids)


def test_on_demand_n1_gets_its_gpu_attached(gcp_lab: GcpLab) -> None:
    cloud = cloud_of(gcp_lab)
    handle = cloud.create("spotctl-7-2", cand(spot=False, instance_type="n1-standard-8", accelerators={"T4": 1}),
                          1, "spotctl-7-2")
    inst = described(gcp_lab)["spotctl-7-2-0"]
    assert inst["scheduling"].get("provisioningModel") != "SPOT"
    assert inst["scheduling"]["onHostMaintenance"] == "TERMINATE"
    [gpu] = inst["guestAccelerators"]
    assert gpu["acceleratorType"].endswith("/acceleratorTypes/nvidia-tesla-t4") and gpu["acceleratorCount"] == 1
    assert handle.use_spot is False
    cloud.terminate(handle.instance_ids, at())


def test_same_token_twice_makes_one_cluster(gcp_lab: GcpLab) -> None:
    cloud = cloud_of(gcp_lab)
    first = cloud.create("spotctl-7-3", cand(), 2, "spotctl-7-3")
    again = cloud.create("spotctl-7-3", cand(), 2, "spotctl-7-3")
    assert again.instance_ids == first.instance_ids
    assert len(described(gcp_lab)) == 2
    cloud.terminate(first.instance_ids, at())


def test_a_half_made_cluster_is_completed_not_doubled(gcp_lab: GcpLab) -> None:
    """A create that timed out after one of two inserts: the retry makes only the missing node."""
    cloud = cloud_of(gcp_lab)
    cloud.create("spotctl-7-4", cand(), 1, "spotctl-7-4")  # rank 0 only
    handle = cloud.create("spotctl-7-4", cand(), 2, "spotctl-7-4")
    assert [split_id(i)[1] for i in handle.instance_ids] == ["spotctl-7-4-0", "spotctl-7-4-1"]
    assert len(described(gcp_lab)) == 2
    cloud.terminate(handle.instance_ids, at())


def test_capacity_error_in_one_zone_leaves_nothing_and_the_next_zone_works(gcp_lab: GcpLab) -> None:
    cloud = cloud_of(gcp_lab)
    with gcp_lab.fake.fail_inserts(ZONE) as hits:
        with pytest.raises(NoCapacity) as err:
            cloud.create("spotctl-7-5", cand(), 2, "spotctl-7-5")
        assert hits[0] >= 1
        assert (err.value.kind, err.value.scope) == (ErrorKind.CAPACITY, ErrorScope.ZONE)
        assert "ZONE_RESOURCE_POOL_EXHAUSTED" in str(err.value)
        assert described(gcp_lab) == {}
        handle = cloud.create("spotctl-7-5", cand("us-central1-b"), 2, "spotctl-7-5")
    assert handle.zone == "us-central1-b" and len(described(gcp_lab)) == 2
    cloud.terminate(handle.instance_ids, at())


def test_a_retry_after_a_capacity_failure_really_asks_again(gcp_lab: GcpLab,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """GCE answers a known requestId with its first operation: once that one is old, the same
    attempt's next try in the zone (capacity came back) must make the VM, not repeat the failure."""
    from spotctl.clouds import gcp

    cloud = cloud_of(gcp_lab)
    with gcp_lab.fake.fail_inserts(ZONE), pytest.raises(NoCapacity):
        cloud.create("spotctl-7-10", cand(), 1, "spotctl-7-10")
    with pytest.raises(NoCapacity):  # moments later: the same answer, without asking anew
        cloud.create("spotctl-7-10", cand(), 1, "spotctl-7-10")
    monkeypatch.setattr(gcp, "STALE_FAILURE_S", 0.0)  # as if minutes had passed
    handle = cloud.create("spotctl-7-10", cand(), 1, "spotctl-7-10")
    assert list(described(gcp_lab)) == ["spotctl-7-10-0"]
    cloud.terminate(handle.instance_ids, at())


def test_quota_error_reaches_the_region(gcp_lab: GcpLab) -> None:
    cloud = cloud_of(gcp_lab)
    with gcp_lab.fake.fail_inserts(ZONE, "QUOTA_EXCEEDED", sync=True), pytest.raises(NoCapacity) as err:
        cloud.create("spotctl-7-6", cand(), 1, "spotctl-7-6")
    assert (err.value.kind, err.value.scope) == (ErrorKind.QUOTA, ErrorScope.REGION)
    assert described(gcp_lab) == {}


@pytest.mark.parametrize("status", [429, 403])
def test_rate_limit_is_throttled(gcp_lab: GcpLab, status: int) -> None:
    cloud = cloud_of(gcp_lab)
    gcp_lab.fake.throttle(1, status=status)
    with pytest.raises(Throttled) as err:
        cloud.find_cluster("spotctl-7-7")
    assert err.value.kind == ErrorKind.THROTTLED
    assert cloud.find_cluster("spotctl-7-7") == []  # the next call goes through


def test_states_carry_the_reason(gcp_lab: GcpLab) -> None:
    cloud = cloud_of(gcp_lab)
    handle = cloud.create("spotctl-7-8", cand(), 4, "spotctl-7-8")
    a, b, c, d = handle.instance_ids
    assert cloud.instance_states(handle.instance_ids, at()) == {i: InstanceState.RUNNING for i in handle.instance_ids}
    gcp_lab.fake.preempt(*split_id(a))  # DELETE action: gone, with a preempted operation
    gcp_lab.fake.host_error(*split_id(b))
    gcp_lab.client("InstancesClient").stop_unary(project=gcp_lab.project, zone=ZONE, instance=split_id(c)[1])
    ghost = f"{ZONE}/spotctl-7-8-9"
    states = cloud.instance_states([a, b, c, d, ghost], at())
    assert states == {a: InstanceState.PREEMPTED, b: InstanceState.MAINTENANCE, c: InstanceState.STOPPED,
                      d: InstanceState.RUNNING, ghost: InstanceState.GONE}
    cloud.terminate(handle.instance_ids + [ghost], at())
    cloud.terminate(handle.instance_ids, at())  # again: a no-op
    assert described(gcp_lab) == {}


def test_a_stopped_preempted_vm_is_preempted(tmp_path: Path, gcp_lab: GcpLab) -> None:
    gcp_lab.settings.gcp.termination_action = "STOP"
    cloud = cloud_of(gcp_lab)
    handle = cloud.create("spotctl-7-9", cand(), 1, "spotctl-7-9")
    [iid] = handle.instance_ids
    gcp_lab.fake.preempt(*split_id(iid))
    assert any(i["name"] == "spotctl-7-9-0" for i in gcp_lab.fake.instances(alive_only=False))  # the disk stays
    assert cloud.instance_states([iid], at()) == {iid: InstanceState.PREEMPTED}
    cloud.terminate([iid], at())
    assert not any(i["name"] == "spotctl-7-9-0" for i in gcp_lab.fake.instances(alive_only=False))


def test_find_cluster_tagged_instances_and_addresses(gcp_lab: GcpLab) -> None:
    cloud = cloud_of(gcp_lab)
    east = cloud.create("spotctl-8-1", cand("us-east1-b"), 1, "spotctl-8-1")
    central = cloud.create("spotctl-8-2", cand(), 2, "spotctl-8-2")
    assert cloud.find_cluster("spotctl-8-1") == east.instance_ids
    assert cloud.find_cluster("spotctl-8-1", at("us-central1")) == []
    assert cloud.find_cluster("spotctl-8-2", at("us-central1")) == central.instance_ids
    tagged = {t.id: t for t in cloud.tagged_instances()}
    assert set(tagged) == set(east.instance_ids + central.instance_ids)
    assert tagged[east.instance_ids[0]].cluster_name == "spotctl-8-1"
    assert tagged[east.instance_ids[0]].region == "us-east1"
    ready = cloud.ready_handle(central)
    assert all(ip for ip in ready.node_ips) and len(set(ready.node_ips)) == 2
    cloud.terminate(east.instance_ids, at("us-east1"))
    cloud.terminate(central.instance_ids, at())


def test_check_with_the_lab_endpoint(gcp_lab: GcpLab, tmp_path: Path) -> None:
    assert cloud_of(gcp_lab).check() is None
    assert cloud_of(gcp_lab).check(verify=True) is None
    dead = GcpCloud(lab_settings(tmp_path / "dead", "http://127.0.0.1:9"))
    why = dead.check(verify=True) or ""
    assert why.startswith("GCP cannot be used")


def test_check_without_credentials(tmp_path: Path) -> None:
    from spotctl.config import load_settings

    why = GcpCloud(load_settings(home=tmp_path / "home")).check() or ""
    assert "no GCP credentials found" in why


def test_ids_names_and_request_ids() -> None:
    assert node_name("spotctl-12-3", 0) == "spotctl-12-3-0"
    assert node_name("My_Cluster", 1) == "my-cluster-1"
    assert node_name("9lives", 0).startswith("s-") and len(node_name("x" * 100, 12)) <= 63
    assert request_id("t", ZONE, 0) == request_id("t", ZONE, 0) != request_id("t", ZONE, 1)
    with pytest.raises(CloudError):
        split_id("i-0123")


@pytest.mark.parametrize("code", ["ZONE_RESOURCE_POOL_EXHAUSTED", "QUOTA_EXCEEDED"])
def test_a_node_refused_at_once_takes_the_nodes_made_before_it_down(gcp_lab: GcpLab, code: str) -> None:
    """Rank 0 is made, rank 1's insert is refused synchronously: the failed create leaves no
    instance (rank 0 would otherwise bill through the capacity wait that follows)."""
    cloud = cloud_of(gcp_lab)
    with gcp_lab.fake.fail_inserts(ZONE, code, sync=True, after=1) as hits, pytest.raises(NoCapacity):
        cloud.create("spotctl-7-11", cand(), 2, "spotctl-7-11")
    assert hits[0] == 1
    assert described(gcp_lab) == {}
    assert cloud.find_cluster("spotctl-7-11") == []


def test_a_jobs_instances_are_found_by_its_label_whatever_the_attempt(gcp_lab: GcpLab) -> None:
    cloud = cloud_of(gcp_lab)
    east = cloud.create("spotctl-9-2", cand("us-east1-b"), 1, "spotctl-9-2")
    central = cloud.create("spotctl-9-5", cand(), 2, "spotctl-9-5")
    other = cloud.create("spotctl-99-1", cand(), 1, "spotctl-99-1")
    found = cloud.job_instances(9)
    assert sorted(t.id for t in found) == sorted(east.instance_ids + central.instance_ids)
    assert {t.cluster_name for t in found} == {"spotctl-9-2", "spotctl-9-5"}
    assert [t.id for t in cloud.job_instances(9, at("us-east1"))] == east.instance_ids
    assert sorted(t.id for t in cloud.job_instances(9, at())) == sorted(central.instance_ids)
    for handle in (east, central, other):
        cloud.terminate(handle.instance_ids, at(handle.region))
    assert cloud.job_instances(9) == []
