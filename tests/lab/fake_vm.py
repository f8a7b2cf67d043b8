"""A fake VM for lab tests: a real sshd on its own loopback address, in its own PID and mount
namespace (its own /root and /tmp), inside a cgroup v1 freezer group, plus an instance
metadata service speaking both AWS's IMDSv2 and GCE's `computeMetadata/v1` (subsets). Needs root, /usr/sbin/sshd, unshare and the v1 freezer.

- preempt(): SIGKILL to every process of the VM at once (the VM is taken back); its disk
  (root_dir) stays, so start() boots it again with the same files and host key.
- freeze()/thaw(): the VM hangs (TCP still accepted by the kernel, nothing answers) and resumes.
- All traffic stays on 127.0.0.0/8.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.parse
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

SSHD = "/usr/sbin/sshd"
LAB_FREEZER = Path("/sys/fs/cgroup/freezer/spotctl-lab")
FREEZER = LAB_FREEZER / str(os.getpid())
"""This process's VMs' freezer groups. Per process, because several test processes (pytest-xdist
workers, another session) run lab VMs at once and `lab_leftovers` must see only its own."""
CONFIG_NAME = f"spotctl-lab-{os.getpid()}-sshd.conf"
"""Distinctive, so `lab_leftovers` can find a stray lab sshd of this process by its command line."""
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
"""The pytest-xdist worker this process is ("gw0", "gw1", ...), or "" in a serial run."""
INSIDE = "/mnt"
"""Where root_dir is bind-mounted inside the VM (root_dir may be under /tmp, which the VM hides)."""

_live_servers: set[ThreadingHTTPServer] = set()


def lab_missing() -> str | None:
    """Why lab VMs cannot run here, or None."""
    if os.geteuid() != 0:
        return "lab VMs need root"
    for tool in (SSHD, "/usr/bin/unshare", "/usr/bin/ssh-keygen"):
        if not os.path.exists(tool):
            return f"lab VMs need {tool}"
    if not LAB_FREEZER.parent.is_dir():
        return "lab VMs need the cgroup v1 freezer at /sys/fs/cgroup/freezer"
    return None


def lab_octet() -> int:
    """The second octet of this process's lab addresses (127.X.0.0/16): 0 in a serial run, 1 + N
    for xdist worker gwN, so the workers of one session never hand out the same VM address."""
    return 1 + int(WORKER[2:]) if WORKER.startswith("gw") and WORKER[2:].isdigit() else 0


def address_taken(address: str) -> bool:
    """Whether something (another session's lab VM) already listens on address:22."""
    try:
        socket.create_connection((address, 22), timeout=0.2).close()
        return True
    except OSError:
        return False


def _remove_freezer() -> None:
    try:
        FREEZER.rmdir()  # only once empty: every VM stopped
    except OSError:
        pass


atexit.register(_remove_freezer)


class FakeVM:
    def __init__(self, address: str, root_dir: Path, authorized_key: str, metadata_port: int = 8169) -> None:
        assert address.startswith("127."), "lab traffic must stay on loopback"
        self.address, self.root_dir, self.metadata_port = address, Path(root_dir), metadata_port
        self.authorized_key = authorized_key.strip()
        self.name = "vm-" + address.replace(".", "-")
        self.cgroup = FREEZER / self.name
        self.spot_notice: dict[str, str] | None = None
        self.gce_preempted = False
        self._gce_version = 0
        """Bumped on every change of gce_preempted: the ETag GCE's long polls compare."""
        self._gce_changed = threading.Condition()
        self._proc: subprocess.Popen | None = None
        self._metadata: ThreadingHTTPServer | None = None

    def __repr__(self) -> str:
        return f"FakeVM({self.name}, running={self.running})"

    @property
    def home(self) -> Path:
        """The VM's /root, as seen from the host."""
        return self.root_dir / "home"

    @property
    def host_key_path(self) -> Path:
        return self.root_dir / "etc" / "ssh_host_ed25519_key"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def regenerate_host_key(self) -> None:
        """A new machine on the same address (takes effect at the next start)."""
        self.host_key_path.unlink(missing_ok=True)
        self.host_key_path.with_suffix(".pub").unlink(missing_ok=True)

    def _prepare(self) -> None:
        for d in ("home", "tmp", "etc"):
            (self.root_dir / d).mkdir(parents=True, exist_ok=True)
        (self.root_dir / "tmp").chmod(0o1777)
        if not self.host_key_path.exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", self.name,
                            "-f", str(self.host_key_path)], check=True, capture_output=True)
        (self.root_dir / "etc" / "authorized_keys").write_text(self.authorized_key + "\n")
        (self.root_dir / CONFIG_NAME).write_text(
            f"ListenAddress {self.address}\nPort 22\n"
            f"HostKey {INSIDE}/etc/ssh_host_ed25519_key\n"
            f"AuthorizedKeysFile {INSIDE}/etc/authorized_keys\n"
            "PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "UsePAM no\nStrictModes no\nPidFile none\nUseDNS no\nLogLevel ERROR\n"
            f"Subsystem sftp internal-sftp\n"
            f"SetEnv SPOTCTL_METADATA_URL=http://{self.address}:{self.metadata_port}\n"
        )

    def start(self, timeout_s: float = 10.0) -> None:
        """Boot the VM: sshd in fresh namespaces and the freezer group; wait until port 22 accepts."""
        if self.running:
            return
        self._prepare()
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        self.cgroup.mkdir(parents=True, exist_ok=True)
        (self.cgroup / "freezer.state").write_text("THAWED")
        script = (
            "set -e; cd /\n"
            f"mount --bind {_q(self.root_dir)} {INSIDE}\n"
            f"mount --bind {INSIDE}/home /root\n"
            f"mount --bind {INSIDE}/tmp /tmp\n"
            f"exec {SSHD} -D -e -f {INSIDE}/{CONFIG_NAME}\n"
        )
        # The shell joins the group before exec'ing unshare, so every VM process is in it.
        boot = (f"echo $$ > {_q(self.cgroup / 'cgroup.procs')} && exec unshare --pid --fork --mount-proc "
                f"--mount --propagation private /bin/sh -c {_q(script)}")
        log = open(self.root_dir / "sshd.log", "ab")
        self._proc = subprocess.Popen(["/bin/sh", "-c", boot], stdin=subprocess.DEVNULL, stdout=log,
                                      stderr=log, start_new_session=True)
        log.close()
        self._start_metadata()
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                socket.create_connection((self.address, 22), timeout=0.5).close()
                return
            except OSError:
                if not self.running or time.monotonic() > deadline:
                    log_text = (self.root_dir / "sshd.log").read_text(errors="replace")[-2000:]
                    self.stop()
                    raise RuntimeError(f"{self.name}: sshd did not come up: {log_text}") from None
                time.sleep(0.02)

    def processes(self) -> list[int]:
        """Live pids of the VM (all of its freezer group)."""
        try:
            return [int(p) for p in (self.cgroup / "cgroup.procs").read_text().split()]
        except FileNotFoundError:
            return []

    def _set_state(self, state: str) -> None:
        (self.cgroup / "freezer.state").write_text(state)
        deadline = time.monotonic() + 5
        while (self.cgroup / "freezer.state").read_text().strip() != state:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: freezer stuck before {state}")
            time.sleep(0.01)

    def freeze(self) -> None:
        """The VM hangs: TCP connections stay up, but no process of it runs."""
        self._set_state("FROZEN")

    def thaw(self) -> None:
        self._set_state("THAWED")

    def preempt(self) -> None:
        """Everything in the VM dies at once; the disk stays. Idempotent."""
        self._stop_metadata()
        if self.cgroup.is_dir():
            for pid in self.processes():
                _kill(pid)
            (self.cgroup / "freezer.state").write_text("THAWED")  # frozen tasks die only when thawed
            deadline = time.monotonic() + 5
            while self.processes():
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name}: processes survived SIGKILL: {self.processes()}")
                for pid in self.processes():
                    _kill(pid)
                time.sleep(0.01)
        if self._proc is not None:
            if self._proc.poll() is None:
                _kill(self._proc.pid)
            self._proc.wait(timeout=5)
            self._proc = None

    def stop(self) -> None:
        """preempt() and remove the freezer group. Idempotent."""
        self.preempt()
        try:
            self.cgroup.rmdir()
        except FileNotFoundError:
            pass

    # -- metadata service (AWS IMDSv2 subset) -----------------------------------------------

    def set_spot_notice(self, action: str = "terminate", time: str | None = None) -> None:
        """The spot interruption notice the metadata service shows from now on."""
        when = time or (datetime.now(UTC) + timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.spot_notice = {"action": action, "time": when}

    def clear_spot_notice(self) -> None:
        self.spot_notice = None

    def set_gce_preempted(self, flag: bool = True) -> None:
        """What GCE's `instance/preempted` answers from now on (TRUE: the VM is being
        preempted); long polls waiting for a change answer at once."""
        with self._gce_changed:
            if flag != self.gce_preempted:
                self.gce_preempted, self._gce_version = flag, self._gce_version + 1
            self._gce_changed.notify_all()

    def _gce_etag(self) -> str:
        return f"lab-{self._gce_version}"

    def _gce_wait(self, query: dict) -> None:
        """GCE's `wait_for_change`: hold the request while the value is the one the caller saw
        (its `last_etag`, else the current one), at most `timeout_sec` (capped at 60 s here)."""
        if query.get("wait_for_change", [""])[0].lower() != "true":
            return
        seen = query.get("last_etag", [self._gce_etag()])[0]
        limit = min(float(query.get("timeout_sec", ["60"])[0]), 60.0)
        with self._gce_changed:
            self._gce_changed.wait_for(lambda: self._gce_etag() != seen or self._metadata is None, timeout=limit)

    def _start_metadata(self) -> None:
        if self._metadata is not None:
            return
        vm = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _send(self, code: int, body: str = "", ctype: str = "text/plain") -> None:
                data = body.encode()
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_PUT(self) -> None:
                if self.path == "/latest/api/token":
                    self._send(200, f"lab-token-{vm.name}")
                else:
                    self._send(404)

            def _gce(self, path: str, query: dict) -> None:
                if self.headers.get("Metadata-Flavor") != "Google":
                    return self._send(403, "Missing Metadata-Flavor:Google header.")
                if path == "/computeMetadata/v1/instance/preempted":
                    vm._gce_wait(query)
                    body = "TRUE" if vm.gce_preempted else "FALSE"
                    data = body.encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/text")
                    self.send_header("ETag", vm._gce_etag())
                    self.send_header("Content-Length", str(len(data)))
                    try:
                        self.end_headers()
                        self.wfile.write(data)
                    except (BrokenPipeError, ConnectionResetError):
                        pass  # the VM (and its long poll) went while the answer was held
                    return None
                if path == "/computeMetadata/v1/instance/id":
                    return self._send(200, str(int.from_bytes(socket.inet_aton(vm.address), "big")))
                if path == "/computeMetadata/v1/instance/service-accounts/default/token":
                    token = {"access_token": "lab-gce-token", "expires_in": 3599, "token_type": "Bearer"}
                    return self._send(200, json.dumps(token), "application/json")
                self._send(404)

            def do_GET(self) -> None:
                path, _, qs = self.path.partition("?")
                if path.startswith("/computeMetadata/"):
                    return self._gce(path, urllib.parse.parse_qs(qs))
                if self.headers.get("X-aws-ec2-metadata-token") != f"lab-token-{vm.name}":
                    return self._send(401)  # IMDSv2 only, as with HttpTokens=required
                if self.path == "/latest/meta-data/instance-id":
                    return self._send(200, vm.name)
                if self.path == "/latest/meta-data/spot/instance-action" and vm.spot_notice:
                    return self._send(200, json.dumps(vm.spot_notice), "application/json")
                self._send(404)

        server = ThreadingHTTPServer((self.address, self.metadata_port), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, args=(0.05,), name=f"imds-{self.name}", daemon=True).start()
        self._metadata = server
        _live_servers.add(server)

    def _stop_metadata(self) -> None:
        server, self._metadata = self._metadata, None
        with self._gce_changed:
            self._gce_changed.notify_all()  # end held long polls
        if server is not None:
            server.shutdown()
            server.server_close()
            _live_servers.discard(server)


def _q(value: object) -> str:
    import shlex

    return shlex.quote(str(value))


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def lab_leftovers() -> list[str]:
    """What this process's lab left behind: freezer groups, processes in them or running a lab
    sshd, metadata servers still serving. Tests assert this is empty after stopping their VMs.
    Only this process's: other test processes may be running VMs of their own meanwhile."""
    found: list[str] = []
    if FREEZER.is_dir():
        for group in sorted(p for p in FREEZER.iterdir() if p.is_dir()):
            pids = (group / "cgroup.procs").read_text().split()
            found.append(f"freezer group {group.name} (pids {' '.join(pids) or 'none'})")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cgroup = (entry / "cgroup").read_text()
        except OSError:
            continue
        if CONFIG_NAME in cmdline or f":freezer:/spotctl-lab/{os.getpid()}/" in cgroup:
            found.append(f"process {entry.name}: {cmdline.strip()[:120]}")
    found += [f"metadata server {s.server_address}" for s in _live_servers]
    return found
