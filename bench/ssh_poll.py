"""What one monitor poll of a node costs over SSH: the reads it needs (new log bytes from an
offset, the exit code) as SFTP reads on the pooled session (the anchor), through the node's
long-lived reader (one line each way on one channel: what `read_files` does), and as one
command on the node per poll (`python3 -c ...`).

Runs against one lab fake VM (tests/lab/fake_vm.py: a real sshd on 127.0.99.9, needs root and
openssh-server). Prints a Markdown table for BENCHMARKS.md.

    python bench/ssh_poll.py --polls 50
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "lab"))
from fake_vm import FakeVM  # noqa: E402

from spotctl.remote.ssh import SSHRunner, close_all  # noqa: E402

READ_ALL = """\
import base64, json, sys
out = []
for path, offset, size in json.loads(sys.argv[1]):
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            out.append(base64.b64encode(f.read(size)).decode())
    except FileNotFoundError:
        out.append("")
print(json.dumps(out))
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--polls", type=int, default=50)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="spotctl-bench-"))
    key = ed25519.Ed25519PrivateKey.generate()
    (tmp / "key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                                serialization.NoEncryption()))
    os.chmod(tmp / "key", 0o600)
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    vm = FakeVM("127.0.99.9", tmp / "vm", public.decode())
    vm.start()
    try:
        r = SSHRunner("127.0.99.9", user="root", key_path=str(tmp / "key"), known_hosts=str(tmp / "known_hosts"))
        r.write_file("~/a/output.log", b"x" * 100_000)
        r.write_file("~/a/run.exit", b"0\n")
        reads = [("~/a/output.log", 50_000, 1 << 20), ("~/a/run.exit", 0, 64)]
        absolute = json.dumps([[f"{r.home}/{p[2:]}", o, m] for p, o, m in reads])

        def one_command() -> list[bytes]:
            out = r.run([r.python, "-c", READ_ALL, absolute], timeout=30).stdout
            return [base64.b64decode(x) for x in json.loads(out)]

        def sftp_reads() -> list[bytes]:
            return [r.read_file(*read) for read in reads]

        ways = {"SFTP reads on the pooled session": sftp_reads,
                "one line to the long-lived reader (read_files)": lambda: r.read_files(reads),
                "one command on the node per poll": one_command}
        times: dict[str, list[float]] = {}
        for name, poll in ways.items():
            assert poll() == [b"x" * 50_000, b"0\n"]
            times[name] = []
            for _ in range(args.polls):
                t = time.perf_counter()
                poll()
                times[name].append(time.perf_counter() - t)
    finally:
        close_all()
        vm.stop()
    anchor = statistics.median(next(iter(times.values())))
    print("| way | median per poll | ratio to SFTP |")
    print("|---|---|---|")
    for name, ts in times.items():
        print(f"| {name} | {statistics.median(ts) * 1000:.1f} ms | {statistics.median(ts) / anchor:.1f}x |")


if __name__ == "__main__":
    main()
