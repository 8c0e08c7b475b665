"""Beside apache-airflow-providers-google: both providers register, import in one process and read
the same ``google_cloud_platform`` connection.

The matrix venvs (``make test-matrix``) install the Google provider; there, ``JOBSTATUS_MATRIX=1``
turns a missing provider into a failure instead of a skip. The rest of the suite runs in the same
venvs, which is what shows this package's behaviour unchanged beside it.
"""

from __future__ import annotations

import json
import os
from importlib.metadata import PackageNotFoundError, version

import pytest


def _google_version() -> str | None:
    try:
        return version("apache-airflow-providers-google")
    except PackageNotFoundError:
        return None


pytestmark = pytest.mark.skipif(
    _google_version() is None and not os.environ.get("JOBSTATUS_MATRIX"),
    reason="apache-airflow-providers-google is not installed here (`make test-matrix` installs it)",
)


def test_the_google_provider_is_installed():
    assert _google_version() is not None, "the matrix venv must hold apache-airflow-providers-google"


def test_both_providers_register_with_their_connection_types():
    from airflow.providers_manager import ProvidersManager

    pm = ProvidersManager()
    assert "airflow-jobstatus" in pm.providers
    assert "apache-airflow-providers-google" in pm.providers
    hooks = pm.hooks
    gcp = hooks["google_cloud_platform"]
    assert gcp is not None and gcp.hook_class_name.startswith("airflow.providers.google.")
    huawei = hooks["huaweicloud"]
    assert huawei is not None
    assert huawei.hook_class_name == "airflow_jobstatus.hooks.huaweicloud.HuaweiCloudHook"


def test_both_import_in_one_process_and_read_one_connection(monkeypatch):
    from airflow.providers.google.cloud.hooks.dataproc import DataprocHook
    from airflow.providers.google.cloud.sensors.dataproc import DataprocJobSensor

    from airflow_jobstatus.hooks.base import make_hook
    from airflow_jobstatus.sensors import DataprocJobStatusSensor

    conn = {"conn_type": "google_cloud_platform", "extra": {"project": "proj-both"}}
    monkeypatch.setenv("AIRFLOW_CONN_GCP_BOTH", json.dumps(conn))
    assert make_hook("dataproc", "gcp_both").console_scope() == "proj-both"
    assert DataprocHook(gcp_conn_id="gcp_both")._get_field("project") == "proj-both"  # no credentials read
    ours = DataprocJobStatusSensor(task_id="ours", job_id="j", region="europe-west1", gcp_conn_id="gcp_both")
    theirs = DataprocJobSensor(task_id="theirs", dataproc_job_id="j", region="europe-west1")
    assert ours.gcp_conn_id == "gcp_both" and theirs.dataproc_job_id == "j"
