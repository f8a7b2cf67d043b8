"""The dashboard's web app (Starlette): three pages (jobs, one job, the fleet), served as static
HTML + JS from the package, and the JSON they poll (`/api/...`).

Every input is checked and bounded here (a bad one is a 400 with one line, never a traceback);
every error a page can meet is JSON `{"error": "..."}` that the page shows in its error line. The
pages load nothing from outside this server: the chart library is vendored (static/vendor/), and
the Content-Security-Policy header says so to the browser too.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from spotctl.client import UNFINISHED, ArrayNotFound
from spotctl.dashboard.reads import Reader, ReadError
from spotctl.models import JobStatus
from spotctl.models.pool import valid_pool_name

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
DEFAULT_ROWS = 50
"""Jobs the jobs page lists unless told otherwise (as `status`)."""
MAX_ROWS = 500
"""The most jobs one page lists (`limit`): more is `status --limit N` or `--json`."""
MAX_NAME = 255
"""The longest job name a filter takes (a job's name is at most this long)."""
MAX_ID = 2**53
"""The largest job id a page takes (beyond it is no id the allocator hands out)."""
LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "::1", "[::1]"]
"""The Host headers a loopback dashboard answers: a page of another site that resolves its own
name to 127.0.0.1 (DNS rebinding) gets a 400, not the jobs."""
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                               "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class BadInput(Exception):
    """A query parameter the page cannot take: 400, this one line."""


def _int(request: Request, key: str, lo: int, hi: int, default: int | None = None) -> int | None:
    raw = request.query_params.get(key, "")
    if raw == "":
        return default
    if not (raw.isdigit() and len(raw) <= len(str(hi))) or not lo <= int(raw) <= hi:
        raise BadInput(f"{key} must be a whole number from {lo:,} to {hi:,}, not {raw[:40]!r}"
                       + ("..." if len(raw) > 40 else ""))
    return int(raw)


def _status(request: Request) -> str | None:
    raw = request.query_params.get("status", "")
    if raw in ("", "all"):
        return None
    if raw == UNFINISHED or raw in JobStatus.__members__:
        return raw
    raise BadInput(f"status must be one of all, {UNFINISHED}, {', '.join(JobStatus.__members__)}; not {raw[:40]!r}")


def _name(request: Request) -> str | None:
    raw = request.query_params.get("name", "")
    if raw == "":
        return None
    if len(raw) > MAX_NAME or _CONTROL.search(raw):
        raise BadInput(f"name must be at most {MAX_NAME} characters, with no control characters")
    return raw


def _pool(request: Request) -> str | None:
    raw = request.query_params.get("pool", "")
    if raw == "":
        return None
    if not valid_pool_name(raw):
        raise BadInput("pool must be a pool's name: lower-case letters, digits and '-', at most 63")
    return raw


def _job_id(request: Request) -> int:
    raw = request.path_params["job_id"]
    if not 1 <= raw <= MAX_ID:
        raise BadInput(f"a job id is from 1 to {MAX_ID:,}")
    return int(raw)


def _api(handler: Callable[[Reader, Request], Awaitable[dict[str, Any]]]) -> Callable[[Request], Awaitable[Response]]:
    """A JSON endpoint: its answer, or `{"error": one line}` with a fitting status."""

    async def endpoint(request: Request) -> Response:
        try:
            return JSONResponse(await handler(request.app.state.reader, request), headers=SECURITY_HEADERS)
        except BadInput as exc:
            return _error(str(exc), 400)
        except ArrayNotFound as exc:
            return _error(str(exc), 404)
        except ReadError as exc:
            return _error(str(exc), exc.status)
        except Exception as exc:  # the page says what failed; the server's log keeps the traceback
            log.exception("dashboard request %s failed", request.url.path)
            return _error(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'failed'}"[:300], 500)

    return endpoint


def _error(message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=SECURITY_HEADERS)


async def _jobs(reader: Reader, request: Request) -> dict[str, Any]:
    return await reader.jobs(limit=_int(request, "limit", 1, MAX_ROWS, DEFAULT_ROWS) or DEFAULT_ROWS,
                             status=_status(request), name=_name(request), array=_int(request, "array", 1, MAX_ID),
                             pool=_pool(request))


async def _job(reader: Reader, request: Request) -> dict[str, Any]:
    return await reader.job(_job_id(request))


async def _log(reader: Reader, request: Request) -> dict[str, Any]:
    return await reader.log_tail(_job_id(request))


async def _fleet(reader: Reader, request: Request) -> dict[str, Any]:
    return await reader.fleet()


async def _about(reader: Reader, request: Request) -> dict[str, Any]:
    return {"temporal_ui": reader.workflow_url(), "max_rows": MAX_ROWS, "default_rows": DEFAULT_ROWS,
            "statuses": [UNFINISHED, *JobStatus.__members__]}


def _page(name: str) -> Callable[[Request], Awaitable[Response]]:
    async def page(request: Request) -> Response:
        if "job_id" in request.path_params:
            try:
                _job_id(request)
            except BadInput as exc:
                return Response(str(exc), status_code=400, media_type="text/plain")
        return FileResponse(STATIC / name, headers=SECURITY_HEADERS)

    return page


def create_app(reader: Reader, *, loopback: bool = True) -> Starlette:
    """The app over `reader`; `loopback`: answer only loopback Host headers (see LOOPBACK_HOSTS)."""
    routes = [
        Route("/", _page("jobs.html")),
        Route("/jobs/{job_id:int}", _page("job.html")),
        Route("/fleet", _page("fleet.html")),
        Route("/api/about", _api(_about)),
        Route("/api/jobs", _api(_jobs)),
        Route("/api/jobs/{job_id:int}", _api(_job)),
        Route("/api/jobs/{job_id:int}/log", _api(_log)),
        Route("/api/fleet", _api(_fleet)),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=LOOPBACK_HOSTS)] if loopback else []
    app = Starlette(routes=routes, middleware=middleware)
    app.state.reader = reader
    return app
