"""AWS's own prices for `spotctl catalog refresh`: on-demand from the Price List query API
(boto3 `pricing`, get_products; served from us-east-1), spot from EC2's spot price history.

Only the instance types and regions of spotctl's catalog are asked about: one get_products per
type (its filters name Linux, shared tenancy, no pre-installed software, capacity "Used": the
plain on-demand price; every region answers at once), one describe_spot_price_history per
region (aws_catalog's paginated, bounded reader). Every call goes through aws_clients (time-outs,
botocore's few retries) and call_retry.retried (THROTTLED and UNAVAILABLE asked again, a few
times, with a growing pause: a refresh is a command a person waits for, not a job that waits forever).
Failures raise CloudError; the caller keeps the last good catalog.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from spotctl.clouds.aws_catalog import fetch_spot_prices
from spotctl.clouds.aws_clients import aws_client
from spotctl.clouds.aws_errors import AWS_ERRORS, to_cloud_error
from spotctl.clouds.base import CloudError
from spotctl.clouds.call_retry import retried
from spotctl.config import Settings
from spotctl.models import ErrorKind, ErrorScope

__all__ = ["PRICING_REGION", "ondemand_prices", "spot_prices_now"]

PRICING_REGION = "us-east-1"
"""The Price List query API answers from us-east-1 (and a few others) for every region."""
MAX_PAGES = 20
"""get_products pages per instance type (100 products each): a type has a few dozen."""
PLAIN_LINUX = {"operatingSystem": "Linux", "tenancy": "Shared", "preInstalledSw": "NA", "capacitystatus": "Used",
               "licenseModel": "No License required", "locationType": "AWS Region"}
"""The attributes of the price a spotctl VM pays (Ubuntu on a shared host, no reservation, in
the region itself: a Local Zone's product carries its parent region's code at another price)."""

def _pricing(settings: Settings) -> Any:
    endpoint = settings.aws.pricing_endpoint_url or settings.aws.endpoint_url
    return aws_client(settings, "pricing", PRICING_REGION, endpoint_url=endpoint)


def _hourly_usd(item: dict[str, Any]) -> float | None:
    """The on-demand USD/hour of one Price List product, None when it has no hourly price."""
    for term in (item.get("terms", {}).get("OnDemand") or {}).values():
        for dim in (term.get("priceDimensions") or {}).values():
            if str(dim.get("unit", "")).lower() in ("hrs", "hours", "hour") and "USD" in dim.get("pricePerUnit", {}):
                price = float(dim["pricePerUnit"]["USD"])
                if price > 0:
                    return price
    return None


def _type_prices(client: Any, instance_type: str) -> dict[str, float]:
    """{region: on-demand USD/hour} of one instance type."""
    filters = [{"Type": "TERM_MATCH", "Field": field, "Value": value}
               for field, value in {**PLAIN_LINUX, "instanceType": instance_type}.items()]
    out: dict[str, float] = {}
    token: str | None = None
    for _ in range(MAX_PAGES):
        params: dict[str, Any] = {"ServiceCode": "AmazonEC2", "Filters": filters, "MaxResults": 100}
        if token:
            params["NextToken"] = token
        page = client.get_products(**params)
        for raw in page.get("PriceList", []):
            item = json.loads(raw) if isinstance(raw, str) else raw
            attrs = item.get("product", {}).get("attributes", {})
            region = attrs.get("regionCode")
            price = _hourly_usd(item)
            if region and price is not None and attrs.get("instanceType") == instance_type:
                out[region] = price
        token = page.get("NextToken")
        if not token:
            break
    return out


def ondemand_prices(settings: Settings, types: list[str],
                    progress: Callable[[str], None]) -> dict[tuple[str, str], float]:
    """{(region, instance_type): on-demand USD/hour} from the Price List, for `types`."""
    client = _pricing(settings)
    out: dict[tuple[str, str], float] = {}
    for n, instance_type in enumerate(types, start=1):
        found = retried(lambda t=instance_type: _type_prices(client, t),  # type: ignore[misc]
                        f"price list of {instance_type}", AWS_ERRORS, to_cloud_error)
        out.update({(region, instance_type): price for region, price in found.items()})
        progress(f"aws: on-demand prices {n}/{len(types)} types ({instance_type}: {len(found)} regions)")
    if not out:
        raise CloudError("aws: the Price List answered no on-demand price for any of spotctl's instance types",
                         kind=ErrorKind.UNAVAILABLE, scope=ErrorScope.CLOUD)
    return out


def spot_prices_now(settings: Settings, region: str, types: list[str]) -> dict[tuple[str, str], float]:
    """{(zone, instance_type): spot USD/hour} of `region` now (the newest of each)."""
    ec2 = aws_client(settings, "ec2", region)
    return retried(lambda: fetch_spot_prices(ec2, types), f"spot price history in {region}", AWS_ERRORS,
                   to_cloud_error)

