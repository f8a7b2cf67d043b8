"""The `spotctl` command: managed spot jobs, with SkyPilot's CLI habits."""

from __future__ import annotations

import click

from spotctl.cli.debug import debug
from spotctl.cli.jobs import cancel, dashboard, logs, status
from spotctl.cli.launch import launch
from spotctl.cli.server_cmds import server, worker


class AliasedGroup(click.Group):
    ALIASES = {"queue": "status"}

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return super().get_command(ctx, self.ALIASES.get(name, name))


@click.group(cls=AliasedGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="spotctl")
def cli() -> None:
    """Run long jobs on spot VMs; survive preemptions. State lives in Temporal."""


for command in (launch, status, logs, cancel, dashboard, server, worker, debug):
    cli.add_command(command)


def main() -> None:
    cli(prog_name="spotctl")


if __name__ == "__main__":
    main()
