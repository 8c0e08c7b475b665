"""Shared pytest fixtures: one simulator for the whole session, reset before each test that uses it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_jobstatus.simulator import DEFAULT_SCENARIOS, Simulator

#: The checkout's example DAGs.
EXAMPLES = Path(__file__).resolve().parent.parent / "example_dags"


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


@pytest.fixture
def demo_sim(sim: Simulator) -> Simulator:
    """The session simulator with the default scenarios and the examples' CDM job."""
    sim.load_scenarios(DEFAULT_SCENARIOS)
    return sim
