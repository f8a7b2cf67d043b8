"""Every bound a task must stay within, in one place (the README's limits table mirrors it).

A task file is input from a person, a script or a generator, and everything in it ends up in a
Temporal payload (4 MB gRPC messages, 2 MB blobs by default), in a workflow's memory and on
every node. So each number and each size is bounded when the file is parsed: a refusal there is
one line and exit code 2, while an unbounded value fails much later (an RPC error, a worker that
grows to gigabytes, a job that waits forever). The numbers are generous for real jobs: the
largest real machines have ~900 vCPUs, 24 TiB of memory and 16 accelerators.
"""

from __future__ import annotations

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB

# -- the YAML text ---------------------------------------------------------------------------
MAX_FILE_BYTES = 1 * MIB
"""A task file (or an inline command) larger than this is refused before it is parsed."""
MAX_YAML_DEPTH = 64
"""Nesting of mappings and lists; deeper documents would exhaust the parser's recursion."""
MAX_YAML_NODES = 10_000
"""Scalars, mappings and lists of one document *after* aliases are expanded (billion laughs).
Real task files have a few hundred; every later step (validation, dumps) walks the expanded tree."""
MAX_DOCUMENTS = 64
"""`---` documents with content in one file (a pipeline's tasks, plus its header)."""

# -- numbers ---------------------------------------------------------------------------------
MAX_NUM_NODES = 1000
MAX_CPUS = 4096
MAX_MEMORY_GB = 64 * 1024.0
"""64 TiB (memory is in GB, as in SkyPilot)."""
MAX_DISK_GB = 64 * 1024.0
"""64 TiB: disk_size and ephemeral_storage."""
MAX_ACCELERATOR_COUNT = 1024
"""Per node, for one accelerator type (fractions such as T4:0.5 are allowed)."""
MAX_ACCELERATOR_CHOICES = 64
"""Alternatives in one `accelerators:` list or set."""
MAX_RESOURCE_CHOICES = 64
"""Entries of `resources.any_of` / `resources.ordered`."""
MAX_RESTARTS_ON_ERRORS = 1000
MAX_EXIT_CODES = 256
EXIT_CODE_RANGE = (0, 255)
MAX_WAIT_S = 365 * 86400.0
"""`job_recovery.max_wait`: one year."""
PORT_RANGE = (1, 65535)
MAX_PORT_ENTRIES = 100
PRIORITY_RANGE = (-1000, 1000)
MAX_INT = 2**63 - 1
"""Any whole number anywhere in a task (also inside pass-through mappings such as `config:`)."""

# -- strings and collections -----------------------------------------------------------------
MAX_NAME_CHARS = 63
"""A job name: SkyPilot's name rule, and short enough for a DNS label / cloud tag."""
MAX_COMMAND_BYTES = 256 * KIB
"""`run:` and `setup:` each (UTF-8 bytes)."""
MAX_EVENT_CALLBACK_BYTES = 16 * KIB
"""`event_callback:` (UTF-8 bytes): it travels in every status event's activity input, and a
notification command is a line or two (a longer one belongs in a script it calls)."""
MAX_ENVS = 1000
MAX_ENVS_BYTES = 128 * KIB
"""`envs:` (with --env): names plus values, UTF-8 bytes."""
MAX_SECRETS = 100
MAX_SECRETS_BYTES = 64 * KIB
MAX_FILE_MOUNTS = 256
MAX_MOUNT_TARGET_CHARS = 1024
MAX_HOOKS = 32
"""`config.hooks` entries: SkyPilot's own bound (its schema's maxItems)."""
MAX_HOOK_RUN_CHARS = 16 * KIB
"""A hook's `run` (characters, as SkyPilot's schema counts them: maxLength 16 KiB); a longer
script belongs in the workdir, called from `run`."""
MAX_HOOKS_BYTES = 128 * KIB
"""Every hook's `run` together (UTF-8 bytes). spotctl's own bound, below SkyPilot's 32 x 16 KiB:
the hooks travel with the job in every node activity's input (Temporal: 2 MiB a payload), next
to `run` and `setup` (256 KiB each) and the envs."""
DEFAULT_HOOK_TIMEOUT_S = 3600
"""A hook's `timeout` when it has none (SkyPilot's default); at least 1 s, as in SkyPilot. A
preemption hook is held to less than the notice anyway (docs/task-yaml.md)."""

# -- what staging uploads (a task's workdir and local file-mount sources together) ----------
MAX_STAGED_FILES = 100_000
"""Files uploaded for one task before it starts; a tree larger than that belongs in a bucket
(and walking it already costs the launch seconds)."""
MAX_STAGED_BYTES = 64 * GIB
"""Their total size: it is copied from the launching machine before the job starts, then to
every node."""
MAX_SPARSE_HOLE_BYTES = 64 * MIB
"""Holes in one file: an object store has none, so a sparse file is uploaded (and written on
each node) at its full length; one with more holes than this is refused."""
