"""The Cloud jobs page's watcher rows (ui/watched.py): our asset events, read from Airflow's own tables.

The query runs on Airflow's real models in an in-memory SQLite database (every table created from
Airflow's metadata); the rows are the board's shape, so the page renders them unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_jobstatus.core.states import JobState, JobStatus
from airflow_jobstatus.ui import board, watched

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
CONSOLE = "https://console.cloud.google.com/dataflow/jobs/europe-west1/j-1?project=p"


def payload(job_id: str = "j-1", state: JobState = JobState.FAILED, **extra: Any) -> dict[str, Any]:
    status = JobStatus("dataflow", job_id, state, "JOB_STATE_FAILED", message="worker lost")
    return {
        "status": status.to_dict(),
        "console_url": CONSOLE,
        "dedupe_key": f"dataflow:{job_id}:{state.value}",
        "service": "dataflow",
        "job_id": job_id,
        "state": state.value,
        **extra,
    }


def test_only_our_payload_counts() -> None:
    assert watched.our_payload({"from_trigger": True, "payload": payload()}) is not None
    assert watched.our_payload({"from_trigger": True, "payload": {"message": "kafka"}}) is None
    assert watched.our_payload({"payload": {**payload(), "service": "nope"}}) is None
    assert watched.our_payload({"payload": {**payload(), "status": "FAILED"}}) is None
    assert watched.our_payload(None) is None


def test_a_watcher_row_has_the_boards_shape() -> None:
    event = watched.WatchedEvent(7, 3, "dataflow_ingest_ends", NOW, payload(), "consumer", "asset__1")
    row = watched.make_row(event, "/airflow")
    assert row is not None
    job = board.TaskJob(
        dag_id="d", run_id="r", task_id="t", map_index=-1, try_number=1, task_state="success",
        active=False, start_date=NOW, end_date=NOW, service="dataflow",
    )  # fmt: skip
    assert set(row) == set(board.make_row(job, None))
    assert (row["service"], row["job_id"], row["state"], row["state_kind"]) == (
        "dataflow",
        "j-1",
        "FAILED",
        board.state_kind(JobState.FAILED),
    )
    assert (row["dag_id"], row["run_id"], row["source"]) == ("consumer", "asset__1", "watcher")
    assert row["task_url"] == "/airflow/assets/3" and row["console_url"] == CONSOLE
    assert row["message"] == "worker lost" and row["ended"] == "2026-03-01T12:00:00Z"


def test_a_console_url_that_is_not_https_is_dropped() -> None:
    event = watched.WatchedEvent(1, 1, "a", NOW, payload(console_url="javascript:alert(1)"))
    row = watched.make_row(event)
    assert row is not None and row["console_url"] is None


@pytest.fixture(scope="module")
def engine() -> Iterator[Any]:
    from airflow.models import import_all_models
    from airflow.models.base import Base
    from sqlalchemy import create_engine

    import_all_models()
    eng = create_engine("sqlite://")
    Base.metadata.create_all(eng)
    yield eng
    eng.dispose()


def seed(session: Any) -> None:
    from airflow.models.asset import AssetEvent, AssetModel, DagScheduleAssetReference, association_table
    from airflow.models.dagrun import DagRun

    session.add_all(
        [
            AssetModel(name="ingest_ends", uri="jobstatus://dataflow/ingest", group="asset"),
            AssetModel(name="other", uri="jobstatus://other", group="asset"),
        ]
    )
    session.flush()
    session.add_all(
        [
            DagScheduleAssetReference(asset_id=1, dag_id="consumer"),
            DagScheduleAssetReference(asset_id=2, dag_id="secret"),
        ]
    )
    run = DagRun(dag_id="consumer", run_id="asset_triggered__1", run_type="asset_triggered")
    session.add(run)
    events = [
        AssetEvent(id=1, asset_id=1, extra={"from_trigger": True, "payload": payload("j-1")}, timestamp=NOW),
        AssetEvent(id=2, asset_id=1, extra={"from_trigger": True, "payload": {"x": 1}}, timestamp=NOW),
        AssetEvent(id=3, asset_id=2, extra={"from_trigger": True, "payload": payload("j-2")}, timestamp=NOW),
        AssetEvent(
            id=4,
            asset_id=1,
            extra={"payload": payload("j-3")},
            timestamp=NOW,
            source_task_id="t",
            source_dag_id="producer",
            source_run_id="r",
        ),
        AssetEvent(id=5, asset_id=1, extra={"payload": payload("j-old")}, timestamp=NOW - timedelta(days=3)),
    ]
    session.add_all(events)
    session.flush()
    session.execute(association_table.insert().values(dag_run_id=run.id, event_id=1))
    session.flush()


def test_collect_reads_our_readable_recent_trigger_events(engine: Any) -> None:
    from sqlalchemy.orm import Session

    with Session(engine) as session:
        seed(session)
        found = watched.collect(session, {"consumer"}, NOW - timedelta(hours=24))
        # Not: another payload (2), an asset only an unreadable DAG is scheduled on (3), a task's
        # outlet event (4), an event older than the window (5).
        assert [(e.event_id, e.asset_name, e.dag_id, e.run_id) for e in found] == [
            (1, "ingest_ends", "consumer", "asset_triggered__1")
        ]
        assert watched.collect(session, set(), NOW - timedelta(hours=24)) == []
        rows = watched.rows(session, {"consumer", "secret"}, NOW - timedelta(hours=24))
        assert sorted(r["job_id"] for r in rows) == ["j-1", "j-2"]
        session.rollback()
