"""spotctl check: which clouds can be used, and why not (SkyPilot's `sky check`)."""

from __future__ import annotations

import sys

import click
from rich.markup import escape

from spotctl.cli.common import console, settings
from spotctl.cli.render import safe
from spotctl.clouds.registry import CLOUDS, why_unusable


@click.command()
@click.option("--quick", is_flag=True, help="Only look for credentials; make no API call.")
def check(quick: bool) -> None:
    """Say which clouds have working credentials, and why the others do not.

    Exits 0 when at least one enabled cloud can be used, else 1."""
    s = settings()
    usable = 0
    for name in CLOUDS:
        enabled = name in s.clouds
        why = why_unusable(name, s, verify=not quick)
        if why is None:
            usable += enabled
            mark = "[green]ok[/green]" if enabled else "[yellow]ok, not enabled[/yellow]"
            console.print(f"  {name:<6} {mark}")
        else:
            mark = "[red]not usable[/red]" if enabled else "[yellow]not enabled[/yellow]"
            console.print(f"  {name:<6} {mark}: {escape(safe(why[:300]))}")
    hint = "" if all(c in s.clouds for c in CLOUDS) else (
        f" (enabled: {', '.join(s.clouds)}; set SPOTCTL_CLOUDS or `clouds:` in config.yaml to change)")
    console.print(f"{usable} enabled cloud{'s' if usable != 1 else ''} usable{hint}", markup=False)
    sys.exit(0 if usable else 1)
