#!/usr/bin/env python3
"""spotctl node agent: start, watch and signal one phase (setup/run) of a job attempt.

Stdlib only: this file is copied to every node and run as `python3 agent.py ...`.

An attempt directory D holds `env.json` and `<phase>.sh`, written by the caller. The agent
keeps all of its state in files next to them, so any later call (from a restarted worker,
after the caller was killed) can answer from the files alone:

  PHASE.started   created with O_EXCL: exactly one `start` wins, ever
  PHASE.spid      pid of the detached supervisor
  PHASE.pid       pid of `bash PHASE.sh` (also its process group id)
  PHASE.exit      the exit code (128+signum for a signal death), written when it ends
  output.log      stdout+stderr of the phase, appended
  mounts.json     optional, written by the caller: [{"source": S, "target": T}, ...]; the
                  phase then runs in a private mount namespace where each S is bind-mounted
                  onto T, so a local-cloud job sees e.g. its bucket at /checkpoint while the
                  host has no /checkpoint at all (agent_rootfs.py: a missing target is made in
                  a root of the phase's own; needs root and `unshare`; else the phase fails
                  with exit code 126 and the reason in output.log)
  sync.json       optional, written (0600) and renewed by the worker: buckets to keep in step
                  at their targets, each with short-lived credentials scoped to it (or none:
                  the VM's own role); re-read as they near expiry, deleted when `run` ends

On a cloud VM the supervisor also watches the cloud's interruption notice at
$SPOTCTL_METADATA_URL, as the local cloud does itself: the deadline goes to
~/.spotctl/preemption_notice and the phase gets one SIGTERM, so the program can save before the
VM is taken. $SPOTCTL_METADATA_KIND says which notice: `aws` (the default; IMDSv2
`spot/instance-action`, about two minutes ahead) or `gcp` (GCE's `instance/preempted`, about
30 s ahead). Both variables: the VM's own setting first, then env.json's.

Commands (each prints one JSON object on stdout):
  start D PHASE            idempotent start; returns once PHASE.pid exists
  status D PHASE           {"started", "running", "pid", "exit_code", "lost"}
  signal D PHASE [SIG]     send SIG (default TERM) to the phase's process group
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

try:  # on a node: the modules copied next to this file (activities/node.py AGENT_MODULES)
    import agent_files
    import agent_mounters
    import agent_notice
except ImportError:  # imported as spotctl.remote.agent (the worker, tests)
    from spotctl.remote import agent_files, agent_mounters, agent_notice

USAGE = "usage: agent.py {start|status|signal} DIR PHASE [SIGNAL]\n"
START_WAIT_S = 5.0
MOUNT_FAILED = 126
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




def pid_alive(pid: int | None) -> bool:
    """True if pid is a live process; zombies count as dead (nobody may ever reap them)."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return True  # no /proc (not Linux): trust kill(0)


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
    with open(os.path.join(d, "agent.log"), "ab") as errlog:
        subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "_supervise", d, phase],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=errlog,
            start_new_session=True,  # survives the caller and its process group
            close_fds=True,
        )
    _wait_launched(d, phase)
    return {**status(d, phase), "already_started": False}


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
        [shutil.which("unshare", path=path), "--mount", "--propagation", "private", "--", "/bin/sh", "-c", ":"],
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
        from spotctl.remote import agent_rootfs
    return agent_rootfs


def _namespaced(d: str, argv: list[str], path: str | None) -> list[str]:
    """argv run by `unshare` in a private mount namespace after the bind mounts of mounts.json,
    made by agent_rootfs.py (run on its own: a phase starts sooner without this agent's
    imports). unshare and it exec in turn, so the pid (and process group) is still the
    phase's own."""
    unshare = shutil.which("unshare", path=path) or "unshare"
    return [unshare, "--mount", "--propagation", "private", "--", sys.executable, "-I", "-S",
            os.path.abspath(_rootfs_module().__file__), os.path.abspath(d), "--", *argv]


BEAT_S = 2.0
DRAIN_MAX_S = 120.0
"""How long a phase whose script was stopped by SIGTERM/SIGINT may still be saving: a spot
notice gives about two minutes before the VM is taken."""
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def group_alive(pgid: int) -> bool:
    """Whether any process of the group still runs (zombies do not count: on some machines
    nobody reaps orphans)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            return True
    return False
"""How often a supervisor bumps its PHASE.beat counter while its program runs."""


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
                 metadata_url: str | None = None) -> list[threading.Thread]:
    """Make every bucket of sync.json appear at its target: MOUNT through the configured
    mounter (mount-s3 for S3, gcsfuse for GCS) when it works, else (and for MOUNT_CACHED)
    pull it and keep pushing changes in the background until `stop` (then once more). Raises
    on a failed pull: the phase must not start without its checkpoint. `metadata_url` is
    where a GCS sync gets the VM's token (None: GCE's own address)."""
    sync_json = os.path.join(d, SYNC_JSON)
    try:
        with open(sync_json) as f:
            entries = json.load(f)
    except FileNotFoundError:
        return []
    import bucket_sync  # copied next to this file; imported only when a bucket is synced

    threads = []
    for e in entries:
        _make_dir(e["target"])
        make_mount = agent_mounters.MOUNTERS.get((e.get("kind", "s3"), mounter)) if e.get("mode") == "MOUNT" else None
        if make_mount is not None:
            if make_mount({**e, "sync_json": sync_json}, say):
                continue
            say(f"{e['target']}: MOUNT falls back to a synced copy (pushed every {SYNC_INTERVAL_S:g}s)")
        # The worker renews the entry's short-lived credentials in sync.json: re-read near expiry.
        client = bucket_sync.client_for(e, metadata_url, functools.partial(bucket_sync.entry_of, sync_json, e["target"]))
        mount = bucket_sync.CachedMount(e["bucket"], e.get("prefix") or "", e["target"], client)
        mount.pull()
        t = threading.Thread(target=mount.run_until, args=(stop, SYNC_INTERVAL_S), daemon=True)
        t.start()
        threads.append(t)
    return threads


def _supervise(d: str, phase: str) -> None:
    """Run the phase script, record its pid and exit code; forward TERM/INT to its group."""
    agent_files.write_atomic(_path(d, phase, "spid"), str(os.getpid()))
    child: list[subprocess.Popen] = []
    pending: list[int] = []

    stopped: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        stopped.append(signum)
        if child:
            try:
                os.killpg(child[0].pid, signum)
            except ProcessLookupError:
                pass
        else:
            pending.append(signum)

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
    argv = ["bash", os.path.abspath(_path(d, phase, "sh"))]
    try:
        mounts = _read_mounts(d)
        problem = _mount_problem(mounts, env.get("PATH")) if mounts else None
    except (OSError, ValueError, TypeError, KeyError) as exc:
        problem = f"unreadable mounts.json: {exc!r}"
    if problem:
        os.write(log, f"spotctl agent: cannot start {phase}: {problem}\n".encode())
        if phase == "run":
            _remove_credentials(d)
        agent_files.write_atomic(_path(d, phase, "exit"), str(MOUNT_FAILED))
        return
    if mounts:
        argv = _namespaced(d, argv, env.get("PATH"))
    def say(line: str) -> None:
        os.write(log, f"spotctl agent: {line}\n".encode())

    metadata = os.environ.get("SPOTCTL_METADATA_URL") or env.get("SPOTCTL_METADATA_URL")
    kind = (os.environ.get("SPOTCTL_METADATA_KIND") or env.get("SPOTCTL_METADATA_KIND") or "aws").lower()
    sync_stop = threading.Event()
    try:
        syncs = _start_syncs(d, sync_stop, env.get("SPOTCTL_MOUNTER", "sync"), say,
                             metadata.rstrip("/") if metadata and kind == "gcp" else None)
    except Exception as exc:  # noqa: BLE001 - any failure: the phase cannot start
        os.write(log, f"spotctl agent: cannot start {phase}: bucket sync failed: {exc}\n".encode())
        if phase == "run":
            _remove_credentials(d)
        agent_files.write_atomic(_path(d, phase, "exit"), str(MOUNT_FAILED))
        return
    try:
        proc = subprocess.Popen(
            argv,
            cwd=home if os.path.isdir(home) else None,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    except OSError as exc:
        os.write(log, f"spotctl agent: cannot start {phase}: {exc}\n".encode())
        if phase == "run":
            _remove_credentials(d)
        agent_files.write_atomic(_path(d, phase, "exit"), "127")
        return
    child.append(proc)
    agent_files.write_atomic(_path(d, phase, "pid"), str(proc.pid))
    for signum in pending:
        forward(signum, None)
    phase_done = threading.Event()
    watcher = agent_notice.NOTICE_WATCHERS.get(kind)
    if metadata and watcher is None:
        say(f"unknown SPOTCTL_METADATA_KIND {kind!r} (aws or gcp): no interruption notice is watched")
    elif metadata:
        threading.Thread(target=watcher, daemon=True,
                         args=(metadata.rstrip("/"), home, lambda: forward(signal.SIGTERM, None), phase_done)).start()
    beats = 0
    while True:
        # A counter, not a time: the watcher compares successive reads, so the node's and the
        # watcher's clocks never need to agree. It stops changing when the supervisor dies.
        beats += 1
        agent_files.write_atomic(_path(d, phase, "beat"), str(beats))
        try:
            rc = proc.wait(timeout=BEAT_S)
            break
        except subprocess.TimeoutExpired:
            continue
    if stopped or -rc in STOP_SIGNALS:
        # The script (bash) died of a stop signal, but the program it ran may still be saving
        # its checkpoint and printing: the exit code is what tells the watcher the phase is
        # over (and a spot VM's teardown may follow at once), so it waits for the group.
        deadline = next_beat = time.monotonic()
        deadline += DRAIN_MAX_S
        while group_alive(proc.pid) and time.monotonic() < deadline:
            if time.monotonic() >= next_beat:
                beats += 1
                agent_files.write_atomic(_path(d, phase, "beat"), str(beats))
                next_beat += BEAT_S
            time.sleep(0.1)
    phase_done.set()
    sync_stop.set()  # the last push of every synced bucket, before the exit code says "done"
    deadline = time.monotonic() + SYNC_FINAL_MAX_S
    while any(t.is_alive() for t in syncs) and time.monotonic() < deadline:
        beats += 1
        agent_files.write_atomic(_path(d, phase, "beat"), str(beats))
        for t in syncs:
            t.join(timeout=BEAT_S / max(len(syncs), 1))
    if phase == "run":  # the attempt is over: its bucket credentials go (they also expire)
        _remove_credentials(d)
    agent_files.write_atomic(_path(d, phase, "exit"), str(rc if rc >= 0 else 128 - rc))


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
    if pid_alive(pid) and not os.path.exists(_path(d, phase, "exit")):
        try:
            if os.getpgid(pid) == pid:
                os.killpg(pid, sig)
        except ProcessLookupError:
            pass
    return status(d, phase)


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[0] not in ("start", "status", "signal", "_supervise"):
        sys.stderr.write(USAGE)
        return 2
    cmd, d, phase = argv[0], argv[1], argv[2]
    if cmd == "_supervise":
        _supervise(d, phase)
        return 0
    if cmd == "start":
        if not os.path.isdir(d):
            sys.stderr.write(f"agent.py: no such attempt directory: {d}\n")
            return 2
        result = start(d, phase)
    elif cmd == "status":
        result = status(d, phase)
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
