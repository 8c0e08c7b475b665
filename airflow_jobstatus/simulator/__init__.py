"""A local fake of Dataproc, Dataflow, Vertex AI (gRPC) and Huawei CDM, DLI (signed REST).

Importing this package starts nothing and imports no SDK, grpc or aiohttp; ``Simulator.start()`` does.
Modules: ``server`` (Simulator), ``core`` (jobs, faults, call records), ``vocabulary`` (the services'
native names and default timelines), ``timeline``, ``faults``; the fronts ``google_grpc``,
``vertex_grpc``, ``grpc_common`` (gRPC) and ``http``, ``huawei``, ``huawei_bodies``, ``signature``,
``control`` (aiohttp).
"""

from __future__ import annotations

from airflow_jobstatus.simulator.core import Fault, SimJob, SimulatorCore
from airflow_jobstatus.simulator.faults import FAULT_KINDS
from airflow_jobstatus.simulator.server import (
    DEFAULT_GRPC_PORT,
    DEFAULT_HTTP_PORT,
    DEFAULT_SCENARIOS,
    Simulator,
    SimulatorPortInUse,
)

__all__ = [
    "DEFAULT_GRPC_PORT",
    "DEFAULT_HTTP_PORT",
    "DEFAULT_SCENARIOS",
    "FAULT_KINDS",
    "Fault",
    "SimJob",
    "Simulator",
    "SimulatorCore",
    "SimulatorPortInUse",
]
