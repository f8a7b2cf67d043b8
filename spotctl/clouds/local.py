"""The local cloud: fake VMs that are sandbox directories and processes on this machine.

It behaves like a real cloud where it matters to spotctl: capacity per region (NoCapacity),
instances that outlive the process that made them, termination that kills everything on the
instance, and preemption. All state lives in `local_cloud_dir/state.json`, changed only
under an exclusive flock on `state.lock`, so the CLI, the worker and a restarted worker see
one cloud.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import shutil
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

from pydantic import BaseModel

from spotctl.clouds.base import InstanceState, NoCapacity
from spotctl.clouds.local_config import LocalCloudConfig, load_config
from spotctl.config import Settings
from spotctl.models import Candidate, ClusterHandle, Offering
from spotctl.remote.local import INSTANCE_MARKER, LocalRunner

PRUNE_AFTER = timedelta(days=1)
KILL_TIMEOUT_S = 2.0


class LocalInstance(BaseModel):
    id: str
    name: str
    cluster_name: str
    node_rank: int
    region: str
    zone: str
    instance_type: str
    use_spot: bool
    price: float = 0.0
    state: InstanceState
    created_at: datetime
    terminated_at: datetime | None = None
    home: str
    ip: str = "127.0.0.1"


def processes_of(instance_id: str) -> list[int]:
    """Pids of live processes whose environment carries the instance's marker."""
    marker = f"{INSTANCE_MARKER}={instance_id}".encode()
    me = os.getpid()
    pids: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if marker in f.read().split(b"\0"):
                    pids.append(int(entry))
        except OSError:  # vanished, or not ours to read
            continue
    return pids


def _signal_all(instance_id: str, sig: int) -> None:
    for pid in processes_of(instance_id):
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def kill_all(instance_id: str, timeout: float = KILL_TIMEOUT_S) -> None:
    """SIGKILL every process of the instance until none is left (new ones may be forking)."""
    deadline = time.monotonic() + timeout
    while processes_of(instance_id) and time.monotonic() < deadline:
        _signal_all(instance_id, signal.SIGKILL)
        time.sleep(0.02)


def _now() -> datetime:
    return datetime.now(timezone.utc)


class LocalCloud:
    """Implements the Cloud protocol. Construction does no I/O; files appear on first use."""

    name = "local"

    def __init__(self, settings: Settings) -> None:
        self.root = Path(settings.local_cloud_dir)
        self.config_path = self.root / "config.yaml"
        self.state_path = self.root / "state.json"
        self.lock_path = self.root / "state.lock"

    # -- catalog ---------------------------------------------------------------------------

    def config(self) -> LocalCloudConfig:
        return load_config(self.config_path)

    def offerings(self) -> list[Offering]:
        cfg = self.config()
        out: list[Offering] = []
        for region_name, region in cfg.regions.items():
            for zone in region.zones:
                for type_name, it in cfg.instance_types.items():
                    out.append(
                        Offering(
                            cloud=self.name,
                            region=region_name,
                            zone=zone,
                            instance_type=type_name,
                            cpus=it.cpus,
                            memory_gb=it.memory_gb,
                            accelerators=dict(it.accelerators),
                            spot_price=_scaled(it.spot_price, region.price_factor),
                            ondemand_price=_scaled(it.ondemand_price, region.price_factor),
                        )
                    )
        return out

    # -- state -----------------------------------------------------------------------------

    @contextmanager
    def _state(self) -> Iterator[dict[str, LocalInstance]]:
        """Read-modify-write the instance table under an exclusive lock; saved on clean exit."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                instances = self._load()
                yield instances
                self._save(instances)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _load(self) -> dict[str, LocalInstance]:
        try:
            raw = json.loads(self.state_path.read_text())
        except FileNotFoundError:
            return {}
        return {i["id"]: LocalInstance.model_validate(i) for i in raw.get("instances", [])}

    def _save(self, instances: dict[str, LocalInstance]) -> None:
        cutoff = _now() - PRUNE_AFTER
        keep = [i for i in instances.values() if i.terminated_at is None or i.terminated_at > cutoff]
        tmp = self.state_path.with_name(f".state.json.tmp.{os.getpid()}")
        tmp.write_text(json.dumps({"instances": [i.model_dump(mode="json") for i in keep]}, indent=1))
        os.replace(tmp, self.state_path)

    def list_instances(self, alive_only: bool = True) -> list[LocalInstance]:
        with self._state() as instances:
            return [i for i in instances.values() if i.state.is_alive or not alive_only]

    def instance_home(self, instance_id: str) -> Path:
        return self.root / "instances" / instance_id / "home"

    # -- Cloud protocol --------------------------------------------------------------------

    def provision(self, cluster_name: str, candidate: Candidate, num_nodes: int) -> ClusterHandle:
        cfg = self.config()
        region = cfg.regions.get(candidate.region)
        if region is None:
            raise NoCapacity(f"local cloud has no region {candidate.region!r} (regions: {', '.join(cfg.regions)})")
        if candidate.zone not in region.zones:
            raise NoCapacity(f"local cloud region {candidate.region} has no zone {candidate.zone!r}")
        if candidate.instance_type not in cfg.instance_types:
            raise NoCapacity(f"local cloud has no instance type {candidate.instance_type!r}")
        with self._state() as instances:
            existing = sorted(
                (i for i in instances.values() if i.cluster_name == cluster_name and i.state.is_alive),
                key=lambda i: i.node_rank,
            )
            if existing:  # idempotent: keep the cluster's placement, fill in missing ranks
                first = existing[0]
                placement = (first.region, first.zone, first.instance_type, first.use_spot, first.price)
            else:
                placement = (candidate.region, candidate.zone, candidate.instance_type, candidate.use_spot, candidate.price)
            have = {i.node_rank for i in existing}
            missing = [r for r in range(num_nodes) if r not in have]
            if missing:
                reg_name = placement[0]
                capacity = cfg.regions[reg_name].capacity if reg_name in cfg.regions else 0
                in_use = sum(1 for i in instances.values() if i.region == reg_name and i.state.is_alive)
                if in_use + len(missing) > capacity:
                    raise NoCapacity(f"no capacity in {reg_name} ({in_use}/{capacity} in use)")
            for rank in missing:
                inst = self._new_instance(cluster_name, rank, *placement)
                instances[inst.id] = inst
                existing.append(inst)
            nodes = sorted(existing, key=lambda i: i.node_rank)
        first = nodes[0]
        return ClusterHandle(
            cluster_name=cluster_name,
            cloud=self.name,
            region=first.region,
            zone=first.zone,
            instance_type=first.instance_type,
            use_spot=first.use_spot,
            instance_ids=[i.id for i in nodes],
            node_ips=[i.ip for i in nodes],
            price=first.price,
            accelerators=dict(cfg.instance_types[first.instance_type].accelerators)
            if first.instance_type in cfg.instance_types
            else {},
        )

    def _new_instance(
        self, cluster_name: str, rank: int, region: str, zone: str, itype: str, use_spot: bool, price: float
    ) -> LocalInstance:
        iid = "i-" + secrets.token_hex(6)
        home = self.instance_home(iid)
        home.mkdir(parents=True)
        return LocalInstance(
            id=iid,
            name=f"{cluster_name}-{rank}",
            cluster_name=cluster_name,
            node_rank=rank,
            region=region,
            zone=zone,
            instance_type=itype,
            use_spot=use_spot,
            price=price,
            state=InstanceState.RUNNING,
            created_at=_now(),
            home=str(home),
        )

    def find_cluster(self, cluster_name: str) -> list[str]:
        with self._state() as instances:
            alive = [i for i in instances.values() if i.cluster_name == cluster_name and i.state.is_alive]
        return [i.id for i in sorted(alive, key=lambda i: i.node_rank)]

    def instance_states(self, instance_ids: list[str]) -> dict[str, InstanceState]:
        with self._state() as instances:
            return {iid: instances[iid].state if iid in instances else InstanceState.GONE for iid in instance_ids}

    def terminate(self, instance_ids: list[str]) -> None:
        self._end(instance_ids, InstanceState.TERMINATED)

    def preempt(self, instance_id: str, notice_s: float = 0) -> None:
        """Simulate a spot preemption: optional notice file + SIGTERM, then kill and remove."""
        with self._state() as instances:
            inst = instances.get(instance_id)
            if inst is None or not inst.state.is_alive:
                return
        if notice_s > 0:
            deadline = time.time() + notice_s
            notice = Path(inst.home) / ".spotctl" / "preemption_notice"
            try:
                notice.parent.mkdir(parents=True, exist_ok=True)
                tmp = notice.with_name(".preemption_notice.tmp")
                tmp.write_text(f"{deadline}\n")
                os.replace(tmp, notice)
            except OSError:
                pass
            _signal_all(instance_id, signal.SIGTERM)
            while time.time() < deadline and processes_of(instance_id):
                time.sleep(0.05)
        self._end([instance_id], InstanceState.PREEMPTED)

    def _end(self, instance_ids: list[str], final: InstanceState) -> None:
        """Kill (outside the lock: it can take seconds), mark, remove the dir, kill stragglers."""
        with self._state() as instances:
            targets = [iid for iid in instance_ids if iid in instances and instances[iid].state.is_alive]
        for iid in targets:
            kill_all(iid)
        with self._state() as instances:
            for iid in targets:
                inst = instances[iid]
                if inst.state.is_alive:
                    inst.state = final
                    inst.terminated_at = _now()
        for iid in targets:
            shutil.rmtree(self.root / "instances" / iid, ignore_errors=True)
            kill_all(iid)

    def runner(self, handle: ClusterHandle, node_rank: int) -> LocalRunner:
        iid = handle.instance_ids[node_rank]
        return LocalRunner(self.instance_home(iid), iid)


def _scaled(price: float | None, factor: float) -> float | None:
    return None if price is None else round(price * factor, 6)
