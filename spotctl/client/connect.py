"""Connecting to Temporal with spotctl's data converter, and registering search attributes."""

from __future__ import annotations

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client, TLSConfig

from spotctl.client.runtime import spotctl_runtime
from spotctl.codec import data_converter
from spotctl.config import Settings
from spotctl.config import TLSConfig as SpotTLS
from spotctl.models import search_attributes as sa


def _tls(settings: Settings) -> bool | TLSConfig:
    tls = settings.temporal.tls
    if isinstance(tls, SpotTLS):
        def read(path: str | None) -> bytes | None:
            return open(path, "rb").read() if path else None

        return TLSConfig(
            server_root_ca_cert=read(tls.server_root_ca_cert),
            client_cert=read(tls.client_cert),
            client_private_key=read(tls.client_private_key),
            domain=tls.domain,
        )
    return bool(tls)


async def connect(settings: Settings) -> Client:
    """A Temporal client for the configured (or embedded) server."""
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal.namespace,
        tls=_tls(settings),
        api_key=settings.temporal.api_key,
        data_converter=data_converter(settings),
        runtime=spotctl_runtime(),  # core's logs to stderr, not stdout: see client/runtime.py
    )


async def ensure_search_attributes(client: Client, namespace: str) -> list[str]:
    """Register spotctl's search attributes where missing; return the names added."""
    have = await client.operator_service.list_search_attributes(ListSearchAttributesRequest(namespace=namespace))
    missing = {
        key.name: IndexedValueType.Value(f"INDEXED_VALUE_TYPE_{key.indexed_value_type.name}")
        for key in sa.ALL
        if key.name not in have.custom_attributes
    }
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
        )
    return sorted(missing)
