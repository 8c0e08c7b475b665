"""What is checked when the DAG is parsed, and what templating changes (conn ids, job ids)."""

from __future__ import annotations

import math
from datetime import datetime

import pytest

from airflow_jobstatus.core.exceptions import ConfigurationError
from airflow_jobstatus.core.states import JobState
from airflow_jobstatus.hooks.base import make_hook
from airflow_jobstatus.operators.cdm import CdmStartJobOperator
from airflow_jobstatus.operators.dli import DliRunSqlJobOperator
from airflow_jobstatus.services import SERVICES, get_service
from airflow_jobstatus.triggers.job_status import JobStatusTrigger
from tests.unit.fakes import CONN_ARG, make_sensor

TEMPLATE = "{{ ti.xcom_pull('submit') }}"
OPERATORS = {
    "cdm": lambda **kw: CdmStartJobOperator(task_id="o", cluster_id="c-1", job_name="orders", **kw),
    "dli": lambda **kw: DliRunSqlJobOperator(task_id="o", sql="SELECT 1", queue_name="q", **kw),
}


def id_fields(service: str) -> tuple[str, ...]:
    return get_service(service).ref_type.id_fields


# -- state sets -------------------------------------------------------------------------------------


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize("arg", ["success_states", "failure_states"])
def test_invalid_state_name_fails_listing_the_valid_ones(service, arg):
    with pytest.raises(ValueError, match=f"{arg}.*DONE.*Valid states: UNKNOWN, QUEUED"):
        make_sensor(service, **{arg: ["SUCCEEDED", "DONE"] if arg == "success_states" else ["DONE"]})


@pytest.mark.parametrize("which", sorted(OPERATORS))
def test_operator_rejects_invalid_state_names(which):
    with pytest.raises(ValueError, match="Valid states"):
        OPERATORS[which](failure_states=["FAILED", "ERRORED"])


def test_a_state_in_both_sets_fails():
    with pytest.raises(ValueError, match="SUCCEEDED cannot be in both"):
        make_sensor("dataproc", success_states=["SUCCEEDED"], failure_states=["FAILED", "succeeded"])
    with pytest.raises(ValueError, match="both"):
        OPERATORS["cdm"](success_states=["SUCCEEDED"], failure_states=["SUCCEEDED"])


def test_empty_success_set_fails():
    with pytest.raises(ValueError, match="at least one"):
        make_sensor("dataproc", success_states=[])


def test_resolved_sets_are_stored_as_sorted_names():
    sensor = make_sensor("dli", success_states=[JobState.SUCCEEDED, "partially_succeeded"])
    assert sensor.success_states == ["PARTIALLY_SUCCEEDED", "SUCCEEDED"]
    assert sensor.failure_states == ["CANCELLED", "DRAINED", "EXPIRED", "FAILED", "UPDATED"]


# -- seconds ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"max_backoff": 0}, "max_backoff"),
        ({"max_backoff": -1}, "max_backoff"),
        ({"error_budget": math.nan}, "error_budget"),
        ({"error_budget": -1}, "error_budget"),
        ({"not_found_grace": math.inf}, "not_found_grace"),
        ({"call_timeout": 0}, "call_timeout"),
    ],
)
@pytest.mark.parametrize("task", ["sensor", "cdm", "dli"])
def test_bad_seconds_fail_at_construction(kwargs, name, task):
    build = (lambda **kw: make_sensor("dataproc", **kw)) if task == "sensor" else OPERATORS[task]
    with pytest.raises(ValueError, match=name):
        build(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"timeout": -5}, "timeout"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": math.nan}, "timeout"),
        ({"poll_interval": 0}, "poll_interval"),
        ({"poll_interval": -1}, "poll_interval"),
        ({"poll_interval": math.inf}, "poll_interval"),
    ],
)
@pytest.mark.parametrize("which", sorted(OPERATORS))
def test_operator_timeout_and_poll_interval_are_checked(kwargs, name, which):
    with pytest.raises(ValueError, match=name):
        OPERATORS[which](**kwargs)


# -- job ids ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["", "   ", ".", ".."])
@pytest.mark.parametrize("service", SERVICES)
def test_bad_job_identifiers_fail_at_construction(service, bad):
    for field in id_fields(service):
        with pytest.raises(ConfigurationError, match=field):
            make_sensor(service, **{field: bad})


@pytest.mark.parametrize("bad", ["", "."])
def test_cdm_operator_checks_its_job_reference(bad):
    with pytest.raises(ConfigurationError, match="job_name"):
        CdmStartJobOperator(task_id="o", cluster_id="c-1", job_name=bad)


@pytest.mark.parametrize(("field", "value"), [("sql", ""), ("sql", "  "), ("queue_name", "")])
def test_dli_operator_needs_sql_and_a_queue(field, value):
    args = {"task_id": "o", "sql": "SELECT 1", "queue_name": "q", field: value}
    with pytest.raises(ConfigurationError, match=field):
        DliRunSqlJobOperator(**args)


@pytest.mark.parametrize(
    ("service", "valid"),
    [("dli", "sql, spark"), ("vertex_ai", "custom_job, batch_prediction_job, hyperparameter_tuning_job")],
)
@pytest.mark.parametrize("job_id", ["job-1", TEMPLATE], ids=["plain", "templated"])
def test_unknown_job_type_fails_even_with_a_templated_job_id(service, valid, job_id):
    with pytest.raises(ConfigurationError, match=f"Valid values: {valid}"):
        make_sensor(service, job_id=job_id, job_type="flink")


@pytest.mark.parametrize("service", SERVICES)
def test_templated_identifiers_are_accepted_and_templated(service):
    fields = {f: TEMPLATE for f in id_fields(service)}
    sensor = make_sensor(service, **fields)
    assert set(fields) <= set(sensor.template_fields)
    assert CONN_ARG[service] in sensor.template_fields


def test_job_type_is_normalized():
    assert make_sensor("dli", job_type="SPARK").job_ref().job_type == "spark"


def test_an_xcom_arg_job_id_is_resolved_at_run_time_not_stringified():
    from airflow.sdk import DAG, task

    with DAG("xcomarg_job_id", schedule=None, start_date=datetime(2024, 1, 1)):

        @task
        def submit() -> str:
            return "job-1"

        sensor = make_sensor("dataproc", job_id=submit())
    assert not isinstance(sensor.job_id, str)
    assert sensor.upstream_task_ids == {"submit"}


def test_impersonation_chain_is_for_google_only():
    with pytest.raises(ConfigurationError, match="Google"):
        make_sensor("cdm", impersonation_chain="sa@p.iam.gserviceaccount.com")
    sensor = make_sensor("dataflow", impersonation_chain=["a@p.iam.gserviceaccount.com"])
    assert sensor.make_trigger(1).impersonation_chain == ["a@p.iam.gserviceaccount.com"]


# -- templated connection ids -----------------------------------------------------------------------


@pytest.mark.parametrize("service", SERVICES)
def test_a_rendered_connection_id_is_used_by_the_hook_and_the_trigger(service):
    arg = CONN_ARG[service]
    sensor = make_sensor(service, **{arg: "{{ params.conn }}"}, params={"conn": "rendered_conn"})
    sensor.render_template_fields({"params": {"conn": "rendered_conn"}})
    assert getattr(sensor, arg) == "rendered_conn"
    assert sensor.hook.conn_id == "rendered_conn"
    assert type(sensor.hook) is type(make_hook(service))
    trigger = sensor.make_trigger(5)
    assert trigger.conn_id == "rendered_conn"
    assert JobStatusTrigger(**trigger.serialize()[1])._hook().conn_id == "rendered_conn"


@pytest.mark.parametrize("service", SERVICES)
def test_a_connection_id_changed_after_construction_takes_effect(service):
    arg = CONN_ARG[service]
    sensor = make_sensor(service, **{arg: "parse_time_conn"})
    setattr(sensor, arg, "run_time_conn")  # what rendering does
    assert sensor.hook.conn_id == "run_time_conn"
    assert sensor.make_trigger(5).conn_id == "run_time_conn"


@pytest.mark.parametrize("which", sorted(OPERATORS))
def test_an_operators_rendered_connection_id_is_used(which):
    op = OPERATORS[which](huaweicloud_conn_id="{{ params.conn }}")
    op.render_template_fields({"params": {"conn": "hw_prod"}})
    assert op.hook.conn_id == "hw_prod"


def test_rendered_job_fields_build_the_reference():
    sensor = make_sensor("dataproc", job_id="{{ params.job }}", region="{{ params.region }}")
    sensor.render_template_fields({"params": {"job": "etl-7", "region": "us-east1"}})
    ref = sensor.job_ref()
    assert (ref.job_id, ref.region) == ("etl-7", "us-east1")
    assert sensor.make_trigger(5).job_ref == {"job_id": "etl-7", "region": "us-east1", "project_id": None}


def test_a_job_id_rendered_empty_fails_when_the_reference_is_built():
    sensor = make_sensor("dataproc", job_id="{{ params.job }}")
    sensor.render_template_fields({"params": {"job": ""}})
    with pytest.raises(ConfigurationError, match="job_id"):
        sensor.job_ref()
