"""Prices with a date, without any cloud: the shipped catalogs say their basis and age in
`launch --dry-run` and `catalog show`; a refreshed catalog in the state dir is used when it is
good, and one that is not (corrupt, absurd, unfinished) is set aside with a warning for the
shipped one; a refreshed catalog is written whole or not at all."""

from __future__ import annotations

import os
import re
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from spotctl.catalog import CatalogError, catalog_info, load_offerings, refreshed_path, write_refreshed
from spotctl.cli.main import cli

pytestmark = pytest.mark.quick

TODAY = datetime.now(UTC).date()
SHIPPED_AGE = (TODAY - date(2024, 12, 31)).days


def run(home: Path, *args: str) -> tuple[int, str, str]:
    env = {"SPOTCTL_HOME": str(home), "SPOTCTL_CLOUDS": "local,gcp"}
    result = CliRunner().invoke(cli, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def flat(text: str) -> str:
    return " ".join(text.split())


def dry_run_n2(home: Path) -> str:
    code, out, err = run(home, "launch", "--dry-run", "--cloud", "gcp", "-t", "n2-standard-4", "--region",
                         "us-central1", "echo hi")
    assert code == 0, out + err
    return out


def candidate_prices(out: str) -> set[tuple[str, str]]:
    """(spot, on-demand) columns of the candidates' rows."""
    return {(m.group(1), m.group(2)) for m in re.finditer(r"n2-standard-4 +\S+ +\$\S+/h +(\S+) +(\S+)", out)}


def test_the_shipped_catalog_says_its_basis_and_age_in_dry_run_and_show(tmp_path: Path) -> None:
    out = dry_run_n2(tmp_path / "home")
    assert f"Prices: gcp: shipped catalog, 2024 basis, {SHIPPED_AGE}+ days old: run `spotctl catalog refresh`" \
        in flat(out)
    assert candidate_prices(out) == {("$0.0466", "$0.1942")}  # the shipped figures
    code, out, _ = run(tmp_path / "home", "catalog", "show")
    assert code == 0
    assert f"aws: shipped catalog, 2024 basis, {SHIPPED_AGE}+ days old" in flat(out)
    assert "file: spotctl/catalog/data/gcp.csv" in out
    assert not (tmp_path / "home" / "catalog").exists()  # looking makes no file


def test_the_launch_question_dates_the_price_it_quotes(tmp_path: Path) -> None:
    """Without -y, launch asks at a price: the line before the question says how old it is."""
    env = {"SPOTCTL_HOME": str(tmp_path / "home"), "SPOTCTL_CLOUDS": "local,gcp",
           "SPOTCTL_GCP_ENDPOINT": "http://127.0.0.1:9"}  # an emulator's: anonymous credentials, no call made
    result = CliRunner().invoke(cli, ["launch", "--cloud", "gcp", "-t", "n2-standard-4", "--region", "us-central1",
                                      "echo hi"], env=env, input="n\n")
    assert result.exit_code == 1 and "Proceed?" in result.stderr, result.output
    said = flat(result.stderr)
    assert f"Prices: gcp: shipped catalog, 2024 basis, {SHIPPED_AGE}+ days old" in said
    assert said.index("Prices: gcp") < said.index("Proceed?")


def refreshed_n2(home: Path, spot: float, ondemand: float, fetched: datetime | None = None) -> Path:
    offers = [o.model_copy(update={"spot_price": spot, "ondemand_price": ondemand}) for o in load_offerings("gcp")]
    return write_refreshed(home, "gcp", offers, source="the Cloud Billing Catalog (Compute Engine SKUs)",
                           fetched=fetched)


def test_a_refreshed_catalog_is_used_and_dated(tmp_path: Path) -> None:
    home = tmp_path / "home"
    path = refreshed_n2(home, 0.05, 0.2, fetched=datetime(2026, 11, 1, tzinfo=UTC))
    assert path == refreshed_path(home, "gcp") and oct(path.parent.stat().st_mode & 0o777) == "0o700"
    out = dry_run_n2(home)
    assert candidate_prices(out) == {("$0.0500", "$0.2000")}
    age = (TODAY - date(2026, 11, 1)).days
    stale = ": run `spotctl catalog refresh`" if age > 30 else ""
    assert (f"Prices: gcp: prices from the Cloud Billing Catalog (Compute Engine SKUs), 2026-11-01, "
            f"{age} days old{stale}") in flat(out)
    code, out, _ = run(home, "catalog", "show")
    assert code == 0 and f"file: {path}" in out


@pytest.mark.parametrize(("text", "why"), [
    ("garbage\x00\xff not a catalog", "no '#@ fetched:' line"),
    ("#@ fetched: 2026-12-01T00:00:00+00:00\ninstance_type,region,zones,vcpus,memory_gib,ondemand_price,spot_price\n"
     "n2-standard-4,us-central1,us-central1-a,4,16,5000,1\n", "ondemand_price 5000.0 is not a price"),
    ("#@ fetched: 2026-12-01T00:00:00+00:00\ninstance_type,region,zones,vcpus,memory_gib,ondemand_price,spot_price\n"
     "n2-standard-4,us-central1,us-central1-a,four,16,0.2,0.05\n", "row 1: ValueError"),
    ("#@ fetched: yesterday\n", "is not an ISO time"),
    ("#@ fetched: 2026-12-01T00:00:00+00:00\n", "no offerings"),
])
def test_a_bad_refreshed_catalog_is_set_aside_for_the_shipped_one(tmp_path: Path, text: str, why: str) -> None:
    home = tmp_path / "home"
    path = refreshed_path(home, "gcp")
    path.parent.mkdir(parents=True)
    path.write_text(text, errors="surrogateescape")
    out = dry_run_n2(home)
    assert candidate_prices(out) == {("$0.0466", "$0.1942")}  # the shipped figures, never the bad ones
    line = next(ln for ln in flat(out).split("Prices: ")[1:] if ln.startswith("gcp:"))
    assert line.startswith(f"gcp: refreshed catalog not used ({path}: "), line
    assert why in line and f"shipped catalog, 2024 basis, {SHIPPED_AGE}+ days old" in line
    with pytest.raises(CatalogError, match=re.escape(why)):
        from spotctl.catalog.dated import read_refreshed

        read_refreshed(home, "gcp")
    assert catalog_info("gcp", home).problem


def test_a_refresh_is_written_whole_or_not_at_all(tmp_path: Path) -> None:
    home = tmp_path / "home"
    good = refreshed_n2(home, 0.05, 0.2)
    before = good.read_bytes()
    with pytest.raises(CatalogError, match="is not a price"):
        refreshed_n2(home, 0.05, float("nan"))
    with pytest.raises(CatalogError, match="is not a price"):
        refreshed_n2(home, -1.0, 0.2)
    assert good.read_bytes() == before
    assert sorted(os.listdir(good.parent)) == ["gcp.csv"]  # no temporary file left behind
    assert catalog_info("gcp", home).refreshed and catalog_info("gcp", home).problem is None


def test_status_cost_columns_read_the_refreshed_on_demand_prices(tmp_path: Path) -> None:
    """`status`'s ON-DEMAND and SAVED columns price attempts with clouds/ondemand.py."""
    from spotctl.clouds.ondemand import ondemand_prices
    from spotctl.config import load_settings

    home = tmp_path / "home"
    key = ("gcp", "us-central1", "us-central1-a", "n2-standard-4")
    assert ondemand_prices({"gcp"}, load_settings(home))[key] == 0.1942  # shipped
    refreshed_n2(home, 0.05, 0.2)
    assert ondemand_prices({"gcp"}, load_settings(home))[key] == 0.2
