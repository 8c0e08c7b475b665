"""Build configuration pyproject.toml cannot express: ship the checkout's example DAGs in the wheel.

The example DAGs live in ``example_dags/`` at the repository root (where Airflow users and the tests
look for them); the wheel carries them as ``airflow_jobstatus/example_dags/*.py`` so that
``airflow-jobstatus demo`` and ``airflow-jobstatus example-dags DEST`` work from an installed wheel.
Everything else is in pyproject.toml.
"""

from setuptools import find_namespace_packages, setup

setup(
    packages=[*find_namespace_packages(include=["airflow_jobstatus*"]), "airflow_jobstatus.example_dags"],
    package_dir={"airflow_jobstatus.example_dags": "example_dags"},
)
