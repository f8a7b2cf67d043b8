"""The local cloud's benchmark mode: simulated instances run no process, yet look to the
controller like a node whose program prints, exits, takes signals and is preempted."""

from __future__ import annotations

import time

import pytest
import yaml

from spotctl.clouds.base import InstanceState
from spotctl.clouds.local import LocalCloud
from spotctl.clouds.local_processes import processes_of
from spotctl.models import Candidate
from spotctl.remote.simulated import LINE_WIDTH, SimulatedRunner, line

ATTEMPT = "~/.spotctl/job-1/attempt-1"


def simulate(cloud: LocalCloud, **program: float) -> None:
    cloud.offerings()  # writes the default config
    data = yaml.safe_load(cloud.config_path.read_text())
    data["simulate"] = program
    cloud.config_path.write_text(yaml.safe_dump(data))


def cand() -> Candidate:
    return Candidate(cloud="local", region="local-east", zone="local-east-1a", instance_type="local.small",
                     use_spot=True, price=0.01)


def agent(runner: SimulatedRunner, *args: str) -> None:
    result = runner.run([runner.python, f"{runner.home}/.spotctl/agent.py", args[0], f"{runner.home}/.spotctl/job-1/"
                         "attempt-1", *args[1:]])
    assert result.exit_code == 0, result.stderr


@pytest.fixture
def sim(cloud: LocalCloud) -> LocalCloud:
    simulate(cloud, run_s=1.0, lines_per_s=20, exit_code=3)
    return cloud


def test_a_simulated_run_prints_at_its_rate_and_exits_with_its_code(sim: LocalCloud) -> None:
    handle = sim.provision("sim-1", cand(), 1)
    runner = sim.runner(handle, 0)
    assert isinstance(runner, SimulatedRunner)
    runner.write_file(f"{ATTEMPT}/run.sh", b"python train.py\n")
    assert runner.read_files([(f"{ATTEMPT}/output.log", 0, 1 << 20), (f"{ATTEMPT}/run.exit", 0, 64)]) == [b"", b""]
    agent(runner, "start", "run")
    agent(runner, "start", "run")  # a second start is refused, as by the agent: the clock goes on
    time.sleep(0.3)
    early = runner.read_file(f"{ATTEMPT}/output.log")
    assert 2 * LINE_WIDTH <= len(early) < 20 * LINE_WIDTH and early.startswith(line(0))
    assert runner.read_file(f"{ATTEMPT}/run.exit") == b""
    assert processes_of(handle.instance_ids[0]) == []  # nothing runs on this machine
    time.sleep(0.9)
    out = runner.read_file(f"{ATTEMPT}/output.log")
    assert out == b"".join(line(k) for k in range(20))  # 1 s at 20 lines/s, then it ended
    assert runner.read_file(f"{ATTEMPT}/output.log", offset=5 * LINE_WIDTH + 3, max_bytes=10) == out[83:93]
    assert runner.read_file(f"{ATTEMPT}/run.exit") == b"3"
    sim.terminate(handle.instance_ids)
    assert sim.instance_states(handle.instance_ids)[handle.instance_ids[0]] == InstanceState.TERMINATED
    assert not sim.instance_home(handle.instance_ids[0]).exists()


def test_a_signal_ends_it_and_a_preemption_stops_its_clock(cloud: LocalCloud) -> None:
    simulate(cloud, run_s=3600, lines_per_s=50)
    a, b = cloud.provision("sim-a", cand(), 1), cloud.provision("sim-b", cand(), 1)
    ra, rb = cloud.runner(a, 0), cloud.runner(b, 0)
    agent(ra, "start", "run")
    agent(rb, "start", "run")
    agent(ra, "signal", "run", "TERM")
    assert ra.read_file(f"{ATTEMPT}/run.exit") == b"143"
    cloud.preempt(b.instance_ids[0], notice_s=0)
    assert cloud.instance_states(b.instance_ids)[b.instance_ids[0]] == InstanceState.PREEMPTED
    frozen = rb.read_file(f"{ATTEMPT}/output.log")  # the kept disk is readable ...
    beat = rb.read_file(f"{ATTEMPT}/run.beat")
    time.sleep(0.3)
    assert rb.read_file(f"{ATTEMPT}/output.log") == frozen  # ... and nothing runs there any more
    assert rb.read_file(f"{ATTEMPT}/run.beat") == beat and rb.read_file(f"{ATTEMPT}/run.exit") == b""
    cloud.terminate(a.instance_ids + b.instance_ids)
    assert cloud.list_instances(alive_only=True) == []


def test_without_simulate_instances_are_real(cloud: LocalCloud) -> None:
    handle = cloud.provision("real-1", cand(), 1)
    assert not isinstance(cloud.runner(handle, 0), SimulatedRunner)
    cloud.terminate(handle.instance_ids)
