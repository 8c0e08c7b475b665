"""What a ``huaweicloud`` connection says (``HuaweiConfig``), and the process's cache of parsed connections.

A connection is read once per process per connection id and kept ``connection_cache.TTL_SECONDS``
(``CONFIGS``; the hook drops it on an authentication error).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow_jobstatus.core.exceptions import ConfigurationError
from airflow_jobstatus.hooks.connection_cache import ConnectionCache

if TYPE_CHECKING:
    from airflow.sdk import Connection

CONN_TYPE = "huaweicloud"
DEFAULT_CONN_ID = "huaweicloud_default"
_FALSE_STRINGS = frozenset({"false", "0", "no", "off", ""})
_URL_CREDENTIALS = re.compile(r"(?<=//)[^/@\s:]+:[^/@\s]+@")


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
        from airflow_jobstatus.core.compat import mask_secret

        mask_secret(parts.password)
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
    #: endpoint origin. It lives as long as the config (the connection cache's TTL).
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
        from airflow_jobstatus.core.compat import mask_secret

        for secret in (sk, token):
            if secret:
                mask_secret(secret)
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

#: Parsed connections by ``connection_cache.connection_key(conn_id)``, for every thread and loop of the
#: process: read once per TTL, dropped on an authentication error.
CONFIGS: ConnectionCache[tuple[str, str], HuaweiConfig] = ConnectionCache()
