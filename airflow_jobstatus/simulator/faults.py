"""Injected faults: the kinds, which protocol each applies to, and the counted rules that match calls."""

from __future__ import annotations

import math
from dataclasses import dataclass

from airflow_jobstatus.simulator.timeline import is_number
from airflow_jobstatus.simulator.vocabulary import ids_match

#: Every fault kind and the protocols ("grpc", "http") whose calls it can hit.
FAULT_PROTOCOLS: dict[str, tuple[str, ...]] = {
    # HTTP (CDM, DLI): a status with the API gateway's or the service's error body.
    "http_409": ("http",),
    "http_429": ("http",),
    "http_500": ("http",),
    "http_502": ("http",),
    "http_503": ("http",),
    "http_504": ("http",),
    "empty_body": ("http",),  # 200 with an empty body
    # gRPC (Dataproc, Dataflow, Vertex AI): a status code, or bytes the client cannot decode.
    "grpc_unavailable": ("grpc",),
    "grpc_resource_exhausted": ("grpc",),
    "grpc_deadline_exceeded": ("grpc",),
    "grpc_aborted": ("grpc",),
    "grpc_undecodable": ("grpc",),
    # Both.
    "latency": ("grpc", "http"),  # answer normally, ``seconds`` later
    "hold_answer": ("http",),  # do the call now (a submit creates its job), answer ``seconds`` later
    "drop_connection": ("grpc", "http"),  # HTTP: close the connection unanswered; gRPC: UNAVAILABLE
    "malformed_body": ("grpc", "http"),  # HTTP: 200 with the answer cut in half; gRPC: undecodable
}
FAULT_KINDS = tuple(FAULT_PROTOCOLS)
PROTOCOLS = ("grpc", "http")
#: Kinds that use ``seconds``: latency and hold_answer (the delay, defaults below) and http_429 (its
#: Retry-After).
TIMED_FAULTS = ("latency", "hold_answer", "http_429")
DEFAULT_LATENCY_SECONDS = 1.0
DEFAULT_HOLD_SECONDS = 30.0


@dataclass(frozen=True)
class Fault:
    """One injected fault as handed to a server: what to do for this call."""

    kind: str
    seconds: float | None = None
    service: str | None = None
    job_id: str | None = None

    @property
    def http_status(self) -> int | None:
        """The HTTP status for an ``http_NNN`` fault, else None."""
        return int(self.kind[5:]) if self.kind.startswith("http_") else None

    @property
    def retry_after(self) -> str | None:
        """The ``Retry-After`` header value for an http_429 given ``seconds`` (whole seconds, rounded up)."""
        if self.kind != "http_429" or self.seconds is None:
            return None
        return str(math.ceil(self.seconds))


@dataclass
class FaultRule:
    """A fault waiting for its next ``count`` matching calls."""

    kind: str
    count: int
    service: str | None
    job_id: str | None
    seconds: float | None
    #: Only calls of this method (``CreateSqlJob``, ``GetJob``, …); None: every method.
    method: str | None = None

    def applies(self, service: str, job_id: str | None, protocol: str, method: str | None = None) -> bool:
        if protocol not in FAULT_PROTOCOLS[self.kind]:
            return False
        if self.service is not None and self.service != service:
            return False
        if self.method is not None and method is not None and self.method != method:
            return False
        return self.job_id is None or (job_id is not None and ids_match(service, self.job_id, job_id))


def fault_rule(
    kind: str,
    count: int,
    service: str | None,
    job_id: str | None,
    seconds: float | None,
    method: str | None = None,
) -> FaultRule:
    """A checked rule; ValueError naming what is wrong (``service`` is checked by the caller)."""
    if kind not in FAULT_PROTOCOLS:
        raise ValueError(f"Unknown fault kind {kind!r}. Valid: {', '.join(FAULT_KINDS)}.")
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise ValueError(f"count must be a positive integer, got {count!r}.")
    if seconds is not None and kind not in TIMED_FAULTS:
        raise ValueError(
            f"seconds applies only to {', '.join(TIMED_FAULTS[:-1])} and {TIMED_FAULTS[-1]}, not {kind}."
        )
    if kind == "latency" and seconds is None:
        seconds = DEFAULT_LATENCY_SECONDS
    if kind == "hold_answer" and seconds is None:
        seconds = DEFAULT_HOLD_SECONDS
    if seconds is not None and (not is_number(seconds) or seconds < 0):
        raise ValueError(f"{kind} needs seconds >= 0, got {seconds!r}.")
    if method is not None and (not isinstance(method, str) or not method):
        raise ValueError(f"method must be a method name such as 'CreateSqlJob', got {method!r}.")
    return FaultRule(kind, count, service, job_id, None if seconds is None else float(seconds), method)
