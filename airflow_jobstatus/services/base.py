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
    """How waits on one service share one "list the active jobs" call (``coalesce``: "auto", the
    default, where it saves calls, or ``True``).

    ``scope_fields``: the ref fields that, with the connection, name one list call (a project and
    region). ``list_call(project, ref)``: what the hook sends (Google: the client method and request;
    Huawei: the service module's own description). ``entry_id(entry)``: a listed job's id, matched
    against ``ref.job_id``. ``parse_entry(entry, ref)``: a listed job as a JobStatus.
    ``unsupported(ref)``: why this ref cannot coalesce (None when it can; ``coalesce=True`` raises
    it, "auto" polls the ref per job). ``auto_unsupported(ref)``: why "auto" polls this ref per job
    although ``True`` may list it: the list's entries carry less than a read (the XComs would differ
    from per-job polling's); None when auto may coalesce it.
    """

    scope_fields: tuple[str, ...]
    list_call: Callable[[str, Any], Any]
    entry_id: Callable[[Any], str]
    parse_entry: Callable[[Any, Any], JobStatus]
    unsupported: Callable[[Any], str | None] = lambda ref: None
    auto_unsupported: Callable[[Any], str | None] = lambda ref: None


#: What a list call names instead of a job id (errors, the placeholder ref of a scope).
LIST_JOB_ID = "(job list)"
#: The filters a watcher may ask for; each service's ``Watching.filters`` says which it can serve.
WATCH_FILTERS = ("labels", "tags", "name", "job_id", "job_type")


@dataclass(frozen=True)
class Watched:
    """One job of a list call, as an event watcher reads it (``JobEventTrigger``).

    ``status``: the entry as a JobStatus (the service's own parser); ``ref``: the job's reference
    (its console URL); ``name``: its display name (the id where the service names jobs by id);
    ``labels``: Google labels or Huawei tags; ``job_type``: the service's own job-type word;
    ``changed_at``: when it entered its current state (epoch seconds: the end time of an ended job,
    else the entry's update time), None when the list does not say. ``run``: which run of a job that
    runs again under the same id (CDM: a job name), part of its dedupe key; empty elsewhere.
    """

    status: JobStatus
    ref: JobRef
    name: str = ""
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    job_type: str = ""
    changed_at: float | None = None
    run: str = ""


@dataclass(frozen=True)
class Watching:
    """How event watchers list one scope's jobs (every page), one call per scope and interval.

    ``scope_fields``: the trigger arguments naming one list call (``required_scope`` must be set;
    ``project_id`` may default to the connection's). ``list_call(project, scope, pushed)``: what the
    hook sends (Google: the client method and request; Huawei: the first page's operations) with
    ``pushed`` (``labels``/``tags``/``job_type``) pushed down into the request where the API filters
    by it (a shared list pushes none: its watchers' filters differ). ``list_page(op, answer)``
    (Huawei): a page's entries and the next page's operation. ``parse_entry(entry, scope)``: a
    listed job as a ``Watched``. ``filters``: the ``WATCH_FILTERS`` this service can serve (every one
    is also applied to the listed jobs, so a filter the API does not push down still holds).
    ``limits``: the list's page size, filters and bounds, for the docs and the errors.
    """

    scope_fields: tuple[str, ...]
    list_call: Callable[[str, Mapping[str, Any], Mapping[str, Any]], Any]
    parse_entry: Callable[[Any, Mapping[str, Any]], Watched]
    required_scope: tuple[str, ...] = ()
    list_page: Callable[[Any, Mapping[str, Any]], tuple[list[Any], Any]] | None = None
    filters: frozenset[str] = frozenset({"name", "job_id"})
    limits: str = ""


def scope_ref(ref_type: type[R], scope: Mapping[str, Any]) -> R:
    """A reference naming a list call's scope (its id fields ``LIST_JOB_ID``): the hooks' endpoint and
    error messages read it as they read a job's."""
    names = {f.name for f in dataclasses.fields(ref_type)}
    data = {k: v for k, v in scope.items() if k in names and v not in (None, "")}
    for field in ref_type.id_fields:
        data.setdefault(field, LIST_JOB_ID)
    return ref_type(**data)


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
    #: How waits share one list call (``coalesce="auto"``/``True``); None: the service cannot, see below.
    coalescing: Coalescing | None = None
    #: Why the service cannot coalesce (the ConfigurationError and the README say it).
    no_coalescing_reason: str = ""
    #: How event watchers list the service's jobs (``JobEventTrigger``); None: they cannot.
    watching: Watching | None = None

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
