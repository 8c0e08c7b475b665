"""Event-driven scheduling: run a DAG whenever a cloud job *ends*, whoever started it.

One asset per watched scope, each with an ``AssetWatcher`` whose ``JobEventTrigger`` lists that
scope's jobs once per poll interval (watchers of one service, connection, project/region and
interval share one list call on Airflow 3.3) and fires once per job that enters a matching state:

- Dataflow jobs labelled ``team=ingest`` in europe-west1, any terminal state;
- DLI SQL jobs tagged ``nightly=true`` that FAILED;
- Dataproc jobs labelled ``team=ingest`` in europe-west1 that SUCCEEDED.

The consumer DAG is scheduled on any of the three; its task reads the job that ended from
``triggering_asset_events`` (the event's payload: ``status`` as a JobStatus dict, ``console_url``,
``dedupe_key``, ``service``, ``job_id``, ``state``) and pushes the statuses it got. POLL_INTERVAL
is 30 s: a watcher polls for as long as the DAG is unpaused, so keep it at the latency you need.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from airflow.sdk import DAG, Asset, AssetWatcher, task

from airflow_jobstatus.triggers.job_events import JobEventTrigger

POLL_INTERVAL = 30.0
REGION = "europe-west1"

log = logging.getLogger(__name__)

DATAFLOW_INGEST_ENDS = Asset(
    "jobstatus_example_dataflow_ingest_ends",
    watchers=[
        AssetWatcher(
            name="dataflow_ingest_ends",
            trigger=JobEventTrigger(
                service="dataflow",
                gcp_conn_id="google_cloud_default",
                location=REGION,
                labels={"team": "ingest"},
                poll_interval=POLL_INTERVAL,
            ),
        )
    ],
)
DLI_NIGHTLY_FAILURES = Asset(
    "jobstatus_example_dli_nightly_failures",
    watchers=[
        AssetWatcher(
            name="dli_nightly_failures",
            trigger=JobEventTrigger(
                service="dli",
                huaweicloud_conn_id="huaweicloud_default",
                job_type="sql",
                tags={"nightly": "true"},
                states=["FAILED"],
                poll_interval=POLL_INTERVAL,
            ),
        )
    ],
)
DATAPROC_INGEST_SUCCESSES = Asset(
    "jobstatus_example_dataproc_ingest_successes",
    watchers=[
        AssetWatcher(
            name="dataproc_ingest_successes",
            trigger=JobEventTrigger(
                service="dataproc",
                gcp_conn_id="google_cloud_default",
                region=REGION,
                labels={"team": "ingest"},
                states=["SUCCEEDED"],
                poll_interval=POLL_INTERVAL,
            ),
        )
    ],
)


def ended_jobs(triggering_asset_events: Mapping[Any, Any] | None) -> list[dict[str, Any]]:
    """The JobEventTrigger payloads among a run's triggering asset events (other events skipped)."""
    found = []
    for events in (triggering_asset_events or {}).values():
        for event in events:
            payload = (getattr(event, "extra", None) or {}).get("payload")
            if isinstance(payload, Mapping) and isinstance(payload.get("status"), Mapping):
                found.append(dict(payload))
    return found


with DAG(
    "example_jobstatus_asset_watchers",
    schedule=(DATAFLOW_INGEST_ENDS | DLI_NIGHTLY_FAILURES | DATAPROC_INGEST_SUCCESSES),
    start_date=datetime(2024, 1, 1),
    catchup=False,
    tags=["example", "airflow-jobstatus", "asset-watchers"],
) as dag:

    @task
    def job_that_ended(triggering_asset_events: Mapping[Any, Any] | None = None) -> list[dict[str, Any]]:
        """Log each job that ended and return their JobStatus dicts (the task's XCom)."""
        jobs = ended_jobs(triggering_asset_events)
        if not jobs:  # a manual run (or dag.test()) has no triggering event
            log.info("no job event triggered this run")
        for job in jobs:
            log.info(
                "%s job %s entered %s: %s",
                job["service"],
                job["job_id"],
                job["state"],
                job.get("console_url"),
            )
        return [job["status"] for job in jobs]

    job_that_ended()


# `python example_dags/example_jobstatus_asset_watchers.py` runs the consumer once with dag.test().
if __name__ == "__main__":
    dag.test()
