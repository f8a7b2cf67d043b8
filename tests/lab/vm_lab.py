"""The AWS lab's fleet: every instance moto launches is a fake VM (a real sshd on its own
loopback address, tests/lab/fake_vm.py), as cloud-init would make it.

`VmFleet.install()` wraps moto's in-process EC2 backend so that
- run_instances boots one FakeVM per new instance, with the instance's key pair as root's
  authorized key, and makes describe_instances report the VM's address as the public IP;
- terminating or stopping an instance (by spotctl, by the test, by a "preemption") powers its
  VM off at once: every process in it is killed, its disk stays.

`preempt()` is a spot interruption as EC2 shows it (state reason Server.SpotInstanceTermination)
with the VM gone at the same moment; `notice()` first posts the two-minute warning (here: a
few seconds) on the VM's metadata service, then preempts when it runs out.
"""

from __future__ import annotations

import itertools
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fake_vm import FakeVM, address_taken, lab_octet
from moto_lab import ACCOUNT

_addresses = itertools.count(0)
"""Never reused within a test session, so no pinned host key meets a new VM's."""


def _next_address() -> str:
    """127.X.100.1 and up, X this process's (fake_vm.lab_octet); one in use by another
    session's VM is skipped."""
    while True:
        n = next(_addresses)
        address = f"127.{lab_octet()}.{100 + n // 250}.{1 + n % 250}"
        if not address_taken(address):
            return address


class VmFleet:
    def __init__(self, root: Path, fallback_key: Path | None = None) -> None:
        self.root = root
        self.fallback_key = fallback_key
        self.vms: dict[str, FakeVM] = {}
        self.regions: dict[str, str] = {}
        self._lock = threading.Lock()
        self._timers: list[threading.Timer] = []
        self._undo: list[tuple[Any, str, Any]] = []

    # -- moto hooks ------------------------------------------------------------------------

    def install(self) -> None:
        from moto.ec2.models.instances import Instance, InstanceBackend

        fleet = self
        run_instances, terminate, stop = InstanceBackend.run_instances, Instance.terminate, Instance.stop

        def booting_run_instances(backend: Any, *args: Any, **kwargs: Any) -> Any:
            reservation = run_instances(backend, *args, **kwargs)
            for inst in reservation.instances:
                fleet._boot(backend, inst)
            return reservation

        def powering_off(original: Any) -> Any:
            def call(inst: Any) -> Any:
                result = original(inst)
                fleet._power_off(inst.id)
                return result
            return call

        for owner, name, new in ((InstanceBackend, "run_instances", booting_run_instances),
                                 (Instance, "terminate", powering_off(terminate)),
                                 (Instance, "stop", powering_off(stop))):
            self._undo.append((owner, name, getattr(owner, name)))
            setattr(owner, name, new)

    def uninstall(self) -> None:
        for timer in self._timers:
            timer.cancel()
        for owner, name, original in reversed(self._undo):
            setattr(owner, name, original)
        self._undo.clear()
        for vm in list(self.vms.values()):
            vm.stop()

    def _authorized_key(self, backend: Any, inst: Any) -> str:
        pair = backend.key_pairs.get(inst.key_name) if inst.key_name else None
        if pair is not None:
            return pair.public_key
        if self.fallback_key is not None and self.fallback_key.exists():
            return self.fallback_key.read_text()
        return "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKeyOfNobodyKeyOfNobodyKeyOfNobodyKeyOfNo nobody"

    def _boot(self, backend: Any, inst: Any) -> None:
        address = _next_address()
        vm = FakeVM(address, self.root / inst.id, self._authorized_key(backend, inst))
        vm.start()
        inst.nics[0].public_ip = address
        with self._lock:
            self.vms[inst.id] = vm
            self.regions[inst.id] = backend.region_name

    def _power_off(self, instance_id: str) -> None:
        vm = self.vms.get(instance_id)
        if vm is not None:
            vm.stop()

    # -- what a test does ------------------------------------------------------------------

    def instance(self, instance_id: str) -> Any:
        from moto.ec2.models import ec2_backends

        return ec2_backends[ACCOUNT][self.regions[instance_id]].get_instance(instance_id)

    def running(self) -> list[str]:
        """Ids of the instances moto says run, in launch order."""
        return [i for i in self.vms if self.instance(i).state == "running"]

    def preempt(self, instance_id: str) -> None:
        """EC2 takes the spot VM back: terminated with a spot reason, every process killed."""
        from moto.ec2.models.instances import StateReason

        inst = self.instance(instance_id)
        inst.terminate()
        code = "Server.SpotInstanceTermination"
        inst.state_reason = StateReason(f"{code}: Spot instance termination", code)

    def notice(self, instance_id: str, seconds: float) -> None:
        """The interruption notice on the VM's metadata service, then the preemption when it
        runs out (EC2 gives two minutes)."""
        deadline = datetime.now(UTC) + timedelta(seconds=seconds)
        self.vms[instance_id].set_spot_notice("terminate", deadline.strftime("%Y-%m-%dT%H:%M:%SZ"))
        timer = threading.Timer(seconds, self.preempt, args=(instance_id,))
        timer.daemon = True
        self._timers.append(timer)
        timer.start()
