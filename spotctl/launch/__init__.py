"""What `spotctl launch` does before a job exists (CLI side): the command line's overrides, the
plan (a validated JobSpec with ranked candidates), and staging local files into buckets.
"""

from spotctl.launch.overrides import secrets_given_inline
from spotctl.launch.planning import SECRET_SHOWN, Overrides, Plan, check_launchable, plan
from spotctl.launch.staging import StagedFiles, bucket_regions, ephemeral_bucket, stage, stage_tasks
from spotctl.storage.registry import delete_buckets  # launch undoes its staging with it, as teardown does

__all__ = [
    "Overrides",
    "Plan",
    "SECRET_SHOWN",
    "StagedFiles",
    "bucket_regions",
    "check_launchable",
    "delete_buckets",
    "ephemeral_bucket",
    "plan",
    "secrets_given_inline",
    "stage",
    "stage_tasks",
]
