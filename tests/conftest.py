"""Test session set-up: one throwaway AIRFLOW_HOME for the whole session, set before Airflow is imported."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

_HOME = tempfile.mkdtemp(prefix="airflow-jobstatus-tests-")
os.environ["AIRFLOW_HOME"] = _HOME
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_HOME}/airflow.db"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = os.path.join(_HOME, "dags")
os.environ.setdefault("HOME", _HOME)

pytest_plugins = ["tests.fixtures"]

#: Test layers, one folder each (README "Development"): the folder's name is the test's marker.
LAYERS = ("unit", "wire", "airflow", "e2e", "deployment", "ui")
_TESTS = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test with its layer, so that ``-m unit`` (or ``-m "not e2e"``) selects by layer."""
    for item in items:
        parts = Path(str(item.path)).resolve().relative_to(_TESTS).parts
        if len(parts) > 1 and parts[0] in LAYERS:
            item.add_marker(parts[0])
