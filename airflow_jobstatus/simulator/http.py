"""The simulator's HTTP front on aiohttp's server: JSON answers, errors as JSON, start and stop.

aiohttp parses HTTP (keep-alive, pipelining, chunked bodies, malformed requests answered 400);
this module adds what every route shares: JSON helpers, a middleware turning aiohttp's own errors
(404, 405, 413) and handler crashes into ``{"error_code": "SIM.<status>", "error_msg": ...}``, an
``X-Request-Id`` on every answer, and HttpFront (one listening site). The routes live in
``control`` (/_sim/) and ``huawei`` (CDM, DLI); ``server`` puts them together.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

log = logging.getLogger(__name__)

JSON_CONTENT_TYPE = "application/json;charset=UTF-8"
MAX_BODY_BYTES = 8 * 1024 * 1024
KEEPALIVE_SECONDS = 75.0
SHUTDOWN_SECONDS = 1.0  # in-flight requests (a latency fault) get this long when the server stops
BACKLOG = 4096

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_response(status: int, data: Any, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON answer (``json.dumps`` with its default separators, as the old server wrote it)."""
    return raw_response(status, json.dumps(data).encode(), headers)


def raw_response(status: int, body: bytes, headers: dict[str, str] | None = None) -> web.Response:
    """An answer with these exact body bytes, typed as JSON (truncated and empty bodies included)."""
    return web.Response(
        status=status, body=body, headers={"Content-Type": JSON_CONTENT_TYPE, **(headers or {})}
    )


def sim_error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    """The simulator's own error body (not a cloud service's)."""
    return json_response(status, {"error_code": f"SIM.{status}", "error_msg": message}, headers)


class BadRequest(Exception):
    """A request a handler refuses with 400 and ``message`` (bad JSON, missing field, ...)."""


async def read_json(request: web.Request) -> Any:
    """The body parsed as JSON (``{}`` when empty); BadRequest when it is not JSON."""
    body = await request.read()
    if not body.strip():
        return {}
    try:
        return json.loads(body)
    except ValueError as err:
        raise BadRequest(f"request body is not valid JSON: {err}") from None


@web.middleware
async def errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    """aiohttp's HTTP errors, BadRequest and crashes → the simulator's JSON error body."""
    try:
        return await handler(request)
    except BadRequest as err:
        return sim_error(400, str(err))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = {
            404: f"no route for {request.path}",
            405: f"method {request.method} not allowed",
        }.get(exc.status, exc.reason)
        allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return sim_error(exc.status, message, allow)
    except Exception as err:
        log.exception("simulator handler failed for %s %s", request.method, request.path)
        return sim_error(500, f"simulator error: {type(err).__name__}: {err}")


async def _request_id(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.setdefault("X-Request-Id", uuid.uuid4().hex)


def build_app(routes: Iterable[web.RouteDef], middlewares: Iterable[Any] = ()) -> web.Application:
    """An application serving ``routes`` behind errors_as_json and then ``middlewares``."""
    app = web.Application(middlewares=[errors_as_json, *middlewares], client_max_size=MAX_BODY_BYTES)
    app.add_routes(list(routes))
    app.on_response_prepare.append(_request_id)
    return app


class _ServerLog(logging.LoggerAdapter[logging.Logger]):
    """aiohttp's server log, with a malformed request said in one warning line (no traceback)."""

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kwargs: Any) -> None:
        if isinstance(exc_info, HttpProcessingError):
            reason = " ".join(str(exc_info.message).split())
            self.logger.warning("%s: %s", str(msg) % args, reason)
        else:
            self.logger.exception(msg, *args, exc_info=exc_info, **kwargs)


class HttpFront:
    """One aiohttp application listening on (host, port); port 0 picks a free one."""

    def __init__(self, app: web.Application):
        self._runner = web.AppRunner(
            app,
            access_log=None,
            logger=_ServerLog(log, {}),
            keepalive_timeout=KEEPALIVE_SECONDS,
            shutdown_timeout=SHUTDOWN_SECONDS,
        )
        self._site: web.TCPSite | None = None

    async def start(self, host: str, port: int) -> HttpFront:
        """Listen; an OSError (EADDRINUSE when the port is taken) propagates after cleaning up."""
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, backlog=BACKLOG, reuse_address=True)
        try:
            await site.start()
        except BaseException:
            await self._runner.cleanup()
            raise
        self._site = site
        return self

    @property
    def port(self) -> int:
        if self._site is None:
            raise RuntimeError("the HTTP front is not listening")
        return self._site.port

    async def stop(self) -> None:
        """Stop listening and close every connection (in-flight requests get SHUTDOWN_SECONDS)."""
        self._site = None
        await self._runner.cleanup()
