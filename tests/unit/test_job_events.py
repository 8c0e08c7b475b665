"""Event watchers, the rules: transitions not conditions, each filter, dedupe keys, look-back,
ordering, what survives a restart (``events.filters``), and the trigger's argument checks."""

from __future__ import annotations

import pytest

from airflow_jobstatus.core.exceptions import ConfigurationError
from airflow_jobstatus.core.states import TERMINAL_STATES, JobState
from airflow_jobstatus.events.filters import (
    KEEP_WINDOW,
    Tracker,
    TrackerState,
    WatchFilter,
    dedupe_key,
)
from airflow_jobstatus.services import get_service
from airflow_jobstatus.services.base import Watched
from airflow_jobstatus.triggers.job_events import JobEventTrigger
from tests.airflow_versions import needs_event_streams
from tests.unit.fakes_watch import job

START = 1000.0


def tracker(look_back: float = 0.0, **filters: object) -> Tracker:
    flt = WatchFilter.build(service="dataflow", servable=get_service("dataflow").watching.filters, **filters)  # type: ignore[union-attr,arg-type]
    return Tracker.fresh("dataflow", flt, look_back, now=START)


def keys(reports: list) -> list[str]:
    return [r.key for r in reports]


def test_a_job_that_stays_ended_fires_once_not_every_poll() -> None:
    t = tracker()
    listed = [job("a", "FAILED", changed_at=START + 5)]
    assert keys(t.decide(listed, START + 10)) == ["dataflow:a:FAILED"]
    assert t.decide(listed, START + 20) == []  # the condition still holds: no second event
    assert t.decide(listed, START + 30) == []


def test_running_jobs_do_not_count_by_default_and_each_terminal_state_does() -> None:
    t = tracker()
    listed = [job(f"j{s.value}", s, changed_at=START + 1) for s in JobState]
    fired = {r.job.status.state for r in t.decide(listed, START + 2)}
    assert fired == set(TERMINAL_STATES)


def test_entering_two_counted_states_is_two_events() -> None:
    t = tracker(states=["RUNNING", "SUCCEEDED"])
    assert keys(t.decide([job("a", "RUNNING", changed_at=START + 1)], START + 2)) == ["dataflow:a:RUNNING"]
    assert keys(t.decide([job("a", "SUCCEEDED", changed_at=START + 3)], START + 4)) == [
        "dataflow:a:SUCCEEDED"
    ]


def test_only_failed() -> None:
    t = tracker(states="failed")
    listed = [job("ok", "SUCCEEDED", changed_at=START + 1), job("bad", "FAILED", changed_at=START + 1)]
    assert keys(t.decide(listed, START + 2)) == ["dataflow:bad:FAILED"]


def test_ends_before_the_start_do_not_count_without_look_back() -> None:
    listed = [job("old", "SUCCEEDED", changed_at=START - 60), job("new", "SUCCEEDED", changed_at=START + 1)]
    assert keys(tracker().decide(listed, START + 2)) == ["dataflow:new:SUCCEEDED"]


def test_look_back_reaches_ends_within_it_only() -> None:
    listed = [
        job("too-old", "SUCCEEDED", changed_at=START - 400),
        job("within", "SUCCEEDED", changed_at=START - 200),
    ]
    assert keys(tracker(look_back=300).decide(listed, START)) == ["dataflow:within:SUCCEEDED"]


def test_an_undated_end_counts_only_as_a_seen_transition() -> None:
    t = tracker()
    assert t.decide([job("u", "FAILED", changed_at=None)], START + 1) == []  # ended before we saw it
    assert t.decide([job("v", "RUNNING", changed_at=None)], START + 1) == []
    assert keys(t.decide([job("v", "FAILED", changed_at=None)], START + 2)) == ["dataflow:v:FAILED"]


def test_events_come_oldest_end_first() -> None:
    listed = [
        job("c", "SUCCEEDED", changed_at=START + 3),
        job("a", "FAILED", changed_at=START + 1),
        job("b", "CANCELLED", changed_at=START + 2),
    ]
    assert [r.job.status.job_id for r in tracker().decide(listed, START + 4)] == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"labels": {"team": "ingest"}}, ["x1"]),
        ({"labels": {"team": "ingest", "tier": "gold"}}, []),
        ({"name_prefix": "nightly-"}, ["x2"]),
        ({"name_pattern": r"-(eu|us)$"}, ["x1", "x2"]),
        ({"job_id_prefix": "x1"}, ["x1"]),
        ({"job_type": "job_type_streaming"}, ["x3"]),
    ],
)
def test_each_filter(filters: dict, expected: list[str]) -> None:
    listed = [
        job("x1", "SUCCEEDED", changed_at=START + 1, name="daily-eu", labels={"team": "ingest"}),
        job("x2", "SUCCEEDED", changed_at=START + 1, name="nightly-us", labels={"team": "ml"}),
        job("x3", "SUCCEEDED", changed_at=START + 1, name="stream", job_type="JOB_TYPE_STREAMING"),
    ]
    assert [r.job.status.job_id for r in tracker(**filters).decide(listed, START + 2)] == expected


def test_dedupe_key_names_service_job_and_state() -> None:
    assert dedupe_key("dli", "42", JobState.FAILED) == "dli:42:FAILED"


def test_a_restart_with_the_stored_state_neither_refires_nor_misses() -> None:
    t = tracker()
    first = t.decide([job("a", "SUCCEEDED", changed_at=START + 1)], START + 2)
    assert t.confirmed(keys(first)) is True
    stored = t.state.to_json()  # what the asset state store holds
    # Down for a while: "b" ended meanwhile; "a" is still listed.
    again = Tracker("dataflow", t.filter, TrackerState.from_json(stored))  # type: ignore[arg-type]
    listed = [job("a", "SUCCEEDED", changed_at=START + 1), job("b", "FAILED", changed_at=START + 50)]
    assert keys(again.decide(listed, START + 100)) == ["dataflow:b:FAILED"]


def test_a_report_not_confirmed_before_a_restart_is_reported_again() -> None:
    t = tracker()
    t.decide([job("a", "SUCCEEDED", changed_at=START + 1)], START + 2)  # fired, never confirmed
    again = Tracker("dataflow", t.filter, TrackerState.from_json(t.state.to_json()))  # type: ignore[arg-type]
    assert keys(again.decide([job("a", "SUCCEEDED", changed_at=START + 1)], START + 3)) == [
        "dataflow:a:SUCCEEDED"
    ]


def test_kept_keys_are_pruned_behind_the_high_water_mark_and_older_ends_are_not_refired() -> None:
    state = TrackerState(started_at=START)
    state.add({"dataflow:a:FAILED": START + 1})
    state.add({"dataflow:b:FAILED": START + 1 + KEEP_WINDOW + 10})
    assert list(state.keys) == ["dataflow:b:FAILED"]
    t = Tracker("dataflow", tracker().filter, state)
    assert t.decide([job("a", "FAILED", changed_at=START + 1)], START + 2 * KEEP_WINDOW) == []


def test_another_state_version_is_no_state() -> None:
    assert TrackerState.from_json({"v": 99, "started_at": 1}) is None
    assert TrackerState.from_json("garbage") is None


# -- the trigger's arguments -----------------------------------------------------------------------


@needs_event_streams
def test_the_public_constructor_serializes_and_rebuilds() -> None:
    trigger = JobEventTrigger(
        service="dataflow",
        gcp_conn_id="gcp",
        project_id="p",
        location="europe-west1",
        labels={"team": "ingest"},
        states=["SUCCEEDED", "FAILED"],
        poll_interval=5,
    )
    path, kwargs = trigger.serialize()
    assert path == "airflow_jobstatus.triggers.job_events.JobEventTrigger"
    again = JobEventTrigger(**kwargs)
    assert again.serialize() == (path, kwargs)
    assert again.shared_stream_key() == trigger.shared_stream_key()
    huawei = JobEventTrigger(
        service="dli", huaweicloud_conn_id="hw", tags={"nightly": "1"}, states=["FAILED"]
    )
    assert huawei.serialize()[1]["tags"] == {"nightly": "1"}


@needs_event_streams
def test_filters_do_not_split_the_shared_list_but_scope_and_interval_do() -> None:
    base = {"service": "dataflow", "gcp_conn_id": "g", "location": "eu"}
    a = JobEventTrigger(**base, labels={"team": "a"}, poll_interval=5)
    b = JobEventTrigger(**base, name_prefix="x", states="FAILED", poll_interval=5)
    assert a.shared_stream_key() == b.shared_stream_key()
    assert a.state_key != b.state_key  # each keeps its own reports
    assert JobEventTrigger(**base, poll_interval=10).shared_stream_key() != a.shared_stream_key()
    assert (
        JobEventTrigger(**{**base, "location": "us"}, poll_interval=5).shared_stream_key()
        != a.shared_stream_key()
    )


@needs_event_streams
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"service": "dataflow", "location": "eu", "states": ["DONE"]}, "Unknown state 'DONE'"),
        ({"service": "dataflow", "location": "eu", "name_pattern": "("}, "not a valid regex"),
        ({"service": "dli", "labels": {"a": "b"}}, "cannot be filtered by labels"),
        ({"service": "dataflow", "location": "eu", "tags": {"a": "b"}}, "cannot be filtered by tags"),
        ({"service": "dataflow", "location": "eu", "huaweicloud_conn_id": "h"}, "takes gcp_conn_id"),
        ({"service": "dataflow"}, "need location"),
        ({"service": "dataflow", "location": "eu", "region": "r"}, "take no 'region'"),
        ({"service": "dataflow", "location": "eu", "look_back": 10**7}, "look_back is at most"),
        ({"service": "cdm"}, "need cluster_id"),
        ({"service": "cdm", "cluster_id": "c", "tags": {"a": "b"}}, "cannot be filtered by tags"),
        ({"service": "nope"}, "Unknown service"),
    ],
)
def test_bad_arguments_are_configuration_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        JobEventTrigger(**kwargs)


def test_older_airflow_is_a_clear_error_at_dag_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("airflow_jobstatus.triggers.job_events.has_event_streams", lambda: False)
    with pytest.raises(ConfigurationError, match=r"needs Airflow >= 3\.3"):
        JobEventTrigger(service="dataflow", location="eu")


def test_a_cdm_job_that_runs_again_fires_once_per_run() -> None:
    from airflow_jobstatus.services import cdm

    flt = WatchFilter.build(service="cdm", servable=get_service("cdm").watching.filters)  # type: ignore[union-attr]
    t = Tracker.fresh("cdm", flt, 0.0, now=START)
    scope = {"cluster_id": "c1"}

    def listed(created: float, ended: float) -> Watched:  # the job list's keys (SDK ``Job``)
        return cdm.watched(
            {
                "name": "sync",
                "status": "SUCCEEDED",
                "update-date": START * 1000,  # the definition's, not the run's
                "execute_create_date": int(created * 1000),
                "execute_update_date": str(int(ended * 1000)),
            },
            scope,
        )

    first, again = listed(START + 5, START + 10), listed(START + 90, START + 99)
    assert first.changed_at == START + 10 and again.changed_at == START + 99
    assert keys(t.decide([first], START + 20)) == [f"cdm:c1/sync@{int((START + 5) * 1000)}:SUCCEEDED"]
    assert t.decide([first], START + 30) == []
    assert len(t.decide([again], START + 100)) == 1  # the next run's success is its own event
