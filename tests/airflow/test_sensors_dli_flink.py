"""DliFlinkJobStatusSensor in a real DAG run (dag.test() against the simulator's signed REST):
"it is up" with success_states={"RUNNING"} in poke, reschedule and deferrable mode, a job that dies
while the sensor waits for RUNNING, a streaming job's end, soft_fail, timeouts, transient errors
ridden out, 401 and not-found failing fast."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.dag_harness import run_operator

MODULE, CLS = "airflow_jobstatus.sensors.dli_flink", "DliFlinkJobStatusSensor"
SERVICE = "dli_flink"
FAST = {"poke_interval": 0.2, "error_budget": 20.0, "max_backoff": 0.2, "timeout": 30}
UP = [
    {"state": "job_submitting", "duration": 1.5, "status_desc": "submitting"},
    {"state": "job_running", "status_desc": "running", "restart_times": 2},
]
MODES = {
    "deferrable": {"deferrable": True},
    "poke": {"deferrable": False},
    "reschedule": {"deferrable": False, "mode": "reschedule"},
}


def run(sim: Any, job_id: int, timeline: list[dict[str, Any]] | None, name: str, **kwargs: Any) -> Any:
    if timeline is not None:
        sim.add_job(SERVICE, str(job_id), timeline)
    return run_operator(MODULE, CLS, {"job_id": job_id, **FAST, **kwargs}, name=name)


@pytest.mark.parametrize("mode", sorted(MODES))
def test_waiting_for_running_succeeds_once_the_job_is_up(sim, capfd, mode: str) -> None:
    job_id = 1000 + sorted(MODES).index(mode)
    result = run(sim, job_id, UP, f"flink_up_{mode}", success_states=["RUNNING"], **MODES[mode])
    out = capfd.readouterr().out
    assert result.state == "success", out[-3000:]
    value = result.return_value
    assert (value["service"], value["job_id"], value["state"], value["native_state"]) == (
        SERVICE,
        str(job_id),
        "RUNNING",
        "job_running",
    )
    assert (value["message"], value["counters"]) == ("running", {"restart_times": 2})
    # (whether the first read still saw job_submitting depends on how long the DAG run took to start)
    assert sim.method_calls(SERVICE)["ShowFlinkJob"] == sim.calls(SERVICE, str(job_id)) >= 1


@pytest.mark.parametrize("mode", ["deferrable", "poke"])
@pytest.mark.parametrize(
    ("native", "desc"),
    [("job_submit_fail", "Insufficient CUs on queue"), ("job_running_exception", "TaskManager lost")],
)
def test_a_job_that_dies_while_waiting_for_running_fails_the_sensor(
    sim, capfd, mode: str, native: str, desc: str
) -> None:
    job_id = 1100 + 10 * ["job_submit_fail", "job_running_exception"].index(native) + (mode == "poke")
    timeline = [{"state": "job_submitting", "duration": 0.4}, {"state": native, "status_desc": desc}]
    result = run(sim, job_id, timeline, f"flink_dies_{mode}", success_states=["RUNNING"], **MODES[mode])
    out = capfd.readouterr().out
    assert result.state == "failed", out[-3000:]
    assert native in out and desc in out


@pytest.mark.parametrize("mode", ["deferrable", "poke"])
def test_a_stopped_job_skips_with_soft_fail(sim, capfd, mode: str) -> None:
    timeline = [
        {"state": "job_canceling", "duration": 0.3},
        {"state": "job_cancel_success", "status_desc": "stopped by ops"},
    ]
    job_id = 1200 + (mode == "poke")
    result = run(sim, job_id, timeline, f"flink_stopped_{mode}", soft_fail=True, **MODES[mode])
    out = capfd.readouterr().out
    assert result.state == "skipped", out[-3000:]
    assert "stopped by ops" in out


def test_a_bounded_job_that_finishes_succeeds_by_default(sim, capfd) -> None:
    timeline = [{"state": "job_running", "duration": 0.4}, {"state": "job_finish", "status_desc": "done"}]
    result = run(sim, 1300, timeline, "flink_finish", deferrable=True)
    assert result.state == "success", capfd.readouterr().out[-3000:]
    assert (result.return_value["state"], result.return_value["native_state"]) == ("SUCCEEDED", "job_finish")


@pytest.mark.parametrize(
    ("mode", "soft_fail", "expect"),
    # Deferrable: dag.test() runs the trigger inline and never applies the deferral timeout (the
    # scheduler does); the deferral's timeout is a unit test (tests/unit/test_sensor_deferrable.py).
    [("poke", False, "failed"), ("poke", True, "skipped"), ("reschedule", False, "failed")],
)
def test_a_streaming_job_times_out_waiting_for_its_end(
    sim, capfd, mode: str, soft_fail: bool, expect: str
) -> None:
    job_id = 1400 + 2 * (mode == "poke") + soft_fail
    result = run(
        sim,
        job_id,
        [{"state": "job_running"}],
        f"flink_timeout_{mode}",
        timeout=1,
        soft_fail=soft_fail,
        **MODES[mode],
    )
    out = capfd.readouterr().out
    assert result.state == expect, out[-3000:]
    assert "Timeout" in out or "timed out" in out.lower()


@pytest.mark.parametrize("mode", ["deferrable", "poke"])
def test_transient_errors_are_ridden_out(sim, capfd, mode: str) -> None:
    job_id = 1500 + (mode == "poke")
    sim.add_job(SERVICE, str(job_id), UP)
    for kind in ("http_503", "http_429", "malformed_body"):
        sim.inject_fault(kind, count=1, service=SERVICE, job_id=str(job_id))
    result = run(sim, job_id, None, f"flink_flaky_{mode}", success_states=["RUNNING"], **MODES[mode])
    assert result.state == "success", capfd.readouterr().out[-3000:]
    assert sim.calls(SERVICE, str(job_id)) >= 4


@pytest.mark.parametrize("mode", ["deferrable", "poke"])
def test_an_unknown_job_fails_fast(sim, capfd, mode: str) -> None:
    result = run(sim, 1600 + (mode == "poke"), None, f"flink_missing_{mode}", **MODES[mode])
    out = capfd.readouterr().out
    assert result.state == "failed", out[-3000:]
    assert "JobNotFoundError" in out and "DLI.0002" in out
    assert sim.calls(SERVICE) == 1  # not retried


def test_wrong_credentials_fail_fast_without_leaking_the_secret(sim, monkeypatch, capfd, caplog) -> None:
    sim.add_job(SERVICE, "1700", UP)
    bad = dict(sim.connections()["huaweicloud_default"], password="not-the-secret-key")
    monkeypatch.setenv("AIRFLOW_CONN_BAD_HUAWEI", json.dumps(bad))
    result = run_operator(
        MODULE,
        CLS,
        {"job_id": 1700, "huaweicloud_conn_id": "bad_huawei", **FAST, "deferrable": True},
        name="flink_auth",
    )
    out = capfd.readouterr().out + caplog.text
    assert result.state == "failed"
    assert "AuthenticationError" in out and "401" in out
    assert "not-the-secret-key" not in out


def test_a_templated_job_id_is_rendered(sim, capfd) -> None:
    sim.add_job(SERVICE, "1800", UP)
    kwargs = {
        "job_id": "{{ params.flink_job }}",
        "params": {"flink_job": 1800},
        "success_states": ["RUNNING"],
    }
    result = run_operator(MODULE, CLS, {**kwargs, **FAST, "deferrable": True}, name="flink_templated")
    assert result.state == "success", capfd.readouterr().out[-3000:]
    assert result.return_value["job_id"] == "1800"
