"""The node agent's watchers of a cloud's interruption notice (stdlib only; copied next to
agent.py on every node and imported by it).

A watcher runs beside one phase until it ends; on a notice it writes the deadline (epoch
seconds) to ~/.spotctl/preemption_notice and calls `on_notice` once (the agent sends SIGTERM),
so the program can save before the VM is taken.

- `aws`: IMDSv2 `spot/instance-action`, polled; EC2 posts it about two minutes ahead.
- `gcp`: GCE's `instance/preempted`, long-polled; TRUE about 30 s before the VM stops.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime

try:  # on a node: next to agent.py
    import agent_files
except ImportError:  # imported as spotctl.node_agent.agent_notice
    from spotctl.node_agent import agent_files


NOTICE_FILE = ".spotctl/preemption_notice"
"""Relative to the node's $HOME: the deadline (epoch seconds) of a preemption notice. Written
here from the cloud's metadata, or by the local cloud itself; read by activities/node.py."""
NOTICE_POLL_S = 5.0
"""AWS posts the notice two minutes ahead; polling every 5 s leaves the program ~115 s."""
METADATA_TIMEOUT_S = 2.0


def _imds_notice(base: str) -> float | None:
    """The deadline (epoch seconds) of the AWS spot interruption notice, or None when there is
    none (404) or the metadata service does not answer. IMDSv2: a session token first."""
    try:
        req = urllib.request.Request(f"{base}/latest/api/token", method="PUT",
                                     headers={"X-aws-ec2-metadata-token-ttl-seconds": "300"})
        with urllib.request.urlopen(req, timeout=METADATA_TIMEOUT_S) as resp:
            token = resp.read().decode()
        req = urllib.request.Request(f"{base}/latest/meta-data/spot/instance-action",
                                     headers={"X-aws-ec2-metadata-token": token})
        with urllib.request.urlopen(req, timeout=METADATA_TIMEOUT_S) as resp:
            notice = json.loads(resp.read().decode())
    except (OSError, ValueError, urllib.error.URLError):
        return None  # 404 = no notice; anything else: ask again next time
    when = str(notice.get("time", ""))
    try:
        return datetime.fromisoformat(when.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return time.time() + 120  # a notice with an unreadable time: AWS's usual two minutes


def write_notice(home: str, deadline: float) -> None:
    """The deadline file under `home`, atomically (a program reading it on SIGTERM never sees
    half a number); a home that vanished meanwhile (the VM went) is no error. The agent writes
    it from the cloud's metadata; the local cloud writes it itself (clouds/local_preemption.py)."""
    path = os.path.join(home, NOTICE_FILE)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        agent_files.write_atomic(path, f"{deadline}\n")
    except OSError:
        pass


def _notice_found(home: str, deadline: float, on_notice) -> None:
    """Write the deadline file (unless another phase's watcher did) and call on_notice."""
    if not os.path.exists(os.path.join(home, NOTICE_FILE)):
        write_notice(home, deadline)
    on_notice()


def _watch_notice(base: str, home: str, on_notice, done: threading.Event) -> None:
    """Poll AWS's metadata service until the phase ends; on a notice write the deadline file
    and call on_notice once."""
    while not done.wait(NOTICE_POLL_S):
        deadline = _imds_notice(base)
        if deadline is not None:
            _notice_found(home, deadline, on_notice)
            return


GCE_NOTICE_S = 30.0
"""GCE stops a preempted VM about 30 s after `preempted` turns TRUE (the answer has no time)."""
GCE_WAIT_S = 60
"""Length of one long poll (`wait_for_change`): GCE answers at once when the value changes."""
GCE_MIN_GAP_S = 1.0
"""Least time between two asks, for a metadata server that answers long polls at once (or
fails): then it is a plain poll every second, leaving the program ~29 s."""


def _gce_preempted(base: str, etag: str | None = None) -> tuple:
    """(preempted?, ETag) from GCE's metadata server; (None, None) when it does not answer.
    With the ETag of the last answer it is a long poll: GCE holds the request until the value
    differs from that answer, or GCE_WAIT_S pass."""
    url, timeout = f"{base}/computeMetadata/v1/instance/preempted", METADATA_TIMEOUT_S
    if etag:
        query = {"wait_for_change": "true", "last_etag": etag, "timeout_sec": str(GCE_WAIT_S)}
        url, timeout = f"{url}?{urllib.parse.urlencode(query)}", GCE_WAIT_S + 5.0
    try:
        req = urllib.request.Request(url, headers={"Metadata-Flavor": "Google"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.read().decode().strip().upper() == "TRUE", resp.headers.get("ETag")
    except (OSError, ValueError, urllib.error.URLError):
        return None, None  # not on GCE, or a hiccup: ask again (with a plain poll)


def _watch_gce_notice(base: str, home: str, on_notice, done: threading.Event) -> None:
    """Watch GCE's `preempted` until the phase ends; once it says TRUE, write the deadline
    (now + 30 s) and call on_notice once."""
    etag = None
    while not done.is_set():
        began = time.monotonic()
        preempted, etag = _gce_preempted(base, etag)
        if done.is_set():
            return
        if preempted:
            _notice_found(home, time.time() + GCE_NOTICE_S, on_notice)
            return
        done.wait(max(0.0, GCE_MIN_GAP_S - (time.monotonic() - began)))


NOTICE_WATCHERS = {"aws": _watch_notice, "gcp": _watch_gce_notice}
"""SPOTCTL_METADATA_KIND -> the watcher of that cloud's interruption notice."""
