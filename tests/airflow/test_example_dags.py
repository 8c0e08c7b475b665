"""The example DAGs: all import cleanly, and each runs green with dag.test() against the simulator."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_jobstatus._demo_run import run_dag_file
from airflow_jobstatus.simulator import Simulator
from tests.airflow_versions import needs_event_streams
from tests.fixtures import EXAMPLES

DAG_FILES = {
    "example_dataproc.py": "example_jobstatus_dataproc",
    "example_dataflow.py": "example_jobstatus_dataflow",
    "example_vertex_ai.py": "example_jobstatus_vertex_ai",
    "example_cdm.py": "example_jobstatus_cdm",
    "example_dli.py": "example_jobstatus_dli",
    "example_dli_flink.py": "example_jobstatus_dli_flink",
    "example_cross_cloud.py": "example_jobstatus_cross_cloud",
    "example_dataproc_batch.py": "example_jobstatus_dataproc_batch",
    "example_vertex_pipeline.py": "example_jobstatus_vertex_pipeline",
    "example_jobstatus_asset_watchers.py": "example_jobstatus_asset_watchers",
}


WATCHERS_EXAMPLE = "example_jobstatus_asset_watchers.py"


def test_every_example_dag_imports() -> None:
    """Every example imports; on Airflow < 3.3 the asset-watcher one fails at parse with the documented
    ConfigurationError (README "Supported Airflow versions"), nothing else."""
    from airflow_jobstatus.core.compat import has_event_streams
    from tests.airflow_versions import DagBag

    bag = DagBag(dag_folder=str(EXAMPLES))
    expected = dict(DAG_FILES)
    if has_event_streams():
        assert bag.import_errors == {}
    else:
        del expected[WATCHERS_EXAMPLE]
        assert [p.rsplit("/", 1)[-1] for p in bag.import_errors] == [WATCHERS_EXAMPLE]
        assert "JobEventTrigger needs Airflow >= 3.3" in next(iter(bag.import_errors.values()))
    assert sorted(bag.dag_ids) == sorted(expected.values())
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(DAG_FILES)


def test_examples_wait_deferred() -> None:
    """Every wait in the examples is explicitly deferrable (the point of the examples)."""
    from airflow_jobstatus.tasks.job_wait import JobWaitMixin
    from tests.airflow_versions import DagBag

    bag = DagBag(dag_folder=str(EXAMPLES))
    waits = [t for dag in bag.dags.values() for t in dag.tasks if isinstance(t, JobWaitMixin)]
    assert waits
    for task in waits:
        assert task.deferrable or not getattr(task, "wait_for_completion", True), task.task_id


def run_example(file_name: str) -> tuple[str, dict[str, str | None], dict[str, dict[str, Any]]]:
    """Run an example DAG with dag.test(): (run state, task states, XComs by task)."""
    outcome = run_dag_file(EXAMPLES / file_name)
    return outcome["state"], outcome["tasks"], outcome["xcoms"]


def test_cross_cloud_dag_runs_green(demo_sim: Simulator) -> None:
    run, states, xcoms = run_example("example_cross_cloud.py")
    assert run == "success", states
    assert set(states.values()) == {"success"}
    summary = xcoms["summarize"]["return_value"]
    assert summary["cdm_counters"]["rows_written"] == 119800
    assert summary["dli_progress"] == 1
    assert [s["id"] for s in summary["dli_sub_jobs"]] == [0, 1]
    assert summary["dli_progress_history"][-1]["state"] == "SUCCEEDED"
    assert summary["vertex_ai_state"] == "SUCCEEDED"
    dataproc_id = xcoms["submit_dataproc_job"]["return_value"]
    assert xcoms["wait_for_dataproc_job"]["return_value"]["job_id"] == dataproc_id
    assert demo_sim.get_job("dataproc", dataproc_id) is not None


@pytest.mark.parametrize("file_name", ["example_cdm.py", "example_dli.py", "example_dataproc.py"])
def test_service_example_runs_green(demo_sim: Simulator, file_name: str) -> None:
    run, states, xcoms = run_example(file_name)
    assert run == "success", states
    assert set(states.values()) == {"success"}
    if file_name == "example_dli.py":
        submitted = xcoms["submit_only"]["job_id"]
        assert xcoms["wait_for_sql"]["return_value"]["job_id"] == submitted


def test_dli_flink_example_waits_until_the_job_is_up(demo_sim: Simulator) -> None:
    run, states, xcoms = run_example("example_dli_flink.py")
    assert (run, states) == ("success", {"wait_until_running": "success"})
    status = xcoms["wait_until_running"]["return_value"]
    assert (status["service"], status["job_id"], status["state"], status["native_state"]) == (
        "dli_flink",
        "50320",
        "RUNNING",
        "job_running",
    )
    assert (status["message"], status["counters"]) == ("The job is running.", {"restart_times": 0})


def test_dataproc_batch_example_runs_green(demo_sim: Simulator) -> None:
    run, states, xcoms = run_example("example_dataproc_batch.py")
    assert (run, states) == ("success", {"wait_for_batch": "success"})
    status = xcoms["wait_for_batch"]["return_value"]
    assert (status["service"], status["job_id"], status["state"]) == (
        "dataproc_batch",
        "sim-dataproc-batch",
        "SUCCEEDED",
    )
    assert status["counters"] == {"milli_dcu_seconds": 3600000, "shuffle_storage_gb_seconds": 1800}


def test_vertex_pipeline_example_runs_green(demo_sim: Simulator) -> None:
    run, states, xcoms = run_example("example_vertex_pipeline.py")
    assert (run, states) == ("success", {"wait_for_pipeline_job": "success"})
    status = xcoms["wait_for_pipeline_job"]["return_value"]
    assert (status["service"], status["job_id"], status["state"], status["progress"]) == (
        "vertex_pipeline",
        "sim-vertex-pipeline",
        "SUCCEEDED",
        1.0,
    )
    assert [(t["id"], t["status"]) for t in status["sub_jobs"]] == [
        ("prepare", "SUCCEEDED"),
        ("train", "SUCCEEDED"),
    ]


@needs_event_streams
def test_asset_watchers_example_consumer_runs_without_an_event(demo_sim: Simulator) -> None:
    """A manual run (dag.test()) has no triggering event: the consumer logs that and returns []."""
    run, states, xcoms = run_example("example_jobstatus_asset_watchers.py")
    assert (run, states) == ("success", {"job_that_ended": "success"})
    assert xcoms["job_that_ended"]["return_value"] == []


@needs_event_streams
def test_asset_watchers_example_watches_one_scope_per_asset() -> None:
    import runpy

    module = runpy.run_path(str(EXAMPLES / "example_jobstatus_asset_watchers.py"))
    assets = [v for k, v in module.items() if k.isupper() and hasattr(v, "watchers")]
    keys = {w.trigger.shared_stream_key() for asset in assets for w in asset.watchers}
    assert len(assets) == 3 and len(keys) == 3
