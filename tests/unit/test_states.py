"""The normalized state model: names, terminal set, defaults, the status record's round trip."""

from __future__ import annotations

import json
import logging

import pytest

from airflow_jobstatus.core.exceptions import (
    AuthenticationError,
    JobFailedError,
    ServiceError,
    TransientServiceError,
)
from airflow_jobstatus.core.states import (
    DEFAULT_FAILURE_STATES,
    DEFAULT_SUCCESS_STATES,
    JobState,
    JobStatus,
    NativeStateTable,
    parse_states,
    resolve_state_sets,
)

NON_TERMINAL = {"UNKNOWN", "QUEUED", "PENDING", "RUNNING", "RETRYING", "PAUSED", "CANCELLING", "DRAINING"}
TERMINAL = {"SUCCEEDED", "PARTIALLY_SUCCEEDED", "DRAINED", "UPDATED", "FAILED", "CANCELLED", "EXPIRED"}


def test_state_names_equal_values_and_terminal_split():
    assert {s.value for s in JobState} == NON_TERMINAL | TERMINAL
    for s in JobState:
        assert s.name == s.value
        assert s.is_terminal == (s.value in TERMINAL)
    assert JobState.RUNNING == "RUNNING"


def test_default_sets():
    assert {s.value for s in DEFAULT_SUCCESS_STATES} == {"SUCCEEDED", "DRAINED", "UPDATED"}
    assert {s.value for s in DEFAULT_FAILURE_STATES} == {
        "PARTIALLY_SUCCEEDED",
        "FAILED",
        "CANCELLED",
        "EXPIRED",
    }


def sample_status() -> JobStatus:
    return JobStatus(
        service="dli",
        job_id="j-1",
        state=JobState.RUNNING,
        native_state="RUNNING",
        substate=None,
        message="halfway",
        progress=0.5,
        counters={"rows_read": 10},
        sub_jobs=[{"id": 1, "status": "RUNNING", "num_tasks": 4, "num_completed_tasks": 2}],
    )


def test_status_round_trip_and_json():
    s = sample_status()
    d = s.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["state"] == "RUNNING"
    assert JobStatus.from_dict(d) == s
    assert JobStatus.from_dict(json.loads(json.dumps(d))) == s


def test_summary_mentions_progress_and_subjob():
    line = sample_status().summary()
    assert "RUNNING" in line and "50%" in line and "2/4 tasks" in line


def test_parse_states_rejects_unknown_names_listing_valid_ones():
    assert parse_states(["succeeded", "DRAINED"]) == {JobState.SUCCEEDED, JobState.DRAINED}
    with pytest.raises(ValueError, match="Valid states: UNKNOWN, QUEUED"):
        parse_states(["DONE"], arg_name="success_states")


def test_resolve_state_sets_defaults_and_conflicts():
    success, failure = resolve_state_sets(None, None)
    assert success == DEFAULT_SUCCESS_STATES and failure == DEFAULT_FAILURE_STATES
    success, failure = resolve_state_sets(["SUCCEEDED"], None)
    assert JobState.DRAINED in failure
    success, failure = resolve_state_sets(None, ["FAILED", "PAUSED"])
    assert failure == {JobState.FAILED, JobState.PAUSED}
    with pytest.raises(ValueError, match="both"):
        resolve_state_sets(["SUCCEEDED"], ["SUCCEEDED"])
    with pytest.raises(ValueError, match="at least one"):
        resolve_state_sets([], None)


def test_native_table_unknown_value_warns_once(caplog):
    table = NativeStateTable("dataproc", {"DONE": JobState.SUCCEEDED})
    with caplog.at_level(logging.WARNING):
        assert table.normalize("DONE") is JobState.SUCCEEDED
        assert table.normalize("NEW_THING") is JobState.UNKNOWN
        assert table.normalize("NEW_THING") is JobState.UNKNOWN
    assert sum("NEW_THING" in r.getMessage() for r in caplog.records) == 1


def test_job_failed_error_names_everything():
    status = JobStatus("dataproc", "job-9", JobState.FAILED, "ERROR", message="Driver exited with 1")
    err = JobFailedError(status)
    text = str(err)
    assert "dataproc" in text and "job-9" in text and "ERROR" in text and "Driver exited with 1" in text
    assert err.status is status


def test_service_errors_round_trip_through_dicts():
    err = TransientServiceError("503 Service Unavailable", service="cdm", job_id="c/j", code=503)
    back = ServiceError.from_dict(json.loads(json.dumps(err.to_dict())))
    assert isinstance(back, TransientServiceError) and back.retryable
    assert str(back) == str(err)
    assert not AuthenticationError("no").retryable
