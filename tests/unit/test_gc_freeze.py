"""``[jobstatus] triggerer_gc_freeze``: one freeze per service after its first read, off with False."""

from __future__ import annotations

import gc

import pytest

from airflow_jobstatus.wait import gc as triggerer_gc
from tests.unit.fakes import RecordingLog


@pytest.fixture
def fresh(monkeypatch):
    monkeypatch.setattr(triggerer_gc, "_frozen_for", set())
    yield
    gc.unfreeze()  # give the test process its objects back


def test_the_first_read_of_each_service_freezes_once(monkeypatch, fresh):
    monkeypatch.delenv("AIRFLOW__JOBSTATUS__TRIGGERER_GC_FREEZE", raising=False)
    log = RecordingLog()
    triggerer_gc.after_first_read("dataproc", log)
    assert gc.get_freeze_count() > 0
    triggerer_gc.after_first_read("dataproc", log)  # a later wait of the same service: nothing more
    triggerer_gc.after_first_read("cdm", log)
    assert [level for level, _ in log.records] == ["info", "info"]


def test_false_leaves_the_collector_alone_and_a_bad_value_is_logged(monkeypatch, fresh):
    gc.unfreeze()
    monkeypatch.setenv("AIRFLOW__JOBSTATUS__TRIGGERER_GC_FREEZE", "False")
    log = RecordingLog()
    triggerer_gc.after_first_read("dataproc", log)
    assert gc.get_freeze_count() == 0 and not log.records
    monkeypatch.setenv("AIRFLOW__JOBSTATUS__TRIGGERER_GC_FREEZE", "sometimes")
    triggerer_gc.after_first_read("cdm", log)
    assert gc.get_freeze_count() == 0
    assert [level for level, _ in log.records] == ["error"] and "True or False" in log.records[0][1]


@pytest.mark.parametrize("in_triggerer", [True, False])
def test_the_trigger_freezes_after_its_first_read_only_in_a_triggerer(
    monkeypatch, trigger_hook, sleeps, in_triggerer
):
    """In a triggerer (``trigger_id`` set) the first read of a wait is followed by the freeze, once
    per service; dag.test() runs triggers without an id and leaves the collector alone."""
    from airflow_jobstatus.core.states import JobState
    from airflow_jobstatus.triggers import job_status
    from tests.unit.fakes import FakeHook, first_event
    from tests.unit.test_trigger import trigger

    calls: list[str] = []
    monkeypatch.setattr(
        job_status.triggerer_gc, "after_first_read", lambda service, log: calls.append(service)
    )
    trigger_hook(FakeHook(JobState.RUNNING, JobState.RUNNING, JobState.SUCCEEDED))
    t = trigger()
    if in_triggerer:
        t.trigger_id = 7
    assert first_event(t)["status"] == "success"
    assert calls == (["dataproc"] if in_triggerer else [])
