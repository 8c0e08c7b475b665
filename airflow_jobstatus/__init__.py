"""airflow-jobstatus: wait on Dataproc, Dataflow, Vertex AI, Huawei CDM and DLI jobs with one state model."""

__version__ = "0.1.0"
