"""What the Google services share: reading API messages (proto-plus) without proto-plus overhead,
impersonation chains and lists of names as connections and arguments give them, console URLs."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any


def enum_name(enum_cls: type[enum.Enum], value: Any) -> str:
    """The SDK's name for an enum value; a value the SDK does not know (a newer API) as its number."""
    if isinstance(value, enum.Enum):
        return value.name
    try:
        return enum_cls(int(value)).name
    except ValueError:
        return str(int(value))


def raw_message(message: Any) -> Any:
    """The protobuf behind a proto-plus message: enum fields read as ints, without proto-plus warnings."""
    pb = getattr(type(message), "pb", None)
    return pb(message) if pb is not None else message


def console(path: str, **query: str | None) -> str:
    """A Google Cloud console URL; empty query values are left out."""
    from urllib.parse import urlencode

    params = urlencode({k: v for k, v in query.items() if v})
    return f"https://console.cloud.google.com{path}" + (f"?{params}" if params else "")


def names(value: Any, what: str) -> tuple[str, ...]:
    """A comma-separated string or a list of strings as a tuple of non-blank, stripped names (None → ()).

    Anything else is a ConfigurationError saying "``what`` must be a string or a list of strings".
    """
    if value is None:
        return ()
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, list | tuple):
        items = [str(v) for v in value]
    else:
        from airflow_jobstatus.core.exceptions import ConfigurationError

        raise ConfigurationError(f"{what} must be a string or a list of strings.")
    return tuple(i.strip() for i in items if i.strip())


def impersonation_chain(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """A service account or chain to impersonate, as hooks, triggers and sensors take it, normalized:
    ``"mid@x, target@x"`` and ``["mid@x", "target@x"]`` are ``("mid@x", "target@x")`` (the target
    last); None or blank is ``()``. The one reading of the argument: the hooks' credentials and
    connection cache key, the coalescing key and the trigger's serialized form all use it."""
    return names(value, "impersonation_chain")


def seconds(message: Any, name: str) -> float | None:
    """A protobuf Timestamp field of ``message`` as epoch seconds; None when unset."""
    if not message.HasField(name):
        return None
    stamp = getattr(message, name)
    return float(stamp.seconds + stamp.nanos / 1e9)


def label_filter(labels: Any, quote: bool) -> str:
    """A list ``filter`` keeping the jobs that carry every label: ``labels.k = v`` (Dataproc) or
    ``labels.k="v"`` (AIP-160, Vertex AI), joined by AND; empty for no labels."""
    if not labels:
        return ""
    parts = [f'labels.{k}="{v}"' if quote else f"labels.{k} = {v}" for k, v in sorted(dict(labels).items())]
    return " AND ".join(parts)


def vertex_target(location: str) -> str:
    """Vertex AI's regional endpoint for ``location`` (``global`` uses the global one)."""
    if location == "global":
        return "aiplatform.googleapis.com:443"
    return f"{location}-aiplatform.googleapis.com:443"


def vertex_listed(job: Any) -> tuple[Any, str, dict[str, str], float | None]:
    """A listed Vertex AI job or pipeline job: (its message, id, labels, end time — else its last
    update — in epoch seconds); both kinds share these fields."""
    pb = raw_message(job)
    changed = seconds(pb, "end_time") or seconds(pb, "update_time")
    return pb, str(pb.name).rpartition("/")[2], dict(pb.labels), changed
