"""Benchmark: how fast one command submits a job array, and how fast it is cancelled.

    python bench/array_submit.py [--jobs 10000] [--no-capacity]

On a private embedded spotctl (its own state dir, server and worker, local cloud), runs
`spotctl launch -y --async --num-jobs N` (the real CLI, a subprocess) of a trivial task and
measures: how long the command takes to return, and how long until all N job workflows exist
(visibility counts them). Then `spotctl cancel -y --array FIRST` and how long until none is
left unfinished; then stops everything and checks no instance is left. --no-capacity gives the
local cloud no capacity, so the jobs wait on backoff timers instead of running (the machine
then measures submission, not N local instances). Prints one line per figure.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from spotctl.client import JOB_TYPES, SpotClient, unfinished_query  # noqa: E402
from spotctl.client.arrays import array_query  # noqa: E402
from spotctl.clouds.local import LocalCloud  # noqa: E402
from spotctl.config import load_settings  # noqa: E402
from spotctl.embedded import EmbeddedServer  # noqa: E402

from conftest import spotctl_env  # noqa: E402


def spotctl(env: dict[str, str], *args: str) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "spotctl", *args], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=600)
    return time.perf_counter() - t0, done


async def count(client: SpotClient, query: str) -> int:
    return (await client.temporal.count_workflows(query)).count


async def wait_count(client: SpotClient, query: str, want: int, t0: float, timeout: float = 1800) -> float:
    while await count(client, query) != want:
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError(query)
        await asyncio.sleep(0.25)
    return time.perf_counter() - t0


def main(jobs: int, no_capacity: bool) -> None:
    home = Path(tempfile.mkdtemp(prefix="spotctl-array-bench-"))
    env = spotctl_env(home)
    os.environ.update(env)
    settings = load_settings(home)
    server = EmbeddedServer(settings)
    server.ensure_running()
    try:
        cloud = LocalCloud(settings)
        cloud.config()
        if no_capacity:
            data = yaml.safe_load(cloud.config_path.read_text())
            for region in data["regions"].values():
                region["capacity"] = 0
            cloud.config_path.write_text(yaml.safe_dump(data, sort_keys=False))
        t0 = time.perf_counter()
        returned, done = spotctl(env, "launch", "-y", "--async", "--num-jobs", str(jobs), "-n", "bench-array",
                                 "echo rank $SKYPILOT_JOB_RANK")
        assert done.returncode == 0, done.stderr
        first = int(done.stdout.strip())
        print(f"launch --num-jobs {jobs} --async returned in {returned:.2f} s (first id {first})", flush=True)

        async def measure() -> None:
            client = await SpotClient.connect(settings)
            jobs_q = f"{JOB_TYPES} AND {array_query(first, jobs)}"
            exist = await wait_count(client, jobs_q, jobs, t0)
            print(f"all {jobs} job workflows exist {exist:.1f} s after the command started "
                  f"({jobs / exist:.0f} jobs/s)", flush=True)
            t1 = time.perf_counter()
            took, cancelled = await asyncio.to_thread(spotctl, env, "cancel", "-y", "--array", str(first))
            assert cancelled.returncode == 0, cancelled.stderr
            print(f"cancel --array returned in {took:.1f} s: {cancelled.stdout.strip()}", flush=True)
            gone = await wait_count(client, f"{jobs_q} AND ({unfinished_query()})", 0, t1)
            print(f"none of the {jobs} unfinished {gone:.1f} s after the cancel started", flush=True)

        asyncio.run(measure())
        deadline = time.monotonic() + 120
        while cloud.list_instances(alive_only=True) and time.monotonic() < deadline:
            time.sleep(1)
        left = cloud.list_instances(alive_only=True)
        print(f"instances left: {len(left)}", flush=True)
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--no-capacity", action="store_true")
    a = parser.parse_args()
    main(a.jobs, a.no_capacity)
