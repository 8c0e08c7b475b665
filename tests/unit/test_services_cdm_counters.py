"""CDM reports all ten counters: the poll's progress line shows the non-zero ones, the status keeps all."""

from __future__ import annotations

import logging

from airflow_jobstatus.core.states import JobState, JobStatus
from airflow_jobstatus.services import cdm
from airflow_jobstatus.services.cdm import CdmJobRef
from airflow_jobstatus.wait.rules import JobWatch, progress_line


def answer(**counters: int) -> dict[str, object]:
    values = dict.fromkeys(cdm.COUNTERS, 0) | {k.upper(): v for k, v in counters.items()}
    return {
        "submissions": [
            {"submission-id": 1, "status": "RUNNING", "progress": 40, "counters": {cdm.COUNTER_GROUP: values}}
        ]
    }


def test_the_progress_line_leaves_out_zero_counters() -> None:
    status = cdm.parse(answer(rows_read=5000, rows_written=4990), CdmJobRef("c", "j"))
    assert len(status.counters) == 10  # the XCom / return_value keep every counter
    assert (
        progress_line(status)
        == "cdm job c/j: RUNNING (native RUNNING), 40%, rows_read 5,000, rows_written 4,990"
    )


def test_no_counter_moved_no_counters_shown() -> None:
    status = cdm.parse(answer(), CdmJobRef("c", "j"))
    assert progress_line(status) == "cdm job c/j: RUNNING (native RUNNING), 40%"


def test_without_zeros_the_line_is_the_summary() -> None:
    status = JobStatus("cdm", "c/j", JobState.RUNNING, "RUNNING", counters={"rows_read": 3})
    assert progress_line(status) == status.summary()


def test_the_watch_logs_the_progress_line(caplog) -> None:  # type: ignore[no-untyped-def]
    log = logging.getLogger("tests.cdm_counters")
    status = cdm.parse(answer(rows_read=7), CdmJobRef("c", "j"))
    with caplog.at_level(logging.INFO, logger=log.name):
        assert JobWatch(log=log).verdict(status) == "wait"
    assert [r.getMessage() for r in caplog.records] == [
        "cdm job c/j: RUNNING (native RUNNING), 40%, rows_read 7"
    ]
