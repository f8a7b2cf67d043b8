"""The GCP cloud: spot (and on-demand) Compute Engine VMs through google-cloud-compute.

- Catalog: `catalog/data/gcp.csv` (approximate public prices; see its header), or the one
  `spotctl catalog refresh` fetched from the Cloud Billing Catalog into the state dir
  (price_refresh.py). GCP has no live spot price API (Spot prices change at most once a
  month), so `spot_prices` is {} and the catalog's figures rank candidates.
- Ids: an instance is `<zone>/<name>`. GCE names are per zone and its calls want the zone, so
  the id carries it; names are `<cluster>-<rank>`, which also makes a retried insert find
  what the first one made (409 alreadyExists).
- create: one insert per node with a requestId derived from (token, placement, rank), so a
  retried call never makes a second VM (and the fixed names make a second insert a 409);
  the VMs carry the network tag `spotctl`, which gcp_network.py's firewall rule opens to SSH,
  and no service account unless `gcp.service_account` names one (see _service_accounts);
  an old failed operation answered to a new try is retried under a fresh id; before inserting, the cluster's instances that exist
  anywhere (one aggregated list) are taken instead. GCE reports "no capacity" late: the insert
  is accepted and its operation fails seconds later, so create waits a few seconds for the
  operations; an error there removes what the call made and raises NoCapacity for the zone.
  An insert refused at once (a later rank's quota or stock-out) also removes the ranks made
  before it; a throttled or unanswered one keeps them for the retry with the same token.
- States: PROVISIONING/STAGING are PENDING; stopped (TERMINATED), stopping, suspended or
  gone instances are looked up in the zone's operations: `compute.instances.preempted` is a
  spot interruption (PREEMPTED), `compute.instances.hostError` is MAINTENANCE, anything else
  the user's (STOPPED), an unknown name GONE.
- Errors: gcp_errors.py maps HTTP errors and failed operations to CloudErrors.

Every client comes from gcp_clients.compute_client (credentials, project, the lab's
endpoint); every call carries a time-out and no library retry.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from spotctl.catalog import catalog_regions, load_offerings
from spotctl.clouds.base import CloudError, InstanceState, MeteredApiTiming, TaggedInstance
from spotctl.clouds.gcp_clients import (
    CALL_TIMEOUT_S,
    GcpCredentialsMissing,
    compute_client,
    credentials_missing,
    gcp_project,
)
from spotctl.clouds.gcp_errors import classify, gcp_errors, operation_error, to_cloud_error
from spotctl.clouds.gcp_network import TAG, ensure_ssh_firewall
from spotctl.clouds.ssh_key import ensure_key, private_key_path
from spotctl.config import Settings
from spotctl.models import Candidate, ClusterHandle, ErrorKind, ErrorScope, Location, Offering
from spotctl.models.naming import TAG_CLUSTER as LABEL_CLUSTER
from spotctl.models.naming import TAG_JOB as LABEL_JOB
from spotctl.models.naming import TAG_NODE as LABEL_NODE
from spotctl.models.naming import instance_tags
from spotctl.remote.base import Runner

log = logging.getLogger(__name__)

__all__ = ["GcpCloud", "instance_id", "split_id"]

IMAGE = "projects/ubuntu-os-cloud/global/images/family/ubuntu-2204-lts"
BOOT_DISK_GB = 100
CREATE_WAIT_S = 5.0
"""How long create waits for its insert operations (capacity errors come this way) before it
returns the cluster as pending; create is one cloud call (activities/cloud_calls.py: 10 s)."""
STALE_FAILURE_S = 30.0
"""A failed insert operation older than this, answered to an insert, is an earlier try's."""
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
"""The scope a configured service account gets; its IAM roles are what limit it."""
PREEMPTED_OP = "compute.instances.preempted"
HOST_ERROR_OP = "compute.instances.hostError"
PENDING = {"PROVISIONING", "STAGING", "PENDING"}
GPU_TYPES = {"T4": "nvidia-tesla-t4", "V100": "nvidia-tesla-v100", "P100": "nvidia-tesla-p100",
             "P4": "nvidia-tesla-p4", "K80": "nvidia-tesla-k80"}
"""GPUs attached to N1 machine types (A2, A3 and G2 types come with theirs)."""
_ASKED_AGAIN = (ErrorKind.THROTTLED, ErrorKind.UNAVAILABLE)
"""Insert errors after which the same create is asked again with the same token (see
policy/failures.py): the ranks already made are kept for it; any other error ends the
create, which must then leave nothing (a partial cluster would be billed through a wait)."""
NO_RETRY = None
"""Passed as `retry=`: spotctl's policy retries, with the error in hand."""

_LABEL_BAD = re.compile(r"[^a-z0-9_-]")


def instance_id(zone: str, name: str) -> str:
    return f"{zone}/{name}"


def split_id(iid: str) -> tuple[str, str]:
    """(zone, name) of an id; raises CloudError for an id that is not spotctl's GCP form."""
    zone, sep, name = iid.partition("/")
    if not sep or not zone or not name:
        raise CloudError(f"gcp: {iid!r} is not a zone/name instance id", kind=ErrorKind.INVALID,
                         scope=ErrorScope.REQUEST)
    return zone, name


def by_zone(instance_ids: list[str]) -> dict[str, list[str]]:
    """{zone: [names]} of ids (duplicates once): GCE's calls are per zone."""
    out: dict[str, list[str]] = defaultdict(list)
    for iid in dict.fromkeys(instance_ids):
        zone, name = split_id(iid)
        out[zone].append(name)
    return out


def region_of(zone: str) -> str:
    return zone.rsplit("-", 1)[0]


def label_value(text: str) -> str:
    """A GCE label value (lowercase letters, digits, - and _; at most 63)."""
    return _LABEL_BAD.sub("-", text.lower())[:63]


def cluster_filter(cluster_name: str) -> str:
    """The list filter of a cluster's instances (by its label)."""
    return f'labels.{LABEL_CLUSTER} = "{label_value(cluster_name)}"'


def node_name(cluster_name: str, rank: int) -> str:
    """A GCE instance name: starts with a letter, lowercase, at most 63 characters."""
    base = label_value(cluster_name).replace("_", "-").strip("-") or "spotctl"
    if not base[0].isalpha():
        base = "s-" + base
    suffix = f"-{rank}"
    return base[:63 - len(suffix)] + suffix


def request_id(*parts: object) -> str:
    """GCE's requestId (a UUID): the same parts always give the same one."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "spotctl:" + "|".join(str(p) for p in parts)))


def _tail(url: str) -> str:
    return url.rsplit("/", 1)[-1] if url else ""


def _nat_ip(inst: Any) -> str:
    for nic in inst.network_interfaces:
        for ac in nic.access_configs:
            if ac.nat_i_p:
                return ac.nat_i_p
        if nic.network_i_p:
            return nic.network_i_p
    return ""


@contextmanager
def _mapped(where: str) -> Iterator[None]:
    """Turn google-cloud failures into CloudErrors saying what and where."""
    try:
        yield
    except GcpCredentialsMissing as exc:
        raise CloudError(f"gcp {where}: {exc}", kind=ErrorKind.INVALID, scope=ErrorScope.CLOUD) from exc
    except gcp_errors() as exc:
        raise to_cloud_error(exc, where) from exc


class GcpCloud(MeteredApiTiming):
    """Implements the Cloud protocol on Compute Engine. Construction does no I/O."""

    name = "gcp"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @property
    def node_env(self) -> dict[str, str]:
        """The node agent watches GCE's metadata for `instance/preempted`, and makes MOUNT of
        GCS buckets with the configured mounter."""
        return {"SPOTCTL_METADATA_URL": "http://metadata.google.internal", "SPOTCTL_METADATA_KIND": "gcp",
                "SPOTCTL_MOUNTER": self.settings.gcp.mounter}

    # -- where -----------------------------------------------------------------------------

    def regions(self) -> list[str]:
        return list(self.settings.gcp.regions or catalog_regions(self.name))

    def _client(self, kind: str) -> Any:
        return compute_client(self.settings, kind)

    def _project(self) -> str:
        return gcp_project(self.settings)

    # -- catalog and prices ----------------------------------------------------------------

    def offerings(self) -> list[Offering]:
        regions = set(self.regions())
        return [o for o in load_offerings(self.name, self.settings.home) if o.region in regions]

    def spot_prices(self, region: str) -> dict[tuple[str, str], float]:
        return {}  # no live price API: the catalog's Spot prices stand

    # -- usable? ---------------------------------------------------------------------------

    def check(self, verify: bool = False) -> str | None:
        """Credentials found (local facts only), and with `verify` accepted by one call."""
        try:
            missing = credentials_missing(self.settings)
            if missing or not verify:
                return missing
            region = self.regions()[0]
            self._client("RegionsClient").get(project=self._project(), region=region, timeout=CALL_TIMEOUT_S,
                                              retry=NO_RETRY)
            return None
        except GcpCredentialsMissing as exc:
            return str(exc)
        except Exception as exc:  # noqa: BLE001 - check never raises
            kind, scope = classify(exc)
            if kind == ErrorKind.INVALID and scope == ErrorScope.CLOUD:
                return f"GCP refused the credentials ({type(exc).__name__}: {exc})"
            return f"GCP cannot be used ({type(exc).__name__}: {exc})"

    # -- listing ---------------------------------------------------------------------------

    def _aggregated(self, filter_: str) -> list[Any]:
        """Every instance of the project matching the filter, in every zone (one paged call)."""
        pages = self._client("InstancesClient").aggregated_list(
            request={"project": self._project(), "filter": filter_},
            timeout=CALL_TIMEOUT_S, retry=NO_RETRY)
        out = []
        for _, scoped in pages:
            out.extend(scoped.instances)
        return out

    def _zone_instances(self, zone: str, filter_: str) -> list[Any]:
        return list(self._client("InstancesClient").list(
            request={"project": self._project(), "zone": zone, "filter": filter_}, timeout=CALL_TIMEOUT_S,
            retry=NO_RETRY))

    def _cluster_instances(self, cluster_name: str) -> list[Any]:
        """The cluster's instances anywhere that are not being deleted, in rank order."""
        found = self._aggregated(cluster_filter(cluster_name))
        return sorted(found, key=lambda i: int(i.labels.get(LABEL_NODE, "0") or 0))

    def _operations(self, zone: str, op_type: str) -> set[str]:
        """Names of the zone's instances that an operation of `op_type` targeted."""
        ops = self._client("ZoneOperationsClient").list(
            request={"project": self._project(), "zone": zone, "filter": f'operationType = "{op_type}"'},
            timeout=CALL_TIMEOUT_S, retry=NO_RETRY)
        return {_tail(op.target_link) for op in ops}

    # -- create ----------------------------------------------------------------------------

    def create(self, cluster_name: str, candidate: Candidate, num_nodes: int, token: str) -> ClusterHandle:
        where = f"create {cluster_name} in {candidate.zone}"
        with _mapped(where):
            existing = self._cluster_instances(cluster_name)
            zones = {_tail(i.zone) for i in existing}
            if existing and len(zones) == 1 and len(existing) >= num_nodes:
                log.info("gcp: %s already has %d instance(s) in %s", cluster_name, len(existing), zones)
                return self._handle(cluster_name, _tail(existing[0].zone), existing, candidate)
            zone = zones.pop() if len(zones) == 1 else candidate.zone
            have = {i.name for i in existing}
            _, public_key = ensure_key(self.settings.ssh_dir)
            ensure_ssh_firewall(self._client("FirewallsClient"), self._project(), self.settings.gcp.compute_endpoint,
                                CALL_TIMEOUT_S)
            client = self._client("InstancesClient")
            ops = []
            inserted: list[str] = []
            for rank in range(num_nodes):
                name = node_name(cluster_name, rank)
                if name in have:
                    continue
                body = self._instance_body(cluster_name, name, rank, candidate, zone, public_key)
                rid = request_id(token, zone, candidate.instance_type, candidate.use_spot, rank)
                try:
                    op = self._insert(client, zone, body, rid)
                    if _stale_failure(op):  # GCE answered an old try's failure: ask again, anew
                        op = self._insert(client, zone, body, request_id(rid, op.name))
                except Exception as exc:
                    if _already_exists(exc):
                        continue
                    if classify(exc)[0] not in _ASKED_AGAIN:  # refused: the ranks made before go too
                        self._delete_cluster_in(zone, cluster_name, also=sorted(have) + inserted)
                    raise
                inserted.append(name)
                ops.append(op)
            self._wait_inserts(zone, ops, cluster_name, where)
            made = self._zone_instances(zone, cluster_filter(cluster_name))
        made.sort(key=lambda i: int(i.labels.get(LABEL_NODE, "0") or 0))
        if len(made) < num_nodes:  # accepted but not listed yet: the names are known
            names = [node_name(cluster_name, r) for r in range(num_nodes)]
            return self._handle_from_names(cluster_name, zone, names, candidate)
        return self._handle(cluster_name, zone, made, candidate)

    def _insert(self, client: Any, zone: str, body: dict[str, Any], rid: str) -> Any:
        return client.insert_unary(request={"project": self._project(), "zone": zone, "instance_resource": body,
                                            "request_id": rid}, timeout=CALL_TIMEOUT_S, retry=NO_RETRY)

    def _wait_inserts(self, zone: str, ops: list[Any], cluster_name: str, where: str) -> None:
        """Wait (briefly) for the insert operations; on a failed one, delete what this
        cluster has in the zone and raise its error (a failed create leaves nothing)."""
        ops_client = self._client("ZoneOperationsClient")
        deadline = time.monotonic() + CREATE_WAIT_S
        pending = list(ops)
        while pending:
            still = []
            for op in pending:
                if op.status.name != "DONE":
                    op = ops_client.get(project=self._project(), zone=zone, operation=op.name,
                                        timeout=CALL_TIMEOUT_S, retry=NO_RETRY)
                if op.status.name != "DONE":
                    still.append(op)
                elif op.error and op.error.errors:
                    error = operation_error(op.error.errors, where)
                    self._delete_cluster_in(zone, cluster_name)
                    raise error
            pending = still
            if not pending or time.monotonic() >= deadline:
                return
            time.sleep(0.5)

    def _delete_cluster_in(self, zone: str, cluster_name: str, also: list[str] | None = None) -> None:
        """Delete the cluster's instances in the zone: those listed, and the names in `also`
        (accepted inserts a list may not show yet; a gone name is a no-op)."""
        names = [i.name for i in self._zone_instances(zone, cluster_filter(cluster_name))]
        self._delete(zone, list(dict.fromkeys(names + (also or []))))

    def _instance_body(self, cluster_name: str, name: str, rank: int, cand: Candidate, zone: str,
                       public_key: str) -> dict[str, Any]:
        labels = {**instance_tags(cluster_name), LABEL_CLUSTER: label_value(cluster_name), LABEL_NODE: str(rank)}
        scheduling: dict[str, Any] = {"on_host_maintenance": "TERMINATE", "automatic_restart": False}
        if cand.use_spot:
            scheduling.update(provisioning_model="SPOT",
                              instance_termination_action=self.settings.gcp.termination_action.upper())
        body: dict[str, Any] = {
            "name": name,
            "machine_type": f"zones/{zone}/machineTypes/{cand.instance_type}",
            "labels": labels,
            "scheduling": scheduling,
            "disks": [{"boot": True, "auto_delete": True, "initialize_params": {
                "source_image": IMAGE, "disk_size_gb": BOOT_DISK_GB,
                "disk_type": f"zones/{zone}/diskTypes/pd-balanced", "labels": labels}}],
            "network_interfaces": [{"network": "global/networks/default",
                                    "access_configs": [{"name": "External NAT", "type_": "ONE_TO_ONE_NAT"}]}],
            "metadata": {"items": [{"key": "ssh-keys", "value": f"{self.settings.gcp.ssh_user}:{public_key}"}]},
            "service_accounts": self._service_accounts(),
            "tags": {"items": [TAG]},
        }
        if cand.instance_type.startswith("n1-"):
            body["guest_accelerators"] = [
                {"accelerator_type": f"zones/{zone}/acceleratorTypes/{GPU_TYPES.get(acc, acc.lower())}",
                 "accelerator_count": count}
                for acc, count in cand.accelerators.items()]
        return body

    def _service_accounts(self) -> list[dict[str, Any]]:
        """None unless `gcp.service_account` names one: a VM without an identity gives a job's
        program nothing through the metadata server (never the project's default account with
        cloud-platform scope); its bucket sync uses the worker's downscoped token instead."""
        email = self.settings.gcp.service_account
        return [{"email": email, "scopes": [CLOUD_PLATFORM]}] if email else []

    def _handle(self, cluster_name: str, zone: str, instances: list[Any], cand: Candidate) -> ClusterHandle:
        first = instances[0]
        return ClusterHandle(
            cluster_name=cluster_name, cloud=self.name, region=region_of(zone), zone=zone,
            instance_type=_tail(first.machine_type) or cand.instance_type,
            use_spot=first.scheduling.provisioning_model == "SPOT",
            instance_ids=[instance_id(zone, i.name) for i in instances],
            node_ips=[_nat_ip(i) for i in instances], price=cand.price)

    def _handle_from_names(self, cluster_name: str, zone: str, names: list[str], cand: Candidate) -> ClusterHandle:
        return ClusterHandle(
            cluster_name=cluster_name, cloud=self.name, region=region_of(zone), zone=zone,
            instance_type=cand.instance_type, use_spot=cand.use_spot,
            instance_ids=[instance_id(zone, n) for n in names], node_ips=["" for _ in names], price=cand.price)

    # -- existing instances ----------------------------------------------------------------

    def find_cluster(self, cluster_name: str, at: Location | None = None) -> list[str]:
        with _mapped(f"find {cluster_name}"):
            found = self._cluster_instances(cluster_name)
        ids = [instance_id(_tail(i.zone), i.name) for i in found]
        if at is not None and at.region:
            ids = [i for i in ids if region_of(split_id(i)[0]) == at.region]
        return ids

    def job_instances(self, job_id: int, at: Location | None = None) -> list[TaggedInstance]:
        """One aggregated list, by the job's label, cut to the region of `at`."""
        with _mapped(f"find job {job_id}"):
            found = self._aggregated(f'labels.{LABEL_JOB} = "{job_id}"')
        regions = {at.region} if at is not None and at.region else set(self.regions())
        return [t for t in map(_tagged, found) if t.region in regions]

    def instance_states(self, instance_ids: list[str], at: Location | None = None) -> dict[str, InstanceState]:
        states: dict[str, InstanceState] = {}
        for zone, names in by_zone(instance_ids).items():
            with _mapped(f"instance states in {zone}"):
                states.update(self._zone_states(zone, names))
        return {iid: states[iid] for iid in instance_ids}

    def _zone_states(self, zone: str, names: list[str]) -> dict[str, InstanceState]:
        listed = {i.name: i.status for i in self._zone_instances(zone, f"labels.{LABEL_CLUSTER}:*")}
        out: dict[str, InstanceState] = {}
        dead: list[str] = []
        for name in names:
            status = listed.get(name)
            if status in PENDING:
                out[instance_id(zone, name)] = InstanceState.PENDING
            elif status == "RUNNING":
                out[instance_id(zone, name)] = InstanceState.RUNNING
            else:
                dead.append(name)
        if dead:
            preempted = self._operations(zone, PREEMPTED_OP)
            host_error = self._operations(zone, HOST_ERROR_OP)
            for name in dead:
                if name in preempted:
                    state = InstanceState.PREEMPTED
                elif name in host_error:
                    state = InstanceState.MAINTENANCE
                elif name in listed:
                    state = InstanceState.STOPPED  # GCE's TERMINATED is a stop; a deleted VM is not listed
                else:
                    state = InstanceState.GONE
                out[instance_id(zone, name)] = state
        return out

    def terminate(self, instance_ids: list[str], at: Location | None = None) -> None:
        for zone, names in by_zone(instance_ids).items():
            with _mapped(f"terminate in {zone}"):
                self._delete(zone, names)

    def _delete(self, zone: str, names: list[str]) -> None:
        """Delete the named instances; a gone one is a no-op (404)."""
        client = self._client("InstancesClient")
        for name in names:
            try:
                client.delete_unary(request={
                    "project": self._project(), "zone": zone, "instance": name,
                    "request_id": request_id("delete", zone, name)}, timeout=CALL_TIMEOUT_S, retry=NO_RETRY)
            except Exception as exc:
                if getattr(exc, "code", None) != 404:
                    raise

    def ready_handle(self, handle: ClusterHandle) -> ClusterHandle:
        with _mapped(f"describe {handle.cluster_name} in {handle.zone}"):
            listed = {i.name: i for i in self._zone_instances(
                handle.zone, cluster_filter(handle.cluster_name))}
        ips = []
        for iid in handle.instance_ids:
            inst = listed.get(split_id(iid)[1])
            ips.append(_nat_ip(inst) if inst is not None else "")
        return handle.model_copy(update={"node_ips": ips})

    def tagged_instances(self) -> list[TaggedInstance]:
        regions = set(self.regions())
        with _mapped("tagged instances"):
            found = self._aggregated(f"labels.{LABEL_CLUSTER}:*")
        return [t for t in map(_tagged, found) if t.region in regions]

    # -- nodes -----------------------------------------------------------------------------

    def private_key_path(self) -> Path:
        return private_key_path(self.settings.ssh_dir)

    def runner(self, handle: ClusterHandle, node_rank: int) -> Runner:
        from spotctl.remote.ssh import SSHRunner

        # Pinned per instance (zone and name), not per address: released external IPs are reused.
        pin = handle.instance_ids[node_rank].replace("/", "_")
        return SSHRunner(handle.node_ips[node_rank], user=self.settings.gcp.ssh_user,
                         key_path=str(self.private_key_path()),
                         known_hosts=str(self.settings.ssh_dir / "known_hosts.d" / f"gcp_{pin}"))


def _tagged(inst: Any) -> TaggedInstance:
    zone = _tail(inst.zone)
    status = inst.status
    state = (InstanceState.RUNNING if status == "RUNNING" else
             InstanceState.PENDING if status in PENDING else InstanceState.STOPPED)
    return TaggedInstance(
        id=instance_id(zone, inst.name), cluster_name=inst.labels.get(LABEL_CLUSTER, ""),
        region=region_of(zone), state=state, created_at=_created(inst.creation_timestamp), zone=zone)


def _stale_failure(op: Any) -> bool:
    """Whether an insert's answer is the failed operation of an earlier try with the same
    requestId (GCE answers a known requestId with its first operation, failed or not): a
    retry of a create that found no capacity minutes ago must really ask again."""
    if op.status.name != "DONE" or not (op.error and op.error.errors):
        return False
    try:
        started = datetime.fromisoformat(op.insert_time.replace("Z", "+00:00"))
    except (TypeError, ValueError):
        return False
    return (datetime.now(UTC) - started).total_seconds() > STALE_FAILURE_S


def _already_exists(exc: BaseException) -> bool:
    return getattr(exc, "code", None) == 409


def _created(stamp: str) -> datetime:
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except (TypeError, ValueError):
        return datetime.now(UTC)
