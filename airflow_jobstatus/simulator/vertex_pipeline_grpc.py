"""Vertex AI's PipelineService over gRPC: GetPipelineJob, CancelPipelineJob, ListPipelineJobs, with
the SDK's own messages. Served only when google-cloud-aiplatform is installed (its types are imported
off the event loop on the first call).

Phase payload keys: ``error`` (the job's error message), ``task_details`` (a list of
``{"task_name", "state"}`` with ``PipelineTaskDetail.State`` names, optional ``task_id``,
``parent_task_id`` and ``error``). Calls, faults and errors go through ``GrpcCalls.serve``.
"""

from __future__ import annotations

import asyncio
import re
from types import ModuleType
from typing import Any

import grpc

from airflow_jobstatus.simulator.core import SimJob
from airflow_jobstatus.simulator.grpc_common import GrpcCalls, Handler, RpcError, import_types, paged, ts
from airflow_jobstatus.simulator.list_filters import PIPELINE_ORDER_FIELDS, FilterError, parse_order_by
from airflow_jobstatus.simulator.vertex_grpc import listed_under, order_key, resource_fields

SERVICE = "vertex_pipeline"
PIPELINE_SERVICE = "google.cloud.aiplatform.v1.PipelineService"
_NAME = re.compile(r"^projects/([^/]+)/locations/([^/]+)/pipelineJobs/([^/]+)$")
_PARENT = re.compile(r"^projects/([^/]+)/locations/([^/]+)$")
#: Task states after which a task has an end time.
_TASK_DONE = frozenset({"SUCCEEDED", "FAILED", "CANCELLED", "SKIPPED", "NOT_TRIGGERED"})
_TASK_NOT_STARTED = frozenset({"STATE_UNSPECIFIED", "PENDING", "NOT_TRIGGERED"})


class VertexPipelines:
    """PipelineService handlers over ``calls`` (the shared record/fault/answer path)."""

    def __init__(self, calls: GrpcCalls):
        self.calls = calls
        self.core = calls.core
        self._modules: dict[str, ModuleType] | None = None

    def handlers(self) -> dict[str, dict[str, Handler]]:
        return {
            PIPELINE_SERVICE: {
                "GetPipelineJob": self._named("GetPipelineJob", cancel=False),
                "CancelPipelineJob": self._named("CancelPipelineJob", cancel=True),
                "ListPipelineJobs": self._list,
            }
        }

    def modules(self) -> dict[str, ModuleType]:
        if self._modules is None:
            prefix = "google.cloud.aiplatform_v1.types."
            self._modules = import_types(prefix, ("pipeline_service", "pipeline_job"))
        return self._modules

    async def _loaded(self) -> dict[str, ModuleType]:
        if self._modules is None:  # first call: import the heavy types off the event loop
            await asyncio.to_thread(self.modules)
        return self.modules()

    # ---- messages -------------------------------------------------------------------------------

    def message(self, job: SimJob, name: str) -> Any:
        modules = self.modules()
        pj = modules["pipeline_job"]
        snap = job.snapshot()
        fields = resource_fields(
            job, snap, name, modules["status_pb2"], prefix="PIPELINE_STATE_", failed_code=9
        )
        details = [self._task(pj, t, i, job, snap) for i, t in enumerate(snap.get("task_details") or [])]
        if details:
            fields["job_detail"] = pj.PipelineJobDetail(task_details=details)
        return pj.PipelineJob(**fields)

    def _task(self, pj: ModuleType, task: dict[str, Any], i: int, job: SimJob, snap: dict[str, Any]) -> Any:
        state = str(task.get("state", "PENDING"))
        detail: dict[str, Any] = {
            "task_id": int(task.get("task_id", i + 1)),
            "parent_task_id": int(task.get("parent_task_id", 0)),
            "task_name": str(task.get("task_name", f"task-{i + 1}")),
            "state": state,
            "create_time": ts(job.created_wall),
        }
        if state not in _TASK_NOT_STARTED:
            detail["start_time"] = ts(job.created_wall)
        if state in _TASK_DONE:
            detail["end_time"] = ts(snap["state_start_wall"])
        if task.get("error"):
            detail["error"] = self.modules()["status_pb2"].Status(code=9, message=str(task["error"]))
        return pj.PipelineTaskDetail(**detail)

    # ---- handlers -------------------------------------------------------------------------------

    def _named(self, method: str, cancel: bool) -> Handler:
        async def handle(raw: bytes, context: grpc.aio.ServicerContext) -> bytes:
            modules = await self._loaded()
            req = getattr(modules["pipeline_service"], f"{method}Request").deserialize(raw)
            match = _NAME.match(req.name)
            job_id = match.group(3) if match else None
            return await self.calls.serve(
                context, SERVICE, method, job_id, req, lambda: self._respond(req.name, cancel)
            )

        return handle

    def _respond(self, name: str, cancel: bool) -> bytes:
        match = _NAME.match(name)
        if match is None:
            raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, f"Invalid PipelineJob resource name: {name!r}.")
        project_id, location, job_id = match.groups()
        job = self.core.get_job(SERVICE, job_id, project_id=project_id, location=location)
        if job is None:
            raise RpcError(grpc.StatusCode.NOT_FOUND, f"The PipelineJob does not exist: {name}")
        if not cancel:
            message = self.message(job, name)
            data: bytes = type(message).serialize(message)
            return data
        if job.is_terminal():
            raise RpcError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"PipelineJob {name} is in state {job.state_at()} and cannot be cancelled.",
            )
        self.core.cancel_job(SERVICE, job_id, "cancel", project_id=project_id, location=location)
        return b""  # google.protobuf.Empty

    async def _list(self, raw: bytes, context: grpc.aio.ServicerContext) -> bytes:
        """ListPipelineJobs: the location's jobs by ``filter`` (``list_filters.google_dialects``),
        ``order_by`` (create_time, update_time, end_time, start_time, each optionally ``desc``;
        default ``create_time desc``), paged."""
        service = (await self._loaded())["pipeline_service"]
        req = service.ListPipelineJobsRequest.deserialize(raw)

        def respond() -> bytes:
            try:
                order = parse_order_by(req.order_by, PIPELINE_ORDER_FIELDS, "ListPipelineJobs")
            except FilterError as err:
                raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, str(err)) from None
            jobs = listed_under(self.core, SERVICE, _PARENT, req, "location")
            key = order_key(order or [("create_time", True)])
            page, token = paged(jobs, req.page_size, req.page_token, key)
            items = [self.message(j, f"{req.parent}/pipelineJobs/{j.job_id}") for j in page]
            answer = service.ListPipelineJobsResponse(pipeline_jobs=items, next_page_token=token)
            data: bytes = service.ListPipelineJobsResponse.serialize(answer)
            return data

        return await self.calls.serve(
            context, SERVICE, "ListPipelineJobs", None, req, respond, scope=req.parent
        )
