"""Payload encryption (shared): the AES-GCM codec every payload crosses Temporal in, its key file,
and the codec endpoint that lets the owner's Temporal UI decode (loopback, owner only).
"""

from spotctl.codec.encryption import (
    ENCODING,
    CodecKeyError,
    EncryptionCodec,
    data_converter,
    data_converter_for_key,
    load_key,
)
from spotctl.codec.server import CodecServer, serve_codec

__all__ = [
    "CodecKeyError",
    "CodecServer",
    "ENCODING",
    "EncryptionCodec",
    "data_converter",
    "data_converter_for_key",
    "load_key",
    "serve_codec",
]
