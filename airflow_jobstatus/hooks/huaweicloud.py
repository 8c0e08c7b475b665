"""The Huawei Cloud transport shared by the CDM and DLI hooks: one signer, two HTTP paths, one response handler.

An ``Operation`` (``services/huawei.py``) is signed by ``sign`` (SDK-HMAC-SHA256 exactly as the
official SDK signs it; the tests hold it to the SDK's output and to the simulator's verifier), sent
by ``requests`` (sync) or by a shared ``aiohttp`` session (async), and the answer goes through
``handle_response`` on both paths. The connection is read once per process per connection id and
kept ``CONFIG_TTL_SECONDS`` (dropped on an authentication error).

No exception this module raises keeps another one as its ``__context__``/``__cause__`` (a transport
error or a body may echo request headers, among them the security token): errors are classified
inside ``except`` blocks and raised after them, and every message goes through ``HuaweiConfig.scrub``.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import hmac
import json
import math
import re
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote, unquote, urlsplit

from airflow_jobstatus.exceptions import (
    AuthenticationError,
    BadRequestError,
    BadResponseError,
    ConfigurationError,
    JobNotFoundError,
    ServiceError,
    TransientServiceError,
)
from airflow_jobstatus.hooks.base import DEFAULT_CALL_TIMEOUT, JobStatusHook, R
from airflow_jobstatus.hooks.lazy_import import import_modules, locked
from airflow_jobstatus.hooks.loop_cache import PerLoopCache, env_connection_key
from airflow_jobstatus.services.huawei import Operation, parse_error_body, quote_segment

if TYPE_CHECKING:
    import aiohttp
    import requests
    from airflow.sdk import Connection

CONN_TYPE = "huaweicloud"
DEFAULT_CONN_ID = "huaweicloud_default"
USER_AGENT = "airflow-jobstatus"
#: Statuses worth retrying: throttling, the gateway's and the service's "unavailable", and 409, which
#: CDM and DLI document as "the resource is busy, try again".
TRANSIENT_STATUSES = frozenset({409, 429, 500, 502, 503, 504})
#: How long a connection read stays valid in this process (seconds).
CONFIG_TTL_SECONDS = 60.0
#: Requests in flight per event loop, over every session (and each session's connector limit).
#: Callers beyond it wait here, before their timeout starts, not inside the connection pool.
MAX_IN_FLIGHT = 100
_MAX_DETAIL = 500
_FALSE_STRINGS = frozenset({"false", "0", "no", "off", ""})
_URL_CREDENTIALS = re.compile(r"(?<=//)[^/@\s:]+:[^/@\s]+@")

#: What this process created or read, by kind: "requests_sessions", "aiohttp_sessions",
#: "connection_reads". Tests check reuse with it.
COUNTERS: Counter[str] = Counter()


def counters() -> dict[str, int]:
    """A copy of the per-process counters."""
    return dict(COUNTERS)


def _mask(secret: str) -> None:
    """Register a secret with Airflow's secrets masker so it never shows in logs."""
    try:
        from airflow.sdk.log import mask_secret
    except ImportError:  # pragma: no cover - older task SDKs
        from airflow.sdk.execution_time.secrets_masker import mask_secret  # type: ignore[no-redef]
    mask_secret(secret)


def _as_bool(value: Any, default: bool = True) -> bool:
    """A boolean extra that may arrive as a JSON bool or a string such as "false"."""
    if value is None:
        return default
    if isinstance(value, str):
        return value.strip().lower() not in _FALSE_STRINGS
    return bool(value)


def _with_scheme(endpoint: str) -> str:
    """Endpoint with https:// added when it has no scheme (as the SDK does), without a trailing slash."""
    endpoint = endpoint.strip().rstrip("/")
    return endpoint if endpoint.startswith(("http://", "https://")) else f"https://{endpoint}"


def _redact_url(url: str) -> str:
    return _URL_CREDENTIALS.sub("***@", url)


def _proxy_url(conn_id: str, value: Any) -> str | None:
    """The ``proxy`` extra as ``http(s)://[user:password@]host[:port]``; its password is masked."""
    if not value:
        return None
    text = str(value).strip().rstrip("/")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("",):
        raise ConfigurationError(
            f"Connection {conn_id!r}: 'proxy' must be http(s)://host:port, got {_redact_url(text)!r}."
        )
    if parts.password:
        _mask(parts.password)
    return text


@dataclass(frozen=True)
class HuaweiConfig:
    """What a huaweicloud connection says; the secret fields are left out of repr."""

    conn_id: str
    ak: str
    sk: str = field(repr=False)
    project_id: str
    region: str | None = None
    endpoints: dict[str, str] = field(default_factory=dict)
    verify_ssl: bool = True
    security_token: str | None = field(default=None, repr=False)
    #: ``http(s)://host:port`` both paths send through; None: the environment's proxy, if any.
    proxy: str | None = field(default=None, repr=False)
    #: What this (cached) config has worked out once and reuses on every request: the proxy per
    #: endpoint origin. It lives as long as the config (CONFIG_TTL_SECONDS).
    _memo: dict[Any, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    @classmethod
    def from_connection(cls, conn: Connection) -> HuaweiConfig:
        """Validate a connection: AK, SK and project_id are required; secrets are masked at once."""
        conn_id = conn.conn_id
        extra = conn.extra_dejson or {}

        def get(key: str) -> Any:
            value = extra.get(key, extra.get(f"extra__{CONN_TYPE}__{key}"))
            return value.strip() if isinstance(value, str) else value

        sk = (conn.password or "").strip()
        token = get("security_token") or None
        for secret in (sk, token):
            if secret:
                _mask(secret)
        ak = (conn.login or "").strip()
        if not ak or not sk:
            raise ConfigurationError(
                f"Connection {conn_id!r} needs the access key (AK) in login and the secret key (SK) in "
                "password."
            )
        project_id = get("project_id")
        if not project_id:
            raise ConfigurationError(
                f"Connection {conn_id!r} needs 'project_id' in its extras: the project the jobs live in."
            )
        endpoints = {
            k: _with_scheme(v) for k in ("endpoint", "cdm_endpoint", "dli_endpoint") if (v := get(k))
        }
        return cls(
            conn_id=conn_id,
            ak=ak,
            sk=sk,
            project_id=str(project_id),
            region=get("region") or None,
            endpoints=endpoints,
            verify_ssl=_as_bool(get("verify_ssl")),
            security_token=token,
            proxy=_proxy_url(conn_id, get("proxy")),
        )

    def endpoint(self, service: str) -> str:
        """The service's endpoint: `endpoint` overrides all, then `<service>_endpoint`, then the region's."""
        found = self.endpoints.get("endpoint") or self.endpoints.get(f"{service}_endpoint")
        if found:
            return found
        if not self.region:
            raise ConfigurationError(
                f"Connection {self.conn_id!r} needs 'region' in its extras (or 'endpoint' / "
                f"'{service}_endpoint') to reach {service.upper()}."
            )
        return f"https://{service}.{self.region}.myhuaweicloud.com"

    def proxy_for(self, url: str) -> str | None:
        """The proxy for ``url``: the connection's, else HTTP(S)_PROXY unless NO_PROXY covers the host.

        The environment is read once per endpoint origin and config (reading it scans os.environ
        twice: it cost more than the rest of a poll).
        """
        if self.proxy:
            return self.proxy
        parts = urlsplit(url)
        key = ("proxy", parts.scheme, parts.netloc)
        try:
            return self._memo[key]  # type: ignore[no-any-return]
        except KeyError:
            pass
        from requests.utils import get_environ_proxies

        proxy = self._memo[key] = get_environ_proxies(url).get(parts.scheme)
        return proxy

    def scrub(self, text: str) -> str:
        """The text with the SK, the security token and URL credentials replaced: a last line of defence."""
        for secret in (self.sk, self.security_token):
            if secret:
                text = text.replace(secret, "***")
        return _redact_url(text)


# ---- the connection read cache ---------------------------------------------------------------------

_CacheKey = tuple[str, str]


def _cache_key(conn_id: str) -> _CacheKey:
    """The connection id, and a digest of its AIRFLOW_CONN_* variable: changing the variable is a miss."""
    return env_connection_key(conn_id)


class _ConfigCache:
    """Parsed connections by cache key, each valid CONFIG_TTL_SECONDS (thread-safe)."""

    def __init__(self) -> None:
        self._entries: dict[_CacheKey, tuple[float, HuaweiConfig]] = {}
        self._lock = threading.Lock()

    def get(self, key: _CacheKey) -> HuaweiConfig | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if time.monotonic() - entry[0] >= CONFIG_TTL_SECONDS:
                del self._entries[key]
                return None
            return entry[1]

    def put(self, key: _CacheKey, config: HuaweiConfig) -> HuaweiConfig:
        with self._lock:
            self._entries[key] = (time.monotonic(), config)
        return config

    def drop(self, conn_id: str) -> None:
        with self._lock:
            for key in [k for k in self._entries if k[0] == conn_id]:
                del self._entries[key]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_CONFIGS = _ConfigCache()
#: Async first reads in progress, per loop per cache key: hooks that start together share one read.
_LOADS: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[_CacheKey, asyncio.Future[HuaweiConfig]]
] = weakref.WeakKeyDictionary()
#: Modules the async path uses, imported once in a worker thread (importing the SDK takes a while).
_ASYNC_MODULES = (
    "aiohttp",
    "yarl",
    "requests.utils",  # HuaweiConfig.proxy_for
)
_async_imports_done = False


def clear_config_cache() -> None:
    """Forget every cached connection (tests; a rotated key is otherwise picked up within the TTL)."""
    _CONFIGS.clear()


def _import_async_modules() -> None:
    global _async_imports_done
    import_modules(*_ASYNC_MODULES)  # one thread at a time: see hooks/lazy_import.py
    _async_imports_done = True


# ---- the signer: SDK-HMAC-SHA256, the SDK's canonicalization ---------------------------------------

#: The SDK's date format (X-Sdk-Date) and the SHA-256 of an empty body.
SDK_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
_EMPTY_BODY_SHA256 = hashlib.sha256(b"").hexdigest()
_CONTENT_SHA256 = "X-Sdk-Content-Sha256"
#: A path made only of characters the SDK's quoting keeps as they are is its own canonical form.
_PLAIN_PATH = re.compile(r"[A-Za-z0-9_.~/-]*")
_date: tuple[int, str] = (0, "")


@dataclass(frozen=True)
class SignedRequest:
    """A request ready to send: the URL exactly as signed (already encoded), headers and body."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None


def sdk_date() -> str:
    """X-Sdk-Date for now (UTC, to the second; formatted once per second)."""
    global _date
    second = int(time.time())
    if _date[0] != second:
        _date = (second, time.strftime(SDK_DATE_FORMAT, time.gmtime(second)))
    return _date[1]


def _sdk_quote(text: str) -> str:
    return quote(text, safe="~")


def _canonical_uri(path: str) -> str:
    """The path as the SDK signs it: decoded, each segment quoted (``~`` kept), with a trailing ``/``."""
    if _PLAIN_PATH.fullmatch(path) is None:
        path = "/".join(_sdk_quote(segment) for segment in unquote(path).split("/"))
    return path if path.endswith("/") else path + "/"


def _canonical_query(query: tuple[tuple[str, str], ...]) -> str:
    """The query as the SDK signs and sends it: pairs sorted, ``k=v`` quoted, joined with ``&``."""
    return "&".join(f"{_sdk_quote(k)}={_sdk_quote(str(v))}" for k, v in sorted(query))


def _signature(config: HuaweiConfig, date: str, canonical_request: str) -> str:
    digest = hashlib.sha256(canonical_request.encode()).hexdigest()
    return hmac.digest(config.sk.encode(), f"SDK-HMAC-SHA256\n{date}\n{digest}".encode(), "sha256").hex()


def _sent_value(value: Any) -> tuple[str, str]:
    """(the value as signed: stripped, the value as sent: its UTF-8 bytes read as Latin-1), as the SDK."""
    text = str(value).strip()
    return text, text if text.isascii() else text.encode("utf-8").decode("iso-8859-1")


@dataclass(frozen=True)
class _SigningBase:
    """What every request of one connection to one endpoint signs alike (see ``sign``)."""

    scheme: str
    netloc: str
    path_prefix: str
    project_segment: str
    #: The headers before X-Sdk-Date, as sent.
    headers: dict[str, str]
    #: The canonical header lines before and after x-sdk-date, and the signed header names.
    lines_before_date: str
    lines_after_date: str
    signed_names: str


def _signing_base(config: HuaweiConfig, endpoint: str) -> _SigningBase:
    """The config's ``_SigningBase`` for ``endpoint`` (worked out once per config and endpoint)."""
    key = ("signing", endpoint)
    base: _SigningBase | None = config._memo.get(key)
    if base is None:
        parts = urlsplit(endpoint)
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        headers["X-Project-Id"] = config.project_id
        if config.security_token:
            headers["X-Security-Token"] = config.security_token
        signed = {name.lower(): _sent_value(value) for name, value in headers.items()}
        signed["host"] = _sent_value(parts.netloc)
        names = sorted([*signed, "x-sdk-date"])
        at = names.index("x-sdk-date")
        base = config._memo[key] = _SigningBase(
            scheme=parts.scheme,
            netloc=parts.netloc,
            path_prefix=parts.path.rstrip("/"),
            project_segment=quote_segment(config.project_id),
            headers={name: _sent_value(value)[1] for name, value in headers.items()},
            lines_before_date="".join(f"{n}:{signed[n][0]}\n" for n in names[:at]),
            lines_after_date="".join(f"{n}:{signed[n][0]}\n" for n in names[at + 1 :]),
            signed_names=";".join(names),
        )
    return base


def sign(op: Operation, config: HuaweiConfig, endpoint: str) -> SignedRequest:
    """``op`` against ``endpoint``, signed SDK-HMAC-SHA256 (AK/SK).

    The algorithm and canonicalization are the official SDK's (``huaweicloudsdkcore``'s ``Signer``
    with ``BasicCredentials``): the same headers (X-Project-Id, X-Security-Token when set, X-Sdk-Date,
    Host), every header signed, the same URL with the canonical query string. The tests check that
    the result is the SDK's, byte for byte, and that the simulator's own verifier accepts it. Written
    out because the SDK's signer cost more CPU per poll than the rest of our request code together
    (benchmarks/results/notes.md); what does not change between requests is worked out once.
    """
    base = _signing_base(config, endpoint)
    if op.extra_headers:
        return _sign_generic(op, config, endpoint)
    path = base.path_prefix + op.path.replace("{project_id}", base.project_segment)
    body = None if op.body is None else json.dumps(op.body, separators=(",", ":")).encode()
    date = sdk_date()
    query = _canonical_query(op.query) if op.query else ""
    canonical = (
        f"{op.method.upper()}\n{_canonical_uri(path)}\n{query}\n"
        f"{base.lines_before_date}x-sdk-date:{date}\n{base.lines_after_date}\n{base.signed_names}\n"
        f"{hashlib.sha256(body).hexdigest() if body else _EMPTY_BODY_SHA256}"
    )
    headers = base.headers.copy()
    headers["X-Sdk-Date"] = date
    headers["Host"] = base.netloc
    headers["Authorization"] = (
        f"SDK-HMAC-SHA256 Access={config.ak}, SignedHeaders={base.signed_names}, "
        f"Signature={_signature(config, date, canonical)}"
    )
    url = f"{base.scheme}://{base.netloc}{path}" + (f"?{query}" if query else "")
    return SignedRequest(op.method, url, headers, body)


def _sign_generic(op: Operation, config: HuaweiConfig, endpoint: str) -> SignedRequest:
    """``sign`` for an operation with headers of its own (any header, any Content-Type), step by step."""
    parts = urlsplit(endpoint)
    path = parts.path.rstrip("/") + op.path.replace("{project_id}", quote_segment(config.project_id))
    body = None if op.body is None else json.dumps(op.body, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
    for name, value in op.extra_headers:
        headers[name] = value
    headers["X-Project-Id"] = config.project_id
    if config.security_token:
        headers["X-Security-Token"] = config.security_token
    lower = {k.lower(): k for k in headers}
    content_type = headers.get(lower.get("content-type", ""))
    if content_type and not content_type.startswith(("application/json", "application/bson")):
        headers[_CONTENT_SHA256] = "UNSIGNED-PAYLOAD"
    date = headers.get(lower.get("x-sdk-date", "")) or sdk_date()
    if "x-sdk-date" not in lower:
        headers["X-Sdk-Date"] = date
    if "host" not in lower:
        headers["Host"] = parts.netloc
    canonical: dict[str, str] = {}
    for name, value in list(headers.items()):
        canonical[name.lower()], headers[name] = _sent_value(value)
    signed_names = sorted(name.lower() for name in headers if "_" not in name)
    if not body:
        payload_hash = _EMPTY_BODY_SHA256
    else:
        payload_hash = canonical.get("x-sdk-content-sha256") or hashlib.sha256(body).hexdigest()
    query = _canonical_query(op.query)
    signed_list = ";".join(signed_names)
    request = "\n".join(
        (
            op.method.upper(),
            _canonical_uri(path),
            query,
            "".join(f"{name}:{canonical[name]}\n" for name in signed_names),
            signed_list,
            payload_hash,
        )
    )
    headers["Authorization"] = (
        f"SDK-HMAC-SHA256 Access={config.ak}, SignedHeaders={signed_list}, "
        f"Signature={_signature(config, date, request)}"
    )
    url = f"{parts.scheme}://{parts.netloc}{path}" + (f"?{query}" if query else "")
    return SignedRequest(op.method, url, headers, body)


# ---- the response handler, shared by both paths -----------------------------------------------------


def _keep(text: str) -> str:
    return text


def _header(headers: Mapping[str, str], name: str) -> str | None:
    name = name.lower()
    return next((str(v) for k, v in headers.items() if k.lower() == name), None)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delay-seconds or an HTTP date); None when absent/invalid."""
    if not value or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - (now or datetime.now(timezone.utc))).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _json_object(body: bytes) -> tuple[dict[str, Any], str | None]:
    """The body as a JSON object, or ({}, why it is not one)."""
    if not body.strip():
        return {}, "empty body"
    try:
        data = json.loads(body)
    except ValueError:
        return {}, f"not JSON ({len(body)} bytes: truncated or garbled)"
    if not isinstance(data, dict):
        return {}, f"expected a JSON object, got {type(data).__name__}"
    return data, None


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_DETAIL else text[:_MAX_DETAIL] + "…"


def http_error(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    op: Operation,
    *,
    service: str,
    where: str = "",
    scrub: Callable[[str], str] = _keep,
) -> ServiceError:
    """The provider error for a non-2xx answer, keeping the service's own error code and message."""
    code, message = parse_error_body(body)
    if code is None and message is None:
        message = body.decode("utf-8", "replace").strip() or None
    detail = _clip(scrub(message or "no message"))
    kw: dict[str, Any] = {"service": service, "job_id": op.job_id, "code": code or status}
    text = scrub(f"{op.action} for job {op.job_id!r} failed with HTTP {status}: {detail}")
    unknown_job = status == 400 and code is not None and code in op.not_found_codes  # e.g. DLI's DLI.0002
    if status in (401, 403):
        return AuthenticationError(f"{text} (check the connection's AK/SK and project_id)", **kw)
    if status == 404 or unknown_job:
        place = f" in {where}" if where else ""
        return JobNotFoundError(scrub(f"job {op.job_id!r} not found{place} (HTTP {status}: {detail})"), **kw)
    if status in TRANSIENT_STATUSES or status >= 500:
        return TransientServiceError(
            text, retry_after=parse_retry_after(_header(headers, "Retry-After")), **kw
        )
    if 400 <= status < 500:
        return BadRequestError(text, **kw)
    return ServiceError(f"{text} (unexpected status: check the endpoint)", **kw)


def handle_response(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    op: Operation,
    *,
    service: str,
    where: str = "",
    scrub: Callable[[str], str] = _keep,
) -> dict[str, Any]:
    """The JSON object of a 2xx answer; a ServiceError for anything else (see ``http_error``).

    A 2xx whose body is not a JSON object is a BadResponseError when ``op.body_required``, else ``{}``.
    """
    if not 200 <= status < 300:
        raise http_error(status, headers, body, op, service=service, where=where, scrub=scrub)
    data, problem = _json_object(body)
    if problem is None:
        return data
    if not op.body_required:
        return {}
    raise BadResponseError(
        scrub(f"{op.action} for job {op.job_id!r}: unparseable answer (HTTP {status}): {problem}"),
        service=service,
        job_id=op.job_id,
    )


def _transport_error(
    op: Operation, service: str, kind: str, reason: str, scrub: Callable[[str], str]
) -> TransientServiceError:
    what = "timed out" if kind == "timeout" else "connection error"
    return TransientServiceError(
        _clip(scrub(f"{op.action} for job {op.job_id!r} failed: {what}: {reason}")),
        service=service,
        job_id=op.job_id,
        code=kind,
    )


def requests_failure(
    exc: Exception, op: Operation, *, service: str, timeout: float, scrub: Callable[[str], str] = _keep
) -> TransientServiceError:
    """A ``requests`` exception (timeout, refused, reset, proxy, TLS) as a transient error."""
    import requests

    if isinstance(exc, requests.Timeout):
        return _transport_error(op, service, "timeout", f"no answer within {timeout:g} s ({exc})", scrub)
    return _transport_error(op, service, "connection", f"{type(exc).__name__}: {exc}", scrub)


def aiohttp_failure(
    exc: BaseException, op: Operation, *, service: str, timeout: float, scrub: Callable[[str], str] = _keep
) -> TransientServiceError:
    """An ``aiohttp`` exception or a timeout as a transient error."""
    if isinstance(exc, TimeoutError):
        return _transport_error(op, service, "timeout", f"no answer within {timeout:g} s", scrub)
    return _transport_error(op, service, "connection", f"{type(exc).__name__}: {exc}", scrub)


@dataclass(frozen=True)
class _Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes


# ---- the async path: one aiohttp session per loop per (origin, verify_ssl, proxy) -----------------

_SessionKey = tuple[str, bool, str | None]
_SESSIONS: PerLoopCache[_SessionKey, aiohttp.ClientSession] = PerLoopCache()
_GATES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()


def _request_gate() -> asyncio.Semaphore:
    """This loop's cap on concurrent Huawei requests (shared by every session and trigger)."""
    loop = asyncio.get_running_loop()
    gate = _GATES.get(loop)
    if gate is None:
        gate = _GATES[loop] = asyncio.Semaphore(MAX_IN_FLIGHT)
    return gate


def _route(config: HuaweiConfig, service: str) -> tuple[str, str | None, _SessionKey]:
    """(endpoint, proxy, session key) of ``service`` for this config: worked out once per config."""
    route: tuple[str, str | None, _SessionKey] | None = config._memo.get(("route", service))
    if route is None:
        endpoint = config.endpoint(service)
        proxy = config.proxy_for(endpoint)
        parts = urlsplit(endpoint)
        route = config._memo[("route", service)] = (
            endpoint,
            proxy,
            (f"{parts.scheme}://{parts.netloc}", config.verify_ssl, proxy),
        )
    return route


async def _aiohttp_session(url: str, verify_ssl: bool, proxy: str | None) -> aiohttp.ClientSession:
    """The shared session for this loop and (scheme://host, verify_ssl, proxy), created on first use."""
    parts = urlsplit(url)
    key = (f"{parts.scheme}://{parts.netloc}", verify_ssl, proxy)
    session = _SESSIONS.values().get(key)
    if session is not None and not session.closed:
        return session
    return await _SESSIONS.get(key, _build_session, usable=lambda session: not session.closed)


async def _build_session() -> aiohttp.ClientSession:
    import aiohttp

    COUNTERS["aiohttp_sessions"] += 1
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=MAX_IN_FLIGHT),
        cookie_jar=aiohttp.DummyCookieJar(),
        trust_env=False,  # proxies come from HuaweiConfig.proxy_for, as on the sync path
    )


async def aclose_sessions() -> None:
    """Close this loop's shared sessions (tests, shutdown)."""
    for session in _SESSIONS.pop_all():
        await session.close()


_TIMEOUTS: dict[float, aiohttp.ClientTimeout] = {}


def _client_timeout(seconds: float) -> aiohttp.ClientTimeout:
    """One (immutable) ``ClientTimeout`` per value, shared by every request."""
    timeout = _TIMEOUTS.get(seconds)
    if timeout is None:
        import aiohttp

        timeout = _TIMEOUTS[seconds] = aiohttp.ClientTimeout(total=seconds)
    return timeout


async def _aiohttp_exchange(
    session: aiohttp.ClientSession,
    signed: SignedRequest,
    *,
    verify_ssl: bool,
    proxy: str | None,
    timeout: float,
) -> _Reply:
    """Send ``signed`` through the loop's gate; aiohttp's exceptions propagate for the caller to classify.

    The per-call timeout starts once the gate admits the call. aiohttp resends an idempotent request
    (GET/PUT/DELETE: reads and cancels here) once when the server closed the connection under it
    (RFC 9112 §9.3.1, a stale keep-alive); start and submit are sync-only, through requests.
    """
    import yarl

    async with (
        _request_gate(),
        session.request(
            signed.method,
            yarl.URL(signed.url, encoded=True),  # exactly the signed path and query
            headers=signed.headers,
            data=signed.body,
            ssl=verify_ssl,
            proxy=proxy,
            timeout=_client_timeout(timeout),
            allow_redirects=False,
        ) as response,
    ):
        return _Reply(response.status, response.headers, await response.read())


class HuaweiCloudHook(JobStatusHook[R]):
    """The ``huaweicloud`` connection type's hook, and the base of the CDM and DLI hooks.

    ``send``/``asend`` perform one ``Operation`` and return the answer's JSON object; subclasses
    build operations with ``services.<service>`` and parse the answers there.
    """

    conn_name_attr = "huaweicloud_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = CONN_TYPE
    hook_name = "Huawei Cloud"
    service: ClassVar[str] = ""

    def __init__(
        self,
        huaweicloud_conn_id: str | None = DEFAULT_CONN_ID,
        timeout: float = DEFAULT_CALL_TIMEOUT,
        **kwargs: Any,
    ):
        super().__init__(huaweicloud_conn_id, timeout=timeout, **kwargs)
        self.huaweicloud_conn_id = self.conn_id
        self._session: requests.Session | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(huaweicloud_conn_id={self.conn_id!r}, timeout={self.timeout})"

    # -- connection -----------------------------------------------------------------------------------

    @property
    def config(self) -> HuaweiConfig:
        """The connection, from the process cache or read now (blocking: use ``aconfig`` from async code)."""
        key = _cache_key(self.conn_id)
        return _CONFIGS.get(key) or _CONFIGS.put(key, self._read_config())

    def _read_config(self) -> HuaweiConfig:
        COUNTERS["connection_reads"] += 1
        return HuaweiConfig.from_connection(self.fetch_connection())

    async def aconfig(self) -> HuaweiConfig:
        """``config`` without blocking the loop: a first read (and the SDK import) runs in a worker thread,
        shared by every hook of this loop that needs it at the same time."""
        key = _cache_key(self.conn_id)
        cached = _CONFIGS.get(key)
        if cached is not None and _async_imports_done:
            return cached
        loads = _LOADS.setdefault(asyncio.get_running_loop(), {})
        load = loads.get(key)
        if load is None:
            load = loads[key] = asyncio.ensure_future(asyncio.to_thread(self._load_for_async))
            load.add_done_callback(lambda done: loads.pop(key, None) if loads.get(key) is done else None)
        return await asyncio.shield(load)

    def _load_for_async(self) -> HuaweiConfig:
        # Worker thread: the first read imports lazily (proxies, secrets backends), one thread at a time.
        with locked():
            _import_async_modules()
            return self.config

    def console_scope(self) -> str | None:
        """The connection's region (the Huawei console needs it)."""
        return self.config.region

    def _where(self, config: HuaweiConfig) -> str:
        where = f"{self.service.upper()} project {config.project_id!r} at {config.endpoint(self.service)}"
        return where + (f" (region {config.region})" if config.region else "")

    def _finish(self, config: HuaweiConfig, reply: _Reply, op: Operation) -> dict[str, Any]:
        """``handle_response`` on the reply; an authentication error also drops the cached connection."""
        ok = 200 <= reply.status < 300  # "where" only goes into errors: not built on every poll
        try:
            data = handle_response(
                reply.status,
                reply.headers,
                reply.body,
                op,
                service=self.service,
                where="" if ok else self._where(config),
                scrub=config.scrub,
            )
        except AuthenticationError:
            _CONFIGS.drop(self.conn_id)  # a rotated key is read at the next call
            raise  # the same error object, re-raised: no context is added
        if not op.is_read:
            self.log.info("%s: %s for %s done.", self.service.upper(), op.action, op.job_id)
        return data

    # -- sync: requests -------------------------------------------------------------------------------

    @property
    def session(self) -> requests.Session:
        """This hook's HTTP session, created on first use and reused."""
        if self._session is None:
            import requests

            self._session = requests.Session()
            # Settings come from the connection only, as on the async path: no .netrc auth (it would
            # replace the signature), no environment CA bundle; proxies are passed per request.
            self._session.trust_env = False
            COUNTERS["requests_sessions"] += 1
        return self._session

    def get_conn(self) -> requests.Session:
        return self.session

    def send(self, op: Operation) -> dict[str, Any]:
        """Perform ``op`` (blocking); its answer's JSON object."""
        import requests

        config = self.config
        signed = sign(op, config, config.endpoint(self.service))
        proxy = config.proxy_for(signed.url)
        failure: ServiceError | None = None
        try:
            response = self.session.request(
                signed.method,
                signed.url,
                headers=signed.headers,
                data=signed.body,
                timeout=(self.timeout, self.timeout),
                verify=config.verify_ssl,
                proxies={"http": proxy, "https": proxy} if proxy else {},
                allow_redirects=False,
            )
            reply = _Reply(response.status_code, response.headers, response.content)
        except requests.RequestException as exc:
            failure = requests_failure(
                exc, op, service=self.service, timeout=self.timeout, scrub=config.scrub
            )
        if failure is not None:
            raise failure  # outside the except block: the requests exception is not its context
        return self._finish(config, reply, op)

    # -- async: aiohttp -------------------------------------------------------------------------------

    async def asend(self, op: Operation) -> dict[str, Any]:
        """Perform ``op`` without blocking the event loop; its answer's JSON object."""
        import aiohttp

        config = await self.aconfig()
        endpoint, proxy, key = _route(config, self.service)
        signed = sign(op, config, endpoint)
        session = _SESSIONS.values().get(key)
        if session is None or session.closed:
            session = await _aiohttp_session(signed.url, config.verify_ssl, proxy)
        failure: ServiceError | None = None
        try:
            reply = await _aiohttp_exchange(
                session, signed, verify_ssl=config.verify_ssl, proxy=proxy, timeout=self.timeout
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            failure = aiohttp_failure(exc, op, service=self.service, timeout=self.timeout, scrub=config.scrub)
        if failure is not None:
            raise failure  # outside the except block: the aiohttp exception is not its context
        return self._finish(config, reply, op)
