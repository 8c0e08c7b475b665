"""Google connections: every credential source the hook supports, and a clear error for the others.

``google.auth`` is exercised for real (keys are generated locally, nothing is sent anywhere).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_jobstatus.core.exceptions import ConfigurationError, JobNotFoundError
from airflow_jobstatus.hooks import gcp
from airflow_jobstatus.hooks.dataproc import DataprocJobHook
from airflow_jobstatus.services.dataproc import DataprocJobRef
from airflow_jobstatus.services.google import impersonation_chain

REF = DataprocJobRef("job-x", "europe-west1")


@pytest.mark.parametrize(
    "extra",
    [
        {"key_secret_name": "projects/p/secrets/sa"},
        {"extra__google_cloud_platform__key_secret_name": "sa"},
        {"idp_issuer_url": "https://idp.example"},
    ],
)
def test_unsupported_credential_extras_fail_instead_of_falling_back_to_adc(extra: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match="does not support") as info:
        gcp.parse_connection("c", "google_cloud_platform", extra)
    assert "Application Default Credentials" in str(info.value)


def test_two_credential_sources_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="key_path and credential_config_file"):
        gcp.parse_connection("c", None, {"key_path": "/k.json", "credential_config_file": "/c.json"})


def test_is_anonymous_gives_anonymous_credentials() -> None:
    from google.auth.credentials import AnonymousCredentials

    conn = gcp.parse_connection("c", None, {"is_anonymous": "true"})
    assert isinstance(gcp.build_credentials(conn), AnonymousCredentials)


def _external_account(tmp_path: Any) -> dict[str, Any]:
    token = tmp_path / "token.txt"
    token.write_text("subject-token")
    return {
        "type": "external_account",
        "audience": "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/x",
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": "https://sts.googleapis.com/v1/token",
        "credential_source": {"file": str(token)},
    }


@pytest.mark.parametrize("form", ["path", "json", "dict"])
def test_credential_config_file_loads_workload_identity_federation(tmp_path: Any, monkeypatch, form) -> None:
    """``credential_config_file`` reaches google.auth's loader as a file or as the parsed JSON.

    google.auth asks the STS endpoint for the project id while it loads an external-account config,
    and this machine has no route to Google: the loader is replaced by a recorder (the only way to
    reach this path here), and a real ``identity_pool`` config is parsed to prove the file is valid.
    """
    import google.auth
    from google.auth import identity_pool

    config = _external_account(tmp_path)
    identity_pool.Credentials.from_info(config)  # a valid workload identity federation config
    path = tmp_path / "wif.json"
    path.write_text(json.dumps(config))
    calls: list[tuple[str, Any]] = []
    monkeypatch.setattr(
        google.auth, "load_credentials_from_file", lambda f, scopes: calls.append(("file", f)) or ("c", None)
    )
    monkeypatch.setattr(
        google.auth, "load_credentials_from_dict", lambda d, scopes: calls.append(("dict", d)) or ("c", None)
    )
    value: Any = {"path": str(path), "json": json.dumps(config), "dict": config}[form]
    conn = gcp.parse_connection("c", None, {"credential_config_file": value})
    assert gcp.build_credentials(conn) == "c"
    assert calls == ([("file", str(path))] if form == "path" else [("dict", config)])


def test_impersonation_chain_argument_overrides_the_connection() -> None:
    conn = gcp.parse_connection(
        "c", None, {"impersonation_chain": "a@x.iam"}, impersonation_chain=["m@x", "t@x"]
    )
    assert conn.impersonation_chain == ("m@x", "t@x")
    other = gcp.parse_connection("c", None, {"impersonation_chain": "a@x.iam"})
    assert other.impersonation_chain == ("a@x.iam",)
    assert conn.credentials_id != other.credentials_id  # separate shared clients per identity


def test_sensor_passes_impersonation_chain_to_its_hook() -> None:
    from airflow_jobstatus.sensors import DataprocJobStatusSensor

    sensor = DataprocJobStatusSensor(
        task_id="t", job_id="j", region="r", impersonation_chain="target@x.iam", deferrable=False
    )
    assert isinstance(sensor.hook, DataprocJobHook)
    assert sensor.hook.impersonation_chain == "target@x.iam"
    trigger = sensor.make_trigger(1.0)
    assert impersonation_chain(trigger.serialize()[1]["impersonation_chain"]) == ("target@x.iam",)
    with pytest.raises(ConfigurationError, match="Google services only"):
        from airflow_jobstatus.sensors import DliJobStatusSensor

        DliJobStatusSensor(task_id="d", job_id="j", impersonation_chain="x@y")


async def test_undecodable_grpc_answer_is_retried_by_the_wait(sim: Any) -> None:
    """A garbled gRPC answer is a BadResponseError, which the wait rides out (it failed the task)."""
    from airflow_jobstatus.core.exceptions import BadResponseError
    from airflow_jobstatus.wait.rules import JobWatch, RetryPolicy

    sim.add_job("dataproc", "job-x", [{"state": "DONE"}], region="europe-west1")
    sim.inject_fault("grpc_undecodable", count=2, service="dataproc")
    hook = DataprocJobHook()
    with pytest.raises(BadResponseError):
        await hook.aget_status(REF)
    watch = JobWatch(policy=RetryPolicy(error_budget=30, initial_backoff=0.01, max_backoff=0.02))
    status = await watch.aread(lambda: hook.aget_status(REF))
    assert status.state.value == "SUCCEEDED"
    assert sim.calls("dataproc", "job-x") == 3
    with pytest.raises(JobNotFoundError):
        await hook.aget_status(DataprocJobRef("missing", "europe-west1"))
    await gcp.aclose_shared_clients()
