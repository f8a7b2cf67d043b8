"""Record workflow histories for the replay test (tests/test_replay.py).

    python tests/histories/record.py

runs a set of representative jobs on a private embedded server and writes each history to
tests/histories/<name>.json. Re-record only on purpose: a change to the workflow that makes an
old history fail to replay would break jobs running while a worker is upgraded (use
`workflow.patched` for such changes instead).
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from click.testing import CliRunner  # noqa: E402

from spotctl.cli.main import cli  # noqa: E402
from spotctl.client import SpotClient, workflow_id  # noqa: E402
from spotctl.config import load_settings  # noqa: E402
from spotctl.server import EmbeddedServer  # noqa: E402

from conftest import spotctl_env  # noqa: E402

JOBS = {
    "succeeded": ["launch", "-y", "-n", "ok", "echo hello"],
    "failed_exit_code": ["launch", "-y", "-n", "bad", "exit 3"],
    "failed_setup": ["launch", "-y", "{setup_task}"],
    "restarted_then_failed": ["launch", "-y", "{retry_task}"],
}


def scrub(text: str) -> str:
    """No machine paths in the repo: stack traces in failures name files relative to the repo
    and to site-packages."""
    import site
    import sysconfig

    prefixes = [str(HERE.parents[1]) + "/", sysconfig.get_path("purelib") + "/", *[p + "/" for p in site.getsitepackages()]]
    for prefix in prefixes:
        text = text.replace(prefix, "")
    return text


def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="spotctl-record-"))
    env = spotctl_env(home)
    os.environ.update(env)
    server = EmbeddedServer(load_settings(home))
    server.ensure_running()
    runner = CliRunner()
    tasks = {
        "setup_task": "name: setup-fails\nsetup: exit 7\nrun: echo never\n",
        "retry_task": "name: retry\nresources:\n  job_recovery:\n    max_restarts_on_errors: 1\nrun: exit 1\n",
        "long_task": "name: long\nrun: |\n  for i in $(seq 1 16); do echo tick $i; sleep 0.25; done\n",
    }
    paths = {}
    for key, text in tasks.items():
        paths[key] = home / f"{key}.yaml"
        paths[key].write_text(textwrap.dedent(text))

    def launch(*args: str) -> int:
        result = runner.invoke(cli, [a.format(**{k: str(v) for k, v in paths.items()}) for a in args], env=env)
        line = next(line for line in result.stderr.splitlines() if line.startswith("Managed job"))
        return int(line.split()[2])

    def wait_running(job_id: int) -> None:
        while '"RUNNING"' not in runner.invoke(cli, ["status", "--json"], env=env).stdout:
            time.sleep(0.1)

    try:
        ids = {name: launch(*args) for name, args in JOBS.items()}
        ids["cancelled_running"] = launch("launch", "-y", "-d", "-n", "cancel-me", "sleep 1000")
        wait_running(ids["cancelled_running"])
        runner.invoke(cli, ["cancel", "-y", str(ids["cancelled_running"])], env=env)
        ids["preempted_then_succeeded"] = launch("launch", "-y", "-d", "{long_task}")
        wait_running(ids["preempted_then_succeeded"])
        runner.invoke(cli, ["debug", "preempt", str(ids["preempted_then_succeeded"]), "--notice", "0"], env=env)

        async def save() -> None:
            client = await SpotClient.connect(load_settings(home))
            for name, job_id in ids.items():
                await client.result(job_id)
                history = await client.temporal.get_workflow_handle(workflow_id(job_id)).fetch_history()
                (HERE / f"{name}.json").write_text(scrub(history.to_json()))
                print(f"recorded {name} (job {job_id}, {len(history.events)} events)")

        asyncio.run(save())
    finally:
        server.stop()


if __name__ == "__main__":
    main()
