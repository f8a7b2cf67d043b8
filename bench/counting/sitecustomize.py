"""Counts of the worker's node and cloud calls, for bench/controller_counts.py only.

Put on PYTHONPATH by that script (never installed, never imported by spotctl): when
SPOTCTL_BENCH_COUNTS_DIR is set, every Python process of the benchmark's deployment wraps the
local cloud's runner and liveness call with counters and writes them, once a second, to
`<dir>/<pid>.json`. The script reads the worker's file. The calls themselves are unchanged:
only a counter is added in front of each, so the worker does what it does without the shim.
Without the variable (any other process given this path by mistake) nothing happens.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from pathlib import Path

COUNTS: Counter[str] = Counter()
LOCK = threading.Lock()


def _count(cls: type, method: str, key: str) -> None:
    inner = getattr(cls, method)

    def counted(self, *args, **kwargs):
        with LOCK:
            COUNTS[key] += 1
        return inner(self, *args, **kwargs)

    setattr(cls, method, counted)


def _dump(out: Path) -> None:
    while True:
        with LOCK:
            text = json.dumps(dict(COUNTS))
        tmp = out.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(out)
        time.sleep(1.0)


def _install(folder: str) -> None:
    from spotctl.clouds.local import LocalCloud
    from spotctl.remote.local import LocalRunner

    _count(LocalRunner, "read_files", "node_polls")  # one round trip of a monitor's poll
    _count(LocalRunner, "read_file", "node_file_reads")  # each file read, in a poll or on its own
    _count(LocalRunner, "run", "node_commands")  # agent calls (start, signal, beat checks)
    _count(LocalRunner, "write_file", "node_file_writes")
    _count(LocalCloud, "instance_states", "cloud_liveness_calls")
    threading.Thread(target=_dump, args=(Path(folder) / f"{os.getpid()}.json",), daemon=True).start()


if os.environ.get("SPOTCTL_BENCH_COUNTS_DIR"):
    _install(os.environ["SPOTCTL_BENCH_COUNTS_DIR"])
