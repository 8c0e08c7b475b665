"""Provider metadata read by Airflow's providers manager (entry point ``apache_airflow_provider``)."""

from __future__ import annotations

from typing import Any


def _str_field(
    label: str, description: str = "", default: Any = None, *, secret: bool = False
) -> dict[str, Any]:
    """A string extra of the connection form; ``secret``: a masked (password) input.

    Airflow reads ``conn-fields`` as JSON-schema params: the form shows a password input for
    ``schema.format == "password"`` (and the providers manager marks that field sensitive). A
    ``format`` key beside ``schema`` is ignored: the field is then a plain text box.
    """
    schema: dict[str, Any] = {"type": ["string", "null"]}
    if default is not None:
        schema["default"] = default
    if secret:
        schema["format"] = "password"
    field: dict[str, Any] = {"label": label, "schema": schema}
    if description:
        field["description"] = description
    return field


def get_provider_info() -> dict[str, Any]:
    # Imported here, and Airflow-free: Airflow calls this while it is itself being imported.
    from airflow_jobstatus.services import REGISTRY

    return {
        "package-name": "airflow-jobstatus",
        "name": "Job Status (Dataproc, Dataflow, Vertex AI, Huawei CDM, DLI)",
        "description": "Hooks, sensors, triggers and operators that wait on cloud jobs with one normalized state model.",
        "versions": ["0.1.0"],
        "integrations": [
            {
                "integration-name": "airflow-jobstatus",
                "external-doc-url": "https://pypi.org/project/airflow-jobstatus/",
            }
        ],
        "hooks": [
            {
                "integration-name": "airflow-jobstatus",
                "python-modules": [
                    *sorted({s.hook.rpartition(".")[0] for s in REGISTRY.values()}),
                    "airflow_jobstatus.hooks.huaweicloud",
                ],
            }
        ],
        "sensors": [
            {
                "integration-name": "airflow-jobstatus",
                "python-modules": sorted({s.sensor.rpartition(".")[0] for s in REGISTRY.values()}),
            }
        ],
        "triggers": [
            {
                "integration-name": "airflow-jobstatus",
                "python-modules": [
                    "airflow_jobstatus.triggers.job_events",
                    "airflow_jobstatus.triggers.job_status",
                ],
            }
        ],
        "operators": [
            {
                "integration-name": "airflow-jobstatus",
                "python-modules": ["airflow_jobstatus.operators.cdm", "airflow_jobstatus.operators.dli"],
            }
        ],
        "extra-links": [s.link for s in REGISTRY.values()],
        "connection-types": [
            {
                "hook-class-name": "airflow_jobstatus.hooks.huaweicloud.HuaweiCloudHook",
                "hook-name": "Huawei Cloud",
                "connection-type": "huaweicloud",
                "conn-fields": {
                    "region": _str_field("Region", "e.g. cn-north-4"),
                    "project_id": _str_field("Project ID", "Required: the project the jobs live in."),
                    "endpoint": _str_field(
                        "Endpoint", "Overrides every service's endpoint; http:// allowed."
                    ),
                    "cdm_endpoint": _str_field("CDM endpoint", "Overrides the CDM endpoint only."),
                    "dli_endpoint": _str_field("DLI endpoint", "Overrides the DLI endpoint only."),
                    "verify_ssl": {
                        "label": "Verify SSL",
                        "schema": {"type": ["boolean", "null"], "default": True},
                    },
                    "security_token": _str_field(
                        "Security token", "For temporary AK/SK credentials.", secret=True
                    ),
                    # It may carry a password (http://user:password@host:port); Airflow's secrets
                    # masker already hides a "proxy" extra in the REST API.
                    "proxy": _str_field(
                        "Proxy", "http(s)://[user:password@]host:port, used for every call.", secret=True
                    ),
                },
                "ui-field-behaviour": {
                    "hidden-fields": ["host", "schema", "port", "extra"],
                    "relabeling": {"login": "Access Key (AK)", "password": "Secret Key (SK)"},
                    "placeholders": {"login": "AK", "password": "SK"},
                },
            }
        ],
    }
