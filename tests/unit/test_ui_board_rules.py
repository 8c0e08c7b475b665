"""The Cloud jobs board's rules without Airflow processes or a browser: live reads, rows, states,
templates, and which job a row names.

In ``tests/unit`` (not ``tests/ui``, whose tests are all marked ``ui``): these run with ``make test``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from datetime import datetime, timezone
from typing import Any

import pytest

from airflow_jobstatus.exceptions import TransientServiceError
from airflow_jobstatus.services import REGISTRY
from airflow_jobstatus.services.dli import DliJobRef
from airflow_jobstatus.states import DEFAULT_SUCCESS_STATES, STUCK_STATES, JobState, JobStatus
from airflow_jobstatus.ui import board
from airflow_jobstatus.ui.live import LiveReader, LiveRequest, Reading
from tests.ui.conftest import selects_ui

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeService:
    """Answers reads with a status (or an error), optionally holding them until released."""

    def __init__(self, state: JobState = JobState.RUNNING, error: Exception | None = None):
        self.state, self.error = state, error
        self.reads = 0
        self.release = asyncio.Event()
        self.release.set()

    async def __call__(self, service: str, ref: Any, conn_id: Any, chain: Any, timeout: float) -> JobStatus:
        self.reads += 1
        await self.release.wait()
        if self.error is not None:
            raise self.error
        return JobStatus(service, ref.display_id, self.state, self.state.value, progress=0.5)


def request(
    job_id: str = "job-1", interval: float = 30.0, conn_id: str | None = "secret_conn"
) -> LiveRequest:
    return LiveRequest("dli", DliJobRef(job_id=job_id), interval, conn_id=conn_id)


# -- live reads: one per job per poll interval, whatever the number of viewers ----------------------------
async def test_concurrent_viewers_share_one_read() -> None:
    service, clock = FakeService(), Clock()
    reader = LiveReader(reader=service, clock=clock)
    service.release.clear()
    viewers = [asyncio.ensure_future(reader.read_many([request()], wait=5)) for _ in range(25)]
    await asyncio.sleep(0.05)
    service.release.set()
    results = await asyncio.gather(*viewers)
    assert service.reads == 1
    assert all(r[request().key].status.state == JobState.RUNNING for r in results)


async def test_a_job_is_read_again_only_after_its_poll_interval() -> None:
    service, clock = FakeService(), Clock()
    reader = LiveReader(reader=service, clock=clock)
    await reader.read_many([request(interval=30)], wait=5)
    clock.now += 29.9
    for _ in range(10):
        await reader.read_many([request(interval=30)], wait=5)
    assert service.reads == 1
    clock.now += 0.1
    await reader.read_many([request(interval=30)], wait=5)
    assert service.reads == 2


async def test_a_terminal_reading_is_never_read_again() -> None:
    service, clock = FakeService(JobState.SUCCEEDED), Clock()
    reader = LiveReader(reader=service, clock=clock)
    await reader.read_many([request()], wait=5)
    clock.now += 10_000
    await reader.read_many([request()], wait=5)
    assert service.reads == 1


async def test_errors_are_rate_limited_and_say_no_more_than_the_provider() -> None:
    clock = Clock()
    provider_error = FakeService(error=TransientServiceError("HTTP 503", service="dli", job_id="job-1"))
    reader = LiveReader(reader=provider_error, clock=clock)
    reading = (await reader.read_many([request()], wait=5))[request().key]
    assert reading.status is None and reading.error == "TransientServiceError: dli: HTTP 503"
    await reader.read_many([request()], wait=5)
    assert provider_error.reads == 1

    other = FakeService(error=RuntimeError("token=abc123 in a third-party message"))
    reading = (await LiveReader(reader=other, clock=clock).read_many([request()], wait=5))[request().key]
    assert reading.error == "RuntimeError"


async def test_a_slow_read_goes_on_while_the_page_answers() -> None:
    service, clock = FakeService(), Clock()
    reader = LiveReader(reader=service, clock=clock)
    service.release.clear()
    assert await reader.read_many([request()], wait=0.05) == {}
    assert await reader.read_many([request()], wait=0.05) == {}  # the same read, not a second one
    service.release.set()
    await asyncio.sleep(0.05)
    assert (await reader.read_many([request()], wait=0.05))[request().key].status is not None
    assert service.reads == 1


async def test_the_connection_is_part_of_the_key_but_never_of_a_reading() -> None:
    service, clock = FakeService(), Clock()
    reader = LiveReader(reader=service, clock=clock)
    await reader.read_many([request(conn_id="conn_one"), request(conn_id="conn_two")], wait=5)
    assert service.reads == 2
    reading = reader.readings[request(conn_id="conn_one").key]
    assert "conn_one" not in json.dumps(dataclasses.asdict(reading.status)) + str(reading.error)


# -- rows -------------------------------------------------------------------------------------------------
def task_job(**changes: Any) -> board.TaskJob:
    values: dict[str, Any] = dict(
        dag_id="d",
        run_id="manual__2026-01-01T00:00:00+00:00",
        task_id="t",
        map_index=-1,
        try_number=1,
        task_state="deferred",
        active=True,
        start_date=NOW,
        end_date=None,
        service="dli",
        ref=DliJobRef(job_id="job-1"),
        job_id="job-1",
        poll_interval=5.0,
        conn_id="secret_conn",
        impersonation_chain=["sa@secret.example"],
    )
    return board.TaskJob(**(values | changes))


def test_a_row_is_the_job_its_status_and_its_task_nothing_else() -> None:
    status = JobStatus(
        "dli",
        "job-1",
        JobState.RUNNING,
        "RUNNING",
        progress=0.42,
        sub_jobs=[{"id": 0, "status": "RUNNING", "num_tasks": 8, "num_completed_tasks": 3}],
    )
    row = board.make_row(task_job(), Reading(status, None, NOW, 0.0), ui_base="/airflow")
    assert row["state"] == "RUNNING" and row["state_kind"] == "active" and row["source"] == "live"
    assert row["progress"] == 0.42 and row["last_polled"] == "2026-01-01T12:00:00Z"
    assert row["sub_jobs"] == {"count": 1, "tasks_completed": 3, "tasks_total": 8, "current": "0 3/8 tasks"}
    assert row["task_url"] == "/airflow/dags/d/runs/manual__2026-01-01T00%3A00%3A00%2B00%3A00/tasks/t"
    text = json.dumps(row)
    assert "secret" not in text and "conn" not in text


def test_the_final_status_of_the_task_wins_over_a_live_read() -> None:
    final = JobStatus("cdm", "c/j", JobState.SUCCEEDED, "SUCCEEDED", counters={"rows_read": 7})
    live = Reading(JobStatus("cdm", "c/j", JobState.RUNNING, "RUNNING"), None, NOW, 0.0)
    job = task_job(service="cdm", final=final, final_at=NOW, active=False, end_date=NOW)
    row = board.make_row(job, live)
    assert row["state"] == "SUCCEEDED" and row["source"] == "task"
    assert row["counters"] == [{"name": "rows_read", "value": 7}]


def test_a_finished_dli_job_keeps_the_last_subjobs_its_task_saw() -> None:
    final = JobStatus("dli", "job-1", JobState.SUCCEEDED, "FINISHED", progress=1.0)
    seen = [
        {"id": 0, "num_tasks": 8, "num_completed_tasks": 8},
        {"id": 1, "num_tasks": 20, "num_completed_tasks": 20},
    ]
    job = task_job(final=final, final_at=NOW, partial={"sub_jobs": seen}, active=False, end_date=NOW)
    sub_jobs = board.make_row(job, None)["sub_jobs"]
    assert (sub_jobs["count"], sub_jobs["tasks_completed"], sub_jobs["tasks_total"]) == (2, 28, 28)


def test_without_any_reading_the_row_shows_what_the_task_pushed() -> None:
    job = task_job(partial={"state": "FAILED", "progress": 0.3}, active=False, end_date=NOW)
    row = board.make_row(job, None)
    assert (row["state"], row["state_kind"], row["progress"], row["ended"]) == (
        "FAILED",
        "failure",
        0.3,
        "2026-01-01T12:00:00Z",
    )
    assert board.make_row(task_job(), None)["state"] is None


def test_state_kinds_come_from_the_state_model() -> None:
    for state in JobState:
        kind = board.state_kind(state)
        assert (kind == "success") == (state in DEFAULT_SUCCESS_STATES)
        assert (kind == "failure") == (state.is_terminal and state not in DEFAULT_SUCCESS_STATES)
        assert (kind == "attention") == (state in STUCK_STATES)
    assert board.state_kind(None) == "none"


def test_a_sixth_service_appears_without_a_change(monkeypatch: pytest.MonkeyPatch) -> None:
    sixth = dataclasses.replace(REGISTRY["dli"], name="sixth", title="Sixth")
    monkeypatch.setitem(REGISTRY, "sixth", sixth)
    assert {"name": "sixth", "title": "Sixth"} in board.vocabulary()["services"]
    row = board.make_row(task_job(service="sixth"), None)
    assert (row["service"], row["service_title"]) == ("sixth", "Sixth")


def test_most_recent_first_and_waiting_jobs_on_top() -> None:
    def row(active: bool, started: str, ended: str | None, polled: str | None = None) -> dict[str, Any]:
        return {"active": active, "started": started, "ended": ended, "last_polled": polled}

    rows = [
        row(False, "2026-01-01T09:00:00Z", "2026-01-01T10:00:00Z", polled="2026-01-01T12:00:00Z"),
        row(True, "2026-01-01T08:00:00Z", None),
        row(False, "2026-01-01T09:30:00Z", "2026-01-01T11:00:00Z"),
        row(True, "2026-01-01T08:30:00Z", None),
    ]
    rows.sort(key=board.sort_key, reverse=True)
    assert [(r["active"], r["started"][11:16]) for r in rows] == [
        (True, "08:30"),
        (True, "08:00"),
        (False, "09:30"),
        (False, "09:00"),
    ]


# -- templates of tasks that never ran on a worker ------------------------------------------------------------
class FakeTI:
    dag_version_id, run_id, dag_id, task_id, map_index = "v1", "r1", "d", "t", -1


def test_templates_render_from_the_run_params_only(monkeypatch: pytest.MonkeyPatch) -> None:
    definitions = board.Definitions(session=None)  # type: ignore[arg-type]
    monkeypatch.setattr(definitions, "params", lambda ti: {"region": "europe-west1"})
    assert definitions.render(FakeTI(), "{{ params.region }}") == "europe-west1"
    assert definitions.render(FakeTI(), "plain") == "plain"
    assert definitions.render(FakeTI(), "{{ ds }}") is None  # not a param: unknown
    assert definitions.render(FakeTI(), "{{ params.region.__class__.__mro__ }}") is None  # sandboxed


def test_serialized_trigger_kwargs_are_unwrapped() -> None:
    assert board._unwrap({"__type": "dict", "__var": {"job_id": "x"}}) == {"job_id": "x"}
    assert board._unwrap({"job_id": "x"}) == {"job_id": "x"}
    assert board._unwrap(None) == {}


# -- which job a row names: only one its task's current try started or waited on ----------------------------
CDM_LINK = "https://console.huaweicloud.com/cdm/?region=cn-north-4#/job/sim-cluster/sim-cdm-job"


class RowTI:
    """A task instance row as the board reads it from the metadata."""

    def __init__(self, operator: str, state: str | None, try_number: int = 1, **changes: Any) -> None:
        self.dag_id, self.run_id, self.task_id, self.map_index = "d", "r1", "t", -1
        self.dag_version_id, self.trigger_id = "v1", None
        self.operator, self.state, self.try_number = operator, state, try_number
        self.next_method: str | None = None
        self.next_kwargs: dict[str, Any] | None = None
        self.start_date, self.end_date = NOW, NOW
        self.__dict__.update(changes)


class FakeDefinitions:
    """The serialized DAG: a sensor's start-in-triggerer arguments (templates rendered as given)."""

    def __init__(self, start_values: dict[str, Any] | None = None) -> None:
        self.values, self.asked = start_values or {}, 0

    def start_values(self, ti: Any) -> dict[str, Any]:
        self.asked += 1
        return dict(self.values)

    def render(self, ti: Any, value: Any) -> Any:
        return value


def xcoms(**values: Any) -> dict[str, tuple[Any, datetime]]:
    return {key: (value, NOW) for key, value in values.items()}


CDM_FIELDS = {
    "cluster_id": "sim-cluster",
    "job_name": "sim-cdm-job",
    "huaweicloud_conn_id": "huaweicloud_default",
}
CDM_DEFINITION = {
    "cluster_id": "{{ params.cluster_id }}",
    "job_name": "{{ params.job_name }}",
    "huaweicloud_conn_id": "huaweicloud_default",
}


def row_job(ti: RowTI, recorded: board.Recorded, definitions: Any = None) -> board.TaskJob:
    job = board.build_task_job(ti, board.catalog(), recorded, definitions or FakeDefinitions())
    assert job is not None
    return job


@pytest.fixture(autouse=True)
def no_console_scope(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(board, "console_scope", lambda service, conn_id: "cn-north-4")


def test_an_operator_that_failed_before_submitting_names_no_job() -> None:
    """Its rendered fields name a CDM job (whose latest submission another DAG started): not its job."""
    ti = RowTI("CdmStartJobOperator", "failed")
    recorded = board.Recorded(rendered=dict(CDM_FIELDS), xcoms=xcoms(_link_CdmJobLink=CDM_LINK))
    job = row_job(ti, recorded)
    assert (job.ref, job.job_id, job.link, job.partial) == (None, None, None, {})
    assert job.no_job == board.NoJob.FAILED_BEFORE_SUBMITTING and not job.wants_live()
    row = board.make_row(job, None)
    assert (row["job_id"], row["no_job_reason"], row["console_url"], row["state"]) == (
        None,
        "failed before submitting",
        None,
        None,
    )
    running = row_job(RowTI("CdmStartJobOperator", "running"), board.Recorded(rendered=dict(CDM_FIELDS)))
    assert running.no_job == board.NoJob.NOT_SUBMITTED and running.ref is None


def test_an_operator_names_the_job_its_try_started() -> None:
    recorded = board.Recorded(rendered=dict(CDM_FIELDS), xcoms=xcoms(submission_id="sub-7"))
    job = row_job(RowTI("CdmStartJobOperator", "success"), recorded)
    assert job.job_id == "sim-cluster/sim-cdm-job" and job.no_job is None and job.wants_live()
    assert job.conn_id == "huaweicloud_default"
    assert job.link and job.link.startswith("https://console.huaweicloud.com/cdm/")


def test_an_operator_whose_worker_was_lost_after_recording_its_job_names_it() -> None:
    """The task-state record is written before the id XComs: a record of this try names the job."""
    record = {"service": "dli", "job_ref": {"job_id": "dli-9", "job_type": "sql"}, "try_number": 2}
    ti = RowTI("DliRunSqlJobOperator", "failed", try_number=2)
    assert row_job(ti, board.Recorded(record=record)).job_id == "dli-9"
    assert board.record_of_try(json.dumps(record), 2) == record
    assert board.record_of_try(json.dumps(record), 3) is None  # an earlier try's job is not this try's
    assert board.record_of_try("s3://bucket/ref", 2) is None  # another task state backend
    lost = row_job(RowTI("DliRunSqlJobOperator", "failed", try_number=3), board.Recorded())
    assert lost.no_job == board.NoJob.FAILED_BEFORE_SUBMITTING


def test_a_task_that_never_ran_names_no_job_and_says_why() -> None:
    """Never scheduled (try 0): not even the job its start-in-triggerer definition names."""
    definitions = FakeDefinitions(CDM_DEFINITION | CDM_FIELDS)
    cases = {
        ("CdmJobStatusSensor", "upstream_failed", 0): board.NoJob.UPSTREAM_FAILED,
        ("CdmJobStatusSensor", "skipped", 0): board.NoJob.SKIPPED,
        ("CdmJobStatusSensor", "removed", 0): board.NoJob.REMOVED,
        ("CdmJobStatusSensor", None, 0): board.NoJob.NOT_STARTED,
        ("CdmStartJobOperator", "upstream_failed", 0): board.NoJob.UPSTREAM_FAILED,
    }
    for (operator, state, try_number), why in cases.items():
        job = row_job(RowTI(operator, state, try_number), board.Recorded(), definitions)
        assert (job.ref, job.job_id, job.no_job) == (None, None, why), (operator, state)
    assert definitions.asked == 0


def test_a_retry_not_started_yet_shows_nothing_of_the_previous_try() -> None:
    """Scheduled for try 2: the XComs and rendered fields still there are try 1's."""
    final = JobStatus("cdm", "sim-cluster/sim-cdm-job", JobState.FAILED, "FAILED").to_dict()
    recorded = board.Recorded(rendered=dict(CDM_FIELDS), xcoms=xcoms(return_value=final))
    job = row_job(RowTI("CdmJobStatusSensor", "scheduled", try_number=2), recorded)
    assert (job.ref, job.final, job.job_id, job.no_job) == (None, None, None, board.NoJob.RETRY_NOT_STARTED)


def test_a_sensor_names_the_job_its_rendered_fields_or_trigger_name() -> None:
    ran = row_job(RowTI("CdmJobStatusSensor", "failed"), board.Recorded(rendered=dict(CDM_FIELDS)))
    assert ran.job_id == "sim-cluster/sim-cdm-job" and ran.wants_live()
    trigger = {
        "service": "dli",
        "job_ref": {"job_id": "dli-1", "job_type": "sql"},
        "conn_id": "c",
        "poll_interval": 5,
    }
    deferred = row_job(RowTI("DliJobStatusSensor", "deferred", trigger_id=1), board.Recorded(trigger=trigger))
    assert (deferred.job_id, deferred.conn_id, deferred.poll_interval) == ("dli-1", "c", 5.0)


def test_a_sensor_started_in_the_triggerer_names_the_job_it_was_started_with() -> None:
    definitions = FakeDefinitions(CDM_FIELDS)
    job = row_job(RowTI("CdmJobStatusSensor", "failed"), board.Recorded(), definitions)
    assert job.job_id == "sim-cluster/sim-cdm-job" and definitions.asked == 1
    unrendered = FakeDefinitions({"cluster_id": None, "job_name": None})  # e.g. {{ ds }}: not from params
    waiting = row_job(RowTI("CdmJobStatusSensor", "deferred"), board.Recorded(), unrendered)
    assert (waiting.job_id, waiting.no_job) == (None, board.NoJob.NOT_RENDERED)


def test_other_rows_without_a_job_say_why() -> None:
    cases = [
        (RowTI("CdmJobStatusSensor", "running"), board.Recorded(), board.NoJob.NOT_RENDERED),
        (RowTI("CdmJobStatusSensor", "failed"), board.Recorded(), board.NoJob.FAILED_BEFORE_RENDERING),
        (
            RowTI("DliJobStatusSensor", "deferred", trigger_id=1),
            board.Recorded(trigger_unreadable=True),
            board.NoJob.TRIGGER_UNREADABLE,
        ),
        (RowTI("CdmStartJobOperator", "success"), board.Recorded(), board.NoJob.NOT_RECORDED),
    ]
    for ti, recorded, why in cases:
        job = row_job(ti, recorded)
        assert (job.job_id, job.no_job) == (None, why), (ti.operator, ti.state)
        assert board.make_row(job, None)["no_job_reason"] == why


def test_a_row_that_cannot_be_built_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(RowTI):
        def __getattribute__(self, name: str) -> Any:
            if name == "start_date":
                raise RuntimeError("token=abc123")  # an unexpected failure: its message is not logged
            return super().__getattribute__(name)

    ti = Broken("CdmJobStatusSensor", "running", task_id="broken_row")
    with caplog.at_level("WARNING", logger=board.__name__):
        for _ in range(3):  # three refreshes of the page
            assert board.build_task_job(ti, board.catalog(), board.Recorded(), FakeDefinitions()) is None
    lines = [r.getMessage() for r in caplog.records if "broken_row" in r.getMessage()]
    assert lines == ["Cloud jobs board: d/r1/broken_row: no row (RuntimeError)"]


def test_an_invalid_job_reference_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    fields = {**CDM_FIELDS, "job_name": ".."}  # not a valid identifier
    ti = RowTI("CdmJobStatusSensor", "failed", task_id="bad_ref")
    with caplog.at_level("WARNING", logger=board.__name__):
        for _ in range(2):
            job = row_job(ti, board.Recorded(rendered=dict(fields)))
            assert (job.job_id, job.no_job) == (None, board.NoJob.NOT_RECORDED)
    lines = [r.getMessage() for r in caplog.records if "bad_ref" in r.getMessage()]
    assert len(lines) == 1 and "no valid cdm job reference (ConfigurationError" in lines[0]


# -- the suite's own switch ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("markexpr", "runs"),
    [
        ("", False),
        ("ui", True),
        ("not ui", False),
        ("ui and not slow", True),
        ("e2e", False),
        ("e2e or ui", True),
    ],
)
def test_ui_tests_run_only_when_selected(markexpr: str, runs: bool) -> None:
    assert selects_ui(markexpr) is runs
