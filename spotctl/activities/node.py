"""The node side of an attempt: its directory, environment, scripts, and the agent calls.

Every node keeps `~/.spotctl/job-<id>/attempt-<n>/` with `env.json` (0600: it holds the envs and
secrets), `setup.sh`, `run.sh`, `output.log` and the agent's `<phase>.pid|.exit` files. The agent
(node_agent/agent.py) refuses to start a phase twice, which is what makes the setup and run
activities safe to retry.
"""

from __future__ import annotations

import asyncio
import json
import shlex
from dataclasses import dataclass
from pathlib import Path

from spotctl import node_agent
from spotctl.models import AttemptRef
from spotctl.models.skypilot_ids import task_id, task_ids
from spotctl.node_agent.agent_notice import NOTICE_FILE  # the node agent's file is the contract
from spotctl.remote.base import Runner

AGENT_SOURCE = Path(node_agent.__file__).resolve().parent / "agent.py"
AGENT_MODULES = tuple(sorted(p for p in AGENT_SOURCE.parent.glob("*.py") if p.name not in ("agent.py", "__init__.py")))
"""Every other module of node_agent/, copied next to the agent (bucket sync, state files, notice
watchers, mounters, a phase's own root for absolute mount targets): the package is what ships,
so a module added there is shipped without a list to keep."""
WORKDIR_ON_NODE = "sky_workdir"
"""SkyPilot's name for the synced workdir under the node's $HOME; kept so scripts carry over."""


@dataclass
class Node:
    rank: int
    instance_id: str
    runner: Runner
    attempt_dir: str

    @property
    def agent_path(self) -> str:
        return f"{self.runner.home}/.spotctl/agent.py"

    @property
    def output_log(self) -> str:
        return f"{self.attempt_dir}/output.log"

    @property
    def notice_file(self) -> str:
        """Where the node's preemption notice lands: the deadline, in epoch seconds."""
        return f"{self.runner.home}/{NOTICE_FILE}"

    async def agent(self, *args: str) -> dict:
        """Run one agent command on the node and return its JSON answer."""
        argv = [self.runner.python, self.agent_path, *args]
        result = await asyncio.to_thread(self.runner.run, argv, None, 60)
        if result.exit_code != 0:
            raise RuntimeError(f"agent {' '.join(args[:1])} failed on node {self.rank}: {result.stderr.strip()}")
        return json.loads(result.stdout.strip().splitlines()[-1])

    async def install_agent(self) -> None:
        folder = self.agent_path.rsplit("/", 1)[0]
        for module in AGENT_MODULES:
            await asyncio.to_thread(self.runner.write_file, f"{folder}/{module.name}", module.read_bytes())
        await asyncio.to_thread(self.runner.write_file, self.agent_path, AGENT_SOURCE.read_bytes())

    async def write(self, name: str, data: str) -> None:
        await asyncio.to_thread(self.runner.write_file, f"{self.attempt_dir}/{name}", data.encode())

    def exit_file(self, phase: str) -> str:
        return f"{self.attempt_dir}/{phase}.exit"

    async def read_exit_code(self, phase: str) -> int | None:
        return exit_code_of(await asyncio.to_thread(self.runner.read_file, self.exit_file(phase)))


class PhaseLost(Exception):
    """The phase ended and no process saw how (the agent wrote `lost: WHY`): the node's
    processes were killed. An infrastructure failure, never an exit code of the program."""


def exit_code_of(raw: bytes) -> int | None:
    """A phase's exit file as the agent writes it; None while the phase has not ended.
    Raises PhaseLost when the agent could not know the program's exit code."""
    text = raw.strip()
    if text.startswith(b"lost"):
        raise PhaseLost(text.decode(errors="replace"))
    return int(text) if text else None


def nodes_of(ref: AttemptRef, runner_for) -> list[Node]:
    """One Node per instance of the attempt's cluster, by rank."""
    nodes = []
    for rank, instance_id in enumerate(ref.cluster.instance_ids):
        runner = runner_for(ref.cluster, rank)
        attempt_dir = f"{runner.home}/.spotctl/job-{ref.job.job_id}/attempt-{ref.attempt}"
        nodes.append(Node(rank, instance_id, runner, attempt_dir))
    return nodes


def job_env(ref: AttemptRef, rank: int, runner_home: str, cloud_env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of setup and run: the task's envs and secrets, then SkyPilot's and
    spotctl's own variables (which a task cannot override). It holds secret values: it goes
    only into the node's env.json (0600), never into a log line or an error message."""
    tid = task_id(ref.job)
    gpus = sum(ref.cluster.accelerators.values())
    env = dict(ref.job.envs)
    env.update(ref.job.secrets)
    env.update(cloud_env or {})
    env.update(
        {
            "SKYPILOT_TASK_ID": tid,
            "SKYPILOT_RUN_ID": tid,
            "SKYPILOT_TASK_IDS": "\n".join(task_ids(ref.job)),
            "SKYPILOT_NODE_RANK": str(rank),
            "SKYPILOT_NODE_IPS": "\n".join(ref.cluster.node_ips),
            "SKYPILOT_NUM_NODES": str(len(ref.cluster.instance_ids)),
            "SKYPILOT_NUM_GPUS_PER_NODE": str(gpus),
            "SPOTCTL_JOB_ID": str(ref.job.job_id),
            "SPOTCTL_ATTEMPT": str(ref.attempt),
            "SPOTCTL_RECOVERY_COUNT": str(ref.recovery_count),
            # An environment variable cannot change under a running program, so the deadline
            # is in this file once a notice comes (with a SIGTERM).
            "SPOTCTL_PREEMPTION_DEADLINE_FILE": f"{runner_home}/{NOTICE_FILE}",
        }
    )
    if ref.job.deadline is not None:  # where the job may say how far it has come (docs/deadlines.md)
        env["SPOTCTL_PROGRESS_FILE"] = progress_file(runner_home, ref)
    return env


PROGRESS_FILE = "progress"
"""In the attempt's directory: a deadline job's fraction of its compute done, as of its last
checkpoint (a number in [0, 1]), written by the job, read by the monitor."""
MAX_PROGRESS_BYTES = 32
"""A progress report is read this far; anything longer is garbage."""


def progress_file(runner_home: str, ref: AttemptRef) -> str:
    return f"{runner_home}/.spotctl/job-{ref.job.job_id}/attempt-{ref.attempt}/{PROGRESS_FILE}"


def progress_of(raw: bytes) -> float | None:
    """A progress report as the job wrote it: a number in [0, 1]; None for anything else
    (missing, empty, too long, not a number, out of range): garbage is ignored."""
    text = raw.strip()
    if not text or len(raw) >= MAX_PROGRESS_BYTES:
        return None
    try:
        value = float(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return None
    return value if 0.0 <= value <= 1.0 else None


def phase_script(ref: AttemptRef, node: Node, body: str) -> str:
    """A phase's script: start in the synced workdir when there is one, as SkyPilot does; a
    pool job's run starts in an empty directory of its attempt (the pool's workdir stays at
    ~/sky_workdir, as its setup left it)."""
    if ref.job.pool is not None:  # a pool job: a clean directory of its own on the shared worker
        work = f"{node.attempt_dir}/work"
        return f"rm -rf {shlex.quote(work)} && mkdir -p {shlex.quote(work)} && cd {shlex.quote(work)}\n{body}\n"
    workdir = f"{node.runner.home}/{WORKDIR_ON_NODE}"
    cd = f"cd {shlex.quote(workdir)}\n" if ref.job.workdir else ""
    return f"{cd}{body}\n"
