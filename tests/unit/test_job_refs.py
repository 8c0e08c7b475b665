"""The typed job references of ``services/*``: validation and their dict form across the trigger boundary."""

from __future__ import annotations

import dataclasses
import json

import pytest

from airflow_jobstatus.core.exceptions import ConfigurationError
from airflow_jobstatus.services import REGISTRY, SERVICES, get_service
from airflow_jobstatus.services.cdm import CdmJobRef
from airflow_jobstatus.services.dataflow import DataflowJobRef
from airflow_jobstatus.services.dataproc import DataprocJobRef
from airflow_jobstatus.services.dataproc_batch import DataprocBatchRef
from airflow_jobstatus.services.dli import DliJobRef
from airflow_jobstatus.services.dli_flink import DliFlinkJobRef
from airflow_jobstatus.services.vertex_ai import VertexAIJobRef
from airflow_jobstatus.services.vertex_pipeline import VertexAIPipelineJobRef

REFS = {
    "dataproc": DataprocJobRef(job_id="etl-1", region="europe-west1", project_id="p"),
    "dataflow": DataflowJobRef(job_id="2026-01-01_00_00_00-123", location="europe-west1"),
    "vertex_ai": VertexAIJobRef(job_id="42", location="us-central1", job_type="hyperparameter_tuning_job"),
    "cdm": CdmJobRef(cluster_id="c-1", job_name="orders to obs"),
    "dli": DliJobRef(job_id="7f0e-11", job_type="spark"),
    "dli_flink": DliFlinkJobRef(job_id="50320"),
    "dataproc_batch": DataprocBatchRef(batch_id="nightly-2026-12-07", region="europe-west1"),
    "vertex_pipeline": VertexAIPipelineJobRef(pipeline_job_id="my-pipeline-20261207", location="us-central1"),
}


def test_every_service_has_a_sample_reference():
    assert set(REFS) == set(SERVICES)


@pytest.mark.parametrize("service", SERVICES)
def test_dict_round_trip_through_json(service):
    ref = REFS[service]
    data = json.loads(json.dumps(ref.to_dict()))
    assert type(ref).from_dict(data) == ref
    assert get_service(service).ref(data) == ref
    assert ref.service == service and REGISTRY[service].ref_type is type(ref)


@pytest.mark.parametrize("service", SERVICES)
def test_unknown_field_is_rejected(service):
    data = {**REFS[service].to_dict(), "jobid": "typo"}
    with pytest.raises(ConfigurationError, match=r"unknown field.*jobid.*valid:"):
        get_service(service).ref(data)


@pytest.mark.parametrize("service", SERVICES)
def test_references_are_frozen(service):
    ref = REFS[service]
    with pytest.raises(dataclasses.FrozenInstanceError):
        ref.job_id = "other"  # type: ignore[misc]


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize("bad", ["", " ", ".", "..", None])
def test_identifying_fields_are_validated(service, bad):
    ref = REFS[service]
    for name in ref.id_fields:
        with pytest.raises(ConfigurationError, match=name):
            dataclasses.replace(ref, **{name: bad})


def test_identifiers_are_stripped():
    assert DataprocJobRef(job_id="  etl-1 ", region="r").job_id == "etl-1"


@pytest.mark.parametrize(
    ("cls", "kwargs", "expected"),
    [
        (DliJobRef, {"job_id": "j", "job_type": "SQL"}, "sql"),
        (DliJobRef, {"job_id": "j"}, "sql"),
        (
            VertexAIJobRef,
            {"job_id": "j", "location": "l", "job_type": "Batch_Prediction_Job"},
            "batch_prediction_job",
        ),
        (VertexAIJobRef, {"job_id": "j", "location": "l"}, "custom_job"),
    ],
)
def test_job_type_is_normalized(cls, kwargs, expected):
    assert cls(**kwargs).job_type == expected


@pytest.mark.parametrize("cls", [DliJobRef, VertexAIJobRef])
def test_unknown_job_type_is_rejected(cls):
    kwargs = {"job_id": "j"} | ({"location": "l"} if cls is VertexAIJobRef else {})
    with pytest.raises(ConfigurationError, match="Valid values"):
        cls(**kwargs, job_type="flink")


def test_display_ids():
    assert REFS["cdm"].display_id == "c-1/orders to obs"
    assert REFS["dataproc"].display_id == "etl-1"


def test_a_spec_refuses_another_services_reference():
    with pytest.raises(ConfigurationError, match="expected a DataprocJobRef"):
        get_service("dataproc").ref(REFS["dataflow"])
    assert get_service("dataproc").ref(REFS["dataproc"]) is REFS["dataproc"]


def test_unknown_service_lists_the_valid_ones():
    with pytest.raises(ConfigurationError, match="dataproc, dataflow, vertex_ai, cdm, dli"):
        get_service("emr")


def test_cdm_paths_quote_the_job_name():
    from airflow_jobstatus.services.cdm import status_op

    op = status_op(CdmJobRef(cluster_id="c/1", job_name="a b?x"))
    assert op.path == "/v1.1/{project_id}/clusters/c%2F1/cdm/job/a%20b%3Fx/status"


@pytest.mark.parametrize("service", SERVICES)
def test_the_registry_names_each_service_hook(service):
    """``hook_class`` loads the registry's dotted path (``core.dotted``) and the hook serves its service."""
    from airflow_jobstatus.hooks.base import JobStatusHook, hook_class

    cls = hook_class(service)
    assert issubclass(cls, JobStatusHook) and cls.service == service
    assert f"{cls.__module__}.{cls.__qualname__}" == get_service(service).hook
