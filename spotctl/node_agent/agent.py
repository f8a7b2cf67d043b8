#!/usr/bin/env python3
"""spotctl node agent: start, watch and signal one phase (setup/run) of a job attempt.

Stdlib only: this file is copied to every node and run as `python3 agent.py ...`.

An attempt directory D holds `env.json` and `<phase>.sh`, written by the caller. The agent
keeps all of its state in files next to them, so any later call (from a restarted worker,
after the caller was killed) can answer from the files alone:

  PHASE.started   created with O_EXCL: exactly one `start` wins, ever
  PHASE.lock      flock'ed by the living supervisor for its whole life (at most one)
  PHASE.spid      pid of the detached supervisor
  PHASE.kpid      pid of the keeper: the program's parent, which only waits for it
  PHASE.pid       pid of `bash PHASE.sh` (also its process group id)
  PHASE.rc        the program's exit code, written in place by the keeper (spaces before)
  PHASE.beat      a counter the supervisor bumps in place every BEAT_S seconds, followed by
                  ` nospace` while the attempt's disk is full
  PHASE.exit      the phase's end, written when it ends: the exit code (128+signum for a
                  signal death), or `lost: WHY` when no process is left that saw the program
                  end (the node's processes were killed): an infrastructure failure, never a
                  made-up exit code
  output.log      stdout+stderr of the phase, appended
  mounts.json     optional, written by the caller: [{"source": S, "target": T}, ...]; the
                  phase then runs in a private mount namespace where each S is bind-mounted
                  onto T, so a local-cloud job sees e.g. its bucket at /checkpoint while the
                  host has no /checkpoint at all (agent_rootfs.py: a missing target is made in
                  a root of the phase's own; needs root and `unshare`; else the phase fails
                  with exit code 126 and the reason in output.log)
  hooks.json      optional, written by the worker with one hook-N.sh per entry: the job's
                  preemption hooks, run once (hooks.started) by the `run` phase's supervisor
                  when a notice comes, before the phase's end is published (agent_hooks.py)
  sync.json       optional, written (0600) and renewed by the worker: buckets to keep in step
                  at their targets, each with short-lived credentials scoped to it (or none:
                  the VM's own role); re-read as they near expiry, deleted when `run` ends

On a cloud VM the supervisor also watches the cloud's interruption notice at
$SPOTCTL_METADATA_URL, as the local cloud does itself: the deadline goes to
~/.spotctl/preemption_notice and the phase gets one SIGTERM, so the program can save before the
VM is taken. $SPOTCTL_METADATA_KIND says which notice: `aws` (the default; IMDSv2
`spot/instance-action`, about two minutes ahead) or `gcp` (GCE's `instance/preempted`, about
30 s ahead). Both variables: the VM's own setting first, then env.json's.

The supervisor (heartbeats, notices, bucket syncs) is not the program's parent: a small keeper
is, so a supervisor that dies (SIGKILL, a crash on a full disk) takes nothing with it. `revive`
starts a new supervisor that adopts the running program: no second copy, no output lost, and
the exit code is still the program's own, from PHASE.rc. Every file written while the program
runs (beat, rc, exit) is made before it starts and then written in place, so a full disk cannot
stop the supervisor from beating or recording the end.

Commands (each prints one JSON object on stdout):
  start D PHASE            idempotent start; returns once PHASE.pid exists
  revive D PHASE           start a supervisor that adopts the phase if none is alive
  status D PHASE           {"started", "running", "pid", "exit_code", "lost"}
  signal D PHASE [SIG]     send SIG (default TERM) to the phase's process group
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable

try:  # on a node: the modules copied next to this file (activities/node.py AGENT_MODULES)
    import agent_files
    import agent_hooks
    import agent_mounters
    import agent_notice
    from agent_procs import group_alive, pid_alive
except ImportError:  # imported as spotctl.node_agent.agent (the worker, tests)
    from spotctl.node_agent import agent_files, agent_hooks, agent_mounters, agent_notice
    from spotctl.node_agent.agent_procs import group_alive, pid_alive

USAGE = "usage: agent.py {start|status|signal|revive} DIR PHASE [SIGNAL]\n"
START_WAIT_S = 5.0
MOUNT_FAILED = 126
LOST_EXIT = "lost: the program's exit code was not recorded (its keeper was killed)"
"""PHASE.exit of a phase whose end nobody saw: no exit code is made up."""
NEED_ROOT = ("absolute mount targets on the local cloud need root (mount namespaces); "
             "use a ~/ target instead")


def _path(d: str, phase: str, suffix: str) -> str:
    return os.path.join(d, f"{phase}.{suffix}")


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def status(d: str, phase: str) -> dict:
    """Liveness is checked before the exit file is read: the supervisor writes the exit file
    before it dies, so 'dead and no exit file' really means the phase was lost."""
    started = os.path.exists(_path(d, phase, "started"))
    pid = _read_int(_path(d, phase, "pid"))
    alive = pid_alive(pid) or pid_alive(_read_int(_path(d, phase, "spid")))
    exit_code = _read_int(_path(d, phase, "exit"))
    return {
        "started": started,
        "running": alive and exit_code is None,
        "pid": pid,
        "exit_code": exit_code,
        "lost": started and exit_code is None and not alive,
    }


def _wait_launched(d: str, phase: str) -> None:
    deadline = time.monotonic() + START_WAIT_S
    while time.monotonic() < deadline:
        if os.path.exists(_path(d, phase, "pid")) or os.path.exists(_path(d, phase, "exit")):
            return
        time.sleep(0.02)


def _private_env(d: str) -> None:
    """env.json holds the job's envs and secrets: the owner's only, whatever mode the caller's
    file copy gave it (a worker writes it 0600 through its umask; a remote copy may not)."""
    try:
        os.chmod(os.path.join(d, "env.json"), 0o600)
    except FileNotFoundError:
        pass


def start(d: str, phase: str) -> dict:
    _private_env(d)
    try:
        fd = os.open(_path(d, phase, "started"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        _wait_launched(d, phase)  # a concurrent start may still be launching it
        return {**status(d, phase), "already_started": True}
    os.write(fd, f"{time.time()}\n".encode())
    os.close(fd)
    _spawn_supervisor(d, phase)
    _wait_launched(d, phase)
    return {**status(d, phase), "already_started": False}


def _spawn_supervisor(d: str, phase: str, *extra: str) -> None:
    with open(os.path.join(d, "agent.log"), "ab") as errlog:
        subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "_supervise", d, phase, *extra],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=errlog,
            start_new_session=True,  # survives the caller and its process group
            close_fds=True,
        )


def revive(d: str, phase: str) -> dict:
    """Start a supervisor that adopts a started phase whose supervisor is gone (the watcher
    asks when the beat stopped). Harmless at any time: with a live supervisor, or once the
    phase ended, nothing is started; of two adopters started at once one exits at once."""
    st = status(d, phase)
    if not st["started"] or os.path.exists(_path(d, phase, "exit")) or supervisor_alive(d, phase):
        return {**st, "revived": False}
    _spawn_supervisor(d, phase, "adopt")
    deadline = time.monotonic() + START_WAIT_S
    while time.monotonic() < deadline and not os.path.exists(_path(d, phase, "exit")):
        if supervisor_alive(d, phase):
            break
        time.sleep(0.02)
    return {**status(d, phase), "revived": True}


def _read_mounts(d: str) -> list[dict]:
    """The bind mounts the phase needs, parents before children; [] without mounts.json."""
    try:
        with open(os.path.join(d, "mounts.json")) as f:
            raw = json.load(f)
    except FileNotFoundError:
        return []
    mounts = [{"source": str(m["source"]), "target": str(m["target"])} for m in raw]
    return sorted(mounts, key=lambda m: len(os.path.normpath(m["target"]).split(os.sep)))


def _mount_problem(mounts: list[dict], path: str | None) -> str | None:
    """Why the mounts cannot be made here (checked before anything runs), or None."""
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        return f"{NEED_ROOT} (running as uid {os.geteuid()})"
    for tool in ("unshare", "mount"):
        if shutil.which(tool, path=path) is None:
            return f"{NEED_ROOT} ({tool} not found)"
    probe = subprocess.run(
        [shutil.which("unshare", path=path) or "unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c", ":"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    if probe.returncode != 0:
        return f"{NEED_ROOT} ({probe.stderr.decode(errors='replace').strip() or 'unshare failed'})"
    for m in mounts:
        if not os.path.isabs(m["target"]):
            return f"mount target {m['target']!r} is not an absolute path"
        if not os.path.exists(m["source"]):
            return f"mount source {m['source']} does not exist"
    return None


def _rootfs_module():  # noqa: ANN202 - a module
    """agent_rootfs.py: next to this file on a node, else (the worker, tests) from spotctl."""
    try:
        import agent_rootfs  # copied next to this file
    except ImportError:
        from spotctl.node_agent import agent_rootfs
    return agent_rootfs


def _namespaced(d: str, argv: list[str], path: str | None) -> list[str]:
    """argv run by `unshare` in a private mount namespace after the bind mounts of mounts.json,
    made by agent_rootfs.py (run on its own: a phase starts sooner without this agent's
    imports). unshare and it exec in turn, so the pid (and process group) is still the
    phase's own."""
    unshare = shutil.which("unshare", path=path) or "unshare"
    return [unshare, "--mount", "--propagation", "private", "--", sys.executable, "-I", "-S",
            os.path.abspath(_rootfs_module().__file__), os.path.abspath(d), "--", *argv]


def _hook_argv(d: str, path: str | None, script: str) -> list[str]:
    """A hook's command line: run as the phase's program is, in the mounts of mounts.json."""
    try:
        mounts = _read_mounts(d)
    except (OSError, ValueError, TypeError, KeyError):
        mounts = []
    argv = ["bash", script]
    return _namespaced(d, argv, path) if mounts else argv


BEAT_S = 2.0
"""How often a supervisor bumps its PHASE.beat counter while its program runs."""
DRAIN_MAX_S = 120.0
"""How long a phase whose script was stopped by SIGTERM/SIGINT may still be saving: a spot
notice gives about two minutes before the VM is taken."""
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


SYNC_INTERVAL_S = 5.0
"""How often a synced bucket mount (sync.json) pushes what changed."""
SYNC_FINAL_MAX_S = 300.0
"""Longest final push after the phase ended (the exit code waits for it, beating)."""
SYNC_JSON = "sync.json"
"""The buckets to keep in step, with their short-lived credentials; deleted when `run` ends."""


def _make_dir(path: str) -> None:
    """Create a mount target; one outside the user's reach (/checkpoint) through sudo, as on
    a cloud image whose login user may sudo without a password."""
    try:
        os.makedirs(path, exist_ok=True)
        return
    except PermissionError:
        pass
    ids = f"{os.getuid()}:{os.getgid()}"
    for argv in (["sudo", "-n", "mkdir", "-p", path], ["sudo", "-n", "chown", ids, path]):
        subprocess.run(argv, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, timeout=30)


def _start_syncs(d: str, stop: threading.Event, mounter: str, say,
                 metadata_url: str | None = None, adopt: bool = False) -> list[threading.Thread]:
    """Make every bucket of sync.json appear at its target: MOUNT through the configured
    mounter (mount-s3 for S3, gcsfuse for GCS) when it works, else (and for MOUNT_CACHED)
    pull it and keep pushing changes in the background until `stop` (then once more). Raises
    on a failed pull: the phase must not start without its checkpoint. `metadata_url` is
    where a GCS sync gets the VM's token (None: GCE's own address). An adopting supervisor
    (`adopt`) only resumes pushing what is not mounted: the program's files are newer than the
    bucket's, and a mount made before lives on."""
    sync_json = os.path.join(d, SYNC_JSON)
    try:
        with open(sync_json) as f:
            entries = json.load(f)
    except FileNotFoundError:
        return []
    import bucket_sync  # copied next to this file; imported only when a bucket is synced

    threads = []
    for e in entries:
        if adopt and os.path.ismount(e["target"]):
            continue
        _make_dir(e["target"])
        mounted = e.get("mode") == "MOUNT" and not adopt
        make_mount = agent_mounters.MOUNTERS.get((e.get("kind", "s3"), mounter)) if mounted else None
        if make_mount is not None:
            if make_mount({**e, "sync_json": sync_json}, say):
                continue
            say(f"{e['target']}: MOUNT falls back to a synced copy (pushed every {SYNC_INTERVAL_S:g}s)")
        # The worker renews the entry's short-lived credentials in sync.json: re-read near expiry.
        client = bucket_sync.client_for(e, metadata_url, functools.partial(bucket_sync.entry_of, sync_json, e["target"]))
        mount = bucket_sync.CachedMount(e["bucket"], e.get("prefix") or "", e["target"], client)
        if not adopt:
            mount.pull()
        t = threading.Thread(target=mount.run_until, args=(stop, SYNC_INTERVAL_S), daemon=True)
        t.start()
        threads.append(t)
    return threads


def _hold_lock(d: str, phase: str) -> int | None:
    """An fd holding PHASE.lock (the supervisor's, for its whole life), or None when another
    process holds it. flock dies with its holder, so a killed supervisor frees it at once;
    the fd is not inherited (PEP 446), so the keeper and the program never hold it."""
    fd = os.open(_path(d, phase, "lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def supervisor_alive(d: str, phase: str) -> bool:
    fd = _hold_lock(d, phase)
    if fd is None:
        return True
    os.close(fd)
    return False


def _try(write: Callable[..., object], *args: object) -> bool:
    """A state write that must not kill the supervisor (a full disk): False when it failed."""
    try:
        write(*args)
        return True
    except OSError:
        return False


class _Beat:
    """PHASE.beat, bumped in place at most every BEAT_S seconds (no new block: a full disk
    cannot stop it). An adopting supervisor goes on from the last value, so it changes."""

    def __init__(self, d: str, phase: str) -> None:
        self.path = _path(d, phase, "beat")
        try:
            with open(self.path) as f:
                self.n = int((f.read().split() or ["0"])[0])
        except (OSError, ValueError):
            self.n = 0
        self.next_at = 0.0
        if not os.path.exists(self.path):
            _try(agent_files.reserve, self.path)

    def __call__(self) -> None:
        if time.monotonic() < self.next_at:
            return
        self.next_at = time.monotonic() + BEAT_S
        self.n += 1
        # A counter, not a time: the watcher compares successive reads, so the node's and the
        # watcher's clocks never need to agree. It stops changing when the supervisor dies.
        text = f"{self.n} nospace" if _disk_full(self.path) else str(self.n)
        if not _try(agent_files.write_in_place, self.path, text, False):
            _try(agent_files.write_atomic, self.path, text)


FULL_BELOW_BYTES = 64 * 1024
"""A disk with less free space than this (for an unprivileged writer) is reported full."""


def _disk_full(path: str) -> bool:
    """Whether the disk holding `path` is (all but) full: the watcher shows it as the reason
    of a program's write errors and of output that stops."""
    try:
        st = os.statvfs(path)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < FULL_BELOW_BYTES


def _is_keeper(pid: int | None, d: str) -> bool:
    """Whether pid is this attempt's keeper (not a stranger that reuses its pid)."""
    if not pid_alive(pid):
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            args = f.read().split(b"\0")
    except OSError:
        return True  # no /proc (not Linux): trust kill(0)
    return b"_keep" in args and os.fsencode(d) in args


def _keep(d: str, phase: str, argv: list[str]) -> None:
    """The program's parent: start it in its own session, wait, write its exit code in place
    into the reserved PHASE.rc. Nothing else, so it hardly ever fails; the supervisor may die
    and be replaced meanwhile. Stop signals are for the program's group, not for this."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, lambda *_: None)  # a handler, not SIG_IGN: reset at the exec
    log = os.open(os.path.join(d, "output.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    except OSError as exc:
        _try(os.write, log, f"spotctl agent: cannot start {phase}: {exc}\n".encode())
        code = 127
    else:
        while not _try(agent_files.write_atomic, _path(d, phase, "pid"), str(proc.pid)) and proc.poll() is None:
            time.sleep(BEAT_S)  # without it nobody can signal the program: keep trying
        rc = proc.wait()
        code = rc if rc >= 0 else 128 - rc
    while not _try(agent_files.write_in_place, _path(d, phase, "rc"), str(code)):
        if not os.path.exists(_path(d, phase, "rc")) and _try(agent_files.write_atomic, _path(d, phase, "rc"), str(code)):
            return
        time.sleep(BEAT_S)


def _wait_program(d: str, phase: str, keeper: subprocess.Popen | None, beat: _Beat) -> int | None:
    """Beat until the program's exit code is in PHASE.rc; None when the keeper died without
    writing it (then after the program's group is gone too: no code is known)."""
    rc_file = _path(d, phase, "rc")
    while True:
        beat()
        code = _read_int(rc_file)
        if code is not None:
            return code
        if keeper is not None:
            try:
                keeper.wait(timeout=BEAT_S)
            except subprocess.TimeoutExpired:
                continue
        elif _is_keeper(_read_int(_path(d, phase, "kpid")), d):
            time.sleep(BEAT_S / 4)
            continue
        code = _read_int(rc_file)
        if code is not None:
            return code
        break
    pgid = _read_int(_path(d, phase, "pid"))
    while pgid and group_alive(pgid):
        beat()
        time.sleep(BEAT_S / 4)
    return None


def _finish(d: str, phase: str, text: str, beat: _Beat) -> None:
    """Publish the phase's end; a write that fails (a full disk) is retried, beating, for as
    long as it takes: the exit code is never given up. The end of `run` is the end of the
    attempt: its bucket credentials go first (they also expire)."""
    if phase == "run":
        _remove_credentials(d)
    while not _try(agent_files.publish_reserved, _path(d, phase, "exit.next"), _path(d, phase, "exit"), text):
        beat()
        time.sleep(BEAT_S)


def _supervise(d: str, phase: str, adopt: bool = False) -> None:
    """Start the phase's program through a keeper (or, `adopt`ing, find it running), beat while
    it runs, forward TERM/INT to its group, and publish its end. One supervisor at a time."""
    lock = _hold_lock(d, phase)
    if lock is None or os.path.exists(_path(d, phase, "exit")):
        return  # another supervisor has the phase, or it has ended
    _try(agent_files.write_atomic, _path(d, phase, "spid"), str(os.getpid()))
    beat = _Beat(d, phase)
    for name in ("exit.next",) if adopt else ("exit.next", "rc"):
        _try(agent_files.reserve, _path(d, phase, name))
    pending: list[int] = []
    stopped: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        stopped.append(signum)
        pid = _read_int(_path(d, phase, "pid"))
        if pid is None:
            pending.append(signum)
            return
        try:
            os.killpg(pid, signum)
        except (ProcessLookupError, PermissionError):
            pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)

    env = dict(os.environ)
    try:
        with open(os.path.join(d, "env.json")) as f:
            env.update({str(k): str(v) for k, v in json.load(f).items()})
    except FileNotFoundError:
        pass
    home = env.get("HOME") or os.path.expanduser("~")
    log = os.open(os.path.join(d, "output.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def say(line: str) -> None:
        _try(os.write, log, f"spotctl agent: {line}\n".encode())

    metadata = os.environ.get("SPOTCTL_METADATA_URL") or env.get("SPOTCTL_METADATA_URL")
    kind = (os.environ.get("SPOTCTL_METADATA_KIND") or env.get("SPOTCTL_METADATA_KIND") or "aws").lower()
    sync_stop = threading.Event()
    sync_url = metadata.rstrip("/") if metadata and kind == "gcp" else None
    keeper = None
    if adopt:
        say(f"the supervisor of {phase} was lost; a new one adopts the running program")
        try:
            syncs = _start_syncs(d, sync_stop, env.get("SPOTCTL_MOUNTER", "sync"), say, sync_url, adopt=True)
        except Exception as exc:  # noqa: BLE001 - the program runs on; its buckets are not pushed
            say(f"bucket sync not resumed: {exc}")
            syncs = []
    else:
        argv = ["bash", os.path.abspath(_path(d, phase, "sh"))]
        try:
            mounts = _read_mounts(d)
            problem = _mount_problem(mounts, env.get("PATH")) if mounts else None
        except (OSError, ValueError, TypeError, KeyError) as exc:
            problem = f"unreadable mounts.json: {exc!r}"
        if problem:
            say(f"cannot start {phase}: {problem}")
            _finish(d, phase, str(MOUNT_FAILED), beat)
            return
        if mounts:
            argv = _namespaced(d, argv, env.get("PATH"))
        try:
            syncs = _start_syncs(d, sync_stop, env.get("SPOTCTL_MOUNTER", "sync"), say, sync_url)
        except Exception as exc:  # noqa: BLE001 - any failure: the phase cannot start
            say(f"cannot start {phase}: bucket sync failed: {exc}")
            _finish(d, phase, str(MOUNT_FAILED), beat)
            return
        with open(os.path.join(d, "agent.log"), "ab") as errlog:
            keeper = subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), "_keep", d, phase, *argv],
                cwd=home if os.path.isdir(home) else None, env=env, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=errlog, start_new_session=True,
            )
        _try(agent_files.write_atomic, _path(d, phase, "kpid"), str(keeper.pid))
        _wait_launched(d, phase)
        for signum in pending:
            forward(signum, None)
    phase_done = threading.Event()
    hooks = agent_hooks.PreemptionHooks(d, home, env, functools.partial(_hook_argv, d, env.get("PATH")), log, say)
    if phase == "run":  # the job's preemption hooks, when a notice comes (agent_hooks.py)
        hooks.start(phase_done)
    watcher = agent_notice.NOTICE_WATCHERS.get(kind)
    if metadata and watcher is None:
        say(f"unknown SPOTCTL_METADATA_KIND {kind!r} (aws or gcp): no interruption notice is watched")
    elif metadata:
        threading.Thread(target=watcher, daemon=True,
                         args=(metadata.rstrip("/"), home, lambda: forward(signal.SIGTERM, None), phase_done)).start()
    code = _wait_program(d, phase, keeper, beat)
    pgid = _read_int(_path(d, phase, "pid"))
    if code is not None and pgid and (stopped or code - 128 in STOP_SIGNALS):
        # The script (bash) died of a stop signal, but the program it ran may still be saving
        # its checkpoint and printing: the exit code is what tells the watcher the phase is
        # over (and a spot VM's teardown may follow at once), so it waits for the group.
        deadline = time.monotonic() + DRAIN_MAX_S
        while group_alive(pgid) and time.monotonic() < deadline:
            beat()
            time.sleep(0.1)
    phase_done.set()
    hooks.wait(beat)  # a hook's files are pushed and its output is in the log before the end
    sync_stop.set()  # the last push of every synced bucket, before the exit code says "done"
    deadline = time.monotonic() + SYNC_FINAL_MAX_S
    while any(t.is_alive() for t in syncs) and time.monotonic() < deadline:
        beat()
        for t in syncs:
            t.join(timeout=BEAT_S / max(len(syncs), 1))
    if code is None:
        say(f"{phase} ended unobserved: its keeper was killed, so its exit code is unknown")
    _finish(d, phase, str(code) if code is not None else LOST_EXIT, beat)


def _remove_credentials(d: str) -> None:
    """Delete sync.json and the mounters' credential profiles next to it."""
    for name in os.listdir(d):
        if name == SYNC_JSON or name.startswith("aws-config-"):
            try:
                os.unlink(os.path.join(d, name))
            except OSError:
                pass


def send_signal(d: str, phase: str, name: str) -> dict:
    name = name.upper()
    sig = int(name) if name.isdigit() else getattr(signal, name if name.startswith("SIG") else "SIG" + name)
    pid = _read_int(_path(d, phase, "pid"))
    # Only signal a group we created and that has not finished (guards against pid reuse).
    if pid is not None and pid_alive(pid) and not os.path.exists(_path(d, phase, "exit")):
        try:
            if os.getpgid(pid) == pid:
                os.killpg(pid, sig)
        except ProcessLookupError:
            pass
    return status(d, phase)


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[0] not in ("start", "status", "signal", "revive", "_supervise", "_keep"):
        sys.stderr.write(USAGE)
        return 2
    cmd, d, phase = argv[0], argv[1], argv[2]
    if cmd == "_supervise":
        _supervise(d, phase, adopt=argv[3:] == ["adopt"])
        return 0
    if cmd == "_keep":
        _keep(d, phase, argv[3:])
        return 0
    if cmd == "start":
        if not os.path.isdir(d):
            sys.stderr.write(f"agent.py: no such attempt directory: {d}\n")
            return 2
        result = start(d, phase)
    elif cmd == "status":
        result = status(d, phase)
    elif cmd == "revive":
        result = revive(d, phase)
    else:
        try:
            result = send_signal(d, phase, argv[3] if len(argv) > 3 else "TERM")
        except (AttributeError, ValueError):
            sys.stderr.write(f"agent.py: unknown signal {argv[3]!r}\n")
            return 2
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
