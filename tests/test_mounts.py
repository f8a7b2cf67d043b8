"""File mounts on real local-cloud instances: staged buckets, materialize, the agent, and the
checkpoint/resume example surviving a preemption."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import spotctl.node_agent.agent as agent_module
from spotctl.activities.mounts import materialize
from spotctl.clouds.local import LocalCloud
from spotctl.clouds.local_processes import processes_of
from spotctl.config import Settings
from spotctl.launch import StagedFiles, delete_buckets, stage
from spotctl.models import Candidate, ClusterHandle, FileMount
from spotctl.remote.base import NodeUnreachable
from spotctl.remote.local import LocalRunner
from spotctl.storage.base import StorageError
from spotctl.storage.registry import get_store
from spotctl.task import load_task_file

from conftest import EXAMPLES, needs_namespaces

TRAIN = EXAMPLES / "checkpoint_resume" / "train.py"








@pytest.fixture
def host_paths():
    """Unique absolute paths on the host's root; afterwards none may exist (a job's mount
    target is made in its own root, never on the host); one that does is removed."""
    made: list[Path] = []

    def new() -> Path:
        made.append(Path(f"/spotctl-test-{secrets.token_hex(4)}"))
        return made[-1]

    yield new
    dirty = {}
    for path in made:
        if path.is_dir():
            dirty[path] = os.listdir(path)
            path.rmdir() if not dirty[path] else shutil.rmtree(path)
        elif path.exists():
            dirty[path] = path.read_bytes()
            path.unlink()
    assert dirty == {}, f"host paths made: {dirty}"


def provision(cloud: LocalCloud, name: str) -> tuple[ClusterHandle, LocalRunner]:
    cand = Candidate(cloud="local", region="local-east", zone="local-east-1a", instance_type="local.small",
                     use_spot=True, price=0.01)
    handle = cloud.provision(name, cand, 1)
    return handle, cloud.runner(handle, 0)


def attempt_dir(runner: LocalRunner) -> str:
    return f"{runner.home}/.spotctl/job-1/attempt-1"


def run_phase(runner: LocalRunner, script: str, env: dict | None = None) -> None:
    """Start the run phase the way the activities do: agent, env.json, run.sh, agent start."""
    d = attempt_dir(runner)
    runner.put_file(agent_module.__file__, "~/.spotctl/agent.py")
    runner.write_file(f"{d}/env.json", json.dumps(env or {}).encode())
    runner.write_file(f"{d}/run.sh", script.encode())
    res = runner.run([runner.python, f"{runner.home}/.spotctl/agent.py", "start", d, "run"])
    assert res.exit_code == 0, res.stderr


def wait_exit(runner: LocalRunner, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        raw = runner.read_file(f"{attempt_dir(runner)}/run.exit")
        if raw.strip():
            return int(raw)
        time.sleep(0.05)
    raise AssertionError("the phase did not end in time")


def output(runner: LocalRunner) -> str:
    return runner.read_file(f"{attempt_dir(runner)}/output.log").decode()


def staged_task(tmp_path: Path, settings: Settings, text: str, job_id: int = 1) -> StagedFiles:
    (tmp_path / "task.yaml").write_text(text)
    with contextlib.chdir(tmp_path):  # relative paths are taken from the cwd, as in SkyPilot
        return stage(load_task_file(tmp_path / "task.yaml").tasks[0], job_id, settings)


def materialize_on(settings: Settings, runner: LocalRunner, staged: StagedFiles) -> None:
    asyncio.run(materialize(settings, runner, staged.file_mounts, staged.workdir_mount, attempt_dir(runner)))


def bucket_dir(settings: Settings, bucket: str) -> Path:
    return settings.home / "local_buckets" / bucket


def test_home_targets_copy_and_mount(tmp_path: Path, settings: Settings, cloud: LocalCloud) -> None:
    (tmp_path / "wd").mkdir()
    (tmp_path / "wd" / "hello.sh").write_text("echo hello from workdir\n")
    (tmp_path / "data" / "sub").mkdir(parents=True)
    (tmp_path / "data" / "sub" / "x.txt").write_text("data file")
    (tmp_path / "conf.txt").write_text("conf file")
    staged = staged_task(tmp_path, settings, """
workdir: wd
file_mounts:
  ~/data: ./data
  ~/etc/conf.txt: conf.txt
  ~/ckpt: {name: test-ckpt, mode: MOUNT}
run: echo
""")
    handle, runner = provision(cloud, "spotctl-1-1")
    materialize_on(settings, runner, staged)
    materialize_on(settings, runner, staged)  # a retried setup does the same again
    home = Path(runner.home)
    assert os.readlink(home / "ckpt") == str(bucket_dir(settings, "test-ckpt"))
    assert not (Path(attempt_dir(runner)) / "mounts.json").exists()  # nothing outside $HOME

    run_phase(runner, "cd ~/sky_workdir && bash hello.sh\ncat ~/data/sub/x.txt; echo; cat ~/etc/conf.txt; echo\n"
                      "echo step-7 > ~/ckpt/state.txt\n")
    assert wait_exit(runner) == 0, output(runner)
    out = output(runner)
    assert "hello from workdir" in out and "data file" in out and "conf file" in out
    cloud.terminate(handle.instance_ids)
    assert processes_of(handle.instance_ids[0]) == [] and not home.exists()
    # The MOUNT write went straight to the bucket, which outlives the instance.
    assert (bucket_dir(settings, "test-ckpt") / "state.txt").read_text() == "step-7\n"
    delete_buckets(staged.ephemeral_buckets, settings)
    assert sorted(p.name for p in (settings.home / "local_buckets").iterdir()) == ["test-ckpt"]


@needs_namespaces
def test_absolute_targets_are_private_to_the_job(tmp_path: Path, settings: Settings, cloud: LocalCloud, host_paths) -> None:
    ckpt, data, conf = host_paths(), host_paths(), host_paths()
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.txt").write_text("copied data")
    (tmp_path / "conf.txt").write_text("copied conf")
    staged = staged_task(tmp_path, settings, f"""
file_mounts:
  {ckpt}: {{name: test-ckpt, mode: MOUNT}}
  {data}: ./data
  {conf}: ./conf.txt
run: echo
""")
    handle, runner = provision(cloud, "spotctl-1-1")
    materialize_on(settings, runner, staged)
    entries = json.loads((Path(attempt_dir(runner)) / "mounts.json").read_text())
    private_root = Path(runner.home).parent / "root"
    assert entries == [
        {"source": str(bucket_dir(settings, "test-ckpt")), "target": str(ckpt)},
        {"source": str(private_root / data.name), "target": str(data)},
        {"source": str(private_root / conf.name), "target": str(conf)},
    ]
    run_phase(runner, f"cat {data}/x.txt; echo; cat {conf}; echo\necho saved > {ckpt}/ckpt.txt\n"
                      f"echo scratch > {data}/scratch.txt\n")
    assert wait_exit(runner) == 0, output(runner)
    assert "copied data" in output(runner) and "copied conf" in output(runner)
    assert (bucket_dir(settings, "test-ckpt") / "ckpt.txt").read_text() == "saved\n"
    assert (private_root / data.name / "scratch.txt").exists()  # a COPY is the instance's own
    cloud.terminate(handle.instance_ids)
    assert processes_of(handle.instance_ids[0]) == [] and not private_root.exists()
    assert (bucket_dir(settings, "test-ckpt") / "ckpt.txt").exists()
    # host_paths asserts that the host's paths stayed empty.


def test_mount_errors_are_clear(tmp_path: Path, settings: Settings, cloud: LocalCloud) -> None:
    handle, runner = provision(cloud, "spotctl-1-1")
    (Path(runner.home) / "busy").mkdir()
    (Path(runner.home) / "busy" / "f").write_text("x")
    get_store(settings).create_bucket("some-bucket")
    mount = FileMount(target="~/busy", bucket="some-bucket", mode="MOUNT")
    with pytest.raises(StorageError, match="non-empty directory"):
        asyncio.run(materialize(settings, runner, [mount], None, attempt_dir(runner)))
    with pytest.raises(StorageError, match="not staged"):
        asyncio.run(materialize(settings, runner, [FileMount(target="~/x", source="/tmp")], None, attempt_dir(runner)))


def test_targets_that_climb_out_of_home_are_refused_on_the_node(tmp_path: Path, settings: Settings,
                                                                  cloud: LocalCloud) -> None:
    """The parser refuses these; a JobSpec built another way must still write nothing outside."""
    _, runner = provision(cloud, "spotctl-1-1")
    store = get_store(settings)
    store.create_bucket("some-bucket")
    (bucket_dir(settings, "some-bucket") / "f").write_text("x")
    outside = Path(runner.home).parents[2] / "x"
    for target in ("~/../../../x", "../../../x", "a/../../../../x"):
        mount = FileMount(target=target, bucket="some-bucket", bucket_path="f", is_file=True)
        with pytest.raises(StorageError, match="leaves the home directory"):
            asyncio.run(materialize(settings, runner, [mount], None, attempt_dir(runner)))
    assert not outside.exists()


class SshLikeRunner:
    """A runner that is not a LocalRunner (as an SSH runner to a real VM will be): materialize
    may only use the Runner protocol with it. It drives a real local instance underneath."""

    def __init__(self, inner: LocalRunner) -> None:
        self.inner, self.home, self.python = inner, inner.home, inner.python
        self.shares_host_files = False

    def __getattr__(self, name: str):
        return getattr(self.inner, name)


def test_other_clouds_copy_through_the_runner(tmp_path: Path, settings: Settings, cloud: LocalCloud) -> None:
    (tmp_path / "wd").mkdir()
    (tmp_path / "wd" / "w.txt").write_text("workdir")
    (tmp_path / "conf.txt").write_text("conf")
    staged = staged_task(tmp_path, settings, "workdir: wd\nfile_mounts:\n  ~/c/conf.txt: conf.txt\nrun: echo\n")
    handle, runner = provision(cloud, "spotctl-1-1")
    remote = SshLikeRunner(runner)
    asyncio.run(materialize(settings, remote, staged.file_mounts, staged.workdir_mount, attempt_dir(runner)))
    assert (Path(runner.home) / "sky_workdir" / "w.txt").read_text() == "workdir"
    assert (Path(runner.home) / "c" / "conf.txt").read_text() == "conf"
    get_store(settings).create_bucket("some-bucket")
    with pytest.raises(StorageError, match="MOUNT of local bucket 'some-bucket' is not supported on this cloud"):
        asyncio.run(materialize(settings, remote, [FileMount(target="/ckpt", bucket="some-bucket")], None,
                                attempt_dir(runner)))


def test_gone_instance_is_unreachable_and_not_recreated(tmp_path: Path, settings: Settings, cloud: LocalCloud) -> None:
    get_store(settings).create_bucket("some-bucket")
    handle, runner = provision(cloud, "spotctl-1-1")
    cloud.terminate(handle.instance_ids)
    with pytest.raises(NodeUnreachable):
        asyncio.run(materialize(settings, runner, [FileMount(target="~/ckpt", bucket="some-bucket")], None,
                                attempt_dir(runner)))
    assert not Path(runner.home).exists()


# -- the checkpoint/resume example ----------------------------------------------------------


def expected_result(steps: int) -> str:
    state = ""
    for step in range(1, steps + 1):
        state = hashlib.sha256(f"{state}:{step}".encode()).hexdigest()
    return state[:16]


def wait_step(ckpt: Path, at_least: int, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            step = json.loads((ckpt / "checkpoint.json").read_text())["step"]
            if step >= at_least:
                return step
        except (FileNotFoundError, ValueError):
            pass
        time.sleep(0.02)
    raise AssertionError(f"no checkpoint at step {at_least} in time")


def test_training_resumes_to_the_same_result(tmp_path: Path) -> None:
    env = {**os.environ, "TOTAL_STEPS": "12", "STEP_SECONDS": "0.05"}
    whole = subprocess.run([sys.executable, str(TRAIN)], env={**env, "CHECKPOINT_DIR": str(tmp_path / "a")},
                           capture_output=True, text=True, timeout=60)
    assert whole.returncode == 0 and "starting fresh" in whole.stdout
    assert f"result: {expected_result(12)}" in whole.stdout

    ckpt = tmp_path / "b"
    first = subprocess.Popen([sys.executable, str(TRAIN)], env={**env, "CHECKPOINT_DIR": str(ckpt)},
                             stdout=subprocess.PIPE, text=True)
    try:
        wait_step(ckpt, 4)
        first.send_signal(signal.SIGTERM)
        out, _ = first.communicate(timeout=20)
    finally:
        first.kill()
        first.wait()
    assert first.returncode == 143 and "preempted: checkpoint saved" in out
    stopped = json.loads((ckpt / "checkpoint.json").read_text())["step"]
    assert 4 <= stopped < 12 and not (ckpt / "result.json").exists()
    assert sorted(os.listdir(ckpt)) == ["checkpoint.json"]  # no temporary file left behind

    second = subprocess.run([sys.executable, str(TRAIN)], env={**env, "CHECKPOINT_DIR": str(ckpt)},
                            capture_output=True, text=True, timeout=60)
    assert second.returncode == 0 and f"resumed from step {stopped}" in second.stdout
    lines = second.stdout.splitlines()
    assert f"step {stopped}" not in lines and f"step {stopped + 1}" in lines  # no step done twice
    assert f"result: {expected_result(12)}" in second.stdout
    assert json.loads((ckpt / "result.json").read_text()) == {"steps": 12, "result": expected_result(12)}


@needs_namespaces
def test_example_survives_a_preemption(tmp_path: Path, settings: Settings, cloud: LocalCloud, host_paths) -> None:
    """examples/checkpoint_resume.yaml as the workflow would run it (with a unique mount path):
    attempt 1 is preempted mid-way, attempt 2 on a new instance resumes from the bucket."""
    target = host_paths()
    text = (EXAMPLES / "checkpoint_resume.yaml").read_text()
    text = text.replace("workdir: examples/checkpoint_resume", "workdir: WORKDIR")  # relative to the repo root
    text = text.replace("/checkpoint", str(target)).replace("WORKDIR", str(EXAMPLES / "checkpoint_resume"))
    text = text.replace('TOTAL_STEPS: "60"', 'TOTAL_STEPS: "20"').replace('STEP_SECONDS: "0.5"', 'STEP_SECONDS: "0.1"')
    assert 'TOTAL_STEPS: "20"' in text and 'STEP_SECONDS: "0.1"' in text
    (tmp_path / "task.yaml").write_text(text)
    task = load_task_file(tmp_path / "task.yaml").tasks[0]
    staged = stage(task, 1, settings)
    bucket = bucket_dir(settings, "spotctl-ckpt-demo")
    script = f"cd ~/sky_workdir\n{task.run}"

    handle, runner = provision(cloud, "spotctl-1-1")
    materialize_on(settings, runner, staged)
    run_phase(runner, script, task.envs)
    wait_step(bucket, 3)
    cloud.preempt(handle.instance_ids[0], notice_s=3)  # SIGTERM first: the program saves and exits
    assert processes_of(handle.instance_ids[0]) == []
    stopped = json.loads((bucket / "checkpoint.json").read_text())["step"]
    assert 3 <= stopped < 20 and not (bucket / "result.json").exists()

    handle2, runner2 = provision(cloud, "spotctl-1-2")
    materialize_on(settings, runner2, staged)
    run_phase(runner2, script, task.envs)
    assert wait_exit(runner2) == 0, output(runner2)
    out = output(runner2)
    assert f"resumed from step {stopped}" in out and f"result: {expected_result(20)}" in out
    cloud.terminate(handle2.instance_ids)
    assert processes_of(handle2.instance_ids[0]) == []
    delete_buckets(staged.ephemeral_buckets, settings)
    assert staged.ephemeral_buckets == ["spotctl-job-1-files"]
    assert sorted(p.name for p in bucket.parent.iterdir()) == ["spotctl-ckpt-demo"]
    assert json.loads((bucket / "result.json").read_text())["result"] == expected_result(20)
