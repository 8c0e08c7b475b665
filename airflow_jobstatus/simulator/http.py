"""A minimal asyncio HTTP/1.1 server (keep-alive, Content-Length bodies, regex routes) and the /_sim/ API."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from airflow_jobstatus.simulator.core import SimulatorCore

log = logging.getLogger(__name__)

MAX_HEAD_BYTES = 64 * 1024
MAX_BODY_BYTES = 8 * 1024 * 1024
KEEPALIVE_SECONDS = 75.0
READ_BODY_SECONDS = 30.0
_TOKEN = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


class HttpError(Exception):
    """A request the server refuses before routing; answered with ``status`` and the connection closed."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Request:
    """One parsed request: the raw path (for signatures), decoded query pairs, lower-cased headers."""

    method: str
    target: str
    path: str
    query_string: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: bytes
    version: str = "HTTP/1.1"
    params: dict[str, str] = field(default_factory=dict)

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    def query_value(self, name: str) -> str | None:
        """The first value of query parameter ``name``."""
        return next((v for k, v in self.query if k == name), None)

    def json(self) -> Any:
        """The body parsed as JSON (``{}`` when empty); HttpError 400 when it is not JSON."""
        if not self.body.strip():
            return {}
        try:
            return json.loads(self.body)
        except ValueError as err:
            raise HttpError(400, f"request body is not valid JSON: {err}") from None


@dataclass
class Response:
    """What to answer; ``drop`` closes the connection without answering at all."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json;charset=UTF-8"
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False
    close: bool = False


def json_response(status: int, data: Any, headers: dict[str, str] | None = None) -> Response:
    """A JSON response."""
    return Response(status=status, body=json.dumps(data).encode(), headers=dict(headers or {}))


Handler = Callable[[Request], Awaitable[Response]]


class Router:
    """Routes by method and a full-match regex on the raw path; named groups land, unquoted, in ``params``."""

    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        self._routes.append((method.upper(), re.compile(pattern), handler))

    def extend(self, routes: Sequence[tuple[str, str, Handler]]) -> None:
        for method, pattern, handler in routes:
            self.add(method, pattern, handler)

    async def dispatch(self, request: Request) -> Response:
        allowed: list[str] = []
        for method, pattern, handler in self._routes:
            match = pattern.fullmatch(request.path)
            if match is None:
                continue
            if method != request.method:
                allowed.append(method)
                continue
            request.params = {k: unquote(v) for k, v in match.groupdict().items() if v is not None}
            return await handler(request)
        if allowed:
            return json_response(
                405,
                {"error_code": "SIM.405", "error_msg": f"method {request.method} not allowed"},
                {"Allow": ", ".join(sorted(set(allowed)))},
            )
        return json_response(404, {"error_code": "SIM.404", "error_msg": f"no route for {request.path}"})


def _parse_head(head: bytes) -> tuple[str, str, str, dict[str, str]]:
    """Request line and headers of one request head; HttpError 400 on anything malformed."""
    lines = head.lstrip(b"\r\n").split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not _TOKEN.match(parts[0]) or not parts[1]:
        raise HttpError(400, "malformed request line")
    version = parts[2].decode("latin-1")
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        raise HttpError(505 if version.startswith("HTTP/") else 400, f"unsupported version {version!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(b":")
        if not sep or not _TOKEN.match(name):
            raise HttpError(400, "malformed header line")
        key = name.decode("latin-1").lower()
        text = value.strip(b" \t").decode("latin-1")
        if key in headers:
            if key in ("content-length", "host") and headers[key] != text:
                raise HttpError(400, f"conflicting {key} headers")
            text = f"{headers[key]}, {text}" if key not in ("content-length", "host") else text
        headers[key] = text
    return parts[0].decode("ascii"), parts[1].decode("latin-1"), version, headers


def _split_target(target: str) -> tuple[str, str]:
    """Raw path and raw query string of an origin-form or absolute-form target."""
    if target.startswith("/"):
        path, _, query = target.partition("?")
    elif target.lower().startswith(("http://", "https://")):
        parts = urlsplit(target)
        path, query = parts.path or "/", parts.query
    else:
        raise HttpError(400, "unsupported request target")
    return path, query


def _content_length(headers: dict[str, str]) -> int:
    if "transfer-encoding" in headers:
        raise HttpError(411, "chunked/transfer-encoded request bodies are not supported; send Content-Length")
    raw = headers.get("content-length")
    if raw is None:
        return 0
    if not raw.isdigit():
        raise HttpError(400, "invalid Content-Length")
    length = int(raw)
    if length > MAX_BODY_BYTES:
        raise HttpError(413, "request body too large")
    return length


def _encode(response: Response, keep_alive: bool) -> bytes:
    try:
        reason = HTTPStatus(response.status).phrase
    except ValueError:
        reason = "Unknown"
    headers = {
        "Content-Type": response.content_type,
        "Content-Length": str(len(response.body)),
        "X-Request-Id": uuid.uuid4().hex,
        "Connection": "keep-alive" if keep_alive else "close",
        **response.headers,
    }
    head = f"HTTP/1.1 {response.status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return head.encode("latin-1") + b"\r\n" + response.body


class HttpServer:
    """An asyncio.Server plus its open connections, so ``close()`` also ends idle keep-alive clients."""

    def __init__(self, handler: Handler):
        self._handler = handler
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self, host: str, port: int) -> HttpServer:
        self._server = await asyncio.start_server(
            self._serve_connection, host, port, limit=MAX_HEAD_BYTES, backlog=4096, reuse_address=True
        )
        return self

    @property
    def server(self) -> asyncio.Server:
        assert self._server is not None, "server not started"
        return self._server

    @property
    def sockets(self) -> tuple[Any, ...]:
        return tuple(self.server.sockets)

    @property
    def port(self) -> int:
        return int(self.sockets[0].getsockname()[1])

    def is_serving(self) -> bool:
        return self._server is not None and self._server.is_serving()

    def close(self) -> None:
        """Stop listening and close every open connection."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()

    async def wait_closed(self) -> None:
        """Wait for the listener and the connection handlers (cancelled after a second) to finish."""
        if self._server is not None:
            await self._server.wait_closed()
        tasks = [t for t in self._tasks if t is not asyncio.current_task()]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=1.0)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve requests one after the other on one connection until either side closes it."""
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self._writers.add(writer)
        try:
            while await self._serve_one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.TimeoutError, asyncio.CancelledError):
            pass  # the top of the connection's task: a cancellation (shutdown) just ends it
        except Exception:
            log.exception("simulator HTTP connection failed")
        finally:
            self._writers.discard(writer)
            if task is not None:
                self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Read, answer one request; False when the connection must be closed."""
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), KEEPALIVE_SECONDS)
        except asyncio.IncompleteReadError as err:
            if err.partial.strip():
                await self._send(writer, _error(400, "incomplete request head"), keep_alive=False)
            return False
        except asyncio.LimitOverrunError:
            await self._send(writer, _error(431, "request head too large"), keep_alive=False)
            return False
        try:
            method, target, version, headers = _parse_head(head)
            length = _content_length(headers)
            path, query_string = _split_target(target)
            if length and headers.get("expect", "").lower() == "100-continue":
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            body = await asyncio.wait_for(reader.readexactly(length), READ_BODY_SECONDS) if length else b""
            query = parse_qsl(query_string, keep_blank_values=True)
        except HttpError as err:
            await self._send(writer, _error(err.status, err.message), keep_alive=False)
            return False
        except UnicodeDecodeError:
            await self._send(writer, _error(400, "undecodable request"), keep_alive=False)
            return False
        connection = headers.get("connection", "").lower()
        keep_alive = "close" not in connection and (version == "HTTP/1.1" or "keep-alive" in connection)
        request = Request(method, target, path, query_string, query, headers, body, version)
        response = await self._respond(request)
        if response.drop:
            transport = writer.transport
            with contextlib.suppress(Exception):
                transport.abort()
            return False
        keep_alive = keep_alive and not response.close
        await self._send(writer, response, keep_alive, head_only=method == "HEAD")
        return keep_alive

    async def _respond(self, request: Request) -> Response:
        try:
            return await self._handler(request)
        except HttpError as err:
            return _error(err.status, err.message)
        except Exception as err:
            log.exception("simulator handler failed for %s %s", request.method, request.path)
            return _error(500, f"simulator error: {type(err).__name__}: {err}")

    @staticmethod
    async def _send(
        writer: asyncio.StreamWriter, response: Response, keep_alive: bool, head_only: bool = False
    ) -> None:
        data = _encode(response, keep_alive)
        if head_only:
            data = data[: len(data) - len(response.body)]
        writer.write(data)
        await writer.drain()


def _error(status: int, message: str) -> Response:
    return json_response(status, {"error_code": f"SIM.{status}", "error_msg": message})


class ControlApi:
    """The unauthenticated /_sim/ API: health, stats, calls, jobs, faults, default timelines, reset."""

    def __init__(self, core: SimulatorCore):
        self.core = core
        self.router = Router()
        self.router.extend(
            [
                ("GET", r"/_sim/health", self.health),
                ("GET", r"/_sim/stats", self.stats),
                ("GET", r"/_sim/calls", self.calls),
                ("POST", r"/_sim/jobs", self.add_job),
                ("POST", r"/_sim/faults", self.inject_fault),
                ("POST", r"/_sim/default-timelines", self.set_default_timeline),
                ("POST", r"/_sim/reset", self.reset),
            ]
        )

    async def dispatch(self, request: Request) -> Response:
        """Route; a ValueError from the core (bad service, timeline, fault kind) is a 400."""
        try:
            return await self.router.dispatch(request)
        except (ValueError, TypeError, KeyError) as err:
            return _error(400, str(err))

    async def health(self, request: Request) -> Response:
        return json_response(200, {"status": "ok"})

    async def stats(self, request: Request) -> Response:
        return json_response(200, self.core.stats())

    async def calls(self, request: Request) -> Response:
        """``{"count": n, "last": <last request or null>}`` for ``?service=&job_id=``."""
        service = request.query_value("service")
        if not service:
            raise ValueError("query parameter 'service' is required")
        job_id = request.query_value("job_id") or None
        last = self.core.last_request(service, job_id) if job_id else None
        count = self.core.calls(service, job_id)
        return json_response(200, {"service": service, "job_id": job_id, "count": count, "last": last})

    async def add_job(self, request: Request) -> Response:
        """Body ``{service, job_id, timeline, ...where}``; a CDM job with ``timeline: null`` is never started."""
        body = _object(request)
        service, job_id = body.pop("service", None), body.pop("job_id", None)
        timeline = body.pop("timeline", None)
        if not isinstance(service, str) or not isinstance(job_id, str):
            raise ValueError("'service' and 'job_id' are required strings")
        if service == "cdm" and timeline is None:
            self.core.define_cdm_job(job_id, **body)
            return json_response(201, {"service": service, "job_id": job_id, "state": "NEVER_EXECUTED"})
        job = self.core.add_job(service, job_id, timeline, **body)
        return json_response(201, {"service": service, "job_id": job.ref, "state": job.state_at()})

    async def inject_fault(self, request: Request) -> Response:
        """Body ``{kind, count, service, job_id, seconds}``."""
        body = _object(request)
        kind = body.get("kind")
        if not isinstance(kind, str):
            raise ValueError("'kind' is required")
        self.core.inject_fault(
            kind, int(body.get("count", 1)), body.get("service"), body.get("job_id"), body.get("seconds")
        )
        return json_response(201, {"pending": self.core.pending_faults()})

    async def set_default_timeline(self, request: Request) -> Response:
        """Body ``{service, timeline, job_type}``."""
        body = _object(request)
        self.core.set_default_timeline(body["service"], body["timeline"], body.get("job_type"))
        return json_response(200, {"service": body["service"]})

    async def reset(self, request: Request) -> Response:
        self.core.reset()
        return json_response(200, {"reset": True})


def _object(request: Request) -> dict[str, Any]:
    body = request.json()
    if not isinstance(body, dict):
        raise ValueError("the request body must be a JSON object")
    return body


async def start_http_server(sim_core: SimulatorCore, host: str, port: int) -> HttpServer:
    """Serve CDM, DLI (signed) and the /_sim/ control API for ``sim_core``; port 0 picks a free one."""
    from airflow_jobstatus.simulator.huawei import huawei_handler

    control = ControlApi(sim_core)
    huawei = huawei_handler(sim_core)

    async def handle(request: Request) -> Response:
        if request.path == "/_sim" or request.path.startswith("/_sim/"):
            return await control.dispatch(request)
        return await huawei(request)

    return await HttpServer(handle).start(host, port)
