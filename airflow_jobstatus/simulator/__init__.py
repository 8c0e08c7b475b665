"""A local fake of Dataproc, Dataflow, Vertex AI (gRPC) and Huawei CDM, DLI (signed REST).

Importing this package starts nothing and imports no SDK or grpc; ``Simulator.start()`` does.
"""

from __future__ import annotations

from airflow_jobstatus.simulator.core import Fault, SimJob, SimulatorCore
from airflow_jobstatus.simulator.server import DEFAULT_SCENARIOS, Simulator

__all__ = ["DEFAULT_SCENARIOS", "Fault", "SimJob", "Simulator", "SimulatorCore"]
