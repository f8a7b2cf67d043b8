"""GCP's own prices for `spotctl catalog refresh`: the Cloud Billing Catalog API
(google-cloud-billing's CloudCatalogClient, REST transport), Compute Engine's SKUs.

GCE sells a VM by its parts: a machine family's vCPU-hour and GiB-hour ("E2 Instance Core",
"N1 Predefined Instance Ram", usage type OnDemand or Preemptible, the latter being Spot VMs) and
each GPU's hour ("Nvidia Tesla T4 GPU"). A machine type's price in a region is then
  billed vCPUs x core + memory GiB x RAM + GPUs x GPU,
where the shared-core E2 types bill a fraction of their vCPUs (BILLED_VCPUS). SKUs list the
regions they apply to (serviceRegions). A type whose parts are not all found keeps its shipped
price (the refresh says how many); commitments, sole tenancy, custom and premium SKUs are skipped.

Calls: list_services (to find Compute Engine) and list_skus, each with a time-out (CALL_TIMEOUT_S),
the listing asked again on THROTTLED/UNAVAILABLE (call_retry.retried), pages bounded.
With `gcp.billing_endpoint` set (the lab's fake) no credentials are sent.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from spotctl.clouds.base import CloudError
from spotctl.clouds.call_retry import retried
from spotctl.clouds.gcp_clients import CALL_TIMEOUT_S, gcp_credentials
from spotctl.clouds.gcp_errors import gcp_errors, to_cloud_error
from spotctl.config import Settings
from spotctl.models import ErrorKind, ErrorScope, Offering

__all__ = ["COMPUTE_ENGINE", "SkuPrices", "billing_client", "compute_skus", "price_offering"]

COMPUTE_ENGINE = "Compute Engine"
"""The display name of GCE's service in the catalog (its id is services/6F81-5844-456A)."""
MAX_PAGES = 200
"""list_skus pages (5000 SKUs each at most): Compute Engine has a few tens of thousands."""
PAGE_SIZE = 5000
SERIES = {"a2": "A2 Instance", "a3": "A3 Instance", "c2": "Compute optimized", "c3": "C3 Instance",
          "e2": "E2 Instance", "g2": "G2 Instance", "n1": "N1 Predefined Instance", "n2": "N2 Instance",
          "n2d": "N2D AMD Instance", "c2d": "C2D AMD Instance", "t2d": "T2D AMD Instance"}
"""A machine family's words in its core and RAM SKUs' descriptions."""
GPUS = {"T4": "Tesla T4 GPU", "V100": "Tesla V100 GPU", "P100": "Tesla P100 GPU", "P4": "Tesla P4 GPU",
        "K80": "Tesla K80 GPU", "L4": "L4 GPU", "A100": "Tesla A100 GPU", "A100-80GB": "A100 80GB GPU",
        "H100": "H100 80GB GPU"}
"""An accelerator's words in its GPU SKU's description."""
BILLED_VCPUS = {"e2-micro": 0.25, "e2-small": 0.5, "e2-medium": 1.0}
"""Shared-core types: the vCPUs billed (a share of their two)."""
_SKIP = re.compile(r"custom|premium|reserved|sole tenancy|commitment|extended|dws|calendar|flex", re.I)

SkuPrices = dict[tuple[str, str, bool, str], float]
"""(part: "core" | "ram" | "gpu", family or GPU words, spot, region) -> USD per unit-hour."""


def billing_client(settings: Settings) -> Any:
    """A CloudCatalogClient (REST) at Google's endpoint, or the lab's without credentials."""
    from google.api_core.client_options import ClientOptions
    from google.cloud import billing_v1

    endpoint = settings.gcp.billing_endpoint
    if endpoint:
        from google.auth.credentials import AnonymousCredentials

        creds: Any = AnonymousCredentials()
    else:
        creds, _ = gcp_credentials(settings)
    options = ClientOptions(api_endpoint=endpoint) if endpoint else None
    return billing_v1.CloudCatalogClient(credentials=creds, client_options=options, transport="rest")


def _unit_price(sku: Any) -> float | None:
    """USD per unit-hour of a SKU's current price (its first tier), None if not hourly."""
    if not sku.pricing_info:
        return None
    expr = sku.pricing_info[0].pricing_expression
    if expr.usage_unit not in ("h", "GiBy.h") or not expr.tiered_rates:
        return None
    money = expr.tiered_rates[0].unit_price
    return int(money.units) + money.nanos / 1e9


def _part(sku: Any) -> tuple[str, str] | None:
    """(part, family or GPU words) a SKU prices, None for one spotctl has no use for."""
    text = sku.description
    if _SKIP.search(text):
        return None
    group = sku.category.resource_group
    if group == "GPU":
        gpus = [w for w in GPUS.values() if w in text]
        return ("gpu", max(gpus, key=len)) if gpus else None
    for family in sorted(SERIES.values(), key=len, reverse=True):
        if family.lower() in text.lower():
            if group == "RAM" or (group != "CPU" and "Ram" in text):
                return "ram", family
            if group == "CPU" or "Core" in text:
                return "core", family
            return None
    return None


def _sku_prices(skus: Iterable[Any]) -> SkuPrices:
    out: SkuPrices = {}
    for sku in skus:
        category = sku.category
        if category.resource_family != "Compute" or category.usage_type not in ("OnDemand", "Preemptible"):
            continue
        part = _part(sku)
        price = _unit_price(sku)
        if part is None or price is None:
            continue
        for region in sku.service_regions:
            out.setdefault((part[0], part[1], category.usage_type == "Preemptible", region), price)
    return out


def compute_skus(settings: Settings, progress: Callable[[str], None]) -> SkuPrices:
    """Every Compute Engine part price spotctl can use, from the Cloud Billing Catalog."""
    client = billing_client(settings)
    errors = gcp_errors()

    def service_name() -> str:
        for service in client.list_services(timeout=CALL_TIMEOUT_S):
            if service.display_name == COMPUTE_ENGINE:
                return str(service.name)
        raise CloudError(f"gcp: the Cloud Billing Catalog lists no {COMPUTE_ENGINE!r} service",
                         kind=ErrorKind.INVALID, scope=ErrorScope.CLOUD)

    parent = retried(service_name, "Cloud Billing Catalog services", errors, to_cloud_error)

    def skus() -> list[Any]:
        out: list[Any] = []
        pages = client.list_skus(request={"parent": parent, "page_size": PAGE_SIZE}, timeout=CALL_TIMEOUT_S).pages
        for n, page in enumerate(pages, start=1):
            out.extend(page.skus)
            progress(f"gcp: Compute Engine SKUs, page {n} ({len(out)} read)")
            if n >= MAX_PAGES:
                break
        return out

    found = retried(skus, f"Cloud Billing Catalog SKUs of {parent}", errors, to_cloud_error)
    prices = _sku_prices(found)
    if not prices:
        raise CloudError(f"gcp: the Cloud Billing Catalog answered {len(found)} SKUs, none a machine part spotctl prices",
                         kind=ErrorKind.UNAVAILABLE, scope=ErrorScope.CLOUD)
    return prices


def price_offering(o: Offering, prices: SkuPrices, spot: bool) -> float | None:
    """The hourly price of `o` from its parts, None when a part has no price in its region."""
    family = SERIES.get(o.instance_type.split("-")[0])
    if family is None:
        return None
    core = prices.get(("core", family, spot, o.region))
    ram = prices.get(("ram", family, spot, o.region))
    if core is None or ram is None:
        return None
    total = BILLED_VCPUS.get(o.instance_type, o.cpus) * core + o.memory_gb * ram
    for name, count in o.accelerators.items():
        gpu = prices.get(("gpu", GPUS.get(name, ""), spot, o.region))
        if gpu is None:
            return None
        total += count * gpu
    return round(total, 6)
