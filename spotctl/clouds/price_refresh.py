"""`spotctl catalog refresh` for one cloud: ask its price APIs (aws_prices, gcp_prices) for the
on-demand and spot prices of every offering of spotctl's shipped catalog, and write the result
as the cloud's refreshed catalog in the state dir (catalog.write_refreshed: whole or not at all).

Any failure (no credentials, throttled past the retries, one region that does not answer, an
absurd price) raises RefreshFailed before anything is written: the last good catalog stays.
An offering the API has no price for keeps its shipped figure, and the refresh says how many did
(in its output and in the file's comments); the API's prices are otherwise taken as they are.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from spotctl.catalog import CatalogError, has_catalog, load_offerings, write_refreshed
from spotctl.clouds.base import CloudError
from spotctl.config import Settings
from spotctl.models import Offering

__all__ = ["REFRESHABLE", "RefreshFailed", "Refreshed", "credentials_problem", "refresh_cloud"]

REFRESHABLE = ("aws", "gcp")
"""The clouds with a shipped catalog and a price API (the local cloud's prices are its config)."""
AWS_SOURCE = "the AWS Price List (on-demand) and EC2 spot price history"
GCP_SOURCE = "the Cloud Billing Catalog (Compute Engine SKUs)"

Progress = Callable[[str], None]


class RefreshFailed(Exception):
    """The refresh of one cloud failed; nothing was written. The message is one line."""


@dataclass(frozen=True)
class Refreshed:
    cloud: str
    path: Path
    priced: int
    """Offerings (zones x types) priced from the API."""
    kept: int
    """Offerings whose price the API did not have: the shipped figure stands."""
    source: str


def credentials_problem(cloud: str, settings: Settings) -> str | None:
    """None when `cloud`'s price APIs can be asked, else why not (local facts only)."""
    if cloud == "aws":
        from spotctl.clouds.aws import NO_CREDENTIALS
        from spotctl.clouds.aws_clients import has_credentials

        return None if has_credentials(settings) else NO_CREDENTIALS
    if cloud == "gcp":
        if settings.gcp.billing_endpoint:
            return None
        from spotctl.clouds.gcp_clients import credentials_missing

        return credentials_missing(settings)
    return f"{cloud} has no price API spotctl reads (refreshable: {', '.join(REFRESHABLE)})"


def _shipped(cloud: str) -> list[Offering]:
    if not has_catalog(cloud):
        raise RefreshFailed(f"{cloud}: no shipped catalog to refresh")
    return load_offerings(cloud)  # the shipped one: what spotctl knows, not what was refreshed


def _aws(settings: Settings, progress: Progress) -> tuple[list[Offering], int]:
    from spotctl.clouds.aws_prices import ondemand_prices, spot_prices_now

    shipped = _shipped("aws")
    types = sorted({o.instance_type for o in shipped})
    ondemand = ondemand_prices(settings, types, progress)
    regions = list(dict.fromkeys(o.region for o in shipped))
    spot: dict[tuple[str, str], float] = {}
    for n, region in enumerate(regions, start=1):
        region_types = sorted({o.instance_type for o in shipped if o.region == region})
        found = spot_prices_now(settings, region, region_types)
        if not found:
            raise CloudError(f"aws {region}: the spot price history answered no price for spotctl's types")
        spot.update(found)
        od = sum(1 for (r, _) in ondemand if r == region)
        progress(f"aws {region} ({n}/{len(regions)}): {od} on-demand prices, {len(found)} spot prices")
    out, kept = [], 0
    for o in shipped:
        od_price = ondemand.get((o.region, o.instance_type))
        spot_price = spot.get((o.zone, o.instance_type))
        kept += od_price is None or spot_price is None
        out.append(o.model_copy(update={"ondemand_price": od_price or o.ondemand_price,
                                        "spot_price": spot_price or o.spot_price}))
    return out, kept


def _gcp(settings: Settings, progress: Progress) -> tuple[list[Offering], int]:
    from spotctl.clouds.gcp_prices import compute_skus, price_offering

    shipped = _shipped("gcp")
    prices = compute_skus(settings, progress)
    out, kept = [], 0
    for region in dict.fromkeys(o.region for o in shipped):
        priced = 0
        for o in (o for o in shipped if o.region == region):
            od_price, spot_price = price_offering(o, prices, False), price_offering(o, prices, True)
            kept += od_price is None or spot_price is None
            priced += od_price is not None and spot_price is not None
            out.append(o.model_copy(update={"ondemand_price": od_price or o.ondemand_price,
                                            "spot_price": spot_price or o.spot_price}))
        progress(f"gcp {region}: {priced} offerings priced")
    return out, kept


def _named(cloud: str, message: str) -> str:
    """`message` led by the cloud's name once (the clouds' errors often start with it)."""
    return message if message.startswith((f"{cloud} ", f"{cloud}:")) else f"{cloud}: {message}"


def refresh_cloud(cloud: str, settings: Settings, progress: Progress, home: Path | None = None) -> Refreshed:
    """Fetch `cloud`'s prices and write its refreshed catalog under `home` (settings.home);
    raises RefreshFailed, with nothing written, on any failure."""
    problem = credentials_problem(cloud, settings)
    if problem:
        raise RefreshFailed(f"{cloud}: {problem}")
    fetch = _aws if cloud == "aws" else _gcp
    source = AWS_SOURCE if cloud == "aws" else GCP_SOURCE
    try:
        offerings, kept = fetch(settings, progress)
    except CloudError as exc:
        raise RefreshFailed(_named(cloud, str(exc))) from exc
    except Exception as exc:  # an SDK's own failure (a bad answer, a missing package): one line
        raise RefreshFailed(_named(cloud, f"{type(exc).__name__}: {str(exc)[:200]}")) from exc
    if kept == len(offerings):
        raise RefreshFailed(f"{cloud}: {source} priced none of spotctl's {len(offerings)} offerings")
    notes = [f"{kept} of {len(offerings)} offerings were not priced by the API and keep the shipped "
             "catalog's figures"] if kept else []
    try:
        path = write_refreshed(home or settings.home, cloud, offerings, source=source, notes=notes)
    except (CatalogError, OSError) as exc:
        raise RefreshFailed(_named(cloud, str(exc))) from exc
    return Refreshed(cloud, path, len(offerings) - kept, kept, source)
