"""DLI Flink jobs (``services/dli_flink.py``): the status table against the SDK's documented values,
the integer job reference, parsing of show and list answers, list paging, and the stop answer."""

from __future__ import annotations

import logging
import re

import pytest

from airflow_jobstatus.core.exceptions import BadRequestError, BadResponseError, ConfigurationError
from airflow_jobstatus.core.states import JobState
from airflow_jobstatus.services import dli_flink, get_service
from airflow_jobstatus.services.dli_flink import DliFlinkJobRef

REF = DliFlinkJobRef(job_id="50320")


def _documented(model: str, cls: str) -> list[str]:
    """The ``status`` values an SDK model's docstring lists (after ``取值范围:``)."""
    module = pytest.importorskip(f"huaweicloudsdkdli.v1.model.{model}")
    doc = getattr(module, cls).__init__.__doc__ or ""
    line = next(line for line in doc.splitlines() if line.strip().startswith(":param status:"))
    values = line.split("取值范围:", 1)[1].split("默认取值", 1)[0]
    return re.findall(r"\bjob_[a-z_]+", values)


@pytest.mark.parametrize(
    ("model", "cls"),
    [("flink_job", "FlinkJob"), ("list_flink_jobs_request", "ListFlinkJobsRequest")],
)
def test_every_documented_status_is_mapped_and_nothing_else(model: str, cls: str) -> None:
    documented = _documented(model, cls)
    assert len(documented) == 14, documented  # the SDK's own list (huaweicloudsdkdli v1)
    missing = [s for s in documented if s not in dli_flink.STATES.table]
    assert not missing, f"FlinkJob.status value(s) not in the dli_flink table: {missing}"
    assert sorted(dli_flink.STATES.table) == sorted(documented)


def test_what_ends_the_wait_and_how() -> None:
    table = dli_flink.STATES.table
    terminal = {native: state for native, state in table.items() if state.is_terminal}
    assert terminal == {
        "job_submit_fail": JobState.FAILED,
        "job_running_exception": JobState.FAILED,
        "job_cancel_success": JobState.CANCELLED,
        "job_finish": JobState.SUCCEEDED,
    }
    # A failed stop leaves the job running: not an end, and warned about.
    assert table["job_cancel_fail"] is JobState.RUNNING
    assert "job_cancel_fail" in get_service("dli_flink").attention
    assert table["job_arrearage_stopped"] is JobState.PAUSED


def test_an_unknown_status_is_unknown_and_warned_once(caplog: pytest.LogCaptureFixture) -> None:
    body = {"job_detail": {"job_id": 50320, "status": "job_quantum_state"}}
    with caplog.at_level(logging.WARNING):
        statuses = [dli_flink.parse(body, REF) for _ in range(3)]
    assert {(s.state, s.native_state) for s in statuses} == {(JobState.UNKNOWN, "job_quantum_state")}
    assert sum("'job_quantum_state'" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.parametrize(("given", "kept"), [(50320, "50320"), ("50320", "50320"), (" 007 ", "7")])
def test_job_ids_are_integers(given: object, kept: str) -> None:
    assert DliFlinkJobRef(job_id=given).job_id == kept  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["abc", "-3", "0", "1.5", "1e3", True, "١٢", "", None, "..", "12/../13"])
def test_a_non_integer_job_id_is_refused(bad: object) -> None:
    with pytest.raises(ConfigurationError, match="job_id"):
        DliFlinkJobRef(job_id=bad)  # type: ignore[arg-type]


def test_a_show_answer_gives_status_description_and_restart_count() -> None:
    body = {
        "is_success": "true",
        "message": "Querying of the job details succeeds.",
        "job_detail": {
            "job_id": 50320,
            "status": "job_running_exception",
            "status_desc": "TaskManager lost",
            "restart_times": 3,
        },
    }
    status = dli_flink.parse(body, REF)
    assert (status.state, status.native_state, status.message) == (
        JobState.FAILED,
        "job_running_exception",
        "TaskManager lost",
    )
    assert status.counters == {"restart_times": 3}
    assert status.job_id == "50320"


@pytest.mark.parametrize(
    "body",
    [{}, {"is_success": "false", "message": "x"}, {"job_detail": []}, {"job_detail": {"status": ""}}],
)
def test_an_answer_without_a_status_is_a_bad_response(body: dict) -> None:
    with pytest.raises(BadResponseError):
        dli_flink.parse(body, REF)


def test_the_operations_are_the_sdks_paths() -> None:
    show = dli_flink.status_op(REF)
    assert (show.method, show.path) == ("GET", "/v1.0/{project_id}/streaming/jobs/50320")
    assert show.is_read and show.not_found_codes == ("DLI.0002",)
    stop = dli_flink.cancel_op(REF)
    assert (stop.method, stop.path) == ("POST", "/v1.0/{project_id}/streaming/jobs/stop")
    assert stop.body == {"job_ids": [50320], "trigger_savepoint": False}
    assert stop.array_key == "body"


def test_the_list_pages_by_offset_until_total_count() -> None:
    first = dli_flink.list_op("job_running")
    assert dict(first.query) == {"status": "job_running", "offset": "0", "limit": "100"}
    full = {"job_list": {"total_count": 250, "jobs": [{"job_id": i} for i in range(100)]}}
    jobs, second = dli_flink.list_page(first, full)
    assert len(jobs) == 100 and second is not None and dict(second.query)["offset"] == "100"
    _, third = dli_flink.list_page(second, full)
    assert third is not None and dict(third.query)["offset"] == "200"
    last = {"job_list": {"total_count": 250, "jobs": [{"job_id": i} for i in range(50)]}}
    assert dli_flink.list_page(third, last)[1] is None
    with pytest.raises(BadResponseError):
        dli_flink.list_page(first, {"job_list": {}})
    assert dli_flink.list_entry_id({"job_id": 50320}) == "50320"


def test_a_refused_stop_is_a_bad_request_and_an_accepted_one_is_quiet() -> None:
    dli_flink.check_cancelled({"body": [{"is_success": "true", "message": "delivered"}]}, REF)
    dli_flink.check_cancelled({}, REF)  # an empty 2xx: accepted
    with pytest.raises(BadRequestError, match="did not stop Flink job '50320': already stopped"):
        dli_flink.check_cancelled({"body": [{"is_success": "false", "message": "already stopped"}]}, REF)
    with pytest.raises(BadRequestError):
        dli_flink.check_cancelled({"body": [{"is_success": False, "message": "no"}]}, REF)
