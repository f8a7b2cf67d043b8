"""On-demand prices from the clouds' catalogs, for `status`'s ON-DEMAND and SAVED columns
(the arithmetic is policy/costs.py's). Here, beside the drivers it asks, not in catalog/: the
drivers read catalog/, so the catalog asking them back would close a circle."""

from __future__ import annotations

from collections.abc import Iterable

from spotctl.config import Settings
from spotctl.policy import PriceKey


def ondemand_prices(clouds: Iterable[str], settings: Settings) -> dict[PriceKey, float]:
    """The on-demand prices of the clouds' catalogs: for AWS and GCP the one refreshed into the
    state dir, else the shipped CSV (no API call, and no cloud SDK imported), the local cloud's config.yaml (a cloud with no shipped
    catalog is asked for its offerings). A cloud whose catalog cannot be read is left out
    (its attempts then show no on-demand equivalent) rather than failing `status`."""
    from spotctl.catalog.csv_offerings import has_catalog, load_offerings
    from spotctl.clouds.base import CloudError
    from spotctl.clouds.registry import get_cloud

    prices: dict[PriceKey, float] = {}
    for cloud in sorted(set(clouds)):
        try:
            offers = load_offerings(cloud, settings.home) if has_catalog(cloud) else get_cloud(cloud, settings).offerings()
        except (CloudError, OSError, ValueError):
            continue
        prices.update({(o.cloud, o.region, o.zone, o.instance_type): o.ondemand_price
                       for o in offers if o.ondemand_price is not None})
    return prices
