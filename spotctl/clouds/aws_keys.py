"""SSH access to spotctl's EC2 instances: one key pair per user, one security group per region.

- The private key lives in `settings.ssh_dir` (dir 0700, key 0600, OpenSSH format, Ed25519),
  made on first use; two processes racing to make it agree on the first one written.
- It is imported into each region as key pair `spotctl-<fingerprint[:8]>` (describe, then
  import; someone else importing it meanwhile is fine).
- Security group `spotctl` in the region's default VPC opens tcp/22 and nothing else.
"""

from __future__ import annotations

import base64
import hashlib
import threading
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from spotctl.clouds.aws_errors import error_code
from spotctl.clouds.base import CloudError
from spotctl.files import create_once
from spotctl.models import ErrorKind, ErrorScope

KEY_FILE = "spotctl_ed25519"
SECURITY_GROUP = "spotctl"
SSH_PORT = 22

_lock = threading.Lock()


def private_key_path(ssh_dir: Path) -> Path:
    return Path(ssh_dir) / KEY_FILE


def ensure_key(ssh_dir: Path) -> tuple[Path, str]:
    """(private key path, public key in OpenSSH form), making the pair on first use."""
    ssh_dir = Path(ssh_dir)
    path = private_key_path(ssh_dir)
    with _lock:
        ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if ssh_dir.stat().st_mode & 0o077:
            ssh_dir.chmod(0o700)
        if not path.exists():
            _write_new_key(path)
        key = serialization.load_ssh_private_key(path.read_bytes(), password=None)
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    public_text = public.decode() + " spotctl"
    pub_path = path.with_suffix(".pub")
    if not pub_path.exists():
        pub_path.write_text(public_text + "\n")
    return path, public_text


def _write_new_key(path: Path) -> None:
    """Write a fresh key 0600 under a temporary name and link it into place: the first
    process to link wins, a loser reads the winner's key."""
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                            serialization.NoEncryption())
    create_once(path, pem, 0o600)  # of racing workers, one key wins and all use it


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
