"""SSHRunner against real sshd fake VMs (see fake_vm.py): commands, files, separate homes,
host key pinning, and the three ways a node goes away (killed, frozen, slow command)."""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fake_vm import FakeVM, lab_leftovers, lab_missing, lab_octet

from spotctl.remote import ssh
from spotctl.remote.base import NodeUnreachable
from spotctl.remote.ssh import HostKeyChanged, SSHRunner, close_all, forget_host

_missing = lab_missing()
pytestmark = [pytest.mark.skipif(_missing is not None, reason=_missing or ""), pytest.mark.timeout(90)]
NET = f"127.{201 + lab_octet()}.{os.getpid() % 200 + 1}"
"""This process's loopback /24, so two sessions' VMs never share an address (nor two xdist
workers' of one session)."""


@pytest.fixture(scope="session")
def client_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """(private key path, public key line): one Ed25519 pair per session."""
    key = Ed25519PrivateKey.generate()
    path = tmp_path_factory.mktemp("client") / "id_ed25519"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with open(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                  serialization.NoEncryption()))
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return str(path), public.decode() + " lab"


@dataclass
class Lab:
    tmp: Path
    key_path: str
    public_key: str
    vms: list[FakeVM] = field(default_factory=list)

    @property
    def known_hosts(self) -> str:
        return str(self.tmp / "client" / ".ssh" / "known_hosts")

    def vm(self, n: int | None = None) -> FakeVM:
        n = len(self.vms) + 1 if n is None else n
        vm = FakeVM(f"{NET}.{n}", self.tmp / f"vm{n}", self.public_key)
        self.vms.append(vm)
        vm.start()
        return vm

    def runner(self, vm: FakeVM | str, **kw: float) -> SSHRunner:
        host = vm if isinstance(vm, str) else vm.address
        kw.setdefault("connect_timeout_s", 3.0)
        kw.setdefault("silence_timeout_s", 5.0)
        return SSHRunner(host, user="root", key_path=self.key_path, known_hosts=self.known_hosts, **kw)


@pytest.fixture
def lab(tmp_path: Path, client_key: tuple[str, str]) -> Iterator[Lab]:
    lab = Lab(tmp_path, *client_key)
    try:
        yield lab
    finally:
        close_all()
        for vm in lab.vms:
            vm.stop()
        assert lab_leftovers() == []
        assert ssh._pool == {}


def test_run_exit_codes_output_and_env(lab: Lab) -> None:
    r = lab.runner(lab.vm())
    assert r.home == "/root" and r.python == "python3"
    res = r.run(["sh", "-c", 'echo "$A|$B"; echo oops >&2; pwd; exit 7'], {"A": "x y", "B": "it's; $HOME"})
    assert (res.exit_code, res.stdout, res.stderr) == (7, "x y|it's; $HOME\n/root\n", "oops\n")
    assert r.run(["echo", "a;b", "$HOME", "*"]).stdout == "a;b $HOME *\n"  # argv is quoted, not a shell line
    assert r.run(["no-such-command-xyz"]).exit_code == 127
    assert r.run(["python3", "-c", "print(6*7)"]).stdout == "42\n"
    big = r.run(["python3", "-c", "import sys; sys.stdout.write('x'*3000000); sys.stderr.write('y'*100000)"])
    assert len(big.stdout) == 3_000_000 and len(big.stderr) == 100_000


def test_run_timeout_and_silent_commands(lab: Lab) -> None:
    r = lab.runner(lab.vm(), silence_timeout_s=1.0)
    t0 = time.monotonic()
    with pytest.raises(NodeUnreachable, match="timed out"):
        r.run(["sleep", "10"], timeout=0.5)
    assert time.monotonic() - t0 < 2
    # Quiet for longer than the silence timeout is fine while the node answers the probes.
    assert r.run(["sh", "-c", "sleep 2.5; echo done"]).stdout == "done\n"
    # Output closed early (EOF before the exit status): waited for without spinning.
    cpu = time.process_time()
    assert r.run(["sh", "-c", "exec >/dev/null 2>&1; sleep 1.5; exit 4"]).exit_code == 4
    assert time.process_time() - cpu < 0.5


def test_files(lab: Lab, tmp_path: Path) -> None:
    vm = lab.vm()
    r = lab.runner(vm)
    src = tmp_path / "src"
    (src / "sub" / "deep").mkdir(parents=True)
    (src / "a.txt").write_text("A1")
    (src / "run.sh").write_text("#!/bin/sh\necho ran\n")
    (src / "run.sh").chmod(0o755)
    (src / "sub" / "deep" / "b.bin").write_bytes(bytes(range(256)) * 1000)
    (src / "link").symlink_to("a.txt")
    r.put_dir(str(src), "~/sky_workdir")
    home = vm.home / "sky_workdir"
    assert (home / "a.txt").read_text() == "A1"
    assert os.readlink(home / "link") == "a.txt"
    assert (home / "sub" / "deep" / "b.bin").read_bytes() == bytes(range(256)) * 1000
    assert r.run(["sky_workdir/run.sh"]).stdout == "ran\n"
    # Again, with changes: files overwritten, a symlink replaced by a file and vice versa.
    (src / "a.txt").write_text("A2")
    (src / "link").unlink()
    (src / "link").write_text("now a file")
    (src / "sub" / "deep" / "b.bin").unlink()
    (src / "sub" / "deep" / "b.bin").symlink_to("../../a.txt")
    r.put_dir(str(src), "sky_workdir")
    assert (home / "a.txt").read_text() == "A2" and (home / "link").read_text() == "now a file"
    assert not (home / "link").is_symlink() and (home / "sub" / "deep" / "b.bin").read_text() == "A2"

    r.put_file(str(src / "a.txt"), "/root/x/y/z.txt")
    assert (vm.home / "x" / "y" / "z.txt").read_text() == "A2"

    data = os.urandom(3_000_000)
    r.write_file("~/.spotctl/job-1/env.json", data)
    path = vm.home / ".spotctl" / "job-1" / "env.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert os.listdir(path.parent) == ["env.json"]  # no temp file left behind
    assert r.read_file("/root/.spotctl/job-1/env.json") == data[: 1 << 20]
    assert r.read_file(".spotctl/job-1/env.json", 2_500_000, 1 << 20) == data[2_500_000:]
    assert r.read_file("~/.spotctl/job-1/env.json", 10, 5) == data[10:15]
    assert r.read_file("~/.spotctl/job-1/env.json", 3_000_000) == b""
    assert r.read_file("~/nope/missing.txt") == b""
    assert r.read_file("~/.spotctl/job-1/env.json/under-a-file") == b""
    r.write_file("~/.spotctl/job-1/env.json", b"small")
    assert r.read_file("~/.spotctl/job-1/env.json") == b"small"
    r.remove_file("~/.spotctl/job-1/env.json")
    r.remove_file("~/.spotctl/job-1/env.json")  # a missing file is fine
    assert not path.exists()
    r.check_alive()
    assert r.shares_host_files is False


def test_two_vms_have_separate_homes_and_tmp(lab: Lab) -> None:
    vm1, vm2 = lab.vm(), lab.vm()
    r1, r2 = lab.runner(vm1), lab.runner(vm2)
    r1.write_file("~/who", b"one")
    r2.write_file("~/who", b"two")
    r1.run(["sh", "-c", "echo one > /tmp/who"])
    assert r2.run(["cat", "/tmp/who"]).exit_code != 0
    assert (r1.read_file("~/who"), r2.read_file("/root/who")) == (b"one", b"two")
    assert (vm1.home / "who").read_text() == "one" and not Path("/root/who").exists()
    assert ssh._pool[("root", vm1.address, 22)] is not ssh._pool[("root", vm2.address, 22)]


def test_host_key_pinning(lab: Lab) -> None:
    vm = lab.vm()
    assert lab.runner(vm).run(["true"]).exit_code == 0
    assert stat.S_IMODE(os.stat(lab.known_hosts).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(Path(lab.known_hosts).parent).st_mode) == 0o700
    old = Path(lab.known_hosts).read_text()
    assert old.startswith(f"{vm.address} ssh-ed25519 ")
    # Same key after a reboot: accepted.
    vm.preempt()
    vm.start()
    assert lab.runner(vm).run(["true"]).exit_code == 0
    # A new machine on the same address: refused, naming the host and both fingerprints.
    vm.stop()
    vm.regenerate_host_key()
    vm.start()
    with pytest.raises(HostKeyChanged, match=rf"{vm.address}.*SHA256:.*SHA256:") as err:
        lab.runner(vm).run(["true"])
    assert isinstance(err.value, NodeUnreachable)
    assert Path(lab.known_hosts).read_text() == old
    forget_host(lab.known_hosts, vm.address, 22)
    assert lab.runner(vm).run(["echo", "hi"]).stdout == "hi\n"
    assert Path(lab.known_hosts).read_text() != old


def run_in_background(r: SSHRunner, argv: list[str]) -> tuple[threading.Thread, list[tuple[float, Exception]]]:
    """Start a long command in a thread; the list gets (when, error) if it fails unreachable."""
    errors: list[tuple[float, Exception]] = []

    def call() -> None:
        try:
            r.run(argv)
        except NodeUnreachable as exc:
            errors.append((time.monotonic(), exc))

    t = threading.Thread(target=call)
    t.start()
    return t, errors


def test_preempted_vm_is_unreachable_at_once(lab: Lab) -> None:
    vm = lab.vm()
    r = lab.runner(vm)
    r.write_file("~/kept", b"disk survives")
    t, errors = run_in_background(r, ["sleep", "30"])
    time.sleep(0.3)
    t0 = time.monotonic()
    vm.preempt()
    t.join(5)
    assert errors and errors[0][0] - t0 < 1.0, errors
    t0 = time.monotonic()
    with pytest.raises(NodeUnreachable, match=vm.address):
        r.read_file("~/kept")
    assert time.monotonic() - t0 < 1.0
    assert vm.processes() == []
    vm.start()  # same disk
    assert lab.runner(vm).read_file("~/kept") == b"disk survives"


def test_frozen_vm_raises_within_silence_timeout_and_thaws(lab: Lab) -> None:
    silence = 2.0
    vm = lab.vm()
    r = lab.runner(vm, silence_timeout_s=silence)
    r.write_file("~/f", b"x")
    t, in_flight = run_in_background(r, ["sh", "-c", "sleep 30"])
    time.sleep(0.3)
    t0 = time.monotonic()
    vm.freeze()
    t1 = time.monotonic()
    with pytest.raises(NodeUnreachable, match=vm.address):  # "no answer", or "lost" if the probe
        r.check_alive()                                   # of the in-flight run was first
    assert time.monotonic() - t1 < silence + 1.5
    # The pooled connection was dropped: a new connect to a frozen VM fails within the
    # connect timeout (3 s in this lab).
    for call, bound in ((lambda: r.read_file("~/f"), 3.0), (lambda: r.run(["true"]), 3.0),
                        (lambda: r.write_file("~/g", b"y"), 3.0)):
        t1 = time.monotonic()
        with pytest.raises(NodeUnreachable, match=vm.address):
            call()
        assert time.monotonic() - t1 < bound + 1.5
    t.join(2 * silence + 2)
    assert in_flight and in_flight[0][0] - t0 < silence + 1.5, in_flight
    vm.thaw()
    assert r.read_file("~/f") == b"x"
    assert r.run(["echo", "back"]).stdout == "back\n"


def test_connection_is_pooled_and_thread_safe(lab: Lab) -> None:
    vm = lab.vm()
    a, b = lab.runner(vm), lab.runner(vm)
    a.write_file("~/data", b"0123456789")
    transport = ssh._pool[("root", vm.address, 22)].transport
    assert b.run(["true"]).exit_code == 0
    assert ssh._pool[("root", vm.address, 22)].transport is transport
    results: list[object] = []

    def work(i: int) -> None:
        r = lab.runner(vm)
        for _ in range(5):
            if i % 2:
                results.append(r.run(["echo", str(i)]).stdout == f"{i}\n")
            else:
                results.append(r.read_file("~/data", i % 10, 3) == b"0123456789"[i % 10:i % 10 + 3])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == [True] * 60
    assert ssh._pool[("root", vm.address, 22)].transport is transport
    a.close()
    assert ("root", vm.address, 22) not in ssh._pool and not transport.is_active()
    assert b.run(["true"]).exit_code == 0
    assert ssh._pool[("root", vm.address, 22)].transport is not transport


def test_nothing_listening_is_unreachable(lab: Lab) -> None:
    r = lab.runner(f"{NET}.250")
    t0 = time.monotonic()
    with pytest.raises(NodeUnreachable, match=rf"{NET}\.250"):
        _ = r.home
    assert time.monotonic() - t0 < 2


def test_wrong_key_is_unreachable(lab: Lab, tmp_path: Path) -> None:
    """What a VM whose authorized key is not installed yet (still booting) looks like."""
    vm = lab.vm()
    other = tmp_path / "other_key"
    other.write_bytes(Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()))
    r = SSHRunner(vm.address, user="root", key_path=str(other), known_hosts=lab.known_hosts, connect_timeout_s=3)
    with pytest.raises(NodeUnreachable, match=rf"{vm.address}.*Authentication"):
        r.run(["true"])
    assert ("root", vm.address, 22) not in ssh._pool


def test_metadata_service(lab: Lab) -> None:
    vm = lab.vm()
    r = lab.runner(vm)
    probe = (
        "import os, urllib.request as u, urllib.error as e\n"
        "base = os.environ['SPOTCTL_METADATA_URL']\n"
        "tok = u.urlopen(u.Request(base + '/latest/api/token', method='PUT',"
        " headers={'X-aws-ec2-metadata-token-ttl-seconds': '21600'})).read().decode()\n"
        "try:\n"
        "    print(u.urlopen(u.Request(base + '/latest/meta-data/spot/instance-action',"
        " headers={'X-aws-ec2-metadata-token': tok})).read().decode())\n"
        "except e.HTTPError as x:\n"
        "    print(x.code)\n"
    )
    assert r.run(["python3", "-c", probe]).stdout == "404\n"
    vm.set_spot_notice(time="2026-01-02T03:04:05Z")
    assert r.run(["python3", "-c", probe]).stdout == '{"action": "terminate", "time": "2026-01-02T03:04:05Z"}\n'


def test_read_files_is_one_call_with_read_file_results(lab: Lab) -> None:
    """The monitor's poll: several reads in one call, byte for byte what read_file gives."""
    vm = lab.vm()
    r = lab.runner(vm)
    blob = bytes(range(256)) * 40
    r.write_file("~/.spotctl/job-1/attempt-1/output.log", blob)
    r.write_file("~/.spotctl/job-1/attempt-1/run.exit", b"0\n")
    reads = [("~/.spotctl/job-1/attempt-1/output.log", 1000, 5000), ("~/.spotctl/job-1/attempt-1/run.exit", 0, 64),
             ("~/.spotctl/job-1/attempt-1/setup.exit", 0, 64), ("~/.spotctl/job-1/attempt-1/output.log/x", 0, 8),
             ("~/.spotctl/job-1/attempt-1/output.log", len(blob) + 5, 10)]
    assert r.read_files(reads) == [r.read_file(*read) for read in reads] == [blob[1000:6000], b"0\n", b"", b"", b""]


def test_reads_go_through_one_long_lived_reader(lab: Lab) -> None:
    """Every poll is one line on the same channel: one reader process on the node for the
    connection, gone once the connection is."""
    vm = lab.vm()
    r = lab.runner(vm)
    r.write_file("~/log", b"a" * 100)
    for offset in range(0, 100, 10):
        assert r.read_files([("~/log", offset, 10)]) == [b"a" * 10]
    readers = [p for p in vm.processes() if b"for line in sys.stdin" in _cmdline(p)]
    assert len(readers) == 1
    r.close()
    deadline = time.monotonic() + 5
    while any(b"for line in sys.stdin" in _cmdline(p) for p in vm.processes()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(b"for line in sys.stdin" in _cmdline(p) for p in vm.processes())


def test_reads_fall_back_to_sftp_without_python(lab: Lab) -> None:
    vm = lab.vm()
    r = lab.runner(vm, python="/nonexistent/python3")
    r.write_file("~/log", b"hello")
    assert r.read_files([("~/log", 1, 3), ("~/missing", 0, 8)]) == [b"ell", b""]
    assert ssh._pool[("root", vm.address, 22)].reader_broken
    assert r.read_files([("~/log", 0, 5)]) == [b"hello"]


def test_frozen_vm_fails_a_reader_poll_within_the_silence_timeout(lab: Lab) -> None:
    silence = 2.0
    vm = lab.vm()
    r = lab.runner(vm, silence_timeout_s=silence)
    r.write_file("~/log", b"x")
    assert r.read_files([("~/log", 0, 1)]) == [b"x"]  # the reader runs
    vm.freeze()
    t0 = time.monotonic()
    with pytest.raises(NodeUnreachable, match=vm.address):
        r.read_files([("~/log", 0, 1)])
    assert time.monotonic() - t0 < silence + 1.5
    vm.thaw()
    assert r.read_files([("~/log", 0, 1)]) == [b"x"]  # a new connection, a new reader


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""
