"""Skip marks for tests of a feature an older Airflow does not have (README "Supported Airflow versions").

Each names what the test inspects and the Airflow that has it; the feature's fallback on older
versions is tested where it is implemented (core/compat.py and its callers).
"""

from __future__ import annotations

import pytest

from airflow_jobstatus.core import compat


def _reads_conn_fields() -> bool:
    """Airflow >= 3.2 builds connection forms from provider info ``conn-fields`` (3.1: from the
    hook's Flask-AppBuilder widgets)."""
    from airflow.providers_manager import ProvidersManager

    return hasattr(ProvidersManager, "_to_api_format")


needs_trigger_rendering = pytest.mark.skipif(
    not compat.trigger_renders_templates(),
    reason="Airflow < 3.3's triggerer does not render a trigger's templated fields "
    "(BaseTrigger.render_template_fields is 3.3); such a sensor starts on a worker there",
)
needs_conn_fields = pytest.mark.skipif(
    not _reads_conn_fields(),
    reason="Airflow 3.1 builds the connection form from Flask-AppBuilder widgets, not provider-info conn-fields",
)


needs_event_streams = pytest.mark.skipif(
    not compat.has_event_streams(),
    reason="JobEventTrigger needs shared streams and the asset state store (Airflow >= 3.3); on older "
    "versions it is a ConfigurationError at parse, tested in tests/unit/test_job_events.py",
)
needs_progress_store = pytest.mark.skipif(
    not compat.has_task_state_store(),
    reason="a wait's progress is kept in the task state store (Airflow >= 3.3); older versions keep none "
    "(progress is only a view; README)",
)
needs_task_state_store = pytest.mark.skipif(
    not compat.has_task_state_store(),
    reason="reads the task state store's record (Airflow >= 3.3); older versions re-attach by the CDM "
    "job name or the DLI task tag, tested with the operators",
)

try:  # Airflow >= 3.2
    from airflow.dag_processing.dagbag import BundleDagBag as _BundleDagBag
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
except ImportError:  # Airflow 3.1
    from airflow.models.dagbag import BundleDagBag as _BundleDagBag  # type: ignore[no-redef,attr-defined]
    from airflow.models.dagbag import DagBag, sync_bag_to_db  # type: ignore[no-redef,attr-defined]


def BundleDagBag(**kwargs: object) -> object:
    """Airflow's ``BundleDagBag``; 3.1's takes no ``bundle_name``."""
    import inspect

    if "bundle_name" not in inspect.signature(DagBag.__init__).parameters:
        kwargs.pop("bundle_name", None)
    return _BundleDagBag(**kwargs)


try:  # Airflow >= 3.2: the task runner's listener manager
    from airflow.sdk.listener import get_listener_manager
except ImportError:  # Airflow 3.1
    from airflow.listeners.listener import get_listener_manager  # type: ignore[no-redef]

__all__ = [
    "BundleDagBag",
    "DagBag",
    "get_listener_manager",
    "needs_conn_fields",
    "needs_task_state_store",
    "needs_trigger_rendering",
    "sync_bag_to_db",
]
