"""The codec endpoint of the embedded web UI: Temporal's codec server protocol over stdlib HTTP.

With the payload codec on, the web UI sees only ciphertext. `temporal server start-dev
--ui-codec-endpoint http://127.0.0.1:<codec_port>` makes the browser POST each payload list to
`/decode` here (and `/encode` for signals sent from the UI), as proto JSON
`{"payloads": [{"metadata": {..base64..}, "data": "..base64.."}]}`. The worker serves it, on
127.0.0.1 only, because it already holds the key.

Browsers: only the UI's origin gets CORS headers, so another web page cannot read a decoded
payload; requests must be `application/json` (which forces a CORS preflight) and name a local
Host (against DNS rebinding).

Other local users: every user of the machine can connect to 127.0.0.1, so when the endpoint is
bound to loopback it serves only connections whose client socket belongs to the owner's uid
(the uid this process runs as), as the kernel reports it (codec/peer_uid.py); anyone else gets 403.
The owner's browser and CLI pass without a token. Bound to another address (a container,
deploy/compose.yaml) peers cannot be looked up, and the network around it must keep it private.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads

from spotctl.codec.encryption import EncryptionCodec
from spotctl.codec.peer_uid import is_loopback, peer_uid

log = logging.getLogger("spotctl.codec_server")
LOCAL_HOSTS = ("127.0.0.1", "localhost")
MAX_BODY = 64 << 20
"""Temporal's own payload size limit is 2 MiB per payload; a history page holds many."""


class CodecServer:
    """A running endpoint; `stop()` ends it. Started by `serve_codec`."""

    def __init__(self, httpd: ThreadingHTTPServer, thread: threading.Thread) -> None:
        self.httpd = httpd
        self.thread = thread

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def _handler(codec: EncryptionCodec, ui_port: int, owner_uid: int | None) -> type[BaseHTTPRequestHandler]:
    origins = {f"http://{host}:{ui_port}" for host in LOCAL_HOSTS}
    actions: dict[str, Callable[[Payload], Payload]] = {"/encode": codec.encrypt, "/decode": codec.decrypt}

    class Handler(BaseHTTPRequestHandler):
        server_version = "spotctl-codec"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (stdlib's name)
            log.debug("%s " + format, self.address_string(), *args)  # never bodies: they hold secrets

        def _cors(self) -> None:
            origin = self.headers.get("Origin")
            if origin in origins:
                self.send_header("Access-Control-Allow-Origin", origin)
                self.send_header("Access-Control-Allow-Methods", "POST, OPTIONS")
                self.send_header("Access-Control-Allow-Headers", "content-type, x-namespace, authorization")
                self.send_header("Access-Control-Allow-Credentials", "true")
                self.send_header("Vary", "Origin")

        def _reply(self, code: int, body: bytes = b"", content_type: str = "application/json") -> None:
            self.send_response(code)
            self._cors()
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _error(self, code: int, message: str) -> None:
            self._reply(code, json.dumps({"error": message}).encode())

        def _local_host(self) -> bool:
            host = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]")
            return host in LOCAL_HOSTS

        def _owner(self) -> bool:
            """Whether the client socket is the owner's (always, when there is no owner to check)."""
            if owner_uid is None:
                return True
            uid = peer_uid(self.client_address[:2], self.connection.getsockname()[:2])
            if uid == owner_uid:
                return True
            log.warning("refused a codec request from uid %s (only uid %d may decode)", uid, owner_uid)
            self._error(403, f"only uid {owner_uid}, the owner of this spotctl home, may use this endpoint")
            return False

        def do_OPTIONS(self) -> None:  # noqa: N802 (stdlib's name)
            if not self._owner():
                return None
            self._reply(204 if self.path.split("?")[0] in actions else 404, b"", "text/plain")

        def do_POST(self) -> None:  # noqa: N802 (stdlib's name)
            if not self._owner():
                return None
            action = actions.get(self.path.split("?")[0])
            if action is None:
                return self._error(404, "POST /encode or /decode")
            if not self._local_host():
                return self._error(403, "Host must be 127.0.0.1 or localhost")
            if (self.headers.get("Content-Type") or "").split(";")[0].strip() != "application/json":
                return self._error(415, "Content-Type must be application/json")
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                return self._error(413, "too large")
            try:
                payloads = json_format.Parse(self.rfile.read(length), Payloads())
                out = Payloads(payloads=[action(p) for p in payloads.payloads])
            except Exception as exc:  # a bad request or a foreign key: say which, never the data
                return self._error(400, f"{type(exc).__name__}: {exc}")
            self._reply(200, json_format.MessageToJson(out).encode())

    return Handler


def serve_codec(codec: EncryptionCodec, port: int, ui_port: int, host: str = "127.0.0.1") -> CodecServer:
    """Serve `codec` on host:port in a daemon thread, to this process's uid only when `host` is a
    loopback address (see the module docstring). Raises OSError when the port is taken."""
    owner_uid = os.getuid() if is_loopback(host) else None
    httpd = ThreadingHTTPServer((host, port), _handler(codec, ui_port, owner_uid))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, name="spotctl-codec-server", daemon=True)
    thread.start()
    return CodecServer(httpd, thread)
