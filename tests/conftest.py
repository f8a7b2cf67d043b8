"""Shared fixtures: a real embedded Temporal server + worker (started by spotctl's own
embedded/server.py), a CLI runner, and a leak check after every test that uses them."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result
from frozen_heap import frozen_suite_heap  # noqa: F401  (autouse: see frozen_heap.py)
from suite_schedule import make_scheduler, order_for_workers, pass_terminal_env, restore_terminal_env, under_xdist
from temporalio.testing import WorkflowEnvironment
from webhook_receiver import Receiver, running_receiver

from spotctl.cli.main import cli
from spotctl.clouds import local_cgroups
from spotctl.clouds.local import LocalCloud
from spotctl.clouds.local_processes import processes_of
from spotctl.codec import data_converter_for_key
from spotctl.config import Settings, load_settings
from spotctl.embedded import EmbeddedServer, temporal_binary
from spotctl.models import search_attributes as sa
from spotctl.node_agent.agent import pid_alive

# Tests place jobs on the local cloud only, whatever the machine's AWS credentials; the lab
# (tests/lab) enables AWS explicitly, against moto.
os.environ["SPOTCTL_CLOUDS"] = "local"
# ... and never see (or probe for) real AWS credentials: the lab's fixtures set dummy ones.
for _key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
    os.environ.pop(_key, None)
os.environ.update(AWS_SHARED_CREDENTIALS_FILE=os.devnull, AWS_CONFIG_FILE=os.devnull,
                  AWS_EC2_METADATA_DISABLED="true")
# ... nor real GCP credentials: no key file, gcloud's config dir none, and no probe of
# the GCE metadata server (google-auth reads NO_GCE_CHECK at import).
for _key in ("GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT", "STORAGE_EMULATOR_HOST"):
    os.environ.pop(_key, None)
os.environ.update(NO_GCE_CHECK="true", CLOUDSDK_CONFIG=os.devnull)

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if under_xdist():
        order_for_workers(items)  # longest first (suite_schedule.py)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist loadfile` (pyproject.toml's addopts) shares the suite as suite_schedule.py says."""
    return make_scheduler(config, log) if config.getoption("dist") == "loadfile" else None


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    pass_terminal_env(node.workerinput)


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        restore_terminal_env(config.workerinput)


@pytest.fixture(scope="session", autouse=True)
def private_tmpdir(tmp_path_factory: pytest.TempPathFactory) -> None:
    """TMPDIR of this test process (and of every server, worker and program it starts) is a dir
    of its own: the workers of a parallel run never see one another's temporary files, so a
    test that looks for what it left in /tmp (the soak) finds only its own."""
    os.environ["TMPDIR"] = str(tmp_path_factory.mktemp("tmp"))
    tempfile.tempdir = None  # gettempdir() reads TMPDIR again


def pid_dead(pid: int | None) -> bool:
    """True when no process runs under pid. A zombie counts as dead: on some machines PID 1
    does not reap orphans, and a zombie holds no memory, ports or files."""
    return not pid_alive(pid)


def _can_unshare() -> bool:
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "--", "true"], capture_output=True)
    return probe.returncode == 0


needs_namespaces = pytest.mark.skipif(not _can_unshare(), reason="needs root and unshare (mount namespaces)")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """A private state dir for tests that drive clouds, stores or the agent directly."""
    return load_settings(home=tmp_path / "spotctl-home")


@pytest.fixture
def cloud(settings: Settings) -> Iterator[LocalCloud]:
    """A local cloud; at the end every instance is terminated and no instance process is left."""
    c = LocalCloud(settings)
    yield c
    if not c.state_path.exists():
        return
    c.terminate([i.id for i in c.list_instances()])
    leaks = {i.id: processes_of(i.id) for i in c.list_instances(alive_only=False)}
    assert all(p == [] for p in leaks.values()), leaks
    groups = local_cgroups.cloud_groups(c.root)
    assert not groups.exists(), f"cgroups left: {list(groups.iterdir())}"


def launched_id(output: str) -> int:
    """The job id from launch's 'Managed job N ... submitted' line."""
    for line in output.splitlines():
        if line.startswith("Managed job "):
            return int(line.split()[2])
    raise AssertionError(f"no job id in: {output}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spotctl_env(home: Path) -> dict[str, str]:
    """Environment for a private spotctl: its own state dir and ports."""
    return {
        "SPOTCTL_HOME": str(home),
        "SPOTCTL_PORT": str(free_port()),
        "SPOTCTL_UI_PORT": str(free_port()),
        "SPOTCTL_CODEC_PORT": str(free_port()),
        "SPOTCTL_CLOUDS": "local",
    }


@dataclass
class Spot:
    """A running embedded spotctl for tests: run CLI commands, look at the cloud."""

    home: Path
    env: dict[str, str]

    @property
    def settings(self) -> Settings:
        return load_settings(self.home)

    @property
    def cloud(self) -> LocalCloud:
        return LocalCloud(self.settings)

    def run(self, *args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(cli, list(args), env=self.env, input=input, catch_exceptions=False)

    def status(self) -> list[dict]:
        result = self.run("status", "--json", "--all")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    def job(self, job_id: int) -> dict:
        return next(j for j in self.status() if j["job_id"] == job_id)

    def wait_status(self, job_id: int, *statuses: str, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        job: dict = {}
        while time.monotonic() < deadline:
            job = next((j for j in self.status() if j["job_id"] == job_id), {})
            if job.get("status") in statuses:
                return job
            time.sleep(0.2)
        raise AssertionError(f"job {job_id} never reached {statuses}; last seen {job}")

    def wait_running(self, job_id: int, attempt: int = 1, timeout: float = 60) -> dict:
        """Wait until the job is RUNNING its `attempt`-th launch."""
        deadline = time.monotonic() + timeout
        job: dict = {}
        while time.monotonic() < deadline:
            job = next((j for j in self.status() if j["job_id"] == job_id), {})
            if job.get("status") == "RUNNING" and job.get("attempt") == attempt:
                return job
            time.sleep(0.05)
        raise AssertionError(f"job {job_id} never ran attempt {attempt}; last seen {job}")

    def launch_detached(self, *args: str) -> int:
        """`spotctl launch -y -d ARGS`; the new job's id."""
        result = self.run("launch", "-y", "-d", *args)
        assert result.exit_code == 0, result.output
        return launched_id(result.stderr)

    def alive_instances(self) -> list:
        return self.cloud.list_instances(alive_only=True)


@pytest.fixture(scope="session")
def spot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Spot]:
    """One embedded server + worker for the whole session, stopped (and checked gone) at the end."""
    home = tmp_path_factory.mktemp("spotctl-home")
    with embedded_spot(home, spotctl_env(home)) as spot:
        yield spot


@contextmanager
def embedded_spot(home: Path, env: dict[str, str]) -> Iterator[Spot]:
    """An embedded server + worker with `env` in the environment (restored after); at the end
    the server is stopped and its processes are checked gone."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    server = EmbeddedServer(load_settings(home))
    try:
        server.ensure_running()
        pids = [server.supervisor.pid(), server.temporal.pid(), server.worker.pid()]
        yield Spot(home, env)
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    for pid in pids:
        assert pid_dead(pid), f"process {pid} left running"


@pytest.fixture
def spot_clean(spot: Spot) -> Iterator[Spot]:
    """`spot`, plus the leak check: no local instance alive and no instance process left.

    A job's last teardown may still be finishing when its test ends (the job is CANCELLED or
    SUCCEEDED in the CLI's eyes once the workflow said so); the check waits up to 30 s for
    everything to be gone, so a loaded machine is not taken for a leak."""
    yield spot
    deadline = time.monotonic() + 30
    while (left := _leftovers(spot)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert left == [], "; ".join(left)


def _leftovers(spot: Spot) -> list[str]:
    """What a finished test left behind on the local cloud: instances, their processes,
    cgroups, disks, ephemeral buckets."""
    left = []
    alive = spot.alive_instances()
    if alive:
        left.append(f"instances left running: {alive}")
    for inst in spot.cloud.list_instances(alive_only=False):
        if processes_of(inst.id):
            left.append(f"processes left on {inst.id}")
    groups = local_cgroups.cloud_groups(spot.cloud.root)
    if groups.exists():
        left.append(f"cgroups left: {list(groups.iterdir())}")
    disks = spot.home / "local_cloud" / "instances"
    if disks.exists() and list(disks.iterdir()):
        left.append(f"instance disks left: {list(disks.iterdir())}")
    buckets = spot.home / "local_buckets"
    ephemeral = sorted(b.name for b in buckets.glob("spotctl-job-*")) if buckets.exists() else []
    if ephemeral:
        left.append(f"ephemeral buckets left: {ephemeral}")
    return left


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook on 127.0.0.1 that records what it gets (tests/webhook_receiver.py)."""
    with running_receiver() as state:
        yield state


# ---- scripted-activity workflow tests (tests/test_workflow_races.py and its kin) ----------
@pytest.fixture(scope="module")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    """A private dev server for workflows run against scripted activities."""
    async with await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(), data_converter=data_converter_for_key(bytes(32)),
        search_attributes=list(sa.ALL),
    ) as e:
        yield e


@pytest.fixture(scope="module")
async def skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """The same with time skipping: timers of days fire at once."""
    async with await WorkflowEnvironment.start_time_skipping_v2(
        dev_server_existing_path=temporal_binary(), data_converter=data_converter_for_key(bytes(32)),
        search_attributes=list(sa.ALL),
        dev_server_extra_args=["--dynamic-config-value", "frontend.WorkflowTimeSkippingEnabled=true"],
    ) as e:
        yield e


@pytest.fixture
def own_spot(tmp_path: Path) -> Iterator[Spot]:
    """An embedded server + worker of this test's own, for a test that pauses or kills its
    worker (doing so to the session's would stall every other test's jobs)."""
    home = tmp_path / "home"
    with embedded_spot(home, spotctl_env(home)) as spot:
        yield spot


SetMood = Callable[..., None]
"""`mood(region, field=value, ...)`: see the `mood` fixture."""


@pytest.fixture
def mood(cloud: LocalCloud) -> Iterator[SetMood]:
    """`mood(region, field=value, ...)` edits the region in the local cloud's config.yaml; the
    calm config comes back before the `cloud` fixture terminates what is left (so its calls
    are not throttled)."""
    cloud.config()  # writes the default file
    calm = cloud.config_path.read_text()

    def set_mood(region: str, **fields: Any) -> None:
        data = yaml.safe_load(cloud.config_path.read_text())
        data["regions"][region].update(fields)
        cloud.config_path.write_text(yaml.safe_dump(data))

    yield set_mood
    cloud.config_path.write_text(calm)
