"""Sensors that wait on a cloud job until a normalized terminal state, in every mode."""

from __future__ import annotations

from airflow_jobstatus.sensors.cdm import CdmJobStatusSensor
from airflow_jobstatus.sensors.dataflow import DataflowJobStatusSensor
from airflow_jobstatus.sensors.dataproc import DataprocJobStatusSensor
from airflow_jobstatus.sensors.dataproc_batch import DataprocBatchStatusSensor
from airflow_jobstatus.sensors.dli import DliJobStatusSensor
from airflow_jobstatus.sensors.dli_flink import DliFlinkJobStatusSensor
from airflow_jobstatus.sensors.vertex_ai import VertexAIJobStatusSensor
from airflow_jobstatus.sensors.vertex_pipeline import VertexAIPipelineJobStatusSensor

__all__ = [
    "CdmJobStatusSensor",
    "DataflowJobStatusSensor",
    "DataprocBatchStatusSensor",
    "DataprocJobStatusSensor",
    "DliFlinkJobStatusSensor",
    "DliJobStatusSensor",
    "VertexAIJobStatusSensor",
    "VertexAIPipelineJobStatusSensor",
]
