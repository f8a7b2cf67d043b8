"""The node agent, driven as a real script in real processes (it runs on VMs the same way)."""

from __future__ import annotations

import http.server
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import spotctl.node_agent.agent as agent_module
from spotctl.clouds.local_processes import kill_all, processes_of

from conftest import needs_namespaces

AGENT = agent_module.__file__


@pytest.fixture
def marker(tmp_path: Path):
    """Tag every process a test starts, so teardown can prove (and force) none is left."""
    tag = "agent-test-" + secrets.token_hex(4)
    yield tag
    leftover = processes_of(tag)
    kill_all(tag)
    assert leftover == [], f"processes left behind: {leftover}"


@pytest.fixture
def attempt(tmp_path: Path) -> Path:
    d = tmp_path / "home" / ".spotctl" / "job-1" / "attempt-1"
    d.mkdir(parents=True)
    (d / "env.json").write_text(json.dumps({"GREETING": "hello from env"}))
    return d


def _env(tmp_path: Path, marker: str) -> dict[str, str]:
    return {**os.environ, "HOME": str(tmp_path / "home"), "SPOTCTL_LOCAL_INSTANCE": marker}


def agent(tmp_path: Path, marker: str, *args: str) -> dict:
    out = subprocess.run(
        [sys.executable, AGENT, *args], env=_env(tmp_path, marker), capture_output=True, text=True, timeout=20
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def wait_for(predicate, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def wait_exit(tmp_path: Path, marker: str, d: Path, phase: str = "run") -> dict:
    return wait_for(lambda: (s := agent(tmp_path, marker, "status", str(d), phase))["exit_code"] is not None and s)


def test_start_runs_script_records_output_and_exit_code(tmp_path: Path, marker: str, attempt: Path) -> None:
    (attempt / "run.sh").write_text('echo "$GREETING"; echo "cwd=$(pwd)"; echo oops >&2; exit 3\n')
    started = agent(tmp_path, marker, "start", str(attempt), "run")
    assert started["started"] and started["already_started"] is False
    assert isinstance(started["pid"], int)
    final = wait_exit(tmp_path, marker, attempt)
    assert final == {"started": True, "running": False, "pid": started["pid"], "exit_code": 3, "lost": False}
    log = (attempt / "output.log").read_text()
    assert "hello from env" in log and "oops" in log
    assert f"cwd={tmp_path / 'home'}" in log


def test_status_before_start(tmp_path: Path, marker: str, attempt: Path) -> None:
    assert agent(tmp_path, marker, "status", str(attempt), "setup") == {
        "started": False, "running": False, "pid": None, "exit_code": None, "lost": False,
    }


def test_second_start_does_not_run_twice(tmp_path: Path, marker: str, attempt: Path) -> None:
    counter, release = tmp_path / "counter", tmp_path / "release"
    # The setup runs until the test has seen it running (a fixed sleep raced the second start
    # on a loaded machine).
    (attempt / "setup.sh").write_text(f"echo ran >> {counter}; while [ ! -e {release} ]; do sleep 0.02; done\n")
    first = agent(tmp_path, marker, "start", str(attempt), "setup")
    second = agent(tmp_path, marker, "start", str(attempt), "setup")
    assert second["already_started"] is True and second["pid"] == first["pid"]
    assert second["running"] is True
    release.touch()
    wait_exit(tmp_path, marker, attempt, "setup")
    assert agent(tmp_path, marker, "start", str(attempt), "setup")["exit_code"] == 0
    assert counter.read_text().splitlines() == ["ran"]


def test_concurrent_starts_have_one_winner(tmp_path: Path, marker: str, attempt: Path) -> None:
    counter = tmp_path / "counter"
    (attempt / "run.sh").write_text(f"echo ran >> {counter}\n")
    procs = [
        subprocess.Popen([sys.executable, AGENT, "start", str(attempt), "run"], env=_env(tmp_path, marker),
                         stdout=subprocess.PIPE, text=True)
        for _ in range(6)
    ]
    results = [json.loads(p.communicate(timeout=20)[0]) for p in procs]
    assert sorted(r["already_started"] for r in results) == [False] + [True] * 5
    wait_exit(tmp_path, marker, attempt)
    assert counter.read_text().splitlines() == ["ran"]


def test_killed_process_group_reports_exit_and_killed_node_reports_lost(
    tmp_path: Path, marker: str, attempt: Path
) -> None:
    (attempt / "run.sh").write_text("sleep 1000\n")
    pid = agent(tmp_path, marker, "start", str(attempt), "run")["pid"]
    os.killpg(pid, signal.SIGKILL)  # the program dies, the supervisor notices
    assert wait_exit(tmp_path, marker, attempt)["exit_code"] == 128 + signal.SIGKILL

    (attempt / "setup.sh").write_text("sleep 1000\n")
    pid = agent(tmp_path, marker, "start", str(attempt), "setup")["pid"]
    spid = int((attempt / "setup.spid").read_text())
    os.kill(spid, signal.SIGKILL)  # every process on the "node" dies: nobody records an exit
    os.killpg(pid, signal.SIGKILL)
    status = wait_for(lambda: (s := agent(tmp_path, marker, "status", str(attempt), "setup"))["lost"] and s)
    assert status["running"] is False and status["exit_code"] is None


def test_supervisor_survives_its_caller(tmp_path: Path, marker: str, attempt: Path) -> None:
    (attempt / "run.sh").write_text("sleep 0.5; echo survived\n")
    # The caller starts the phase, then kills its whole process group, as a dying SSH session would.
    caller = subprocess.run(
        ["bash", "-c", f'"{sys.executable}" "{AGENT}" start "{attempt}" run; kill -9 -- -$$'],
        env=_env(tmp_path, marker), capture_output=True, text=True, timeout=20, start_new_session=True,
    )
    assert caller.returncode == -signal.SIGKILL
    assert json.loads(caller.stdout)["already_started"] is False
    assert wait_exit(tmp_path, marker, attempt)["exit_code"] == 0
    assert "survived" in (attempt / "output.log").read_text()


def test_signal_term_reaches_the_program(tmp_path: Path, marker: str, attempt: Path) -> None:
    trapped = tmp_path / "trapped"
    (attempt / "run.sh").write_text(f"trap 'echo got-term > {trapped}; exit 5' TERM\nwhile true; do sleep 0.1; done\n")
    agent(tmp_path, marker, "start", str(attempt), "run")
    agent(tmp_path, marker, "signal", str(attempt), "run")
    assert wait_exit(tmp_path, marker, attempt)["exit_code"] == 5
    assert trapped.read_text().strip() == "got-term"
    # Signalling a finished phase is harmless.
    assert agent(tmp_path, marker, "signal", str(attempt), "run", "KILL")["exit_code"] == 5


def test_supervisor_forwards_sigterm(tmp_path: Path, marker: str, attempt: Path) -> None:
    trapped = tmp_path / "trapped"
    (attempt / "run.sh").write_text(f"trap 'echo fwd > {trapped}; exit 7' TERM\nwhile true; do sleep 0.1; done\n")
    agent(tmp_path, marker, "start", str(attempt), "run")
    os.kill(int((attempt / "run.spid").read_text()), signal.SIGTERM)
    assert wait_exit(tmp_path, marker, attempt)["exit_code"] == 7
    assert trapped.read_text().strip() == "fwd"


def test_usage_errors(tmp_path: Path) -> None:
    for args in ([], ["start", str(tmp_path / "missing"), "run"], ["signal", str(tmp_path), "run", "NOPE"]):
        out = subprocess.run([sys.executable, AGENT, *args], capture_output=True, text=True, timeout=20)
        assert out.returncode == 2 and out.stdout == "" and out.stderr


# -- mounts.json: bind mounts in a private mount namespace ----------------------------------




@pytest.fixture
def host_target():
    """A unique absolute path on the host's root; it must never exist (the phase's own root has it)."""
    path = Path(f"/spotctl-test-{secrets.token_hex(4)}")
    yield path
    made = path.exists()
    if path.is_dir():
        shutil.rmtree(path)
    assert not made, f"the host path {path} was made"


@needs_namespaces
def test_mounts_are_private_to_the_phase(tmp_path: Path, marker: str, attempt: Path, host_target: Path) -> None:
    bucket = tmp_path / "bucket"
    bucket.mkdir()
    (bucket / "old.txt").write_text("from before")
    (attempt / "mounts.json").write_text(json.dumps([{"source": str(bucket), "target": str(host_target)}]))
    trapped = tmp_path / "trapped"
    (attempt / "run.sh").write_text(
        f"cat {host_target}/old.txt; echo new > {host_target}/new.txt\n"
        f"trap 'echo got-term > {trapped}; exit 5' TERM\nwhile true; do sleep 0.1; done\n"
    )
    started = agent(tmp_path, marker, "start", str(attempt), "run")
    wait_for(lambda: (bucket / "new.txt").exists())
    # The phase's pid is still bash's and its group's: signals reach it through unshare and the agent.
    assert os.getpgid(started["pid"]) == started["pid"]
    assert Path(f"/proc/{started['pid']}/cmdline").read_bytes().split(b"\0")[0] == b"bash"
    assert not host_target.exists()  # the host has no such path, let alone the bucket
    agent(tmp_path, marker, "signal", str(attempt), "run")
    assert wait_exit(tmp_path, marker, attempt)["exit_code"] == 5
    assert trapped.read_text().strip() == "got-term"
    assert "from before" in (attempt / "output.log").read_text()
    assert (bucket / "new.txt").read_text() == "new\n"


def test_mounts_without_unshare_fail_clearly(tmp_path: Path, marker: str, attempt: Path) -> None:
    """No unshare on PATH (or not root): the phase never runs, exit code 126, reason logged."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    os.symlink(subprocess.run(["which", "bash"], capture_output=True, text=True).stdout.strip(), bin_dir / "bash")
    (attempt / "env.json").write_text(json.dumps({"PATH": str(bin_dir)}))
    (attempt / "mounts.json").write_text(json.dumps([{"source": str(tmp_path), "target": "/spotctl-never"}]))
    (attempt / "run.sh").write_text(f"echo ran > {tmp_path / 'ran'}\n")
    agent(tmp_path, marker, "start", str(attempt), "run")
    assert wait_exit(tmp_path, marker, attempt)["exit_code"] == 126
    log = (attempt / "output.log").read_text()
    assert "absolute mount targets on the local cloud need root (mount namespaces); use a ~/ target instead" in log
    assert not (tmp_path / "ran").exists() and not Path("/spotctl-never").exists()


# -- GCE's interruption notice (SPOTCTL_METADATA_KIND=gcp) ------------------------------------


class _GceMetadata:
    """A tiny GCE metadata server on 127.0.0.1: `preempted` answers TRUE/FALSE as set, only to
    requests carrying `Metadata-Flavor: Google` (as GCE's does), and every request is kept."""

    def __init__(self) -> None:
        self.preempted = False
        self.requests: list[tuple[str, str | None]] = []
        meta = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                meta.requests.append((self.path, self.headers.get("Metadata-Flavor")))
                ok = self.path.startswith("/computeMetadata/v1/instance/preempted")
                if ok and self.headers.get("Metadata-Flavor") != "Google":
                    code, body = 403, b"Missing Metadata-Flavor:Google header."
                else:
                    code, body = (200, b"TRUE" if meta.preempted else b"FALSE") if ok else (404, b"")
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gce_metadata():
    meta = _GceMetadata()
    yield meta
    meta.close()


def test_gce_preemption_notice_sends_sigterm_and_writes_deadline(
    tmp_path: Path, marker: str, attempt: Path, gce_metadata: _GceMetadata
) -> None:
    """Both settings in the phase's env.json; GCE's answer has no time: the deadline is now + 30 s."""
    (attempt / "env.json").write_text(json.dumps({"SPOTCTL_METADATA_URL": gce_metadata.url + "/",
                                                  "SPOTCTL_METADATA_KIND": "gcp"}))
    ready, seen = tmp_path / "ready", tmp_path / "seen"
    (attempt / "run.sh").write_text(
        f"trap 'cat ~/.spotctl/preemption_notice > {seen}; exit 0' TERM\n"
        f"touch {ready}\nwhile true; do sleep 0.1; done\n")
    agent(tmp_path, marker, "start", str(attempt), "run")
    wait_for(lambda: ready.exists() and gce_metadata.requests)
    time.sleep(1.2)
    assert not seen.exists()  # FALSE: nothing yet
    gce_metadata.preempted = True
    noticed = time.time()
    assert wait_exit(tmp_path, marker, attempt)["exit_code"] == 0
    took = time.time() - noticed
    deadline = float(seen.read_text())
    assert took < 5 and noticed + 30 - 1 <= deadline <= noticed + took + 30 + 1
    assert (tmp_path / "home" / ".spotctl" / "preemption_notice").read_text().strip() == str(deadline)
    assert {path for path, _ in gce_metadata.requests} == {"/computeMetadata/v1/instance/preempted"}
    assert {flavor for _, flavor in gce_metadata.requests} == {"Google"}


def test_gce_no_notice_while_not_preempted(
    tmp_path: Path, marker: str, attempt: Path, gce_metadata: _GceMetadata, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The VM's own settings (the agent's environment) this time; FALSE never signals."""
    monkeypatch.setenv("SPOTCTL_METADATA_URL", gce_metadata.url)
    monkeypatch.setenv("SPOTCTL_METADATA_KIND", "gcp")
    trapped = tmp_path / "trapped"
    (attempt / "run.sh").write_text(f"trap 'echo term > {trapped}; exit 9' TERM\nsleep 2.5\n")
    agent(tmp_path, marker, "start", str(attempt), "run")
    assert wait_exit(tmp_path, marker, attempt)["exit_code"] == 0
    assert not trapped.exists() and not (tmp_path / "home" / ".spotctl" / "preemption_notice").exists()
    assert len(gce_metadata.requests) >= 2  # it did ask, about once a second


def test_unknown_metadata_kind_is_reported(
    tmp_path: Path, marker: str, attempt: Path, gce_metadata: _GceMetadata
) -> None:
    """An unknown SPOTCTL_METADATA_KIND is reported in the log, not guessed; the phase runs."""
    gce_metadata.preempted = True
    (attempt / "env.json").write_text(json.dumps({"SPOTCTL_METADATA_URL": gce_metadata.url,
                                                  "SPOTCTL_METADATA_KIND": "azure"}))
    (attempt / "run.sh").write_text("sleep 1.5\n")
    agent(tmp_path, marker, "start", str(attempt), "run")
    assert wait_exit(tmp_path, marker, attempt)["exit_code"] == 0
    assert "unknown SPOTCTL_METADATA_KIND 'azure'" in (attempt / "output.log").read_text()
    assert gce_metadata.requests == []
