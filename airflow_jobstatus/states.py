"""Moved to ``airflow_jobstatus.core.states``; this path stays importable (the README documents it)."""

from airflow_jobstatus.core.states import *  # noqa: F403
from airflow_jobstatus.core.states import __all__  # noqa: F401
