"""Every import that moved between Airflow 3.1, 3.2 and 3.3, in one place.

The package is tested on Airflow 3.3 (see the README); the fallbacks keep the import of a DAG file
from failing on the older layout, so the error a user sees is about the version, not a traceback.
"""

from __future__ import annotations

from typing import Any

try:  # Airflow >= 3.2: the task SDK has its own configuration and exceptions
    from airflow.sdk.configuration import conf
    from airflow.sdk.exceptions import (
        AirflowException,
        AirflowNotFoundException,
        AirflowSensorTimeout,
        AirflowSkipException,
        AirflowTaskTimeout,
        TaskDeferralTimeout,
    )
except ImportError:  # pragma: no cover - Airflow 3.1
    from airflow.configuration import conf  # type: ignore[no-redef]
    from airflow.exceptions import (  # type: ignore[no-redef,attr-defined]
        AirflowException,
        AirflowNotFoundException,
        AirflowSensorTimeout,
        AirflowSkipException,
        AirflowTaskTimeout,
        TaskDeferralTimeout,
    )

try:
    from airflow.sdk.log import mask_secret
except ImportError:  # pragma: no cover - older task SDKs
    from airflow.sdk.execution_time.secrets_masker import mask_secret  # type: ignore[no-redef]


def default_deferrable() -> bool:
    """``[operators] default_deferrable``, as every Airflow provider reads it."""
    return bool(conf.getboolean("operators", "default_deferrable", fallback=False))


async def amask_secret(secret: Any) -> None:
    """Register a secret with the masker from async code (the async call where the SDK has one)."""
    from airflow.sdk import log as sdk_log

    amask = getattr(sdk_log, "amask_secret", None)
    if amask is not None:
        await amask(secret)
    else:
        mask_secret(secret)


__all__ = [
    "AirflowException",
    "AirflowNotFoundException",
    "AirflowSensorTimeout",
    "AirflowSkipException",
    "AirflowTaskTimeout",
    "TaskDeferralTimeout",
    "amask_secret",
    "conf",
    "default_deferrable",
    "mask_secret",
]
