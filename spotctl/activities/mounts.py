"""Put a job's buckets on a node: COPY mounts are copied, MOUNT mounts are shown live.

Runs in the setup activity, once per node, from the FileMounts that launch staged (they name
buckets only). On the local cloud an instance is a sandbox directory, so:

- a MOUNT at `~/x` is a symlink `<home>/x` -> the bucket's directory (no root needed); writes
  land in the bucket at once and survive the instance;
- a target outside the home (e.g. `/checkpoint`, `/etc/xyz`) must not be created on the host,
  so it is listed in `<attempt_dir>/mounts.json` as {source, target} and the agent bind-mounts
  it in a private mount namespace around the job's processes, in a root of their own where a
  missing target is made (node_agent/agent_rootfs.py; root only); a COPY there is first copied into
  the instance's private root tree `<home>/../root/<target>`.

On a real VM (reached by SSH: the runner does not share this host's files) COPY mounts are
copied with the runner, from the store's directory or through a download. MOUNT and
MOUNT_CACHED of a bucket the VM can reach (S3) are listed in `<attempt_dir>/sync.json`; the
node agent pulls each into its target before a phase starts, pushes what changed every few
seconds and once more when the phase ends (SIGTERM on a preemption notice included), using
node_agent/bucket_sync.py. That works on any VM without root or FUSE.

sync.json never holds the worker's own keys: each entry carries short-lived credentials that
reach only its bucket prefix (S3: STS with a session policy, clouds/aws_node_creds.py), renewed
by the worker while a phase runs (node_credentials.py), or none where the VM's own role
reaches the bucket. The agent deletes the file when the attempt's run ends.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from pathlib import Path

from spotctl.config import Settings
from spotctl.models import FileMount
from spotctl.remote.base import Runner
from spotctl.storage.base import StorageError, Store
from spotctl.storage.registry import get_store

MOUNTS_FILE = "mounts.json"
SYNC_FILE = "sync.json"
MOUNT_MODES = ("MOUNT", "MOUNT_CACHED")


def _home_relative(target: str) -> str | None:
    """'~/x' or 'x' -> 'x' (relative targets are relative to $HOME, as over SSH); None for an
    absolute target; '' for '~' itself.

    The parser already refuses targets that climb out of $HOME; this second guard holds for a
    JobSpec built some other way (a target like `~/../../x` must never write outside the node's
    home: on the local cloud that is the host's file system)."""
    if target == "~":
        return ""
    if target.startswith("~/"):
        rel = target[2:]
    elif os.path.isabs(target):
        return None
    else:
        rel = target
    rel = os.path.normpath(rel.strip("/")) if rel.strip("/") else ""
    if rel == ".":
        return ""
    if rel == ".." or rel.startswith("../"):
        raise StorageError(f"file mount {target}: the target leaves the home directory")
    return rel


def _root_tree_target(runner: Runner, target: str) -> str:
    """Where an absolute target's COPY lives in the instance's private root tree."""
    return str(Path(runner.home).parent / "root" / os.path.normpath(target).lstrip("/"))


def _node_target(runner: Runner, target: str) -> str:
    rel = _home_relative(target)
    if rel is None:
        return target
    return f"{runner.home}/{rel}" if rel else runner.home


def _link(link: Path, dest: str) -> None:
    """Point `link` at dest, replacing an old link atomically (a retry does the same again)."""
    if link.is_symlink():
        if os.readlink(link) == dest:
            return
    elif link.is_dir():
        if any(link.iterdir()):
            raise StorageError(f"cannot mount a bucket at {link}: a non-empty directory is there")
        link.rmdir()
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.with_name(f".{link.name}.link.{os.getpid()}")
    if tmp.is_symlink():
        tmp.unlink()
    os.symlink(dest, tmp)
    os.replace(tmp, link)


def _sync_entry(settings: Settings, runner: Runner, m: FileMount, node_cloud: str | None) -> dict:
    """The sync.json entry of a MOUNT on a VM. Its credentials reach this mount's prefix only
    and expire (the worker renews them while a phase runs: node_credentials.py); none when
    the VM's own role reaches the bucket (`aws.instance_profile` for S3 on an AWS VM,
    `gcp.service_account` for GCS on a GCP VM)."""
    store = get_store(settings, m.store)
    own_role = ((store.name == "s3" and node_cloud == "aws" and bool(settings.aws.instance_profile))
                or (store.name == "gcs" and node_cloud == "gcp" and bool(settings.gcp.service_account)))
    rel = _home_relative(m.target)
    sync = None if m.is_file else store.node_sync(_bucket(m), m.bucket_path, credentials=not own_role and rel != "")
    if sync is None:
        raise StorageError(f"file mount {m.target}: MOUNT of {store.name} bucket {m.bucket!r} "
                           "is not supported on this cloud (use mode: COPY)")
    if rel == "":
        raise StorageError(f"file mount {m.target}: cannot mount a bucket over $HOME")
    return {**sync, "target": _node_target(runner, m.target), "mode": m.mode}


def sync_entries(settings: Settings, runner: Runner, mounts: list[FileMount], node_cloud: str | None) -> list[dict]:
    """Blocking: the sync.json entries of a node (the buckets its agent keeps in step), with
    fresh credentials; [] on a node that shares this host's files."""
    if runner.shares_host_files:
        return []
    return [_sync_entry(settings, runner, m, node_cloud) for m in mounts if m.mode in MOUNT_MODES and m.bucket]


def _materialize_sync(settings: Settings, runner: Runner, mounts: list[FileMount],
                      node_cloud: str | None = None) -> tuple[list[dict], list[dict]]:
    """Does the blocking work; returns the mounts.json entries (absolute targets, local cloud)
    and the sync.json entries (buckets the agent keeps in step on a VM)."""
    local_host = runner.shares_host_files
    entries: list[dict] = []
    synced: list[dict] = []
    for m in mounts:
        if not m.bucket:
            raise StorageError(f"file mount {m.target}: not staged into a bucket (launch must stage it)")
        store = get_store(settings, m.store)
        rel = _home_relative(m.target)
        src = store.local_path(m.bucket, m.bucket_path)
        if m.mode in MOUNT_MODES and not local_host:
            synced.append(_sync_entry(settings, runner, m, node_cloud))
            continue
        if m.mode in MOUNT_MODES:
            if not src:
                raise StorageError(f"file mount {m.target}: MOUNT of {store.name} bucket {m.bucket!r} "
                                   "is not supported on this cloud yet (use mode: COPY)")
            Path(src).mkdir(parents=True, exist_ok=True)
            runner.check_alive()  # never recreate the home of a gone (or unreachable) instance
            if rel is None:
                entries.append({"source": src, "target": m.target})
            elif rel == "":
                raise StorageError(f"file mount {m.target}: cannot mount a bucket over $HOME")
            else:
                _link(Path(runner.home) / rel, src)
            continue
        if src is None:  # download, then copy with the runner
            dest = _node_target(runner, m.target)
            if rel is None and local_host:  # as below: the private root tree, never the host's path
                dest = _root_tree_target(runner, m.target)
                entries.append({"source": dest, "target": m.target})
            _copy_remote(store, runner, m, dest)
            continue
        if not os.path.exists(src):
            raise StorageError(f"file mount {m.target}: bucket {m.bucket!r} has nothing under {m.bucket_path!r}")
        dest = _node_target(runner, m.target)
        if rel is None and local_host:  # the instance's private root tree, bind-mounted by the agent
            dest = _root_tree_target(runner, m.target)
            entries.append({"source": dest, "target": m.target})
        (runner.put_file if m.is_file else runner.put_dir)(src, dest)
    return entries, synced


def _copy_remote(store: Store, runner: Runner, m: FileMount, target: str) -> None:
    """COPY through a local temporary directory and the runner (works for any store/runner)."""
    with tempfile.TemporaryDirectory(prefix="spotctl-mount-") as tmp:
        if m.is_file:
            local = os.path.join(tmp, "object")
            store.download_file(_bucket(m), m.bucket_path, local)
            runner.put_file(local, target)
        else:
            store.download_dir(_bucket(m), m.bucket_path, tmp)
            runner.put_dir(tmp, target)


async def materialize(settings: Settings, runner: Runner, spec_mounts: list[FileMount],
                      workdir_mount: FileMount | None, attempt_dir: str, node_cloud: str | None = None) -> None:
    """Make the job's workdir and file mounts appear on one node; see the module docstring.

    Idempotent: copies overwrite, links are replaced with the same links and mounts.json is
    rewritten with the same content, so a retried setup activity does the same again. Raises
    StorageError (a non-retryable setup problem) when a mount cannot be made on this node."""
    mounts = job_mounts(spec_mounts, workdir_mount)
    entries, synced = await asyncio.to_thread(_materialize_sync, settings, runner, mounts, node_cloud)
    for name, content in ((MOUNTS_FILE, entries), (SYNC_FILE, synced)):
        path = f"{attempt_dir}/{name}"
        if content:  # sync.json may hold credentials: write_file makes it 0600
            await asyncio.to_thread(runner.write_file, path, json.dumps(content, indent=1).encode())
        else:  # an earlier try's file must not outlive a changed spec
            await asyncio.to_thread(runner.remove_file, path)


def job_mounts(spec_mounts: list[FileMount], workdir_mount: FileMount | None) -> list[FileMount]:
    """Every mount of a job, the workdir's first (as `materialize` makes them)."""
    return ([workdir_mount] if workdir_mount else []) + list(spec_mounts)


def _bucket(m: FileMount) -> str:
    """The mount's bucket: every mount names one by the time a node sets it up (the launch
    stages local sources into the job's bucket)."""
    if m.bucket is None:
        raise ValueError(f"mount {m.target}: no bucket (its sources were never staged)")
    return m.bucket
