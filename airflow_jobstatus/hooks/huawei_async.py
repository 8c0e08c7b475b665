"""The Huawei transport's async path: ``aiohttp`` sessions shared per event loop, the loop's gate, the exchange.

One session per loop per (origin, verify_ssl, proxy), shared by every hook and trigger of the loop;
at most ``MAX_IN_FLIGHT`` requests in flight per loop. ``aiohttp`` and ``yarl`` are imported inside
functions only (a DAG file importing a sensor must parse fast).
"""

from __future__ import annotations

import asyncio
import weakref
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from airflow_jobstatus.hooks.huawei_config import HuaweiConfig
from airflow_jobstatus.hooks.huawei_responses import Reply
from airflow_jobstatus.hooks.huawei_signer import SignedRequest
from airflow_jobstatus.hooks.loop_cache import PerLoopCache

if TYPE_CHECKING:
    import aiohttp

#: Requests in flight per event loop, over every session (and each session's connector limit).
#: Callers beyond it wait here, before their timeout starts, not inside the connection pool.
MAX_IN_FLIGHT = 100


SessionKey = tuple[str, bool, str | None]
SESSIONS: PerLoopCache[SessionKey, aiohttp.ClientSession] = PerLoopCache()
_GATES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()


def _request_gate() -> asyncio.Semaphore:
    """This loop's cap on concurrent Huawei requests (shared by every session and trigger)."""
    loop = asyncio.get_running_loop()
    gate = _GATES.get(loop)
    if gate is None:
        gate = _GATES[loop] = asyncio.Semaphore(MAX_IN_FLIGHT)
    return gate


def route_for(config: HuaweiConfig, service: str) -> tuple[str, str | None, SessionKey]:
    """(endpoint, proxy, session key) of ``service`` for this config: worked out once per config."""
    route: tuple[str, str | None, SessionKey] | None = config._memo.get(("route", service))
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


async def aiohttp_session(url: str, verify_ssl: bool, proxy: str | None) -> aiohttp.ClientSession:
    """The shared session for this loop and (scheme://host, verify_ssl, proxy), created on first use."""
    parts = urlsplit(url)
    key = (f"{parts.scheme}://{parts.netloc}", verify_ssl, proxy)
    session = SESSIONS.values().get(key)
    if session is not None and not session.closed:
        return session
    return await SESSIONS.get(key, _build_session, usable=lambda session: not session.closed)


async def _build_session() -> aiohttp.ClientSession:
    import aiohttp

    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=MAX_IN_FLIGHT),
        cookie_jar=aiohttp.DummyCookieJar(),
        trust_env=False,  # proxies come from HuaweiConfig.proxy_for, as on the sync path
    )


async def aclose_sessions() -> None:
    """Close this loop's shared sessions (tests, shutdown)."""
    for session in SESSIONS.pop_all():
        await session.close()


_TIMEOUTS: dict[float, aiohttp.ClientTimeout] = {}


def _client_timeout(seconds: float) -> aiohttp.ClientTimeout:
    """One (immutable) ``ClientTimeout`` per value, shared by every request."""
    timeout = _TIMEOUTS.get(seconds)
    if timeout is None:
        import aiohttp

        timeout = _TIMEOUTS[seconds] = aiohttp.ClientTimeout(total=seconds)
    return timeout


async def aiohttp_exchange(
    session: aiohttp.ClientSession,
    signed: SignedRequest,
    *,
    verify_ssl: bool,
    proxy: str | None,
    timeout: float,
) -> Reply:
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
        return Reply(response.status, response.headers, await response.read())
