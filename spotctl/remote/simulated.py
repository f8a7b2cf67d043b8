"""SimulatedRunner: a local-cloud node whose program is a timer, not a process.

The benchmark mode of the local cloud (`simulate:` in its config.yaml) makes instances whose
"program" runs for a set time and prints at a set rate without any process on this machine,
so the controller's own cost (workflows, activities, heartbeats, the log store) can be
measured at thousands of jobs without thousands of supervisors eating the machine.

Everything the controller does on a node still happens through the Runner protocol, on the
instance's real sandbox directory: files are written and read, the agent's `start` and
`signal` are answered here instead of by the agent, and the phase's files the monitor reads
are computed from the start time:
- `output.log` of a started run: one fixed-width line per 1/lines_per_s seconds (so any byte
  offset is computed, not stored);
- `<phase>.beat`: a counter that moves every BEAT_S seconds while the phase runs;
- `<phase>.exit`: the exit code once the phase's time is up (setup takes setup_s, run run_s),
  or the code a signal gave it.
A preempted instance's clock stops at its `stopped` marker's time, like a program that was
killed: no exit code, and the output ends there. Other commands run for real (they are short:
the file-mount steps of a task that has any).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from spotctl.remote.base import CommandResult
from spotctl.remote.local import LocalRunner, stopped_marker

SIMULATED_MARKER = "simulated"
"""Next to a simulated instance's home: its program's parameters (JSON)."""
BEAT_S = 2.0
LINE_WIDTH = 16
"""Every output line is `step 000000042 \\n`-shaped: 16 bytes, so an offset maps to a line."""
SIGNAL_CODES = {"TERM": 143, "SIGTERM": 143, "KILL": 137, "SIGKILL": 137, "INT": 130, "SIGINT": 130}


@dataclass(frozen=True)
class Program:
    """What a simulated instance's programs do."""

    run_s: float
    lines_per_s: float
    exit_code: int = 0
    setup_s: float = 0.0

    def duration(self, phase: str) -> float:
        return self.run_s if phase == "run" else self.setup_s


def simulated_marker(home: Path | str) -> Path:
    return Path(home).parent / SIMULATED_MARKER


def mark_simulated(home: Path, program: Program) -> None:
    """Make the instance at `home` a simulated one (the cloud does this when it creates it)."""
    simulated_marker(home).write_text(json.dumps(program.__dict__))


def is_simulated(home: Path | str) -> bool:
    return simulated_marker(home).exists()


def line(k: int) -> bytes:
    return f"step {k:09d} \n".encode()


class SimulatedRunner(LocalRunner):
    """A LocalRunner whose agent is simulated: see the module docstring."""

    def __init__(self, home: Path, instance_id: str) -> None:
        super().__init__(home, instance_id)
        self.program = Program(**json.loads(simulated_marker(home).read_text()))

    def __repr__(self) -> str:
        return f"SimulatedRunner({self.instance_id}, home={self.home})"

    # -- the agent ---------------------------------------------------------------------------

    def run(self, argv: list[str], env: dict[str, str] | None = None, timeout: float = 60) -> CommandResult:
        if len(argv) < 5 or not argv[1].endswith("agent.py"):
            return super().run(argv, env, timeout)
        self._check_running()
        cmd, attempt_dir, phase = argv[2], self._node_path(argv[3]), argv[4]
        if cmd == "start":
            started = attempt_dir / f"{phase}.simstart"
            if not started.exists():  # the agent refuses a second start: so does this
                self.write_file(str(started), f"{time.time():.6f}".encode())
        elif cmd == "signal":
            code = SIGNAL_CODES.get(argv[5].upper() if len(argv) > 5 else "TERM", 143)
            if self._ended_at(attempt_dir, phase) is None and not (attempt_dir / f"{phase}.exit").exists():
                self.write_file(str(attempt_dir / f"{phase}.exit"), str(code).encode())
        return CommandResult(0, json.dumps({"phase": phase, "simulated": True}) + "\n", "")

    # -- the phase's files ---------------------------------------------------------------------

    def read_file(self, remote_path: str, offset: int = 0, max_bytes: int = 1 << 20) -> bytes:
        path = self._node_path(remote_path)
        name = path.name
        if name == "output.log":
            self.check_alive()
            return self._output(path.parent, offset, max_bytes)
        for suffix in (".exit", ".beat"):
            if name.endswith(suffix):
                real = super().read_file(remote_path, offset, max_bytes)
                if real:
                    return real
                phase = name[: -len(suffix)]
                value = self._exit(path.parent, phase) if suffix == ".exit" else self._beat(path.parent, phase)
                return b"" if value is None else str(value).encode()[offset:offset + max_bytes]
        return super().read_file(remote_path, offset, max_bytes)

    def _started(self, attempt_dir: Path, phase: str) -> float | None:
        try:
            return float((attempt_dir / f"{phase}.simstart").read_text())
        except (FileNotFoundError, ValueError):
            return None

    def _now(self) -> float:
        """The program's clock: stopped when the instance was preempted."""
        try:
            return os.stat(stopped_marker(self._home)).st_mtime
        except FileNotFoundError:
            return time.time()

    def _ended_at(self, attempt_dir: Path, phase: str) -> float | None:
        start = self._started(attempt_dir, phase)
        if start is None:
            return None
        end = start + self.program.duration(phase)
        return end if self._now() >= end else None

    def _exit(self, attempt_dir: Path, phase: str) -> int | None:
        if self._ended_at(attempt_dir, phase) is None:
            return None
        return self.program.exit_code if phase == "run" else 0

    def _beat(self, attempt_dir: Path, phase: str) -> int | None:
        start = self._started(attempt_dir, phase)
        return None if start is None else int((self._now() - start) / BEAT_S) + 1

    def _output(self, attempt_dir: Path, offset: int, max_bytes: int) -> bytes:
        start = self._started(attempt_dir, "run")
        if start is None:
            return b""
        elapsed = min(self._now() - start, self.program.run_s)
        lines = int(elapsed * self.program.lines_per_s)
        end = min(lines * LINE_WIDTH, offset + max_bytes)
        if end <= offset:
            return b""
        first, last = offset // LINE_WIDTH, (end - 1) // LINE_WIDTH
        text = b"".join(line(k) for k in range(first, last + 1))
        skip = offset - first * LINE_WIDTH
        return text[skip:skip + end - offset]
