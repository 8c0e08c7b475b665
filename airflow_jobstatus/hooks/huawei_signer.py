"""The Huawei Cloud request signer: SDK-HMAC-SHA256 (AK/SK) with the official SDK's canonicalization.

Written out rather than calling the SDK's ``Signer`` because the SDK's cost more CPU per poll than the
rest of our request code together; the tests hold ``sign`` to the SDK's output byte for byte and to
the simulator's verifier. Pure standard library: nothing heavy is imported.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from airflow_jobstatus.hooks.huawei_config import HuaweiConfig
from airflow_jobstatus.services.huawei import Operation, quote_segment

USER_AGENT = "airflow-jobstatus"
#: The SDK's date format (X-Sdk-Date) and the SHA-256 of an empty body.
SDK_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
_EMPTY_BODY_SHA256 = hashlib.sha256(b"").hexdigest()
_CONTENT_SHA256 = "X-Sdk-Content-Sha256"
#: A path made only of characters the SDK's quoting keeps as they are is its own canonical form.
_PLAIN_PATH = re.compile(r"[A-Za-z0-9_.~/-]*")
_date: tuple[int, str] = (0, "")


@dataclass(frozen=True)
class SignedRequest:
    """A request ready to send: the URL exactly as signed (already encoded), headers and body."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None


def sdk_date() -> str:
    """X-Sdk-Date for now (UTC, to the second; formatted once per second)."""
    global _date
    second = int(time.time())
    if _date[0] != second:
        _date = (second, time.strftime(SDK_DATE_FORMAT, time.gmtime(second)))
    return _date[1]


def _sdk_quote(text: str) -> str:
    return quote(text, safe="~")


def _canonical_uri(path: str) -> str:
    """The path as the SDK signs it: decoded, each segment quoted (``~`` kept), with a trailing ``/``."""
    if _PLAIN_PATH.fullmatch(path) is None:
        path = "/".join(_sdk_quote(segment) for segment in unquote(path).split("/"))
    return path if path.endswith("/") else path + "/"


def _canonical_query(query: tuple[tuple[str, str], ...]) -> str:
    """The query as the SDK signs and sends it: pairs sorted, ``k=v`` quoted, joined with ``&``."""
    return "&".join(f"{_sdk_quote(k)}={_sdk_quote(str(v))}" for k, v in sorted(query))


def _signature(config: HuaweiConfig, date: str, canonical_request: str) -> str:
    digest = hashlib.sha256(canonical_request.encode()).hexdigest()
    return hmac.digest(config.sk.encode(), f"SDK-HMAC-SHA256\n{date}\n{digest}".encode(), "sha256").hex()


def _sent_value(value: Any) -> tuple[str, str]:
    """(the value as signed: stripped, the value as sent: its UTF-8 bytes read as Latin-1), as the SDK."""
    text = str(value).strip()
    return text, text if text.isascii() else text.encode("utf-8").decode("iso-8859-1")


@dataclass(frozen=True)
class _SigningBase:
    """What every request of one connection to one endpoint signs alike (see ``sign``)."""

    scheme: str
    netloc: str
    path_prefix: str
    project_segment: str
    #: The headers before X-Sdk-Date, as sent.
    headers: dict[str, str]
    #: The canonical header lines before and after x-sdk-date, and the signed header names.
    lines_before_date: str
    lines_after_date: str
    signed_names: str


def _signing_base(config: HuaweiConfig, endpoint: str) -> _SigningBase:
    """The config's ``_SigningBase`` for ``endpoint`` (worked out once per config and endpoint)."""
    key = ("signing", endpoint)
    base: _SigningBase | None = config._memo.get(key)
    if base is None:
        parts = urlsplit(endpoint)
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        headers["X-Project-Id"] = config.project_id
        if config.security_token:
            headers["X-Security-Token"] = config.security_token
        signed = {name.lower(): _sent_value(value) for name, value in headers.items()}
        signed["host"] = _sent_value(parts.netloc)
        names = sorted([*signed, "x-sdk-date"])
        at = names.index("x-sdk-date")
        base = config._memo[key] = _SigningBase(
            scheme=parts.scheme,
            netloc=parts.netloc,
            path_prefix=parts.path.rstrip("/"),
            project_segment=quote_segment(config.project_id),
            headers={name: _sent_value(value)[1] for name, value in headers.items()},
            lines_before_date="".join(f"{n}:{signed[n][0]}\n" for n in names[:at]),
            lines_after_date="".join(f"{n}:{signed[n][0]}\n" for n in names[at + 1 :]),
            signed_names=";".join(names),
        )
    return base


def sign(op: Operation, config: HuaweiConfig, endpoint: str) -> SignedRequest:
    """``op`` against ``endpoint``, signed SDK-HMAC-SHA256 (AK/SK).

    The algorithm and canonicalization are the official SDK's (``huaweicloudsdkcore``'s ``Signer``
    with ``BasicCredentials``): the same headers (X-Project-Id, X-Security-Token when set, X-Sdk-Date,
    Host), every header signed, the same URL with the canonical query string. The tests check that
    the result is the SDK's, byte for byte, and that the simulator's own verifier accepts it. Written
    out because the SDK's signer cost more CPU per poll than the rest of our request code together
    (benchmarks/results/notes.md); what does not change between requests is worked out once.
    """
    base = _signing_base(config, endpoint)
    if op.extra_headers:
        return _sign_generic(op, config, endpoint)
    path = base.path_prefix + op.path.replace("{project_id}", base.project_segment)
    body = None if op.body is None else json.dumps(op.body, separators=(",", ":")).encode()
    date = sdk_date()
    query = _canonical_query(op.query) if op.query else ""
    canonical = (
        f"{op.method.upper()}\n{_canonical_uri(path)}\n{query}\n"
        f"{base.lines_before_date}x-sdk-date:{date}\n{base.lines_after_date}\n{base.signed_names}\n"
        f"{hashlib.sha256(body).hexdigest() if body else _EMPTY_BODY_SHA256}"
    )
    headers = base.headers.copy()
    headers["X-Sdk-Date"] = date
    headers["Host"] = base.netloc
    headers["Authorization"] = (
        f"SDK-HMAC-SHA256 Access={config.ak}, SignedHeaders={base.signed_names}, "
        f"Signature={_signature(config, date, canonical)}"
    )
    url = f"{base.scheme}://{base.netloc}{path}" + (f"?{query}" if query else "")
    return SignedRequest(op.method, url, headers, body)


def _sign_generic(op: Operation, config: HuaweiConfig, endpoint: str) -> SignedRequest:
    """``sign`` for an operation with headers of its own (any header, any Content-Type), step by step."""
    parts = urlsplit(endpoint)
    path = parts.path.rstrip("/") + op.path.replace("{project_id}", quote_segment(config.project_id))
    body = None if op.body is None else json.dumps(op.body, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
    for name, value in op.extra_headers:
        headers[name] = value
    headers["X-Project-Id"] = config.project_id
    if config.security_token:
        headers["X-Security-Token"] = config.security_token
    lower = {k.lower(): k for k in headers}
    content_type = headers.get(lower.get("content-type", ""))
    if content_type and not content_type.startswith(("application/json", "application/bson")):
        headers[_CONTENT_SHA256] = "UNSIGNED-PAYLOAD"
    date = headers.get(lower.get("x-sdk-date", "")) or sdk_date()
    if "x-sdk-date" not in lower:
        headers["X-Sdk-Date"] = date
    if "host" not in lower:
        headers["Host"] = parts.netloc
    canonical: dict[str, str] = {}
    for name, value in list(headers.items()):
        canonical[name.lower()], headers[name] = _sent_value(value)
    signed_names = sorted(name.lower() for name in headers if "_" not in name)
    if not body:
        payload_hash = _EMPTY_BODY_SHA256
    else:
        payload_hash = canonical.get("x-sdk-content-sha256") or hashlib.sha256(body).hexdigest()
    query = _canonical_query(op.query)
    signed_list = ";".join(signed_names)
    request = "\n".join(
        (
            op.method.upper(),
            _canonical_uri(path),
            query,
            "".join(f"{name}:{canonical[name]}\n" for name in signed_names),
            signed_list,
            payload_hash,
        )
    )
    headers["Authorization"] = (
        f"SDK-HMAC-SHA256 Access={config.ak}, SignedHeaders={signed_list}, "
        f"Signature={_signature(config, date, request)}"
    )
    url = f"{parts.scheme}://{parts.netloc}{path}" + (f"?{query}" if query else "")
    return SignedRequest(op.method, url, headers, body)
