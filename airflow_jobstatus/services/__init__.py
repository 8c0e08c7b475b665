"""The registry: the one list of services, each with every fact about it (see ``ServiceSpec``)."""

from __future__ import annotations

from airflow_jobstatus.services import (
    cdm,
    dataflow,
    dataproc,
    dataproc_batch,
    dli,
    dli_flink,
    vertex_ai,
    vertex_pipeline,
)
from airflow_jobstatus.services.base import JobRef, ServiceSpec

REGISTRY: dict[str, ServiceSpec] = {
    m.SPEC.name: m.SPEC
    for m in (dataproc, dataflow, vertex_ai, cdm, dli, dataproc_batch, dli_flink, vertex_pipeline)
}
SERVICES: tuple[str, ...] = tuple(REGISTRY)


def get_service(name: str) -> ServiceSpec:
    """The spec of service ``name``; a ConfigurationError listing the valid names otherwise."""
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        from airflow_jobstatus.core.exceptions import ConfigurationError

        raise ConfigurationError(
            f"Unknown service {name!r}. Valid services: {', '.join(SERVICES)}."
        ) from None


__all__ = ["REGISTRY", "SERVICES", "JobRef", "ServiceSpec", "get_service"]
