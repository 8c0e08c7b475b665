"""triggers of airflow-jobstatus."""
