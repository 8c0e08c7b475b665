"""Verify Huawei Cloud ``SDK-HMAC-SHA256`` request signatures (AK/SK), with hashlib and hmac only.

Written from the algorithm, not from the SDK, so a signing bug in a client is caught rather than
reproduced. The canonical request is::

    METHOD \\n canonical URI \\n canonical query \\n canonical headers \\n signed headers \\n hex(sha256(body))

- canonical URI: the path percent-decoded, split on ``/``, each segment encoded (unreserved and
  ``~`` kept), joined again, with a trailing ``/``;
- canonical query: the ``(key, value)`` pairs percent-decoded, sorted, encoded the same way, joined
  as ``k=v`` with ``&``;
- canonical headers: ``name:value`` (name lower-cased, value stripped) for each signed header, each
  followed by a newline; the signed headers are named, ``;``-separated, in the Authorization header;
- body hash: of the empty string for an empty body, else the ``X-Sdk-Content-Sha256`` header's
  value when sent (``UNSIGNED-PAYLOAD``), else of the body.

String to sign: ``SDK-HMAC-SHA256\\n{X-Sdk-Date}\\n{hex(sha256(canonical request))}``; the signature
is ``hex(HMAC-SHA256(SK, string to sign))``, and X-Sdk-Date (``YYYYMMDDTHHMMSSZ``, signed) must be
within MAX_CLOCK_SKEW_SECONDS of the server's clock.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Iterable
from datetime import datetime, timezone
from urllib.parse import quote, unquote

ALGORITHM = "SDK-HMAC-SHA256"
MAX_CLOCK_SKEW_SECONDS = 15 * 60
DATE_HEADER = "x-sdk-date"
CONTENT_HASH_HEADER = "x-sdk-content-sha256"
SECURITY_TOKEN_HEADER = "x-security-token"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
EMPTY_BODY_HASH = hashlib.sha256(b"").hexdigest()
_AUTH = re.compile(
    ALGORITHM
    + r"\s+Access=(?P<ak>[^,\s]+),\s*SignedHeaders=(?P<signed>[^,\s]+),\s*Signature=(?P<sig>[0-9a-fA-F]+)"
)
_DATE = re.compile(r"\d{8}T\d{6}Z")


def _encode(text: str) -> str:
    return quote(text, safe="~")


def canonical_uri(raw_path: str) -> str:
    """The path as signed: each segment decoded then encoded, with a trailing slash."""
    path = "/".join(_encode(segment) for segment in unquote(raw_path).split("/"))
    return path if path.endswith("/") else path + "/"


def canonical_query(raw_query: str) -> str:
    """The query string as signed: decoded pairs, sorted, encoded, ``k=v`` joined by ``&``."""
    pairs = []
    for part in raw_query.split("&"):
        if part:
            key, _, value = part.partition("=")
            pairs.append((unquote(key), unquote(value)))
    return "&".join(f"{_encode(k)}={_encode(v)}" for k, v in sorted(pairs))


def body_hash(body: bytes, headers: dict[str, str]) -> str:
    if not body:
        return EMPTY_BODY_HASH
    return headers.get(CONTENT_HASH_HEADER) or hashlib.sha256(body).hexdigest()


def canonical_request(
    method: str, raw_path: str, raw_query: str, headers: dict[str, str], signed: list[str], body: bytes
) -> str:
    """The canonical request; ``headers`` keyed by lower-case name, holding every name in ``signed``."""
    return "\n".join(
        [
            method.upper(),
            canonical_uri(raw_path),
            canonical_query(raw_query),
            "".join(f"{name}:{headers[name].strip()}\n" for name in signed),
            ";".join(signed),
            body_hash(body, headers),
        ]
    )


def string_to_sign(canonical: str, sdk_date: str) -> str:
    digest = hashlib.sha256(canonical.encode("utf-8", "surrogateescape")).hexdigest()
    return f"{ALGORITHM}\n{sdk_date}\n{digest}"


def sign(sk: str, to_sign: str) -> str:
    """The hex HMAC-SHA256 signature of ``to_sign`` with secret key ``sk``."""
    return hmac.new(
        sk.encode("utf-8"), to_sign.encode("utf-8", "surrogateescape"), hashlib.sha256
    ).hexdigest()


def lower_headers(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Headers keyed by lower-case name; a repeated header's values joined with commas."""
    out: dict[str, str] = {}
    for name, value in items:
        key = name.lower()
        out[key] = f"{out[key]},{value}" if key in out else value
    return out


def check_signature(
    method: str,
    raw_path: str,
    raw_query: str,
    headers: dict[str, str],
    body: bytes,
    ak: str,
    sk: str,
    now: float | None = None,
) -> str | None:
    """Why the request's signature is not valid for (ak, sk); None when it is.

    ``raw_path`` and ``raw_query`` as received (still percent-encoded); ``headers`` keyed by lower-case
    name (``lower_headers``), values as text (HTTP carries UTF-8).
    """
    match = _AUTH.fullmatch(headers.get("authorization", "").strip())
    if match is None:
        return f"missing or malformed {ALGORITHM} Authorization header"
    if match["ak"] != ak:
        return "unknown access key"
    signed = match["signed"].lower().split(";")
    if DATE_HEADER not in signed:
        return "X-Sdk-Date must be a signed header"
    if SECURITY_TOKEN_HEADER in headers and SECURITY_TOKEN_HEADER not in signed:
        return "X-Security-Token must be a signed header"
    if any(name not in headers for name in signed):
        return "a signed header is missing from the request"
    sdk_date = headers[DATE_HEADER].strip()
    try:
        if _DATE.fullmatch(sdk_date) is None:
            raise ValueError(sdk_date)
        when = datetime.strptime(sdk_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        return "X-Sdk-Date is not in the form YYYYMMDDTHHMMSSZ"
    current = time.time() if now is None else now
    if abs(when.timestamp() - current) > MAX_CLOCK_SKEW_SECONDS:
        return "the request has expired (X-Sdk-Date too far from server time)"
    declared = headers.get(CONTENT_HASH_HEADER)
    if body and declared and declared != UNSIGNED_PAYLOAD and declared != hashlib.sha256(body).hexdigest():
        return "X-Sdk-Content-Sha256 does not match the body"
    canonical = canonical_request(method, raw_path, raw_query, headers, signed, body)
    expected = sign(sk, string_to_sign(canonical, sdk_date))
    if not hmac.compare_digest(expected, match["sig"].lower()):
        return "verify aksk signature fail"
    return None
