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
