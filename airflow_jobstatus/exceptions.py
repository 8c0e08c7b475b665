"""Moved to ``airflow_jobstatus.core.exceptions``; this path stays importable (the README documents it)."""

from airflow_jobstatus.core.exceptions import *  # noqa: F403
from airflow_jobstatus.core.exceptions import __all__  # noqa: F401
