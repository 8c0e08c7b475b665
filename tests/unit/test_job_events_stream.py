"""Event watchers through Airflow's real ``SharedStreamManager`` (ack mode), driven as the
triggerer drives it: one list call per scope and interval for many watchers, each watcher's state
written only after its events are confirmed persisted, a kill before that reports them again, a
kill after it does not, and list errors (transient: ridden out; 401: the watcher ends with it)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from airflow_jobstatus.core.exceptions import AuthenticationError, TransientServiceError
from airflow_jobstatus.events import stream
from airflow_jobstatus.triggers.job_events import JobEventTrigger
from tests.airflow_versions import needs_event_streams
from tests.unit.fakes_watch import FakeAssetStore, Runner, Scopes, hook_factory, job

pytestmark = needs_event_streams  # Airflow's SharedStreamManager and asset state store (3.3)

INTERVAL = 0.05


@pytest.fixture
def scopes(monkeypatch: pytest.MonkeyPatch) -> Scopes:
    found = Scopes()
    monkeypatch.setattr(stream, "make_hook", hook_factory(found))
    return found


def watcher(store: FakeAssetStore | None = None, location: str = "eu", **kwargs: Any) -> JobEventTrigger:
    trigger = JobEventTrigger(
        service="dataflow",
        gcp_conn_id="g",
        location=location,
        poll_interval=INTERVAL,
        error_budget=5,
        **kwargs,
    )
    trigger.asset_state_store = store if store is not None else FakeAssetStore()  # type: ignore[assignment]
    return trigger


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def later(seconds: float = 1.0) -> float:
    return time.time() + seconds


async def test_500_watchers_over_5_scopes_make_5_list_calls_per_interval(scopes: Scopes) -> None:
    locations = [f"loc{i}" for i in range(5)]
    runner = Runner()
    for i in range(500):
        runner.start(i, watcher(location=locations[i % 5], labels={"team": f"t{i % 2}"}))
    await until(lambda: all(scopes.calls_for(loc) >= 1 for loc in locations))
    for loc in locations:
        scopes.set(loc, job(f"{loc}-a", "SUCCEEDED", changed_at=later(), labels={"team": "t0"}))
    await until(lambda: all(scopes.calls_for(loc) >= 4 for loc in locations))
    await until(lambda: len(runner.all_events()) == 250)
    calls = {loc: scopes.calls_for(loc) for loc in locations}
    await runner.kill()
    # One call per scope per poll, whatever the number of watchers: the same count for every scope
    # (give or take the poll in flight when counted), never one per watcher.
    assert max(calls.values()) - min(calls.values()) <= 1
    assert max(calls.values()) < 100 < 500
    payloads = runner.all_events()
    assert {p["dedupe_key"] for p in payloads} == {f"dataflow:{loc}-a:SUCCEEDED" for loc in locations}
    assert all(p["labels"] == {"team": "t0"} for p in payloads)  # the t1 watchers fired nothing


async def test_the_payload(scopes: Scopes) -> None:
    runner = Runner()
    runner.start(1, watcher())
    scopes.set(
        "eu",
        job("j1", "FAILED", changed_at=later(), name="nightly", labels={"team": "ingest"}, location="eu"),
    )
    await until(lambda: len(runner.events[1]) == 1)
    await runner.kill()
    payload = runner.events[1][0]
    assert payload["service"] == "dataflow" and payload["job_id"] == "j1" and payload["state"] == "FAILED"
    assert payload["dedupe_key"] == "dataflow:j1:FAILED"
    assert payload["status"]["state"] == "FAILED" and payload["status"]["job_id"] == "j1"
    assert payload["console_url"].startswith("https://console.cloud.google.com/dataflow/jobs/eu/j1")
    assert payload["name"] == "nightly" and payload["labels"] == {"team": "ingest"}


async def test_state_is_written_only_after_the_event_is_confirmed_persisted(scopes: Scopes) -> None:
    store, runner = FakeAssetStore(), Runner()
    trigger = watcher(store)
    runner.start(1, trigger)
    await until(lambda: len(store.writes) == 1)  # the first start, the floor across restarts
    scopes.set("eu", job("j1", "SUCCEEDED", changed_at=later()))
    await until(lambda: len(runner.events[1]) == 1)
    await until(lambda: scopes.calls_for("eu") >= 3)
    assert "dataflow:j1:SUCCEEDED" not in store.values[trigger.state_key]["keys"]  # not persisted yet
    runner.persist()
    await until(lambda: "dataflow:j1:SUCCEEDED" in store.values[trigger.state_key]["keys"])
    await runner.kill()


async def test_a_kill_before_persistence_reports_again_and_after_it_does_not(scopes: Scopes) -> None:
    store = FakeAssetStore()
    scopes.set("eu")
    first = Runner()
    first.start(1, watcher(store))
    await until(lambda: scopes.calls_for("eu") >= 1)
    scopes.set("eu", job("a", "SUCCEEDED", changed_at=later()))
    await until(lambda: len(first.events[1]) == 1)
    await first.kill()  # SIGKILL before the supervisor stored the event: nothing was recorded

    second = Runner()
    second.start(1, watcher(store))  # a fresh instance, the same asset state store
    await until(lambda: len(second.events[1]) == 1)  # "a" again: not lost
    scopes.set("eu", job("a", "SUCCEEDED", changed_at=later()), job("b", "FAILED", changed_at=later(2)))
    await until(lambda: len(second.events[1]) == 2)
    second.persist()
    key = watcher(store).state_key
    await until(lambda: {"dataflow:a:SUCCEEDED", "dataflow:b:FAILED"} <= set(store.values[key]["keys"]))
    await second.kill()

    third = Runner()
    third.start(1, watcher(store))
    scopes.set("eu", *scopes.jobs["eu"], job("c", "CANCELLED", changed_at=later(3)))
    await until(lambda: len(third.events[1]) == 1)
    polled = scopes.calls_for("eu")
    await until(lambda: scopes.calls_for("eu") >= polled + 4)  # a few more polls: nothing else fires
    await third.kill()
    assert [p["job_id"] for p in third.events[1]] == ["c"]  # a and b were persisted: not refired


async def test_transient_list_errors_are_ridden_out(scopes: Scopes) -> None:
    scopes.errors = [TransientServiceError("503", service="dataflow", code=503)]
    runner = Runner()
    runner.start(1, watcher())
    scopes.set("eu", job("a", "SUCCEEDED", changed_at=later(3)))
    await until(lambda: len(runner.events[1]) == 1)
    await runner.kill()
    assert 1 not in runner.errors


async def test_an_authentication_error_ends_every_watcher_of_the_scope(
    scopes: Scopes, caplog: pytest.LogCaptureFixture
) -> None:
    scopes.errors = [AuthenticationError("401 Unauthorized", service="dataflow", code=401)]
    runner = Runner()
    runner.start(1, watcher())
    runner.start(2, watcher(labels={"x": "y"}))
    await until(lambda: len(runner.errors) == 2)
    assert all(isinstance(e, AuthenticationError) for e in runner.errors.values())
    await runner.kill()


async def test_standalone_run_pushes_its_filters_down(scopes: Scopes) -> None:
    trigger = watcher(labels={"team": "ingest"})
    scopes.set("eu", job("a", "SUCCEEDED", changed_at=later(), labels={"team": "ingest"}))
    agen = trigger.run()
    event = await asyncio.wait_for(agen.__anext__(), 10)
    await agen.aclose()
    assert event.payload["job_id"] == "a"
    assert scopes.calls[0][1]["labels"] == {"team": "ingest"}


async def test_list_call_count_for_the_report(scopes: Scopes, capsys: pytest.CaptureFixture[str]) -> None:
    """500 watchers, 5 scopes, 10 intervals: the list calls made (printed for the report)."""
    runner = Runner()
    for i in range(500):
        runner.start(i, watcher(location=f"s{i % 5}"))
    await until(lambda: min(scopes.calls_for(f"s{i}") for i in range(5)) >= 10)
    total = len(scopes.calls)
    polls = min(scopes.calls_for(f"s{i}") for i in range(5))
    await runner.kill()
    with capsys.disabled():
        print(
            f"\n500 watchers / 5 scopes: {total} list calls over {polls} intervals ({total / polls:.2f} per interval)"
        )
    assert total <= 5 * (polls + 1)


async def test_the_state_is_written_once_persisted_not_one_interval_later(scopes: Scopes) -> None:
    """The Flush after each snapshot moves the watcher past it at once: with a 60 s interval, the
    write follows the persistence confirmation within a few loop passes, not at the next poll."""
    store, runner = FakeAssetStore(), Runner()
    scopes.set("eu", job("j1", "SUCCEEDED", changed_at=later(30)))
    trigger = JobEventTrigger(service="dataflow", gcp_conn_id="g", location="eu", poll_interval=60)
    trigger.asset_state_store = store  # type: ignore[assignment]
    runner.start(1, trigger)
    await until(lambda: len(runner.events[1]) == 1)
    runner.persist()
    await until(lambda: "dataflow:j1:SUCCEEDED" in store.values[trigger.state_key]["keys"], timeout=5)
    assert scopes.calls_for("eu") == 1  # written before any second list call
    await runner.kill()


async def test_an_event_never_confirmed_commits_nothing_and_a_restart_reports_it(scopes: Scopes) -> None:
    """Airflow's ack timeout fails a watcher whose event was never confirmed persisted: nothing of
    that snapshot is written, so the watcher that takes over reports the job again."""
    store = FakeAssetStore()
    first = Runner(ack_timeout=0.3)
    trigger = watcher(store)
    scopes.set("eu", job("a", "FAILED", changed_at=later(5)))
    first.start(1, trigger)
    await until(lambda: 1 in first.errors)  # AckTimeout: the persist confirmation never came
    assert type(first.errors[1]).__name__ == "AckTimeout"
    assert store.values[trigger.state_key]["keys"] == {}
    await first.kill()
    second = Runner()
    second.start(1, watcher(store))
    await until(lambda: [e["job_id"] for e in second.events[1]] == ["a"])
    await second.kill()
