"""``[jobstatus] triggerer_gc_freeze``: a freeze per service after its first read, again every
``REFREEZE_EVERY`` waits started (after a full collection of the unfrozen), everything released once
the frozen count doubles; off with False. The real collector: ``gc`` is the code under test."""

from __future__ import annotations

import gc
import weakref

import pytest

from airflow_jobstatus.wait import gc as triggerer_gc
from tests.unit.fakes import RecordingLog


@pytest.fixture
def fresh(monkeypatch):
    monkeypatch.setattr(triggerer_gc, "_frozen_for", set())
    monkeypatch.setattr(triggerer_gc, "_freezes", {"started": 0, "at_freeze": 0, "ended": 0})
    monkeypatch.setitem(triggerer_gc._state, "waits", 0)
    monkeypatch.delenv("AIRFLOW__JOBSTATUS__TRIGGERER_GC_FREEZE", raising=False)
    gc.disable()  # only the code under test collects: what it frees or freezes is then its doing
    yield
    gc.enable()
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


class Cycle:
    """An object in a reference cycle: only a full collection frees it."""

    def __init__(self) -> None:
        self.me = self


def test_every_refreeze_every_waits_the_waits_alive_are_frozen_too(monkeypatch, fresh):
    """After REFREEZE_EVERY waits started, the next first read freezes again, after a full collection
    of what is not frozen (cyclic garbage made since the last freeze is freed, not frozen)."""
    monkeypatch.setattr(triggerer_gc, "REFREEZE_EVERY", 3)
    log = RecordingLog()
    triggerer_gc.wait_started(log)
    triggerer_gc.after_first_read("dataproc", log)
    first = gc.get_freeze_count()
    for _ in range(2):
        triggerer_gc.wait_started(log)
        triggerer_gc.after_first_read("dataproc", log)  # 1 and 2 waits since the freeze: nothing
    assert gc.get_freeze_count() == first and len(log.records) == 1
    alive = [Cycle() for _ in range(100)]  # the waits alive at the refreeze
    garbage = weakref.ref(Cycle())  # cyclic garbage made since the freeze
    assert garbage() is not None
    triggerer_gc.wait_started(log)
    triggerer_gc.after_first_read("dataproc", log)  # the third since the freeze
    assert log.records[-1][0] == "info" and "a full collection of the unfrozen" in log.records[-1][1]
    assert gc.get_freeze_count() >= first + 100  # the live cycles (and their dicts) are frozen …
    assert garbage() is None, "… the garbage was collected, not frozen"
    assert len(alive) == 100


def test_after_two_turnovers_a_refreeze_releases_everything_first(monkeypatch, fresh):
    """What a freeze kept that became cyclic garbage is freed by the first refreeze after
    RELEASE_AFTER waits (and twice the waits alive) ended: unfreeze, a full collection, freeze."""
    monkeypatch.setattr(triggerer_gc, "REFREEZE_EVERY", 1)
    monkeypatch.setattr(triggerer_gc, "RELEASE_AFTER", 4)
    log = RecordingLog()
    triggerer_gc.wait_started(log)
    triggerer_gc.after_first_read("dataproc", log)
    kept = [Cycle() for _ in range(100)]
    triggerer_gc.wait_started(log)
    triggerer_gc.after_first_read("dataproc", log)  # frozen alive
    assert "of the unfrozen" in log.records[-1][1]
    one = weakref.ref(kept[0])
    del kept  # frozen, now cyclic garbage: no collection of the unfrozen frees it
    for _ in range(2):  # the two waits end: 2 ended, none alive
        triggerer_gc.wait_ended()
    triggerer_gc.wait_started(log)
    triggerer_gc.after_first_read("dataproc", log)  # 2 ended, fewer than RELEASE_AFTER: kept
    assert "of the unfrozen" in log.records[-1][1] and one() is not None
    triggerer_gc.wait_ended()
    triggerer_gc.wait_started(log)
    triggerer_gc.wait_ended()  # 4 ended, none alive
    triggerer_gc.wait_started(log)
    triggerer_gc.after_first_read("dataproc", log)  # 4 >= max(RELEASE_AFTER, 2 x 1 alive)
    assert "of everything (4 waits ended since the last)" in log.records[-1][1], log.records[-1]
    assert one() is None  # the garbage freed, the rest frozen again
    assert gc.get_freeze_count() > 0 and triggerer_gc._freezes["ended"] == 0


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
