"""GCP without GCP: fixtures around the fake Compute Engine API (fake_gce.py), the GCP
counterpart of moto_lab.py and vm_lab.py.

Fixtures (import them into a test module explicitly, as the AWS lab's are):
- `gce_server`: THE FakeGce of this process, serving on 127.0.0.1 (a free port), stopped at exit.
- `gcp_lab`: per test: the fake wiped, spotctl's GCP clients forgotten, settings whose
  `gcp.compute_endpoint` is the fake (project "spotctl-lab", ssh user root); at the end no
  instance may be left alive in the fake (all are deleted either way, for the next test).
- `gce_fleet`: per test, a GceFleet installed on the fake (only where fake VMs can run).

`GceFleet` makes every inserted instance a fake VM (a real sshd on its own loopback address,
fake_vm.py), as GCE's guest agent would make it: root may log in with the keys the instance's
`ssh-keys` metadata lists for root, and the API reports the VM's address as the instance's
external IP. Deleting, stopping or preempting the instance powers the VM off at once.
"""

from __future__ import annotations

import atexit
import itertools
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fake_gce import FakeGce
from fake_vm import FakeVM, address_taken, lab_missing, lab_octet
from gce_api import GceError

from spotctl.clouds import gcp_clients, gcp_network
from spotctl.config import Settings, load_settings

PROJECT = "spotctl-lab"
NOBODY_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKeyOfNobodyKeyOfNobodyKeyOfNobodyKeyOfNo nobody"

_shared: list[FakeGce] = []


def shared_gce() -> FakeGce:
    """The fake GCE of this process, started on first use and stopped when the process exits.
    One is enough: every test resets it."""
    if not _shared:
        fake = FakeGce(projects=(PROJECT,))
        fake.start()
        atexit.register(fake.stop)
        _shared.append(fake)
    return _shared[0]


@pytest.fixture(scope="session")
def gce_server() -> FakeGce:
    return shared_gce()


@dataclass
class GcpLab:
    fake: FakeGce
    settings: Settings
    project: str = PROJECT

    @property
    def endpoint(self) -> str:
        return self.fake.endpoint

    def client(self, kind: str) -> Any:
        """The compute_v1 client spotctl itself would use ("InstancesClient", ...)."""
        return gcp_clients.compute_client(self.settings, kind)


def lab_settings(tmp_path: Path, endpoint: str, **gcp: Any) -> Settings:
    settings = load_settings(home=tmp_path / "spotctl-home")
    settings.gcp.compute_endpoint = endpoint
    settings.gcp.project = PROJECT
    settings.gcp.ssh_user = "root"
    for k, v in gcp.items():
        setattr(settings.gcp, k, v)
    return settings


@pytest.fixture
def gcp_lab(gce_server: FakeGce, tmp_path: Path) -> Iterator[GcpLab]:
    gce_server.reset()
    gcp_clients.forget_clients()
    gcp_network.forget()
    yield GcpLab(gce_server, lab_settings(tmp_path, gce_server.endpoint))
    alive = [(i["zone"].rsplit("/", 1)[1], i["name"], i["status"]) for i in gce_server.instances()]
    gce_server.delete_all()
    gce_server.reset()
    gcp_clients.forget_clients()
    assert not alive, f"instances left alive in the fake GCE: {alive}"


# -- the fleet -------------------------------------------------------------------------------

_addresses = itertools.count(0)
"""Never reused within a session (no pinned host key meets a new VM's); 127.X.150.x and up,
apart from vm_lab's 127.X.100.x and test_ssh_runner's 127.201.x (X: fake_vm.lab_octet)."""


def _next_address() -> str:
    while True:
        n = next(_addresses)
        address = f"127.{lab_octet()}.{150 + n // 250}.{1 + n % 250}"
        if not address_taken(address):  # another session's VM
            return address


def authorized_keys(instance: dict[str, Any], user: str = "root") -> list[str]:
    """The public keys the `ssh-keys` metadata item gives `user` (lines `USER:KEY`), as GCE's
    guest agent reads them."""
    items = (instance.get("metadata") or {}).get("items") or []
    keys = []
    for item in items:
        if item.get("key") == "ssh-keys":
            for line in (item.get("value") or "").splitlines():
                who, _, key = line.partition(":")
                if who.strip() == user and key.strip():
                    keys.append(key.strip())
    return keys


class GceFleet:
    """Fake VMs behind the fake GCE's instances; see the module's docstring."""

    def __init__(self, fake: FakeGce, root: Path, user: str = "root") -> None:
        self.fake, self.root, self.user = fake, root, user
        self.vms: dict[str, FakeVM] = {}
        """name -> the VM of the newest instance of that name, in insert order."""
        self.zones: dict[str, str] = {}
        self._all: list[FakeVM] = []
        self._lock = threading.Lock()
        self._timers: list[threading.Timer] = []

    def install(self) -> None:
        self.fake.on_insert, self.fake.on_power_off = self._boot, self._power_off

    def uninstall(self) -> None:
        for timer in self._timers:
            timer.cancel()
        if self.fake.on_insert == self._boot:
            self.fake.on_insert = self.fake.on_power_off = None
        for vm in self._all:
            vm.stop()

    def _boot(self, zone: str, instance: dict[str, Any]) -> str:
        name = instance["name"]
        keys = authorized_keys(instance, self.user) or [NOBODY_KEY]
        vm = FakeVM(_next_address(), self.root / f"{name}-{instance['id']}", "\n".join(keys))
        with self._lock:
            self._all.append(vm)
            self.vms.pop(name, None)
            self.vms[name], self.zones[name] = vm, zone
        vm.start()
        return vm.address

    def _power_off(self, zone: str, name: str) -> None:
        vm = self.vms.get(name)
        if vm is not None and self.zones.get(name) == zone:
            vm.stop()

    def leftovers(self) -> list[str]:
        """This fleet's VMs still up or with processes (only its own: another session's lab
        VMs may be running on the machine)."""
        return [repr(vm) for vm in self._all if vm.running or vm.processes()]

    # -- what a test does ------------------------------------------------------------------

    def vm(self, name: str) -> FakeVM:
        return self.vms[name]

    def running(self) -> list[str]:
        """Names of the instances the fake says are RUNNING, in insert order."""
        running = {i["name"] for i in self.fake.instances() if i["status"] == "RUNNING"}
        return [n for n in self.vms if n in running]

    def preempt(self, name: str) -> None:
        """GCE takes the Spot VM back: stopped or deleted per its termination action, with a
        compute.instances.preempted operation, every process of the VM killed."""
        self.fake.preempt(self.zones[name], name)

    def notice(self, name: str, seconds: float) -> None:
        """GCE's preemption notice (the VM's metadata `instance/preempted` turns TRUE, when
        FakeVM serves it), then the preemption `seconds` later (GCE gives 30 s)."""
        setter = getattr(self.vms[name], "set_gce_preempted", None)
        if setter is not None:
            setter(True)

        def fire() -> None:
            try:
                self.preempt(name)
            except GceError:
                pass  # deleted or stopped meanwhile: nothing left to preempt

        timer = threading.Timer(seconds, fire)
        timer.daemon = True
        self._timers.append(timer)
        timer.start()


@pytest.fixture
def gce_fleet(gcp_lab: GcpLab, tmp_path: Path) -> Iterator[GceFleet]:
    """A fleet on the fake for this test; its VMs are stopped afterwards."""
    missing = lab_missing()
    if missing:
        pytest.skip(f"fake VMs cannot run here: {missing}")
    fleet = GceFleet(gcp_lab.fake, tmp_path / "gce-vms")
    fleet.install()
    try:
        yield fleet
    finally:
        fleet.uninstall()
    assert fleet.leftovers() == []
