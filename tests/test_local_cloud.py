"""The local cloud and its runner, with real sandboxes and real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

import spotctl.node_agent.agent as agent_module
from spotctl.clouds.base import CloudError, InstanceState, NoCapacity
from spotctl.clouds.local import LocalCloud
from spotctl.clouds.local_processes import processes_of
from spotctl.clouds.registry import enabled_clouds, get_cloud
from spotctl.config import Settings, load_settings
from spotctl.models import Candidate, ClusterHandle
from spotctl.remote.base import NodeUnreachable
from spotctl.remote.local import LocalRunner

from conftest import pid_dead


def cand(region: str = "local-east", zone: str | None = None, itype: str = "local.small") -> Candidate:
    return Candidate(
        cloud="local", region=region, zone=zone or f"{region}-1a", instance_type=itype, use_spot=True, price=0.01
    )


def set_capacity(cloud: LocalCloud, region: str, capacity: int) -> None:
    cloud.config()  # writes the default file
    data = yaml.safe_load(cloud.config_path.read_text())
    data["regions"][region]["capacity"] = capacity
    cloud.config_path.write_text(yaml.safe_dump(data))


def start_sleep(runner: LocalRunner, script: str = "sleep 1000\n", env: dict | None = None) -> int:
    """Start a run phase on the node the way the activities will: files + agent via the runner."""
    d = "~/.spotctl/job-1/attempt-1"
    runner.put_file(agent_module.__file__, "~/.spotctl/agent.py")
    runner.write_file(f"{d}/env.json", json.dumps(env or {}).encode())
    runner.write_file(f"{d}/run.sh", script.encode())
    res = runner.run([runner.python, f"{runner.home}/.spotctl/agent.py", "start", f"{runner.home}/.spotctl/job-1/attempt-1", "run"])
    assert res.exit_code == 0, res.stderr
    return json.loads(res.stdout)["pid"]


def test_construction_does_no_io_and_config_written_on_first_use(settings: Settings) -> None:
    c = LocalCloud(settings)
    assert not settings.local_cloud_dir.exists()
    offerings = c.offerings()
    assert len(offerings) == 5 * 5
    text = c.config_path.read_text()
    assert text.startswith("#") and "capacity" in text
    by_key = {(o.region, o.instance_type): o for o in offerings}
    assert by_key[("local-east", "local.small")].spot_price == pytest.approx(0.01)
    assert by_key[("local-west", "local.small")].spot_price == pytest.approx(0.011)
    assert by_key[("local-eu", "local.v100")].ondemand_price == pytest.approx(3.825)
    assert by_key[("local-eu", "local.t4")].accelerators == {"T4": 1}
    assert c.config().regions["local-east"].preemption_mtbf_s is None


def test_broken_config_names_file_and_field(cloud: LocalCloud) -> None:
    cloud.config()
    data = yaml.safe_load(cloud.config_path.read_text())
    data["regions"]["local-west"]["capacity"] = "lots"
    cloud.config_path.write_text(yaml.safe_dump(data))
    with pytest.raises(CloudError) as info:
        cloud.offerings()
    assert str(cloud.config_path) in str(info.value) and "regions.local-west.capacity" in str(info.value)
    assert info.value.retryable is False
    cloud.config_path.write_text("regions: [unclosed\n")
    with pytest.raises(CloudError, match="not valid YAML"):
        cloud.offerings()


def test_provision_is_running_and_idempotent(cloud: LocalCloud) -> None:
    h = cloud.provision("job-1-a1", cand(), 2)
    assert h.cloud == "local" and h.region == "local-east" and h.zone == "local-east-1a"
    assert len(h.instance_ids) == 2 and h.node_ips == ["127.0.0.1"] * 2 and h.price == 0.01
    assert all(i.startswith("i-") and len(i) == 14 for i in h.instance_ids)
    assert cloud.provision("gpu", cand(itype="local.t4"), 1).accelerators == {"T4": 1}
    assert cloud.instance_states(h.instance_ids) == {i: InstanceState.RUNNING for i in h.instance_ids}
    for rank in range(len(h.instance_ids)):
        assert Path(cloud.runner(h, rank).home).is_dir()
    names = {i.id: i.name for i in cloud.list_instances()}
    assert [names[i] for i in h.instance_ids] == ["job-1-a1-0", "job-1-a1-1"]

    again = LocalCloud(load_settings(home=cloud.root.parent)).provision("job-1-a1", cand("local-west"), 2)
    assert again.instance_ids == h.instance_ids and again.region == "local-east"
    assert cloud.find_cluster("job-1-a1") == h.instance_ids
    assert cloud.find_cluster("nope") == []

    cloud.terminate([h.instance_ids[1]])  # a lost node is replaced, the other kept
    refill = cloud.provision("job-1-a1", cand(), 2)
    assert refill.instance_ids[0] == h.instance_ids[0] and refill.instance_ids[1] != h.instance_ids[1]


def test_capacity_is_enforced_and_leaves_nothing(cloud: LocalCloud) -> None:
    set_capacity(cloud, "local-east", 2)
    with pytest.raises(NoCapacity, match=r"no capacity in local-east \(0/2 in use\)"):
        cloud.provision("big", cand(), 3)
    assert cloud.list_instances() == [] and cloud.find_cluster("big") == []
    cloud.provision("a", cand(zone="local-east-1b"), 2)
    with pytest.raises(NoCapacity, match=r"\(2/2 in use\)"):
        cloud.provision("b", cand(), 1)
    assert len(cloud.list_instances()) == 2
    assert len(list((cloud.root / "instances").iterdir())) == 2
    cloud.provision("b", cand("local-west"), 1)  # other regions are unaffected
    with pytest.raises(CloudError, match="no region"):
        cloud.provision("c", cand("mars"), 1)
    with pytest.raises(CloudError, match="no zone"):
        cloud.provision("c", cand(zone="local-west-1a"), 1)
    with pytest.raises(CloudError, match="no instance type"):
        cloud.provision("c", cand(itype="p5.48xlarge"), 1)


def test_terminate_kills_everything_and_is_idempotent(cloud: LocalCloud) -> None:
    h = cloud.provision("job-2", cand(), 1)
    iid = h.instance_ids[0]
    runner = cloud.runner(h, 0)
    pid = start_sleep(runner)
    assert pid in processes_of(iid) and len(processes_of(iid)) >= 2  # supervisor + bash + sleep

    cloud.terminate([iid])
    assert processes_of(iid) == [] and pid_dead(pid)
    assert cloud.instance_states([iid, "i-000000000000"]) == {
        iid: InstanceState.TERMINATED, "i-000000000000": InstanceState.GONE,
    }
    assert not (cloud.root / "instances" / iid).exists()
    assert cloud.find_cluster("job-2") == []
    with pytest.raises(NodeUnreachable):
        runner.run(["true"])
    cloud.terminate([iid, "i-000000000000"])  # no-op
    assert cloud.instance_states([iid])[iid] == InstanceState.TERMINATED


def test_old_terminated_records_are_pruned(cloud: LocalCloud) -> None:
    iid = cloud.provision("old", cand(), 1).instance_ids[0]
    cloud.terminate([iid])
    state = json.loads(cloud.state_path.read_text())
    state["instances"][0]["terminated_at"] = (datetime.now(UTC) - timedelta(days=2)).isoformat()
    cloud.state_path.write_text(json.dumps(state))
    cloud.list_instances()  # any read hides them, any write drops them
    assert cloud.instance_states([iid])[iid] == InstanceState.GONE


def test_preempt_kills_and_marks_preempted(cloud: LocalCloud) -> None:
    h = cloud.provision("job-3", cand(), 1)
    iid = h.instance_ids[0]
    pid = start_sleep(cloud.runner(h, 0))
    cloud.preempt(iid)
    assert cloud.instance_states([iid])[iid] == InstanceState.PREEMPTED
    assert processes_of(iid) == [] and pid_dead(pid)
    assert (cloud.root / "instances" / iid).exists()  # the disk stays, like a stopped spot VM's
    cloud.preempt(iid)  # no-op on a dead instance
    cloud.terminate([iid])
    assert not (cloud.root / "instances" / iid).exists()  # ... until it is terminated


def test_preempt_with_notice_warns_the_program(cloud: LocalCloud, tmp_path: Path) -> None:
    h = cloud.provision("job-4", cand(), 1)
    iid = h.instance_ids[0]
    seen = tmp_path / "notice-seen"
    script = f"trap 'cat ~/.spotctl/preemption_notice > {seen}; exit 0' TERM\nwhile true; do sleep 0.1; done\n"
    start_sleep(cloud.runner(h, 0), script)
    t0 = time.time()
    cloud.preempt(iid, notice_s=2)
    assert time.time() - t0 >= 1.9  # taken at the deadline, as a real cloud does
    assert float(seen.read_text()) == pytest.approx(t0 + 2, abs=1)
    assert cloud.instance_states([iid])[iid] == InstanceState.PREEMPTED and processes_of(iid) == []


def test_concurrent_provisioning_respects_capacity(cloud: LocalCloud, settings: Settings) -> None:
    set_capacity(cloud, "local-east", 3)
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from spotctl.clouds.base import NoCapacity\n"
        "from spotctl.clouds.local import LocalCloud\n"
        "from spotctl.config import load_settings\n"
        "from spotctl.models import Candidate\n"
        "c = LocalCloud(load_settings(home=Path(sys.argv[1])))\n"
        "cand = Candidate(cloud='local', region='local-east', zone='local-east-1a',"
        " instance_type='local.small', use_spot=True, price=0.01)\n"
        "try:\n"
        "    c.provision(sys.argv[2], cand, 1)\n"
        "    print('ok')\n"
        "except NoCapacity:\n"
        "    print('full')\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(settings.home), f"c{i}"], stdout=subprocess.PIPE, text=True)
        for i in range(8)
    ]
    outcomes = sorted(p.communicate(timeout=60)[0].strip() for p in procs)
    assert outcomes == ["full"] * 5 + ["ok"] * 3
    assert len(cloud.list_instances()) == 3


def test_runner_environment_files_and_timeout(cloud: LocalCloud, tmp_path: Path) -> None:
    h = cloud.provision("job-5", cand(), 1)
    r = cloud.runner(h, 0)
    assert r.python == sys.executable
    res = r.run(["bash", "-c", 'echo "$HOME|$PWD|$SPOTCTL_LOCAL_INSTANCE|$FOO"; exit 4'], env={"FOO": "bar"})
    assert res.exit_code == 4 and res.stdout.strip() == f"{r.home}|{r.home}|{h.instance_ids[0]}|bar"
    assert r.run(["no-such-command-xyz"]).exit_code == 127

    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "a.txt").write_text("A")
    os.symlink("sub/a.txt", src / "link")
    r.put_dir(str(src), "~/work")
    assert (Path(r.home) / "work" / "sub" / "a.txt").read_text() == "A"
    assert os.readlink(Path(r.home) / "work" / "link") == "sub/a.txt"
    r.put_dir(str(src), "~/work")  # overwriting is fine

    r.write_file("~/x/y.bin", b"0123456789")
    assert r.read_file("~/x/y.bin", offset=3, max_bytes=4) == b"3456"
    assert r.read_file(f"{r.home}/x/y.bin") == b"0123456789"
    assert r.read_file("~/missing") == b"" and r.read_file("~/x/y.bin", offset=100) == b""

    t0 = time.monotonic()
    with pytest.raises(NodeUnreachable):
        r.run(["sleep", "30"], timeout=0.5)
    assert time.monotonic() - t0 < 5


def test_registry(settings: Settings) -> None:
    assert isinstance(get_cloud("local", settings), LocalCloud)
    with pytest.raises(CloudError, match="'azure' is not supported yet") as info:
        get_cloud("azure", settings)
    assert info.value.retryable is False
    assert [c.name for c in enabled_clouds(settings)] == ["local"]
    assert not settings.local_cloud_dir.exists()


def test_runner_handle_round_trip(cloud: LocalCloud) -> None:
    """A handle that went through Temporal (JSON) still finds its node."""
    h = cloud.provision("job-6", cand(), 1)
    h2 = ClusterHandle.model_validate_json(h.model_dump_json())
    assert cloud.runner(h2, 0).run(["pwd"]).stdout.strip() == cloud.runner(h, 0).home


def test_a_create_killed_before_it_saved_leaves_no_disk(cloud: LocalCloud, settings: Settings) -> None:
    """A worker SIGKILLed inside create (instance made, record not yet saved) leaves a disk
    nobody knows of: the next terminate or orphan sweep removes it (found by the chaos soak)."""
    code = (
        "import os, sys\nfrom pathlib import Path\n"
        "from spotctl.clouds.local import LocalCloud\nfrom spotctl.config.settings import load_settings\n"
        "from spotctl.models import Candidate\n"
        "LocalCloud._save = lambda self, instances: os._exit(9)  # killed before the record is saved\n"
        "LocalCloud(load_settings(home=Path(sys.argv[1]))).provision('crashed', Candidate(cloud='local', "
        "region='local-east', zone='local-east-1a', instance_type='local.small', use_spot=True, price=0.01), 1)\n"
    )
    assert subprocess.run([sys.executable, "-c", code, str(settings.home)]).returncode == 9
    disks = cloud.root / "instances"
    assert len(list(disks.iterdir())) == 1 and cloud.list_instances(alive_only=False) == []
    cloud.tagged_instances()
    assert list(disks.iterdir()) == []


def test_a_late_write_to_a_terminated_instance_leaves_no_disk(cloud: LocalCloud) -> None:
    """A runner call that passed its liveness check just before teardown writes after the
    disk was removed (making it again): the next terminate or sweep removes it (chaos soak)."""
    iid = cloud.provision("late", cand(), 1).instance_ids[0]
    cloud.terminate([iid])
    late = cloud.instance_home(iid) / ".spotctl" / "job-1" / "attempt-1" / "run.sh"
    late.parent.mkdir(parents=True)
    late.write_text("echo late\n")
    cloud.tagged_instances()
    assert not (cloud.root / "instances" / iid).exists()
