"""The "Cloud jobs" board: an Airflow UI plugin listing the jobs this provider's tasks wait on.

``plugin.CloudJobsPlugin`` (entry point ``airflow.plugins``) adds a FastAPI app under ``/cloud-jobs``
(the page and its data API) and a nav entry that embeds the page in the Airflow UI. See docs/ui.md.
Nothing is imported here: Airflow loads the plugin in every process, and only the API server needs more.
"""
