"""The Huawei Cloud transport shared by the CDM and DLI hooks: one signer, two HTTP paths, one response handler.

An ``Operation`` (``services/huawei.py``) is signed by ``sign`` (``huawei_signer.py``: SDK-HMAC-SHA256
exactly as the official SDK signs it), sent by ``requests`` (sync, here) or by a shared ``aiohttp``
session (async, ``huawei_async.py``), and the answer goes through ``handle_response``
(``huawei_responses.py``) on both paths. The connection (``huawei_config.py``) is read once per
process per connection id and kept ``CONFIG_TTL_SECONDS`` (dropped on an authentication error).
This module keeps ``HuaweiCloudHook`` and re-exports the names callers import from it.

No exception these modules raise keeps another one as its ``__context__``/``__cause__`` (a transport
error or a body may echo request headers, among them the security token): errors are classified
inside ``except`` blocks and raised after them, and every message goes through ``HuaweiConfig.scrub``.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_jobstatus.core.exceptions import AuthenticationError, ServiceError
from airflow_jobstatus.hooks.base import DEFAULT_CALL_TIMEOUT, JobStatusHook, R
from airflow_jobstatus.hooks.huawei_async import (
    MAX_IN_FLIGHT,
    SESSIONS,
    aclose_sessions,
    aiohttp_exchange,
    aiohttp_session,
    route_for,
)
from airflow_jobstatus.hooks.huawei_config import (
    CONFIG_TTL_SECONDS,
    CONFIGS,
    CONN_TYPE,
    COUNTERS,
    DEFAULT_CONN_ID,
    CacheKey,
    HuaweiConfig,
    cache_key,
    clear_config_cache,
    counters,
)
from airflow_jobstatus.hooks.huawei_responses import (
    TRANSIENT_STATUSES,
    Reply,
    aiohttp_failure,
    handle_response,
    http_error,
    parse_retry_after,
    requests_failure,
)
from airflow_jobstatus.hooks.huawei_signer import SDK_DATE_FORMAT, USER_AGENT, SignedRequest, sdk_date, sign
from airflow_jobstatus.hooks.lazy_import import import_modules, locked
from airflow_jobstatus.services.huawei import Operation

if TYPE_CHECKING:
    import requests

# What callers import from here (tests, benchmarks, the CDM and DLI hooks). The hook calls ``sign``,
# ``handle_response`` and the failure classifiers through this module's namespace, so patching
# ``huaweicloud.sign`` reaches it; module state (the caches, ``COUNTERS``, the sessions) lives in
# one module each and is only referenced here, so e.g. ``CONFIG_TTL_SECONDS`` is patched on
# ``huawei_config`` and ``sdk_date`` on ``huawei_signer``.
__all__ = [
    "CONFIG_TTL_SECONDS",
    "CONN_TYPE",
    "COUNTERS",
    "DEFAULT_CONN_ID",
    "MAX_IN_FLIGHT",
    "SDK_DATE_FORMAT",
    "TRANSIENT_STATUSES",
    "USER_AGENT",
    "HuaweiCloudHook",
    "HuaweiConfig",
    "SignedRequest",
    "aclose_sessions",
    "aiohttp_failure",
    "clear_config_cache",
    "counters",
    "handle_response",
    "http_error",
    "parse_retry_after",
    "requests_failure",
    "sdk_date",
    "sign",
]

#: Async first reads in progress, per loop per cache key: hooks that start together share one read.
_LOADS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[CacheKey, asyncio.Future[HuaweiConfig]]] = (
    weakref.WeakKeyDictionary()
)
#: Modules the async path uses, imported once in a worker thread (importing the SDK takes a while).
_ASYNC_MODULES = (
    "aiohttp",
    "yarl",
    "requests.utils",  # HuaweiConfig.proxy_for
)
_async_imports_done = False


def _import_async_modules() -> None:
    global _async_imports_done
    import_modules(*_ASYNC_MODULES)  # one thread at a time: see hooks/lazy_import.py
    _async_imports_done = True


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
        key = cache_key(self.conn_id)
        return CONFIGS.get(key) or CONFIGS.put(key, self._read_config())

    def _read_config(self) -> HuaweiConfig:
        COUNTERS["connection_reads"] += 1
        return HuaweiConfig.from_connection(self.fetch_connection())

    async def aconfig(self) -> HuaweiConfig:
        """``config`` without blocking the loop: a first read (and the SDK import) runs in a worker thread,
        shared by every hook of this loop that needs it at the same time."""
        key = cache_key(self.conn_id)
        cached = CONFIGS.get(key)
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

    def _finish(self, config: HuaweiConfig, reply: Reply, op: Operation) -> dict[str, Any]:
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
            CONFIGS.drop(self.conn_id)  # a rotated key is read at the next call
            raise  # the same error object, re-raised: no context is added
        if not op.is_read and op.log_done:
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
            reply = Reply(response.status_code, response.headers, response.content)
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
        endpoint, proxy, key = route_for(config, self.service)
        signed = sign(op, config, endpoint)
        session = SESSIONS.values().get(key)
        if session is None or session.closed:
            session = await aiohttp_session(signed.url, config.verify_ssl, proxy)
        failure: ServiceError | None = None
        try:
            reply = await aiohttp_exchange(
                session, signed, verify_ssl=config.verify_ssl, proxy=proxy, timeout=self.timeout
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            failure = aiohttp_failure(exc, op, service=self.service, timeout=self.timeout, scrub=config.scrub)
        if failure is not None:
            raise failure  # outside the except block: the aiohttp exception is not its context
        return self._finish(config, reply, op)
