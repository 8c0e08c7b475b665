"""The DLI console link points at the page of the job's type: SQL jobs and Spark batches are listed apart."""

from __future__ import annotations

import pytest

from airflow_jobstatus.links import DliJobLink
from airflow_jobstatus.services.dli import DliJobRef, console_url
from tests.unit.fakes import FakeHook, make_sensor

HUAWEI = "https://console.huaweicloud.com/dli/?region=cn-north-4#/main/jobsManagement"


@pytest.mark.parametrize(
    ("job_type", "url"),
    [("sql", f"{HUAWEI}/sqlJob?jobId=j-1"), ("spark", f"{HUAWEI}/sparkJob?jobId=j-1")],
)
def test_console_url_is_the_page_of_the_job_type(job_type: str, url: str) -> None:
    assert console_url(DliJobRef("j-1", job_type), "cn-north-4") == url


def test_no_region_no_link() -> None:
    assert console_url(DliJobRef("j-1", "spark"), None) == ""


def test_a_spark_sensors_link_is_the_spark_batch_page(inject) -> None:  # type: ignore[no-untyped-def]
    sensor = make_sensor("dli", job_id="batch-9", job_type="spark")
    inject(sensor, FakeHook(service="dli", scope="cn-north-4"))
    assert DliJobLink().get_link(sensor, ti_key=None) == f"{HUAWEI}/sparkJob?jobId=batch-9"
