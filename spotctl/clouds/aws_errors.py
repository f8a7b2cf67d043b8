"""What an EC2 error means to spotctl: one table from AWS error codes to (kind, scope).

policy/failures.py turns kind and scope into a decision: CAPACITY/PRICE/QUOTA skip their
scope and go on, THROTTLED is asked again in place, UNAVAILABLE (the call may have done
something) is asked again and then retried by Temporal with the same token, INVALID is fatal
where it reaches.

Throttling: EC2 rate-limits API calls per account *and region*, so a throttled region says
nothing about the next one: scope REGION (not the CLOUD default of Throttled).
"""

from __future__ import annotations

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from spotctl.clouds.base import CloudError, NoCapacity, Throttled
from spotctl.models import ErrorKind, ErrorScope

K, S = ErrorKind, ErrorScope

ERROR_TABLE: dict[str, tuple[ErrorKind, ErrorScope]] = {
    # no capacity of this type in this zone now
    "InsufficientInstanceCapacity": (K.CAPACITY, S.ZONE),
    "InsufficientCapacity": (K.CAPACITY, S.ZONE),
    "InsufficientHostCapacity": (K.CAPACITY, S.ZONE),
    "InsufficientFreeAddressesInSubnet": (K.CAPACITY, S.ZONE),
    "Unsupported": (K.CAPACITY, S.ZONE),  # the type is not offered in this zone
    # the spot price is above the request's maximum
    "SpotMaxPriceTooLow": (K.PRICE, S.ZONE),
    # the account's limits, per region
    "MaxSpotInstanceCountExceeded": (K.QUOTA, S.REGION),
    "VcpuLimitExceeded": (K.QUOTA, S.REGION),
    "InstanceLimitExceeded": (K.QUOTA, S.REGION),
    # "retry later" (per account and region)
    "RequestLimitExceeded": (K.THROTTLED, S.REGION),
    "Throttling": (K.THROTTLED, S.REGION),
    "ThrottlingException": (K.THROTTLED, S.REGION),
    # never here: bad parameters for this candidate, no image or no opt-in in the region
    "InvalidParameterValue": (K.INVALID, S.ZONE),
    "InvalidParameterCombination": (K.INVALID, S.ZONE),
    "InvalidAMIID.NotFound": (K.INVALID, S.REGION),
    "InvalidAMIID.Malformed": (K.INVALID, S.REGION),
    "InvalidAMIID.Unavailable": (K.INVALID, S.REGION),
    "OptInRequired": (K.INVALID, S.REGION),
    # never anywhere on this cloud: the credentials are refused
    "UnauthorizedOperation": (K.INVALID, S.CLOUD),
    "AuthFailure": (K.INVALID, S.CLOUD),
    "InvalidClientTokenId": (K.INVALID, S.CLOUD),
    "SignatureDoesNotMatch": (K.INVALID, S.CLOUD),
    "ExpiredToken": (K.INVALID, S.CLOUD),
    "RequestExpired": (K.INVALID, S.CLOUD),
    # AWS's own trouble of the moment
    "InternalError": (K.UNAVAILABLE, S.REQUEST),
    "InternalFailure": (K.UNAVAILABLE, S.REQUEST),
    "ServiceUnavailable": (K.UNAVAILABLE, S.REQUEST),
    "Unavailable": (K.UNAVAILABLE, S.REQUEST),
}

NETWORK_ERRORS = (ConnectTimeoutError, ReadTimeoutError, EndpointConnectionError, ConnectionClosedError)
"""The call may or may not have reached AWS: UNAVAILABLE (asked again with the same token)."""


def error_code(exc: BaseException) -> str:
    """The AWS error code of a ClientError ('' for anything else)."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def classify(exc: BaseException) -> tuple[ErrorKind, ErrorScope]:
    """(kind, scope) of a boto3 failure; unknown client errors are INVALID for the zone (the
    same request will not succeed by asking again), unknown 5xx are UNAVAILABLE."""
    if isinstance(exc, ClientError):
        code = error_code(exc)
        if code in ERROR_TABLE:
            return ERROR_TABLE[code]
        if code.startswith("InvalidAMIID."):
            return K.INVALID, S.REGION
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if status >= 500:
            return K.UNAVAILABLE, S.REQUEST
        return K.INVALID, S.ZONE
    if isinstance(exc, NoCredentialsError):
        return K.INVALID, S.CLOUD
    return K.UNAVAILABLE, S.REQUEST  # network errors and any other botocore trouble


def to_cloud_error(exc: BaseException, where: str) -> CloudError:
    """The CloudError (NoCapacity, Throttled or plain) for a boto3 failure at `where`."""
    kind, scope = classify(exc)
    code = error_code(exc)
    if isinstance(exc, ClientError):
        detail = exc.response.get("Error", {}).get("Message", "") or str(exc)
        message = f"aws {where}: {code}: {detail}"
    elif isinstance(exc, NoCredentialsError):
        message = f"aws {where}: no AWS credentials found"
    elif isinstance(exc, NETWORK_ERRORS):
        message = f"aws {where}: no answer ({type(exc).__name__}: {exc})"
    else:
        message = f"aws {where}: {type(exc).__name__}: {exc}"
    if kind in (K.CAPACITY, K.QUOTA, K.PRICE):
        return NoCapacity(message, kind=kind, scope=scope)
    if kind == K.THROTTLED:
        return Throttled(message, kind=kind, scope=scope)
    return CloudError(message, kind=kind, scope=scope)


AWS_ERRORS = (ClientError, BotoCoreError)
"""What a boto3 call raises; everything else is a bug and propagates as is."""
