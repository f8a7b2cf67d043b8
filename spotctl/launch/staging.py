"""Launch-time staging: put the task's local files into buckets before the job starts.

A spot job's instances come and go, and the worker that sets them up may run on another
machine than `spotctl launch`, so nothing may be read from the user's disk after launch. The
workdir and the local file mounts are uploaded here, on the launching machine, into the job's
**ephemeral bucket** (`spotctl-job-<id>-files`, deleted when the job ends); named buckets
(`file_mounts: {/checkpoint: {name: B}}`) are created if missing and outlive the job. The
resulting FileMounts name only buckets, so every later step is the same on every cloud.
Before anything is created, what would be uploaded is walked once (`staging_scan`): special
files, the state dir, sparse files and oversized trees are refused with the dry run's checks.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from spotctl.config import Settings
from spotctl.launch.staging_scan import UploadScan
from spotctl.models import Candidate, FileMount
from spotctl.models.naming import ephemeral_bucket
from spotctl.storage.base import StorageError, Store
from spotctl.storage.registry import STORE_CLOUDS, bucket_url, get_store, parse_bucket_url
from spotctl.task import WORKDIR_TARGET, Task, TaskError, combined, is_url

WORKDIR_PREFIX = "workdir"


@dataclass
class StagedFiles:
    """What the JobSpec carries instead of local paths (see JobSpec's fields of the same name)."""

    workdir_mount: FileMount | None = None
    file_mounts: list[FileMount] = field(default_factory=list)
    ephemeral_buckets: list[str] = field(default_factory=list)


class _Stager:
    """One staging run; remembers the buckets it created so a failure can remove them."""

    def __init__(self, task: Task, job_id: int, settings: Settings, regions: dict[str, str] | None = None) -> None:
        self.task = task
        self.settings = settings
        self.regions = regions or {}
        """Store kind -> the region its new buckets go to (the job's first candidate there)."""
        self.store: Store = get_store(settings)
        """The store of the job's own ephemeral bucket (staged workdir and local mounts)."""
        self._stores: dict[str, Store] = {self.store.name: self.store}
        self.eph = ephemeral_bucket(job_id)
        self.prefix = ""
        """Where in the ephemeral bucket this task's files go: '' for a job, 'task-<i>/' for a
        pipeline's task (its tasks share the job's bucket)."""
        self.created: list[tuple[str, str]] = []
        self.out = StagedFiles()

    def error(self, target: str, message: str) -> TaskError:
        return TaskError(message, path=self.task.source_path,
                         line=self.task.line_at("file_mounts", target), field=f"file_mounts.{target}")

    def workdir_error(self, message: str) -> TaskError:
        return TaskError(message, path=self.task.source_path, line=self.task.line_at("workdir"),
                         field="workdir")

    def store_of(self, target: str, kind: str | None) -> Store:
        """The store a mount names (`store: s3`), made once per staging run."""
        kind = (kind or self.store.name).lower()
        if kind not in self._stores:
            try:
                self._stores[kind] = get_store(self.settings, kind, self.regions.get(kind))
            except StorageError as exc:
                raise self.error(target, str(exc)) from None
        return self._stores[kind]

    def ensure(self, bucket: str, ephemeral: bool = False, store: Store | None = None) -> bool:
        """Create `bucket` if missing; True when this run created it. The job's own ephemeral
        bucket is emptied first: job ids are never reused, so anything in it is a leftover."""
        store = store or self.store
        if ephemeral and (store.name, bucket) not in self.created:
            store.delete_bucket(bucket)
        if (store.name, bucket) in self.created or store.bucket_exists(bucket):
            return False
        store.create_bucket(bucket)
        self.created.append((store.name, bucket))
        if ephemeral:
            self.out.ephemeral_buckets.append(bucket)
        return True

    def upload(self, local: Path, bucket: str, prefix: str, store: Store | None = None) -> str:
        """Upload a file or a directory under prefix; returns the staged key or prefix."""
        store = store or self.store
        if local.is_dir():
            store.upload_dir(str(local), bucket, prefix)
            return prefix
        key = f"{prefix}/{local.name}" if prefix else local.name
        store.upload_file(str(local), bucket, key)
        return key

    # -- checks: read-only, shared by `launch --dry-run` and staging (same words for both) ---

    def check_workdir(self) -> Path | None:
        """The local workdir, which must be a directory."""
        workdir = self.task.resolved_workdir()
        if not workdir:
            return None
        local = Path(os.path.expanduser(workdir)).resolve()
        if not local.is_dir():
            raise self.workdir_error(f"directory {local} does not exist")
        return local

    def check_mount(self, m: FileMount) -> tuple[Store, Path | None]:
        """A mount's store (supported), local source (existing) and bucket name (valid for
        that store). Touches no bucket: whether a bucket named by URL exists is asked of its
        cloud only when staging."""
        if m.source and is_url(m.source):
            try:
                kind, bucket, _ = parse_bucket_url(m.source)
            except StorageError as exc:
                raise self.error(m.target, str(exc)) from None
            if m.bucket:
                raise self.error(m.target, "give either name: or a bucket URL as source:, not both")
            return self.store_of(m.target, kind), None
        store = self.store_of(m.target, m.store)
        local = Path(os.path.expanduser(m.source)).resolve() if m.source else None
        if local is not None and not local.exists():
            raise self.error(m.target, f"local source {local} does not exist")
        if m.bucket is None and local is None:
            raise self.error(m.target, "a file mount needs a source or a bucket name")
        if m.bucket is not None:
            try:
                store.check_name(m.bucket)
            except StorageError as exc:
                raise self.error(m.target, str(exc)) from None
        return store, local

    def problems(self, skip: frozenset[str] = frozenset()) -> list[TaskError]:
        """Every problem of the checks above and of the upload scan, for the workdir and each
        mount, not only the first; `skip`: fields already found wrong (by validate_for_launch),
        whose problems would only be said twice."""
        found: list[TaskError] = []
        scan = UploadScan(self.settings.home)
        follow = self.store.name != "local"  # the object stores follow links; the local one keeps them
        if "workdir" not in skip:
            try:
                local = self.check_workdir()
                if local is not None:
                    found += scan.scan(local, follow, self.workdir_error)
            except TaskError as exc:
                found.append(exc)
        for m in self.task.file_mount_list():
            where = f"file_mounts.{m.target}"
            if any(f == where or f.startswith(where + ".") for f in skip):
                continue
            try:
                store, local = self.check_mount(m)
                if local is not None:
                    found += scan.scan(local, store.name != "local", functools.partial(self.error, m.target))
            except TaskError as exc:
                found.append(exc)
        return found

    # -- staging ------------------------------------------------------------------------------

    def workdir(self) -> None:
        local = self.check_workdir()
        if local is None:
            return
        self.ensure(self.eph, ephemeral=True)
        self.upload(local, self.eph, self.prefix + WORKDIR_PREFIX)
        self.out.workdir_mount = FileMount(target=WORKDIR_TARGET, source=str(local), bucket=self.eph,
                                           bucket_path=self.prefix + WORKDIR_PREFIX, store=self.store.name,
                                           mode="COPY")

    def mount(self, n: int, m: FileMount) -> FileMount:
        store, local = self.check_mount(m)
        if m.source and is_url(m.source):
            return self.url_mount(m)
        if m.bucket is None:  # (a) a local path, copied through the ephemeral bucket
            assert local is not None  # check_mount refused a mount with neither
            self.ensure(self.eph, ephemeral=True)
            key = self.upload(local, self.eph, f"{self.prefix}mounts/{n}")
            return m.model_copy(update=dict(bucket=self.eph, bucket_path=key, store=self.store.name,
                                            mode="COPY", is_file=local.is_file(), source=str(local)))
        try:  # (b) a named bucket, (c) with a local source uploaded into it
            created = self.ensure(m.bucket, store=store)
        except StorageError as exc:
            raise self.error(m.target, str(exc)) from None
        if created and not m.persistent:
            # Another store's bucket is named by URL, so teardown knows where to delete it.
            self.out.ephemeral_buckets.append(m.bucket if store is self.store else bucket_url(store.name, m.bucket))
        if local is not None:
            self.upload(local, m.bucket, "", store)
        return m.model_copy(update=dict(bucket_path="", store=store.name,
                                        source=str(local) if local else None))

    def url_mount(self, m: FileMount) -> FileMount:
        """(d) An existing bucket named by URL (checked by check_mount); it must exist (spotctl
        did not make it)."""
        store, bucket, prefix = parse_bucket_url(m.source or "")
        st = self.store_of(m.target, store)
        try:
            exists = st.bucket_exists(bucket)
            if not exists:
                raise self.error(m.target, f"bucket {bucket!r} does not exist")
            local_path = st.local_path(bucket, prefix)
            is_file = os.path.isfile(local_path) if local_path is not None else bool(prefix) and st.list(
                bucket, prefix) == [prefix]
        except StorageError as exc:
            raise self.error(m.target, str(exc)) from None
        return m.model_copy(update=dict(bucket=bucket, bucket_path=prefix, store=st.name, is_file=is_file))


def bucket_regions(candidates: Sequence[Candidate]) -> dict[str, str]:
    """Store kind -> the region of the first (cheapest) candidate on that store's cloud: new
    buckets go where the job will most likely run (no egress, the lowest latency)."""
    out: dict[str, str] = {}
    for kind, cloud in STORE_CLOUDS.items():
        region = next((c.region for c in candidates if c.cloud == cloud), None)
        if region:
            out[kind] = region
    return out


def check_staging(task: Task, settings: Settings) -> None:
    """Every check `stage` makes before it creates or uploads anything (workdir and local
    sources exist, stores are supported, bucket names are valid, what would be uploaded can be:
    see staging_scan), as the same TaskError (all problems at once). Creates nothing: `launch
    --dry-run` runs it, and `launch` runs it before it starts the server or takes a job id, so
    both refuse a file with the same message."""
    problems = staging_problems(task, settings)
    if problems:
        raise combined(problems)


def staging_problems(task: Task, settings: Settings, skip: frozenset[str] = frozenset()) -> list[TaskError]:
    """check_staging's problems, as a list (see _Stager.problems for `skip`)."""
    return _Stager(task, 0, settings).problems(skip)


def stage(task: Task, job_id: int, settings: Settings, regions: dict[str, str] | None = None) -> StagedFiles:
    """Upload the task's workdir and local file mounts and create its named buckets (new ones
    of a cloud store in `regions[kind]`, see bucket_regions).

    Runs on the launching machine before the workflow starts. Raises TaskError for what the
    user must fix (unsupported store, missing source, bad bucket name); on any failure the
    buckets this call created are deleted again, so a failed launch leaks nothing."""
    return stage_tasks([task], job_id, settings, regions)[0]


def stage_tasks(tasks: Sequence[Task], job_id: int, settings: Settings,
                regions: dict[str, str] | None = None) -> list[StagedFiles]:
    """`stage` for every task of a job: a pipeline's tasks share the job's ephemeral bucket,
    each under its own prefix (`task-<i>/`), and a failure in any task deletes what every
    task's staging created. The ephemeral buckets are listed once, in the first task's files.
    check_staging's checks run first (again, after `launch`'s): nothing is created for a task
    that cannot be uploaded, whoever calls this."""
    problems = [problem for task in tasks for problem in staging_problems(task, settings)]
    if problems:
        raise combined(problems)
    s = _Stager(tasks[0], job_id, settings, regions)
    staged: list[StagedFiles] = []
    try:
        for i, task in enumerate(tasks):
            s.task, s.out = task, StagedFiles()
            s.prefix = f"task-{i}/" if len(tasks) > 1 else ""
            s.workdir()
            s.out.file_mounts = [s.mount(n, m) for n, m in enumerate(task.file_mount_list())]
            staged.append(s.out)
    except BaseException:
        for kind, bucket in reversed(s.created):
            try:
                s.store_of("", kind).delete_bucket(bucket)
            except Exception:  # noqa: BLE001 - the original error is what the user must see
                pass
        raise
    eph = [b for files in staged for b in files.ephemeral_buckets]
    staged[0].ephemeral_buckets = list(dict.fromkeys(eph))
    for files in staged[1:]:
        files.ephemeral_buckets = []
    return staged

