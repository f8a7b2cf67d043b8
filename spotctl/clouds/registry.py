"""Which clouds exist, by name. Adding a cloud = one module + one entry in CLOUDS."""

from __future__ import annotations

from collections.abc import Callable

from spotctl.clouds.base import Cloud, CloudError
from spotctl.clouds.local import LocalCloud
from spotctl.config import Settings


def _aws(settings: Settings) -> Cloud:
    from spotctl.clouds.aws import AwsCloud  # boto3 is imported only when AWS is used

    return AwsCloud(settings)


def _gcp(settings: Settings) -> Cloud:
    from spotctl.clouds.gcp import GcpCloud  # google-cloud-compute is imported only when GCP is used

    return GcpCloud(settings)


CLOUDS: dict[str, Callable[[Settings], Cloud]] = {
    "local": LocalCloud,
    "aws": _aws,
    "gcp": _gcp,
}
"""Factories must be cheap (no I/O): activities build a cloud per call."""


def get_cloud(name: str, settings: Settings) -> Cloud:
    factory = CLOUDS.get(name)
    if factory is None:
        enabled = [c for c in settings.clouds if c in CLOUDS]
        raise CloudError(
            f"cloud {name!r} is not supported yet; enabled clouds: {', '.join(enabled) or 'none'}"
            f" (supported: {', '.join(CLOUDS)})",
            retryable=False,
        )
    return factory(settings)


def enabled_clouds(settings: Settings) -> list[Cloud]:
    """The clouds named in settings.clouds, in that order; an unsupported name raises."""
    return [get_cloud(name, settings) for name in settings.clouds]


def why_unusable(name: str, settings: Settings, verify: bool = False) -> str | None:
    """None when the named cloud can be used, else one line saying why not (unknown cloud,
    no credentials, ...); see Cloud.check for `verify`. Never raises."""
    try:
        return get_cloud(name, settings).check(verify=verify)
    except CloudError as exc:
        return str(exc)
