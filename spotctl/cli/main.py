"""The `spotctl` command: managed spot jobs, with SkyPilot's CLI habits."""

from __future__ import annotations

import os

import click

from spotctl.cli.catalog import catalog
from spotctl.cli.check import check
from spotctl.cli.common import fail
from spotctl.cli.debug import debug
from spotctl.cli.jobs import cancel, dashboard, logs, status
from spotctl.cli.launch import launch
from spotctl.cli.pool import pool
from spotctl.cli.priority import set_priority
from spotctl.cli.server_cmds import codec_server, server, worker
from spotctl.config import ConfigError, default_home, secure_home


class AliasedGroup(click.Group):
    """Commands with SkyPilot's other names (`sky jobs queue`), listed in --help so they are found."""

    ALIASES = {"queue": "status"}

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return super().get_command(ctx, self.ALIASES.get(name, name))

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_commands(ctx, formatter)
        with formatter.section("Aliases"):
            formatter.write_dl([(alias, f"Same as `spotctl {target}`.") for alias, target in self.ALIASES.items()])


@click.group(cls=AliasedGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="spotctl")
def cli() -> None:
    """Run long jobs on spot VMs; survive preemptions. State lives in Temporal."""


for command in (launch, status, logs, cancel, set_priority, dashboard, check, server, worker, codec_server, debug, pool,
                catalog):
    cli.add_command(command)


def main() -> None:
    # Before anything is created: $SPOTCTL_HOME holds the Temporal database, logs and the codec
    # key, so its files are 0600 and its dirs 0700, and the embedded server and worker that this
    # process starts inherit the umask. An existing home from an older spotctl is tightened.
    os.umask(0o077)
    try:
        home = default_home()
    except ConfigError as exc:  # a bad SPOTCTL_HOME: one line, as for every setting
        fail(str(exc))
    if home.is_dir():
        secure_home(home)
    cli(prog_name="spotctl")


if __name__ == "__main__":
    main()
