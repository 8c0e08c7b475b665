"""sensors of airflow-jobstatus."""
