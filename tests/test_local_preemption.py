"""Preemption, random preemption and simulated unreachability of the local cloud.

Real instances, real processes: a bash program on the node traps SIGTERM and writes what it
saw to a file outside the sandbox, so the tests see exactly what a user's program would.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

import spotctl.node_agent.agent as agent_module
from spotctl.clouds.base import CloudError, InstanceState, NoCapacity
from spotctl.clouds.local import LocalCloud, LocalInstance
from spotctl.clouds.local_processes import processes_of, user_processes_of
from spotctl.config import Settings
from spotctl.models import Candidate, ClusterHandle
from spotctl.remote.base import NodeUnreachable
from spotctl.remote.local import LocalRunner

from conftest import pid_dead


def cand(region: str = "local-east", use_spot: bool = True) -> Candidate:
    return Candidate(
        cloud="local", region=region, zone=f"{region}-1a", instance_type="local.small", use_spot=use_spot, price=0.01
    )


def set_region(cloud: LocalCloud, region: str, **keys: object) -> None:
    """Edit the region's entry in config.yaml the way a user would."""
    cloud.config()  # writes the default file
    data = yaml.safe_load(cloud.config_path.read_text())
    data["regions"][region].update(keys)
    cloud.config_path.write_text(yaml.safe_dump(data))


def start_program(runner: LocalRunner, script: str) -> int:
    """Start a run phase through the agent, as the activities do; returns the bash pid."""
    d = "~/.spotctl/job-1/attempt-1"
    runner.put_file(agent_module.__file__, "~/.spotctl/agent.py")
    runner.write_file(f"{d}/env.json", b"{}")
    runner.write_file(f"{d}/run.sh", script.encode())
    res = runner.run([runner.python, f"{runner.home}/.spotctl/agent.py", "start", f"{runner.home}/{d[2:]}", "run"])
    assert res.exit_code == 0, res.stderr
    return json.loads(res.stdout)["pid"]


def trapping_script(out: Path, ready: Path, linger_s: float = 0.3) -> str:
    """Logs every SIGTERM with the notice deadline, then lingers so that a duplicate SIGTERM
    (e.g. forwarded by the agent supervisor) would show as a second line, then exits."""
    return (
        f"trap 'echo \"got TERM $(cat ~/.spotctl/preemption_notice 2>/dev/null)\" >> {out}; n=1' TERM\n"
        "n=0\n"
        f"touch {ready}\n"
        "while [ $n = 0 ]; do sleep 0.05; done\n"
        f"end=$(( $(date +%s%N) + {int(linger_s * 1e9)} ))\n"
        "while [ $(date +%s%N) -lt $end ]; do sleep 0.05; done\n"
        "exit 0\n"
    )


def ignoring_script(out: Path, ready: Path) -> str:
    """Logs SIGTERM but keeps running: only the SIGKILL at the deadline ends it."""
    return (
        f"trap 'echo \"got TERM\" >> {out}' TERM\n"
        f"touch {ready}\n"
        "while true; do sleep 0.05; done\n"
    )


def wait_for(cond: Callable[[], bool], timeout: float = 10, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def record(cloud: LocalCloud, iid: str) -> LocalInstance:
    return next(i for i in cloud.list_instances(alive_only=False) if i.id == iid)


def raw_record(cloud: LocalCloud, iid: str) -> dict:
    """The record as stored, read without any cloud call (which would enforce preemptions)."""
    return next(i for i in json.loads(cloud.state_path.read_text())["instances"] if i["id"] == iid)


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


# -- explicit preemption -------------------------------------------------------------------


def test_preempt_with_notice_sends_one_sigterm_and_the_deadline(cloud: LocalCloud, tmp_path: Path) -> None:
    h = cloud.provision("job-n", cand(), 1)
    iid = h.instance_ids[0]
    out, ready = tmp_path / "out", tmp_path / "ready"
    runner = cloud.runner(h, 0)
    pid = start_program(runner, trapping_script(out, ready))
    wait_for(ready.exists, what="trap installed")
    # What gets the SIGTERM: not the supervisor, which would forward a second one. (Checked
    # directly because two SIGTERMs arriving together coalesce and the line count hides it.)
    spid = int(runner.read_file("~/.spotctl/job-1/attempt-1/run.spid"))
    assert spid in processes_of(iid) and pid in processes_of(iid)
    assert spid not in user_processes_of(iid) and pid in user_processes_of(iid)

    t0 = time.time()
    cloud.preempt(iid, notice_s=1.0)
    elapsed = time.time() - t0

    got = lines(out)
    assert len(got) == 1, got  # exactly one SIGTERM: supervisors are not signalled too
    assert got[0].startswith("got TERM ")
    assert float(got[0].split()[-1]) == pytest.approx(t0 + 1.0, abs=0.25)
    assert elapsed < 1.0 + 2.5  # returned once the program had exited (or shortly after the deadline)
    inst = record(cloud, iid)
    assert inst.state == InstanceState.PREEMPTED
    assert inst.state_reason == "local.SpotInstanceTermination" and inst.preempted_at is not None
    assert processes_of(iid) == [] and pid_dead(pid)
    assert (cloud.root / "instances" / iid).exists()  # kept (with its last log lines) until terminate
    cloud.terminate([iid])
    assert not (cloud.root / "instances" / iid).exists()


def test_preempt_without_notice_kills_at_once(cloud: LocalCloud, tmp_path: Path) -> None:
    h = cloud.provision("job-0", cand(), 1)
    iid = h.instance_ids[0]
    out, ready = tmp_path / "out", tmp_path / "ready"
    pid = start_program(cloud.runner(h, 0), trapping_script(out, ready))
    wait_for(ready.exists, what="trap installed")
    t0 = time.monotonic()
    cloud.preempt(iid)  # region default: preemption_notice_s 0
    assert time.monotonic() - t0 < 2.0
    assert lines(out) == []  # no warning at all: straight SIGKILL
    assert cloud.instance_states([iid]) == {iid: InstanceState.PREEMPTED}
    assert processes_of(iid) == [] and pid_dead(pid)
    cloud.preempt(iid)  # no-op on a dead instance


def test_region_notice_is_the_default(cloud: LocalCloud, tmp_path: Path) -> None:
    set_region(cloud, "local-west", preemption_notice_s=1.0)
    h = cloud.provision("job-w", cand("local-west"), 1)
    out, ready = tmp_path / "out", tmp_path / "ready"
    start_program(cloud.runner(h, 0), trapping_script(out, ready, linger_s=0))
    wait_for(ready.exists, what="trap installed")
    t0 = time.time()
    cloud.preempt(h.instance_ids[0])
    assert float(lines(out)[0].split()[-1]) == pytest.approx(t0 + 1.0, abs=0.25)
    # Like a real cloud, the VM is taken at the deadline even though its program exited early:
    # its disk (and the program's last log lines) lives until then.
    assert time.time() - t0 >= 0.95


def test_preempt_cluster_preempts_every_node_with_one_shared_notice(cloud: LocalCloud, tmp_path: Path) -> None:
    h = cloud.provision("job-c", cand(), 2)
    other = cloud.provision("bystander", cand(), 1)
    outs = [tmp_path / f"out{r}" for r in range(2)]
    for rank in range(2):
        ready = tmp_path / f"ready{rank}"
        start_program(cloud.runner(h, rank), ignoring_script(outs[rank], ready))
        wait_for(ready.exists, what=f"node {rank} ready")

    t0 = time.monotonic()
    assert cloud.preempt_cluster("job-c", notice_s=1.0) == h.instance_ids
    elapsed = time.monotonic() - t0
    assert 0.9 < elapsed < 1.9  # the programs ignore TERM: killed at the one deadline, not 2 x 1 s
    assert [lines(o) for o in outs] == [["got TERM"], ["got TERM"]]
    states = cloud.instance_states(h.instance_ids + other.instance_ids)
    assert states == {h.instance_ids[0]: InstanceState.PREEMPTED, h.instance_ids[1]: InstanceState.PREEMPTED,
                      other.instance_ids[0]: InstanceState.RUNNING}
    assert all(processes_of(i) == [] for i in h.instance_ids)
    assert cloud.find_cluster("job-c") == h.instance_ids  # preempted, not yet terminated: teardown finds them
    assert cloud.preempt_cluster("job-c") == [] and cloud.preempt_cluster("nope") == []


def test_claimer_that_dies_mid_notice_is_finished_by_the_next_reader(
    cloud: LocalCloud, settings: Settings, tmp_path: Path
) -> None:
    """The CLI may be killed during the notice; the worker's next poll must still end it."""
    h = cloud.provision("job-d", cand(), 1)
    iid = h.instance_ids[0]
    out, ready = tmp_path / "out", tmp_path / "ready"
    pid = start_program(cloud.runner(h, 0), ignoring_script(out, ready))
    wait_for(ready.exists, what="trap installed")
    code = (
        "import sys\nfrom pathlib import Path\n"
        "from spotctl.clouds.local import LocalCloud\nfrom spotctl.config.settings import load_settings\n"
        "LocalCloud(load_settings(home=Path(sys.argv[1]))).preempt(sys.argv[2], notice_s=1.5)\n"
    )
    claimer = subprocess.Popen([sys.executable, "-c", code, str(settings.home), iid])
    try:
        wait_for(lambda: lines(out) == ["got TERM"], what="SIGTERM from the claimer")
        t_term = time.monotonic()
        claimer.send_signal(signal.SIGKILL)
        claimer.wait(timeout=5)
        assert cloud.instance_states([iid])[iid] == InstanceState.RUNNING  # notice still running
        wait_for(lambda: cloud.instance_states([iid])[iid] == InstanceState.PREEMPTED, what="preempted")
        assert time.monotonic() - t_term > 1.0
        assert lines(out) == ["got TERM"]  # readers do not signal again
        assert processes_of(iid) == [] and pid_dead(pid)
    finally:
        if claimer.poll() is None:
            claimer.kill()
            claimer.wait()


# -- random preemption -----------------------------------------------------------------------


def test_mtbf_preempts_spot_but_not_on_demand(cloud: LocalCloud) -> None:
    set_region(cloud, "local-eu", preemption_mtbf_s=0.5)
    spot = cloud.provision("spot", cand("local-eu"), 1)
    ondemand = cloud.provision("od", cand("local-eu", use_spot=False), 1)
    east = cloud.provision("east", cand("local-east"), 1)  # no MTBF there
    sid, oid, eid = spot.instance_ids[0], ondemand.instance_ids[0], east.instance_ids[0]
    assert raw_record(cloud, sid)["preempt_at"] is not None
    assert raw_record(cloud, oid)["preempt_at"] is None and raw_record(cloud, eid)["preempt_at"] is None
    spid = start_program(cloud.runner(spot, 0), "sleep 1000\n")
    opid = start_program(cloud.runner(ondemand, 0), "sleep 1000\n")

    time.sleep(3)
    wait_for(lambda: cloud.instance_states([sid])[sid] == InstanceState.PREEMPTED, timeout=7, what="spot preempted")
    assert cloud.instance_states([oid, eid]) == {oid: InstanceState.RUNNING, eid: InstanceState.RUNNING}
    assert processes_of(sid) == [] and pid_dead(spid)
    assert not pid_dead(opid)
    assert record(cloud, sid).state_reason == "local.SpotInstanceTermination"


def test_mtbf_with_notice_signals_once_despite_concurrent_pollers(
    cloud: LocalCloud, settings: Settings, tmp_path: Path
) -> None:
    """Lazy enforcement from several processes at once still gives the program one SIGTERM,
    and a poll does not block for the notice (3 s: a poll slowed by a loaded machine is
    still told apart from one that sat the notice out)."""
    set_region(cloud, "local-west", preemption_mtbf_s=0.3, preemption_notice_s=3.0)
    h = cloud.provision("job-m", cand("local-west"), 1)
    iid = h.instance_ids[0]
    out, ready = tmp_path / "out", tmp_path / "ready"
    pid = start_program(cloud.runner(h, 0), trapping_script(out, ready, linger_s=0.5))
    wait_for(ready.exists, what="trap installed")
    code = (
        "import sys, time\nfrom pathlib import Path\n"
        "from spotctl.clouds.local import LocalCloud\nfrom spotctl.config.settings import load_settings\n"
        "c = LocalCloud(load_settings(home=Path(sys.argv[1])))\n"
        "end = time.monotonic() + 8\n"
        "while time.monotonic() < end and c.instance_states([sys.argv[2]])[sys.argv[2]].value == 'running':\n"
        "    time.sleep(0.01)\n"
    )
    pollers = [subprocess.Popen([sys.executable, "-c", code, str(settings.home), iid]) for _ in range(3)]
    try:
        while True:
            t0 = time.monotonic()
            state = cloud.instance_states([iid])[iid]
            assert time.monotonic() - t0 < 2.0  # never sits out the notice
            if state == InstanceState.PREEMPTED:
                break
            assert len(lines(out)) <= 1
            time.sleep(0.01)
        for p in pollers:
            p.wait(timeout=15)
    finally:
        for p in pollers:
            if p.poll() is None:
                p.kill()
                p.wait()
    got = lines(out)
    assert len(got) == 1, got
    deadline = float(got[0].split()[-1])
    preempt_at = record(cloud, iid).preempt_at
    # The notice runs from when the preemption was enforced: the first poll (this test's or a
    # poller's) after preempt_at, each poll bounded above at 2 s: never less than the notice.
    assert preempt_at is not None and preempt_at.timestamp() + 3.0 - 0.05 <= deadline <= preempt_at.timestamp() + 3.0 + 2.0
    assert processes_of(iid) == [] and pid_dead(pid)


# -- unreachable -----------------------------------------------------------------------------


def test_unreachable_instance_stays_running(cloud: LocalCloud) -> None:
    h = cloud.provision("job-u", cand(), 1)
    iid = h.instance_ids[0]
    runner = cloud.runner(h, 0)
    pid = start_program(runner, "sleep 1000\n")
    runner.write_file("~/note", b"hello")

    cloud.set_unreachable(iid, True)
    fresh = cloud.runner(ClusterHandle.model_validate_json(h.model_dump_json()), 0)
    for r in (runner, fresh):  # runners made before and after both see it
        with pytest.raises(NodeUnreachable, match=rf"instance {iid} unreachable \(simulated\)"):
            r.run(["true"])
        with pytest.raises(NodeUnreachable, match="simulated"):
            r.read_file("~/note")
        with pytest.raises(NodeUnreachable, match="simulated"):
            r.write_file("~/other", b"x")
    assert cloud.is_unreachable(iid)
    assert cloud.instance_states([iid]) == {iid: InstanceState.RUNNING}
    assert not pid_dead(pid) and pid in processes_of(iid)

    cloud.set_unreachable(iid, False)
    assert not cloud.is_unreachable(iid)
    assert runner.run(["cat", "note"]).stdout == "hello"
    assert fresh.read_file("~/note") == b"hello"
    cloud.set_unreachable(iid, False)  # clearing twice is fine
    with pytest.raises(CloudError, match="no instance"):
        cloud.set_unreachable("i-000000000000", True)

    cloud.set_unreachable(iid, True)  # an unreachable instance can still be terminated
    cloud.terminate([iid])
    assert processes_of(iid) == [] and pid_dead(pid)
    cloud.set_unreachable(iid, True)  # no-op on a dead instance: its dir is not recreated
    assert not (cloud.root / "instances" / iid).exists()


# -- capacity ----------------------------------------------------------------------------------


def test_preempted_instances_free_capacity(cloud: LocalCloud) -> None:
    set_region(cloud, "local-east", capacity=2)
    a = cloud.provision("a", cand(), 1)
    cloud.provision("b", cand(), 1)
    with pytest.raises(NoCapacity, match=r"\(2/2 in use\)"):
        cloud.provision("c", cand(), 1)
    cloud.preempt(a.instance_ids[0])
    cloud.provision("c", cand(), 1)
    assert len(cloud.list_instances()) == 2


def test_provision_enforces_due_preemptions_before_counting(cloud: LocalCloud) -> None:
    """An instance past its preemption time must not block a launch even if nobody polled."""
    set_region(cloud, "local-eu", capacity=1, preemption_mtbf_s=0.3)
    iid = cloud.provision("a", cand("local-eu"), 1).instance_ids[0]
    preempt_at = LocalInstance.model_validate(raw_record(cloud, iid)).preempt_at
    assert preempt_at is not None
    wait_for(lambda: time.time() > preempt_at.timestamp(), timeout=15, what="preempt_at")
    b = cloud.provision("b", cand("local-eu", use_spot=False), 1)
    assert raw_record(cloud, iid)["state"] == "preempted"
    assert cloud.instance_states(b.instance_ids) == {b.instance_ids[0]: InstanceState.RUNNING}


def test_a_preempted_instance_keeps_a_readable_disk_but_runs_nothing(cloud: LocalCloud) -> None:
    """Like a stopped spot VM: its last output can be read, nothing can be started on it."""
    h = cloud.provision("stopped", cand(), 1)
    runner = cloud.runner(h, 0)
    runner.write_file("~/last-words.log", b"bye\n")
    cloud.preempt(h.instance_ids[0], notice_s=0)
    assert runner.read_file("~/last-words.log") == b"bye\n"
    for call in (lambda: runner.run(["true"]), lambda: runner.write_file("~/x", b"x")):
        with pytest.raises(NodeUnreachable, match="stopped"):
            call()
    cloud.terminate(h.instance_ids)
    with pytest.raises(NodeUnreachable):
        runner.read_file("~/last-words.log")


def test_terminating_a_preempted_instance_marks_it_terminated(cloud: LocalCloud) -> None:
    """A preempted record must not live on: the orphan sweeper and find_cluster would see it
    forever and terminate it again at every sweep."""
    h = cloud.provision("stopped-then-gone", cand(), 1)
    iid = h.instance_ids[0]
    cloud.preempt(iid, notice_s=0)
    cloud.terminate([iid])
    inst = record(cloud, iid)
    assert inst.state == InstanceState.TERMINATED
    assert inst.state_reason == "local.SpotInstanceTermination"  # why it ended is kept
    assert iid not in [t.id for t in cloud.tagged_instances()]


def test_exit_code_waits_for_the_program_saving_after_a_notice(cloud: LocalCloud, settings: Settings,
                                                               tmp_path: Path) -> None:
    """bash dies of the notice's SIGTERM at once; the python it ran saves for a second more.
    The phase's exit code (which ends the attempt and lets teardown kill the VM) must come
    after the save, or the program's last output and checkpoint are lost."""
    h = cloud.provision("saver", cand(), 1)
    iid = h.instance_ids[0]
    runner = cloud.runner(h, 0)
    ready = tmp_path / "ready"
    program = (
        "import signal, sys, time\n"
        "def save(*_):\n"
        "    time.sleep(1.5)\n"
        "    print('checkpoint saved', flush=True)\n"
        "    sys.exit(143)\n"
        "signal.signal(signal.SIGTERM, save)\n"
        f"open({str(ready)!r}, 'w').close()\n"
        "while True:\n"
        "    time.sleep(0.1)\n"
    )
    runner.write_file("~/saver.py", program.encode())
    start_program(runner, f"{sys.executable} ~/saver.py\n")
    wait_for(ready.exists, what="handler installed")
    d = "~/.spotctl/job-1/attempt-1"
    claimed = subprocess.Popen([sys.executable, "-c", (
        "import sys; from pathlib import Path; from spotctl.clouds.local import LocalCloud; "
        "from spotctl.config import load_settings; "
        "LocalCloud(load_settings(home=Path(sys.argv[1]))).preempt(sys.argv[2], notice_s=5.0)"),
        str(settings.home), iid])
    try:
        # Whichever comes first: the exit code, or the VM taken once the program has exited
        # (which may kill the agent before it writes the code; the monitor then sees PREEMPTED).
        wait_for(lambda: bool(runner.read_file(f"{d}/run.exit").strip())
                 or record(cloud, iid).state == InstanceState.PREEMPTED, timeout=10, what="run.exit")
        assert b"checkpoint saved" in runner.read_file(f"{d}/output.log")
    finally:
        claimed.wait(timeout=15)
