"""Moved to ``airflow_jobstatus.tasks.job_wait``; this path stays importable (the README documents it)."""

from airflow_jobstatus.tasks.job_wait import *  # noqa: F403
from airflow_jobstatus.tasks.job_wait import __all__  # noqa: F401
