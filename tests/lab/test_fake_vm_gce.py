"""FakeVM's metadata server speaking GCE (`computeMetadata/v1`) next to AWS's IMDSv2, and the
node agent's GCE notice watcher against it, long polls included. Only the metadata server is
started (no sshd): no root needed."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_vm import FakeVM

from spotctl.node_agent import agent_notice


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def vm(tmp_path: Path) -> Iterator[FakeVM]:
    vm = FakeVM("127.0.0.1", tmp_path / "vm", "ssh-ed25519 AAAA lab", metadata_port=_free_port())
    vm._start_metadata()
    yield vm
    vm._stop_metadata()


def _get(url: str, **headers: str) -> tuple[int, str, str | None]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as r:
            return r.status, r.read().decode(), r.headers.get("ETag")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), None


def test_gce_paths(vm: FakeVM) -> None:
    base = f"http://127.0.0.1:{vm.metadata_port}/computeMetadata/v1/instance"
    assert _get(f"{base}/preempted")[0] == 403  # no Metadata-Flavor header
    assert _get(f"{base}/preempted", **{"Metadata-Flavor": "Google"})[:2] == (200, "FALSE")
    vm.set_gce_preempted()
    assert _get(f"{base}/preempted", **{"Metadata-Flavor": "Google"})[:2] == (200, "TRUE")
    vm.set_gce_preempted(False)
    assert _get(f"{base}/preempted", **{"Metadata-Flavor": "Google"})[:2] == (200, "FALSE")
    code, body, _ = _get(f"{base}/id", **{"Metadata-Flavor": "Google"})
    assert code == 200 and body.isdigit()
    code, body, _ = _get(f"{base}/service-accounts/default/token", **{"Metadata-Flavor": "Google"})
    assert code == 200 and json.loads(body) == {"access_token": "lab-gce-token", "expires_in": 3599,
                                                "token_type": "Bearer"}
    assert _get(f"{base}/service-accounts/default/token")[0] == 403
    # AWS's paths are as they were: IMDSv2 only, and a GCE header does not open them
    aws = f"http://127.0.0.1:{vm.metadata_port}/latest/meta-data/instance-id"
    assert _get(aws, **{"Metadata-Flavor": "Google"})[0] == 401
    put = urllib.request.Request(f"http://127.0.0.1:{vm.metadata_port}/latest/api/token", method="PUT")
    with urllib.request.urlopen(put, timeout=5) as r:
        token = r.read().decode()
    assert _get(aws, **{"X-aws-ec2-metadata-token": token})[:2] == (200, vm.name)


def test_long_poll_answers_at_the_change(vm: FakeVM) -> None:
    base = f"http://127.0.0.1:{vm.metadata_port}"
    preempted, etag = agent_notice._gce_preempted(base)
    assert preempted is False and etag
    threading.Timer(0.5, vm.set_gce_preempted).start()
    t0 = time.monotonic()
    preempted, etag2 = agent_notice._gce_preempted(base, etag)  # held until the change
    assert preempted is True and etag2 != etag and 0.4 < time.monotonic() - t0 < 3
    assert agent_notice._gce_preempted(base, etag) == (True, etag2)  # an old ETag: answered at once


def test_watcher_signals_once_and_writes_the_deadline(vm: FakeVM, tmp_path: Path) -> None:
    base = f"http://127.0.0.1:{vm.metadata_port}"
    calls: list[float] = []
    done = threading.Event()
    t = threading.Thread(target=agent_notice._watch_gce_notice, args=(base, str(tmp_path), lambda: calls.append(time.time()),
                                                               done), daemon=True)
    t.start()
    time.sleep(1.5)  # in a long poll by now
    assert calls == []
    vm.set_gce_preempted(True)
    noticed = time.time()
    t.join(5)
    assert not t.is_alive() and len(calls) == 1 and calls[0] - noticed < 1.0  # no poll interval lost
    deadline = float((tmp_path / agent_notice.NOTICE_FILE).read_text())
    assert abs(deadline - (noticed + agent_notice.GCE_NOTICE_S)) < 1.5


def test_watcher_ends_with_the_phase(vm: FakeVM, tmp_path: Path) -> None:
    done = threading.Event()
    calls: list[int] = []
    t = threading.Thread(target=agent_notice._watch_gce_notice,
                         args=(f"http://127.0.0.1:{vm.metadata_port}", str(tmp_path), lambda: calls.append(1), done),
                         daemon=True)
    t.start()
    time.sleep(0.3)
    done.set()
    vm.set_gce_preempted(True)  # after the phase: no signal, no notice file
    t.join(5)
    assert not t.is_alive() and calls == [] and not (tmp_path / agent_notice.NOTICE_FILE).exists()
