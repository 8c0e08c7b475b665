"""Huawei Cloud plumbing shared by the CDM and DLI hooks: connection, SDK clients, signed asyncio HTTP, errors."""

from __future__ import annotations

import asyncio
import decimal
import importlib
import json
import weakref
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote, urlsplit

from airflow_jobstatus.exceptions import (
    AuthenticationError,
    BadRequestError,
    BadResponseError,
    ConfigurationError,
    JobNotFoundError,
    ServiceError,
    TransientServiceError,
)
from airflow_jobstatus.hooks.base import DEFAULT_CALL_TIMEOUT, JobStatusHook

if TYPE_CHECKING:
    import httpx
    from airflow.sdk import Connection

CONN_TYPE = "huaweicloud"
DEFAULT_CONN_ID = "huaweicloud_default"
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
USER_AGENT = "airflow-jobstatus"
_MAX_BODY_IN_MESSAGE = 500
_FALSE_STRINGS = frozenset({"false", "0", "no", "off", ""})

#: How many clients this process built, by kind ("sdk:cdm", "sdk:dli", "httpx"): tests check reuse.
CLIENTS_CREATED: Counter[str] = Counter()

_HttpxKey = tuple[str, str, str, bool]
#: One httpx.AsyncClient per event loop per (conn_id, endpoint, AK, verify_ssl), shared by every hook.
_ASYNC_CLIENTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[_HttpxKey, httpx.AsyncClient]] = (
    weakref.WeakKeyDictionary()
)
_INFLIGHT_LOADS: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[str, str], asyncio.Future[HuaweiConfig]]
] = weakref.WeakKeyDictionary()
_CLIENT_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


def clients_created() -> dict[str, int]:
    """A copy of the per-process client counters."""
    return dict(CLIENTS_CREATED)


def _mask(secret: str) -> None:
    """Register a secret with Airflow's secrets masker so it never shows in logs."""
    try:
        from airflow.sdk.log import mask_secret
    except ImportError:  # pragma: no cover - older task SDKs
        from airflow.sdk.execution_time.secrets_masker import mask_secret  # type: ignore[no-redef]
    mask_secret(secret)


def _as_bool(value: Any, default: bool = True) -> bool:
    """Read a boolean extra that may arrive as a JSON bool or a string such as "false"."""
    if value is None:
        return default
    if isinstance(value, str):
        return value.strip().lower() not in _FALSE_STRINGS
    return bool(value)


def _with_scheme(endpoint: str) -> str:
    """Endpoint with https:// added when it has no scheme (as the SDK does), without a trailing slash."""
    endpoint = endpoint.strip().rstrip("/")
    return endpoint if endpoint.startswith(("http://", "https://")) else f"https://{endpoint}"


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

    def scrub(self, text: str) -> str:
        """The text with the SK and security token replaced, as a last line of defence."""
        for secret in (self.sk, self.security_token):
            if secret:
                text = text.replace(secret, "***")
        return text


def parse_error_body(text: str | None) -> tuple[str | None, str | None]:
    """(code, message) from a Huawei error body: DLI's error_code/error_msg or CDM's errCode/externalMessage."""
    try:
        data = json.loads(text or "")
    except ValueError:
        return None, None
    if not isinstance(data, dict):
        return None, None
    for code_key, msg_key in (
        ("error_code", "error_msg"),
        ("errCode", "externalMessage"),
        ("errorCode", "errorMsg"),
        ("code", "message"),
    ):
        if code_key in data or msg_key in data:
            code, msg = data.get(code_key), data.get(msg_key)
            return (str(code) if code not in (None, "") else None), (str(msg) if msg is not None else None)
    return None, None


@dataclass(frozen=True)
class CallContext:
    """What a call is about, for error messages: service, job, where it was looked for, the action."""

    service: str
    job_id: str
    where: str
    action: str = "get status"

    def http_error(self, status: int, code: str | None, message: str | None) -> ServiceError:
        """The provider error for an HTTP error status, keeping the service's own code and message."""
        detail = message or "no message"
        if len(detail) > _MAX_BODY_IN_MESSAGE:
            detail = detail[:_MAX_BODY_IN_MESSAGE] + "…"
        text = f"{self.action} for job {self.job_id!r} failed with HTTP {status}: {detail}"
        kw: dict[str, Any] = {"service": self.service, "job_id": self.job_id, "code": code or status}
        if status in TRANSIENT_STATUSES:
            return TransientServiceError(text, **kw)
        if status in (401, 403):
            return AuthenticationError(f"{text} (check the connection's AK/SK and project)", **kw)
        if status == 404:
            return JobNotFoundError(
                f"job {self.job_id!r} not found in {self.where} (HTTP 404: {detail})", **kw
            )
        if 400 <= status < 500:
            return BadRequestError(text, **kw)
        return BadResponseError(text, **kw)

    def transient(self, reason: str, code: str) -> TransientServiceError:
        return TransientServiceError(
            f"{self.action} for job {self.job_id!r} failed: {reason}",
            service=self.service,
            job_id=self.job_id,
            code=code,
        )

    def bad_response(self, reason: str) -> BadResponseError:
        return BadResponseError(
            f"{self.action} for job {self.job_id!r}: unparseable response: {reason}",
            service=self.service,
            job_id=self.job_id,
        )


def sdk_exception_to_error(exc: Exception, ctx: CallContext) -> ServiceError:
    """Classify an exception raised by a Huawei SDK client call."""
    import requests
    from huaweicloudsdkcore.exceptions import exceptions as sdk

    if isinstance(exc, sdk.ServiceResponseException):
        # CDM's errCode/externalMessage body is not parsed by the SDK: error_msg is then the raw body.
        code, message = parse_error_body(exc.error_msg)
        if code is None and message is None:
            sdk_code = str(exc.error_code) if exc.error_code is not None else None
            code = sdk_code if sdk_code != str(exc.status_code) else None
            message = exc.error_msg
        return ctx.http_error(int(exc.status_code), code, message)
    if isinstance(exc, sdk.RequestTimeoutException):
        return ctx.transient(f"timed out: {exc.error_msg}", "timeout")
    if isinstance(exc, sdk.ConnectionException):
        return ctx.transient(f"connection error: {exc.error_msg}", "connection")
    if isinstance(exc, requests.Timeout):
        return ctx.transient(f"timed out: {exc}", "timeout")
    if isinstance(exc, requests.RequestException):
        return ctx.transient(f"connection error: {exc}", "connection")
    if isinstance(exc, sdk.SdkException):
        return ServiceError(
            f"{ctx.action} for job {ctx.job_id!r} failed: {exc.error_msg}",
            service=ctx.service,
            job_id=ctx.job_id,
        )
    raise exc


def plain(value: Any) -> Any:
    """JSON-plain copy: Decimal (the SDK parses floats as Decimal) → float, tuples → lists, models → dicts."""
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if hasattr(value, "to_dict"):
        return plain(value.to_dict())
    return value


def wire_to_attrs(data: Any, model: Any) -> Any:
    """Map wire JSON (dashed/dotted/camel keys) to the SDK model's attribute names, as ``to_dict()`` does.

    The async path gets raw JSON; this makes it the same dict the sync path gets from ``response.to_dict()``,
    so one parser per service serves both.
    """
    if not isinstance(data, dict):
        return data
    package = importlib.import_module(model.__module__.rsplit(".", 1)[0])
    return {
        attr: _wire_value(data.get(model.attribute_map[attr]), type_name, package)
        for attr, type_name in model.openapi_types.items()
    }


def _wire_value(value: Any, type_name: str, package: Any) -> Any:
    if value is None:
        return None
    if type_name.startswith("list[") and isinstance(value, list):
        inner = type_name[5:-1]
        return [_wire_value(v, inner, package) for v in value]
    model = getattr(package, type_name, None)
    if isinstance(model, type) and getattr(model, "openapi_types", None):
        return wire_to_attrs(value, model)
    return value


def _json_body(raw: bytes | str | None, ctx: CallContext, required: bool) -> dict[str, Any]:
    """The body as a JSON object; BadResponseError when it is not one (an optional body may be empty/other)."""
    try:
        data = json.loads(raw or b"")
    except ValueError as err:
        if required:
            raise ctx.bad_response(f"not JSON ({err})") from None
        return {}
    if not isinstance(data, dict):
        if required:
            raise ctx.bad_response(f"expected a JSON object, got {type(data).__name__}")
        return {}
    return data


class HuaweiCloudHook(JobStatusHook):
    """The ``huaweicloud`` connection type's hook, and the base of the CDM and DLI hooks."""

    conn_name_attr = "huaweicloud_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = CONN_TYPE
    hook_name = "Huawei Cloud"
    service: ClassVar[str] = ""
    #: The SDK client class, as "module:Class"; set by each service hook.
    sdk_client_path: ClassVar[str] = ""
    #: SDK model classes ("module:Class") the async path maps responses with; imported off the loop.
    async_models: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        huaweicloud_conn_id: str = DEFAULT_CONN_ID,
        timeout: float = DEFAULT_CALL_TIMEOUT,
        **kwargs: Any,
    ):
        super().__init__(huaweicloud_conn_id, timeout=timeout, **kwargs)
        self.huaweicloud_conn_id = self.conn_id
        self._config: HuaweiConfig | None = None
        self._client: Any = None
        self._credentials: Any = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(huaweicloud_conn_id={self.conn_id!r}, timeout={self.timeout})"

    # -- connection ------------------------------------------------------------------------------------

    @property
    def config(self) -> HuaweiConfig:
        """The connection, read once (blocking: use ``aconfig`` from async code)."""
        if self._config is None:
            self._config = HuaweiConfig.from_connection(self.fetch_connection())
        return self._config

    async def aconfig(self) -> HuaweiConfig:
        """The connection, read once in a worker thread so the event loop never waits on it.

        Hooks of the same class on the same connection that start together share one read.
        """
        if self._config is None:
            inflight = _INFLIGHT_LOADS.setdefault(asyncio.get_running_loop(), {})
            key = (self.conn_id, type(self).__qualname__)
            load = inflight.get(key)
            if load is None:
                load = asyncio.ensure_future(asyncio.to_thread(self._load_for_async))
                inflight[key] = load
                load.add_done_callback(lambda _: inflight.pop(key, None))
            self._config = await asyncio.shield(load)
        return self._config

    def _load_for_async(self) -> HuaweiConfig:
        """Worker thread: read the connection (Airflow allows this from a thread, in triggers too) and
        import the SDK pieces the async path uses, so neither costs the event loop anything."""
        for module in ("httpx", "huaweicloudsdkcore.auth.credentials", "huaweicloudsdkcore.sdk_request"):
            importlib.import_module(module)
        for path in self.async_models:
            _import_attr(path)
        return HuaweiConfig.from_connection(self.fetch_connection())

    def endpoint(self) -> str:
        """This hook's service endpoint (for links and logs)."""
        return self.config.endpoint(self.service)

    def get_conn(self) -> Any:
        """The service's SDK client, built once per hook instance."""
        return self.client

    # -- sync: the SDK client ---------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        """The SDK client (CdmClient/DliClient), built on first use and reused."""
        if self._client is None:
            self._client = self._build_client()
        return self._client

    def _build_client(self) -> Any:
        from huaweicloudsdkcore.http.http_config import HttpConfig

        config = self.config
        endpoint = config.endpoint(self.service)
        client_cls = _import_attr(self.sdk_client_path)
        http_config = HttpConfig.get_default_config()
        http_config.timeout = (self.timeout, self.timeout)
        http_config.retry_times = 0
        http_config.ignore_ssl_verification = not config.verify_ssl
        client = (
            client_cls.new_builder()
            .with_credentials(self._sdk_credentials())
            .with_endpoints([endpoint])
            .with_http_config(http_config)
            .build()
        )
        CLIENTS_CREATED[f"sdk:{self.service}"] += 1
        return client

    def _sdk_credentials(self) -> Any:
        """BasicCredentials with the project id (never resolved over IAM) and the optional token."""
        if self._credentials is None:
            from huaweicloudsdkcore.auth.credentials import BasicCredentials

            config = self.config
            credentials = BasicCredentials(config.ak, config.sk, config.project_id)
            if config.security_token:
                credentials = credentials.with_security_token(config.security_token)
            self._credentials = credentials
        return self._credentials

    def call(
        self, method: str, request: Any, ctx: CallContext, *, require_body: bool = True
    ) -> dict[str, Any]:
        """Call an SDK client method; return ``response.to_dict()`` made JSON-plain, errors classified."""
        client = self.client
        try:
            response = getattr(client, method)(request)
        except Exception as exc:
            raise self._scrubbed(sdk_exception_to_error(exc, ctx)) from None
        # The SDK turns an unparseable body into an empty model: check the raw body ourselves.
        _json_body(getattr(response, "raw_content", None), ctx, required=require_body)
        return plain(response.to_dict())

    def _scrubbed(self, error: ServiceError) -> ServiceError:
        config = self._config
        if config is None:
            return error
        clean = config.scrub(error.message)
        if clean == error.message:
            return error
        return type(error)(clean, service=error.service, job_id=error.job_id, code=error.code)

    # -- async: signed httpx --------------------------------------------------------------------------

    async def arequest(
        self,
        method: str,
        path: str,
        ctx: CallContext,
        *,
        path_params: dict[str, str] | None = None,
        model: str | None = None,
        require_body: bool = True,
    ) -> dict[str, Any]:
        """Send one SDK-HMAC-SHA256-signed request with httpx; return the JSON body mapped like to_dict()."""
        import httpx

        config = await self.aconfig()
        endpoint = config.endpoint(self.service)
        params = {"project_id": config.project_id, **(path_params or {})}
        resource_path = path.format(**{k: quote(str(v), safe="") for k, v in params.items()})
        url, headers = self._sign(method, endpoint, resource_path)
        client = await _async_client(config, endpoint)
        try:
            async with _request_gate():
                response = await client.request(method, url, headers=headers, timeout=self.timeout)
        except httpx.TimeoutException as exc:
            raise self._scrubbed(ctx.transient(f"timed out: {exc!r}", "timeout")) from None
        except httpx.TransportError as exc:
            raise self._scrubbed(ctx.transient(f"connection error: {exc!r}", "connection")) from None
        if response.status_code >= 400:
            code, message = parse_error_body(response.text)
            if code is None and message is None:
                message = response.text
            raise self._scrubbed(ctx.http_error(response.status_code, code, message))
        data = _json_body(response.content, ctx, required=require_body)
        return plain(wire_to_attrs(data, _import_attr(model)) if model else data)

    def _sign(self, method: str, endpoint: str, resource_path: str) -> tuple[str, dict[str, str]]:
        """URL and headers signed by the SDK's own signer (X-Sdk-Date, Host, X-Project-Id, Authorization)."""
        from huaweicloudsdkcore.sdk_request import SdkRequest

        parts = urlsplit(endpoint)
        request = SdkRequest(
            method=method,
            schema=parts.scheme,
            host=parts.netloc,
            resource_path=resource_path,
            query_params=[],
            header_params={"Content-Type": "application/json", "User-Agent": USER_AGENT},
            body=None,
        )
        request = self._sdk_credentials().sign_request(request)
        return request.url, dict(request.header_params)


def _import_attr(path: str) -> Any:
    """Import "module:Attr" (a module already imported costs a dict lookup)."""
    module_name, _, attr = path.partition(":")
    return getattr(importlib.import_module(module_name), attr)


async def _async_client(config: HuaweiConfig, endpoint: str) -> httpx.AsyncClient:
    """The shared httpx client for this loop and (conn_id, endpoint, AK, verify_ssl), built on first use.

    Built in a worker thread: creating the TLS context (CA bundle load) takes tens of milliseconds.
    """
    loop = asyncio.get_running_loop()
    clients = _ASYNC_CLIENTS.setdefault(loop, {})
    key = (config.conn_id, endpoint, config.ak, config.verify_ssl)
    client = clients.get(key)
    if client is not None and not client.is_closed:
        return client
    lock = _CLIENT_LOCKS.setdefault(loop, asyncio.Lock())
    async with lock:  # one build at a time: concurrent first callers wait for it instead of racing
        client = clients.get(key)
        if client is None or client.is_closed:
            client = await asyncio.to_thread(_new_async_client, config.verify_ssl)
            clients[key] = client
            CLIENTS_CREATED["httpx"] += 1
    return client


#: Requests in flight per event loop. httpcore rescans its whole wait queue against every
#: connection on each pool event, so thousands of triggers queued inside httpx cost O(n²) and
#: stall the triggerer (measured: 10,000 triggers collapsed). Queueing here is O(1).
MAX_IN_FLIGHT = 100
_GATES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()


def _request_gate() -> asyncio.Semaphore:
    """This loop's cap on concurrent Huawei requests (shared by every client and trigger)."""
    loop = asyncio.get_running_loop()
    gate = _GATES.get(loop)
    if gate is None:
        gate = _GATES[loop] = asyncio.Semaphore(MAX_IN_FLIGHT)
    return gate


def _new_async_client(verify_ssl: bool) -> httpx.AsyncClient:
    import httpx

    return httpx.AsyncClient(
        verify=verify_ssl,
        # The pool matches the gate, so httpx never queues and connections are kept, not churned.
        limits=httpx.Limits(max_connections=MAX_IN_FLIGHT, max_keepalive_connections=MAX_IN_FLIGHT),
        follow_redirects=False,
    )


async def aclose_async_clients() -> None:
    """Close this loop's shared httpx clients (tests, shutdown)."""
    clients = _ASYNC_CLIENTS.pop(asyncio.get_running_loop(), {})
    for client in clients.values():
        await client.aclose()
