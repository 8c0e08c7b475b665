"""Shared pytest fixtures: one simulator for the whole session, reset before each test that uses it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from airflow_jobstatus.simulator import Simulator


@pytest.fixture(scope="session")
def simulator() -> Iterator[Simulator]:
    """The session's simulator (gRPC + HTTP on free ports, background thread), stopped at the end."""
    with Simulator() as sim:
        yield sim


@pytest.fixture
def sim(simulator: Simulator, monkeypatch: pytest.MonkeyPatch) -> Simulator:
    """The session simulator, reset, with AIRFLOW_CONN_* pointing at it for this test."""
    simulator.reset()
    for name, value in simulator.env().items():
        monkeypatch.setenv(name, value)
    return simulator
