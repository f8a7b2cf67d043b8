"""A local-cloud instance is a sandbox, not the controller (issue 21, item 7): its programs
cannot read the spotctl home (the codec key, the Temporal database, other instances' disks),
and an absolute mount target such as /etc/xyz is made inside the instance, never on the host.
Real jobs' phases started by the real agent on real local instances."""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path

import pytest
from test_mounts import bucket_dir, materialize_on, output, provision, run_phase, staged_task, wait_exit

import spotctl.remote.local as local_runner
from spotctl.clouds.local import LocalCloud
from spotctl.clouds.local_processes import processes_of
from spotctl.config import Settings
from spotctl.remote.local import sandbox_problem

from conftest import needs_namespaces

needs_sandbox = pytest.mark.skipif(sandbox_problem() is not None, reason=f"no local sandbox: {sandbox_problem()}")


@pytest.fixture
def secret_home(settings: Settings) -> str:
    """A codec key and a Temporal database with a secret in each, as a worker's home holds."""
    secret = f"s3cret-{secrets.token_hex(8)}"
    settings.home.mkdir(parents=True, exist_ok=True)
    (settings.home / "codec.key").write_text(secret)
    (settings.home / "server").mkdir(exist_ok=True)
    (settings.home / "server" / "temporal.db").write_text(secret)
    return secret


@needs_sandbox
def test_a_job_cannot_read_the_spotctl_home(tmp_path: Path, settings: Settings, cloud: LocalCloud, secret_home: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Nor the worker's cloud credentials: ~/.aws of its user, a key file its environment names."""
    home = settings.home
    worker_home, key_file = tmp_path / "worker-home", tmp_path / "keys" / "gcp.json"
    (worker_home / ".aws").mkdir(parents=True)
    (worker_home / ".aws" / "credentials").write_text(secret_home)
    key_file.parent.mkdir()
    key_file.write_text(secret_home)
    monkeypatch.setenv("HOME", str(worker_home))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_file))
    other, _ = provision(cloud, "spotctl-2-1")  # another job's instance, with its env.json
    (cloud.instance_home(other.instance_ids[0]) / "env.json").write_text(secret_home)
    other_dir = cloud.instance_home(other.instance_ids[0])
    shared = settings.home / "local_buckets" / "shared"
    shared.mkdir(parents=True)
    (shared / "data.txt").write_text("bucket data")
    handle, runner = provision(cloud, "spotctl-1-1")
    (Path(runner.home) / "mine.txt").write_text("own file")
    run_phase(runner, f"""
        cat {home}/codec.key {home}/server/temporal.db {other_dir}/env.json
        cat {worker_home}/.aws/credentials {key_file}
        cat /proc/1/root{home}/codec.key
        umount {home} || umount -l {home}
        cd {runner.home}/../../../..; cat codec.key
        cat {home}/codec.key
        echo "own: $(cat {runner.home}/mine.txt) / $(cat {shared}/data.txt)"
        echo "block devices: $(for f in $(find /dev 2>/dev/null); do [ -b "$f" ] && echo "$f"; done | wc -l)"
        """)
    assert wait_exit(runner) == 0, output(runner)
    out = output(runner)
    assert secret_home not in out, out
    assert "own: own file / bucket data" in out  # its own disk and the local buckets stay in reach
    assert "block devices: 0" in out  # nor can it read the disk that holds them raw
    # spotctl's own commands on the instance are sandboxed the same way.
    res = runner.run(["cat", str(home / "codec.key")])
    assert res.exit_code != 0 and secret_home not in res.stdout
    cloud.terminate(handle.instance_ids + other.instance_ids)
    assert processes_of(handle.instance_ids[0]) == []


@needs_sandbox
@needs_namespaces
def test_an_absolute_target_is_made_in_the_sandbox(tmp_path: Path, settings: Settings, cloud: LocalCloud) -> None:
    name = f"spotctl-test-{secrets.token_hex(4)}"
    etc_dir, etc_file, top = Path("/etc") / name, Path("/etc") / f"{name}.conf", Path("/") / name
    in_tmp = Path("/tmp") / name  # the instance's own dir is under /tmp too: the phase still starts there
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.txt").write_text("copied data")
    (tmp_path / "conf.txt").write_text("copied conf")
    staged = staged_task(tmp_path, settings, f"""
file_mounts:
  {etc_dir}: ./data
  {etc_file}: ./conf.txt
  {top}: {{name: test-ckpt, mode: MOUNT}}
  {in_tmp}: ./conf.txt
run: echo
""")
    handle, runner = provision(cloud, "spotctl-1-1")
    try:
        materialize_on(settings, runner, staged)
        run_phase(runner, f"cat {etc_dir}/x.txt; echo; cat {etc_file}; echo; ls /etc/passwd; pwd; cat {in_tmp}\n"
                          f"echo saved > {top}/ckpt.txt; echo scratch > {etc_dir}/scratch.txt\n"
                          f"echo made-here > /etc/{name}.new && cat /etc/{name}.new\n")
        assert wait_exit(runner) == 0, output(runner)
        out = output(runner)
        assert "copied data" in out and "copied conf" in out and "/etc/passwd" in out and "made-here" in out
        assert f"{runner.home}\ncopied conf" in out
        root_tree = Path(runner.home).parent / "root"
        assert (root_tree / "etc" / name / "scratch.txt").read_text() == "scratch\n"  # inside the sandbox
        assert (bucket_dir(settings, "test-ckpt") / "ckpt.txt").read_text() == "saved\n"
        # A path the runner is handed outside the instance lands in its root tree too.
        runner.write_file(f"/etc/{name}.runner/f", b"x")
        assert (root_tree / "etc" / f"{name}.runner" / "f").read_bytes() == b"x"
        assert not any(p.exists() for p in (etc_dir, etc_file, top, in_tmp, Path(f"/etc/{name}.new"),
                                            Path(f"/etc/{name}.runner")))
        cloud.terminate(handle.instance_ids)
        assert processes_of(handle.instance_ids[0]) == [] and not root_tree.exists()
    finally:
        made = [p for p in (*Path("/etc").glob(f"{name}*"), top, in_tmp) if p.exists()]
        for path in made:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    assert made == [], f"made on the host: {made}"


def test_without_a_sandbox_commands_still_run_and_the_log_says_why(settings: Settings, cloud: LocalCloud,
                                                                   monkeypatch: pytest.MonkeyPatch,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    """The fallback (not root, no namespaces): simulated by a sandbox helper that cannot start."""
    monkeypatch.setattr(local_runner, "SANDBOX", Path("/nonexistent/local_sandbox.py"))
    sandbox_problem.cache_clear()
    try:
        handle, runner = provision(cloud, "spotctl-1-1")
        res = runner.run(["sh", "-c", "echo ran in $PWD"])
        assert res.exit_code == 0 and res.stdout == f"ran in {runner.home}\n"
        assert "instances cannot be sandboxed here" in caplog.text and "codec key" in caplog.text
        cloud.terminate(handle.instance_ids)
    finally:
        sandbox_problem.cache_clear()
