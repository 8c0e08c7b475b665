"""The shared vocabulary: states and the status record, error kinds, Airflow version shims, and the
small helpers every layer uses (dotted paths, templates). Imports nothing else of the package."""
