"""The SkyPilot task YAML parser (CLI side): a task file to a `Task` (or a `Pipeline`) with line-precise
errors, every field and size bounded (limits.py); the one reader of task and env files.
"""

from spotctl.task.document import (
    ENV_KEY,
    RECOVERY_KEYS,
    RESOURCE_KEYS,
    SINGLE_RESOURCE_KEYS,
    STORAGE_KEYS,
    TASK_KEYS,
    WORKDIR_KEYS,
)
from spotctl.task.errors import MAX_SHOWN_PROBLEMS, TaskError, combined, is_url
from spotctl.task.input_files import is_special_file, read_input_file
from spotctl.task.limits import (
    MAX_COMMAND_BYTES,
    MAX_EVENT_CALLBACK_BYTES,
    MAX_FILE_BYTES,
    MAX_NUM_NODES,
    MAX_SPARSE_HOLE_BYTES,
    MAX_STAGED_BYTES,
    MAX_STAGED_FILES,
    MAX_WAIT_S,
)
from spotctl.task.load import (
    WORKDIR_TARGET,
    FileMountSpec,
    Pipeline,
    Task,
    launch_problems,
    load_task_file,
    parse_env_assignment,
    parse_task_text,
    validate_for_launch,
)
from spotctl.task.values import (
    check_command,
    check_name,
    check_strategy,
    parse_accelerators,
    parse_amount,
    parse_deadline_duration,
    parse_infra,
    parse_when,
    shown,
)

__all__ = [
    "ENV_KEY",
    "FileMountSpec",
    "MAX_COMMAND_BYTES",
    "MAX_EVENT_CALLBACK_BYTES",
    "MAX_FILE_BYTES",
    "MAX_NUM_NODES",
    "MAX_SHOWN_PROBLEMS",
    "MAX_SPARSE_HOLE_BYTES",
    "MAX_STAGED_BYTES",
    "MAX_STAGED_FILES",
    "MAX_WAIT_S",
    "Pipeline",
    "RECOVERY_KEYS",
    "RESOURCE_KEYS",
    "SINGLE_RESOURCE_KEYS",
    "STORAGE_KEYS",
    "TASK_KEYS",
    "Task",
    "TaskError",
    "WORKDIR_KEYS",
    "WORKDIR_TARGET",
    "check_command",
    "check_name",
    "check_strategy",
    "combined",
    "is_special_file",
    "is_url",
    "launch_problems",
    "load_task_file",
    "parse_accelerators",
    "parse_amount",
    "parse_deadline_duration",
    "parse_env_assignment",
    "parse_infra",
    "parse_task_text",
    "parse_when",
    "read_input_file",
    "shown",
    "validate_for_launch",
]
