"""The wait rules themselves (``waiting.JobWatch``, ``RetryPolicy``, ``check_seconds``), with a fake clock."""

from __future__ import annotations

import math

import pytest

from airflow_jobstatus.core.exceptions import (
    AuthenticationError,
    BadResponseError,
    JobNotFoundError,
    TransientServiceError,
)
from airflow_jobstatus.core.states import (
    DEFAULT_SUCCESS_STATES,
    STUCK_STATES,
    TERMINAL_STATES,
    JobState,
)
from airflow_jobstatus.wait.rules import HISTORY_LIMIT, JobWatch, RetryPolicy, check_seconds
from tests.unit.fakes import ERRORS, FakeClock, RecordingLog, status

NON_TERMINAL = sorted(set(JobState) - TERMINAL_STATES, key=lambda s: s.value)
ALL_STATES = sorted(JobState, key=lambda s: s.value)


def watch(**kw) -> tuple[JobWatch, RecordingLog]:
    log = RecordingLog()
    return JobWatch(log=log, **kw), log


# -- verdicts --------------------------------------------------------------------------------------


@pytest.mark.parametrize("state", ALL_STATES, ids=lambda s: s.value)
def test_default_sets_verdict_per_normalized_state(state):
    w, _ = watch()
    expected = (
        "success" if state in DEFAULT_SUCCESS_STATES else "failure" if state in TERMINAL_STATES else "wait"
    )
    assert w.verdict(status(state)) == expected


@pytest.mark.parametrize(
    ("success", "failure", "state", "expected"),
    [
        (["SUCCEEDED"], None, JobState.DRAINED, "failure"),  # DRAINED no longer accepted
        (["SUCCEEDED"], None, JobState.UPDATED, "failure"),
        (["SUCCEEDED", "PARTIALLY_SUCCEEDED"], None, JobState.PARTIALLY_SUCCEEDED, "success"),
        (["SUCCEEDED", "EXPIRED"], None, JobState.EXPIRED, "success"),
        (None, ["FAILED", "PAUSED"], JobState.PAUSED, "failure"),  # fail fast on a non-terminal state
        (None, ["FAILED", "PAUSED"], JobState.RUNNING, "wait"),
        (["succeeded"], ["failed"], JobState.SUCCEEDED, "success"),  # names are case-insensitive
        (None, ["FAILED"], JobState.SUCCEEDED, "success"),
    ],
)
def test_custom_sets_verdict(success, failure, state, expected):
    w, _ = watch(success_states=success, failure_states=failure)
    assert w.verdict(status(state)) == expected


@pytest.mark.parametrize(
    ("failure", "state"),
    [
        (["PAUSED"], JobState.FAILED),
        (["PAUSED"], JobState.CANCELLED),
        (["FAILED"], JobState.CANCELLED),
        ([], JobState.EXPIRED),
    ],
)
def test_terminal_state_in_neither_set_is_a_failure(failure, state):
    w, _ = watch(failure_states=failure)
    assert state not in w.failure_states and state not in w.success_states
    assert w.verdict(status(state)) == "failure"


@pytest.mark.parametrize("state", NON_TERMINAL, ids=lambda s: s.value)
def test_non_terminal_states_keep_waiting(state):
    w, _ = watch()
    assert w.verdict(status(state)) == "wait"


# -- warnings and progress lines --------------------------------------------------------------------


@pytest.mark.parametrize("state", sorted(STUCK_STATES, key=lambda s: s.value), ids=lambda s: s.value)
def test_stuck_state_warns_once_until_it_changes(state):
    w, log = watch()
    for _ in range(3):
        w.verdict(status(state, message="attempt 1 died"))
    assert len(log.messages("warning")) == 1
    assert state.value in log.messages("warning")[0] and "attempt 1 died" in log.messages("warning")[0]
    w.verdict(status(JobState.RUNNING))
    w.verdict(status(state))  # a change back into it: warned again
    assert len(log.messages("warning")) == 2


@pytest.mark.parametrize(
    ("service", "native", "substate"),
    [
        ("dataproc", "RUNNING", "STALE_STATUS"),
        ("cdm", "NEVER_EXECUTED", None),
        ("cdm", "NO_SUBMISSION", None),
    ],
)
def test_attention_native_state_warns_once(service, native, substate):
    w, log = watch()
    reading = status(JobState.PENDING, service=service, native=native, substate=substate)
    for _ in range(3):
        assert w.verdict(reading) == "wait"
    assert len(log.messages("warning")) == 1
    assert (substate or native) in log.messages("warning")[0]


def test_running_job_does_not_warn():
    w, log = watch()
    for progress in (0.1, 0.5, 0.9):
        w.verdict(status(JobState.RUNNING, progress=progress))
    assert log.messages("warning") == []


def test_one_progress_line_per_poll():
    w, log = watch()
    sub = [{"id": 3, "status": "RUNNING", "num_tasks": 8, "num_completed_tasks": 5}]
    readings = [
        status(JobState.PENDING, service="dli", native="LAUNCHING"),
        status(JobState.RUNNING, service="dli", native="RUNNING", progress=0.45, sub_jobs=sub),
        status(JobState.RUNNING, service="dli", native="RUNNING", progress=0.45, sub_jobs=sub),
    ]
    for reading in readings:
        w.verdict(reading)
    lines = log.messages("info")
    assert len(lines) == 3
    assert "PENDING" in lines[0] and "LAUNCHING" in lines[0]
    assert "45%" in lines[1] and "subjob 3 5/8 tasks" in lines[1]


# -- history ----------------------------------------------------------------------------------------


def test_history_is_compact_and_bounded_and_keeps_last_sub_jobs():
    w, _ = watch()
    sub = [{"id": 1, "status": "RUNNING", "num_tasks": 10, "num_completed_tasks": 0}]
    for i in range(HISTORY_LIMIT * 2):
        w.verdict(status(JobState.RUNNING, progress=i / 1000, sub_jobs=sub))
        w.verdict(status(JobState.RUNNING, progress=i / 1000, sub_jobs=sub))  # unchanged: no entry
    w.verdict(status(JobState.SUCCEEDED, progress=1.0))
    snap = w.snapshot()
    assert len(snap["progress_history"]) == HISTORY_LIMIT
    assert snap["progress_history"][-1]["state"] == "SUCCEEDED"
    assert all(set(h) == {"at", "state", "progress", "tasks"} for h in snap["progress_history"])
    assert snap["last_sub_jobs"] == sub  # kept although the final status lists none


# -- errors -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["transient", "bad_response"])
def test_retryable_errors_are_ridden_out_within_the_budget(kind):
    clock = FakeClock()
    w, log = watch(policy=RetryPolicy(error_budget=10, max_backoff=4), clock=clock)
    delays = []
    for _ in range(4):
        delays.append(w.on_error(ERRORS[kind]()))
        clock.advance(2)
    assert all(0 < d <= 4 for d in delays)
    assert len(log.messages("warning")) == 4 and "retrying in" in log.messages("warning")[0]
    clock.advance(10)
    last = ERRORS[kind]()
    with pytest.raises(type(last)) as raised:
        w.on_error(last)
    assert raised.value is last  # the last error, not the first
    assert "Giving up" in log.messages("error")[0]


def test_read_rides_out_a_burst_then_returns_the_reading():
    clock = FakeClock()
    w, _ = watch(policy=RetryPolicy(error_budget=60, max_backoff=1), clock=clock)
    script = [
        ERRORS["transient"](),
        ERRORS["bad_response"](),
        ERRORS["transient"](),
        status(JobState.RUNNING),
    ]
    calls = []

    def fetch():
        calls.append(1)
        clock.advance(1)
        item = script.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    slept: list[float] = []
    assert w.read(fetch, sleep=slept.append).state is JobState.RUNNING
    assert len(calls) == 4 and len(slept) == 3
    assert w.errors == 0  # a reading resets the streak


def test_read_raises_the_last_error_when_the_budget_is_spent():
    clock = FakeClock()
    w, _ = watch(policy=RetryPolicy(error_budget=5, max_backoff=1), clock=clock)
    errors = [TransientServiceError(f"503 #{i}") for i in range(100)]
    served = []

    def fetch():
        clock.advance(1)
        served.append(errors[len(served)])
        raise served[-1]

    with pytest.raises(TransientServiceError) as raised:
        w.read(fetch, sleep=lambda _: None)
    assert raised.value is served[-1]
    assert 5 <= len(served) <= 7  # about one call per second of budget


def test_a_reading_resets_the_error_streak():
    clock = FakeClock()
    w, _ = watch(policy=RetryPolicy(error_budget=5, max_backoff=1), clock=clock)
    w.on_error(ERRORS["transient"]())
    clock.advance(4)
    w.read(lambda: status(JobState.RUNNING))
    clock.advance(4)  # 8 s after the first error, but a new streak
    assert w.on_error(ERRORS["transient"]()) >= 0
    clock.advance(5)  # this streak has now lasted the budget
    with pytest.raises(TransientServiceError):
        w.on_error(ERRORS["transient"]())


@pytest.mark.parametrize("kind", ["authentication", "not_found", "bad_request"])
def test_final_errors_fail_at_once(kind):
    w, log = watch(policy=RetryPolicy(error_budget=300))
    err = ERRORS[kind]()
    with pytest.raises(type(err)):
        w.on_error(err)
    assert log.messages("warning") == []  # no "retrying"


def test_an_unexpected_exception_is_not_retried():
    w, _ = watch()
    with pytest.raises(KeyError):
        w.on_error(KeyError("a bug"))


def test_not_found_is_retried_only_within_the_grace():
    clock = FakeClock()
    w, _ = watch(policy=RetryPolicy(not_found_grace=5, max_backoff=1), clock=clock)
    assert w.on_error(JobNotFoundError("404")) >= 0
    clock.advance(4.9)
    assert w.on_error(JobNotFoundError("404")) >= 0
    clock.advance(0.2)  # 5.1 s after the wait started
    with pytest.raises(JobNotFoundError):
        w.on_error(JobNotFoundError("404"))


def test_not_found_without_grace_fails_at_once():
    w, _ = watch(policy=RetryPolicy(not_found_grace=0))
    with pytest.raises(JobNotFoundError):
        w.on_error(JobNotFoundError("404"))


def test_auth_error_inside_not_found_grace_still_fails():
    w, _ = watch(policy=RetryPolicy(not_found_grace=60))
    with pytest.raises(AuthenticationError):
        w.on_error(AuthenticationError("403"))


# -- backoff and Retry-After ------------------------------------------------------------------------


def test_backoff_is_capped_exponential():
    policy = RetryPolicy(initial_backoff=1, max_backoff=8)
    for attempt, cap in [(1, 1), (2, 2), (3, 4), (4, 8), (10, 8)]:
        for _ in range(20):
            assert cap / 2 <= policy.backoff(attempt) <= cap


@pytest.mark.parametrize(
    ("retry_after", "max_backoff", "expected"),
    [(7.0, 60.0, 7.0), (500.0, 60.0, 60.0), (5.0, 2.0, 2.0)],
    ids=["honoured", "bounded", "bounded-small"],
)
def test_retry_after_is_honoured_and_bounded_by_max_backoff(retry_after, max_backoff, expected):
    clock = FakeClock()
    w, _ = watch(policy=RetryPolicy(error_budget=1000, max_backoff=max_backoff), clock=clock)
    err = TransientServiceError("429 Too Many Requests", code=429, retry_after=retry_after)
    assert w.on_error(err) == pytest.approx(expected)


def test_retry_after_never_outlasts_the_budget():
    clock = FakeClock()
    w, _ = watch(policy=RetryPolicy(error_budget=10, max_backoff=60), clock=clock)
    w.on_error(TransientServiceError("503"))
    clock.advance(7)
    assert w.on_error(TransientServiceError("429", retry_after=30)) == pytest.approx(3)


def test_a_garbled_answer_is_retryable():
    assert BadResponseError("garbled").retryable
    assert TransientServiceError("503").retryable
    assert not AuthenticationError("401").retryable and not JobNotFoundError("404").retryable


# -- argument checks --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"error_budget": -1},
        {"error_budget": math.nan},
        {"error_budget": math.inf},
        {"max_backoff": 0},
        {"initial_backoff": 0},
        {"not_found_grace": -0.5},
        {"error_budget": "10"},
        {"error_budget": True},
    ],
)
def test_retry_policy_rejects_bad_values(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        RetryPolicy(**kwargs)


@pytest.mark.parametrize(
    ("value", "positive", "ok"),
    [(0, False, True), (0, True, False), (1.5, True, True), (-1, False, False), (math.nan, False, False)],
)
def test_check_seconds(value, positive, ok):
    if ok:
        assert check_seconds("x", value, positive=positive) == float(value)
    else:
        with pytest.raises(ValueError, match="x must be a finite number"):
            check_seconds("x", value, positive=positive)


# -- the worker's own wait loop (operators without deferral) --------------------------------------


def test_wait_polls_until_decisive():
    w, _ = watch()
    readings = iter([status(JobState.PENDING), status(JobState.RUNNING), status(JobState.SUCCEEDED)])
    verdict, final = w.wait(lambda: next(readings), poll_interval=0.001)
    assert verdict == "success" and final.state is JobState.SUCCEEDED and w.polls == 3


def test_wait_times_out_with_a_clear_message():
    w, _ = watch()
    with pytest.raises(TimeoutError, match=r"still RUNNING after 0\.001 s"):
        w.wait(lambda: status(JobState.RUNNING), poll_interval=0.01, timeout=0.001)
