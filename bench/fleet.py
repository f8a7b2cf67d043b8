"""A private spotctl deployment for bench/run.py: the embedded server (the `temporal` binary
and one `spotctl worker` process, as a user runs them), extra worker processes on request,
and the local cloud in its benchmark mode (simulated instances, no process per VM).

Process figures come from /proc, so they are the processes' own: resident memory (VmRSS) and
CPU seconds (utime + stime) of the Temporal server and of each worker.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spotctl.clouds.local import LocalCloud  # noqa: E402
from spotctl.config import Settings, load_settings  # noqa: E402
from spotctl.embedded import (
    EmbeddedServer,  # noqa: E402
    worker_env,  # noqa: E402
)
from spotctl.models import cluster_name  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
REGION_CAPACITY = 100_000


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Fleet:
    settings: Settings
    env: dict[str, str]
    server_pid: int
    worker_pids: list[int]
    extra: list[subprocess.Popen] = field(default_factory=list)

    @property
    def cloud(self) -> LocalCloud:
        return LocalCloud(self.settings)

    def rss(self) -> tuple[float, float]:
        """(server MiB, all workers' MiB)."""
        return rss_mib(self.server_pid), sum(rss_mib(p) for p in self.worker_pids)

    def cpu(self) -> tuple[float, float]:
        """(server CPU seconds, all workers' CPU seconds) so far."""
        return cpu_seconds(self.server_pid), sum(cpu_seconds(p) for p in self.worker_pids)

    def cli(self, *args: str, timeout: float = 600) -> tuple[float, subprocess.CompletedProcess]:
        """Run `spotctl ARGS` as a user would; (wall seconds, result)."""
        t0 = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "spotctl", *args], env=self.env, capture_output=True,
                                text=True, timeout=timeout)
        return time.perf_counter() - t0, result


def write_cloud_config(cloud: LocalCloud, run_s: float, lines_per_s: float) -> None:
    """The benchmark mode: simulated programs, roomy regions, no random preemptions."""
    cloud.offerings()  # writes the default config
    data = yaml.safe_load(cloud.config_path.read_text())
    for region in data["regions"].values():
        region["capacity"] = REGION_CAPACITY
    data["simulate"] = {"run_s": run_s, "lines_per_s": lines_per_s}
    cloud.config_path.write_text(yaml.safe_dump(data))


@contextmanager
def fleet(workers: int = 1, run_s: float = 86_400, lines_per_s: float = 1.0) -> Iterator[Fleet]:
    """The embedded server with `workers` worker processes in all, stopped (and checked gone)
    at the end, its state dir removed."""
    home = Path(tempfile.mkdtemp(prefix="spotctl-bench-"))
    env = dict(os.environ, SPOTCTL_HOME=str(home), SPOTCTL_PORT=str(free_port()), SPOTCTL_UI_PORT=str(free_port()),
               SPOTCTL_CODEC_PORT=str(free_port()), SPOTCTL_CLOUDS="local")
    # As on a user's machine, the worker keeps compiled bytecode: the workflow sandbox imports
    # the workflow modules afresh for every workflow it starts, and would compile them each time.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    saved = {k: os.environ.get(k) for k in [*env, "PYTHONDONTWRITEBYTECODE"]}
    os.environ.update(env)
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    settings = load_settings(home)
    write_cloud_config(LocalCloud(settings), run_s, lines_per_s)
    server = EmbeddedServer(settings)
    extra: list[subprocess.Popen] = []
    try:
        server.ensure_running()
        pids = [server.worker.pid()]
        for n in range(workers - 1):
            ready = home / f"extra-worker-{n}.ready"
            log = open(home / f"extra-worker-{n}.log", "ab")  # noqa: SIM115 - closed with the process
            proc = subprocess.Popen([sys.executable, "-m", "spotctl.worker"], env=worker_env(settings, ready),
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            extra.append(proc)
            while not ready.exists():
                if proc.poll() is not None:
                    raise RuntimeError(f"extra worker exited: see {home}/extra-worker-{n}.log")
                time.sleep(0.1)
            pids.append(proc.pid)
        yield Fleet(settings, env, server.temporal.pid(), pids, extra)
    finally:
        for proc in extra:
            proc.send_signal(signal.SIGTERM)
        for proc in extra:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        subprocess.run(["rm", "-rf", str(home)], check=False)


def preempt_at_random(f: Fleet, jobs: list[int], seed: int, spread_s: float) -> dict[int, float]:
    """Take back the first VM of 10% of `jobs` (no notice), at random moments over `spread_s`
    seconds, and return when each was struck (time.time()). Random, not evenly spaced: ten
    preemptions 1 s apart would all fall at the same phase of the local cloud's 1 s liveness
    call and measure one offset ten times. Blocking: call it in a thread."""
    rng = random.Random(seed)
    victims = rng.sample(jobs, max(1, len(jobs) // 10))
    at = sorted(rng.uniform(0, spread_s) for _ in victims)
    cloud = f.cloud
    by_cluster = {i.cluster_name: i.id for i in cloud.list_instances()}
    instance = {jid: by_cluster[cluster_name(jid, 1)] for jid in victims}
    when: dict[int, float] = {}
    started = time.time()
    for k, jid in enumerate(victims):
        time.sleep(max(0.0, at[k] - (time.time() - started)))
        cloud.preempt(instance[jid], notice_s=0)
        when[jid] = time.time()
    return when
