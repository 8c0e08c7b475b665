"""Google plumbing shared by the Dataproc, Dataflow and Vertex AI hooks.

Connection → project, credentials and endpoint; sync clients per hook instance, async clients shared
per process and event loop; google.api_core / gRPC errors → this provider's error kinds.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import importlib
import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from airflow_jobstatus.exceptions import (
    AuthenticationError,
    BadRequestError,
    BadResponseError,
    ConfigurationError,
    JobNotFoundError,
    JobStatusError,
    ServiceError,
    TransientServiceError,
)
from airflow_jobstatus.hooks.base import DEFAULT_CALL_TIMEOUT, JobStatusHook, require_job_id

if TYPE_CHECKING:
    from google.auth.credentials import Credentials

log = logging.getLogger(__name__)
T = TypeVar("T")

CONN_TYPE = "google_cloud_platform"
DEFAULT_CONN_ID = "google_cloud_default"
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
EXTRA_PREFIX = f"extra__{CONN_TYPE}__"


# --- connection ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """Where a client connects: ``host:port`` over TLS with credentials, or plaintext (the simulator)."""

    target: str
    plaintext: bool = False


@dataclass(frozen=True)
class GoogleConnection:
    """What the hooks need from a google_cloud_platform connection; key material stays out of repr."""

    conn_id: str
    project_id: str | None = None
    key_path: str | None = None
    keyfile_dict: Mapping[str, Any] | None = field(default=None, repr=False, compare=False)
    scopes: tuple[str, ...] = (CLOUD_PLATFORM_SCOPE,)
    impersonation_chain: tuple[str, ...] = ()
    api_endpoint: str | None = None
    credentials_id: str = ""

    def endpoint(self, default_target: str) -> Endpoint:
        """The connection's ``api_endpoint`` when set, else the service's default ``host:443``."""
        return resolve_endpoint(self.api_endpoint, default_target)

    def project(self, project_id: str | None) -> str:
        """``project_id`` when given, else the connection's project; ConfigurationError when neither."""
        project = (project_id or self.project_id or "").strip()
        if not project:
            raise ConfigurationError(
                f"No Google Cloud project: pass project_id or set the extra 'project' on connection "
                f"{self.conn_id!r}."
            )
        return project


def _extra(extra: Mapping[str, Any], key: str) -> Any:
    """An extra by its plain name or its ``extra__google_cloud_platform__`` form; None when blank."""
    for name in (key, EXTRA_PREFIX + key):
        value = extra.get(name)
        if value not in (None, ""):
            return value
    return None


def _names(value: Any, what: str, conn_id: str) -> tuple[str, ...]:
    """A comma-separated string or a list of strings as a tuple of non-blank names."""
    if value is None:
        return ()
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, list | tuple):
        items = [str(v) for v in value]
    else:
        raise ConfigurationError(f"Connection {conn_id!r}: {what} must be a string or a list of strings.")
    return tuple(i.strip() for i in items if i.strip())


def _keyfile(value: Any, conn_id: str) -> dict[str, Any] | None:
    """The ``keyfile_dict`` extra (JSON text or a dict) as a dict; the error never quotes it."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ConfigurationError(
                f"Connection {conn_id!r}: extra 'keyfile_dict' is not valid JSON."
            ) from None
    if not isinstance(value, dict):
        raise ConfigurationError(f"Connection {conn_id!r}: extra 'keyfile_dict' must be a JSON object.")
    return value


def parse_connection(conn_id: str, conn_type: str | None, extra: Mapping[str, Any]) -> GoogleConnection:
    """Read a google_cloud_platform connection's extras (same fields as the Google provider)."""
    if conn_type and conn_type not in (CONN_TYPE, "gcp"):
        log.warning("Connection %r has type %r; reading it as %r.", conn_id, conn_type, CONN_TYPE)
    keyfile_dict = _keyfile(_extra(extra, "keyfile_dict"), conn_id)
    key_path = _extra(extra, "key_path")
    scopes = _names(_extra(extra, "scope"), "scope", conn_id) or (CLOUD_PLATFORM_SCOPE,)
    chain = _names(_extra(extra, "impersonation_chain"), "impersonation_chain", conn_id)
    endpoint = _extra(extra, "api_endpoint")
    identity = json.dumps([key_path, keyfile_dict, scopes, chain], sort_keys=True, default=str)
    return GoogleConnection(
        conn_id=conn_id,
        project_id=_extra(extra, "project"),
        key_path=str(key_path) if key_path else None,
        keyfile_dict=keyfile_dict,
        scopes=scopes,
        impersonation_chain=chain,
        api_endpoint=str(endpoint).strip() if endpoint else None,
        credentials_id=hashlib.sha256(identity.encode()).hexdigest()[:16],
    )


def connection_secrets(conn: GoogleConnection, extra: Mapping[str, Any]) -> list[str]:
    """The values to hand the secrets masker: the raw keyfile text and the private key."""
    secrets = [v for v in (_extra(extra, "keyfile_dict"),) if isinstance(v, str)]
    if conn.keyfile_dict:
        secrets += [
            str(conn.keyfile_dict[k]) for k in ("private_key", "private_key_id") if k in conn.keyfile_dict
        ]
    return secrets


def resolve_endpoint(api_endpoint: str | None, default_target: str) -> Endpoint:
    """``http://host:port`` → plaintext; ``host:port`` or ``https://…`` → TLS; None → the default."""
    if not api_endpoint:
        return Endpoint(default_target)
    value = api_endpoint.strip()
    plaintext = value.startswith("http://")
    target = value.split("://", 1)[1] if "://" in value else value
    target = target.rstrip("/")
    if not target or "/" in target:
        raise ConfigurationError(
            f"api_endpoint {api_endpoint!r} must be 'host:port' (TLS) or 'http://host:port' (plaintext)."
        )
    if not target.rsplit("]", 1)[-1].count(":"):
        target += ":80" if plaintext else ":443"
    return Endpoint(target, plaintext)


def build_credentials(conn: GoogleConnection) -> Credentials:
    """Credentials from the connection's key, else Application Default Credentials (blocking)."""
    import google.auth
    from google.auth import exceptions as auth_exceptions

    scopes = list(conn.scopes)
    try:
        if conn.keyfile_dict is not None:
            creds, _ = google.auth.load_credentials_from_dict(dict(conn.keyfile_dict), scopes=scopes)
        elif conn.key_path:
            creds, _ = google.auth.load_credentials_from_file(conn.key_path, scopes=scopes)
        else:
            creds, _ = google.auth.default(scopes=scopes)
    except auth_exceptions.DefaultCredentialsError as err:
        raise ConfigurationError(
            f"Connection {conn.conn_id!r}: cannot load Google credentials "
            f"({_scrub(str(err), conn)}). Set 'keyfile_dict' or 'key_path', or configure "
            "Application Default Credentials."
        ) from None
    except (ValueError, KeyError, OSError) as err:
        raise ConfigurationError(
            f"Connection {conn.conn_id!r}: cannot load Google credentials ({type(err).__name__}: "
            f"{_scrub(str(err), conn)})."
        ) from None
    if hasattr(creds, "with_always_use_jwt_access"):
        creds = creds.with_always_use_jwt_access(True)  # self-signed JWT, as the GAPIC clients do
    if conn.impersonation_chain:
        from google.auth import impersonated_credentials

        creds = impersonated_credentials.Credentials(
            source_credentials=creds,
            target_principal=conn.impersonation_chain[-1],
            delegates=list(conn.impersonation_chain[:-1]) or None,
            target_scopes=scopes,
        )
    return creds


def _scrub(text: str, conn: GoogleConnection) -> str:
    """``text`` with any key material from the connection removed."""
    for value in (conn.keyfile_dict or {}).values():
        if isinstance(value, str) and len(value) > 4 and value in text:
            text = text.replace(value, "***")
    return text


# --- clients ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClientKind:
    """One GAPIC service: its package and class prefix (``{prefix}Client``, ``{prefix}GrpcTransport``…)."""

    name: str
    package: str
    prefix: str
    install_hint: str | None = None

    def load(self, asynchronous: bool) -> tuple[type, type]:
        """The (client class, gRPC transport class), imported now; ConfigurationError if not installed."""
        try:
            module = importlib.import_module(self.package)
            transports = importlib.import_module(f"{self.package}.transports")
        except ImportError as err:
            hint = f" Install it with: {self.install_hint}" if self.install_hint else ""
            raise ConfigurationError(
                f"The {self.name} client library is not installed ({err}).{hint}"
            ) from None
        suffix = ("AsyncClient", "GrpcAsyncIOTransport") if asynchronous else ("Client", "GrpcTransport")
        return getattr(module, self.prefix + suffix[0]), getattr(transports, self.prefix + suffix[1])


_counts_lock = threading.Lock()
_COUNTS = {"sync_clients": 0, "async_channels": 0, "async_clients": 0}


def _count(what: str) -> None:
    with _counts_lock:
        _COUNTS[what] += 1


def client_counts() -> dict[str, int]:
    """How many sync clients, async channels and async clients this process has built so far."""
    with _counts_lock:
        return dict(_COUNTS)


def _new_sync_client(kind: ClientKind, endpoint: Endpoint, conn: GoogleConnection) -> Any:
    """A GAPIC client on its own gRPC channel to ``endpoint``."""
    import grpc
    from google.api_core import grpc_helpers

    client_cls, transport_cls = kind.load(asynchronous=False)
    if endpoint.plaintext:
        channel = grpc.insecure_channel(endpoint.target)
    else:
        credentials = build_credentials(conn)
        channel = grpc_helpers.create_channel(
            endpoint.target, credentials=credentials, default_scopes=[CLOUD_PLATFORM_SCOPE]
        )
    client = client_cls(transport=transport_cls(channel=channel, host=endpoint.target))
    _count("sync_clients")
    return client


@dataclass
class _LoopClients:
    """One event loop's shared channels and clients (grpc.aio objects only work in their own loop)."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    channels: dict[tuple[str, Endpoint, str], Any] = field(default_factory=dict)
    clients: dict[tuple[str, str, Endpoint, str], Any] = field(default_factory=dict)


_loops_lock = threading.Lock()
_LOOPS: dict[asyncio.AbstractEventLoop, _LoopClients] = {}


def _loop_clients() -> _LoopClients:
    """The running loop's cache; caches of closed loops are dropped (their channels are unusable)."""
    loop = asyncio.get_running_loop()
    with _loops_lock:
        for old in [other for other in _LOOPS if other.is_closed()]:
            del _LOOPS[old]
        entry = _LOOPS.get(loop)
        if entry is None:
            entry = _LOOPS[loop] = _LoopClients()
        return entry


async def _new_async_channel(endpoint: Endpoint, conn: GoogleConnection) -> Any:
    """A grpc.aio channel to ``endpoint``; credentials are built in a thread (they may do I/O)."""
    import grpc
    from google.api_core import grpc_helpers_async

    if endpoint.plaintext:
        channel = grpc.aio.insecure_channel(endpoint.target)
    else:
        credentials = await asyncio.to_thread(build_credentials, conn)
        channel = grpc_helpers_async.create_channel(
            endpoint.target, credentials=credentials, default_scopes=[CLOUD_PLATFORM_SCOPE]
        )
    _count("async_channels")
    return channel


async def shared_async_client(kind: ClientKind, endpoint: Endpoint, conn: GoogleConnection) -> Any:
    """The process-wide async client for (service, connection, endpoint, credentials) in this loop."""
    entry = _loop_clients()
    key = (kind.name, conn.conn_id, endpoint, conn.credentials_id)
    client = entry.clients.get(key)
    if client is not None:
        return client
    async with entry.lock:
        client = entry.clients.get(key)
        if client is None:
            # Importing a GAPIC package can take seconds (aiplatform): never on the event loop.
            client_cls, transport_cls = await asyncio.to_thread(kind.load, True)
            channel_key = (conn.conn_id, endpoint, conn.credentials_id)
            channel = entry.channels.get(channel_key)
            if channel is None:
                channel = entry.channels[channel_key] = await _new_async_channel(endpoint, conn)
            client = client_cls(transport=transport_cls(channel=channel, host=endpoint.target))
            entry.clients[key] = client
            _count("async_clients")
    return client


def async_cache_info() -> dict[str, int]:
    """Channels and clients cached for the running loop, and how many loops hold a cache."""
    entry = _LOOPS.get(asyncio.get_running_loop())
    return {
        "loops": len(_LOOPS),
        "channels": len(entry.channels) if entry else 0,
        "clients": len(entry.clients) if entry else 0,
    }


async def aclose_shared_clients() -> None:
    """Close and forget the running loop's shared channels (triggerer shutdown, tests)."""
    with _loops_lock:
        entry = _LOOPS.pop(asyncio.get_running_loop(), None)
    for channel in entry.channels.values() if entry else ():
        await channel.close()


# --- errors ----------------------------------------------------------------------------------------


def to_service_error(err: BaseException, *, service: str, job_id: str | None, where: str) -> JobStatusError:
    """Classify an exception from a Google call into this provider's error kinds."""
    import grpc
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as auth_exceptions

    if isinstance(err, JobStatusError):
        return err
    is_raw_grpc = isinstance(err, grpc.RpcError) and not isinstance(err, gexc.GoogleAPICallError)
    if is_raw_grpc and callable(getattr(err, "code", None)):
        err = gexc.from_grpc_error(err)
    kw: dict[str, Any] = {"service": service, "job_id": job_id}
    subject = f"job {job_id!r}" if job_id else "request"
    if isinstance(err, gexc.GoogleAPICallError):
        status = err.grpc_status_code
        kw["code"] = status.name if status is not None else err.code
        message = err.message or type(err).__name__
        http = err.code or 0
        if "deserializ" in message.lower():
            return BadResponseError(f"cannot read the response for {subject} in {where}: {message}", **kw)
        if http in (401, 403):
            return AuthenticationError(f"{subject} in {where}: {message}", **kw)
        if http == 404:
            return JobNotFoundError(f"{subject} not found in {where}: {message}", **kw)
        if http in (408, 429, 499) or (http >= 500 and http != 501):
            return TransientServiceError(f"{subject} in {where}: {message}", **kw)
        if 400 <= http < 500 or http == 501:
            return BadRequestError(f"{subject} in {where}: {message}", **kw)
        return ServiceError(f"{subject} in {where}: {message}", **kw)
    if isinstance(err, auth_exceptions.RefreshError):
        return AuthenticationError(f"cannot obtain a Google access token: {err}", **kw)
    if isinstance(
        err, auth_exceptions.TransportError | ConnectionError | TimeoutError | asyncio.TimeoutError
    ):
        return TransientServiceError(f"{subject} in {where}: {type(err).__name__}: {err}", **kw)
    return ServiceError(f"{subject} in {where}: unexpected {type(err).__name__}: {err}", **kw)


def enum_name(enum_cls: type[enum.Enum], value: Any) -> str:
    """The SDK's name for an enum value; a value the SDK does not know (a newer API) as its number."""
    if isinstance(value, enum.Enum):
        return value.name
    try:
        return enum_cls(int(value)).name
    except ValueError:
        return str(int(value))


def raw_message(message: Any) -> Any:
    """The protobuf behind a proto-plus message: enum fields read as ints, without proto-plus warnings."""
    return type(message).pb(message)


# --- hook ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobRef:
    """One call's target: the job, the endpoint, the request and where it was looked for (for errors)."""

    job_id: str
    endpoint: Endpoint
    request: dict[str, Any]
    where: str


class GoogleJobHook(JobStatusHook):
    """Base of the Google hooks: connection, clients, calls with error mapping, response parsing."""

    conn_name_attr = "gcp_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = CONN_TYPE

    def __init__(
        self, gcp_conn_id: str | None = DEFAULT_CONN_ID, timeout: float = DEFAULT_CALL_TIMEOUT, **kwargs: Any
    ):
        super().__init__(gcp_conn_id, timeout=timeout, **kwargs)
        self.gcp_conn_id = self.conn_id
        self._conn: GoogleConnection | None = None
        self._sync_clients: dict[tuple[str, Endpoint], Any] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(gcp_conn_id={self.conn_id!r}, timeout={self.timeout})"

    def google_connection(self) -> GoogleConnection:
        """The connection, read once per hook and its secrets registered with the masker."""
        if self._conn is None:
            from airflow.sdk.log import mask_secret

            conn = self.fetch_connection()
            extra = conn.extra_dejson
            parsed = parse_connection(self.conn_id, conn.conn_type, extra)
            for secret in connection_secrets(parsed, extra):
                mask_secret(secret)
            self._conn = parsed
        return self._conn

    async def agoogle_connection(self) -> GoogleConnection:
        """``google_connection`` without blocking the event loop."""
        if self._conn is None:
            from airflow.sdk import log as sdk_log

            conn = await self.afetch_connection()
            extra = await conn.aextra_dejson() if hasattr(conn, "aextra_dejson") else conn.extra_dejson
            parsed = parse_connection(self.conn_id, conn.conn_type, extra)
            amask = getattr(sdk_log, "amask_secret", None)
            for secret in connection_secrets(parsed, extra):
                if amask is not None:
                    await amask(secret)
                else:
                    sdk_log.mask_secret(secret)
            self._conn = parsed
        return self._conn

    def job_ref(
        self, conn: GoogleConnection, job_id: Any, default_target: str, request: dict[str, Any], where: str
    ) -> JobRef:
        """Validate ``job_id`` and pair the request with its endpoint."""
        return JobRef(require_job_id(job_id), conn.endpoint(default_target), request, where)

    def sync_client(self, kind: ClientKind, endpoint: Endpoint) -> Any:
        """This hook's client for ``kind`` at ``endpoint``, built on first use."""
        key = (kind.name, endpoint)
        client = self._sync_clients.get(key)
        if client is None:
            client = self._sync_clients[key] = _new_sync_client(kind, endpoint, self.google_connection())
        return client

    def call(self, kind: ClientKind, ref: JobRef, method: str, request: dict[str, Any] | None = None) -> Any:
        """Call ``method`` once (no SDK retry, our timeout), mapping errors to our kinds."""
        client = self.sync_client(kind, ref.endpoint)
        try:
            return getattr(client, method)(request=request or ref.request, retry=None, timeout=self.timeout)
        except Exception as err:
            raise to_service_error(err, service=self.service, job_id=ref.job_id, where=ref.where) from err

    async def acall(
        self, kind: ClientKind, ref: JobRef, method: str, request: dict[str, Any] | None = None
    ) -> Any:
        """``call`` on the shared async client."""
        client = await shared_async_client(kind, ref.endpoint, await self.agoogle_connection())
        try:
            return await getattr(client, method)(
                request=request or ref.request, retry=None, timeout=self.timeout
            )
        except Exception as err:
            raise to_service_error(err, service=self.service, job_id=ref.job_id, where=ref.where) from err

    def parse(self, parser: Callable[[Any, str], T], response: Any, ref: JobRef) -> T:
        """Run ``parser`` on a response; a missing or malformed one is a BadResponseError."""
        if response is None:
            raise BadResponseError(
                f"empty or undecodable response for job {ref.job_id!r} in {ref.where}",
                service=self.service,
                job_id=ref.job_id,
            )
        try:
            return parser(response, ref.job_id)
        except (AttributeError, TypeError, ValueError, KeyError) as err:
            raise BadResponseError(
                f"cannot read the response for job {ref.job_id!r} in {ref.where}: {err}",
                service=self.service,
                job_id=ref.job_id,
            ) from err

    def close(self) -> None:
        """Close this hook's sync clients' channels."""
        for client in self._sync_clients.values():
            client.transport.close()
        self._sync_clients.clear()
