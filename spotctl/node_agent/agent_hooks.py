"""Preemption hooks on the node (stdlib only; copied next to agent.py and imported by it).

SkyPilot's `config.hooks` entries whose events include `preemption` are written by the worker
next to run.sh as `hook-N.sh` (each a script like run.sh: it starts in the synced workdir when
there is one) and `hooks.json` ([{"script", "timeout_s"}], in declaration order). The `run`
phase's supervisor watches the node's preemption notice (~/.spotctl/preemption_notice: written
by the agent's own watcher of AWS's or GCP's metadata, or by the local cloud itself) and, when a
notice comes while the program runs, runs the hooks once, one after another, while the program
saves on its SIGTERM:

- as the program runs: the same environment (the job's envs, secrets and SKYPILOT_* variables,
  from env.json) plus SKYPILOT_HOOK_EVENT=preemption, the same working directory, user, sandbox,
  cgroup and mounts (mounts.json), and output appended to the job's log (output.log), between
  the agent's lines `preemption hook i/n started (...)` and `... ended (exit N, 3.2 s)`;
- within the notice: each hook gets min(its timeout, what is left until `deadline - margin`),
  and its whole process group is SIGKILLed at that limit (and when it ends, so nothing it left
  running outlives it). The margin (`margin_s`) leaves the agent time to record the end, the
  last bucket push and the exit code before the VM is taken;
- once per attempt (`hooks.started`, made with O_EXCL): a supervisor that adopts the phase never
  runs them again.

A hook's exit code or time-out never changes the job's outcome: the supervisor publishes the
program's own exit code once the hooks are over, and the worker sees a preemption.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable

try:  # on a node: next to agent.py
    from agent_notice import NOTICE_FILE
except ImportError:  # imported as spotctl.node_agent.agent_hooks
    from spotctl.node_agent.agent_notice import NOTICE_FILE

HOOKS_JSON = "hooks.json"
"""In the attempt's directory: the preemption hooks, in order; absent when the job has none."""
HOOKS_CLAIM = "hooks.started"
"""Created (O_EXCL) by the one supervisor that runs the hooks."""
EVENT = "preemption"
EVENT_ENV = "SKYPILOT_HOOK_EVENT"
"""SkyPilot's variable naming the event a hook runs for."""
POLL_S = 0.2
"""How often the notice file is looked at while the program runs (one stat)."""
MARGIN_MAX_S = 5.0
"""The most a notice keeps back from the hooks, for what follows them on the node: a synced
bucket's last push (after the hooks, so it carries what they wrote; one push interval, agent.py's
SYNC_INTERVAL_S, is what a checkpoint of the last seconds needs), then the exit code. The kill
and the agent's log lines take milliseconds."""
MARGIN_FRACTION = 0.2
"""...and at most this share of a short notice (a 4 s notice keeps 0.8 s back, not all of it)."""
MAX_WAIT_S = 300.0
"""The supervisor waits at most this long for the hooks (they end with the notice anyway)."""


def margin_s(left_s: float) -> float:
    """What a notice `left_s` seconds away keeps back from the hooks: AWS's 120 s notice gives
    them until 5 s before the VM is taken, GCP's 30 s too, a 4 s local notice until 0.8 s before."""
    return min(MARGIN_MAX_S, MARGIN_FRACTION * max(0.0, left_s))


def read_deadline(home: str) -> float | None:
    """The notice's deadline (epoch seconds), or None when there is no notice (yet)."""
    try:
        with open(os.path.join(home, NOTICE_FILE)) as f:
            return float(f.read().strip())
    except (OSError, ValueError):
        return None


def load_hooks(d: str) -> list[dict]:
    """The attempt's preemption hooks ([] without hooks.json, or with an unreadable one)."""
    try:
        with open(os.path.join(d, HOOKS_JSON)) as f:
            raw = json.load(f)
        return [{"script": str(h["script"]), "timeout_s": float(h["timeout_s"])} for h in raw]
    except (OSError, ValueError, TypeError, KeyError):  # none (no hooks.json), or unreadable
        return []


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class PreemptionHooks:
    """Watches for the notice while the phase runs (a thread), then runs the hooks once."""

    def __init__(self, d: str, home: str, env: dict[str, str], argv_for: Callable[[str], list[str]],
                 log: int, say: Callable[[str], None]) -> None:
        self.d, self.home, self.log, self.say = d, home, log, say
        self.env = {**env, EVENT_ENV: EVENT}
        self.argv_for = argv_for
        self.hooks = load_hooks(d)
        self.since = time.time()
        """A notice whose deadline passed before this supervisor began is an old one."""
        self.thread: threading.Thread | None = None

    def start(self, phase_done: threading.Event) -> None:
        if self.hooks:
            self.thread = threading.Thread(target=self._watch, args=(phase_done,), daemon=True)
            self.thread.start()

    def wait(self, beat: Callable[[], None]) -> None:
        """Until the hooks are over (at most MAX_WAIT_S), beating: the exit code waits for them,
        so the worker never tears the VM down under a running hook."""
        deadline = time.monotonic() + MAX_WAIT_S
        while self.thread is not None and self.thread.is_alive() and time.monotonic() < deadline:
            beat()
            self.thread.join(timeout=0.5)

    def _watch(self, phase_done: threading.Event) -> None:
        # One more look after the phase ended: a program that exits on the notice's SIGTERM
        # may end before the next poll, and its notice still gets its hooks.
        while not self._on_notice() and not phase_done.is_set():
            phase_done.wait(POLL_S)

    def _on_notice(self) -> bool:
        """Run the hooks if a notice came (True: nothing more to watch for)."""
        deadline = read_deadline(self.home)
        if deadline is None or deadline <= self.since:
            return False
        try:
            os.close(os.open(os.path.join(self.d, HOOKS_CLAIM), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            return True  # a supervisor before this one ran them
        except OSError as exc:
            self.say(f"preemption hooks not run: {exc}")
            return True
        left = deadline - time.time()
        end_by = deadline - margin_s(left)
        for i, hook in enumerate(self.hooks, 1):
            self._run(f"preemption hook {i}/{len(self.hooks)}", hook, deadline, end_by)
        return True

    def _run(self, tag: str, hook: dict, deadline: float, end_by: float) -> None:
        limit = min(hook["timeout_s"], end_by - time.time())
        if limit <= 0:
            self.say(f"{tag} skipped: no time left before the VM is taken")
            return
        self.say(f"{tag} started (time limit {limit:.1f} s; the notice ends in {deadline - time.time():.1f} s)")
        began = time.monotonic()
        try:
            proc = subprocess.Popen(
                self.argv_for(os.path.join(self.d, hook["script"])),
                cwd=self.home if os.path.isdir(self.home) else None, env=self.env, stdin=subprocess.DEVNULL,
                stdout=self.log, stderr=self.log, start_new_session=True,
            )
        except OSError as exc:
            self.say(f"{tag} could not start: {exc}")
            return
        try:
            rc: int | None = proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            rc = None
        _kill_group(proc.pid)  # at the limit, or what the hook left running when it ended
        proc.wait()
        took = time.monotonic() - began
        if rc is None:
            self.say(f"{tag} killed at its time limit ({limit:.1f} s)")
        else:
            self.say(f"{tag} ended (exit {rc if rc >= 0 else 128 - rc}, {took:.1f} s)")
