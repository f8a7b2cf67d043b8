"""A webhook on 127.0.0.1 for the notification tests: it records every POST (with the answer
it was given) and answers as told (a status code, "hang" until released, or "trickle": one byte of an endless answer head
every `trickle_every_s`, the hostile server that beats per-read time-outs)."""

from __future__ import annotations

import select
import socket
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
    trickle_every_s: float = 1.0
    trickling: int = 0
    """Connections being trickled to now (the sender has not closed them)."""
    closed_after_s: list[float] = field(default_factory=list)
    """For each trickled connection the sender closed: how long after its request."""

    def url(self, path: str = SECRET_PATH, query: str = SECRET_QUERY) -> str:
        return f"http://127.0.0.1:{self.port}{path}" + (f"?{query}" if query else "")


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[int]:
    """A threaded HTTP server on a free loopback port (yielded) for the block; stopped after it."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@contextmanager
def running_receiver(stamp: bool = False) -> Iterator[Receiver]:
    """A Receiver serving for the block; stopped (and its threads released) after it. With
    `stamp`, each request also records when it arrived (`at`, epoch seconds)."""
    state = Receiver(port=0)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            answer = state.answer  # read once: a test may switch it while this request is answered
            request = {"path": self.path, "headers": dict(self.headers), "body": body, "answer": answer}
            if stamp:
                request["at"] = time.time()
            state.requests.append(request)
            if answer == "hang":
                state.release.wait(10)
                return
            if answer == "trickle":
                self.trickle(time.monotonic())
                return
            self.send_response(int(answer))
            if state.retry_after:
                self.send_header("Retry-After", state.retry_after)
            text = b"ok" if answer == 200 else b"no_service"
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            self.wfile.write(text)

        def trickle(self, start: float) -> None:
            """An answer head that never ends, a byte at a time, until the sender closes the
            connection (recorded) or the receiver stops."""
            with lock:
                state.trickling += 1
            try:
                self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                while not state.release.is_set():
                    readable, _, _ = select.select([self.connection], [], [], state.trickle_every_s)
                    if readable and not self.connection.recv(1, socket.MSG_PEEK):
                        break  # the sender closed it
                    self.wfile.write(b"z")
                    self.wfile.flush()
            except OSError:
                pass  # the sender reset it
            finally:
                with lock:
                    state.trickling -= 1
            if not state.release.is_set():
                state.closed_after_s.append(time.monotonic() - start)
            self.close_connection = True

        def log_message(self, *args: object) -> None:
            pass

    with serving(Handler) as state.port:
        try:
            yield state
        finally:
            state.release.set()  # before the server stops: trickling answers end first
