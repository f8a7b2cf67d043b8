"""One HTTP(S) POST on the event loop, ended at a total deadline: notifications' transport.

Why not urllib in a thread: urllib's time-out is per socket operation, so a server that
trickles one byte every few seconds keeps a POST, and the thread it blocks, for hours; a
cancelled `asyncio.to_thread` does not stop that thread, and every retry took another one
from the worker's shared pool (the one that also ships logs and talks to nodes) until no job
could move. Here everything (name lookup, connect, TLS, sending, the answer's head and the
part of its body that is read) happens under one `asyncio.timeout`, and the connection is
aborted when it fires, so an attempt takes nothing from the worker after its deadline.
Name lookups block in getaddrinfo: they get a small pool of their own (RESOLVER_THREADS),
never the worker's. Only what a webhook needs is spoken: one request per connection
(Connection: close), no redirects followed, the answer's status, headers and at most
`max_body` bytes of its body.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import io
import ipaddress
import socket
import ssl
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.message import Message
from urllib.parse import unquote, urlsplit

RESOLVER_THREADS = 4
"""Threads for name lookups (getaddrinfo blocks); a slow DNS server holds only these."""
MAX_HEAD_BYTES = 64 * 1024
"""An answer's status line and headers larger than this are not HTTP we want."""

_resolver: ThreadPoolExecutor | None = None
_tls: ssl.SSLContext | None = None


class NotHttp(Exception):
    """The server's answer could not be read as HTTP/1.x (the message says how)."""


class BadUrl(ValueError):
    """The URL cannot be sent as it is: no host, or spaces or control characters (which would
    let it write headers of its own). config/notify.py refuses these; this guards older specs."""


@dataclass
class HttpAnswer:
    status: int
    headers: Message
    body: bytes


def _resolver_pool() -> ThreadPoolExecutor:
    global _resolver
    if _resolver is None:
        _resolver = ThreadPoolExecutor(RESOLVER_THREADS, thread_name_prefix="notify-dns")
    return _resolver


def _tls_context() -> ssl.SSLContext:
    global _tls
    if _tls is None:
        _tls = ssl.create_default_context()
    return _tls


async def _addresses(host: str, port: int) -> list[tuple[int, str]]:
    """(family, address) of `host`, an IP literal at once, a name through the resolver pool."""
    try:
        ip = ipaddress.ip_address(host)
        return [(socket.AF_INET6 if ip.version == 6 else socket.AF_INET, host)]
    except ValueError:
        pass
    infos = await asyncio.get_running_loop().run_in_executor(
        _resolver_pool(), lambda: socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
    seen: list[tuple[int, str]] = []
    for family, _, _, _, sockaddr in infos:
        if (family, sockaddr[0]) not in seen:
            seen.append((family, str(sockaddr[0])))
    return seen


async def _connect(host: str, port: int, tls: bool) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection to the first of `host`'s addresses that takes one."""
    error: OSError = OSError(f"{host} has no address")
    for _, address in await _addresses(host, port):
        try:
            return await asyncio.open_connection(
                address, port, limit=MAX_HEAD_BYTES, ssl=_tls_context() if tls else None,
                server_hostname=host if tls else None)
        except OSError as exc:
            error = exc
    raise error


def _request(url: str, body: bytes, headers: dict[str, str]) -> tuple[str, int, bool, bytes]:
    """host, port, whether TLS, and the request's bytes."""
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise BadUrl("the URL contains spaces or control characters")
    parts = urlsplit(url)
    if not parts.hostname:
        raise BadUrl("the URL has no host")
    tls = parts.scheme.lower() == "https"
    host = parts.hostname or ""
    port = parts.port or (443 if tls else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host_header = f"[{host}]" if ":" in host else host
    if parts.port:
        host_header += f":{parts.port}"
    lines = [f"POST {target} HTTP/1.1", f"Host: {host_header}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if parts.username is not None:  # user:password@host, as curl and requests send it
        secret = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        lines.append(f"Authorization: Basic {base64.b64encode(secret).decode()}")
    lines += [f"Content-Length: {len(body)}", "Connection: close"]
    return host, port, tls, ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _head(reader: asyncio.StreamReader) -> tuple[int, Message]:
    """The final answer's status and headers (1xx interim answers are skipped)."""
    while True:
        try:
            block = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            raise NotHttp(f"an answer head of more than {MAX_HEAD_BYTES} bytes") from None
        except asyncio.IncompleteReadError as exc:
            raise NotHttp("the connection closed before an answer" if not exc.partial
                          else "the connection closed inside the answer's head") from None
        status_line, _, rest = block.partition(b"\r\n")
        fields = status_line.split(None, 2)
        if len(fields) < 2 or not fields[0].startswith(b"HTTP/1.") or not fields[1].isdigit() or len(fields[1]) != 3:
            raise NotHttp("the answer is not HTTP/1.x")
        status = int(fields[1])
        if not 100 <= status < 200:
            return status, http.client.parse_headers(io.BytesIO(rest))


async def _chunked(reader: asyncio.StreamReader, into: bytearray, limit: int) -> None:
    while len(into) < limit:
        size_line = await reader.readline()
        size = int(size_line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            return
        into += (await reader.readexactly(size))[: limit - len(into)]
        await reader.readline()


async def _body(reader: asyncio.StreamReader, headers: Message, into: bytearray, limit: int) -> None:
    """Up to `limit` bytes of the body into `into` (kept as far as it got if this is cut off)."""
    try:
        if "chunked" in (headers.get("Transfer-Encoding") or "").lower():
            await _chunked(reader, into, limit)
            return
        length = headers.get("Content-Length")
        want = min(int(length), limit) if length and length.strip().isdigit() else limit
        while len(into) < want and (chunk := await reader.read(want - len(into))):
            into += chunk
    except (asyncio.IncompleteReadError, ValueError, OSError):
        pass  # a torn body still leaves its status, and what arrived of it


async def post(url: str, body: bytes, headers: dict[str, str], deadline_s: float, *,
               max_body: int = 4096, body_unless_2xx: bool = True) -> HttpAnswer:
    """POST `body` to `url`; the answer, whatever its status. Raises TimeoutError when the
    whole exchange did not end within `deadline_s`, OSError when no connection was made or it
    broke before an answer, NotHttp for an answer that is not HTTP, BadUrl for a URL that
    cannot be sent. With `body_unless_2xx`,
    a 2xx answer's body is not waited for (its status is all a sender needs)."""
    host, port, tls, request = _request(url, body, headers)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + deadline_s
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout_at(deadline):
            reader, writer = await _connect(host, port, tls)
            writer.write(request)
            await writer.drain()
            status, answer_headers = await _head(reader)
        data = bytearray()
        if not (body_unless_2xx and 200 <= status < 300):
            try:
                async with asyncio.timeout_at(deadline):
                    await _body(reader, answer_headers, data, max_body)
            except TimeoutError:
                pass  # the status arrived in time: a slow body only shortens the snippet
        return HttpAnswer(status, answer_headers, bytes(data))
    finally:
        if writer is not None:
            writer.transport.abort()  # closes the socket now, whatever the server still sends
