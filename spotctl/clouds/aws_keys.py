"""SSH access to spotctl's EC2 instances: one key pair per user, one security group per region.

- The user's key is clouds/ssh_key.py's (one for every cloud).
- It is imported into each region as key pair `spotctl-<fingerprint[:8]>` (describe, then
  import; someone else importing it meanwhile is fine).
- Security group `spotctl` in the region's default VPC opens tcp/22 and nothing else.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from botocore.exceptions import ClientError

from spotctl.clouds.aws_errors import error_code
from spotctl.clouds.base import CloudError
from spotctl.clouds.ssh_key import ensure_key, private_key_path
from spotctl.models import ErrorKind, ErrorScope

__all__ = ["SECURITY_GROUP", "ensure_key", "ensure_key_pair", "ensure_security_group", "key_pair_name",
           "private_key_path"]

SECURITY_GROUP = "spotctl"
SSH_PORT = 22


def key_pair_name(public_openssh: str) -> str:
    """`spotctl-<first 8 hex digits of the SHA-256 of the public key blob>`."""
    blob = base64.b64decode(public_openssh.split()[1])
    return f"spotctl-{hashlib.sha256(blob).hexdigest()[:8]}"


def ensure_key_pair(ec2: Any, public_openssh: str) -> str:
    """Import the public key into the client's region unless there; return its name.
    Raises botocore errors (the caller maps them)."""
    name = key_pair_name(public_openssh)
    try:
        ec2.describe_key_pairs(KeyNames=[name])
        return name
    except ClientError as exc:
        if error_code(exc) != "InvalidKeyPair.NotFound":
            raise
    try:
        ec2.import_key_pair(KeyName=name, PublicKeyMaterial=public_openssh.encode())
    except ClientError as exc:
        if error_code(exc) != "InvalidKeyPair.Duplicate":
            raise
    return name


def ensure_security_group(ec2: Any, region: str) -> str:
    """The id of the `spotctl` group of the region's default VPC, made with tcp/22 open if
    missing. Raises CloudError (INVALID, region) when the region has no default VPC."""
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}]).get("Vpcs", [])
    if not vpcs:
        raise CloudError(f"aws {region}: no default VPC (spotctl places instances in the default VPC)",
                         kind=ErrorKind.INVALID, scope=ErrorScope.REGION)
    vpc_id = vpcs[0]["VpcId"]
    group = _find_group(ec2, vpc_id)
    if group is not None and _opens_ssh(group):
        return group["GroupId"]
    if group is None:
        try:
            group_id = ec2.create_security_group(
                GroupName=SECURITY_GROUP, VpcId=vpc_id,
                Description="spotctl: SSH (tcp/22) to spotctl's instances")["GroupId"]
        except ClientError as exc:
            if error_code(exc) != "InvalidGroup.Duplicate":
                raise
            group = _find_group(ec2, vpc_id)
            if group is None:
                raise
            group_id = group["GroupId"]
    else:
        group_id = group["GroupId"]
    try:
        ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=[{
            "IpProtocol": "tcp", "FromPort": SSH_PORT, "ToPort": SSH_PORT,
            "IpRanges": [{"CidrIp": "0.0.0.0/0", "Description": "ssh"}],
        }])
    except ClientError as exc:
        if error_code(exc) != "InvalidPermission.Duplicate":
            raise
    return group_id


def _find_group(ec2: Any, vpc_id: str) -> dict | None:
    groups = ec2.describe_security_groups(Filters=[
        {"Name": "group-name", "Values": [SECURITY_GROUP]},
        {"Name": "vpc-id", "Values": [vpc_id]},
    ]).get("SecurityGroups", [])
    return groups[0] if groups else None


def _opens_ssh(group: dict) -> bool:
    return any(p.get("IpProtocol") == "tcp" and p.get("FromPort") == SSH_PORT and p.get("ToPort") == SSH_PORT
               for p in group.get("IpPermissions", []))
