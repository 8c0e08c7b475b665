"""operators of airflow-jobstatus."""
