"""Reading Google API messages (proto-plus) without proto-plus overhead; shared by the Google services."""

from __future__ import annotations

import enum
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
