# ruff: noqa: F811  (pytest fixtures imported from gce_lab)
"""The fake Compute Engine API (fake_gce.py), driven through google-cloud-compute's REST
clients exactly as spotctl's clouds/gcp.py drives them: what each call answers, the errors
the library raises from the fake's error bodies, and the faults a test can inject."""

from __future__ import annotations

import io
import socket
import time
import uuid
from datetime import datetime

import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fake_vm import lab_octet
from gce_lab import GceFleet, GcpLab, gce_fleet, gce_server, gcp_lab  # noqa: F401
from google.api_core import exceptions as gexc
from google.cloud import compute_v1

ZONE = "us-central1-a"


def instance(name: str, *, spot: bool = True, action: str | None = "DELETE", labels: dict[str, str] | None = None,
             ssh_keys: str | None = None, gpus: int = 0, zone: str = ZONE) -> compute_v1.Instance:
    """An instance body as spotctl sends one."""
    inst = compute_v1.Instance(
        name=name, machine_type=f"zones/{zone}/machineTypes/n1-standard-4", labels=labels or {},
        disks=[compute_v1.AttachedDisk(boot=True, auto_delete=True, initialize_params=compute_v1.AttachedDiskInitializeParams(
            source_image="projects/ubuntu-os-cloud/global/images/family/ubuntu-2204-lts", disk_size_gb=50))],
        network_interfaces=[compute_v1.NetworkInterface(access_configs=[compute_v1.AccessConfig(name="External NAT")])],
        service_accounts=[compute_v1.ServiceAccount(email="default", scopes=["https://www.googleapis.com/auth/cloud-platform"])])
    if spot:
        inst.scheduling = compute_v1.Scheduling(provisioning_model="SPOT", instance_termination_action=action or "")
    if ssh_keys:
        inst.metadata = compute_v1.Metadata(items=[compute_v1.Items(key="ssh-keys", value=ssh_keys)])
    if gpus:
        inst.guest_accelerators = [compute_v1.AcceleratorConfig(
            accelerator_count=gpus, accelerator_type=f"zones/{zone}/acceleratorTypes/nvidia-tesla-t4")]
    return inst


def insert(lab: GcpLab, body: compute_v1.Instance, zone: str = ZONE, request_id: str | None = None) -> compute_v1.Operation:
    """insert_unary, then wait for its operation (spotctl's own sequence)."""
    op = lab.client("InstancesClient").insert_unary(request=compute_v1.InsertInstanceRequest(
        project=lab.project, zone=zone, instance_resource=body, request_id=request_id or str(uuid.uuid4())))
    return lab.client("ZoneOperationsClient").wait(project=lab.project, zone=zone, operation=op.name)


def get(lab: GcpLab, name: str, zone: str = ZONE) -> compute_v1.Instance:
    return lab.client("InstancesClient").get(project=lab.project, zone=zone, instance=name)


def delete(lab: GcpLab, name: str, zone: str = ZONE) -> compute_v1.Operation:
    return lab.client("InstancesClient").delete_unary(request=compute_v1.DeleteInstanceRequest(
        project=lab.project, zone=zone, instance=name, request_id=str(uuid.uuid4())))


def listed(lab: GcpLab, zone: str, flt: str, **kw: int) -> list[str]:
    """Names of the zone's instances matching `flt` (every page)."""
    request = compute_v1.ListInstancesRequest(project=lab.project, zone=zone, filter=flt, **kw)
    return [i.name for i in lab.client("InstancesClient").list(request=request)]


def operations(lab: GcpLab, flt: str, zone: str = ZONE) -> list[compute_v1.Operation]:
    request = compute_v1.ListZoneOperationsRequest(project=lab.project, zone=zone, filter=flt)
    return list(lab.client("ZoneOperationsClient").list(request=request))


def reason(exc: gexc.GoogleAPICallError) -> str:
    return exc.errors[0]["reason"]


def test_insert_get_and_echo(gcp_lab: GcpLab) -> None:
    op = insert(gcp_lab, instance("job-1", labels={"spotctl-cluster": "spotctl-3-1"}, ssh_keys="root:ssh-ed25519 AAAA x"))
    assert op.status == compute_v1.Operation.Status.DONE and op.operation_type == "insert" and not op.error.errors
    assert op.target_link.endswith(f"/projects/spotctl-lab/zones/{ZONE}/instances/job-1")
    got = get(gcp_lab, "job-1")
    assert got.status == "RUNNING" and got.id == op.target_id and got.id > 2**53  # decimal strings, parsed exactly
    assert got.zone.endswith(f"/zones/{ZONE}") and got.self_link.endswith("/instances/job-1")
    assert got.machine_type.endswith(f"/zones/{ZONE}/machineTypes/n1-standard-4")
    assert got.labels == {"spotctl-cluster": "spotctl-3-1"}
    assert got.scheduling.provisioning_model == "SPOT" and got.scheduling.instance_termination_action == "DELETE"
    assert got.metadata.items[0].value == "root:ssh-ed25519 AAAA x" and got.disks[0].boot
    assert got.network_interfaces[0].access_configs[0].nat_i_p.startswith("127.")
    assert datetime.fromisoformat(got.creation_timestamp).tzinfo is not None
    assert delete(gcp_lab, "job-1").operation_type == "delete"
    with pytest.raises(gexc.NotFound) as err:
        get(gcp_lab, "job-1")
    assert reason(err.value) == "notFound" and "job-1" in err.value.message
    with pytest.raises(gexc.NotFound):
        delete(gcp_lab, "job-1")
    private = instance("private")
    private.network_interfaces = [compute_v1.NetworkInterface()]  # no access config: no external IP, as on GCE
    insert(gcp_lab, private)
    assert not get(gcp_lab, "private").network_interfaces[0].access_configs
    delete(gcp_lab, "private")


def test_request_id_is_idempotent_and_names_conflict(gcp_lab: GcpLab) -> None:
    rid = str(uuid.uuid4())
    first, again = insert(gcp_lab, instance("job-2"), request_id=rid), insert(gcp_lab, instance("job-2"), request_id=rid)
    assert first.name == again.name and len(gcp_lab.fake.instances()) == 1
    with pytest.raises(gexc.Conflict) as err:
        insert(gcp_lab, instance("job-2"))
    assert reason(err.value) == "alreadyExists" and "already exists" in err.value.message
    insert(gcp_lab, instance("job-2", zone="us-east1-b"), zone="us-east1-b")  # names are per zone
    delete(gcp_lab, "job-2")
    delete(gcp_lab, "job-2", "us-east1-b")


def test_bad_requests_are_refused(gcp_lab: GcpLab) -> None:
    for body, zone in ((instance("Job-Upper"), ZONE), (instance("x", labels={"Bad": "v"}), ZONE),
                       (instance("gpu", spot=False, gpus=1), ZONE), (instance("nowhere", zone="us-central1-z"), "us-central1-z")):
        with pytest.raises(gexc.BadRequest) as err:
            insert(gcp_lab, body, zone)
        assert reason(err.value) == "invalid"
    with pytest.raises(gexc.BadRequest):
        insert(gcp_lab, instance("rid"), request_id="not-a-uuid")
    insert(gcp_lab, instance("gpu", gpus=1))  # a Spot VM defaults to onHostMaintenance TERMINATE
    assert get(gcp_lab, "gpu").scheduling.on_host_maintenance == "TERMINATE"
    delete(gcp_lab, "gpu")
    assert gcp_lab.fake.instances(alive_only=False) == []


def test_list_filters_and_paging(gcp_lab: GcpLab) -> None:
    gcp_lab.fake.page_size = 3
    zones = ("us-central1-a", "us-east1-b", "europe-west4-c")
    for n in range(8):
        zone = zones[n % 3]
        insert(gcp_lab, instance(f"c1-{n}", zone=zone, labels={"spotctl-cluster": "c1" if n < 7 else "c2"}), zone)
    gcp_lab.client("InstancesClient").stop_unary(project=gcp_lab.project, zone=ZONE, instance="c1-0")
    instances = gcp_lab.client("InstancesClient")
    in_a = [i.name for i in instances.list(project=gcp_lab.project, zone=ZONE)]
    assert in_a == ["c1-0", "c1-3", "c1-6"]
    flt = '(labels.spotctl-cluster = "c1") AND (status != "TERMINATED")'
    before = gcp_lab.fake.requests_seen
    pager = instances.aggregated_list(request={"project": gcp_lab.project, "filter": flt})
    found = sorted(i.name for _, scoped in pager for i in scoped.instances)
    assert found == ["c1-1", "c1-2", "c1-3", "c1-4", "c1-5", "c1-6"]
    assert gcp_lab.fake.requests_seen - before == 2  # 6 found, pages of 3
    assert listed(gcp_lab, "us-east1-b", 'name = "c1-4"') == ["c1-4"]
    assert listed(gcp_lab, "us-east1-b", "labels.spotctl-cluster:*", max_results=1) == ["c1-1", "c1-4", "c1-7"]
    assert listed(gcp_lab, ZONE, "status = TERMINATED") == ["c1-0"]
    for bad in ('labels.a = "x" OR name = "y"', "name eq c1-.*", 'nosuchfield = "x"', '(name = "x"', "name ="):
        with pytest.raises(gexc.BadRequest):
            listed(gcp_lab, ZONE, bad)
    for n in range(8):
        delete(gcp_lab, f"c1-{n}", zones[n % 3])


def test_stop_preempt_and_host_error(gcp_lab: GcpLab) -> None:
    instances = gcp_lab.client("InstancesClient")
    insert(gcp_lab, instance("keep", action="STOP"))
    insert(gcp_lab, instance("gone", action="DELETE"))
    insert(gcp_lab, instance("default", action=None))
    insert(gcp_lab, instance("standard", spot=False))
    insert(gcp_lab, instance("user-stopped"))
    for name in ("keep", "gone", "standard"):
        instances.simulate_maintenance_event_unary(project=gcp_lab.project, zone=ZONE, instance=name)
    gcp_lab.fake.preempt(ZONE, "default")  # GCE's default action for Spot is STOP
    assert instances.stop_unary(project=gcp_lab.project, zone=ZONE, instance="user-stopped").operation_type == "stop"
    assert get(gcp_lab, "keep").status == "TERMINATED" and get(gcp_lab, "default").status == "TERMINATED"
    assert get(gcp_lab, "standard").status == "RUNNING" and get(gcp_lab, "user-stopped").status == "TERMINATED"
    with pytest.raises(gexc.NotFound):
        get(gcp_lab, "gone")
    preempted = operations(gcp_lab, 'operationType = "compute.instances.preempted"')
    assert sorted(o.target_link.rsplit("/", 1)[1] for o in preempted) == ["default", "gone", "keep"]
    assert all(o.status == compute_v1.Operation.Status.DONE and o.status_message == "Instance was preempted."
               for o in preempted)
    keep_id = get(gcp_lab, "keep").id
    by_target = operations(gcp_lab, f'(operationType = "compute.instances.preempted") AND (targetId = "{keep_id}")')
    assert [o.target_id for o in by_target] == [keep_id]
    assert [o.operation_type for o in operations(gcp_lab, f'targetLink = "{get(gcp_lab, "standard").self_link}"')][-1] == "compute.instances.migrateOnHostMaintenance"
    gcp_lab.fake.host_error(ZONE, "standard")
    assert get(gcp_lab, "standard").status == "TERMINATED"
    assert any(o["operationType"] == "compute.instances.hostError" for o in gcp_lab.fake.operations(ZONE))
    with pytest.raises(gexc.BadRequest):  # a stopped VM is not preempted again
        instances.simulate_maintenance_event_unary(project=gcp_lab.project, zone=ZONE, instance="keep")
    assert gcp_lab.fake.instances() == []
    for name in ("keep", "default", "standard", "user-stopped"):
        delete(gcp_lab, name)


def test_capacity_errors_async_and_quota_sync(gcp_lab: GcpLab) -> None:
    with gcp_lab.fake.fail_inserts(ZONE) as hits:
        op = insert(gcp_lab, instance("stockout"))
    assert hits == [1] and op.status == compute_v1.Operation.Status.DONE
    assert op.error.errors[0].code == "ZONE_RESOURCE_POOL_EXHAUSTED" and "enough resources" in op.error.errors[0].message
    assert gcp_lab.fake.instances(alive_only=False) == []
    with gcp_lab.fake.fail_inserts("us-east1-b", "QUOTA_EXCEEDED", sync=True) as hits:
        with pytest.raises(gexc.Forbidden) as err:
            insert(gcp_lab, instance("quota", zone="us-east1-b"), "us-east1-b")
        insert(gcp_lab, instance("elsewhere"))  # other zones are unaffected
    assert hits == [1] and reason(err.value) == "quotaExceeded"
    assert "Quota 'NVIDIA_T4_GPUS' exceeded. Limit: 0.0 in region us-east1." in err.value.message
    insert(gcp_lab, instance("quota", zone="us-east1-b"), "us-east1-b")  # the name was never taken
    delete(gcp_lab, "quota", "us-east1-b")
    delete(gcp_lab, "elsewhere")


def test_throttling_raises_rate_limit_errors(gcp_lab: GcpLab) -> None:
    gcp_lab.fake.throttle(1)
    with pytest.raises(gexc.TooManyRequests) as err:
        list(gcp_lab.client("InstancesClient").list(project=gcp_lab.project, zone=ZONE))
    assert reason(err.value) == "rateLimitExceeded" and err.value.reason == "RATE_LIMIT_EXCEEDED"
    gcp_lab.fake.throttle(1, status=403)
    with pytest.raises(gexc.Forbidden) as err:
        get(gcp_lab, "x")
    assert reason(err.value) == "rateLimitExceeded"
    with pytest.raises(gexc.NotFound):  # the throttle is spent
        get(gcp_lab, "x")


def test_slow_provisioning_and_operation_wait(gcp_lab: GcpLab) -> None:
    gcp_lab.fake.provisioning_s = 1.0
    op = gcp_lab.client("InstancesClient").insert_unary(project=gcp_lab.project, zone=ZONE, instance_resource=instance("slow"))
    assert op.status != compute_v1.Operation.Status.DONE
    assert get(gcp_lab, "slow").status in ("PROVISIONING", "STAGING")
    ops = gcp_lab.client("ZoneOperationsClient")
    assert ops.get(project=gcp_lab.project, zone=ZONE, operation=op.name).status == compute_v1.Operation.Status.RUNNING
    t0 = time.monotonic()
    assert ops.wait(project=gcp_lab.project, zone=ZONE, operation=op.name).status == compute_v1.Operation.Status.DONE
    assert time.monotonic() - t0 < 1.5 and get(gcp_lab, "slow").status == "RUNNING"
    delete(gcp_lab, "slow")
    with pytest.raises(gexc.NotFound):
        ops.get(project=gcp_lab.project, zone=ZONE, operation="operation-nope")


def test_regions_and_zones(gcp_lab: GcpLab) -> None:
    region = gcp_lab.client("RegionsClient").get(project=gcp_lab.project, region="us-central1")
    assert sorted(z.rsplit("/", 1)[1] for z in region.zones) == ["us-central1-a", "us-central1-b", "us-central1-c",
                                                                  "us-central1-f"]
    with pytest.raises(gexc.NotFound):
        gcp_lab.client("RegionsClient").get(project=gcp_lab.project, region="mars-north1")
    zones = [z.name for z in gcp_lab.client("ZonesClient").list(project=gcp_lab.project)]
    assert len(zones) == 14 and "asia-east1-b" in zones
    with pytest.raises(gexc.NotFound):
        gcp_lab.client("ZonesClient").list(project="someone-elses")


def test_fleet_boots_a_vm_per_instance(gcp_lab: GcpLab, gce_fleet: GceFleet) -> None:
    pem = Ed25519PrivateKey.generate().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                                     serialization.NoEncryption()).decode()
    key = paramiko.Ed25519Key.from_private_key(io.StringIO(pem))
    line = f"root:ssh-ed25519 {key.get_base64()} lab\nspotctl:ssh-ed25519 AAAAother other"
    insert(gcp_lab, instance("vm-1", action="STOP", ssh_keys=line))
    address = get(gcp_lab, "vm-1").network_interfaces[0].access_configs[0].nat_i_p
    vm = gce_fleet.vm("vm-1")
    assert address == vm.address and address.startswith(f"127.{lab_octet()}.15") and gce_fleet.running() == ["vm-1"]
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect(address, username="root", pkey=key, timeout=5, allow_agent=False, look_for_keys=False)
    _, out, _ = client.exec_command("echo hello from $(hostname -I 2>/dev/null || echo vm)")
    assert out.read().decode().startswith("hello")
    client.close()
    gce_fleet.notice("vm-1", 0.2)
    assert getattr(vm, "gce_preempted", True)  # the VM's metadata says so, where FakeVM serves it
    deadline = time.monotonic() + 5
    while get(gcp_lab, "vm-1").status != "TERMINATED" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert get(gcp_lab, "vm-1").status == "TERMINATED" and not vm.running and gce_fleet.running() == []
    with pytest.raises(OSError):
        socket.create_connection((address, 22), timeout=1).close()
    delete(gcp_lab, "vm-1")
