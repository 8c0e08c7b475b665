"""The board's FastAPI app (mounted by the API server under ``/cloud-jobs``): the page and its data API.

``GET /api/jobs`` requires what the API server's own task-instance and XCom list routes require
(``requires_access_dag`` with the TASK_INSTANCE and XCOM entities) and lists only the DAGs the auth
manager lets the user read (``get_authorized_dag_ids``), exactly as ``GET /api/v2/.../taskInstances``
filters them. It is built on the first request, so no other Airflow process imports FastAPI for it.
"""

from __future__ import annotations

import importlib.resources
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any
from urllib.parse import urlsplit

from airflow.api_fastapi.core_api.security import GetUserDep
from fastapi import Depends, FastAPI, HTTPException, Query
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from airflow_jobstatus.ui import board, watched
from airflow_jobstatus.ui.live import LiveReader, LiveRequest, Reading

#: Config section of the board's settings (``AIRFLOW__JOBSTATUS_UI__<KEY>``).
SECTION = "jobstatus_ui"
#: The longest window the API accepts (hours).
MAX_HOURS = 24 * 7
#: How long a request waits for the live reads it started before answering with what it has.
LIVE_WAIT = 5.0

STATIC = {
    "index.html": "text/html; charset=utf-8",
    "board.js": "text/javascript; charset=utf-8",
    "board.css": "text/css; charset=utf-8",
    "icon.svg": "image/svg+xml",
}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'self'; base-uri 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def _setting(key: str, fallback: Any) -> Any:
    from airflow.configuration import conf

    if isinstance(fallback, bool):
        return conf.getboolean(SECTION, key, fallback=fallback)
    return conf.getfloat(SECTION, key, fallback=fallback)


def ui_base() -> str:
    """The path the Airflow UI is served under (``[api] base_url``), "" at the root."""
    from airflow.configuration import conf

    return urlsplit(conf.get("api", "base_url", fallback="") or "").path.rstrip("/")


def _static(name: str) -> Response:
    if name not in STATIC:
        raise HTTPException(404, "Not found")
    body = importlib.resources.files("airflow_jobstatus.ui").joinpath("static", name).read_bytes()
    return Response(body, media_type=STATIC[name], headers=SECURITY_HEADERS | {"Cache-Control": "no-cache"})


def _read_access() -> list[Any]:
    """The dependencies of the API server's task-instance and XCom list routes."""
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.core_api.security import requires_access_dag

    return [
        Depends(requires_access_dag(method="GET", access_entity=DagAccessEntity.TASK_INSTANCE)),
        Depends(requires_access_dag(method="GET", access_entity=DagAccessEntity.XCOM)),
    ]


def _readable_dag_ids(user: Any) -> set[str]:
    from airflow.api_fastapi.app import get_auth_manager

    return set(get_auth_manager().get_authorized_dag_ids(user=user, method="GET"))


def _collect(dag_ids: set[str], since: datetime, dag_id: str | None) -> list[board.TaskJob]:
    from airflow.utils.session import create_session

    with create_session() as session:
        return board.collect(session, dag_ids, since, dag_id=dag_id)


def _watched(dag_ids: set[str], since: datetime, dag_id: str | None, base: str) -> list[dict[str, Any]]:
    """Rows of the jobs asset watchers saw end (ui/watched.py), for the DAGs scheduled on their assets."""
    from airflow.utils.session import create_session

    permitted = dag_ids if dag_id is None else dag_ids & {dag_id}
    with create_session() as session:
        found = watched.rows(session, permitted, since, base)
    return [row for row in found if dag_id is None or row["dag_id"] == dag_id]


def _live_requests(found: list[Any]) -> dict[str, LiveRequest]:
    """The live read each shown job wants, by row (at most one per job per its poll interval)."""
    default_interval = float(_setting("default_poll_interval", 60.0))
    floor = float(_setting("min_poll_interval", 1.0))
    return {
        job.row_id: LiveRequest(
            service=job.service,
            ref=job.ref,
            interval=max(job.poll_interval or default_interval, floor),
            conn_id=job.conn_id,
            impersonation_chain=job.impersonation_chain,
        )
        for job in found
        if job.wants_live() and job.ref is not None
    }


async def _readings(reader: LiveReader, requests: dict[str, LiveRequest], live: bool) -> dict[str, Reading]:
    """Fresh readings (``live``), or only what earlier reads found."""
    if live:
        return await reader.read_many(requests.values(), wait=LIVE_WAIT)
    return {r.key: cached for r in requests.values() if (cached := reader.cached(r)) is not None}


def create_app(reader: LiveReader | None = None) -> FastAPI:
    """The page and ``GET /api/jobs``; ``reader`` is the process's live-read cache (a fresh one by default)."""
    live_reader = reader or LiveReader()
    app = FastAPI(title="Cloud jobs", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.live_reader = live_reader

    @app.get("/", include_in_schema=False)
    def index() -> Response:
        return _static("index.html")

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        return _static(name)

    @app.get("/api/jobs", dependencies=_read_access())
    async def jobs(
        user: GetUserDep,
        service: Annotated[str | None, Query()] = None,
        state: Annotated[str | None, Query()] = None,
        dag_id: Annotated[str | None, Query()] = None,
        hours: Annotated[float, Query(gt=0, le=MAX_HOURS)] = 24.0,
        live: Annotated[bool, Query()] = True,
    ) -> JSONResponse:
        now = datetime.now(timezone.utc)
        dag_ids = await run_in_threadpool(_readable_dag_ids, user)
        found = await run_in_threadpool(_collect, dag_ids, now - timedelta(hours=hours), dag_id)
        dags = sorted({job.dag_id for job in found})
        if service:  # before the live reads: a filtered-out job is not read
            found = [job for job in found if job.service == service]

        live = live and bool(_setting("live_refresh", True))
        requests = _live_requests(found)
        readings = await _readings(live_reader, requests, live)

        base = ui_base()
        rows = [
            board.make_row(
                job, readings.get(requests[job.row_id].key) if job.row_id in requests else None, base
            )
            for job in found
        ]
        rows += await run_in_threadpool(_watched, dag_ids, now - timedelta(hours=hours), dag_id, base)
        if service:
            rows = [r for r in rows if r["service"] == service]
        if state:
            rows = [r for r in rows if (r["state"] or "") == state]
        rows.sort(key=board.sort_key, reverse=True)
        body = {
            "generated_at": now.isoformat().replace("+00:00", "Z"),
            "window_hours": hours,
            "live": live,
            **board.vocabulary(),
            "dags": dags,
            "truncated": len(found) >= board.MAX_ROWS,
            "jobs": rows,
        }
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    return app
