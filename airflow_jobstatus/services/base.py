"""What every service module declares: a typed job reference and a ``ServiceSpec``.

Pure Python: nothing here or in a service module imports Airflow or an SDK at import time, so the
provider metadata (read while Airflow itself is being imported) can read the registry.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from airflow_jobstatus.core.states import JobState, JobStatus, NativeStateTable

if TYPE_CHECKING:
    from airflow_jobstatus.core.exceptions import BadResponseError

R = TypeVar("R", bound="JobRef")


def _configuration_error(message: str) -> Exception:
    from airflow_jobstatus.core.exceptions import ConfigurationError

    return ConfigurationError(message)


def require_id(value: Any, name: str = "job_id") -> str:
    """``value`` as a stripped, non-empty identifier; rejects ``.``/``..`` (a URL path would collapse them)."""
    if value is None or not isinstance(value, str | int) or not str(value).strip():
        raise _configuration_error(f"{name} must be a non-empty string, got {value!r}.")
    text = str(value).strip()
    if text in (".", ".."):
        raise _configuration_error(f"{name} {text!r} is not a valid identifier.")
    return text


def require_choice(value: Any, choices: tuple[str, ...], name: str) -> str:
    """``value`` when it is one of ``choices``; a ConfigurationError listing them otherwise."""
    text = str(value or "").strip().lower()
    if text not in choices:
        raise _configuration_error(f"Unknown {name} {value!r}. Valid values: {', '.join(choices)}.")
    return text


@dataclass(frozen=True)
class JobRef:
    """A job's address at its service. Subclasses are frozen dataclasses of strings, validated on creation.

    ``to_dict``/``from_dict`` carry it across the trigger boundary as plain JSON.
    """

    service: ClassVar[str]
    #: Fields that identify the job and must be non-empty (validated in ``__post_init__``).
    id_fields: ClassVar[tuple[str, ...]] = ()
    #: What stands in for a templated field when the reference is checked at DAG parse time.
    parse_placeholder: ClassVar[str] = "x"

    def __post_init__(self) -> None:
        for name in self.id_fields:
            object.__setattr__(self, name, require_id(getattr(self, name), name))

    @property
    def display_id(self) -> str:
        """The id shown in logs and in ``JobStatus.job_id``."""
        return str(getattr(self, "job_id"))  # noqa: B009 - subclasses without job_id override this

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls: type[R], data: Mapping[str, Any]) -> R:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise _configuration_error(
                f"{cls.__name__}: unknown field(s) {', '.join(sorted(unknown))}; "
                f"valid: {', '.join(sorted(names))}."
            )
        return cls(**data)


@dataclass(frozen=True)
class Coalescing:
    """How waits on one service share one "list the active jobs" call (opt-in ``coalesce=True``).

    ``scope_fields``: the ref fields that, with the connection, name one list call (a project and
    region). ``list_call(project, ref)``: what the hook sends (Google: the client method and request;
    Huawei: the service module's own description). ``entry_id(entry)``: a listed job's id, matched
    against ``ref.job_id``. ``parse_entry(entry, ref)``: a listed job as a JobStatus.
    ``unsupported(ref)``: why this ref cannot coalesce (None when it can).
    """

    scope_fields: tuple[str, ...]
    list_call: Callable[[str, Any], Any]
    entry_id: Callable[[Any], str]
    parse_entry: Callable[[Any, Any], JobStatus]
    unsupported: Callable[[Any], str | None] = lambda ref: None


#: The connection-id argument of each cloud's tasks, hooks and triggers (the cloud's connection type).
CONN_ID_ARGS = {"google": "gcp_conn_id", "huawei": "huaweicloud_conn_id"}


@dataclass(frozen=True)
class ServiceSpec:
    """Every fact about one service the rest of the package reads (the registry's entries)."""

    name: str
    title: str
    cloud: str  # "google" or "huawei": which connection type and hook base serve it
    ref_type: type[JobRef]
    #: native → normalized table(s), keyed by job type ("" when the service has one vocabulary).
    tables: Mapping[str, NativeStateTable]
    hook: str  # "module.Class", imported on first use
    sensor: str
    link: str  # the console link class ("module.Class")
    link_name: str
    #: ``console_url(ref, project_or_region)``: the job's page in the cloud console.
    console_url: Callable[[Any, str | None], str]
    job_types: tuple[str, ...] = ()
    #: What cancelling does at this service (documentation and logs).
    cancel_note: str = ""
    #: Native states or substates that will not progress by themselves (the wait warns once).
    attention: frozenset[str | None] = frozenset()
    #: ``(native, substate, job_type) -> JobState`` when a table lookup is not the whole rule.
    normalizer: Callable[[str, str | None, str | None], JobState] | None = None
    #: How waits share one list call (``coalesce=True``); None: the service cannot, see below.
    coalescing: Coalescing | None = None
    #: Why the service cannot coalesce (the ConfigurationError and the README say it).
    no_coalescing_reason: str = ""

    @property
    def conn_id_arg(self) -> str:
        """The connection-id argument of this service's tasks (templated: read after rendering)."""
        return CONN_ID_ARGS[self.cloud]

    def normalize(self, native: str, substate: str | None = None, job_type: str | None = None) -> JobState:
        """A native state (and substate) as this service's parser normalizes it."""
        if self.normalizer is not None:
            return self.normalizer(native, substate, job_type)
        return self.table(job_type).normalize(native)

    def table(self, job_type: str | None = None) -> NativeStateTable:
        return self.tables.get(job_type or "") or next(iter(self.tables.values()))

    def ref(self, data: Mapping[str, Any] | JobRef) -> JobRef:
        """A typed reference from its dict form (or itself)."""
        if isinstance(data, self.ref_type):
            return data
        if isinstance(data, JobRef):
            raise _configuration_error(f"{self.name}: expected a {self.ref_type.__name__}, got {data!r}.")
        return self.ref_type.from_dict(data)


def table(name: str, mapping: Mapping[str, JobState]) -> NativeStateTable:
    return NativeStateTable(name, mapping)


def bad_response(service: str, job_id: str, reason: str) -> BadResponseError:
    """A response the parser cannot read (transient: a proxy's garbled answer must not end a wait)."""
    from airflow_jobstatus.core.exceptions import BadResponseError

    return BadResponseError(
        f"unparseable job status for {job_id!r}: {reason}", service=service, job_id=job_id
    )
