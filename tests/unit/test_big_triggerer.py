"""What keeps one triggerer with thousands of waits responsive: shared sleep timers and the GC setting."""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest

from airflow_jobstatus.core.states import JobState
from airflow_jobstatus.services import get_service
from airflow_jobstatus.triggers.job_status import JobStatusTrigger
from airflow_jobstatus.wait import gc as triggerer_gc
from airflow_jobstatus.wait import shared_sleep as shared_sleep_module
from airflow_jobstatus.wait.shared_sleep import TICK, pending_timers, shared_sleep
from tests.unit.fakes import SENSOR_ARGS, FakeHook, RecordingLog, first_event

# -- shared_sleep -----------------------------------------------------------------------------------


def test_many_sleeps_share_one_timer_per_tick_and_none_ends_early():
    async def main() -> tuple[int, list[float], float]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        ended: list[float] = []

        async def sleeper() -> None:
            await shared_sleep(0.2)
            ended.append(loop.time() - start)

        tasks = [asyncio.create_task(sleeper()) for _ in range(500)]
        await asyncio.sleep(0)  # every sleeper has asked for its pause
        timers = pending_timers()
        await asyncio.gather(*tasks)
        return timers, ended, loop.time() - start

    timers, ended, _ = asyncio.run(main())
    assert timers <= 2  # 500 sleeps asked within microseconds: one tick (two if they straddle one)
    assert len(ended) == 500
    assert min(ended) >= 0.2 - 1e-6  # never earlier than asked


def test_a_cancelled_sleeper_does_not_cancel_the_others_of_its_tick():
    async def main() -> tuple[bool, bool]:
        a = asyncio.ensure_future(shared_sleep(0.1))
        b = asyncio.ensure_future(shared_sleep(0.1))
        a.cancel()
        await asyncio.sleep(0.1 + 2 * TICK)
        return a.cancelled(), b.done() and not b.cancelled()

    assert asyncio.run(main()) == (True, True)


def test_timers_are_released_once_their_tick_has_passed_and_with_their_loop():
    loops: list[weakref.ref[asyncio.AbstractEventLoop]] = []

    async def main() -> int:
        loops.append(weakref.ref(asyncio.get_running_loop()))
        await shared_sleep(0.01)
        return pending_timers()

    assert asyncio.run(main()) == 0
    gc.collect()
    loop = loops[0]()
    assert loop is None or loop not in shared_sleep_module._TIMERS  # nothing keeps a closed loop alive


# -- [jobstatus] triggerer_gc_threshold ---------------------------------------------------------------


@pytest.fixture
def fresh_gc_state(monkeypatch):
    before = gc.get_threshold()
    monkeypatch.setattr(triggerer_gc, "_state", {"applied": False, "suggested": False, "waits": 0})
    monkeypatch.setattr(triggerer_gc, "_freezes", {"started": 0, "at_freeze": 0, "ended": 0})
    yield
    gc.set_threshold(*before)


def in_triggerer(service: str = "dataproc") -> JobStatusTrigger:
    ref = get_service(service).ref(SENSOR_ARGS[service]).to_dict()
    t = JobStatusTrigger(service=service, job_ref=ref, poll_interval=3)
    t.trigger_id = 7  # what the triggerer sets before run(); dag.test() leaves it None
    return t


@pytest.mark.parametrize("text", ["", "700,10", "a,b,c", "700,10,0", "-1,10,10", "700,10,1000,5"])
def test_bad_thresholds_are_refused_with_the_setting_named(text):
    with pytest.raises(ValueError, match=r"\[jobstatus\] triggerer_gc_threshold"):
        triggerer_gc.parse_thresholds(text)


def test_thresholds_parse():
    assert triggerer_gc.parse_thresholds(" 700, 10 ,1000 ") == (700, 10, 1000)


def test_the_setting_is_applied_once_by_the_first_trigger_in_a_triggerer(
    monkeypatch, fresh_gc_state, trigger_hook, sleeps
):
    monkeypatch.setenv("AIRFLOW__JOBSTATUS__TRIGGERER_GC_THRESHOLD", "700,10,1000")
    trigger_hook(FakeHook(JobState.SUCCEEDED))
    first_event(in_triggerer())
    assert gc.get_threshold() == (700, 10, 1000)
    gc.set_threshold(700, 10, 10)  # a later trigger does not apply it again
    first_event(in_triggerer())
    assert gc.get_threshold() == (700, 10, 10)


def test_outside_a_triggerer_nothing_changes(monkeypatch, fresh_gc_state, trigger_hook, sleeps):
    monkeypatch.setenv("AIRFLOW__JOBSTATUS__TRIGGERER_GC_THRESHOLD", "700,10,1000")
    trigger_hook(FakeHook(JobState.SUCCEEDED))
    t = in_triggerer()
    t.trigger_id = None
    before = gc.get_threshold()
    first_event(t)
    assert gc.get_threshold() == before
    assert triggerer_gc._state["applied"] is False


def test_unset_changes_nothing_and_a_bad_value_is_logged_not_raised(monkeypatch, fresh_gc_state):
    before = gc.get_threshold()
    log = RecordingLog()
    monkeypatch.delenv("AIRFLOW__JOBSTATUS__TRIGGERER_GC_THRESHOLD", raising=False)
    triggerer_gc.apply_once(log)
    assert gc.get_threshold() == before and not log.records
    monkeypatch.setattr(triggerer_gc, "_state", {"applied": False, "suggested": False, "waits": 0})
    monkeypatch.setenv("AIRFLOW__JOBSTATUS__TRIGGERER_GC_THRESHOLD", "lots")
    triggerer_gc.apply_once(log)
    assert gc.get_threshold() == before
    assert [level for level, _ in log.records] == ["error"]
    assert "three positive integers" in log.records[0][1]


@pytest.mark.parametrize("freeze", ["False", "True"])
def test_many_waits_with_neither_freeze_nor_setting_suggest_it_once(monkeypatch, fresh_gc_state, freeze):
    """With the freeze off, MANY_WAITS waits suggest the threshold once; the freeze (the default)
    keeps full collections short at any fleet size, so nothing is suggested then."""
    monkeypatch.delenv("AIRFLOW__JOBSTATUS__TRIGGERER_GC_THRESHOLD", raising=False)
    monkeypatch.setenv("AIRFLOW__JOBSTATUS__TRIGGERER_GC_FREEZE", freeze)
    log = RecordingLog()
    for _ in range(triggerer_gc.MANY_WAITS + 10):
        triggerer_gc.wait_started(log)
    warnings = [m for level, m in log.records if level == "warning"]
    if freeze == "True":
        assert not warnings
    else:
        assert len(warnings) == 1 and "triggerer_gc_threshold = 700,10,1000" in warnings[0]


def test_waits_are_counted_out_when_they_end(monkeypatch, fresh_gc_state, trigger_hook, sleeps):
    trigger_hook(FakeHook(JobState.RUNNING, JobState.SUCCEEDED))
    first_event(in_triggerer())
    first_event(in_triggerer("cdm"))
    assert triggerer_gc._state["waits"] == 0
