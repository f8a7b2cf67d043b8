"""What every command shares: exit codes, settings, the client, errors shown without tracebacks."""

from __future__ import annotations

import asyncio
import errno
import functools
import gc
import sys
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.markup import escape

from spotctl.client import JobNotFound, SpotClient
from spotctl.client.pools import PoolNotAnswering
from spotctl.config import ConfigError, Settings, default_home, load_settings
from spotctl.embedded import EmbeddedServer, ServerError
from spotctl.models import JobStatus
from spotctl.task import TaskError

# Exit codes (docs/cli.md's table): scripts tell a job's result from a usage error (a bad
# flag, task file or setting). 1 is any other error (no server reachable).
EXIT_SUCCEEDED = 0
EXIT_USAGE = 2
EXIT_FAILED = 100
EXIT_NOT_FINISHED = 101
"""The job has not ended: `logs --no-follow` of a running job, or following stopped by Ctrl-C."""
EXIT_NOT_FOUND = 102
"""No such job, or no such attempt of it (`logs --attempt 9` of a 3-attempt job)."""
EXIT_CANCELLED = 103


class StoppedFollowing(Exception):
    """Ctrl-C while following a job: only the following stops, the job keeps running."""

    def __init__(self, job_id: int) -> None:
        super().__init__(job_id)
        self.job_id = job_id

# Piped output (scripts, tests) gets wide lines rather than tables folded at 80 columns.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
err_console = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 200)


def exit_code_for(status: JobStatus) -> int:
    """launch and logs exit with the job's result: 0, 100 failed, 101 not finished, 103 cancelled."""
    if status == JobStatus.SUCCEEDED:
        return EXIT_SUCCEEDED
    if status == JobStatus.CANCELLED:
        return EXIT_CANCELLED
    if status.is_failure:
        return EXIT_FAILED
    return EXIT_NOT_FINISHED


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    sys.exit(_message(message, code))


def confirm(question: str, *, yes_flag: str) -> None:
    """Ask before acting; "n" aborts (exit 1, as before). No answer at all (stdin is not a
    terminal and has nothing, or is closed: a script, cron, CI) is a usage error, exit 2,
    naming the flag that skips the question, rather than click's bare "Aborted!"."""
    try:
        answered_yes = click.confirm(question, default=True, err=True)
    except click.Abort:
        if sys.stdin is None or not sys.stdin.isatty():
            err_console.print()  # end the prompt's line
            fail(f"no answer to the question above: stdin is not a terminal; give {yes_flag} to go ahead "
                 "without asking")
        raise  # Ctrl-C or Ctrl-D at a terminal: click's "Aborted!"
    if not answered_yes:
        raise click.Abort()


def async_command(fn: Callable[..., Coroutine[Any, Any, Any]]) -> Callable[..., Any]:
    """Run an async click command; turn known errors into a message and an exit code.

    The exit happens only after the event loop and every object of the command (the Temporal
    client above all) are gone: a SystemExit raised inside the coroutine would keep them alive
    in its traceback until interpreter shutdown, where dropping the client's native core aborts
    the process."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        code = _run_to_exit_code(fn, args, kwargs)
        gc.collect()
        if code:
            sys.exit(code)

    return wrapper


def _run_to_exit_code(fn: Callable[..., Coroutine[Any, Any, Any]], args: tuple, kwargs: dict) -> int | str | None:
    try:
        asyncio.run(fn(*args, **kwargs))
        return 0
    except SystemExit as exc:
        return exc.code
    except StoppedFollowing as exc:
        # A new line first: the terminal echoed ^C where the output was.
        err_console.print(f"\nStopped following job {exc.job_id}; it keeps running. `spotctl logs {exc.job_id}` "
                          f"follows it again, `spotctl cancel {exc.job_id}` stops it.", soft_wrap=True, markup=False)
        return EXIT_NOT_FINISHED
    except TaskError as exc:
        return _message(str(exc), EXIT_USAGE)
    except JobNotFound as exc:
        return _message(str(exc), EXIT_NOT_FOUND)
    except ConfigError as exc:  # a bad setting or key file (CodecKeyError) is bad input: say what to do
        return _message(str(exc), EXIT_USAGE)
    except ServerError as exc:
        return _message(str(exc), 1)
    except PoolNotAnswering as exc:  # a busy or absent worker: one line, nothing was changed
        return _message(str(exc), 1)
    except RuntimeError as exc:
        if "connect" in str(exc).lower():
            return _message(f"cannot reach Temporal: {exc}", 1)
        raise
    except OSError as exc:
        if exc.errno == errno.ENOSPC:  # the state dir's disk: say it, never a traceback
            where = exc.filename or default_home()
            return _message(f"no space left on device ({where}); free some space and try again "
                            "(running jobs wait for room and lose nothing)", 1)
        raise


def _message(text: str, code: int) -> int:
    err_console.print(f"[red]Error:[/red] {escape(text)}", soft_wrap=True)
    return code


def settings() -> Settings:
    """The settings, or exit 2 with the one line that names a bad value (config/table.py)."""
    try:
        return load_settings()
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)
        raise


async def open_client(s: Settings, *, start_server: bool) -> SpotClient:
    """Connect to the configured Temporal. With the embedded default, make it run first: always
    when asked to (launch), else when the state dir has been used before (a killed or stopped
    server or worker is brought back by the command that needs it; see embedded/server.py). A fresh
    state dir gets a hint instead: read-only commands do not create servers."""
    if s.uses_embedded_server:
        server = EmbeddedServer(s)
        # The server dir exists once a server was started (even one stopped before it made its
        # database): `server stop` then `status` restarts it rather than claim a fresh state dir.
        if not (start_server or server.used_before() or server.dir.is_dir()):
            raise ServerError("the embedded Temporal server is not running (no job was launched with this "
                              f"state dir: {s.home}); `spotctl launch` or `spotctl server start` starts it")
        if not server.ready():
            with err_console.status("Starting the embedded Temporal server and worker..."):
                # ensure_running is blocking and runs its own event loop for health probes.
                await asyncio.to_thread(server.ensure_running, lambda m: err_console.print(f"[dim]{m}[/dim]"))
    try:
        return await SpotClient.connect(s)
    except RuntimeError as exc:
        raise ServerError(f"cannot reach Temporal at {s.temporal_address}: {exc}") from None


async def resolve_job(client: SpotClient, job_id: int | None, name: str | None) -> int:
    """A job id from an id, a name, or (neither given) the newest job."""
    if job_id is not None:
        return job_id
    if name:
        return await client.find_job_id(name)
    jobs = await client.list_jobs(limit=1)
    if not jobs:
        raise JobNotFound("no managed jobs yet")
    return jobs[0].job_id


def job_id_option(fn):
    fn = click.argument("job_id", type=int, required=False)(fn)
    return click.option("-n", "--name", help="Pick the newest job with this name.")(fn)
