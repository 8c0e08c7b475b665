"""Plaintext gRPC front for Dataproc, Dataflow (here) and Vertex AI (``vertex_grpc``).

The answers are the SDKs' own message types; call recording and faults are in ``grpc_common``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import grpc

from airflow_jobstatus.simulator.core import SimJob, SimulatorCore
from airflow_jobstatus.simulator.dataproc_batch_grpc import DataprocBatches
from airflow_jobstatus.simulator.grpc_common import GrpcCalls, Handler, RpcError, desc_text, paged, ts
from airflow_jobstatus.simulator.list_filters import FilterError, parse_filter
from airflow_jobstatus.simulator.vertex_grpc import (
    VERTEX_SERVICE,
    VertexJobs,
    dialects,
    filter_record,
    vertex_available,
)
from airflow_jobstatus.simulator.vertex_pipeline_grpc import VertexPipelines

DATAPROC_SERVICE = "google.cloud.dataproc.v1.JobController"
DATAFLOW_SERVICE = "google.dataflow.v1beta3.JobsV1Beta3"
DATAFLOW_DEFAULT_LOCATION = "us-central1"  # what the real API assumes when a request names none
#: A Dataproc job's ``type_job`` oneof field → its message class.
DATAPROC_JOB_CLASSES = {
    "spark_job": "SparkJob",
    "pyspark_job": "PySparkJob",
    "hadoop_job": "HadoopJob",
    "hive_job": "HiveJob",
    "pig_job": "PigJob",
    "spark_r_job": "SparkRJob",
    "spark_sql_job": "SparkSqlJob",
    "presto_job": "PrestoJob",
    "trino_job": "TrinoJob",
    "flink_job": "FlinkJob",
}


class GoogleGrpcServicer(GrpcCalls):
    """The three Google job services over one core; ``generic_handlers()`` plugs into a grpc.aio server."""

    def __init__(self, core: SimulatorCore):
        super().__init__(core)
        from google.cloud.dataflow_v1beta3.types import jobs as dataflow_jobs
        from google.cloud.dataproc_v1.types import jobs as dataproc_jobs

        self._dp = dataproc_jobs
        self._df = dataflow_jobs

    def generic_handlers(self, with_vertex: bool | None = None) -> list[grpc.GenericRpcHandler]:
        """One generic handler per service; Vertex AI only when its SDK is installed."""
        services: dict[str, dict[str, Handler]] = {
            DATAPROC_SERVICE: {
                "GetJob": self._dataproc_get,
                "CancelJob": self._dataproc_cancel,
                "SubmitJob": self._dataproc_submit,
                "ListJobs": self._dataproc_list,
            },
            DATAFLOW_SERVICE: {
                "GetJob": self._dataflow_get,
                "UpdateJob": self._dataflow_update,
                "ListJobs": self._dataflow_list,
            },
        }
        services.update(DataprocBatches(self).handlers())
        if vertex_available() if with_vertex is None else with_vertex:
            services[VERTEX_SERVICE] = VertexJobs(self).handlers()
            services.update(VertexPipelines(self).handlers())
        return [
            grpc.method_handlers_generic_handler(
                name, {m: grpc.unary_unary_rpc_method_handler(fn) for m, fn in methods.items()}
            )
            for name, methods in services.items()
        ]

    # ---- Dataproc ---------------------------------------------------------------------------------

    def _dataproc_job(self, job: SimJob) -> bytes:
        data: bytes = self._dp.Job.serialize(self._dataproc_message(job))
        return data

    def _dataproc_message(self, job: SimJob) -> Any:
        dp = self._dp
        snap = job.snapshot()
        state = snap["state"]
        details = snap.get("details")
        if details is None and state == "ERROR":
            details = "Google Cloud Dataproc Agent reports job failure."
        if details is None and state == "ATTEMPT_FAILURE":
            details = "Job attempt failed; the job will be restarted."
        status = dp.JobStatus(
            state=state,
            substate=snap.get("substate") or "UNSPECIFIED",
            details=details or "",
            state_start_time=ts(snap["state_start_wall"]),
        )
        history = [dp.JobStatus(state=s, state_start_time=ts(t)) for s, t in snap["history"]]
        kind = str(job.meta.get("type") or "spark_job")
        message = dp.Job(
            {kind: getattr(dp, DATAPROC_JOB_CLASSES[kind])()},
            reference=dp.JobReference(project_id=job.where["project_id"], job_id=job.job_id),
            placement=dp.JobPlacement(cluster_name=_cluster(job, snap)),
            labels=dict(job.meta.get("labels") or {}),
            status=status,
            status_history=history,
            job_uuid=str(uuid.uuid5(uuid.NAMESPACE_URL, f"dataproc/{job.job_id}")),
            done=job.is_terminal(),
            # Where Dataproc writes the driver's output: the cluster's staging bucket, per job.
            driver_output_resource_uri=(
                f"gs://sim-dataproc-staging/google-cloud-dataproc-metainfo/"
                f"{_cluster(job, snap)}/jobs/{job.job_id}/driveroutput"
            ),
        )
        return message

    def _dataproc_lookup(self, project_id: str, region: str, job_id: str) -> SimJob:
        job = self.core.get_job("dataproc", job_id, project_id=project_id, region=region)
        if job is None:
            raise RpcError(
                grpc.StatusCode.NOT_FOUND,
                f"Not found: Job projects/{project_id}/regions/{region}/jobs/{job_id}",
            )
        return job

    async def _dataproc_get(self, raw: bytes, context: grpc.aio.ServicerContext) -> bytes:
        req = self._dp.GetJobRequest.deserialize(raw)
        return await self.serve(
            context,
            "dataproc",
            "GetJob",
            req.job_id,
            req,
            lambda: self._dataproc_job(self._dataproc_lookup(req.project_id, req.region, req.job_id)),
        )

    async def _dataproc_list(self, raw: bytes, context: grpc.aio.ServicerContext) -> bytes:
        """ListJobs: the region's jobs, newest first (the API documents no order), by
        ``cluster_name`` and ``filter`` (``list_filters.google_dialects()["dataproc"]``) or, without
        a filter, ``job_state_matcher`` ACTIVE (not terminal) / NON_ACTIVE / ALL; paged."""
        dp = self._dp
        req = dp.ListJobsRequest.deserialize(raw)
        matcher = dp.ListJobsRequest.JobStateMatcher(req.job_state_matcher).name

        def respond() -> bytes:
            try:
                keep = parse_filter(req.filter, dialects()["dataproc"])
            except FilterError as err:
                raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, f"Invalid filter: {err}") from None
            jobs = self.core.listed_jobs("dataproc", project_id=req.project_id, region=req.region)
            if req.cluster_name:
                jobs = [j for j in jobs if _cluster(j, j.phase_at()[0]) == req.cluster_name]
            now = time.monotonic()
            if req.filter:  # "If filter is provided, jobStateMatcher will be ignored."
                jobs = [j for j in jobs if keep(filter_record(j, now))]
            elif matcher != "ALL":
                jobs = [j for j in jobs if j.is_terminal(now) == (matcher == "NON_ACTIVE")]
            page, token = paged(jobs, req.page_size, req.page_token, lambda j: [-j.created_wall])
            answer = dp.ListJobsResponse(
                jobs=[self._dataproc_message(j) for j in page], next_page_token=token
            )
            data: bytes = dp.ListJobsResponse.serialize(answer)
            return data

        scope = f"projects/{req.project_id}/regions/{req.region}"
        return await self.serve(context, "dataproc", "ListJobs", None, req, respond, scope=scope)

    async def _dataproc_cancel(self, raw: bytes, context: grpc.aio.ServicerContext) -> bytes:
        req = self._dp.CancelJobRequest.deserialize(raw)

        def respond() -> bytes:
            job = self._dataproc_lookup(req.project_id, req.region, req.job_id)
            if job.is_terminal():
                raise RpcError(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"Job {req.job_id} cannot be cancelled: it is in state {job.state_at()}.",
                )
            self.core.cancel_job(
                "dataproc", req.job_id, "cancel", project_id=req.project_id, region=req.region
            )
            return self._dataproc_job(job)

        return await self.serve(context, "dataproc", "CancelJob", req.job_id, req, respond)

    async def _dataproc_submit(self, raw: bytes, context: grpc.aio.ServicerContext) -> bytes:
        req = self._dp.SubmitJobRequest.deserialize(raw)
        job_id = req.job.reference.job_id or None
        meta: dict[str, Any] = {"labels": dict(req.job.labels)}
        kind = self._dp.Job.pb(req.job).WhichOneof("type_job")
        if kind in DATAPROC_JOB_CLASSES:
            meta["type"] = kind
        if req.job.placement.cluster_name:
            meta["cluster_name"] = req.job.placement.cluster_name

        def respond() -> bytes:
            where = {"project_id": req.project_id, "region": req.region}
            if job_id and self.core.get_job("dataproc", job_id, **where) is not None:
                raise RpcError(
                    grpc.StatusCode.ALREADY_EXISTS,
                    f"Already exists: Failed to submit job: Job projects/{req.project_id}/regions/"
                    f"{req.region}/jobs/{job_id}",
                )
            return self._dataproc_job(self.core.create_job("dataproc", job_id, meta=meta, **where))

        return await self.serve(context, "dataproc", "SubmitJob", job_id, req, respond)

    # ---- Dataflow ---------------------------------------------------------------------------------

    def _dataflow_job(self, job: SimJob) -> bytes:
        data: bytes = self._df.Job.serialize(self._dataflow_message(job))
        return data

    def _dataflow_message(self, job: SimJob) -> Any:
        df = self._df
        snap = job.snapshot()
        requested = {"cancel": "JOB_STATE_CANCELLED", "drain": "JOB_STATE_DRAINED"}
        message = df.Job(
            id=job.job_id,
            project_id=job.where["project_id"],
            location=job.where["location"],
            name=str(job.meta.get("name") or snap.get("name", job.job_id)),
            type_=job.meta.get("type") or snap.get("type", "JOB_TYPE_BATCH"),
            labels=dict(job.meta.get("labels") or {}),
            current_state=snap["state"],
            current_state_time=ts(snap["state_start_wall"]),
            create_time=ts(job.created_wall),
            requested_state=requested.get(job.actions[-1], 0) if job.actions else 0,
        )
        return message

    def _dataflow_lookup(self, project_id: str, location: str, job_id: str) -> SimJob:
        job = self.core.get_job("dataflow", job_id, project_id=project_id, location=location)
        if job is None:
            raise RpcError(
                grpc.StatusCode.NOT_FOUND,
                f"(job) Information about job {job_id} could not be found in our system. Please double "
                f"check that the id ({job_id}), project ({project_id}) and location ({location}) are correct.",
            )
        return job

    async def _dataflow_get(self, raw: bytes, context: grpc.aio.ServicerContext) -> bytes:
        req = self._df.GetJobRequest.deserialize(raw)
        location = req.location or DATAFLOW_DEFAULT_LOCATION
        return await self.serve(
            context,
            "dataflow",
            "GetJob",
            req.job_id,
            req,
            lambda: self._dataflow_job(self._dataflow_lookup(req.project_id, location, req.job_id)),
        )

    async def _dataflow_list(self, raw: bytes, context: grpc.aio.ServicerContext) -> bytes:
        """ListJobs: the location's jobs by ``filter`` and ``name``, in the documented orders (newest
        first where the docs leave the direction open): UNKNOWN every job by descending id (the
        JobUuid), ACTIVE by creation time, TERMINATED by termination time, ALL the active ones by
        creation time then the terminated ones by termination time; paged."""
        df = self._df
        req = df.ListJobsRequest.deserialize(raw)
        location = req.location or DATAFLOW_DEFAULT_LOCATION
        which = df.ListJobsRequest.Filter(req.filter).name
        name = req.name if "name" in req else None

        def respond() -> bytes:
            jobs = self.core.listed_jobs("dataflow", project_id=req.project_id, location=location)
            if name:
                jobs = [
                    j
                    for j in jobs
                    if str(j.meta.get("name") or j.phase_at()[0].get("name", j.job_id)) == name
                ]
            now = time.monotonic()
            if which in ("ACTIVE", "TERMINATED"):
                jobs = [j for j in jobs if j.is_terminal(now) == (which == "TERMINATED")]
            page, token = paged(jobs, req.page_size, req.page_token, _dataflow_order(which, now))
            answer = df.ListJobsResponse(
                jobs=[self._dataflow_message(j) for j in page], next_page_token=token
            )
            data: bytes = df.ListJobsResponse.serialize(answer)
            return data

        scope = f"projects/{req.project_id}/locations/{location}"
        return await self.serve(context, "dataflow", "ListJobs", None, req, respond, scope=scope)

    async def _dataflow_update(self, raw: bytes, context: grpc.aio.ServicerContext) -> bytes:
        req = self._df.UpdateJobRequest.deserialize(raw)
        location = req.location or DATAFLOW_DEFAULT_LOCATION
        raw_state = req.job.requested_state
        requested = str(getattr(raw_state, "name", raw_state))

        def respond() -> bytes:
            job = self._dataflow_lookup(req.project_id, location, req.job_id)
            action = {"JOB_STATE_CANCELLED": "cancel", "JOB_STATE_DRAINED": "drain"}.get(requested)
            if action is None:
                raise RpcError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"Unsupported requested_state {requested or 'unset'}: the simulator supports "
                    "JOB_STATE_CANCELLED and JOB_STATE_DRAINED.",
                )
            if job.is_terminal():
                raise RpcError(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"Workflow modification failed. Causes: (job) Could not modify workflow; job "
                    f"{req.job_id} is in state {job.state_at()}.",
                )
            self.core.cancel_job("dataflow", req.job_id, action, project_id=req.project_id, location=location)
            return self._dataflow_job(job)

        return await self.serve(context, "dataflow", "UpdateJob", req.job_id, req, respond)


def _cluster(job: SimJob, payload: dict[str, Any]) -> str:
    """A Dataproc job's cluster: the job's ``cluster_name``, a phase's, else ``sim-cluster``."""
    return str(job.meta.get("cluster_name") or payload.get("cluster_name") or "sim-cluster")


def _dataflow_order(which: str, now: float) -> Callable[[SimJob], list[Any]]:
    def key(job: SimJob) -> list[Any]:
        ended = job.ended_wall(now)
        if which == "UNKNOWN":
            return [desc_text(job.job_id)]
        if ended is None:
            return [0, -job.created_wall]
        return [1, -ended]

    return key


async def start_grpc_server(core: SimulatorCore, host: str, port: int) -> tuple[grpc.aio.Server, int]:
    """Start a plaintext grpc.aio server for the three Google services; returns it and its bound port.

    SO_REUSEPORT is off, so a port another server (gRPC included) listens on is refused: OSError.
    """
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    server.add_generic_rpc_handlers(tuple(GoogleGrpcServicer(core).generic_handlers()))
    try:
        bound = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError as err:  # "Failed to bind to address ..."
        raise OSError(f"Could not bind the gRPC simulator to {host}:{port}: {err}") from err
    if not bound:
        raise OSError(f"Could not bind the gRPC simulator to {host}:{port}.")
    await server.start()
    return server, bound
