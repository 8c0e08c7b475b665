"""Totality of the Google native-state tables: every SDK enum value is mapped; an unknown int is UNKNOWN."""

from __future__ import annotations

import importlib
import logging
import warnings
from typing import Any

import pytest

from airflow_jobstatus.core.states import JobState, NativeStateTable
from airflow_jobstatus.services import dataflow, dataproc, dataproc_batch, vertex_ai, vertex_pipeline


def _enum(module: str, path: str) -> Any:
    """The SDK enum at ``module`` + attribute ``path``; skipped when the SDK is not installed."""
    obj: Any = pytest.importorskip(module)
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


TABLES = [
    ("google.cloud.dataproc_v1", "JobStatus.State", dataproc.STATES),
    ("google.cloud.dataproc_v1", "JobStatus.Substate", dataproc.RUNNING_SUBSTATES),
    ("google.cloud.dataflow_v1beta3", "JobState", dataflow.STATES),
    ("google.cloud.aiplatform_v1", "JobState", vertex_ai.STATES),
    ("google.cloud.dataproc_v1", "Batch.State", dataproc_batch.STATES),
    ("google.cloud.aiplatform_v1", "PipelineState", vertex_pipeline.STATES),
]


@pytest.mark.parametrize(("module", "path", "table"), TABLES, ids=lambda v: v if isinstance(v, str) else "")
def test_every_sdk_value_is_mapped(module: str, path: str, table: NativeStateTable) -> None:
    names = [member.name for member in _enum(module, path)]
    missing = [name for name in names if name not in table.table]
    assert not missing, f"{module}.{path} value(s) not in the {table.service} table: {', '.join(missing)}"
    stale = sorted(set(table.table) - set(names))
    assert not stale, f"the {table.service} table names value(s) {module}.{path} does not have: {stale}"


def _dataproc_job(state: int, substate: int = 0) -> Any:
    from google.cloud import dataproc_v1

    raw = dataproc_v1.Job.pb()()
    raw.status.state, raw.status.substate = state, substate
    return dataproc_v1.Job.wrap(raw)


def _dataflow_job(state: int) -> Any:
    from google.cloud import dataflow_v1beta3

    raw = dataflow_v1beta3.Job.pb()()
    raw.current_state = state
    return dataflow_v1beta3.Job.wrap(raw)


def _dataproc_batch(state: int) -> Any:
    from google.cloud import dataproc_v1

    raw = dataproc_v1.Batch.pb()()
    raw.state = state
    return dataproc_v1.Batch.wrap(raw)


def _pipeline_job(state: int) -> Any:
    types = pytest.importorskip("google.cloud.aiplatform_v1.types.pipeline_job")
    raw = types.PipelineJob.pb()()
    raw.state = state
    return types.PipelineJob.wrap(raw)


def _vertex_job(state: int) -> Any:
    types = pytest.importorskip("google.cloud.aiplatform_v1.types.custom_job")
    raw = types.CustomJob.pb()()
    raw.state = state
    return types.CustomJob.wrap(raw)


@pytest.mark.parametrize(
    ("parse", "build", "value"),
    [
        (lambda job: dataproc.parse(job, dataproc.DataprocJobRef("j", "r")), _dataproc_job, 1001),
        (lambda job: dataflow.parse(job, dataflow.DataflowJobRef("j", "l")), _dataflow_job, 1002),
        (lambda job: vertex_ai.parse(job, vertex_ai.VertexAIJobRef("j", "l")), _vertex_job, 1003),
        (lambda b: dataproc_batch.parse(b, dataproc_batch.DataprocBatchRef("b", "r")), _dataproc_batch, 1004),
        (
            lambda job: vertex_pipeline.parse(job, vertex_pipeline.VertexAIPipelineJobRef("p", "l")),
            _pipeline_job,
            1005,
        ),
    ],
    ids=["dataproc", "dataflow", "vertex_ai", "dataproc_batch", "vertex_pipeline"],
)
def test_unknown_int_is_unknown_and_warned_once(parse, build, value, caplog) -> None:
    job = build(value)
    with caplog.at_level(logging.WARNING), warnings.catch_warnings():
        warnings.simplefilter("error")  # no proto-plus "Unrecognized enum value" warning on top of ours
        statuses = [parse(job) for _ in range(3)]
    assert {(s.state, s.native_state) for s in statuses} == {(JobState.UNKNOWN, str(value))}
    assert sum(f"'{value}'" in r.getMessage() for r in caplog.records) == 1


def test_unknown_dataproc_substate_keeps_running_and_warns_once(caplog) -> None:
    importlib.import_module("google.cloud.dataproc_v1")
    job = _dataproc_job(state=2, substate=1004)  # RUNNING, substate from a newer API
    with caplog.at_level(logging.WARNING):
        statuses = [dataproc.parse(job, dataproc.DataprocJobRef("j", "r")) for _ in range(2)]
    assert {(s.state, s.substate) for s in statuses} == {(JobState.RUNNING, "1004")}
    assert sum("'1004'" in r.getMessage() for r in caplog.records) == 1


def test_every_pipeline_task_state_is_known() -> None:
    """The task states progress counts as finished are PipelineTaskDetail.State names."""
    types = pytest.importorskip("google.cloud.aiplatform_v1.types.pipeline_job")
    names = {member.name for member in types.PipelineTaskDetail.State}
    assert names >= vertex_pipeline.FINISHED_TASK_STATES
    assert names - vertex_pipeline.FINISHED_TASK_STATES == {
        "STATE_UNSPECIFIED",
        "PENDING",
        "RUNNING",
        "CANCEL_PENDING",
        "CANCELLING",
    }
