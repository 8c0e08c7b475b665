"""Asset watchers of the deployment's watcher scenario (tests/deployment/test_asset_watchers.py).

Three assets, each watched by one ``JobEventTrigger`` on a scope of its own (a location or queue no
other scenario or example uses), and one consumer DAG per asset that pushes the jobs it was
triggered by. ``WATCHERS`` is shared with the test: it creates the jobs each watcher must (and must
not) report.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from airflow.sdk import DAG, Asset, AssetWatcher, task

from airflow_jobstatus.core.compat import has_event_streams
from airflow_jobstatus.triggers.job_events import JobEventTrigger

#: Every watcher's poll interval (seconds).
POLL = 5.0
#: Scopes of their own: no other DAG of the deployment lists these.
GOOGLE_LOCATION = "us-east4"
DLI_QUEUE = "watchers"

WATCHERS: dict[str, dict[str, Any]] = {
    "deploy_watch_dataflow": {
        "service": "dataflow",
        "gcp_conn_id": "google_cloud_default",
        "location": GOOGLE_LOCATION,
        "labels": {"team": "ingest"},
    },
    "deploy_watch_dli": {
        "service": "dli",
        "huaweicloud_conn_id": "huaweicloud_default",
        "job_type": "sql",
        "queue_name": DLI_QUEUE,
        "tags": {"nightly": "true"},
        "states": ["FAILED"],
    },
    "deploy_watch_dataproc": {
        "service": "dataproc",
        "gcp_conn_id": "google_cloud_default",
        "region": GOOGLE_LOCATION,
        "labels": {"suite": "watchers"},
        "states": ["SUCCEEDED", "FAILED"],
    },
}


def payloads(triggering_asset_events: Mapping[Any, Any] | None) -> list[dict[str, Any]]:
    """The JobEventTrigger payloads among the run's triggering asset events."""
    out = []
    for events in (triggering_asset_events or {}).values():
        for event in events:
            payload = (getattr(event, "extra", None) or {}).get("payload")
            if isinstance(payload, Mapping):
                out.append(dict(payload))
    return out


# On Airflow < 3.3 (test-deployment-oldest) JobEventTrigger is a ConfigurationError at parse: no watchers.
for name, kwargs in WATCHERS.items() if has_event_streams() else ():
    asset = Asset(
        name,
        uri=f"jobstatus://deploy/{name}",
        watchers=[AssetWatcher(name=name, trigger=JobEventTrigger(poll_interval=POLL, **kwargs))],
    )
    with DAG(
        f"{name}_consumer",
        schedule=[asset],
        start_date=datetime(2024, 1, 1),
        catchup=False,
        tags=["deployment", "asset-watchers"],
    ):

        @task
        def consume(triggering_asset_events: Mapping[Any, Any] | None = None) -> list[str]:
            """The dedupe keys of the job ends this run was triggered by (the test reads the XCom)."""
            return [str(p.get("dedupe_key")) for p in payloads(triggering_asset_events)]

        consume()
