"""Google plumbing shared by the Dataproc, Dataflow and Vertex AI hooks.

Connection → project, credentials and endpoint; sync clients per hook instance, async clients shared
per process and event loop; google.api_core / gRPC errors → this provider's error kinds.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from airflow_jobstatus.core.exceptions import (
    AuthenticationError,
    BadRequestError,
    BadResponseError,
    ConfigurationError,
    JobNotFoundError,
    JobStatusError,
    ServiceError,
    TransientServiceError,
)
from airflow_jobstatus.core.states import JobStatus
from airflow_jobstatus.hooks import lazy_import
from airflow_jobstatus.hooks.base import DEFAULT_CALL_TIMEOUT, JobStatusHook, R, parse_listed
from airflow_jobstatus.hooks.connection_cache import ConnectionCache, connection_key
from airflow_jobstatus.hooks.lazy_import import import_modules
from airflow_jobstatus.hooks.loop_cache import PerLoopCache
from airflow_jobstatus.services import get_service
from airflow_jobstatus.services.base import LIST_JOB_ID, scope_ref
from airflow_jobstatus.services.google import impersonation_chain as normalized_chain
from airflow_jobstatus.services.google import names

if TYPE_CHECKING:
    from google.auth.credentials import Credentials

log = logging.getLogger(__name__)

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
    credential_config_file: str | Mapping[str, Any] | None = field(default=None, repr=False, compare=False)
    anonymous: bool = False
    keyfile_dict: Mapping[str, Any] | None = field(default=None, repr=False, compare=False)
    scopes: tuple[str, ...] = (CLOUD_PLATFORM_SCOPE,)
    impersonation_chain: tuple[str, ...] = ()
    api_endpoint: str | None = None
    credentials_id: str = ""

    def endpoint(self, default_target: str) -> Endpoint:
        """The connection's ``api_endpoint`` when set, else the service's default ``host:443``."""
        key = (self.api_endpoint, default_target)
        found = _ENDPOINTS.get(key)
        if found is None:
            found = resolve_endpoint(self.api_endpoint, default_target)
            if len(_ENDPOINTS) < 1024:  # a handful in practice (one per service and region)
                _ENDPOINTS[key] = found
        return found

    def project(self, project_id: str | None) -> str:
        """``project_id`` when given, else the connection's project; ConfigurationError when neither."""
        project = (project_id or self.project_id or "").strip()
        if not project:
            raise ConfigurationError(
                f"No Google Cloud project: pass project_id or set the extra 'project' on connection "
                f"{self.conn_id!r}."
            )
        return project


_ENDPOINTS: dict[tuple[str | None, str], Endpoint] = {}


def _extra(extra: Mapping[str, Any], key: str) -> Any:
    """An extra by its plain name or its ``extra__google_cloud_platform__`` form; None when blank."""
    for name in (key, EXTRA_PREFIX + key):
        value = extra.get(name)
        if value not in (None, ""):
            return value
    return None


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


#: Google provider credential extras this hook does not implement: refused, never silently replaced by ADC.
UNSUPPORTED_CREDENTIAL_EXTRAS = {
    "key_secret_name": "a key stored in Secret Manager",
    "key_secret_project_id": "a key stored in Secret Manager",
    "idp_issuer_url": "an identity-provider token exchange",
    "idp_extra_params_json": "an identity-provider token exchange",
}


def _flag(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def parse_connection(
    conn_id: str,
    conn_type: str | None,
    extra: Mapping[str, Any],
    impersonation_chain: str | Sequence[str] | None = None,
) -> GoogleConnection:
    """Read a google_cloud_platform connection's extras (the Google provider's fields).

    Credentials: ``keyfile_dict``, ``key_path``, ``credential_config_file`` (workload identity
    federation), ``is_anonymous``, else Application Default Credentials. Extras naming a credential
    source this hook does not implement fail with a clear error instead of falling back to ADC.
    ``impersonation_chain`` (the hook's argument) overrides the connection's.
    """
    if conn_type and conn_type not in (CONN_TYPE, "gcp"):
        log.warning("Connection %r has type %r; reading it as %r.", conn_id, conn_type, CONN_TYPE)
    _refuse_unsupported_sources(conn_id, extra)
    source = _credential_source(conn_id, extra)
    scopes = names(_extra(extra, "scope"), f"Connection {conn_id!r}: scope") or (CLOUD_PLATFORM_SCOPE,)
    chain = names(
        impersonation_chain or _extra(extra, "impersonation_chain"),
        f"Connection {conn_id!r}: impersonation_chain",
    )
    endpoint = _extra(extra, "api_endpoint")
    return GoogleConnection(
        conn_id=conn_id,
        project_id=_extra(extra, "project"),
        key_path=str(source.key_path) if source.key_path else None,
        credential_config_file=source.config_file,
        anonymous=source.anonymous,
        keyfile_dict=source.keyfile_dict,
        scopes=scopes,
        impersonation_chain=chain,
        api_endpoint=str(endpoint).strip() if endpoint else None,
        credentials_id=_credentials_id(source, scopes, chain),
    )


def _refuse_unsupported_sources(conn_id: str, extra: Mapping[str, Any]) -> None:
    """A ConfigurationError when an extra names a credential source this hook does not implement."""
    for key, what in UNSUPPORTED_CREDENTIAL_EXTRAS.items():
        if _extra(extra, key) is not None:
            raise ConfigurationError(
                f"Connection {conn_id!r} sets {key!r} ({what}), which airflow-jobstatus does not support; "
                "use 'keyfile_dict', 'key_path', 'credential_config_file' or Application Default "
                "Credentials (no extra)."
            )


@dataclass(frozen=True)
class _CredentialSource:
    """The connection's credential extras (all empty: Application Default Credentials)."""

    keyfile_dict: dict[str, Any] | None = field(repr=False)
    key_path: Any
    config_file: Any = field(repr=False)
    anonymous: bool

    def named(self) -> list[str]:
        """The extras that are set."""
        values = (
            ("keyfile_dict", self.keyfile_dict),
            ("key_path", self.key_path),
            ("credential_config_file", self.config_file),
            ("is_anonymous", self.anonymous),
        )
        return [name for name, value in values if value]


def _credential_source(conn_id: str, extra: Mapping[str, Any]) -> _CredentialSource:
    """The connection's credential extras; a ConfigurationError when more than one is set."""
    source = _CredentialSource(
        keyfile_dict=_keyfile(_extra(extra, "keyfile_dict"), conn_id),
        key_path=_extra(extra, "key_path"),
        config_file=_extra(extra, "credential_config_file"),
        anonymous=_flag(_extra(extra, "is_anonymous")),
    )
    named = source.named()
    if len(named) > 1:
        raise ConfigurationError(
            f"Connection {conn_id!r} sets {' and '.join(named)}: set one credential source."
        )
    return source


def _credentials_id(source: _CredentialSource, scopes: tuple[str, ...], chain: tuple[str, ...]) -> str:
    """A digest naming the identity (source, scopes, chain): connections with one share async clients."""
    identity = json.dumps(
        [source.key_path, source.keyfile_dict, source.config_file, source.anonymous, scopes, chain],
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(identity.encode()).hexdigest()[:16]


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


def _build_credentials_locked(conn: GoogleConnection) -> Credentials:
    """``build_credentials`` in a worker thread: google.auth imports lazily, one thread at a time."""
    with lazy_import.locked():
        return build_credentials(conn)


def build_credentials(conn: GoogleConnection) -> Credentials:
    """Credentials from the connection's key, else Application Default Credentials (blocking)."""
    from google.auth import exceptions as auth_exceptions

    scopes = list(conn.scopes)
    if conn.anonymous:
        from google.auth.credentials import AnonymousCredentials

        return AnonymousCredentials()
    problem = ""
    try:
        creds = _load_credentials(conn, scopes)
    except auth_exceptions.DefaultCredentialsError as err:
        problem = (
            f"{_scrub(str(err), conn)}. Set 'keyfile_dict', 'key_path' or 'credential_config_file', or "
            "configure Application Default Credentials"
        )
    except (ValueError, KeyError, OSError) as err:
        problem = f"{type(err).__name__}: {_scrub(str(err), conn)}"
    if problem:  # raised outside the except block: the original error (key material?) is not kept
        raise ConfigurationError(f"Connection {conn.conn_id!r}: cannot load Google credentials ({problem}).")
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


def _load_credentials(conn: GoogleConnection, scopes: list[str]) -> Credentials:
    creds: Credentials = _load_any_credentials(conn, scopes)
    return creds


def _load_any_credentials(conn: GoogleConnection, scopes: list[str]) -> Any:
    import google.auth

    if conn.keyfile_dict is not None:
        return google.auth.load_credentials_from_dict(dict(conn.keyfile_dict), scopes=scopes)[0]
    if conn.key_path:
        return google.auth.load_credentials_from_file(conn.key_path, scopes=scopes)[0]
    config = conn.credential_config_file
    if isinstance(config, Mapping):
        return google.auth.load_credentials_from_dict(dict(config), scopes=scopes)[0]
    if isinstance(config, str) and config.strip().startswith("{"):
        return google.auth.load_credentials_from_dict(json.loads(config), scopes=scopes)[0]
    if config:
        return google.auth.load_credentials_from_file(str(config), scopes=scopes)[0]
    return google.auth.default(scopes=scopes)[0]


def _scrub(text: str, conn: GoogleConnection) -> str:
    """``text`` with any key material from the connection removed."""
    for value in (conn.keyfile_dict or {}).values():
        if isinstance(value, str) and len(value) > 4 and value in text:
            text = text.replace(value, "***")
    return text


# --- the connection read cache ---------------------------------------------------------------------

#: Parsed connections by (conn_id, AIRFLOW_CONN_* digest, *impersonation chain), for every thread and
#: loop of the process (``connection_cache``): read once per TTL, dropped on an authentication error.
CONNECTIONS: ConnectionCache[tuple[str, ...], GoogleConnection] = ConnectionCache()


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
            module, transports = import_modules(self.package, f"{self.package}.transports")
        except ImportError as err:
            hint = f" Install it with: {self.install_hint}" if self.install_hint else ""
            raise ConfigurationError(
                f"The {self.name} client library is not installed ({err}).{hint}"
            ) from None
        suffix = ("AsyncClient", "GrpcAsyncIOTransport") if asynchronous else ("Client", "GrpcTransport")
        return getattr(module, self.prefix + suffix[0]), getattr(transports, self.prefix + suffix[1])


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
    return client_cls(transport=transport_cls(channel=channel, host=endpoint.target))


_CHANNELS: PerLoopCache[tuple[str, Endpoint, str], Any] = PerLoopCache()
_CLIENTS: PerLoopCache[tuple[str, str, Endpoint, str], Any] = PerLoopCache()


async def _new_async_channel(endpoint: Endpoint, conn: GoogleConnection) -> Any:
    """A grpc.aio channel to ``endpoint``; credentials are built in a thread (they may do I/O)."""
    import grpc
    from google.api_core import grpc_helpers_async

    if endpoint.plaintext:
        return grpc.aio.insecure_channel(endpoint.target)
    credentials = await asyncio.to_thread(_build_credentials_locked, conn)
    return grpc_helpers_async.create_channel(
        endpoint.target, credentials=credentials, default_scopes=[CLOUD_PLATFORM_SCOPE]
    )


async def shared_async_client(kind: ClientKind, endpoint: Endpoint, conn: GoogleConnection) -> Any:
    """The process-wide async client for (service, connection, endpoint, credentials) in this loop."""

    async def build() -> Any:
        # Importing a GAPIC package can take seconds (aiplatform): never on the event loop.
        client_cls, transport_cls = await asyncio.to_thread(kind.load, True)
        channel = await _CHANNELS.get(
            (conn.conn_id, endpoint, conn.credentials_id), lambda: _new_async_channel(endpoint, conn)
        )
        return client_cls(transport=transport_cls(channel=channel, host=endpoint.target))

    key = (kind.name, conn.conn_id, endpoint, conn.credentials_id)
    client = _CLIENTS.values().get(key)
    if client is not None:  # the hit path: no closure, no lock
        return client
    return await _CLIENTS.get(key, build)


async def aclose_shared_clients() -> None:
    """Close and forget the running loop's shared channels (tests, benchmarks)."""
    _CLIENTS.pop_all()
    for channel in _CHANNELS.pop_all():
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
        aborted = status is not None and status.name == "ABORTED"  # gRPC's "try again" (HTTP 409)
        if aborted or http in (408, 429, 499) or (http >= 500 and http != 501):
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


class GoogleService(Protocol):
    """What a Google service module (``services/<service>.py``) declares for its hook: the endpoint,
    the (method, request) of its status and cancel calls, and its parser."""

    def default_target(self, ref: Any, /) -> str:
        """The service's endpoint for this job (``host:443``) when the connection sets none."""
        ...

    def status_call(self, project: str, ref: Any, /) -> tuple[str, dict[str, Any]]:
        """The client method and request that read the job."""
        ...

    def cancel_call(self, project: str, ref: Any, /) -> tuple[str, dict[str, Any]]:
        """The client method and request that cancel the job; when the module also defines
        ``cancel_after_read(answer, ref) -> (method, request)``, this call is a read and that one the
        cancel (Dataproc batches: CancelOperation of the operation the batch names)."""
        ...

    def parse(self, response: Any, ref: Any, /) -> JobStatus:
        """The answer of the status call as a JobStatus."""
        ...


class GoogleJobHook(JobStatusHook[R]):
    """Base of the Google hooks: connection, clients, one call path with error mapping, parsing.

    A service hook names its GAPIC client (``client_kind``) and its service module (``api``: endpoint,
    requests and parser); sync and async share all of it.
    """

    conn_name_attr = "gcp_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = CONN_TYPE
    client_kind: ClassVar[ClientKind]
    api: ClassVar[GoogleService]

    def __init__(
        self,
        gcp_conn_id: str | None = DEFAULT_CONN_ID,
        timeout: float = DEFAULT_CALL_TIMEOUT,
        impersonation_chain: str | Sequence[str] | None = None,
        **kwargs: Any,
    ):
        super().__init__(gcp_conn_id, timeout=timeout, **kwargs)
        self.gcp_conn_id = self.conn_id
        self.impersonation_chain = impersonation_chain
        self._conn: GoogleConnection | None = None
        #: Sync clients by (service, endpoint), built on first use (a waiting trigger never needs one).
        self._sync_clients: dict[tuple[str, Endpoint], Any] | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(gcp_conn_id={self.conn_id!r}, timeout={self.timeout})"

    # -- the contract --------------------------------------------------------------------------
    def get_status(self, ref: R) -> JobStatus:
        target = self._target(self.google_connection(), ref)
        return self._parse(ref, target, self.call(target, *self.api.status_call(target.project, ref)))

    async def aget_status(self, ref: R) -> JobStatus:
        target = self._target(await self.agoogle_connection(), ref)
        return self._parse(ref, target, await self.acall(target, *self.api.status_call(target.project, ref)))

    def cancel(self, ref: R) -> None:
        target = self._target(self.google_connection(), ref)
        answer = self.call(target, *self.api.cancel_call(target.project, ref))
        after_read = getattr(self.api, "cancel_after_read", None)
        if after_read is not None:  # a cancel that names what a read answers (a batch's operation)
            self.call(target, *after_read(answer, ref))

    async def acancel(self, ref: R) -> None:
        target = self._target(await self.agoogle_connection(), ref)
        answer = await self.acall(target, *self.api.cancel_call(target.project, ref))
        after_read = getattr(self.api, "cancel_after_read", None)
        if after_read is not None:
            await self.acall(target, *after_read(answer, ref))

    async def alist_active(self, ref: R) -> list[Any]:
        """Every page of the service's list of active jobs in ``ref``'s scope (coalesced polling)."""
        coalescing = get_service(self.service).coalescing
        if coalescing is None:
            raise ConfigurationError(f"{self.service} has no list of active jobs.")
        target = self._target(await self.agoogle_connection(), ref, job_id=LIST_JOB_ID)
        return await self._alist(target, *coalescing.list_call(target.project, ref))

    async def alist_jobs(
        self, scope: Mapping[str, Any], pushed: Mapping[str, Any] | None = None
    ) -> list[Any]:
        """Every page of the service's job list in ``scope`` (event watchers), each job a ``Watched``."""
        spec = get_service(self.service)
        if spec.watching is None:
            raise ConfigurationError(f"{self.service} jobs cannot be watched: it has no job list.")
        ref: Any = scope_ref(spec.ref_type, scope)
        target = self._target(await self.agoogle_connection(), ref, job_id=LIST_JOB_ID)
        full = {**scope, "project_id": target.project}
        entries = await self._alist(target, *spec.watching.list_call(target.project, full, pushed or {}))
        return parse_listed(self, entries, full)

    async def _alist(self, target: CallTarget, method: str, request: dict[str, Any]) -> list[Any]:
        """Every page of a list call (one shared async client, no SDK retry, our timeout per page)."""
        conn = self._conn or await self.agoogle_connection()
        client = await shared_async_client(self.client_kind, target.endpoint, conn)
        entries: list[Any] = []
        try:  # the pager fetches the next pages with the same retry=None and timeout
            pager = await getattr(client, method)(request=request, retry=None, timeout=self.timeout)
            async for entry in pager:
                entries.append(entry)
        except Exception as err:
            error = self._failed(err, target)
        else:
            return entries
        raise error

    def console_scope(self) -> str | None:
        return self._conn.project_id if self._conn else self.google_connection().project_id

    # -- plumbing ------------------------------------------------------------------------------
    def _conn_key(self) -> tuple[str, ...]:
        return (*connection_key(self.conn_id), *normalized_chain(self.impersonation_chain))

    def google_connection(self) -> GoogleConnection:
        """The connection: read once per process and TTL (``CONNECTIONS``), its secrets registered
        with the masker when read."""
        conn = self._conn = CONNECTIONS.load(self._conn_key(), self._read_connection)
        return conn

    def _read_connection(self) -> GoogleConnection:
        from airflow_jobstatus.core.compat import mask_secret

        conn = self.fetch_connection()
        extra = conn.extra_dejson
        parsed = parse_connection(self.conn_id, conn.conn_type, extra, self.impersonation_chain)
        for secret in connection_secrets(parsed, extra):
            mask_secret(secret)
        return parsed

    async def agoogle_connection(self) -> GoogleConnection:
        """``google_connection`` without blocking the event loop; hooks of one loop that need the
        same connection at the same time (triggers starting together) share one read."""
        key = self._conn_key()
        conn = self._conn = CONNECTIONS.get(key) or await CONNECTIONS.aload(key, self._aread_connection)
        return conn

    async def _aread_connection(self) -> GoogleConnection:
        from airflow_jobstatus.core.compat import amask_secret

        conn = await self.afetch_connection()
        extra = await conn.aextra_dejson() if hasattr(conn, "aextra_dejson") else conn.extra_dejson
        parsed = parse_connection(self.conn_id, conn.conn_type, extra, self.impersonation_chain)
        for secret in connection_secrets(parsed, extra):
            await amask_secret(secret)
        return parsed

    def _target(self, conn: GoogleConnection, ref: R, job_id: str | None = None) -> CallTarget:
        return CallTarget(
            job_id=job_id or ref.display_id,
            project=conn.project(getattr(ref, "project_id", None)),
            endpoint=conn.endpoint(self.api.default_target(ref)),
            ref=ref,
        )

    def _failed(self, err: Exception, target: CallTarget) -> JobStatusError:
        """``err`` as our error kind; an authentication error also drops the cached connection."""
        error = to_service_error(err, service=self.service, job_id=target.job_id, where=target.where)
        if isinstance(error, AuthenticationError):
            CONNECTIONS.drop(self.conn_id)  # a rotated key is read at the next call
        return error

    def sync_client(self, endpoint: Endpoint) -> Any:
        """This hook's client at ``endpoint``, built on first use."""
        key = (self.client_kind.name, endpoint)
        if self._sync_clients is None:
            self._sync_clients = {}
        client = self._sync_clients.get(key)
        if client is None:
            conn = self._conn or self.google_connection()  # the call's target has just read it
            client = self._sync_clients[key] = _new_sync_client(self.client_kind, endpoint, conn)
        return client

    def call(self, target: CallTarget, method: str, request: dict[str, Any]) -> Any:
        """Call ``method`` once (no SDK retry, our timeout), mapping errors to our kinds."""
        client = self.sync_client(target.endpoint)
        try:
            return getattr(client, method)(request=request, retry=None, timeout=self.timeout)
        except Exception as err:
            error = self._failed(err, target)
        raise error

    async def acall(self, target: CallTarget, method: str, request: dict[str, Any]) -> Any:
        """``call`` on the shared async client."""
        conn = self._conn or await self.agoogle_connection()  # the call's target has just read it
        client = await shared_async_client(self.client_kind, target.endpoint, conn)
        try:
            return await getattr(client, method)(request=request, retry=None, timeout=self.timeout)
        except Exception as err:
            error = self._failed(err, target)
        raise error

    def _parse(self, ref: R, target: CallTarget, response: Any) -> JobStatus:
        """Run the service's parser; a missing or malformed answer is a (retryable) BadResponseError."""
        problem = "empty or undecodable response"
        if response is not None:
            try:
                return self.api.parse(response, ref)
            except (AttributeError, TypeError, ValueError, KeyError) as err:
                problem = f"cannot read the response: {type(err).__name__}: {err}"
        raise BadResponseError(
            f"{problem} for job {target.job_id!r} in {target.where}",
            service=self.service,
            job_id=target.job_id,
        )

    def close(self) -> None:
        """Close this hook's sync clients' channels."""
        for client in (self._sync_clients or {}).values():
            client.transport.close()
        self._sync_clients = None


@dataclass(frozen=True)
class CallTarget:
    """Where one call goes: the job, its project, the endpoint; ``where`` describes it for error messages."""

    job_id: str
    project: str
    endpoint: Endpoint
    ref: Any = field(default=None, compare=False)

    @property
    def where(self) -> str:
        """``project 'p', region 'r'``: built only when an error needs it, not on every poll."""
        details: tuple[str, ...] = ()
        if self.ref is not None:
            details = tuple(
                f"{k} {v!r}"
                for k, v in self.ref.to_dict().items()
                if k not in ("job_id", "project_id", *self.ref.id_fields[:1]) and v
            )
        return ", ".join((f"project {self.project!r}", *details))
