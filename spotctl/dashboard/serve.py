"""Serving the dashboard with uvicorn on a socket bound here (so port 0 can pick a free port and the
address printed is the one served), until interrupted.
"""

from __future__ import annotations

import contextlib
import ipaddress
import signal
import socket
import threading
from collections.abc import Callable, Iterator

import uvicorn

from spotctl.client import SpotClient
from spotctl.config import Settings
from spotctl.dashboard.app import create_app
from spotctl.dashboard.reads import Reader

CONNECTIONS_AT_ONCE = 64
"""Open connections uvicorn serves at once; more get a 503 (a runaway tab cannot take the server)."""


class _Server(uvicorn.Server):
    """uvicorn's server, except that Ctrl-C (or SIGTERM) is the end of serving, not an error:
    uvicorn re-raises the signal once it has shut down, which the CLI would report as
    "Aborted!" and exit 1; here `spotctl dashboard` returns and exits 0."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handled = (signal.SIGINT, signal.SIGTERM)
        original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)


def is_loopback(host: str) -> bool:
    """Whether `host` (an address or `localhost`) is this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: a free one). OSError when it cannot be had."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


async def serve(client: SpotClient, settings: Settings, sock: socket.socket,
                on_ready: Callable[[], None] | None = None) -> None:
    """Serve the dashboard on `sock` until SIGINT/SIGTERM; `on_ready` once it accepts connections."""
    host = sock.getsockname()[0]
    app = create_app(Reader(client, settings), loopback=is_loopback(host))
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                            limit_concurrency=CONNECTIONS_AT_ONCE, timeout_keep_alive=5,
                            proxy_headers=not is_loopback(host))
    server = _Server(config)
    if on_ready is not None:
        startup = server.startup

        async def started(sockets: list[socket.socket] | None = None) -> None:
            await startup(sockets=sockets)
            if server.started:
                on_ready()

        server.startup = started  # type: ignore[method-assign]
    try:
        await server.serve(sockets=[sock])
    finally:
        sock.close()
