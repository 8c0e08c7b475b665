"""The Cloud jobs page's rows for jobs an asset watcher saw end (``JobEventTrigger``'s asset events).

A watcher's event is stored by Airflow as an ``asset_event`` row whose ``extra`` is
``{"from_trigger": true, "payload": <the trigger's payload>}``; ours carries ``status`` (a
``JobStatus`` dict), ``console_url``, ``dedupe_key``, ``service``, ``job_id`` and ``state``. A row
is shown to a user who may read a DAG scheduled on that asset (the same DAG-level read the page's
task rows need), named by the first consumer DAG run the event created. What leaves this module is
the board's row shape (``board.make_row``'s keys), so the page renders it unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow_jobstatus.core.states import JobStatus
from airflow_jobstatus.services import REGISTRY

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

#: The keys that make an asset event's payload ours (JobEventTrigger's payload).
PAYLOAD_KEYS = frozenset({"status", "dedupe_key", "service", "job_id", "state"})
#: The row's ``source``: the status came from a watcher's asset event.
SOURCE = "watcher"
#: What the row's task-state column says (a watcher's row has no task instance).
TASK_STATE = "asset event"


@dataclass(frozen=True)
class WatchedEvent:
    """One of our asset events: the asset it updated, when, its payload and the run it created."""

    event_id: int
    asset_id: int
    asset_name: str
    timestamp: datetime
    payload: Mapping[str, Any]
    dag_id: str | None = None
    run_id: str | None = None


def our_payload(extra: Any) -> Mapping[str, Any] | None:
    """The JobEventTrigger payload inside an asset event's ``extra``, or None for anyone else's."""
    if not isinstance(extra, Mapping):
        return None
    payload = extra.get("payload")
    if not isinstance(payload, Mapping) or not set(payload) >= PAYLOAD_KEYS:
        return None
    status = payload.get("status")
    if payload.get("service") not in REGISTRY or not isinstance(status, Mapping):
        return None
    return payload


def _status(payload: Mapping[str, Any]) -> JobStatus | None:
    try:
        return JobStatus.from_dict(payload["status"])
    except (KeyError, TypeError, ValueError):
        return None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def asset_url(ui_base: str, asset_id: int) -> str:
    """The asset's page in the Airflow UI (its events and the runs they created)."""
    return f"{ui_base.rstrip('/')}/assets/{quote(str(asset_id), safe='')}"


def make_row(event: WatchedEvent, ui_base: str = "") -> dict[str, Any] | None:
    """The board row of one watcher event (None when its status cannot be read)."""
    from airflow_jobstatus.ui import board

    payload = event.payload
    status = _status(payload)
    if status is None:
        return None
    data = status.to_dict()
    counters = [
        {"name": str(k), "value": v} for k, v in status.counters.items() if isinstance(v, int | float)
    ]
    console = payload.get("console_url")
    return {
        "id": f"asset-event-{event.event_id}",
        "service": status.service,
        "service_title": REGISTRY[status.service].title,
        "job_id": status.job_id,
        "no_job_reason": None,
        "job_type": None,
        "console_url": console if isinstance(console, str) and console.startswith("https://") else None,
        "dag_id": event.dag_id,
        "run_id": event.run_id,
        "task_id": f"asset {event.asset_name}",
        "map_index": -1,
        "try_number": None,
        "task_state": TASK_STATE,
        "task_url": asset_url(ui_base, event.asset_id),
        "active": False,
        "state": status.state.value,
        "state_kind": board.state_kind(status.state),
        "native_state": data.get("native_state") or None,
        "substate": data.get("substate") or None,
        "message": str(status.message) if status.message else None,
        "progress": float(status.progress) if isinstance(status.progress, int | float) else None,
        "counters": counters,
        "sub_jobs": None,
        "source": SOURCE,
        "live_error": None,
        "started": None,
        "last_polled": _iso(event.timestamp),
        "ended": _iso(event.timestamp),
    }


def collect(
    session: Session, dag_ids: Iterable[str], since: datetime, *, limit: int = 500
) -> list[WatchedEvent]:
    """Our asset events since ``since`` on assets a DAG in ``dag_ids`` is scheduled on, newest first."""
    from airflow.models.asset import AssetEvent, AssetModel, DagScheduleAssetReference
    from sqlalchemy import select

    permitted = set(dag_ids)
    if not permitted:
        return []
    assets = select(DagScheduleAssetReference.asset_id).where(DagScheduleAssetReference.dag_id.in_(permitted))
    rows = session.execute(
        select(AssetEvent, AssetModel.name)
        .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
        .where(
            AssetEvent.timestamp >= since,
            AssetEvent.source_task_id.is_(None),  # a trigger's event, not a task's outlet
            AssetEvent.asset_id.in_(assets),
        )
        .order_by(AssetEvent.timestamp.desc())
        .limit(limit)
    ).all()
    found = []
    for event, name in rows:
        payload = our_payload(event.extra)
        if payload is None:
            continue
        runs = sorted(
            (r for r in event.created_dagruns if r.dag_id in permitted), key=lambda r: (r.dag_id, r.run_id)
        )
        found.append(
            WatchedEvent(
                event_id=event.id,
                asset_id=event.asset_id,
                asset_name=name,
                timestamp=event.timestamp,
                payload=payload,
                dag_id=runs[0].dag_id if runs else None,
                run_id=runs[0].run_id if runs else None,
            )
        )
    return found


def rows(
    session: Session, dag_ids: Iterable[str], since: datetime, ui_base: str = "", *, limit: int = 500
) -> list[dict[str, Any]]:
    """The board rows of every readable watcher event since ``since``."""
    made = (make_row(event, ui_base) for event in collect(session, dag_ids, since, limit=limit))
    return [row for row in made if row is not None]
