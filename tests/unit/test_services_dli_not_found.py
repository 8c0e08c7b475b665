"""DLI's not-found (HTTP 400 DLI.0002) on a read names the other job type: a Spark batch id read as a
SQL job (or the reverse) is not found either, since the two are read by different calls."""

from __future__ import annotations

import json

import pytest

from airflow_jobstatus.core.exceptions import BadRequestError, JobNotFoundError
from airflow_jobstatus.hooks.huawei_responses import http_error
from airflow_jobstatus.services import dli
from airflow_jobstatus.services.dli import DliJobRef


def body(code: str, message: str) -> bytes:
    return json.dumps({"error_code": code, "error_msg": message}).encode()


@pytest.mark.parametrize(("job_type", "other"), [("sql", "spark"), ("spark", "sql")])
@pytest.mark.parametrize("status", [400, 404])
def test_a_not_found_read_hints_at_the_other_job_type(job_type: str, other: str, status: int) -> None:
    op = dli.status_op(DliJobRef("j-1", job_type))
    err = http_error(status, {}, body(dli.UNKNOWN_JOB_CODE, "The job j-1 does not exist."), op, service="dli")
    assert isinstance(err, JobNotFoundError)
    assert "'j-1' not found" in str(err) and "does not exist" in str(err)
    assert f"does not exist.); {dli.WRONG_TYPE_HINTS[job_type]}" in str(err)
    assert f"read it with job_type {other!r}" in str(err)
    assert op.not_found_hint == dli.WRONG_TYPE_HINTS[job_type]


def test_other_errors_carry_no_hint() -> None:
    op = dli.status_op(DliJobRef("j-1", "sql"))
    err = http_error(400, {}, body("DLI.0001", "bad parameter"), op, service="dli")
    assert isinstance(err, BadRequestError) and not isinstance(err, JobNotFoundError)
    assert "job_type" not in str(err)


def test_only_the_status_read_has_the_hint() -> None:
    """A cancel of an unknown job is not a read: no not-found codes, no hint (its 404 says not found alone)."""
    op = dli.cancel_op(DliJobRef("j-1", "spark"))
    assert (op.not_found_codes, op.not_found_hint) == ((), "")
    err = http_error(404, {}, body("DLI.0002", "no such batch"), op, service="dli")
    assert isinstance(err, JobNotFoundError) and "job_type" not in str(err)
