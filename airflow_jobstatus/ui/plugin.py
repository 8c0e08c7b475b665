"""The Airflow plugin (entry point ``airflow.plugins``): the board's FastAPI app and its nav entry.

Every Airflow process loads plugins; this module imports only what plugin loading already has loaded.
The FastAPI app is built on its first request, which only the API server ever sends it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

try:  # the task SDK's base (a worker without Airflow core loads plugins through it); core's otherwise
    from airflow.sdk.plugins_manager import AirflowPlugin
except ImportError:  # pragma: no cover - older task SDKs
    from airflow.plugins_manager import AirflowPlugin  # type: ignore[assignment]

#: Where the API server mounts the board (the page at ``/cloud-jobs/``, the data at ``/cloud-jobs/api/jobs``).
URL_PREFIX = "/cloud-jobs"
#: The Airflow UI route embedding the page (``/plugin/cloud-jobs``).
URL_ROUTE = "cloud-jobs"
TITLE = "Cloud jobs"


class LazyApp:
    """An ASGI app that builds the board's FastAPI app on its first call."""

    def __init__(self) -> None:
        self._app: Any = None

    @property
    def app(self) -> Any:
        if self._app is None:
            from airflow_jobstatus.ui.app import create_app

            self._app = create_app()
        return self._app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


def _base_path() -> str:
    """The path prefix of ``[api] base_url`` (the page's address must carry it), "" at the root."""
    try:
        from airflow.configuration import conf

        return urlsplit(conf.get("api", "base_url", fallback="") or "").path.rstrip("/")
    except Exception:
        return ""


class CloudJobsPlugin(AirflowPlugin):
    """A "Cloud jobs" page in the Airflow nav: every job the provider's sensors and operators wait on."""

    name = "airflow_jobstatus_cloud_jobs"
    fastapi_apps = [{"app": LazyApp(), "url_prefix": URL_PREFIX, "name": TITLE}]
    external_views = [
        {
            "name": TITLE,
            "href": f"{_base_path()}{URL_PREFIX}/",
            "url_route": URL_ROUTE,
            "destination": "nav",
            "nav_top_level": True,
            "icon": f"{_base_path()}{URL_PREFIX}/static/icon.svg",
        }
    ]
