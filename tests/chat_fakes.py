"""Fakes of Slack's incoming-webhook API and Discord's webhook API on 127.0.0.1, for the chat
notification tests: each records every POST (when, what) and answers as the real one does
(Slack: 200 `ok`, errors as plain-text codes such as `no_service`; Discord: 204, errors as JSON
with `message` and `code`, a 429 with Retry-After and `retry_after`), or as a test scripts it.

Slack: POST /services/<team>/<bot>/<token>; Discord: POST /api/webhooks/<id>/<token>. A body
either platform would refuse as malformed (no text, no embeds, too long) gets its 400."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from webhook_receiver import serving

SLACK_PATH = "/services/T0CHAT/B0CHAT/sl4ckT0ken"
DISCORD_PATH = "/api/webhooks/1234567890/d1sc0rdT0ken"


@dataclass
class Scripted:
    """One answer: a status, headers and a body."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class ChatFake:
    """What the fakes got, and the answers queued for the next requests (then the usual one)."""

    port: int = 0
    requests: list[dict] = field(default_factory=list)
    script: dict[str, list[Scripted]] = field(default_factory=lambda: {"slack": [], "discord": []})
    gone: set[str] = field(default_factory=set)
    """Platforms whose webhook was deleted: every POST to it gets its 404."""

    def url(self, kind: str) -> str:
        return f"http://127.0.0.1:{self.port}{SLACK_PATH if kind == 'slack' else DISCORD_PATH}"

    def got(self, kind: str) -> list[dict]:
        """The bodies `kind` took (2xx), in arrival order."""
        return [r["json"] for r in self.requests if r["kind"] == kind and 200 <= r["status"] < 300]


def _slack_answer(body: dict) -> Scripted:
    if not isinstance(body, dict) or not (body.get("text") or body.get("blocks") or body.get("attachments")):
        return Scripted(400, b"no_text")
    if len(body.get("text", "")) > 40_000:
        return Scripted(400, b"invalid_payload")
    return Scripted(200, b"ok")


def _discord_answer(body: dict) -> Scripted:
    if not isinstance(body, dict) or not (body.get("content") or body.get("embeds")):
        return Scripted(400, json.dumps({"message": "Cannot send an empty message", "code": 50006}).encode())
    if len(body.get("content", "")) > 2000:
        return Scripted(400, json.dumps({"message": "Invalid Form Body", "code": 50035}).encode())
    return Scripted(204)


GONE = {"slack": Scripted(404, b"no_service"),
        "discord": Scripted(404, json.dumps({"message": "Unknown Webhook", "code": 10015}).encode())}


def rate_limited(kind: str, seconds: int) -> Scripted:
    """Each platform's 429 as it sends it."""
    if kind == "slack":
        return Scripted(429, b"rate_limited", {"Retry-After": str(seconds)})
    body = json.dumps({"message": "You are being rate limited.", "retry_after": float(seconds), "global": False})
    return Scripted(429, body.encode(), {"Retry-After": str(seconds), "Content-Type": "application/json"})


@contextmanager
def running_chat_fakes() -> Iterator[ChatFake]:
    """Both fakes on one loopback port for the block; stopped after it."""
    state = ChatFake()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            kind = "slack" if self.path == SLACK_PATH else "discord" if self.path == DISCORD_PATH else ""
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            with lock:
                if not kind:
                    answer = Scripted(404, b"not found")
                elif kind in state.gone:
                    answer = GONE[kind]
                elif state.script[kind]:
                    answer = state.script[kind].pop(0)
                else:
                    answer = _slack_answer(body) if kind == "slack" else _discord_answer(body)
                state.requests.append({"kind": kind, "at": time.time(), "json": body, "status": answer.status,
                                       "headers": dict(self.headers)})
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            if answer.status != 204:
                self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            if answer.status != 204:
                self.wfile.write(answer.body)

        def log_message(self, *args: object) -> None:
            pass

    with serving(Handler) as state.port:
        yield state
