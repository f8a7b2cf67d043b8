"""LocalRunner: the Runner of a local-cloud instance, i.e. a sandbox directory on this host.

Every process it starts carries `SPOTCTL_LOCAL_INSTANCE=<instance id>` in its environment
(inherited by the agent, its supervisor and the user's program), which is how the local
cloud finds and kills everything "on" an instance when it is terminated or preempted. Where
the cloud could make a cgroup for the instance (it writes the group's path to a `cgroup`
file in the instance dir), every process also joins that group before it execs, so even a
program that leaves its process group and drops the variable is killed with the instance.
The runner only joins, never creates: a group removed by terminate stays removed, and a call
that races with it fails like a call to a vanished host.

A network hiccup is simulated with a marker file `<instance dir>/unreachable` (the instance
dir is the parent of the sandbox home): while it exists every Runner method raises
NodeUnreachable although the instance and its processes live on. The runner checks it with
one stat per call, so the cloud can flip it from another process without any locking.
A booting instance (PENDING, see the local cloud's `provision_delay_s`) is unreachable the same
way, through a `booting` marker the cloud removes when the instance is RUNNING.

The instance is a sandbox, not the controller: every command starts through local_sandbox.py,
which hides the spotctl home from it (the codec key, the Temporal database, other instances)
except for the instance's own directory and the local buckets, and file paths outside the
instance directory land in the instance's private root tree (`<instance dir>/root/<path>`),
never on the host's `/etc`. Where namespaces cannot be had, commands run as they are and the
worker's log says so once.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from functools import cache
from pathlib import Path

from spotctl.files import copy_tree
from spotctl.remote.base import CommandResult, NodeUnreachable

log = logging.getLogger(__name__)

INSTANCE_MARKER = "SPOTCTL_LOCAL_INSTANCE"
UNREACHABLE_MARKER = "unreachable"
"""Name of the file in the instance dir (next to `home/`) that makes the node unreachable."""


STOPPED_MARKER = "stopped"
"""Next to a preempted instance's home: its disk can still be read, but nothing runs there."""


CGROUP_MARKER = "cgroup"
"""Next to the home: the path of the instance's cgroup, which every started process joins."""


BOOTING_MARKER = "booting"
"""Next to a PENDING instance's home: nothing answers on it yet, as on a VM still booting."""


def booting_marker(home: Path | str) -> Path:
    return Path(home).parent / BOOTING_MARKER


def stopped_marker(home: Path | str) -> Path:
    return Path(home).parent / STOPPED_MARKER


def cgroup_marker(home: Path | str) -> Path:
    return Path(home).parent / CGROUP_MARKER


def unreachable_marker(home: Path) -> Path:
    """Where the cloud puts, and the runner looks for, the simulated-unreachable flag."""
    return Path(home).parent / UNREACHABLE_MARKER


SANDBOX_STAGE = "sandbox-stage"
"""Next to the home: an empty dir where local_sandbox.py builds the hidden home's tmpfs."""
ROOT_TREE = "root"
"""Next to the home: the instance's private root tree (absolute paths land in it)."""
SANDBOX = Path(__file__).with_name("local_sandbox.py")


def sandbox_argv(hidden: list[Path], stage: Path, keep: list[Path]) -> list[str]:
    """The prefix that starts a command in the sandbox (see local_sandbox.py)."""
    argv = [sys.executable, "-I", "-S", str(SANDBOX), "--stage", str(stage)]
    for flag, paths in (("--hide", hidden), ("--keep", keep)):
        for path in paths:
            argv += [flag, str(path)]
    return [*argv, "--"]


@cache
def sandbox_problem() -> str | None:
    """Why commands cannot run in the sandbox on this machine (None: they can); probed once
    per process, and said once in its log."""
    with tempfile.TemporaryDirectory(prefix="spotctl-sandbox-probe-") as tmp:
        home, stage = Path(tmp) / "home", Path(tmp) / "home" / "stage"
        stage.mkdir(parents=True)
        try:
            probe = subprocess.run([*sandbox_argv([home], stage, []), "true"], stdin=subprocess.DEVNULL,
                                   capture_output=True, timeout=30)
        except (OSError, subprocess.SubprocessError) as exc:
            problem: str | None = str(exc)
        else:
            problem = None if probe.returncode == 0 else probe.stderr.decode(errors="replace").strip() or "failed"
    if problem:
        log.warning("local cloud: instances cannot be sandboxed here (%s): their programs run as this worker's "
                    "user and can read the spotctl home (codec key, Temporal database) and its cloud credentials",
                    problem)
    return problem


class LocalRunner:
    """Runs commands in the instance's home with a clean, SSH-like environment."""

    shares_host_files = True
    """The sandbox is a directory of this host: buckets can be linked or bind-mounted."""

    def __init__(self, home: Path, instance_id: str, hidden: tuple[Path, ...] = (),
                 keep: tuple[Path, ...] = ()) -> None:
        """`hidden`: paths the instance's commands must not see, but for its own directory and
        `keep` inside them (none: commands run without a sandbox)."""
        self._home = Path(home)
        self._dir = self._home.parent
        self._hidden = list(hidden)
        self._keep = [self._dir, *keep]
        self.home = str(self._home)
        self.instance_id = instance_id
        self.python = sys.executable
        self._unreachable = str(unreachable_marker(self._home))
        self._stopped = str(stopped_marker(self._home))
        self._booting = str(booting_marker(self._home))
        self._cgroup = cgroup_marker(self._home)

    def __repr__(self) -> str:
        return f"LocalRunner({self.instance_id}, home={self.home})"

    def check_alive(self) -> None:
        """A terminated instance's home is removed; behave like an unreachable host. The
        simulated-unreachable flag is checked first and on every call (one stat), so tests can
        cut and restore the "network" while a runner is in use; a booting instance answers
        nothing yet."""
        if os.path.exists(self._unreachable):
            raise NodeUnreachable(f"instance {self.instance_id} unreachable (simulated)")
        if os.path.exists(self._booting):
            raise NodeUnreachable(f"local instance {self.instance_id} is booting (PENDING)")
        if not self._home.is_dir():
            raise NodeUnreachable(f"local instance {self.instance_id} is gone ({self.home} does not exist)")

    def _check_running(self) -> None:
        """Reads work on a preempted (stopped) instance's kept disk; running and writing do not."""
        self.check_alive()
        if os.path.exists(self._stopped):
            raise NodeUnreachable(f"local instance {self.instance_id} is stopped (preempted)")

    def _node_path(self, path: str) -> Path:
        """Node paths: `~` is the sandbox home, relative paths are relative to it (as over SSH),
        and an absolute path outside the instance directory is in its private root tree: the
        instance has no business with the host's own files."""
        if path == "~" or path.startswith("~/"):
            return self._home / path[2:]
        p = Path(os.path.normpath(path))
        if not p.is_absolute():
            return self._home / p
        return p if p.is_relative_to(self._dir) else self._dir / ROOT_TREE / p.relative_to("/")

    def _sandboxed(self, argv: list[str]) -> list[str]:
        """argv started through local_sandbox.py, where it can be (see the module docstring)."""
        if not self._hidden or sandbox_problem() is not None:
            return argv
        stage = self._dir / SANDBOX_STAGE
        try:
            stage.mkdir()
        except FileExistsError:
            pass
        except FileNotFoundError as exc:  # terminated meanwhile
            raise NodeUnreachable(f"local instance {self.instance_id} is gone") from exc
        return [*sandbox_argv(self._hidden, stage, self._keep), *argv]

    def _env(self, extra: dict[str, str] | None) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOME": self.home,
            "USER": os.environ.get("USER") or os.environ.get("LOGNAME") or "spotctl",
            "SHELL": "/bin/bash",
            INSTANCE_MARKER: self.instance_id,
        }
        for key in ("LANG", "LC_ALL"):
            if key in os.environ:
                env[key] = os.environ[key]
        env.update(extra or {})
        env[INSTANCE_MARKER] = self.instance_id  # callers cannot hide processes from terminate
        return env

    def _open_cgroup(self) -> int | None:
        """A write-only fd on the instance's `cgroup.procs`, or None if it has no cgroup. Opened
        by the parent so the child only has to write(2) to it (see `_joiner`)."""
        try:
            group = self._cgroup.read_text().strip()
        except FileNotFoundError:
            return None
        try:
            return os.open(os.path.join(group, "cgroup.procs"), os.O_WRONLY | os.O_CLOEXEC)
        except OSError as exc:  # removed by terminate/preempt: the instance is going away
            raise NodeUnreachable(f"local instance {self.instance_id} is gone (cgroup: {exc})") from exc

    def run(self, argv: list[str], env: dict[str, str] | None = None, timeout: float = 60) -> CommandResult:
        self._check_running()
        command = self._sandboxed(argv)
        procs = self._open_cgroup()
        try:
            proc = subprocess.Popen(
                command,
                cwd=self.home,
                env=self._env(env),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                preexec_fn=None if procs is None else _joiner(procs),
            )
        except FileNotFoundError as exc:
            return CommandResult(127, "", f"{argv[0]}: command not found ({exc})")
        except (OSError, subprocess.SubprocessError) as exc:  # home or cgroup removed meanwhile
            raise NodeUnreachable(f"local instance {self.instance_id}: {exc}") from exc
        finally:
            if procs is not None:
                os.close(procs)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                proc.communicate(timeout=5)
            except subprocess.TimeoutExpired:  # a grandchild in another group holds the pipes
                proc.kill()
                proc.wait()
            raise NodeUnreachable(f"local instance {self.instance_id}: {argv[:3]} timed out after {timeout}s") from None
        return CommandResult(
            proc.returncode,
            out.decode(errors="replace"),
            err.decode(errors="replace"),
        )

    def put_file(self, local_path: str, remote_path: str) -> None:
        self._check_running()
        dest = self._node_path(remote_path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(local_path, dest)

    def put_dir(self, local_dir: str, remote_dir: str) -> None:
        self._check_running()
        copy_tree(Path(local_dir), self._node_path(remote_dir))

    def read_file(self, remote_path: str, offset: int = 0, max_bytes: int = 1 << 20) -> bytes:
        self.check_alive()
        try:
            with open(self._node_path(remote_path), "rb") as f:
                f.seek(offset)
                return f.read(max_bytes)
        except (FileNotFoundError, NotADirectoryError):
            return b""

    def read_files(self, reads: list[tuple[str, int, int]]) -> list[bytes]:
        """Local reads are cheap: one after the other."""
        return [self.read_file(path, offset, max_bytes) for path, offset, max_bytes in reads]

    def remove_file(self, remote_path: str) -> None:
        self._check_running()
        self._node_path(remote_path).unlink(missing_ok=True)

    def write_file(self, remote_path: str, data: bytes) -> None:
        self._check_running()
        dest = self._node_path(remote_path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.tmp.{os.getpid()}")
        tmp.write_bytes(data)
        os.replace(tmp, dest)


def _joiner(procs: int) -> Callable[[], None]:
    """The child's last step before exec: join the instance's cgroup ("0" is the writer
    itself), so everything it execs and forks is in the group from its first instruction.
    A single write(2) on an fd the parent opened: safe in the forked child of a threaded
    worker, where taking locks (imports, open()) could deadlock. It fails with ENODEV once
    the group is removed, and Popen then raises SubprocessError."""

    def join() -> None:
        os.write(procs, b"0")

    return join
