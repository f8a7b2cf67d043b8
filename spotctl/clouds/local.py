"""The local cloud: fake VMs that are sandbox directories and processes on this machine.

It behaves like a real cloud where it matters to spotctl: capacity per region (NoCapacity),
instances that outlive the process that made them, termination that kills everything on the
instance, and preemption. All state lives in `local_cloud_dir/state.json`, changed only
under an exclusive flock on `state.lock`, so the CLI, the worker and a restarted worker see
one cloud.

Preemption works like a spot interruption (notice, SIGTERM, SIGKILL at the deadline; see
local_preemption.py), enforced lazily by every state-reading call, so no daemon is needed.
Zones that follow a spot trace (local_trace.py) refuse spot creates and preempt the same
lazy way. Booting works the same way: with a region's `provision_delay_s` a new instance is PENDING (its
runner says "booting") until its `ready_at`, and the first state-reading call after that
makes it RUNNING.

Ending an instance kills every process it started: each instance gets a freezer cgroup
where the machine allows it (local_cgroups.py), and the environment marker finds the rest
(local_processes.py). A group left behind by a crashed process is removed by the next
`terminate` or `tagged_instances` (the orphan sweeper's call) of the same cloud.

`create` is idempotent by token, like AWS's ClientToken: every instance stores the token of
the call that made it. The Cloud-protocol calls are moody on request (latency, throttling,
hangs, a concurrency cap; see local_moods.py), the helpers for tests and `spotctl debug`
(list_instances, preempt*, set_unreachable) never are.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import random
import secrets
import shutil
import sys
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import BaseModel, TypeAdapter

from spotctl.clouds import local_cgroups
from spotctl.clouds.base import CloudError, ErrorKind, ErrorScope, InstanceState, NoCapacity, TaggedInstance
from spotctl.clouds.local_config import LocalCloudConfig, RegionConfig, SimulateConfig, load_config
from spotctl.clouds.local_instance import LocalInstance
from spotctl.clouds.local_moods import Mood, moody_call
from spotctl.clouds.local_preemption import NOTICE_POLL_S, PREEMPTION_REASON, PreemptionMixin
from spotctl.clouds.local_processes import kill_all
from spotctl.clouds.local_trace import TraceMixin
from spotctl.config import Settings
from spotctl.models import Candidate, ClusterHandle, Location, Offering
from spotctl.models.naming import job_of_cluster
from spotctl.node_agent.agent_notice import NOTICE_FILE
from spotctl.remote.local import LocalRunner, booting_marker, cgroup_marker, stopped_marker, unreachable_marker
from spotctl.remote.simulated import Program, SimulatedRunner, is_simulated, mark_simulated

log = logging.getLogger(__name__)

__all__ = ["NOTICE_FILE", "NOTICE_POLL_S", "PREEMPTION_REASON", "TERMINATION_REASON", "LocalCloud", "LocalInstance"]

CREDENTIAL_FILE_VARS = ("AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "GOOGLE_APPLICATION_CREDENTIALS",
                        "CLOUDSDK_CONFIG")
"""Environment variables that name the worker's cloud credentials (hidden from instances)."""
PRUNE_AFTER = timedelta(days=1)
TERMINATION_REASON = "local.UserInitiatedShutdown"
_PARSED: dict[Path, tuple[tuple[int, int, int], dict[str, LocalInstance]]] = {}
"""state.json's parsed table per path, with the (inode, mtime, size) it was parsed from."""
_PARSING = threading.Lock()
"""Held while a new version of a state file is parsed (see LocalCloud._load)."""


class _StateFile(BaseModel):
    instances: list[LocalInstance] = []


_STATE_FILE = TypeAdapter(_StateFile)
"""state.json, read and written in one call each (pydantic's core): with thousands of
instances, field-by-field dumps and loads were most of the benchmark mode's cost."""


def _now() -> datetime:
    return datetime.now(UTC)


class LocalCloud(PreemptionMixin, TraceMixin):
    """Implements the Cloud protocol. Construction does no I/O; files appear on first use."""

    name = "local"
    ready_poll_s = 0.2
    liveness_interval_s = 1.0
    launch_retry_initial_s = 2.0
    """The local cloud frees capacity in seconds, so its launch retries start sooner."""
    untraced_retry_max_s = 300.0
    node_env: dict[str, str] = {}
    """The local cloud writes preemption notices and signals programs itself."""

    def __init__(self, settings: Settings) -> None:
        self.root = Path(settings.local_cloud_dir)
        self.config_path = self.root / "config.yaml"
        self.state_path = self.root / "state.json"
        self.lock_path = self.root / "state.lock"
        self.spotctl_home = Path(settings.home)

    @property
    def launch_retry_max_s(self) -> float:
        """5 minutes, but one tick of wall time (at least launch_retry_initial_s) when zones
        follow a trace: a job waiting for spot must see it come back within a tick, as on the
        real cloud the trace was measured on (where 5 minutes is about a tick)."""
        try:
            regions = self.config().regions.values()
        except CloudError:
            return self.untraced_retry_max_s
        ticks = [t.gap_s / r.trace.scale for r in regions if r.trace for t in r.trace.traces.values()]
        return max(self.launch_retry_initial_s, min(ticks)) if ticks else self.untraced_retry_max_s

    # -- catalog ---------------------------------------------------------------------------

    def config(self) -> LocalCloudConfig:
        return load_config(self.config_path)

    def check(self, verify: bool = False) -> str | None:
        """The local cloud needs no credentials; only a broken config.yaml stops it."""
        try:
            self.config()
        except CloudError as exc:
            return str(exc)
        return None

    def spot_prices(self, region: str) -> dict[tuple[str, str], float]:
        """The local cloud's prices are its catalog's (config.yaml); nothing live."""
        return {}

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
                            # 0 is an outage a user made to see jobs wait, not the region's size.
                            max_nodes=region.capacity or None,
                        )
                    )
        return out

    # -- state -----------------------------------------------------------------------------

    @contextmanager
    def _state(self) -> Iterator[dict[str, LocalInstance]]:
        """Read-modify-write the instance table under an exclusive lock; saved on clean exit.
        A change that fails half-way is forgotten with the cached table (parsed again next)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                instances = dict(self._load())
                try:
                    yield instances
                except BaseException:
                    _PARSED.pop(self.state_path, None)
                    raise
                self._save(instances)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _load(self) -> dict[str, LocalInstance]:
        """The instance table as last saved, lock-free (state.json is replaced atomically), and
        parsed once per version of the file: with thousands of instances (the benchmark mode)
        every liveness check and teardown would otherwise parse all of them. Read-only: a
        change goes through `_state`."""
        try:
            st = os.stat(self.state_path)
        except FileNotFoundError:
            return {}
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        cached = _PARSED.get(self.state_path)
        if cached is not None and cached[0] == key:
            return cached[1]
        # One thread parses a new version; the others wait for it and take its result (with
        # 64 activity threads reading at once, each parsed the same 1,000 instances itself).
        with _PARSING:
            try:
                st = os.stat(self.state_path)  # the newest version now, which a waiter may have parsed
                key = (st.st_ino, st.st_mtime_ns, st.st_size)
                cached = _PARSED.get(self.state_path)
                if cached is not None and cached[0] == key:
                    return cached[1]
                parsed = _STATE_FILE.validate_json(self.state_path.read_bytes()).instances
            except FileNotFoundError:
                return {}
            cutoff = _now() - PRUNE_AFTER
            instances = {i.id: i for i in parsed if i.terminated_at is None or i.terminated_at > cutoff}
            _PARSED[self.state_path] = (key, instances)
            return instances

    def _save(self, instances: dict[str, LocalInstance]) -> None:
        cutoff = _now() - PRUNE_AFTER
        keep = [i for i in instances.values() if i.terminated_at is None or i.terminated_at > cutoff]
        tmp = self.state_path.with_name(f".state.json.tmp.{os.getpid()}")
        tmp.write_bytes(_STATE_FILE.dump_json(_StateFile(instances=keep)))
        os.replace(tmp, self.state_path)
        st = os.stat(self.state_path)
        _PARSED[self.state_path] = ((st.st_ino, st.st_mtime_ns, st.st_size), {i.id: i for i in keep})

    def list_instances(self, alive_only: bool = True) -> list[LocalInstance]:
        """Every instance (alive ones only by default). Never moody: for tests and `spotctl debug`."""
        self._refresh()
        return [i for i in self._load().values() if i.state.is_alive or not alive_only]

    def instance_home(self, instance_id: str) -> Path:
        return self.root / "instances" / instance_id / "home"

    # -- moods -----------------------------------------------------------------------------

    @contextmanager
    def _api(self, call: str, regions: Iterable[str] | None) -> Iterator[None]:
        """Apply the moods of the touched regions (all regions when none is known) around a
        Cloud-protocol call. A config that cannot be read makes no moods: `create` reports it,
        and the other calls (teardown among them) must keep working meanwhile."""
        try:
            configured: dict[str, RegionConfig] = self.config().regions
        except CloudError:
            configured = {}
        touched = {r: configured[r] for r in sorted(set(regions or ())) if r in configured}
        where = ", ".join(touched) if touched else "all regions"
        mood = Mood.worst(call, touched or configured)
        with moody_call(call, where, mood, self.root / "api_slots"):
            yield

    def _regions_of(self, instance_ids: Iterable[str]) -> list[str]:
        """The regions of the known instances among the ids (a lock-free peek)."""
        known = self._load()
        return [known[i].region for i in instance_ids if i in known]

    # -- Cloud protocol --------------------------------------------------------------------

    def create(self, cluster_name: str, candidate: Candidate, num_nodes: int, token: str) -> ClusterHandle:
        """See Cloud.create. The instances of `token` are returned whatever their state and
        placement (even terminated), so a retried call never makes a second cluster; ranks the
        token has no instance for are made (at the token's placement) if num_nodes grew."""
        with self._api("create", [candidate.region]):
            return self._create(cluster_name, candidate, num_nodes, token, replace_lost=False)

    def provision(self, cluster_name: str, candidate: Candidate, num_nodes: int) -> ClusterHandle:
        """`create` with the cluster name as token, for tests and the CLI, except that a lost
        (terminated or preempted) node is replaced: the call makes sure `num_nodes` alive
        instances of the cluster exist, keeping the placement of the alive ones."""
        with self._api("create", [candidate.region]):
            return self._create(cluster_name, candidate, num_nodes, cluster_name, replace_lost=True)

    def _create(self, cluster_name: str, candidate: Candidate, num_nodes: int, token: str, *,
                replace_lost: bool) -> ClusterHandle:
        """All or nothing: the checks raise inside the locked block, so nothing is saved."""
        cfg = self.config()
        self._refresh()  # instances past their preemption time free capacity first
        with self._state() as instances:
            if replace_lost:
                existing = [i for i in instances.values() if i.cluster_name == cluster_name and i.state.is_alive]
            else:  # the newest per rank (`provision` may have replaced a lost node under this token)
                newest = {i.node_rank: i for i in sorted(instances.values(), key=lambda i: i.created_at)
                          if i.token == token}
                existing = list(newest.values())
            existing.sort(key=lambda i: i.node_rank)
            if existing:  # keep the cluster's placement, fill in missing ranks
                first = existing[0]
                placement = (first.region, first.zone, first.instance_type, first.use_spot, first.price)
            else:
                _check_candidate(cfg, candidate)
                placement = (candidate.region, candidate.zone, candidate.instance_type, candidate.use_spot,
                             candidate.price)
            have = {i.node_rank for i in existing}
            missing = [r for r in range(num_nodes) if r not in have]
            region = cfg.regions.get(placement[0])
            if missing:
                capacity = region.capacity if region else 0
                # Only alive instances hold capacity: PREEMPTED/TERMINATED records do not.
                in_use = sum(1 for i in instances.values() if i.region == placement[0] and i.state.is_alive)
                if in_use + len(missing) > capacity:
                    raise NoCapacity(f"no capacity in {placement[0]} ({in_use}/{capacity} in use)",
                                     scope=ErrorScope.REGION)
                self._trace_refusal(cfg, placement[0], placement[1], placement[3], instances, len(missing))
            for rank in missing:
                inst = self._new_instance(cluster_name, rank, *placement, token=token,
                                          mtbf_s=region.preemption_mtbf_s if region else None,
                                          delay_s=region.provision_delay_s if region else 0.0,
                                          simulate=cfg.simulate)
                instances[inst.id] = inst
                existing.append(inst)
            nodes = sorted(existing, key=lambda i: i.node_rank)
        first = nodes[0]
        return ClusterHandle(
            cluster_name=first.cluster_name,
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
        self,
        cluster_name: str,
        rank: int,
        region: str,
        zone: str,
        itype: str,
        use_spot: bool,
        price: float,
        *,
        token: str,
        mtbf_s: float | None = None,
        delay_s: float = 0.0,
        simulate: SimulateConfig | None = None,
    ) -> LocalInstance:
        iid = "i-" + secrets.token_hex(6)
        home = self.instance_home(iid)
        home.mkdir(parents=True)
        if simulate is not None:  # the benchmark mode: no process will run, no cgroup is needed
            mark_simulated(home, Program(**simulate.model_dump()))
        else:
            group = local_cgroups.create(self.root, iid)  # None: the environment marker alone
            if group is not None:
                cgroup_marker(home).write_text(f"{group}\n")
        created = _now()
        ready = created + timedelta(seconds=delay_s)
        if delay_s > 0:
            booting_marker(home).touch()
        # Memoryless lifetimes, like independent interruptions; drawn once so every process
        # agrees on when this instance dies. The clock starts when it runs.
        preempt_at = ready + timedelta(seconds=random.expovariate(1 / mtbf_s)) if use_spot and mtbf_s else None
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
            state=InstanceState.PENDING if delay_s > 0 else InstanceState.RUNNING,
            created_at=created,
            token=token,
            ready_at=ready,
            home=str(home),
            preempt_at=preempt_at,
        )

    def find_cluster(self, cluster_name: str, at: Location | None = None) -> list[str]:
        """Every instance of the cluster not yet terminated, by rank: a preempted one still
        holds its disk, so teardown must find it too. Local ids are global: `at` is not needed."""
        regions = [at.region] if at else [i.region for i in self._load().values() if i.cluster_name == cluster_name]
        with self._api("find_cluster", regions):
            return [i.id for i in self._cluster(cluster_name, alive_only=False) if at is None or i.region == at.region]

    def _cluster(self, cluster_name: str, *, alive_only: bool) -> list[LocalInstance]:
        self._refresh()
        found = [
            i for i in self._load().values()
            if i.cluster_name == cluster_name and i.state != InstanceState.TERMINATED
            and (i.state.is_alive or not alive_only)
        ]
        return sorted(found, key=lambda i: i.node_rank)

    def job_instances(self, job_id: int, at: Location | None = None) -> list[TaggedInstance]:
        """The job's instances by their cluster names (a local instance's only tag)."""
        with self._api("find_cluster", [at.region] if at else None):
            self._refresh()
            return [_tagged(i) for i in sorted(self._load().values(), key=lambda i: i.created_at)
                    if job_of_cluster(i.cluster_name) == job_id and i.state != InstanceState.TERMINATED
                    and (at is None or i.region == at.region)]

    def instance_states(self, instance_ids: list[str], at: Location | None = None) -> dict[str, InstanceState]:
        with self._api("instance_states", self._regions_of(instance_ids)):
            self._refresh()
            instances = self._load()
            return {iid: instances[iid].state if iid in instances else InstanceState.GONE for iid in instance_ids}

    def terminate(self, instance_ids: list[str], at: Location | None = None) -> None:
        with self._api("terminate", self._regions_of(instance_ids)):
            self._end(instance_ids, InstanceState.TERMINATED, TERMINATION_REASON)
            known = self._load()
            if any(iid in known and known[iid].state == InstanceState.PREEMPTED for iid in instance_ids):
                with self._state() as instances:  # a preempted instance is terminated too, as on EC2
                    for iid in instance_ids:
                        if iid in instances and instances[iid].state == InstanceState.PREEMPTED:
                            instances[iid].state = InstanceState.TERMINATED
            for iid in instance_ids:  # a preempted instance's kept disk goes now
                shutil.rmtree(self.root / "instances" / iid, ignore_errors=True)
            self._sweep_leftovers()

    def tagged_instances(self) -> list[TaggedInstance]:
        """Every instance not yet terminated (preempted ones still hold a disk), for the
        orphan sweeper."""
        with self._api("tagged_instances", None):
            self._refresh()
            self._sweep_leftovers()
            return [_tagged(i) for i in sorted(self._load().values(), key=lambda i: i.created_at)
                    if i.state != InstanceState.TERMINATED]

    # -- booting ---------------------------------------------------------------------------

    def _refresh(self) -> None:
        """What time did meanwhile, applied lazily by every state-reading call (no daemon):
        booted instances run, due preemptions strike, traced zones drop what they no longer hold."""
        self._finish_boots()
        self._enforce_preemptions()
        self._enforce_traces()

    def _finish_boots(self) -> None:
        """PENDING -> RUNNING for the instances whose `ready_at` passed. The booting marker
        goes under the lock before the state is saved, so whoever sees RUNNING can reach it."""
        now = _now()
        due = [i.id for i in self._load().values()  # lock-free peek, as in _enforce_preemptions
               if i.state == InstanceState.PENDING and i.ready_at is not None and i.ready_at <= now]
        if not due:
            return
        with self._state() as instances:
            for iid in due:
                inst = instances.get(iid)
                if inst is not None and inst.state == InstanceState.PENDING and inst.preempt_deadline is None:
                    booting_marker(inst.home).unlink(missing_ok=True)
                    inst.state = InstanceState.RUNNING

    # -- simulated network trouble ---------------------------------------------------------

    def set_unreachable(self, instance_id: str, unreachable: bool) -> None:
        """Make the instance's runners raise NodeUnreachable (or stop doing so) while the
        instance stays RUNNING and its processes keep running: a network hiccup, which
        spotctl must not mistake for a preemption. The flag is a file the runner stats."""
        inst = self._load().get(instance_id)
        if inst is None:
            raise CloudError(f"local cloud has no instance {instance_id!r}", retryable=False)
        marker = unreachable_marker(Path(inst.home))
        if not unreachable:
            marker.unlink(missing_ok=True)
        elif inst.state.is_alive:
            try:
                marker.touch()  # never recreates the dir of an instance ended meanwhile
            except FileNotFoundError:
                pass

    def is_unreachable(self, instance_id: str) -> bool:
        """Whether set_unreachable(instance_id, True) is in effect (for `spotctl debug`)."""
        return unreachable_marker(self.instance_home(instance_id)).exists()

    # -- ending instances ------------------------------------------------------------------

    def _has_processes(self, instance_id: str) -> bool:
        """Whether the instance runs real processes to look for, signal or kill. A simulated
        one (benchmark mode) has none, and looking anyway reads every process's environment:
        too slow for thousands of instances."""
        return not is_simulated(self.instance_home(instance_id))

    def _end(self, instance_ids: list[str], final: InstanceState, reason: str) -> None:
        """Kill (outside the lock: it can take seconds), mark, remove the dir, kill stragglers.

        A preempted instance keeps its disk until it is terminated, like a spot VM whose
        interruption behaviour is "stop": whoever watches it can still read the last bytes
        its programs wrote (spotctl's monitor ships them before relaunching)."""
        known = self._load()  # a peek: the marking below re-checks under the lock
        targets = [iid for iid in instance_ids if iid in known and known[iid].state.is_alive]
        if not targets:
            return
        with_processes = [iid for iid in targets if self._has_processes(iid)]
        for iid in with_processes:
            kill_all(iid)
        try:
            changed = self._mark_ended(targets, final, reason)
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT) or final != InstanceState.TERMINATED:
                raise
            # The disk is full (often of these instances' own output): their disks, whose
            # processes are dead, go first to make room for the record, or no cancel could end them.
            for iid in targets:
                shutil.rmtree(self.root / "instances" / iid, ignore_errors=True)
            changed = self._mark_ended(targets, final, reason)
        for iid in changed:
            if final == InstanceState.PREEMPTED:
                stopped_marker(self.instance_home(iid)).touch()
                booting_marker(self.instance_home(iid)).unlink(missing_ok=True)  # its disk is readable
            else:
                shutil.rmtree(self.root / "instances" / iid, ignore_errors=True)
        for iid in with_processes:
            kill_all(iid)

    def _mark_ended(self, targets: list[str], final: InstanceState, reason: str) -> list[str]:
        """Record the end of the targets still alive (under the lock); returns them."""
        changed = []
        with self._state() as instances:
            for iid in targets:
                inst = instances.get(iid)
                if inst is not None and inst.state.is_alive:  # not ended by someone else meanwhile
                    inst.state = final
                    inst.terminated_at = _now()
                    inst.state_reason = reason
                    if final == InstanceState.PREEMPTED:
                        inst.preempted_at = inst.terminated_at
                    changed.append(iid)
        return changed

    def _sweep_leftovers(self) -> None:
        """Remove what a process that crashed while creating or ending an instance left: its
        cgroup, and a disk whose record was never saved (a create is made under the lock and
        saved when the lock is let go; a SIGKILL in between leaves the disk and no record), or
        a terminated instance's disk that a late writer made again (a runner call that passed
        its liveness check just before the instance went writes with `parents=True`).
        Listed under the lock, where instances are made, so one being made is never taken
        for a leftover."""
        disks = self.root / "instances"
        def diskless(instances: dict[str, LocalInstance], iid: str) -> bool:
            return iid not in instances or instances[iid].state == InstanceState.TERMINATED

        recorded = self._load()  # a lock-free first look: most calls find nothing to do
        if (not any(iid not in recorded or not recorded[iid].state.is_alive
                    for iid in local_cgroups.leftovers(self.root))
                and not (disks.is_dir() and any(diskless(recorded, d.name) for d in disks.iterdir()))):
            return
        with self._state() as instances:
            alive = {iid for iid, inst in instances.items() if inst.state.is_alive}
            stale = [iid for iid in local_cgroups.leftovers(self.root) if iid not in alive]
            unrecorded = [d for d in disks.iterdir() if diskless(instances, d.name)] if disks.is_dir() else []
        for iid in stale:
            log.warning("local cloud: removing the leftover cgroup of instance %s", iid)
            local_cgroups.destroy(local_cgroups.group_of(self.root, iid))
        for disk in unrecorded:
            log.warning("local cloud: removing the leftover disk of instance %s", disk.name)
            kill_all(disk.name)
            shutil.rmtree(disk, ignore_errors=True)

    def ready_handle(self, handle: ClusterHandle) -> ClusterHandle:
        """A local instance's "address" is known from its creation."""
        return handle

    def runner(self, handle: ClusterHandle, node_rank: int) -> LocalRunner:
        iid = handle.instance_ids[node_rank]
        home = self.instance_home(iid)
        if is_simulated(home):
            return SimulatedRunner(home, iid)
        return LocalRunner(home, iid, hidden=self.hidden_paths(), keep=self.kept_paths())

    def hidden_paths(self) -> tuple[Path, ...]:
        """What an instance's programs must not see (remote/local_sandbox.py): the spotctl
        home, the worker user's home (~/.aws, gcloud's config) and the credential files the
        worker's environment names."""
        named = [os.environ.get(k) for k in CREDENTIAL_FILE_VARS]
        return (self.spotctl_home, Path.home(), *(Path(p) for p in named if p and p != os.devnull))

    def kept_paths(self) -> tuple[Path, ...]:
        """What stays in reach inside a hidden path (besides the instance's own directory): the
        local buckets, and the Python that runs the agent (a venv in the worker's home)."""
        return (self.spotctl_home / "local_buckets", Path(sys.prefix), Path(sys.base_prefix),
                Path(sys.executable).parent)


def _tagged(i: LocalInstance) -> TaggedInstance:
    return TaggedInstance(id=i.id, cluster_name=i.cluster_name, region=i.region, state=i.state,
                          created_at=i.created_at, zone=i.zone)


def _check_candidate(cfg: LocalCloudConfig, candidate: Candidate) -> None:
    """Raise CloudError(kind INVALID) when the local cloud cannot ever serve the candidate."""
    region = cfg.regions.get(candidate.region)
    if region is None:
        raise CloudError(f"local cloud has no region {candidate.region!r} (regions: {', '.join(cfg.regions)})",
                         kind=ErrorKind.INVALID, scope=ErrorScope.REGION)
    if candidate.zone not in region.zones:
        raise CloudError(f"local cloud region {candidate.region} has no zone {candidate.zone!r}",
                         kind=ErrorKind.INVALID, scope=ErrorScope.ZONE)
    if candidate.instance_type not in cfg.instance_types:
        # Zone scope: on a real cloud an instance type is offered zone by zone.
        raise CloudError(f"local cloud has no instance type {candidate.instance_type!r}",
                         kind=ErrorKind.INVALID, scope=ErrorScope.ZONE)


def _scaled(price: float | None, factor: float) -> float | None:
    return None if price is None else round(price * factor, 6)
