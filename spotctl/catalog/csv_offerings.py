"""Offerings of a cloud from the CSV catalog shipped in the package (`catalog/data/<cloud>.csv`).

A catalog is local data, read once per process: `offerings()` of a real cloud makes no API
call. Each file says in its comment header where its figures come from and how old they are
(AWS: the public on-demand price list and typical spot prices, approximate; see aws.csv).

Format: lines starting with '#' are comments; then a header and one row per
(instance_type, region) with the columns

    instance_type, accelerator_name, accelerator_count, vcpus, memory_gib, region,
    zones (space-separated), ondemand_price, spot_price (USD/hour; empty = not sold so)

and one Offering is made per zone. A catalog refreshed from the clouds' price APIs (dated.py,
in the state dir) has the same format and, when present and readable, replaces the shipped one
for `load_offerings(cloud, home)`.
"""

from __future__ import annotations

import csv
import functools
import io
from importlib import resources
from pathlib import Path

from spotctl.models import Offering

__all__ = ["CatalogError", "catalog_regions", "has_catalog", "load_offerings", "parse_offerings"]


class CatalogError(ValueError):
    """A catalog that cannot be used; the message names the file and what is wrong."""


def _price(text: str) -> float | None:
    text = text.strip()
    return float(text) if text else None


def parse_offerings(cloud: str, text: str, where: str | None = None) -> list[Offering]:
    """The offerings of one catalog's CSV text (one per zone of each row); raises CatalogError
    naming `where` and the row for a row that does not parse."""
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    out: list[Offering] = []
    for n, row in enumerate(csv.DictReader(io.StringIO("\n".join(lines))), start=1):
        try:
            out.extend(_row_offerings(cloud, row))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CatalogError(f"{where or cloud}: row {n}: {type(exc).__name__}: {str(exc)[:80]}") from exc
    return out


def _row_offerings(cloud: str, row: dict[str, str]) -> list[Offering]:
    out: list[Offering] = []
    acc_name = (row.get("accelerator_name") or "").strip()
    acc_count = int(float(row.get("accelerator_count") or 0))
    accelerators = {acc_name: acc_count} if acc_name and acc_count > 0 else {}
    region = row["region"].strip()
    zones = row["zones"].split()
    if not region or not zones or not row["instance_type"].strip():
        raise ValueError("instance_type, region and zones may not be empty")
    for zone in zones:
        out.append(Offering(
            cloud=cloud,
            region=region,
            zone=zone,
            instance_type=row["instance_type"].strip(),
            cpus=float(row["vcpus"]),
            memory_gb=float(row["memory_gib"]),
            accelerators=accelerators,
            spot_price=_price(row.get("spot_price") or ""),
            ondemand_price=_price(row.get("ondemand_price") or ""),
        ))
    return out


@functools.cache
def _load(cloud: str) -> tuple[Offering, ...]:
    text = resources.files("spotctl.catalog").joinpath("data", f"{cloud}.csv").read_text()
    return tuple(parse_offerings(cloud, text))


def has_catalog(cloud: str) -> bool:
    """Whether a catalog is shipped for `cloud` (the local cloud's is its config.yaml)."""
    return resources.files("spotctl.catalog").joinpath("data", f"{cloud}.csv").is_file()


def load_offerings(cloud: str, home: Path | None = None) -> list[Offering]:
    """Every offering of `cloud`'s catalog (copies: callers may change them): the one refreshed
    into the state dir `home` when there is a usable one, else the shipped one."""
    from spotctl.catalog.dated import refreshed_or_none

    refreshed = refreshed_or_none(home, cloud)
    if refreshed is not None:
        return refreshed
    return [o.model_copy() for o in _load(cloud)]


def catalog_regions(cloud: str) -> list[str]:
    """The regions of the shipped catalog of `cloud`, in file order."""
    return list(dict.fromkeys(o.region for o in _load(cloud)))
