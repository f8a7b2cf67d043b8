"""Preemption hooks (SkyPilot's `config.hooks`, event `preemption`) on the node: real processes
on local-cloud instances, the real node agent, the cloud's own notice. What the job's log shows,
what the hooks leave behind, and that the program's own exit code is what the phase ends with."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest

import spotctl.node_agent.agent as agent_module
from spotctl.activities.node import AGENT_MODULES
from spotctl.clouds.base import InstanceState
from spotctl.clouds.local import LocalCloud
from spotctl.clouds.local_processes import kill_all, processes_of
from spotctl.models import Candidate
from spotctl.node_agent.agent_hooks import MARGIN_MAX_S, margin_s
from spotctl.remote.local import LocalRunner

from conftest import needs_namespaces, pid_dead

ATTEMPT = "~/.spotctl/job-1/attempt-1"


def cand() -> Candidate:
    return Candidate(cloud="local", region="local-east", zone="local-east-1a", instance_type="local.small",
                     use_spot=True, price=0.01)


def start_with_hooks(runner: LocalRunner, run: str, hooks: list[tuple[str, float]], env: dict[str, str]) -> None:
    """Start a run phase through the agent with hooks.json as the worker writes it (start_run)."""
    folder = f"{runner.home}/.spotctl"
    for module in AGENT_MODULES:
        runner.write_file(f"{folder}/{module.name}", module.read_bytes())
    runner.write_file(f"{folder}/agent.py", Path(agent_module.__file__).read_bytes())
    runner.write_file(f"{ATTEMPT}/env.json", json.dumps(env).encode())
    runner.write_file(f"{ATTEMPT}/run.sh", run.encode())
    entries = []
    for i, (body, timeout_s) in enumerate(hooks, 1):
        runner.write_file(f"{ATTEMPT}/hook-{i}.sh", body.encode())
        entries.append({"script": f"hook-{i}.sh", "timeout_s": timeout_s})
    runner.write_file(f"{ATTEMPT}/hooks.json", json.dumps(entries).encode())
    res = runner.run([runner.python, f"{folder}/agent.py", "start", f"{runner.home}/{ATTEMPT[2:]}", "run"])
    assert res.exit_code == 0, res.stderr


def wait_for(path: Path, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"no {path}"
        time.sleep(0.02)


def test_margin_keeps_back_a_push_interval_or_a_fifth_of_a_short_notice() -> None:
    assert margin_s(120) == 5.0 and margin_s(30) == 5.0  # AWS, GCP: until 5 s before the VM goes
    assert margin_s(4) == pytest.approx(0.8) and margin_s(0) == 0.0 and margin_s(-1) == 0.0


def test_hooks_run_in_order_on_the_notice_within_it_and_the_program_keeps_its_exit_code(
        cloud: LocalCloud, tmp_path: Path) -> None:
    h = cloud.provision("job-h", cand(), 1)
    iid, runner = h.instance_ids[0], cloud.runner(h, 0)
    ready, out = tmp_path / "ready", tmp_path / "out"
    run = (f"trap 'echo program saved >> {out}; exit 143' TERM\n"
           f"echo program started; touch {ready}\n"
           "while true; do sleep 0.05; done\n")
    first = (f"echo \"hook one: event=$SKYPILOT_HOOK_EVENT var=$MYVAR dir=$(pwd)\"\n"
             f"echo flushed > {tmp_path}/flushed\n"
             "exit 3\n")  # a failing hook: its exit code is shown, nothing else changes
    second = (f"sleep 60 & echo $! > {tmp_path}/child\n"  # left running: killed with its group
              "echo hook two sleeps\n"
              "sleep 60\n")
    start_with_hooks(runner, run, [(first, 3600.0), (second, 3600.0)], {"MYVAR": "from-envs"})
    wait_for(ready)

    notice = 4.0
    t0 = time.time()
    cloud.preempt(iid, notice_s=notice)  # returns at the deadline, the VM taken
    assert cloud.instance_states([iid]) == {iid: InstanceState.PREEMPTED}

    log = runner.read_file(f"{ATTEMPT}/output.log").decode()
    got = [line for line in log.splitlines() if line]
    assert got[0] == "program started"
    assert any(line.startswith("hook one: event=preemption var=from-envs dir=") for line in got)
    started = [i for i, line in enumerate(got) if "preemption hook 1/2 started" in line]
    ended = [i for i, line in enumerate(got) if "preemption hook 1/2 ended (exit 3," in line]
    second_started = [i for i, line in enumerate(got) if "preemption hook 2/2 started" in line]
    killed = [line for line in got if "preemption hook 2/2 killed at its time limit" in line]
    assert started and ended and second_started and killed, log
    assert started[0] < ended[0] < second_started[0], log  # in declaration order, one after the other
    assert got.index("hook two sleeps") > second_started[0]
    # The first hook's limit: what is left of the notice less its margin, not its 3600 s timeout.
    limit = float(got[started[0]].split("time limit ")[1].split(" s")[0])
    assert notice - margin_s(notice) - 0.6 < limit <= notice - margin_s(notice)
    # The second is killed at what was left, so both end before the VM is taken.
    second_limit = float(killed[0].split("(")[1].split(" s")[0])
    assert second_limit <= limit
    assert (tmp_path / "flushed").read_text() == "flushed\n"
    assert pid_dead(int((tmp_path / "child").read_text()))
    assert (tmp_path / "out").read_text() == "program saved\n"  # the program got its SIGTERM too
    # The phase's end is the program's (143), published once the hooks were over, before the deadline.
    assert runner.read_file(f"{ATTEMPT}/run.exit").decode().strip() == "143"
    exit_at = (Path(runner.home) / ATTEMPT[2:] / "run.exit").stat().st_mtime
    assert t0 + limit < exit_at < t0 + notice
    assert runner.read_file(f"{ATTEMPT}/hooks.started") == b""


def test_a_hook_shorter_than_its_limit_ends_by_itself_and_no_notice_runs_none(
        cloud: LocalCloud, tmp_path: Path) -> None:
    h = cloud.provision("job-q", cand(), 1)
    runner = cloud.runner(h, 0)
    start_with_hooks(runner, "echo done\n", [(f"touch {tmp_path}/ran\n", 1.0)], {})
    deadline = time.monotonic() + 15
    while not runner.read_file(f"{ATTEMPT}/run.exit"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert runner.read_file(f"{ATTEMPT}/run.exit").decode().strip() == "0"
    assert not (tmp_path / "ran").exists()  # the program ended without a notice: no hook
    assert "preemption hook" not in runner.read_file(f"{ATTEMPT}/output.log").decode()


# -- a cloud's notice, as the agent watches it on a VM (GCE's: no time in it, 30 s assumed) ----


def test_gce_notice_runs_the_hooks_within_its_30_seconds_less_the_margin(tmp_path: Path) -> None:
    from test_agent import _GceMetadata  # the tiny GCE metadata server on 127.0.0.1

    tag = "hooks-test-" + secrets.token_hex(4)
    home = tmp_path / "home"
    d = home / ".spotctl" / "job-1" / "attempt-1"
    d.mkdir(parents=True)
    meta = _GceMetadata()
    env = {**os.environ, "HOME": str(home), "SPOTCTL_LOCAL_INSTANCE": tag}
    try:
        (d / "env.json").write_text(json.dumps({"SPOTCTL_METADATA_URL": meta.url, "SPOTCTL_METADATA_KIND": "gcp",
                                                "MYVAR": "gce"}))
        ready = tmp_path / "ready"
        (d / "run.sh").write_text(f"trap 'exit 143' TERM\ntouch {ready}\nwhile true; do sleep 0.1; done\n")
        (d / "hook-1.sh").write_text('echo "hook on gce: $SKYPILOT_HOOK_EVENT $MYVAR"\n')
        (d / "hooks.json").write_text(json.dumps([{"script": "hook-1.sh", "timeout_s": 3600}]))
        started = subprocess.run([sys.executable, agent_module.__file__, "start", str(d), "run"], env=env,
                                 capture_output=True, text=True, timeout=20)
        assert started.returncode == 0, started.stderr
        wait_for(ready)
        meta.preempted = True
        wait_for(d / "run.exit")
        log = (d / "output.log").read_text()
        assert "hook on gce: preemption gce" in log
        line = next(line for line in log.splitlines() if "preemption hook 1/1 started" in line)
        limit = float(line.split("time limit ")[1].split(" s")[0])
        assert 30 - MARGIN_MAX_S - 2 < limit <= 30 - MARGIN_MAX_S  # not its 3600 s timeout
        assert "preemption hook 1/1 ended (exit 0," in log
        assert (d / "run.exit").read_text().strip() == "143"
    finally:
        meta.close()
        until = time.monotonic() + 5  # the supervisor exits just after publishing the end
        while processes_of(tag) and time.monotonic() < until:
            time.sleep(0.05)
        left = processes_of(tag)
        kill_all(tag)
        assert left == [], f"processes left behind: {left}"


@needs_namespaces
def test_a_hook_sees_the_mounts_the_program_sees(cloud: LocalCloud, tmp_path: Path) -> None:
    """An absolute mount target (a bucket at /…) exists only in the phase's own mount
    namespace: the hook is started the same way, so it writes into the bucket too."""
    h = cloud.provision("job-m", cand(), 1)
    iid, runner = h.instance_ids[0], cloud.runner(h, 0)
    bucket = tmp_path / "bucket"
    bucket.mkdir()
    target = f"/spotctl-hooks-test-{secrets.token_hex(4)}"
    runner.write_file(f"{ATTEMPT}/mounts.json", json.dumps([{"source": str(bucket), "target": target}]).encode())
    ready = tmp_path / "ready"
    run = f"trap 'exit 143' TERM\necho started > {target}/program\ntouch {ready}\nwhile true; do sleep 0.05; done\n"
    start_with_hooks(runner, run, [(f"echo flushed > {target}/hook\n", 10.0)], {})
    wait_for(ready)
    cloud.preempt(iid, notice_s=2.0)
    assert (bucket / "program").read_text() == "started\n"
    assert (bucket / "hook").read_text() == "flushed\n"
    assert not Path(target).exists()  # made in the phase's own root, never on the host
