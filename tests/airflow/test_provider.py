"""The package registers itself with Airflow's providers manager."""

from __future__ import annotations

from importlib.metadata import entry_points

from airflow_jobstatus.get_provider_info import get_provider_info


def test_entry_point_points_at_provider_info():
    eps = [
        ep for ep in entry_points(group="apache_airflow_provider") if ep.value.startswith("airflow_jobstatus")
    ]
    assert len(eps) == 1
    info = eps[0].load()()
    assert info["package-name"] == "airflow-jobstatus"


def test_providers_manager_lists_package_and_connection_type():
    from airflow.providers_manager import ProvidersManager

    pm = ProvidersManager()
    assert "airflow-jobstatus" in pm.providers
    conn_types = {ct["connection-type"] for ct in get_provider_info()["connection-types"]}
    assert "huaweicloud" in conn_types


def test_huawei_secrets_are_password_fields_in_the_connection_form():
    """The SK (password) and the security token must not show in clear text in the UI form."""
    (huawei,) = [c for c in get_provider_info()["connection-types"] if c["connection-type"] == "huaweicloud"]
    # Airflow's form reads the format from the field's JSON schema, not from the field itself
    assert huawei["conn-fields"]["security_token"]["schema"].get("format") == "password"
    assert "password" not in huawei["ui-field-behaviour"]["hidden-fields"]


def test_provider_lists_every_service_from_the_registry():
    from airflow_jobstatus.services import REGISTRY

    info = get_provider_info()
    assert info["extra-links"] == [s.link for s in REGISTRY.values()]
    sensors = info["sensors"][0]["python-modules"]
    assert sorted(sensors) == sorted(s.sensor.rpartition(".")[0] for s in REGISTRY.values())
    for spec in REGISTRY.values():  # every path the registry names resolves to the right class
        import importlib

        for path in (spec.hook, spec.sensor, spec.link):
            module, _, name = path.rpartition(".")
            cls = getattr(importlib.import_module(module), name)
            assert getattr(cls, "service", spec.name) == spec.name, path
