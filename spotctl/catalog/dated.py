"""Which catalog is in use and how old its prices are: the shipped one, or one refreshed from the
clouds' price APIs into the state dir (`<home>/catalog/<cloud>.csv`, by `spotctl catalog refresh`).

Both are the CSV format of csv_offerings.py; their dates are `#@ key: value` comment lines:
- a shipped file says `#@ basis: 2024` (the year its figures were written for; from memory, so
  its age is "at least" the days since that year ended) and `#@ source: ...`;
- a refreshed file says `#@ fetched: <ISO time, UTC>` and `#@ source: ...` (which APIs).

A refreshed file is written whole or not at all (write to a temporary file, fsync, rename), so
a refresh that fails half way leaves the last good one in place. One that cannot be read (edited
by hand, truncated by a full disk, an absurd price) is not used: the shipped catalog is, with a
warning that says why (`CatalogInfo.problem`), so a launch never stops on a price file.
"""

from __future__ import annotations

import functools
import logging
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, date, datetime
from importlib import resources
from pathlib import Path

from spotctl.catalog.csv_offerings import CatalogError, parse_offerings
from spotctl.models import Offering

log = logging.getLogger(__name__)

__all__ = ["MAX_PRICE", "CatalogInfo", "catalog_info", "refreshed_path", "write_refreshed"]

MAX_PRICE = 1000.0
"""USD/hour: no instance spotctl knows costs a tenth of this (p5.48xlarge is about 100); a price
above it is a unit or parsing error, and the catalog carrying it is refused."""
CATALOG_DIR = "catalog"
"""Under the state dir: the refreshed catalogs, one file per cloud."""
COLUMNS = ["instance_type", "accelerator_name", "accelerator_count", "vcpus", "memory_gib", "region", "zones",
           "ondemand_price", "spot_price"]


@dataclass(frozen=True)
class CatalogInfo:
    """What `launch --dry-run` and `spotctl catalog show` say about one cloud's prices."""

    cloud: str
    refreshed: bool
    """True: the state dir's catalog, fetched from the cloud's price APIs."""
    source: str
    as_of: date
    """The fetch's day; for a shipped catalog, the last day of its basis year."""
    at_least: bool
    """The age is a lower bound (a shipped catalog's basis is a year, not a day)."""
    path: str
    problem: str | None = None
    """Why the state dir's catalog is not used (the shipped one is, instead)."""

    def age_days(self, today: date) -> int:
        return max((today - self.as_of).days, 0)

    def line(self, today: date) -> str:
        """One line: where the prices come from, their date and age, and what to do if old."""
        days = self.age_days(today)
        age = f"{days}+ days old" if self.at_least else f"{days} day{'s' if days != 1 else ''} old"
        if self.refreshed:
            text = f"{self.cloud}: prices from {self.source}, {self.as_of.isoformat()}, {age}"
            return text + (": run `spotctl catalog refresh`" if days > STALE_DAYS else "")
        unused = f"refreshed catalog not used ({self.problem}); " if self.problem else ""
        return f"{self.cloud}: {unused}{self.source}, {age}: run `spotctl catalog refresh`"


STALE_DAYS = 30
"""A refreshed catalog older than this is said to be worth refreshing again."""


def refreshed_path(home: Path, cloud: str) -> Path:
    """Where `spotctl catalog refresh` keeps `cloud`'s catalog in the state dir `home`."""
    return home / CATALOG_DIR / f"{cloud}.csv"


def meta(text: str) -> dict[str, str]:
    """The `#@ key: value` lines of a catalog's text."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("#@") and ":" in line:
            key, value = line[2:].split(":", 1)
            out[key.strip()] = value.strip()
    return out


def _shipped_text(cloud: str) -> str:
    return resources.files("spotctl.catalog").joinpath("data", f"{cloud}.csv").read_text()


def check_prices(offerings: list[Offering], where: str) -> None:
    """Raise CatalogError for an empty catalog or a price that is not in (0, MAX_PRICE]."""
    if not offerings:
        raise CatalogError(f"{where}: no offerings")
    for o in offerings:
        for name, price in (("ondemand_price", o.ondemand_price), ("spot_price", o.spot_price)):
            if price is not None and not 0 < price <= MAX_PRICE:
                raise CatalogError(f"{where}: {o.instance_type} in {o.zone}: {name} {price} is not a price "
                                   f"(0 < USD/h <= {MAX_PRICE:g})")


def _fetched(text: str, where: str) -> datetime:
    stamp = meta(text).get("fetched")
    if not stamp:
        raise CatalogError(f"{where}: no '#@ fetched:' line (not written by `spotctl catalog refresh`)")
    try:
        when = datetime.fromisoformat(stamp)
    except ValueError as exc:
        raise CatalogError(f"{where}: '#@ fetched: {stamp[:40]}' is not an ISO time") from exc
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@functools.lru_cache(maxsize=16)
def _read_refreshed(path: str, stamp: tuple[int, int]) -> tuple[tuple[Offering, ...], datetime, str]:
    """(offerings, fetched, source) of a refreshed file; cached per (path, mtime, size)."""
    cloud = Path(path).stem
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogError(f"{path}: {exc}") from exc
    fetched = _fetched(text, path)
    offerings = parse_offerings(cloud, text, where=path)
    check_prices(offerings, path)
    return tuple(offerings), fetched, meta(text).get("source", "the cloud's price APIs")


def read_refreshed(home: Path | None, cloud: str) -> tuple[list[Offering], datetime, str] | None:
    """The state dir's catalog of `cloud`: None when there is none; raises CatalogError when it
    cannot be used."""
    if home is None:
        return None
    path = refreshed_path(home, cloud)
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CatalogError(f"{path}: {exc}") from exc
    offerings, fetched, source = _read_refreshed(str(path), (st.st_mtime_ns, st.st_size))
    return [o.model_copy() for o in offerings], fetched, source


_warned: set[tuple[str, str]] = set()


def refreshed_or_none(home: Path | None, cloud: str) -> list[Offering] | None:
    """The refreshed offerings of `cloud`, or None (no refreshed file, or one that cannot be
    used: then a warning, once per process and reason, and the shipped catalog stands)."""
    try:
        found = read_refreshed(home, cloud)
    except CatalogError as exc:
        if (cloud, str(exc)) not in _warned:
            _warned.add((cloud, str(exc)))
            log.warning("%s: using the shipped catalog: %s", cloud, exc)
        return None
    return found[0] if found else None


def catalog_info(cloud: str, home: Path | None) -> CatalogInfo:
    """Which catalog of `cloud` is used with state dir `home`, its source and date."""
    problem = None
    try:
        found = read_refreshed(home, cloud)
    except CatalogError as exc:
        found, problem = None, str(exc)
    if found is not None:
        _, fetched, source = found
        path = str(refreshed_path(home, cloud)) if home else ""
        return CatalogInfo(cloud, True, source, fetched.astimezone(UTC).date(), False, path)
    text = _shipped_text(cloud)
    basis = meta(text).get("basis", "")
    year = int(basis) if basis.isdigit() else 2024
    source = f"shipped catalog, {year} basis"
    return CatalogInfo(cloud, False, source, date(year, 12, 31), True, f"spotctl/catalog/data/{cloud}.csv",
                       problem)


def _csv_cell(value: object) -> str:
    text = "" if value is None else str(value)
    if any(c in text for c in ',"\n'):
        raise CatalogError(f"a catalog cell may not hold a comma, quote or newline: {text[:40]!r}")
    return text


def render(offerings: list[Offering], fetched: datetime, source: str, notes: list[str]) -> str:
    """A refreshed catalog's text: the date lines, then one row per offering (one zone each)."""
    lines = [f"# spotctl's {offerings[0].cloud} catalog, refreshed from the cloud's price APIs by "
             "`spotctl catalog refresh` (USD per hour, Linux).",
             f"#@ fetched: {fetched.astimezone(UTC).isoformat(timespec='seconds')}",
             f"#@ source: {source}"]
    lines += [f"# {note}" for note in notes]
    lines.append(",".join(COLUMNS))
    for o in offerings:
        acc, count = next(iter(o.accelerators.items()), ("", 0))
        row = [o.instance_type, acc, count, f"{o.cpus:g}", f"{o.memory_gb:g}", o.region, o.zone,
               "" if o.ondemand_price is None else f"{o.ondemand_price:.6g}",
               "" if o.spot_price is None else f"{o.spot_price:.6g}"]
        lines.append(",".join(_csv_cell(v) for v in row))
    return "\n".join(lines) + "\n"


def write_refreshed(home: Path, cloud: str, offerings: list[Offering], *, source: str,
                    notes: list[str] | None = None, fetched: datetime | None = None) -> Path:
    """Check `offerings` and write them as `cloud`'s refreshed catalog, whole or not at all
    (a temporary file in the same dir, fsynced, renamed over the old one). Raises CatalogError
    (and leaves the old file) when a price is absurd or nothing was priced."""
    check_prices(offerings, f"{cloud} refresh")
    text = render(offerings, fetched or datetime.now(UTC), source, notes or [])
    path = refreshed_path(home, cloud)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{cloud}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        parse_offerings(cloud, Path(tmp).read_text(), where=tmp)  # what was written reads back
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
