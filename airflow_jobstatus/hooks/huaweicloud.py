"""The Huawei Cloud transport shared by the CDM and DLI hooks: one signer, two HTTP paths, one response handler.

An ``Operation`` (``services/huawei.py``) is signed by ``huawei_signer.sign`` (SDK-HMAC-SHA256
exactly as the official SDK signs it), sent by ``requests`` (sync, here) or by a shared ``aiohttp``
session (async, ``huawei_async.py``), and the answer goes through ``handle_response``
(``huawei_responses.py``) on both paths. The connection (``huawei_config.py``) is read once per
process per connection id and kept for the connection cache's TTL (dropped on an authentication error).

No exception these modules raise keeps another one as its ``__context__``/``__cause__`` (a transport
error or a body may echo request headers, among them the security token): errors are classified
inside ``except`` blocks and raised after them, and every message goes through ``HuaweiConfig.scrub``.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from airflow_jobstatus.core.exceptions import AuthenticationError, ServiceError
from airflow_jobstatus.core.states import JobStatus
from airflow_jobstatus.hooks import huawei_signer
from airflow_jobstatus.hooks.base import DEFAULT_CALL_TIMEOUT, JobStatusHook, R, parse_listed
from airflow_jobstatus.hooks.connection_cache import connection_key
from airflow_jobstatus.hooks.huawei_async import SESSIONS, aiohttp_exchange, aiohttp_session, route_for
from airflow_jobstatus.hooks.huawei_config import CONFIGS, CONN_TYPE, DEFAULT_CONN_ID, HuaweiConfig
from airflow_jobstatus.hooks.huawei_responses import Reply, aiohttp_failure, handle_response, requests_failure
from airflow_jobstatus.hooks.lazy_import import import_modules, locked
from airflow_jobstatus.hooks.loop_cache import PerLoopCache
from airflow_jobstatus.services.huawei import Operation

if TYPE_CHECKING:
    import requests

__all__ = ["CONN_TYPE", "DEFAULT_CONN_ID", "HuaweiCloudHook", "HuaweiConfig", "HuaweiService"]

#: Modules the async path uses, imported once in a worker thread (importing them takes a while).
_ASYNC_MODULES = (
    "aiohttp",
    "yarl",
    "requests.utils",  # HuaweiConfig.proxy_for
)
_async_imports_done = False
#: The async modules' import, once per loop, shared by the hooks that need it at the same moment.
_ASYNC_IMPORTS: PerLoopCache[str, bool] = PerLoopCache()


def _import_async_modules() -> bool:
    global _async_imports_done
    import_modules(*_ASYNC_MODULES)  # one thread at a time: see hooks/lazy_import.py
    _async_imports_done = True
    return True


async def _aimport_async_modules() -> None:
    """Import the async path's modules in a worker thread (never on the event loop)."""

    async def build() -> bool:
        return await asyncio.to_thread(_import_async_modules)

    await _ASYNC_IMPORTS.get("async", build)


class HuaweiService(Protocol):
    """What a Huawei service module (``services/<service>.py``) declares for its hook: the operations
    that read and cancel a job, and what their answers mean."""

    def status_op(self, ref: Any, /) -> Operation:
        """The operation that reads the job."""
        ...

    def parse(self, data: Mapping[str, Any], ref: Any, /) -> JobStatus:
        """The status operation's answer as a JobStatus."""
        ...

    def cancel_op(self, ref: Any, /) -> Operation:
        """The operation that cancels (stops) the job."""
        ...

    def check_cancelled(self, data: Mapping[str, Any], ref: Any, /) -> None:
        """Raise when the cancel operation's answer says the service refused."""
        ...


class HuaweiCloudHook(JobStatusHook[R]):
    """The ``huaweicloud`` connection type's hook, and the base of the CDM and DLI hooks.

    ``send``/``asend`` perform one ``Operation`` and return the answer's JSON object; a service hook
    names its service module (``api``), which builds the operations and reads their answers. The
    hook owns its sync HTTP session: ``close()`` it (or use the hook as a context manager) when done;
    a hook dropped without that closes its session when it is garbage-collected.
    """

    conn_name_attr = "huaweicloud_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = CONN_TYPE
    hook_name = "Huawei Cloud"
    service: ClassVar[str] = ""
    api: ClassVar[HuaweiService]
    #: The connection endpoint the service is reached on (``<name>_endpoint``, ``<name>.<region>…``);
    #: empty: the service's own name (DLI Flink jobs set "dli").
    endpoint_service: ClassVar[str] = ""

    def __init__(
        self,
        huaweicloud_conn_id: str | None = DEFAULT_CONN_ID,
        timeout: float = DEFAULT_CALL_TIMEOUT,
        **kwargs: Any,
    ):
        super().__init__(huaweicloud_conn_id, timeout=timeout, **kwargs)
        self.huaweicloud_conn_id = self.conn_id
        self._session: requests.Session | None = None
        self._close_session: weakref.finalize[Any, Any] | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(huaweicloud_conn_id={self.conn_id!r}, timeout={self.timeout})"

    # -- connection -----------------------------------------------------------------------------------

    @property
    def config(self) -> HuaweiConfig:
        """The connection, from the process cache or read now (blocking: use ``aconfig`` from async code)."""
        return CONFIGS.load(connection_key(self.conn_id), self._read_config)

    def _read_config(self) -> HuaweiConfig:
        return HuaweiConfig.from_connection(self.fetch_connection())

    async def aconfig(self) -> HuaweiConfig:
        """``config`` without blocking the loop: a first read (and the async path's imports) runs in a
        worker thread, shared by every hook of this loop that needs it at the same time."""
        if not _async_imports_done:
            await _aimport_async_modules()
        key = connection_key(self.conn_id)
        return CONFIGS.get(key) or await CONFIGS.aload(key, self._aread_config)

    async def _aread_config(self) -> HuaweiConfig:
        return await asyncio.to_thread(self._read_config_locked)

    def _read_config_locked(self) -> HuaweiConfig:
        # Worker thread: the first read imports lazily (proxies, secrets backends), one thread at a time.
        with locked():
            return self._read_config()

    @property
    def _endpoint(self) -> str:
        return self.endpoint_service or self.service

    def console_scope(self) -> str | None:
        """The connection's region (the Huawei console needs it)."""
        return self.config.region

    def _where(self, config: HuaweiConfig) -> str:
        where = f"{self.service.upper()} project {config.project_id!r} at {config.endpoint(self._endpoint)}"
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

    # -- the contract: the service module's operations ------------------------------------------------

    def get_status(self, ref: R) -> JobStatus:
        return self.api.parse(self.send(self.api.status_op(ref)), ref)

    async def aget_status(self, ref: R) -> JobStatus:
        return self.api.parse(await self.asend(self.api.status_op(ref)), ref)

    def cancel(self, ref: R) -> None:
        self.api.check_cancelled(self.send(self.api.cancel_op(ref)), ref)

    async def acancel(self, ref: R) -> None:
        self.api.check_cancelled(await self.asend(self.api.cancel_op(ref)), ref)

    async def apages(
        self, ops: Iterable[Operation], list_page: Callable[[Any, Any], tuple[list[Any], Any]]
    ) -> list[Any]:
        """Every page of each list operation in ``ops`` (``list_page``: a page's entries and the next page's operation)."""
        entries: list[Any] = []
        for op in ops:
            page: Operation | None = op
            while page is not None:
                jobs, page = list_page(page, await self.asend(page))
                entries.extend(jobs)
        return entries

    async def alist_jobs(
        self, scope: Mapping[str, Any], pushed: Mapping[str, Any] | None = None
    ) -> list[Any]:
        """Every page of the service's job list in ``scope`` (event watchers), each job a ``Watched``."""
        from airflow_jobstatus.core.exceptions import ConfigurationError
        from airflow_jobstatus.services import get_service

        watching = get_service(self.service).watching
        if watching is None or watching.list_page is None:
            raise ConfigurationError(f"{self.service} jobs cannot be watched: it has no job list.")
        entries = await self.apages(watching.list_call("", scope, pushed or {}), watching.list_page)
        return parse_listed(self, entries, scope)

    # -- sync: requests -------------------------------------------------------------------------------

    @property
    def session(self) -> requests.Session:
        """This hook's HTTP session, created on first use and reused."""
        if self._session is None:
            import requests

            session = self._session = requests.Session()
            # Settings come from the connection only, as on the async path: no .netrc auth (it would
            # replace the signature), no environment CA bundle; proxies are passed per request.
            session.trust_env = False
            self._close_session = weakref.finalize(self, session.close)  # a hook never closed
        return self._session

    def close(self) -> None:
        """Close this hook's HTTP session and its pooled connections (a later call opens a new one)."""
        closer, self._close_session, self._session = self._close_session, None, None
        if closer is not None:
            closer()

    def get_conn(self) -> requests.Session:
        return self.session

    def send(self, op: Operation) -> dict[str, Any]:
        """Perform ``op`` (blocking); its answer's JSON object."""
        import requests

        config = self.config
        signed = huawei_signer.sign(op, config, config.endpoint(self._endpoint))
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
        endpoint, proxy, key = route_for(config, self._endpoint)
        signed = huawei_signer.sign(op, config, endpoint)
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
