"""Vertex AI's JobService over gRPC: custom, batch prediction and hyperparameter tuning jobs.

Served only when google-cloud-aiplatform is installed; its heavy types are imported off the event
loop on the first call.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import importlib.util
import re
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

import grpc

from airflow_jobstatus.simulator.core import SimJob, SimulatorCore
from airflow_jobstatus.simulator.grpc_common import GrpcCalls, Handler, RpcError, import_types, paged, ts
from airflow_jobstatus.simulator.list_filters import (
    EQUALITY,
    Dialect,
    Field,
    FilterError,
    google_dialects,
    parse_filter,
)

VERTEX_SERVICE = "google.cloud.aiplatform.v1.JobService"
#: Vertex AI collections: resource-name segment → (job_type, message module, message class).
VERTEX_COLLECTIONS = {
    "customJobs": ("custom_job", "custom_job", "CustomJob"),
    "batchPredictionJobs": ("batch_prediction_job", "batch_prediction_job", "BatchPredictionJob"),
    "hyperparameterTuningJobs": (
        "hyperparameter_tuning_job",
        "hyperparameter_tuning_job",
        "HyperparameterTuningJob",
    ),
}
_VERTEX_NAME = re.compile(r"^projects/([^/]+)/locations/([^/]+)/([A-Za-z]+)/([^/]+)$")
_VERTEX_PARENT = re.compile(r"^projects/([^/]+)/locations/([^/]+)$")


def state_filter(text: str) -> Callable[[str], bool]:
    """A list ``filter`` on ``state`` alone as a predicate on a state name (AIP-160: OR binds tighter
    than AND); ValueError (FilterError) for anything else. Values are not checked."""
    predicate = parse_filter(text, _STATE_ONLY)
    return lambda state: predicate({"state": state})


_STATE_ONLY = Dialect("state filter", {"state": Field("enum", EQUALITY)})


@functools.cache
def dialects() -> dict[str, Dialect]:
    return google_dialects()


def display_name(job: SimJob, payload: dict[str, Any]) -> str:
    """A Vertex AI resource's ``display_name``: the job's ``name``, a phase's, else ``sim-<id>``."""
    return str(job.meta.get("name") or payload.get("display_name") or f"sim-{job.job_id}")


def filter_record(job: SimJob, now: float) -> dict[str, Any]:
    """The fields the Google list filters read, at monotonic ``now`` (``list_filters`` records)."""
    phase = job.phase_at(now)[0]
    state = str(phase["state"])
    terminal = job.is_terminal(now)
    return {
        "state": state,
        "status.state": "NON_ACTIVE" if terminal else "ACTIVE",
        "create_time": job.created_wall,
        "insertTime": job.created_wall,
        "update_time": job.state_started_wall(now),
        "end_time": job.ended_wall(now),
        "start_time": None if state.endswith(("_QUEUED", "_PENDING")) else job.created_wall,
        "labels": dict(job.meta.get("labels") or {}),
        "display_name": display_name(job, phase),
        "pipeline_name": str(phase.get("pipeline_name") or job.meta.get("name") or ""),
        "pipeline_job_user_id": job.job_id,
        "batch_id": job.job_id,
        "template_uri": "",
        "template_metadata.version": "",
    }


def resource_fields(
    job: SimJob, snap: dict[str, Any], name: str, status_pb2: Any, prefix: str, failed_code: int
) -> dict[str, Any]:
    """The fields a Vertex AI job resource and a PipelineJob share: name, display name, labels, state
    (``prefix`` + name), times as the service sets them (no start while QUEUED/PENDING), and ``error``
    with its code (1 CANCELLED, else ``failed_code``; a phase's ``error_code`` wins), from one
    ``job.snapshot()``."""
    state = snap["state"]
    fields: dict[str, Any] = {
        "name": name,
        "display_name": display_name(job, snap),
        "labels": dict(job.meta.get("labels") or {}),
        "state": state,
        "create_time": ts(job.created_wall),
        "update_time": ts(snap["state_start_wall"]),
    }
    if state not in (f"{prefix}QUEUED", f"{prefix}PENDING"):
        fields["start_time"] = ts(job.created_wall)
    if job.is_terminal():
        fields["end_time"] = ts(snap["state_start_wall"])
    if snap.get("error"):
        code = snap.get("error_code", 1 if state == f"{prefix}CANCELLED" else failed_code)
        fields["error"] = status_pb2.Status(code=code, message=str(snap["error"]))
    return fields


def listed_under(
    core: SimulatorCore,
    service: str,
    parent_re: re.Pattern[str],
    request: Any,
    scope_key: str,
    dialect: str | None = None,
    extra: Callable[[SimJob], dict[str, Any]] | None = None,
    **where: Any,
) -> list[SimJob]:
    """The jobs a List request names: its ``parent`` (project and region/location) and its ``filter``
    (``dialect``: the key of ``list_filters.google_dialects``, default ``service``; ``extra`` adds
    record fields); INVALID_ARGUMENT for a parent or filter the service would refuse."""
    match = parent_re.match(request.parent)
    if match is None:
        raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, f"Invalid parent: {request.parent!r}.")
    try:
        keep = parse_filter(request.filter, dialects()[dialect or service])
    except FilterError as err:
        raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, f"Invalid filter: {err}") from None
    project_id, scope = match.groups()
    jobs = core.listed_jobs(service, project_id=project_id, **{scope_key: scope}, **where)
    now = time.monotonic()
    out = []
    for job in jobs:
        record = filter_record(job, now)
        if extra is not None:
            record.update(extra(job))
        if keep(record):
            out.append(job)
    return out


def order_key(fields: list[tuple[str, bool]], now: float | None = None) -> Callable[[SimJob], list[Any]]:
    """A ``paged`` key for an ``order_by`` (field, descending) list over the resources' times; an
    unset end time sorts last ascending, first descending."""
    at = time.monotonic() if now is None else now

    def key(job: SimJob) -> list[Any]:
        record = filter_record(job, at)
        out: list[Any] = []
        for name, desc in fields:
            value = record.get(name)
            number = UNSET_TIME if value is None else float(value)
            out.append(-number if desc else number)
        return out

    return key


#: The sort value of an unset time (an end time while the job runs).
UNSET_TIME = 1e12


def vertex_available() -> bool:
    """True when google-cloud-aiplatform is installed (checked without importing it)."""
    try:
        return importlib.util.find_spec("google.cloud.aiplatform_v1") is not None
    except (ImportError, ValueError):
        return False


class VertexJobs:
    """Get and Cancel for the three job kinds, served through ``calls``."""

    def __init__(self, calls: GrpcCalls):
        self.calls = calls
        self.core = calls.core
        self._vertex: dict[str, ModuleType] | None = None

    def handlers(self) -> dict[str, Handler]:
        out: dict[str, Handler] = {}
        for kind in ("CustomJob", "BatchPredictionJob", "HyperparameterTuningJob"):
            out[f"Get{kind}"] = self._vertex_handler(kind, cancel=False)
            out[f"Cancel{kind}"] = self._vertex_handler(kind, cancel=True)
            out[f"List{kind}s"] = self._list_handler(kind)
        return out

    def _list_handler(self, kind: str) -> Handler:
        """List<Kind>s: the location's jobs of that kind by id, filtered on ``state``, paged."""
        collection, entry = next((c, e) for c, e in VERTEX_COLLECTIONS.items() if e[2] == kind)
        field = re.sub(r"(?<!^)(?=[A-Z])", "_", kind).lower() + "s"  # custom_jobs, …

        async def handle(raw: bytes, context: grpc.aio.ServicerContext) -> bytes:
            if self._vertex is None:
                await asyncio.to_thread(self._vertex_modules)
            service = self._vertex_modules()["job_service"]
            req = getattr(service, f"List{kind}sRequest").deserialize(raw)

            def respond() -> bytes:
                jobs = listed_under(
                    self.core, "vertex_ai", _VERTEX_PARENT, req, "location", job_type=entry[0]
                )
                # No order_by in these requests; served newest first (create_time desc, then id).
                page, token = paged(jobs, req.page_size, req.page_token, order_key([("create_time", True)]))
                items = [
                    self._vertex_message(j, f"{req.parent}/{collection}/{j.job_id}", entry) for j in page
                ]
                response = getattr(service, f"List{kind}sResponse")
                data: bytes = response.serialize(response(**{field: items, "next_page_token": token}))
                return data

            return await self.calls.serve(
                context, "vertex_ai", f"List{kind}s", None, req, respond, scope=req.parent
            )

        return handle

    def _vertex_modules(self) -> dict[str, ModuleType]:
        if self._vertex is None:
            prefix = "google.cloud.aiplatform_v1.types."
            names = ("job_service", "custom_job", "batch_prediction_job", "hyperparameter_tuning_job")
            self._vertex = import_types(prefix, names)
        return self._vertex

    def _vertex_handler(self, kind: str, cancel: bool) -> Handler:
        method = f"{'Cancel' if cancel else 'Get'}{kind}"

        async def handle(raw: bytes, context: grpc.aio.ServicerContext) -> bytes:
            if self._vertex is None:  # first call: import the heavy types off the event loop
                await asyncio.to_thread(self._vertex_modules)
            modules = self._vertex_modules()
            req = getattr(modules["job_service"], f"{method}Request").deserialize(raw)
            match = _VERTEX_NAME.match(req.name)
            job_id = match.group(4) if match else None
            return await self.calls.serve(
                context,
                "vertex_ai",
                method,
                job_id,
                req,
                lambda: self._vertex_respond(kind, req.name, cancel),
            )

        return handle

    def _vertex_respond(self, kind: str, name: str, cancel: bool) -> bytes:
        match = _VERTEX_NAME.match(name)
        entry = VERTEX_COLLECTIONS.get(match.group(3)) if match else None
        if match is None or entry is None or entry[2] != kind:
            raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, f"Invalid {kind} resource name: {name!r}.")
        project_id, location, _, job_id = match.groups()
        where = {"project_id": project_id, "location": location, "job_type": entry[0]}
        job = self.core.get_job("vertex_ai", job_id, **where)
        if job is None:
            raise RpcError(grpc.StatusCode.NOT_FOUND, f"The {kind} does not exist: {name}")
        if not cancel:
            return self._vertex_job(job, name, entry)
        if job.is_terminal():
            raise RpcError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"{kind} {name} is in state {job.state_at()} and cannot be cancelled.",
            )
        self.core.cancel_job("vertex_ai", job_id, "cancel", **where)
        return b""  # google.protobuf.Empty

    def _vertex_job(self, job: SimJob, name: str, entry: tuple[str, str, str]) -> bytes:
        message = self._vertex_message(job, name, entry)
        data: bytes = type(message).serialize(message)
        return data

    def _vertex_message(self, job: SimJob, name: str, entry: tuple[str, str, str]) -> Any:
        modules = self._vertex_modules()
        cls = getattr(modules[entry[1]], entry[2])
        snap = job.snapshot()
        fields = resource_fields(job, snap, name, modules["status_pb2"], prefix="JOB_STATE_", failed_code=13)
        return cls(**fields)
