"""The connection form's secret extras, as Airflow 3.3 reads ``conn-fields`` from the provider info.

Airflow's providers manager turns each ``conn-fields`` entry into a form param: its ``schema`` is what
the UI renders (``schema.format == "password"`` is a masked input with the show/hide eye), and the same
``schema.format`` marks the widget sensitive. A ``format`` beside ``schema`` is ignored by both.
The REST API masks extras by name (Airflow's secrets masker), so a field masked in the form must also
be one the API hides: otherwise the form would hide what ``GET /api/v2/connections/{id}`` prints.
"""

from __future__ import annotations

from typing import Any

import pytest

from airflow_jobstatus.get_provider_info import get_provider_info
from tests.airflow_versions import needs_conn_fields

#: The extras of our connection types that hold a credential (or may: a proxy URL with a password).
SECRET_EXTRAS = {"huaweicloud": {"security_token", "proxy"}}


def connection_types() -> dict[str, dict[str, Any]]:
    return {c["connection-type"]: c for c in get_provider_info()["connection-types"]}


def test_every_field_declares_its_form_param_in_schema() -> None:
    for conn_type, conn in connection_types().items():
        for name, field in conn.get("conn-fields", {}).items():
            assert set(field) <= {"label", "description", "schema"}, (conn_type, name, field)
            assert isinstance(field["schema"].get("type"), list | str), (conn_type, name)


@pytest.mark.parametrize("conn_type", sorted(SECRET_EXTRAS))
def test_secret_extras_are_password_fields(conn_type: str) -> None:
    fields = connection_types()[conn_type]["conn-fields"]
    masked = {name for name, field in fields.items() if field["schema"].get("format") == "password"}
    assert masked == SECRET_EXTRAS[conn_type]
    behaviour = connection_types()[conn_type]["ui-field-behaviour"]
    assert "password" not in behaviour["hidden-fields"]  # the SK: Airflow's own password input


def test_masked_in_the_form_means_hidden_by_the_rest_api() -> None:
    from airflow._shared.secrets_masker import should_hide_value_for_key

    for conn_type, conn in connection_types().items():
        for name, field in conn.get("conn-fields", {}).items():
            masked = field["schema"].get("format") == "password"
            assert masked == bool(should_hide_value_for_key(name)), (conn_type, name)  # type: ignore[no-untyped-call]


@needs_conn_fields
def test_airflow_reads_the_secret_fields_as_sensitive_password_params() -> None:
    """What the connection form gets: the providers manager's widgets and the hook-meta route's params."""
    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService
    from airflow.providers_manager import ProvidersManager

    widgets = ProvidersManager().connection_form_widgets  # type: ignore[no-untyped-call]
    meta = {m.connection_type: m for m in HookMetaService.hook_meta_data()}
    extra_fields = dict(meta["huaweicloud"].extra_fields or {})
    for conn_type, names in SECRET_EXTRAS.items():
        for name in names:
            assert widgets[f"extra__{conn_type}__{name}"].is_sensitive, name
            assert extra_fields[name]["schema"]["format"] == "password", name
    assert extra_fields["region"]["schema"].get("format") is None
    assert not widgets["extra__huaweicloud__region"].is_sensitive
