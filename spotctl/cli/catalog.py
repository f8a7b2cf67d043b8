"""spotctl catalog refresh/show: the prices spotctl places and costs jobs with, and their date
(docs/prices.md). `refresh` asks the clouds' own price APIs (clouds/price_refresh.py) and keeps
the result in the state dir; `show` says which catalog each cloud uses and how old it is."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click
from rich.markup import escape

from spotctl.catalog import catalog_info, has_catalog
from spotctl.cli.common import console, err_console, settings
from spotctl.clouds.price_refresh import REFRESHABLE, RefreshFailed, credentials_problem, refresh_cloud

EXIT_REFRESH_FAILED = 1
"""A cloud's refresh failed (its last good catalog is kept); a usage error is 2 as everywhere."""


@click.group()
def catalog() -> None:
    """The price catalogs: which one is used, how old it is, and refreshing it from the clouds."""


@catalog.command("refresh")
@click.option("--cloud", "clouds", multiple=True, type=click.Choice(REFRESHABLE), metavar="[aws|gcp]",
              help="Refresh only this cloud (repeatable). Default: every configured cloud with a price API "
                   "and credentials.")
def refresh(clouds: tuple[str, ...]) -> None:
    """Fetch on-demand and spot prices from the clouds' price APIs (AWS Price List and spot
    price history; GCP's Cloud Billing Catalog) into the state dir, where launch, dry-run and
    status's cost columns read them. A cloud whose refresh fails keeps its last good catalog
    (nothing half-written), and the command exits 1."""
    s = settings()
    wanted = list(dict.fromkeys(clouds)) or [c for c in REFRESHABLE if c in s.clouds]
    if not clouds:
        for cloud in list(wanted):
            problem = credentials_problem(cloud, s)
            if problem:
                wanted.remove(cloud)
                err_console.print(f"{cloud}: skipped, {escape(problem)}", soft_wrap=True, markup=False)
    if not wanted:
        err_console.print("[red]Error:[/red] no cloud to refresh (name one with --cloud aws|gcp)")
        raise SystemExit(EXIT_REFRESH_FAILED)
    failed = 0
    today = datetime.now(UTC).date()
    for cloud in wanted:
        err_console.print(f"{cloud}: asking its price APIs ...", markup=False)
        try:
            done = refresh_cloud(cloud, s, lambda line: err_console.print(f"  {line}", markup=False))
        except RefreshFailed as exc:
            failed += 1
            kept = catalog_info(cloud, s.home)
            err_console.print(f"[red]Error:[/red] {escape(str(exc))}; kept the last good catalog "
                              f"({escape(kept.line(today).split(': ', 1)[1])})", soft_wrap=True)
            continue
        kept_note = f", {done.kept} kept at shipped figures (not in the API's answer)" if done.kept else ""
        console.print(f"{cloud}: {done.priced} offerings priced from {done.source}{kept_note}; "
                      f"wrote {done.path}", markup=False, soft_wrap=True)
    if failed:
        raise SystemExit(EXIT_REFRESH_FAILED)


@catalog.command("show")
def show() -> None:
    """Which catalog each cloud's prices come from, its date and age."""
    s = settings()
    today = datetime.now(UTC).date()
    for cloud in REFRESHABLE:
        info = catalog_info(cloud, s.home)
        console.print(info.line(today), markup=False, soft_wrap=True)
        console.print(f"  file: {info.path}", markup=False, soft_wrap=True)


def price_age_lines(clouds: set[str], home: Path) -> list[str]:
    """`launch --dry-run`'s lines on where the candidates' prices come from and how old they
    are, one per cloud with a catalog (the local cloud's prices are its config)."""
    today = datetime.now(UTC).date()
    return [catalog_info(c, home).line(today) for c in sorted(clouds) if has_catalog(c)]
