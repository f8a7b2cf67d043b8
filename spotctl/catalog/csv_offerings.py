"""Offerings of a cloud from the CSV catalog shipped in the package (`catalog/data/<cloud>.csv`).

A catalog is local data, read once per process: `offerings()` of a real cloud makes no API
call. Each file says in its comment header where its figures come from and how old they are
(AWS: the public on-demand price list and typical spot prices, approximate; see aws.csv).

Format: lines starting with '#' are comments; then a header and one row per
(instance_type, region) with the columns

    instance_type, accelerator_name, accelerator_count, vcpus, memory_gib, region,
    zones (space-separated), ondemand_price, spot_price (USD/hour; empty = not sold so)

and one Offering is made per zone.
"""

from __future__ import annotations

import csv
import functools
import io
from importlib import resources

from spotctl.models import Offering

__all__ = ["catalog_regions", "has_catalog", "load_offerings", "parse_offerings"]


def _price(text: str) -> float | None:
    text = text.strip()
    return float(text) if text else None


def parse_offerings(cloud: str, text: str) -> list[Offering]:
    """The offerings of one catalog's CSV text (one per zone of each row)."""
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    out: list[Offering] = []
    for row in csv.DictReader(io.StringIO("\n".join(lines))):
        acc_name = (row.get("accelerator_name") or "").strip()
        acc_count = int(float(row.get("accelerator_count") or 0))
        accelerators = {acc_name: acc_count} if acc_name and acc_count > 0 else {}
        region = row["region"].strip()
        for zone in row["zones"].split():
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


def load_offerings(cloud: str) -> list[Offering]:
    """Every offering of the shipped catalog of `cloud` (copies: callers may change them)."""
    return [o.model_copy() for o in _load(cloud)]


def catalog_regions(cloud: str) -> list[str]:
    """The regions of the shipped catalog of `cloud`, in file order."""
    return list(dict.fromkeys(o.region for o in _load(cloud)))
