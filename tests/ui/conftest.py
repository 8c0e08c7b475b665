"""The board's suite: tests marked ``ui`` (a real Airflow and headless Chromium) run only when selected.

``make test-ui`` runs ``pytest tests/ui -m ui``; any run whose ``-m`` does not select ``ui`` (the default
``make test`` among them) skips them, so no one starts a browser or apt-get by accident. Every test in
this folder is marked ``ui`` (tests/conftest.py marks a test with its folder's layer): the board's rules,
which need neither, are in ``tests/unit/test_ui_board_rules.py`` and run with ``make test``.
"""

from __future__ import annotations

import re

import pytest

UI_MARKER = "ui"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "ui: the Cloud jobs board in a real Airflow and headless Chromium (make test-ui)"
    )


def selects_ui(markexpr: str) -> bool:
    """True when a ``-m`` expression asks for the ui tests (``ui``, ``ui and …``; not ``not ui``)."""
    words = re.findall(r"[\w-]+", markexpr)
    return any(w == UI_MARKER and (i == 0 or words[i - 1] != "not") for i, w in enumerate(words))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if selects_ui(str(config.getoption("markexpr") or "")):
        return
    skip = pytest.mark.skip(reason="the browser suite runs with `make test-ui` (pytest -m ui)")
    for item in items:
        if item.get_closest_marker(UI_MARKER) is not None:
            item.add_marker(skip)
