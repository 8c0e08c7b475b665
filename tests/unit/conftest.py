"""Fixtures of the unit tests: inject a FakeHook, record logs, and never really sleep."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from airflow_jobstatus.triggers import job_status
from airflow_jobstatus.triggers.job_status import JobStatusTrigger
from airflow_jobstatus.wait.rules import JobWatch
from tests.unit.fakes import FakeHook, RecordingLog


@pytest.fixture
def record_log(monkeypatch: pytest.MonkeyPatch) -> Callable[[Any], RecordingLog]:
    """``record_log(obj)``: obj's class logs into the returned RecordingLog for this test."""

    def attach(obj: Any) -> RecordingLog:
        log = RecordingLog()
        monkeypatch.setattr(type(obj), "log", property(lambda self: log))
        return log

    return attach


@pytest.fixture
def inject(record_log: Callable[[Any], RecordingLog]) -> Callable[[Any, FakeHook], RecordingLog]:
    """``inject(task, fake)``: the task uses ``fake`` as its hook and logs into the returned log."""

    def attach(task: Any, fake: FakeHook) -> RecordingLog:
        log = record_log(task)
        task.__dict__["hook"] = fake  # ``hook`` is a functools.cached_property
        return log

    return attach


class Sleeps:
    """The pauses the code asked for, instead of pausing: ``sync`` (retries) and ``async_``."""

    def __init__(self) -> None:
        self.sync: list[float] = []
        self.async_: list[float] = []
        #: Hook calls made before each async pause (set ``hook`` to track them).
        self.calls_before: list[int] = []
        self.hook: FakeHook | None = None


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> Sleeps:
    """Record instead of sleep: JobWatch.read's retry pauses, every asyncio.sleep and shared_sleep.

    ``JobWatch.read`` takes its ``sleep`` as a parameter (bound at definition), so the fixture passes
    its recorder through it; ``asyncio.sleep`` is replaced for the test, yielding to the loop once.
    """
    record = Sleeps()
    real_read = JobWatch.read
    real_sleep = asyncio.sleep

    def read(self: JobWatch, fetch: Callable[[], Any], sleep: Any = None) -> Any:
        return real_read(self, fetch, sleep=record.sync.append)

    async def fake_sleep(delay: float, result: Any = None) -> Any:
        record.async_.append(delay)
        record.calls_before.append(len(record.hook.calls) if record.hook else 0)
        await real_sleep(0)
        return result

    monkeypatch.setattr(JobWatch, "read", read)
    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    # The trigger's poll pauses go through shared_sleep (one timer per tick for many waits).
    monkeypatch.setattr(job_status, "shared_sleep", fake_sleep)
    return record


@pytest.fixture
def trigger_hook(monkeypatch: pytest.MonkeyPatch) -> Callable[[FakeHook], FakeHook]:
    """``trigger_hook(fake)``: every JobStatusTrigger in this test reads through ``fake``."""

    def use(fake: FakeHook) -> FakeHook:
        monkeypatch.setattr(JobStatusTrigger, "_hook", lambda self: fake)
        return fake

    return use
