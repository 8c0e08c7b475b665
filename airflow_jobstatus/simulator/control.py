"""The unauthenticated /_sim/ control API: health, stats, calls, jobs, faults, default timelines, reset.

Routes and JSON shapes (benchmarks and test harnesses rely on them):

- ``GET /_sim/health`` → ``{"status": "ok"}``
- ``GET /_sim/stats`` → ``SimulatorCore.stats()``
- ``GET /_sim/calls?service=&job_id=`` → ``{"service", "job_id", "count", "last"}``
- ``GET /_sim/calls?kind=list[&service=&method=&scope=&since=&until=&interval=&log=false]`` → the
  list-call log: ``{"since", "until", "count", "polls", "counts": {service: {method: {scope: n}}},
  "calls": [{"time", "service", "method", "scope", "page", "first_page"}]}``; ``since``/``until``
  are unix seconds (``since <= time < until``), ``polls`` counts first pages only (one per poll,
  whatever the pages followed), ``interval`` adds ``"polls_by_interval": {"start", "interval",
  "buckets": {"<n>": {"<service> <method> <scope>": polls}}}`` (bucket n covers
  ``[start + n*interval, start + (n+1)*interval)``), ``log=false`` leaves ``calls`` out. Scopes:
  Dataproc ``projects/P/regions/R``; Dataflow ``projects/P/locations/L``; Vertex AI, pipelines and
  batches the request's ``parent``; DLI ``projects/P`` (``/queues/Q`` with ``queue_name``); DLI
  Flink ``projects/P``; CDM ``projects/P/clusters/C``.
- ``POST /_sim/jobs`` ``{service, job_id, timeline, <where-keys>}`` → 201 ``{"service", "job_id",
  "state", "where", "meta", "created"}`` (a CDM job with ``"timeline": null`` is declared but never
  started). A job started outside any DAG: ``job_id`` optional (a fresh one, in the service's id
  form), ``timeline`` optional (the service's default one), ``started_ago`` (seconds; the job and
  its timeline began that long ago), ``labels`` ``{k: v}`` (Google), ``tags`` ``{k: v}`` or
  ``[{key, value}]`` (DLI SQL and Flink), ``name`` (Dataflow, Vertex AI ``display_name``, DLI
  Flink), ``type`` (the native job type: Dataproc ``spark_job``…, Dataflow ``JOB_TYPE_STREAMING``,
  batches ``pyspark_batch``…, DLI SQL ``QUERY``…, Flink ``flink_jar_job``…, CDM ``NORMAL_JOB``…),
  ``statement`` and ``queue_name`` (DLI SQL), ``cluster_name`` (Dataproc). The list calls serve
  these (``SimulatorCore.start_job``).
- ``POST /_sim/faults`` ``{kind, count, service, job_id, seconds, method}`` → 201 ``{"pending": [...]}``
  (``method``: only calls of that method, e.g. ``CreateSqlJob``)
- ``POST /_sim/default-timelines`` ``{service, timeline, job_type}`` → ``{"service"}``
- ``POST /_sim/reset`` → ``{"reset": true}``

A bad argument (unknown service, timeline or fault kind, missing field) is a 400 with the reason.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from airflow_jobstatus.simulator.core import SimJob, SimulatorCore
from airflow_jobstatus.simulator.http import BadRequest, Handler, json_response, read_json

PREFIX = "/_sim"


class ControlApi:
    def __init__(self, core: SimulatorCore):
        self.core = core

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(PREFIX + "/health", self._checked(self.health)),
            web.get(PREFIX + "/stats", self._checked(self.stats)),
            web.get(PREFIX + "/calls", self._checked(self.calls)),
            web.post(PREFIX + "/jobs", self._checked(self.add_job)),
            web.post(PREFIX + "/faults", self._checked(self.inject_fault)),
            web.post(PREFIX + "/default-timelines", self._checked(self.set_default_timeline)),
            web.post(PREFIX + "/reset", self._checked(self.reset)),
        ]

    @staticmethod
    def _checked(handler: Handler) -> Handler:
        """A ValueError, TypeError or KeyError from the core (a bad argument) becomes a 400."""

        async def handle(request: web.Request) -> web.StreamResponse:
            try:
                return await handler(request)
            except (ValueError, TypeError, KeyError) as err:
                raise BadRequest(str(err)) from None

        return handle

    async def health(self, request: web.Request) -> web.Response:
        return json_response(200, {"status": "ok"})

    async def stats(self, request: web.Request) -> web.Response:
        return json_response(200, self.core.stats())

    async def calls(self, request: web.Request) -> web.Response:
        if request.query.get("kind") == "list":
            return json_response(200, self._list_calls(request.query))
        service = request.query.get("service")
        if not service:
            raise ValueError("query parameter 'service' is required")
        job_id = request.query.get("job_id") or None
        last = self.core.last_request(service, job_id) if job_id else None
        count = self.core.calls(service, job_id)
        return json_response(200, {"service": service, "job_id": job_id, "count": count, "last": last})

    async def add_job(self, request: web.Request) -> web.Response:
        body = await _object(request)
        service, job_id = body.pop("service", None), body.pop("job_id", None)
        timeline = body.pop("timeline", None)
        if not isinstance(service, str) or not (job_id is None or isinstance(job_id, str)):
            raise ValueError("'service' is a required string and 'job_id' a string when given")
        if service == "cdm" and timeline is None:
            if not job_id:
                raise ValueError("a CDM job needs its 'job_id' (the job's name)")
            self.core.define_cdm_job(job_id, **body)
            return json_response(201, {"service": service, "job_id": job_id, "state": "NEVER_EXECUTED"})
        started_ago = body.pop("started_ago", 0.0)
        job = self.core.start_job(service, job_id, timeline, started_ago=started_ago, **body)
        return json_response(201, _job_summary(job))

    def _list_calls(self, query: Any) -> dict[str, Any]:
        since, until = _seconds(query, "since"), _seconds(query, "until")
        calls = self.core.list_calls(
            query.get("service") or None,
            query.get("method") or None,
            query.get("scope") or None,
            since,
            until,
        )
        counts: dict[str, dict[str, dict[str, int]]] = {}
        for call in calls:
            per_method = counts.setdefault(call["service"], {}).setdefault(call["method"], {})
            per_method[call["scope"]] = per_method.get(call["scope"], 0) + 1
        polls = [c for c in calls if c["first_page"]]
        out: dict[str, Any] = {"since": since, "until": until, "count": len(calls), "polls": len(polls)}
        out["counts"] = counts
        interval = _seconds(query, "interval")
        if interval is not None:
            if interval <= 0:
                raise ValueError("'interval' must be a positive number of seconds")
            start = since if since is not None else (polls[0]["time"] if polls else 0.0)
            buckets: dict[str, dict[str, int]] = {}
            for call in polls:
                slot = str(int((call["time"] - start) // interval))
                key = f"{call['service']} {call['method']} {call['scope']}"
                buckets.setdefault(slot, {})[key] = buckets.setdefault(slot, {}).get(key, 0) + 1
            out["polls_by_interval"] = {"start": start, "interval": interval, "buckets": buckets}
        if query.get("log", "true").lower() != "false":
            out["calls"] = calls
        return out

    async def inject_fault(self, request: web.Request) -> web.Response:
        body = await _object(request)
        kind = body.get("kind")
        if not isinstance(kind, str):
            raise ValueError("'kind' is required")
        self.core.inject_fault(
            kind,
            int(body.get("count", 1)),
            body.get("service"),
            body.get("job_id"),
            body.get("seconds"),
            body.get("method"),
        )
        return json_response(201, {"pending": self.core.pending_faults()})

    async def set_default_timeline(self, request: web.Request) -> web.Response:
        body = await _object(request)
        self.core.set_default_timeline(body["service"], body["timeline"], body.get("job_type"))
        return json_response(200, {"service": body["service"]})

    async def reset(self, request: web.Request) -> web.Response:
        self.core.reset()
        return json_response(200, {"reset": True})


def _job_summary(job: SimJob) -> dict[str, Any]:
    return {
        "service": job.service,
        "job_id": job.ref,
        "state": job.state_at(),
        "where": dict(job.where),
        "meta": dict(job.meta),
        "created": job.created_wall,
    }


def _seconds(query: Any, name: str) -> float | None:
    text = query.get(name)
    if text in (None, ""):
        return None
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{name!r} must be a number of seconds, got {text!r}") from None


async def _object(request: web.Request) -> dict[str, Any]:
    body = await read_json(request)
    if not isinstance(body, dict):
        raise ValueError("the request body must be a JSON object")
    return body
