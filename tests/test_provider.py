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
