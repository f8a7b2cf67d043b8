"""The payload codec: AES-GCM over every payload spotctl stores in Temporal.

Job specs carry `envs` and `secrets`; without a codec they would sit in clear in Temporal's
history and database (and in any cluster we do not run). Every payload is encrypted before it
leaves the process (workflow and activity inputs and results, memos, query results, and, with
`DefaultFailureConverterWithEncodedAttributes`, failure messages and stack traces), so the server
only ever holds ciphertext. Search attributes are not payloads Temporal lets a codec touch: they
stay plain and must never carry an env or secret value (spotctl's carry ids, names, statuses,
clouds, regions and resources only).

The key (32 bytes) is, in order: `$SPOTCTL_CODEC_KEY` (base64), the file named by
`$SPOTCTL_CODEC_KEY_FILE`, or `$SPOTCTL_HOME/codec.key` (created 0600 on first use). Every CLI
and worker that shares a Temporal namespace must use the same key; the key id written next to
each payload says which key encrypted it, so a mismatch is reported as such, not as garbage.

`codec.key` is created only in a home without history (no `server/temporal.db`): a new key in a
home whose jobs were encrypted with a lost one would make every later command fail with a key
mismatch, so a missing key there is one line saying to restore it or start a fresh home. A key
file is read with a bound and only if it is a regular file (not a directory, FIFO or device).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import os
import stat
from collections.abc import Callable, Sequence
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes, PayloadCodec

from spotctl.config import ConfigError, Settings, env_value, secure_home
from spotctl.files import create_once

ENCODING = b"binary/encrypted"
KEY_ID_META = "encryption-key-id"
"""The metadata names of Temporal's encryption samples, so their codec servers and tools agree."""
KEY_FILE_NAME = "codec.key"
KEY_BYTES = 32
NONCE_BYTES = 12
MAX_KEY_FILE_BYTES = 1024
"""32 raw bytes, or their base64 (44 characters) with some whitespace: anything longer is not a key."""
HISTORY_MARKER = Path("server") / "temporal.db"
"""In a home: the embedded server's database, whose payloads the home's key encrypted."""


class CodecKeyError(ConfigError):
    """The codec key cannot be read, or a payload was encrypted with another key."""


class PlaintextPayloadError(ValueError):
    """A worker was handed a payload nobody encrypted: whoever made it had no codec key."""


def key_id(key: bytes) -> str:
    """A short public name of a key (not the key): equal keys on any machine give equal ids."""
    return "spotctl-" + hashlib.sha256(b"spotctl codec key id\0" + key).hexdigest()[:16]


def _parse_key(raw: bytes, where: str) -> bytes:
    """A key is 32 raw bytes or their base64 text (so it can be pasted into an env or a secret store)."""
    if len(raw) == KEY_BYTES:
        return raw
    try:
        key = base64.b64decode(raw.strip(), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != KEY_BYTES:
        raise CodecKeyError(f"{where}: expected {KEY_BYTES} bytes or their base64, got {len(raw)} bytes")
    return key


def _create_key_file(path: Path) -> None:
    """A fresh random key with mode 0600; a CLI and a worker starting at once both end up
    with the same key (the loser of the race reads the winner's)."""
    secure_home(path.parent)
    create_once(path, os.urandom(KEY_BYTES), 0o600)


RESTORE = "restore it from your backup (or set SPOTCTL_CODEC_KEY)"


def _read_key_file(path: Path, what: str) -> bytes:
    """At most MAX_KEY_FILE_BYTES of a regular file (symlinks followed: Kubernetes mounts
    secrets as links). Opened non-blocking, so a FIFO cannot hang us, and checked with fstat
    before reading, so a directory or /dev/zero is one line, not a traceback or a 2 GB read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise CodecKeyError(f"cannot read {what} {path}: {exc.strerror}; {RESTORE}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
            raise CodecKeyError(f"{what} {path} is {kind}, not a key file; {RESTORE}")
        if info.st_size > MAX_KEY_FILE_BYTES:
            raise CodecKeyError(f"{what} {path} has {info.st_size} bytes, not a key "
                                f"({KEY_BYTES} bytes or their base64); {RESTORE}")
        raw = os.read(fd, MAX_KEY_FILE_BYTES + 1)  # a regular file: one read returns it all
    except OSError as exc:
        raise CodecKeyError(f"cannot read {what} {path}: {exc.strerror}; {RESTORE}") from None
    finally:
        os.close(fd)
    if len(raw) > MAX_KEY_FILE_BYTES:
        raise CodecKeyError(f"{what} {path} is longer than {MAX_KEY_FILE_BYTES} bytes, not a key; {RESTORE}")
    return _parse_key(raw, str(path))


def load_key(home: Path) -> bytes:
    """The codec key, from the environment or `home`/codec.key (created on first use, but
    never in a home that holds history encrypted with a key that is now gone)."""
    key: str | None = env_value("SPOTCTL_CODEC_KEY")
    if key is not None:
        return _parse_key(key.encode(), "SPOTCTL_CODEC_KEY")
    key_file: Path | None = env_value("SPOTCTL_CODEC_KEY_FILE")
    if key_file is not None:
        return _read_key_file(key_file, "SPOTCTL_CODEC_KEY_FILE")
    path = home / KEY_FILE_NAME
    if not os.path.lexists(path):  # a dangling symlink is a key gone missing, not a fresh home
        history = home / HISTORY_MARKER
        if history.exists():
            raise CodecKeyError(
                f"the codec key {path} is missing but {history} holds jobs encrypted with it: "
                f"{RESTORE}, or use a fresh SPOTCTL_HOME")
        _create_key_file(path)
    return _read_key_file(path, "codec key")


SERVER_MARKERS = frozenset({b'"ACTIVITY_ID_NOT_STARTED"', b'"ACTIVITY_ID_UNKNOWN"', b'"TIMER_ID_UNKNOWN"'})
"""Payloads the Temporal server writes itself, in clear, into a workflow's history: cancelling
an activity that no worker has started yet records ActivityTaskCanceled with the details
"ACTIVITY_ID_NOT_STARTED" (json/plain), and the workflow's next task carries them in the
activity's cancellation. A worker that refused them failed that workflow task forever: the
job never saw its own cancel (the chaos soak found it: a cancel sent while a job's
create_cluster waited for a launch slot). They are constant strings, nothing anyone can run."""


def is_server_marker(payload: Payload) -> bool:
    """One of SERVER_MARKERS, exactly (encoding json/plain, the whole data)."""
    return payload.metadata.get("encoding") == b"json/plain" and payload.data in SERVER_MARKERS


class EncryptionCodec(PayloadCodec):
    """AES-256-GCM per payload, a fresh 96-bit nonce each; payloads that are not ours pass through
    (histories recorded before the codec existed still replay and still show), except in a
    worker (`refuse_plaintext`)."""

    def __init__(self, key: bytes) -> None:
        super().__init__()
        self.key_id = key_id(key)
        self._aes = AESGCM(key)
        self.on_foreign_key: Callable[[CodecKeyError], None] | None = None
        """Called when the SDK hands us a payload of another key (a worker stops on it: it can
        run none of this namespace's work). Not for the codec endpoint, which calls decrypt."""
        self.refuse_plaintext = False
        """Set by the worker: a payload in clear is refused (the workflow task or activity fails
        and is retried, nothing runs). Every spotctl client encrypts every payload, so one in
        clear was made by someone without the key, e.g. another local user who reached the
        embedded server's port and started a job to run as its owner (README: Threat model).
        The codec endpoint and the CLI still pass such payloads through, for display."""

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        if self.refuse_plaintext:
            for p in payloads:
                if p.metadata.get("encoding") != ENCODING and not is_server_marker(p):
                    encoding = p.metadata.get("encoding", b"").decode(errors="replace")[:64]
                    raise PlaintextPayloadError(
                        f"refused a payload that is not encrypted (encoding {encoding!r}): this worker runs only "
                        "work made with its codec key; whoever started it does not have the key")
        try:
            return [self.decrypt(p) for p in payloads]
        except CodecKeyError as exc:
            if self.on_foreign_key is not None:
                self.on_foreign_key(exc)
            raise

    def encrypt(self, payload: Payload) -> Payload:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aes.encrypt(nonce, payload.SerializeToString(), self.key_id.encode())
        return Payload(metadata={"encoding": ENCODING, KEY_ID_META: self.key_id.encode()}, data=nonce + sealed)

    def decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        found = payload.metadata.get(KEY_ID_META, b"").decode(errors="replace")
        if found != self.key_id:
            raise CodecKeyError(
                f"a payload was encrypted with codec key {found!r}, but this process has {self.key_id!r}: "
                "give every spotctl CLI and worker of this namespace the same key "
                "(SPOTCTL_CODEC_KEY or SPOTCTL_CODEC_KEY_FILE)"
            )
        data = payload.data
        return Payload.FromString(self._aes.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], found.encode()))


def data_converter(settings: Settings) -> DataConverter:
    """The one data converter of every spotctl client, worker and replayer: pydantic models,
    encrypted payloads, encrypted failure messages. Workers and clients must agree on it."""
    return data_converter_for_key(load_key(settings.home))


def data_converter_for_key(key: bytes) -> DataConverter:
    """`data_converter` with an explicit key (tests, and tools that have no spotctl home)."""
    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=EncryptionCodec(key),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )
