"""A webhook on 127.0.0.1 for the notification tests: it records every POST and answers as
told (a status code, or "hang" until released)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECRET_PATH = "/services/T0001/B0002/s3cr3tT0ken"
SECRET_QUERY = "key=qu3rys3cret"
"""A Slack-like URL's secret parts: they must never show in an error or a log."""


@dataclass
class Receiver:
    """What the webhook got, and how it answers now."""

    port: int
    answer: int | str = 200
    retry_after: str | None = None
    requests: list[dict] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    def url(self, path: str = SECRET_PATH, query: str = SECRET_QUERY) -> str:
        return f"http://127.0.0.1:{self.port}{path}" + (f"?{query}" if query else "")


@contextmanager
def running_receiver(stamp: bool = False) -> Iterator[Receiver]:
    """A Receiver serving for the block; stopped (and its threads released) after it. With
    `stamp`, each request also records when it arrived (`at`, epoch seconds)."""
    state = Receiver(port=0)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            request = {"path": self.path, "headers": dict(self.headers), "body": body}
            if stamp:
                request["at"] = time.time()
            state.requests.append(request)
            if state.answer == "hang":
                state.release.wait(10)
                return
            self.send_response(int(state.answer))
            if state.retry_after:
                self.send_header("Retry-After", state.retry_after)
            text = b"ok" if state.answer == 200 else b"no_service"
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            self.wfile.write(text)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)
