"""The AWS cloud: spot (and on-demand) EC2 instances, one region per API call.

- Catalog: `catalog/data/aws.csv` (approximate public prices; see its header), or the one
  `spotctl catalog refresh` fetched into the state dir (price_refresh.py); live spot
  prices from describe_spot_price_history, cached per region for 5 minutes.
- create: one run_instances of `num_nodes` instances (all or nothing), tagged with the
  cluster's name, job, attempt and node rank (launch index order), in the region's default
  VPC with spotctl's key pair and a security group that opens tcp/22 only. Idempotent twice
  over: a ClientToken per (token, placement), and before calling, the cluster's instances
  that already exist in the region are returned instead (moto ignores ClientToken, and a
  create that timed out may have made them).
- States: a stop or termination whose StateReason code starts with `Server.SpotInstance` is
  a preemption; `Server.ScheduledStop`/`Server.InternalError` are the host's (MAINTENANCE);
  anything else is the user's (STOPPED/TERMINATED); an id EC2 no longer knows is GONE.
- Errors: aws_errors.py maps every botocore failure to a CloudError with kind and scope.

Every client comes from aws_clients.aws_client (time-outs, retries, the lab's endpoint).
The constructor does no I/O; caches (AMIs, spot prices) are per process, keyed by endpoint.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from spotctl.catalog import catalog_regions, load_offerings
from spotctl.clouds.aws_catalog import UBUNTU_OWNER, find_image, forget_caches, spot_prices
from spotctl.clouds.aws_clients import aws_client, has_credentials
from spotctl.clouds.aws_errors import AWS_ERRORS, classify, error_code, to_cloud_error
from spotctl.clouds.aws_keys import ensure_key, ensure_key_pair, ensure_security_group, private_key_path
from spotctl.clouds.base import CloudError, InstanceState, MeteredApiTiming, TaggedInstance
from spotctl.config import Settings
from spotctl.models import Candidate, ClusterHandle, ErrorKind, ErrorScope, Location, Offering
from spotctl.models.naming import TAG_CLUSTER, TAG_JOB, TAG_NODE, instance_tags, node_name
from spotctl.remote.base import Runner

log = logging.getLogger(__name__)

__all__ = ["NO_CREDENTIALS", "UBUNTU_OWNER", "AwsCloud", "client_token", "forget_caches"]

ALIVE_STATES = ["pending", "running", "stopping", "stopped", "shutting-down"]
"""Not yet terminated: a preempted (shutting-down) or stopped instance still holds a disk."""
CHUNK = 100
"""Ids per describe/terminate call."""
ROOT_VOLUME_GB = 100
"""Root disk of every instance (Ubuntu's AMIs default to 8 GB, too small for most jobs)."""
SPOT_REASON_PREFIX = "Server.SpotInstance"
HOST_REASONS = ("Server.ScheduledStop", "Server.InternalError", "Server.InsufficientInstanceCapacity")
"""State reasons that mean AWS stopped or terminated the instance for its host's sake."""
NO_CREDENTIALS = ("no AWS credentials found (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE, "
                  "or run `aws configure`)")


def client_token(token: str, candidate: Candidate) -> str:
    """EC2's ClientToken (<= 64 ASCII chars) for one try of `token` at one placement: a retry
    of the same call gets the same instances; another placement of the same attempt does not
    clash with it (EC2 refuses a token reused with other parameters)."""
    digest = hashlib.sha256(
        f"{token}|{candidate.region}|{candidate.zone}|{candidate.instance_type}|{candidate.use_spot}".encode()
    ).hexdigest()[:16]
    readable = re.sub(r"[^A-Za-z0-9_.-]", "_", token)[:47]
    return f"{readable}-{digest}"


@contextmanager
def _mapped(where: str) -> Iterator[None]:
    """Turn boto3 failures into CloudErrors saying what and where."""
    try:
        yield
    except AWS_ERRORS as exc:
        raise to_cloud_error(exc, where) from exc


def _launch_order(inst: dict) -> tuple:
    return (inst.get("LaunchTime") or datetime.min.replace(tzinfo=UTC), inst.get("_reservation", ""),
            inst.get("AmiLaunchIndex", 0), inst["InstanceId"])


def state_of(inst: dict) -> InstanceState:
    """spotctl's state of one described instance."""
    name = inst.get("State", {}).get("Name", "")
    if name == "pending":
        return InstanceState.PENDING
    if name == "running":
        return InstanceState.RUNNING
    reason = (inst.get("StateReason") or {}).get("Code", "")
    if reason.startswith(SPOT_REASON_PREFIX):
        return InstanceState.PREEMPTED
    if reason.startswith(HOST_REASONS):
        return InstanceState.MAINTENANCE
    if name in ("stopping", "stopped"):
        return InstanceState.STOPPED
    return InstanceState.TERMINATED  # shutting-down, terminated


def _tags(inst: dict) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in inst.get("Tags", [])}


class AwsCloud(MeteredApiTiming):
    """Implements the Cloud protocol on EC2. Construction does no I/O."""

    name = "aws"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @property
    def node_env(self) -> dict[str, str]:
        """The node agent watches the instance metadata for the spot interruption notice, and
        makes MOUNT of S3 buckets with the configured mounter."""
        return {"SPOTCTL_METADATA_URL": "http://169.254.169.254", "SPOTCTL_MOUNTER": self.settings.aws.mounter}

    # -- where -----------------------------------------------------------------------------

    def regions(self) -> list[str]:
        return list(self.settings.aws.regions or catalog_regions(self.name))

    def _ec2(self, region: str) -> Any:
        return aws_client(self.settings, "ec2", region)

    def _region_of(self, at: Location | None, call: str) -> str:
        if at is None or not at.region:
            raise CloudError(f"aws {call}: a region is required (EC2 ids are per region)",
                             kind=ErrorKind.INVALID, scope=ErrorScope.REQUEST)
        return at.region

    # -- catalog and prices ----------------------------------------------------------------

    def offerings(self) -> list[Offering]:
        regions = set(self.regions())
        return [o for o in load_offerings(self.name, self.settings.home) if o.region in regions]

    def spot_prices(self, region: str) -> dict[tuple[str, str], float]:
        types = sorted({o.instance_type for o in load_offerings(self.name, self.settings.home) if o.region == region})
        with _mapped(f"spot prices in {region}"):
            return spot_prices(self._ec2(region), self.settings.aws.endpoint_url, region, types)

    # -- usable? ---------------------------------------------------------------------------

    def check(self, verify: bool = False) -> str | None:
        """Credentials found (no call), and with `verify` accepted by one cheap call."""
        try:
            if not has_credentials(self.settings):
                return NO_CREDENTIALS
            if not verify:
                return None
            region = self.regions()[0]
            self._ec2(region).describe_regions(RegionNames=[region])
            return None
        except ClientError as exc:
            kind, scope = classify(exc)
            msg = exc.response.get("Error", {}).get("Message", "")
            if kind == ErrorKind.INVALID and scope == ErrorScope.CLOUD:
                return f"AWS refused the credentials ({error_code(exc)}: {msg})"
            return f"AWS answered with an error ({error_code(exc)}: {msg})"
        except Exception as exc:  # noqa: BLE001 - check never raises
            return f"AWS cannot be used ({type(exc).__name__}: {exc})"

    # -- describe --------------------------------------------------------------------------

    def _describe(self, region: str, filters: list[dict]) -> list[dict]:
        """Every instance matching the filters, flattened, each with its reservation id."""
        out: list[dict] = []
        pages = self._ec2(region).get_paginator("describe_instances").paginate(Filters=filters)
        for page in pages:
            for res in page.get("Reservations", []):
                for inst in res.get("Instances", []):
                    out.append({**inst, "_reservation": res.get("ReservationId", "")})
        return sorted(out, key=_launch_order)

    def _cluster_instances(self, region: str, cluster_name: str) -> list[dict]:
        return self._describe(region, [{"Name": f"tag:{TAG_CLUSTER}", "Values": [cluster_name]},
                                       {"Name": "instance-state-name", "Values": ALIVE_STATES}])

    def _by_ids(self, region: str, ids: list[str]) -> dict[str, dict]:
        """The described instances among `ids` (filtering by id: unknown ids are left out
        instead of failing the whole call with InvalidInstanceID.NotFound)."""
        found: dict[str, dict] = {}
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start:start + CHUNK]
            for inst in self._describe(region, [{"Name": "instance-id", "Values": chunk}]):
                found[inst["InstanceId"]] = inst
        return found

    # -- create ----------------------------------------------------------------------------

    def create(self, cluster_name: str, candidate: Candidate, num_nodes: int, token: str) -> ClusterHandle:
        region, zone = candidate.region, candidate.zone
        with _mapped(f"create {cluster_name} in {zone}"):
            existing = self._cluster_instances(region, cluster_name)
            if existing:
                log.info("aws: %s already has %d instance(s) in %s", cluster_name, len(existing), region)
                return self._handle(cluster_name, region, existing, candidate.price)
            ec2 = self._ec2(region)
            _, public_key = ensure_key(self.settings.ssh_dir)
            key_name = ensure_key_pair(ec2, public_key)
            group_id = ensure_security_group(ec2, region)
            image_id, root_device = find_image(ec2, self.settings.aws.endpoint_url, region,
                                               self.settings.aws.image_id)
            params: dict[str, Any] = {
                "ImageId": image_id,
                "InstanceType": candidate.instance_type,
                "MinCount": num_nodes,
                "MaxCount": num_nodes,
                "KeyName": key_name,
                "SecurityGroupIds": [group_id],
                "Placement": {"AvailabilityZone": zone},
                "ClientToken": client_token(token, candidate),
                "TagSpecifications": [{"ResourceType": kind, "Tags": self._launch_tags(cluster_name)}
                                      for kind in ("instance", "volume")],
            }
            if root_device:
                params["BlockDeviceMappings"] = [{"DeviceName": root_device, "Ebs": {
                    "VolumeSize": ROOT_VOLUME_GB, "VolumeType": "gp3", "DeleteOnTermination": True}}]
            profile = self.settings.aws.instance_profile
            if profile:  # the VM's own role reaches its buckets: no credentials are shipped
                params["IamInstanceProfile"] = {"Arn" if profile.startswith("arn:") else "Name": profile}
            if candidate.use_spot:
                params["InstanceMarketOptions"] = {"MarketType": "spot", "SpotOptions": {
                    "SpotInstanceType": "one-time", "InstanceInterruptionBehavior": "terminate"}}
            made = ec2.run_instances(**params)
        instances = sorted(made.get("Instances", []), key=lambda i: i.get("AmiLaunchIndex", 0))
        self._tag_ranks(region, cluster_name, instances)
        return self._handle(cluster_name, region, instances, candidate.price)

    @staticmethod
    def _launch_tags(cluster_name: str) -> list[dict[str, str]]:
        tags = {"Name": cluster_name, **instance_tags(cluster_name)}
        return [{"Key": k, "Value": v} for k, v in tags.items()]

    def _tag_ranks(self, region: str, cluster_name: str, instances: list[dict]) -> None:
        """Name and rank each node (launch index order). Best effort: the instances exist
        whatever happens here, and the handle's order is what spotctl relies on."""
        ec2 = self._ec2(region)
        for rank, inst in enumerate(instances):
            try:
                ec2.create_tags(Resources=[inst["InstanceId"]], Tags=[
                    {"Key": TAG_NODE, "Value": str(rank)}, {"Key": "Name", "Value": node_name(cluster_name, rank)}])
            except AWS_ERRORS as exc:
                log.warning("aws: could not tag %s of %s with its rank: %s", inst["InstanceId"], cluster_name, exc)

    def _handle(self, cluster_name: str, region: str, instances: list[dict], price: float) -> ClusterHandle:
        first = instances[0]
        return ClusterHandle(
            cluster_name=cluster_name,
            cloud=self.name,
            region=region,
            zone=first.get("Placement", {}).get("AvailabilityZone", ""),
            instance_type=first.get("InstanceType", ""),
            use_spot=first.get("InstanceLifecycle") == "spot",
            instance_ids=[i["InstanceId"] for i in instances],
            node_ips=[i.get("PublicIpAddress") or "" for i in instances],
            price=price,
        )

    # -- existing instances ----------------------------------------------------------------

    def find_cluster(self, cluster_name: str, at: Location | None = None) -> list[str]:
        regions = [at.region] if at is not None and at.region else self.regions()
        ids: list[str] = []
        for region in regions:
            with _mapped(f"find {cluster_name} in {region}"):
                ids += [i["InstanceId"] for i in self._cluster_instances(region, cluster_name)]
        return ids

    def job_instances(self, job_id: int, at: Location | None = None) -> list[TaggedInstance]:
        regions = [at.region] if at is not None and at.region else self.regions()
        out: list[TaggedInstance] = []
        for region in regions:
            with _mapped(f"find job {job_id} in {region}"):
                found = self._describe(region, [{"Name": f"tag:{TAG_JOB}", "Values": [str(job_id)]},
                                                {"Name": "instance-state-name", "Values": ALIVE_STATES}])
            out += [self._tagged(region, inst) for inst in found]
        return out

    def instance_states(self, instance_ids: list[str], at: Location | None = None) -> dict[str, InstanceState]:
        region = self._region_of(at, "instance_states")
        with _mapped(f"instance states in {region}"):
            found = self._by_ids(region, list(dict.fromkeys(instance_ids)))
        return {iid: state_of(found[iid]) if iid in found else InstanceState.GONE for iid in instance_ids}

    def terminate(self, instance_ids: list[str], at: Location | None = None) -> None:
        if not instance_ids:
            return
        region = self._region_of(at, "terminate")
        ec2 = self._ec2(region)
        ids = list(dict.fromkeys(instance_ids))
        with _mapped(f"terminate in {region}"):
            for start in range(0, len(ids), CHUNK):
                chunk = ids[start:start + CHUNK]
                try:
                    ec2.terminate_instances(InstanceIds=chunk)
                except ClientError as exc:
                    if not error_code(exc).startswith("InvalidInstanceID."):
                        raise
                    known = [iid for iid, inst in self._by_ids(region, chunk).items()
                             if inst.get("State", {}).get("Name") != "terminated"]
                    if known:  # again without the ids EC2 does not know
                        ec2.terminate_instances(InstanceIds=known)

    def ready_handle(self, handle: ClusterHandle) -> ClusterHandle:
        with _mapped(f"describe {handle.cluster_name} in {handle.region}"):
            found = self._by_ids(handle.region, handle.instance_ids)
        ips = []
        for iid in handle.instance_ids:
            inst = found.get(iid, {})
            ips.append(inst.get("PublicIpAddress") or inst.get("PrivateIpAddress") or "")
        return handle.model_copy(update={"node_ips": ips})

    def tagged_instances(self) -> list[TaggedInstance]:
        out: list[TaggedInstance] = []
        for region in self.regions():
            with _mapped(f"tagged instances in {region}"):
                found = self._describe(region, [{"Name": "tag-key", "Values": [TAG_CLUSTER]},
                                                {"Name": "instance-state-name", "Values": ALIVE_STATES}])
            out += [self._tagged(region, inst) for inst in found]
        return out

    @staticmethod
    def _tagged(region: str, inst: dict) -> TaggedInstance:
        return TaggedInstance(
            id=inst["InstanceId"], cluster_name=_tags(inst).get(TAG_CLUSTER, ""), region=region,
            state=state_of(inst), created_at=inst.get("LaunchTime") or datetime.now(UTC),
            zone=inst.get("Placement", {}).get("AvailabilityZone", ""))

    # -- nodes -----------------------------------------------------------------------------

    def private_key_path(self) -> Path:
        return private_key_path(self.settings.ssh_dir)

    def runner(self, handle: ClusterHandle, node_rank: int) -> Runner:
        from spotctl.remote.ssh import SSHRunner

        # The host key is pinned per instance, not per address: EC2 hands a released public IP
        # to the next instance, whose new key must not look like an attack on the old one.
        iid = handle.instance_ids[node_rank]
        return SSHRunner(handle.node_ips[node_rank], user=self.settings.aws.ssh_user,
                         key_path=str(self.private_key_path()),
                         known_hosts=str(self.settings.ssh_dir / "known_hosts.d" / iid))
