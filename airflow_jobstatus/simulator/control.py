"""The unauthenticated /_sim/ control API: health, stats, calls, jobs, faults, default timelines, reset.

Routes and JSON shapes (benchmarks and test harnesses rely on them):

- ``GET /_sim/health`` → ``{"status": "ok"}``
- ``GET /_sim/stats`` → ``SimulatorCore.stats()``
- ``GET /_sim/calls?service=&job_id=`` → ``{"service", "job_id", "count", "last"}``
- ``POST /_sim/jobs`` ``{service, job_id, timeline, <where-keys>}`` → 201 ``{"service", "job_id", "state"}``
  (a CDM job with ``"timeline": null`` is declared but never started)
- ``POST /_sim/faults`` ``{kind, count, service, job_id, seconds}`` → 201 ``{"pending": [...]}``
- ``POST /_sim/default-timelines`` ``{service, timeline, job_type}`` → ``{"service"}``
- ``POST /_sim/reset`` → ``{"reset": true}``

A bad argument (unknown service, timeline or fault kind, missing field) is a 400 with the reason.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from airflow_jobstatus.simulator.core import SimulatorCore
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
        if not isinstance(service, str) or not isinstance(job_id, str):
            raise ValueError("'service' and 'job_id' are required strings")
        if service == "cdm" and timeline is None:
            self.core.define_cdm_job(job_id, **body)
            return json_response(201, {"service": service, "job_id": job_id, "state": "NEVER_EXECUTED"})
        job = self.core.add_job(service, job_id, timeline, **body)
        return json_response(201, {"service": service, "job_id": job.ref, "state": job.state_at()})

    async def inject_fault(self, request: web.Request) -> web.Response:
        body = await _object(request)
        kind = body.get("kind")
        if not isinstance(kind, str):
            raise ValueError("'kind' is required")
        self.core.inject_fault(
            kind, int(body.get("count", 1)), body.get("service"), body.get("job_id"), body.get("seconds")
        )
        return json_response(201, {"pending": self.core.pending_faults()})

    async def set_default_timeline(self, request: web.Request) -> web.Response:
        body = await _object(request)
        self.core.set_default_timeline(body["service"], body["timeline"], body.get("job_type"))
        return json_response(200, {"service": body["service"]})

    async def reset(self, request: web.Request) -> web.Response:
        self.core.reset()
        return json_response(200, {"reset": True})


async def _object(request: web.Request) -> dict[str, Any]:
    body = await read_json(request)
    if not isinstance(body, dict):
        raise ValueError("the request body must be a JSON object")
    return body
