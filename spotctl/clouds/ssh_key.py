"""The user's SSH key for every cloud's VMs: one Ed25519 pair per user (per `ssh_dir`).

The private key lives in `settings.ssh_dir` (dir 0700, key 0600, OpenSSH format), made on
first use; two processes racing to make it agree on the first one written. Each cloud hands
the public half to its VMs its own way (an EC2 key pair, GCE's `ssh-keys` metadata).
"""

from __future__ import annotations

import threading
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from spotctl.files import create_once

__all__ = ["KEY_FILE", "ensure_key", "private_key_path"]

KEY_FILE = "spotctl_ed25519"

_lock = threading.Lock()


def private_key_path(ssh_dir: Path) -> Path:
    return Path(ssh_dir) / KEY_FILE


def ensure_key(ssh_dir: Path) -> tuple[Path, str]:
    """(private key path, public key in OpenSSH form), making the pair on first use."""
    ssh_dir = Path(ssh_dir)
    path = private_key_path(ssh_dir)
    with _lock:
        ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if ssh_dir.stat().st_mode & 0o077:
            ssh_dir.chmod(0o700)
        if not path.exists():
            _write_new_key(path)
        key = serialization.load_ssh_private_key(path.read_bytes(), password=None)
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    public_text = public.decode() + " spotctl"
    pub_path = path.with_suffix(".pub")
    if not pub_path.exists():
        pub_path.write_text(public_text + "\n")
    return path, public_text


def _write_new_key(path: Path) -> None:
    """Write a fresh key 0600 under a temporary name and link it into place: the first
    process to link wins, a loser reads the winner's key."""
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                            serialization.NoEncryption())
    create_once(path, pem, 0o600)  # of racing workers, one key wins and all use it
