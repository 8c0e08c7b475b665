"""What the Huawei services share: one description of an API operation, error bodies, console URLs."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Operation:
    """One REST call, described once and sent by the sync or the async transport alike.

    ``path`` is the resource path with ``{project_id}`` left for the transport to fill in (it comes
    from the connection); every other path parameter is already quoted in.
    """

    action: str  # for messages: "get status", "start job", …
    method: str
    path: str
    job_id: str  # the job the call is about (for messages), "(new job)" for a submit
    query: tuple[tuple[str, str], ...] = ()
    body: Mapping[str, Any] | None = None
    #: Whether a 2xx answer must carry a JSON object (a status read does; a cancel may be empty).
    body_required: bool = True
    #: Whether the call reads the job (so "not found" means the job is gone).
    is_read: bool = False
    #: Error codes that, on an HTTP 400 answer to this call, mean "no such job" (the service's own).
    not_found_codes: tuple[str, ...] = ()
    #: Appended to a not-found error of this call (e.g. DLI: the id may be a job of the other type).
    not_found_hint: str = ""
    #: Whether the transport logs "<action> for <job> done." (a submit logs its new job id itself).
    log_done: bool = True
    #: A 2xx answer that is a JSON array is returned as ``{array_key: [...]}`` (DLI's Flink batch stop).
    array_key: str | None = None
    extra_headers: tuple[tuple[str, str], ...] = field(default=())


#: Characters ``quote(value, safe="")`` leaves as they are (ids are almost always only these).
_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*")


def quote_segment(value: str) -> str:
    """A path parameter quoted as one segment (``/`` and ``?`` cannot escape it)."""
    text = str(value)
    if _UNRESERVED.fullmatch(text):  # nothing to quote: skip urllib's per-character work (every poll)
        return text
    from urllib.parse import quote

    return quote(text, safe="")


def parse_error_body(text: str | bytes | None) -> tuple[str | None, str | None]:
    """(code, message) of a Huawei error body: DLI's error_code/error_msg or CDM's errCode/externalMessage."""
    try:
        data = json.loads(text or "")
    except ValueError:
        return None, None
    if not isinstance(data, dict):
        return None, None
    for code_key, msg_key in (
        ("error_code", "error_msg"),
        ("errCode", "externalMessage"),
        ("errorCode", "errorMsg"),
        ("code", "message"),
    ):
        if code_key in data or msg_key in data:
            code, msg = data.get(code_key), data.get(msg_key)
            return (str(code) if code not in (None, "") else None), (str(msg) if msg is not None else None)
    return None, None


def console(service: str, fragment: str, region: str | None) -> str:
    """A Huawei Cloud console URL; empty without a region (the console needs it)."""
    if not region:
        return ""
    return f"https://console.huaweicloud.com/{service}/?region={region}#{fragment}"
