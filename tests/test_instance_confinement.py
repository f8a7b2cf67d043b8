"""Ending a local instance kills every process it started, even one that left its process
group and dropped SPOTCTL_LOCAL_INSTANCE (issue 7, item 9): the per-instance cgroup."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from pathlib import Path

import pytest

import spotctl.node_agent.agent as agent_module
from spotctl.clouds import local_cgroups
from spotctl.clouds.base import InstanceState
from spotctl.clouds.local import LocalCloud
from spotctl.clouds.local_processes import processes_of
from spotctl.models import Candidate, ClusterHandle
from spotctl.remote.base import NodeUnreachable
from spotctl.remote.local import LocalRunner, cgroup_marker

needs_cgroups = pytest.mark.skipif(
    os.geteuid() != 0 or not (local_cgroups.FREEZER / "cgroup.procs").exists(),
    reason="needs root and a cgroup v1 freezer hierarchy",
)

ESCAPE = "env -u SPOTCTL_LOCAL_INSTANCE setsid nohup sleep {arg} >/dev/null 2>&1 &\n"
"""Leaves the process group and the marker behind: invisible to the marker scan."""
DOUBLE_FORK = "( env -u SPOTCTL_LOCAL_INSTANCE setsid sh -c 'sleep {arg} & exit 0' >/dev/null 2>&1 & )\n"
"""The same, daemonized: the sleep's parents exit at once and it is reparented to init."""


def cand() -> Candidate:
    return Candidate(cloud="local", region="local-east", zone="local-east-1a", instance_type="local.small",
                     use_spot=True, price=0.01)


def unique_arg() -> str:
    """A sleep argument no other process on the machine has, to find the escapee by."""
    return f"1000.{secrets.randbelow(10**9):09d}"


def pids_with_arg(arg: str) -> list[int]:
    """Live processes with `arg` on their command line (a zombie's is empty: not listed)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if arg.encode() in f.read().split(b"\0"):
                        found.append(int(entry))
            except OSError:
                continue
    return found


def wait_for(arg: str, timeout: float = 10) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pids := pids_with_arg(arg):
            return pids[0]
        time.sleep(0.05)
    raise AssertionError(f"no process runs `sleep {arg}`")


def start_program(runner: LocalRunner, script: str) -> None:
    """Run `script` as the job's run phase, the way the activities do (agent + supervisor)."""
    d = "~/.spotctl/job-1/attempt-1"
    runner.put_file(agent_module.__file__, "~/.spotctl/agent.py")
    runner.write_file(f"{d}/env.json", b"{}")
    runner.write_file(f"{d}/run.sh", script.encode())
    res = runner.run([runner.python, f"{runner.home}/.spotctl/agent.py", "start", f"{runner.home}/{d[2:]}", "run"])
    assert res.exit_code == 0 and json.loads(res.stdout)["pid"], res.stderr


def escapee(cloud: LocalCloud, template: str) -> tuple[ClusterHandle, str, int]:
    """An instance whose program started a process that escaped group and marker."""
    h = cloud.provision(f"esc-{secrets.token_hex(3)}", cand(), 1)
    arg = unique_arg()
    start_program(cloud.runner(h, 0), template.format(arg=arg) + "sleep 1000\n")
    pid = wait_for(arg)
    assert pid in processes_of(h.instance_ids[0])  # found through the cgroup alone
    return h, arg, pid


def assert_no_group(cloud: LocalCloud, iid: str) -> None:
    assert not local_cgroups.group_of(cloud.root, iid).exists()
    assert local_cgroups.leftovers(cloud.root) == []
    assert not local_cgroups.cloud_groups(cloud.root).exists()


@needs_cgroups
@pytest.mark.parametrize("template", [ESCAPE, DOUBLE_FORK], ids=["setsid", "double-fork"])
def test_terminate_kills_a_process_that_escaped(cloud: LocalCloud, template: str) -> None:
    h, arg, _ = escapee(cloud, template)
    iid = h.instance_ids[0]
    cloud.terminate([iid])
    assert pids_with_arg(arg) == [] and processes_of(iid) == []
    assert_no_group(cloud, iid)


@needs_cgroups
@pytest.mark.parametrize("template", [ESCAPE, DOUBLE_FORK], ids=["setsid", "double-fork"])
def test_preemption_kills_a_process_that_escaped(cloud: LocalCloud, template: str) -> None:
    h, arg, _ = escapee(cloud, template)
    iid = h.instance_ids[0]
    cloud.preempt(iid, notice_s=0)
    assert cloud.instance_states([iid])[iid] == InstanceState.PREEMPTED
    assert pids_with_arg(arg) == [] and processes_of(iid) == []
    assert_no_group(cloud, iid)
    with pytest.raises(NodeUnreachable):  # stopped: nothing starts there any more
        cloud.runner(h, 0).run(["true"])


@needs_cgroups
def test_preemption_notice_reaches_a_process_that_escaped(cloud: LocalCloud, tmp_path: Path) -> None:
    h = cloud.provision("notice", cand(), 1)
    iid = h.instance_ids[0]
    seen, arg = tmp_path / "seen", unique_arg()
    trapper = f"trap 'echo TERM > {seen}; exit 0' TERM; sleep {arg} & wait"
    start_program(cloud.runner(h, 0), f"env -u SPOTCTL_LOCAL_INSTANCE setsid bash -c \"{trapper}\" &\nsleep 1000\n")
    wait_for(arg)
    cloud.preempt(iid, notice_s=1)
    assert seen.read_text() == "TERM\n"
    assert pids_with_arg(arg) == [] and processes_of(iid) == []


@needs_cgroups
def test_runner_cannot_start_on_a_removed_group(cloud: LocalCloud) -> None:
    """A call racing with terminate: once the group is gone, nothing starts unconfined."""
    h = cloud.provision("race", cand(), 1)
    iid = h.instance_ids[0]
    assert cgroup_marker(cloud.instance_home(iid)).read_text().strip() == str(local_cgroups.group_of(cloud.root, iid))
    assert local_cgroups.destroy(local_cgroups.group_of(cloud.root, iid))
    with pytest.raises(NodeUnreachable, match="gone"):
        cloud.runner(h, 0).run(["true"])


@needs_cgroups
def test_leftover_groups_are_swept(cloud: LocalCloud) -> None:
    """Groups a crashed process left (one of an ended instance, one of a create that never
    saved) are removed with their processes by the next terminate or tagged_instances."""
    iid = cloud.provision("ended", cand(), 1).instance_ids[0]
    cloud.terminate([iid])
    keep = cloud.provision("alive", cand(), 1)
    for n, left in enumerate([iid, "i-00000000dead"]):
        group = local_cgroups.create(cloud.root, left)
        assert group is not None
        arg = unique_arg()
        with open(group / "cgroup.procs", "w") as procs:  # as if a runner had started it
            sleeper = subprocess.Popen(["sleep", arg], preexec_fn=lambda: os.write(procs.fileno(), b"0"))
        wait_for(arg)
        if n == 0:
            cloud.terminate(["i-000000000000"])
        else:
            cloud.tagged_instances()
        assert sleeper.wait(timeout=5) == -9 and not group.exists()
    assert local_cgroups.leftovers(cloud.root) == keep.instance_ids  # the alive one's is kept


def test_without_cgroups_the_marker_still_kills(cloud: LocalCloud, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fallback: no freezer hierarchy, so no group and no `cgroup` file; the runner runs
    unconfined and the environment marker finds the programs."""
    monkeypatch.setattr(local_cgroups, "FREEZER", Path("/nonexistent/freezer"))
    h = cloud.provision("marker-only", cand(), 1)
    iid = h.instance_ids[0]
    assert not cgroup_marker(cloud.instance_home(iid)).exists()
    arg = unique_arg()
    start_program(cloud.runner(h, 0), f"setsid sleep {arg} &\nsleep 1000\n")
    pid = wait_for(arg)
    assert pid in processes_of(iid)
    cloud.terminate([iid])
    assert pids_with_arg(arg) == [] and processes_of(iid) == []
