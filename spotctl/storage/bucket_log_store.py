"""BucketLogStore: the LogStore protocol on a bucket of any Store (S3, GCS, a local directory bucket).

With it the CLI and the workers share a bucket instead of `$SPOTCTL_HOME` (select it with
`SPOTCTL_LOG_STORE=s3://bucket/prefix` or `gs://bucket/prefix`; see config/settings.py).

Why chunks: object stores have no append (an S3 or GCS object is written whole, once), and
rewriting a growing log object on every poll would cost O(size) per poll. So each shipped piece is its
own immutable object

    <prefix>/job-<id>/attempt-<n>/node-<rank>/<offset:016d>-<end:016d>

holding bytes [offset, end) of the node's log. The end is part of the key so that a key names
exactly one content: a retried monitor (or two racing ones) that re-sends a piece writes the
same key with the same bytes, which is harmless, and never a shorter object over a longer one.
Pieces may overlap (a writer that did not know of another's latest piece starts before its
end); readers take each byte once. A piece is only written when it starts at or before the
end of what is stored (`append_at` refuses a gap), and pieces are never deleted, so the
pieces always cover [0, size) without a hole. Zero-padded offsets make keys sort by offset.

Listing: `attempts`/`ranks` list a small index (`<prefix>/job-<id>/index/attempt-<n>.node-
<rank>`, an empty object written before a node's first piece), never the pieces; one listing
answers both for INDEX_TTL_S. The pieces a
process wrote or listed are kept per node, so a monitor's `size()` on every poll costs no call
at all; the list of a node is read again at most every REFRESH_S (to learn of another
writer's pieces; a stale view only costs an overlapping piece, never a wrong byte) or when an
append seems to leave a gap. `read` lists the node each time (a reader must see new pieces),
then fetches only the pieces past its offset.

Limitations: one object per shipped piece (a chatty job polled every 0.5 s makes ~7,200 an
hour), and `read` lists all of a node's keys; nothing compacts them yet.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from spotctl.storage.base import StorageError, Store
from spotctl.storage.local import clean_key

REFRESH_S = 60.0
"""How old a writer's view of a node's pieces may get before size() lists them again."""
INDEX_TTL_S = 1.0
"""How long a listing of a job's index answers attempts()/ranks() (a follower asks both every
tick; a new attempt or node shows up at most this late)."""
MAX_NODES = 4096
"""Nodes whose pieces are remembered (least recently used are forgotten, then listed again)."""

_PIECE = re.compile(r"^(\d{16})-(\d{16})$")
_INDEX = re.compile(r"^attempt-(\d+)\.node-(\d+)$")


@dataclass
class _Node:
    pieces: set[tuple[int, int]] = field(default_factory=set)
    """(offset, end) of every piece known to exist."""
    listed_at: float | None = None
    """When the node was last listed (monotonic); None = never."""


def _covered(pieces: set[tuple[int, int]]) -> int:
    """The end of the bytes covered without a hole from 0."""
    end = 0
    for off, stop in sorted(pieces):
        if off > end:
            break
        end = max(end, stop)
    return end


class BucketLogStore:
    """Implements the LogStore protocol with one object per shipped piece; see the module
    docstring. Thread-safe."""

    def __init__(self, store: Store, bucket: str, prefix: str = "") -> None:
        self.store = store
        self.bucket = bucket
        self.prefix = clean_key(prefix)
        self._nodes: OrderedDict[tuple[int, int, int], _Node] = OrderedDict()
        self._indexed: set[tuple[int, int, int]] = set()
        self._index: dict[int, tuple[float, set[tuple[int, int]]]] = {}
        self._bucket_ready = False
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"BucketLogStore({self.store!r}, {self.bucket!r}, {self.prefix!r})"

    # -- keys ------------------------------------------------------------------------------

    def _job_key(self, job_id: int) -> str:
        return f"{self.prefix}/job-{job_id}" if self.prefix else f"job-{job_id}"

    def _node_key(self, job_id: int, attempt: int, rank: int) -> str:
        return f"{self._job_key(job_id)}/attempt-{attempt}/node-{rank}"

    def _index_key(self, job_id: int, attempt: int, rank: int) -> str:
        return f"{self._job_key(job_id)}/index/attempt-{attempt}.node-{rank}"

    def _piece_key(self, node: tuple[int, int, int], off: int, end: int) -> str:
        return f"{self._node_key(*node)}/{off:016d}-{end:016d}"

    # -- object calls ----------------------------------------------------------------------

    def _list(self, prefix: str) -> list[str]:
        """Names under prefix (relative to it); [] when the bucket does not exist yet (no
        worker has written a log)."""
        try:
            keys = self.store.list(self.bucket, prefix)
        except StorageError:
            if not self.store.bucket_exists(self.bucket):
                return []
            raise
        return [k[len(prefix) + 1:] for k in keys if k.startswith(prefix + "/")]

    def _put(self, key: str, data: bytes) -> None:
        with self._lock:
            if not self._bucket_ready:
                if not self.store.bucket_exists(self.bucket):
                    self.store.create_bucket(self.bucket)
                self._bucket_ready = True
        with tempfile.TemporaryDirectory(prefix="spotctl-log-") as tmp:
            path = os.path.join(tmp, "piece")
            with open(path, "wb") as f:
                f.write(data)
            self.store.upload_file(path, self.bucket, key)

    def _get(self, key: str) -> bytes:
        with tempfile.TemporaryDirectory(prefix="spotctl-log-") as tmp:
            path = os.path.join(tmp, "piece")
            self.store.download_file(self.bucket, key, path)
            with open(path, "rb") as f:
                return f.read()

    # -- the pieces of a node --------------------------------------------------------------

    def _node(self, node: tuple[int, int, int]) -> _Node:
        with self._lock:
            entry = self._nodes.get(node)
            if entry is None:
                entry = self._nodes[node] = _Node()
                while len(self._nodes) > MAX_NODES:
                    self._nodes.popitem(last=False)
            self._nodes.move_to_end(node)
            return entry

    def _refresh(self, node: tuple[int, int, int]) -> _Node:
        """List the node's pieces and add them to what is known."""
        found = set()
        for name in self._list(self._node_key(*node)):
            if m := _PIECE.match(name):
                found.add((int(m.group(1)), int(m.group(2))))
        with self._lock:
            entry = self._node(node)
            entry.pieces |= found
            entry.listed_at = time.monotonic()
            return entry

    def _known(self, node: tuple[int, int, int]) -> _Node:
        entry = self._node(node)
        if entry.listed_at is None or time.monotonic() - entry.listed_at >= REFRESH_S:
            entry = self._refresh(node)
        return entry

    # -- the protocol ----------------------------------------------------------------------

    def size(self, job_id: int, attempt: int, rank: int = 0) -> int:
        entry = self._known((job_id, attempt, rank))
        with self._lock:
            return _covered(entry.pieces)

    def append_at(self, job_id: int, attempt: int, rank: int, offset: int, data: bytes) -> int:
        """Write `data`, which starts at byte `offset` of the node's log, as one piece; bytes
        known to be stored are skipped. Returns the store's size afterwards."""
        node = (job_id, attempt, rank)
        have = self.size(job_id, attempt, rank)
        if offset > have:  # perhaps another writer stored more since we last looked
            have = _covered(self._refresh(node).pieces)
            if offset > have:
                raise ValueError(f"log gap: store has {have} bytes, data starts at {offset}")
        end = offset + len(data)
        if end <= have:
            return have
        if have == 0 and node not in self._indexed:
            self._put(self._index_key(*node), b"")  # before the first piece: ranks() sees it
            with self._lock:
                self._indexed.add(node)
                if job_id in self._index:
                    self._index[job_id][1].add((attempt, rank))
        self._put(self._piece_key(node, have, end), data[have - offset:])
        with self._lock:
            entry = self._node(node)
            entry.pieces.add((have, end))
            return _covered(entry.pieces)

    def _nodes_of(self, job_id: int) -> set[tuple[int, int]]:
        """(attempt, rank) of every node of the job with a log, from its index."""
        with self._lock:
            cached = self._index.get(job_id)
            if cached and time.monotonic() - cached[0] < INDEX_TTL_S:
                return set(cached[1])
        found = {(int(m.group(1)), int(m.group(2)))
                 for n in self._list(f"{self._job_key(job_id)}/index") if (m := _INDEX.match(n))}
        with self._lock:
            self._index[job_id] = (time.monotonic(), found)
            while len(self._index) > MAX_NODES:
                del self._index[next(iter(self._index))]
        return set(found)

    def attempts(self, job_id: int) -> list[int]:
        return sorted({a for a, _ in self._nodes_of(job_id)})

    def ranks(self, job_id: int, attempt: int) -> list[int]:
        return sorted(r for a, r in self._nodes_of(job_id) if a == attempt)

    def read(self, job_id: int, attempt: int, rank: int = 0, offset: int = 0) -> bytes:
        node = (job_id, attempt, rank)
        pieces = sorted(self._refresh(node).pieces)
        out = bytearray()
        pos = offset
        for off, end in pieces:
            if end <= pos:
                continue
            if off > pos:
                break  # a hole (cannot happen, see the module docstring): stop before it
            data = self._get(self._piece_key(node, off, end))
            if len(data) != end - off:
                raise StorageError(f"log piece {self._piece_key(node, off, end)!r} of bucket {self.bucket!r} "
                                   f"holds {len(data)} bytes, not {end - off}")
            out += data[pos - off:]
            pos = end
        return bytes(out)
