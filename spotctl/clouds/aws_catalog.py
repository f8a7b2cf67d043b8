"""What AWS sells now and what to boot: live spot prices and the VM image, cached per region.

The static catalog (types, zones, list prices) is `catalog/data/aws.csv`, read by
catalog/csv_offerings.py; this module asks EC2 for what changes:
- spot prices: describe_spot_price_history (Linux/UNIX, from now), paginated and bounded,
  cached 5 minutes per (endpoint, region), thread-safe;
- the image: settings.aws.image_id, else the newest Ubuntu 22.04 amd64 image of Canonical,
  cached per (endpoint, region, setting) for the process.
Functions take a boto3 EC2 client and raise botocore errors (the caller maps them), or
CloudError(INVALID, REGION) when the region has no usable image.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from spotctl.clouds.aws_errors import error_code
from spotctl.clouds.base import CloudError
from spotctl.models import ErrorKind, ErrorScope

SPOT_PRICE_TTL_S = 300.0
SPOT_PRICE_MAX_PAGES = 20
UBUNTU_OWNER = "099720109477"  # Canonical
UBUNTU_NAME = "ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-*"

_lock = threading.Lock()
_spot_cache: dict[tuple[str | None, str], tuple[float, dict[tuple[str, str], float]]] = {}
_image_cache: dict[tuple[str | None, str, str | None], tuple[str, str | None]] = {}


def forget_caches() -> None:
    """Drop cached spot prices and images (tests that reset the endpoint)."""
    with _lock:
        _spot_cache.clear()
        _image_cache.clear()


def spot_prices(ec2: Any, endpoint: str | None, region: str, types: list[str]) -> dict[tuple[str, str], float]:
    """{(zone, instance_type): USD/hour} of the region now (only `types`, if given)."""
    key = (endpoint, region)
    with _lock:
        hit = _spot_cache.get(key)
        if hit is not None and time.monotonic() - hit[0] < SPOT_PRICE_TTL_S:
            return dict(hit[1])
    prices = fetch_spot_prices(ec2, types)
    with _lock:
        _spot_cache[key] = (time.monotonic(), prices)
    return dict(prices)


def fetch_spot_prices(ec2: Any, types: list[str]) -> dict[tuple[str, str], float]:
    """{(zone, instance_type): the newest spot USD/hour}, uncached (`catalog refresh` wants now)."""
    params: dict[str, Any] = {"ProductDescriptions": ["Linux/UNIX"], "StartTime": datetime.now(UTC)}
    if types:
        params["InstanceTypes"] = types
    newest: dict[tuple[str, str], tuple[datetime, float]] = {}
    pages = ec2.get_paginator("describe_spot_price_history").paginate(
        **params, PaginationConfig={"MaxItems": SPOT_PRICE_MAX_PAGES * 1000, "PageSize": 1000})
    for n, page in enumerate(pages):
        for row in page.get("SpotPriceHistory", []):
            k = (row["AvailabilityZone"], row["InstanceType"])
            stamp = row.get("Timestamp") or datetime.min.replace(tzinfo=UTC)
            if k not in newest or stamp > newest[k][0]:
                newest[k] = (stamp, float(row["SpotPrice"]))
        if n + 1 >= SPOT_PRICE_MAX_PAGES:
            break
    return {k: price for k, (_, price) in newest.items()}


def find_image(ec2: Any, endpoint: str | None, region: str, wanted: str | None) -> tuple[str, str | None]:
    """(AMI id, root device name) to boot in the region: `wanted` (settings.aws.image_id)
    if the region has it, else the newest Ubuntu 22.04 image of Canonical."""
    key = (endpoint, region, wanted)
    with _lock:
        if key in _image_cache:
            return _image_cache[key]
    if wanted:
        try:
            images = ec2.describe_images(ImageIds=[wanted]).get("Images", [])
        except ClientError as exc:
            if not error_code(exc).startswith("InvalidAMIID."):
                raise
            images = []
        if not images:
            raise CloudError(f"aws {region}: image {wanted} (aws.image_id) not found in this region",
                             kind=ErrorKind.INVALID, scope=ErrorScope.REGION)
    else:
        images = ec2.describe_images(Owners=[UBUNTU_OWNER], Filters=[
            {"Name": "name", "Values": [UBUNTU_NAME]}, {"Name": "state", "Values": ["available"]},
            {"Name": "architecture", "Values": ["x86_64"]}]).get("Images", [])
        if not images:
            raise CloudError(f"aws {region}: no Ubuntu 22.04 image ({UBUNTU_NAME}) of owner {UBUNTU_OWNER}; "
                             "set aws.image_id", kind=ErrorKind.INVALID, scope=ErrorScope.REGION)
    newest = max(images, key=lambda i: (str(i.get("CreationDate", "")), i.get("Name", "")))
    found = (newest["ImageId"], newest.get("RootDeviceName"))
    with _lock:
        _image_cache[key] = found
    return found
