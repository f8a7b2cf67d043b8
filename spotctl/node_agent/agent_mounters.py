"""MOUNT of a bucket on a cloud VM with the cloud's own FUSE mounter (stdlib only; copied next to
agent.py on every node and imported by it): mount-s3 (Mountpoint for Amazon S3) for S3,
gcsfuse for GCS, each installed from its vendor's package when missing. A mounter that cannot
be had or made returns False and the agent keeps the bucket in step itself (bucket_sync).
Short-lived credentials the worker renews in sync.json reach a mounter that outlives them
through sync.json itself: mount-s3 by a credential_process, gcsfuse by a --token-url served
from it (`python3 agent_mounters.py token-server SYNC_JSON TARGET SOCKET`).
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

MOUNT_S3_DEB = "https://s3.amazonaws.com/mountpoint-s3-release/latest/{arch}/mount-s3.deb"
"""Mountpoint for Amazon S3, AWS's own FUSE mounter (Ubuntu/Debian package)."""
INSTALL_TIMEOUT_S = 240.0


def _install_step(argv: list[str]) -> None:
    """One step of a package install, as root (sudo without a password on a cloud image),
    bounded in time; raises CalledProcessError/TimeoutExpired/OSError."""
    subprocess.run(argv if os.geteuid() == 0 else ["sudo", "-n", *argv], check=True, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=INSTALL_TIMEOUT_S,
                   env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


def _install(name: str, downloads: list, files: list, steps: list, say) -> str | None:
    """Install the mounter `name`, each mounter's recipe in the same order: fetch each (url,
    path) of `downloads`, write each (path, text) of `files`, then run `steps` as root, all
    bounded in time. Its path once installed; None (said why) when it cannot be had."""
    try:
        for url, path in downloads:
            with urllib.request.urlopen(url, timeout=60) as resp, open(path, "wb") as f:
                shutil.copyfileobj(resp, f)
        for path, text in files:
            with open(path, "w") as f:
                f.write(text)
        for argv in steps:
            _install_step(argv)
    except (OSError, subprocess.SubprocessError, urllib.error.URLError) as exc:
        say(f"cannot install {name} ({exc})")
        return None
    return shutil.which(name)


def _install_mount_s3(say) -> str | None:
    """Install mount-s3 from AWS's package (a cloud image reaches it; bounded in time)."""
    arch = "arm64" if os.uname().machine in ("aarch64", "arm64") else "x86_64"
    deb = "/tmp/spotctl-mount-s3.deb"
    return _install("mount-s3", [(MOUNT_S3_DEB.format(arch=arch), deb)], [],
                    [["apt-get", "install", "-y", "-q", deb]], say)


def _with_mounter(name: str, install):
    """What both mounters do first: a target already mounted (by an earlier phase of the
    attempt) is done; else the mounter `name` is found on PATH or installed, and the mount
    function gets its path, or MOUNT is False (the caller syncs instead)."""
    def wrap(mount):
        @functools.wraps(mount)
        def mount_with(e: dict, say) -> bool:
            if os.path.ismount(e["target"]):
                return True  # an earlier phase of the attempt mounted it
            exe = shutil.which(name) or install(say)
            if exe is None:
                return False
            return mount(e, say, exe)
        return mount_with
    return wrap


@_with_mounter("mount-s3", _install_mount_s3)
def _mount_s3(e: dict, say, exe: str) -> bool:
    """MOUNT a bucket with mount-s3 (writes go to the bucket as files are closed); False when
    it cannot be had or made, and the caller syncs instead."""
    target = e["target"]
    argv = [exe, e["bucket"], target, "--region", e["region"], "--allow-delete", "--allow-overwrite"]
    if e.get("prefix"):
        argv += ["--prefix", e["prefix"].rstrip("/") + "/"]
    if e.get("endpoint"):
        argv += ["--endpoint-url", e["endpoint"], "--force-path-style"]
    env = dict(os.environ)
    if e.get("access_key") and e.get("sync_json"):
        # Short-lived credentials the worker renews in sync.json: mount-s3 outlives them, so it
        # gets them through a credential_process that re-reads the file, never in its env.
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
            env.pop(name, None)
        env["AWS_CONFIG_FILE"] = _credentials_profile(e)
        argv += ["--profile", PROFILE]
    return _run_mounter("mount-s3", argv, say, env)


PROFILE = "spotctl-mount"


def _credentials_profile(e: dict) -> str:
    """Write (0600, next to sync.json) an AWS config whose profile PROFILE gets the entry's
    credentials from `bucket_sync.py credentials`; return its path."""
    here = os.path.dirname(os.path.abspath(__file__))
    command = " ".join(shlex.quote(a) for a in (sys.executable, os.path.join(here, "bucket_sync.py"),
                                                "credentials", e["sync_json"], e["target"]))
    name = hashlib.sha256(e["target"].encode()).hexdigest()[:12]
    path = os.path.join(os.path.dirname(e["sync_json"]), f"aws-config-{name}")
    fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"[profile {PROFILE}]\ncredential_process = {command}\n")
    os.replace(path + ".tmp", path)
    return path


def _run_mounter(name: str, argv: list, say, env: dict | None = None) -> bool:
    """Run a FUSE mounter (it daemonizes once mounted); False, said why, when it fails."""
    try:
        done = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        say(f"{name} failed ({exc})")
        return False
    if done.returncode != 0:
        say(f"{name} failed: {done.stderr.decode(errors='replace').strip()[-300:]}")
    return done.returncode == 0


GCSFUSE_KEY_URL = "https://packages.cloud.google.com/apt/doc/apt-key.gpg"
GCSFUSE_KEYRING = "/usr/share/keyrings/cloud.google.asc"
GCSFUSE_LIST = "/etc/apt/sources.list.d/gcsfuse.list"
GCSFUSE_REPO = f"deb [signed-by={GCSFUSE_KEYRING}] https://packages.cloud.google.com/apt gcsfuse-{{codename}} main\n"
"""Cloud Storage FUSE from Google's apt repository, as Google's install guide does it."""


def _os_codename() -> str | None:
    """The Debian/Ubuntu release name (gcsfuse's repository is per release), or None."""
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("VERSION_CODENAME="):
                    return line.split("=", 1)[1].strip().strip('"') or None
    except OSError:
        pass
    return None


def _install_gcsfuse(say) -> str | None:
    """Install gcsfuse from Google's apt repository (a GCE image reaches it; bounded in time).
    The key is fetched first, so without a network nothing on the machine is changed."""
    codename = _os_codename()
    if codename is None or shutil.which("apt-get") is None:
        say("cannot install gcsfuse (not a Debian/Ubuntu image)")
        return None
    key, repo = "/tmp/spotctl-gcsfuse.asc", "/tmp/spotctl-gcsfuse.list"
    return _install("gcsfuse", [(GCSFUSE_KEY_URL, key)], [(repo, GCSFUSE_REPO.format(codename=codename))],
                    [["install", "-D", "-m", "0644", key, GCSFUSE_KEYRING],
                     ["install", "-D", "-m", "0644", repo, GCSFUSE_LIST],
                     ["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "gcsfuse"]], say)


@_with_mounter("gcsfuse", _install_gcsfuse)
def _mount_gcs(e: dict, say, exe: str) -> bool:
    """MOUNT a GCS bucket with gcsfuse (writes reach the bucket as files are closed); False
    when it cannot be had or made, and the caller syncs instead. A VM with its own service
    account (`gcp.service_account`) gets no token: gcsfuse uses the VM's. A VM without one
    gets a downscoped token in sync.json, which the worker renews; gcsfuse asks for it at a
    --token-url that a small server (`serve_token`) answers from sync.json as it is now."""
    target = e["target"]
    argv = [exe, "--implicit-dirs"]
    if e.get("prefix"):
        argv += ["--only-dir", e["prefix"].strip("/")]
    if e.get("endpoint"):  # the lab's emulator
        argv += ["--custom-endpoint", e["endpoint"].rstrip("/") + "/storage/v1/"]
    server = None
    if e.get("access_token"):
        server = _token_server(e, say)
        if server is None:
            return False
        argv += ["--token-url", f"unix://{server[1]}"]
    elif e.get("endpoint"):  # an emulator wants no credentials
        argv += ["--anonymous-access"]
    argv += [e["bucket"], target]
    if _run_mounter("gcsfuse", argv, say):
        return True
    if server is not None:
        server[0].kill()
        server[0].wait()
        _remove_socket(server[1])
    return False


TOKEN_SERVER_START_S = 5.0
TOKEN_SERVER_POLL_S = 0.5
"""How often the token server checks that sync.json is still there (it ends with the attempt)."""


def _token_server(e: dict, say):
    """Start `serve_token` for this mount, detached (it outlives the phase, as the mount does);
    (process, socket path) once it listens, None (said why) when it does not."""
    # A private directory (0700) of a short path: a unix socket's path has at most 107 bytes.
    sock = os.path.join(tempfile.mkdtemp(prefix="spotctl-gcs-"), "token.sock")
    proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "token-server", e["sync_json"], e["target"],
                             sock], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = time.monotonic() + TOKEN_SERVER_START_S
    while proc.poll() is None and not os.path.exists(sock) and time.monotonic() < deadline:
        time.sleep(0.05)
    if proc.poll() is None and os.path.exists(sock):
        if proc.stderr is not None:
            proc.stderr.close()
        return proc, sock
    proc.kill()
    _, err = proc.communicate()
    _remove_socket(sock)
    say(f"cannot serve gcsfuse its token ({err.decode(errors='replace').strip()[-200:] or 'no answer'})")
    return None


def _remove_socket(sock: str) -> None:
    """Remove the socket and its private directory (what a token server leaves)."""
    for remove, path in ((os.unlink, sock), (os.rmdir, os.path.dirname(sock))):
        try:
            remove(path)
        except OSError:
            pass


def serve_token(sync_json: str, target: str, sock: str) -> int:
    """Answer GETs on the unix socket `sock` (0600) with the token of `target`'s entry in
    sync.json as it is now, as an OAuth2 token (what gcsfuse's --token-url wants: access_token,
    token_type, RFC 3339 expiry); end, removing the socket and its directory, once sync.json
    is gone."""
    import http.server
    import socketserver
    import threading

    import bucket_sync  # next to this file, on the node and in the repository alike

    class Handler(http.server.BaseHTTPRequestHandler):
        def address_string(self) -> str:
            return "unix"

        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:
            try:
                e = bucket_sync.entry_of(sync_json, target) or {}
            except (OSError, ValueError):  # caught mid-rewrite: gcsfuse asks again
                e = {}
            token = {"access_token": e.get("access_token"), "token_type": "Bearer",
                     "expiry": e.get("token_expiry") or _soon()}  # none given: ask again soon
            body = json.dumps(token).encode()
            self.send_response(200 if e.get("access_token") else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
        daemon_threads = True

        def handle_error(self, request, client_address) -> None:
            pass  # a client gone mid-answer; its stderr (the mounter's pipe) is closed by now

    if os.path.exists(sock):
        os.unlink(sock)  # a dead server's
    old = os.umask(0o177)
    try:
        server = Server(sock, Handler)
    finally:
        os.umask(old)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        missed = 0
        while missed < 2:  # twice in a row: not a rewrite that replaces the file
            missed = 0 if os.path.exists(sync_json) else missed + 1
            time.sleep(TOKEN_SERVER_POLL_S)
    finally:
        server.shutdown()
        server.server_close()
        _remove_socket(sock)
    return 0


def _soon() -> str:
    when = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=5)  # noqa: UP017 - VMs may run Python 3.8
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


MOUNTERS = {("s3", "mount-s3"): _mount_s3, ("gcs", "gcsfuse"): _mount_gcs}
"""(sync.json kind, SPOTCTL_MOUNTER) -> how MOUNT is made; any other pair: the agent's sync."""


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "token-server":
        sys.exit(serve_token(*sys.argv[2:]))
    sys.stderr.write("usage: agent_mounters.py token-server SYNC_JSON TARGET SOCKET\n")
    sys.exit(2)
