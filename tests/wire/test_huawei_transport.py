"""The Huawei transport's pure parts, without the wire: the SDK signer adapter, the response handler
(every rule, including answers the simulator does not produce), Retry-After, transport errors, imports."""

from __future__ import annotations

import ast
import importlib
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_jobstatus.core.exceptions import (
    AuthenticationError,
    BadRequestError,
    BadResponseError,
    JobNotFoundError,
    ServiceError,
    TransientServiceError,
)
from airflow_jobstatus.hooks import huawei_signer
from airflow_jobstatus.hooks.huawei_config import HuaweiConfig
from airflow_jobstatus.hooks.huawei_responses import (
    aiohttp_failure,
    handle_response,
    parse_retry_after,
    requests_failure,
)
from airflow_jobstatus.hooks.huawei_signer import SignedRequest, sign
from airflow_jobstatus.services import cdm, dli
from airflow_jobstatus.services.cdm import CdmJobRef
from airflow_jobstatus.services.dli import DliJobRef
from airflow_jobstatus.services.huawei import Operation
from airflow_jobstatus.simulator.signature import check_signature as _check_signature
from airflow_jobstatus.simulator.signature import lower_headers

SK = "the-secret-key-0123"
TOKEN = "the-security-token-4567"
CONFIG = HuaweiConfig(conn_id="c", ak="the-ak", sk=SK, project_id="proj-1", region="r", security_token=TOKEN)
READ = dli.status_op(DliJobRef("job-1"))
SPARK_READ = dli.status_op(DliJobRef("batch-1", "spark"))
CANCEL = dli.cancel_op(DliJobRef("job-1"))
CDM_READ = cdm.status_op(CdmJobRef("cl", "job"))
CDM_START = cdm.start_op(CdmJobRef("cl", "job"), {"day": "2026-01-01"})


def body(data: Any) -> bytes:
    return json.dumps(data).encode()


def classify(
    status: int,
    payload: bytes,
    op: Operation = READ,
    service: str = "dli",
    headers: dict[str, str] | None = None,
) -> Any:
    """The handler's result: the dict, or the error it raised."""
    try:
        return handle_response(status, headers or {}, payload, op, service=service, where="DLI project 'p'")
    except ServiceError as err:
        return err


# ---- the signer: the SDK's algorithm, checked against the SDK itself and the simulator's verifier ----


def as_received(signed: SignedRequest) -> dict[str, Any]:
    """The signed request as the simulator's server receives it."""
    from urllib.parse import urlsplit

    parts = urlsplit(signed.url)
    return {
        "method": signed.method,
        "raw_path": parts.path,
        "raw_query": parts.query,
        "headers": lower_headers(signed.headers.items()),
        "body": signed.body or b"",
    }


def check_signature(received: dict[str, Any], ak: str, sk: str) -> str | None:
    """The simulator's verifier (independent of the SDK) on a received request."""
    return _check_signature(**received, ak=ak, sk=sk)


@pytest.mark.parametrize(
    "op",
    [
        READ,
        SPARK_READ,
        CANCEL,
        CDM_START,
        dli.submit_sql_op("SELECT 'é'", "q", "db", {"a": 1}),
        Operation(
            "list", "GET", "/v1.1/{project_id}/x", "j", query=(("b", "2 3"), ("a", "1/")), is_read=True
        ),
    ],
    ids=["sql-read", "spark-read", "cancel", "cdm-start", "submit", "query"],
)
def test_signature_is_valid_for_the_gateway(op: Operation) -> None:
    signed = sign(op, CONFIG, "https://dli.r.example.com:8443")
    received = as_received(signed)
    assert check_signature(received, CONFIG.ak, SK) is None
    assert check_signature(received, CONFIG.ak, "another-sk") == "verify aksk signature fail"
    tampered = as_received(SignedRequest(signed.method, signed.url, signed.headers, b'{"x":1}'))
    if op.body is not None:
        assert check_signature(tampered, CONFIG.ak, SK) == "verify aksk signature fail"


WITHOUT_TOKEN = HuaweiConfig(conn_id="c", ak="a", sk="s", project_id="p x/é")
SIGNED_OPS = {
    "sql-read": READ,
    "spark-read": SPARK_READ,
    "cancel": CANCEL,
    "cdm-read": CDM_READ,
    "cdm-start": CDM_START,
    "odd-names": cdm.status_op(CdmJobRef("cl x", "job/é~%20?")),
    "submit": dli.submit_sql_op("SELECT 'é'", "q", "db", {"a": 1}),
    "query": Operation("list", "GET", "/v1.1/{project_id}/x", "j", query=(("b", "2 3"), ("a", "1/~é"))),
    "own-headers": Operation(
        "put", "PUT", "/v1/{project_id}/y", "j", body={"k": "v"}, extra_headers=(("X-Trace", " é t "),)
    ),
    "not-json": Operation(
        "up",
        "POST",
        "/v1/{project_id}/z",
        "j",
        body={"k": 1},
        extra_headers=(("Content-Type", "text/plain"),),
    ),
    "own-date-host": Operation(
        "get",
        "GET",
        "/v1/{project_id}/z",
        "j",
        extra_headers=(("host", "other.example"), ("X-Sdk-Date", "20260101T000000Z")),
    ),
}


def sdk_sign(op: Operation, config: HuaweiConfig, endpoint: str, date: str) -> SignedRequest:
    """The same request signed by the official SDK (``BasicCredentials.sign_request``) at ``date``."""
    from urllib.parse import urlsplit

    from huaweicloudsdkcore.auth.credentials import BasicCredentials
    from huaweicloudsdkcore.sdk_request import SdkRequest

    from airflow_jobstatus.services.huawei import quote_segment

    parts = urlsplit(endpoint)
    path = parts.path.rstrip("/") + op.path.replace("{project_id}", quote_segment(config.project_id))
    payload = None if op.body is None else json.dumps(op.body, separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": huawei_signer.USER_AGENT,
        **dict(op.extra_headers),
    }
    if not any(k.lower() == "x-sdk-date" for k in headers):
        headers["X-Sdk-Date"] = date
    credentials = BasicCredentials(config.ak, config.sk, config.project_id)
    if config.security_token:
        credentials = credentials.with_security_token(config.security_token)
    request = credentials.sign_request(
        SdkRequest(
            method=op.method,
            schema=parts.scheme,
            host=parts.netloc,
            resource_path=path,
            query_params=list(op.query),
            header_params=headers,
            body=payload,
        )
    )
    sent = {str(k): str(v) for k, v in request.header_params.items()}
    return SignedRequest(op.method, request.url, sent, payload)


@pytest.mark.parametrize("config", [CONFIG, WITHOUT_TOKEN], ids=["token", "no-token"])
@pytest.mark.parametrize("endpoint", ["https://dli.r.example.com:8443", "http://127.0.0.1:9/gw/prefix/"])
@pytest.mark.parametrize("op", list(SIGNED_OPS.values()), ids=list(SIGNED_OPS))
def test_signature_is_the_sdks(
    monkeypatch: pytest.MonkeyPatch, op: Operation, config: HuaweiConfig, endpoint: str
) -> None:
    """Byte for byte what the SDK's signer produces for the same request and X-Sdk-Date."""
    date = "20261201T101112Z"
    monkeypatch.setattr(huawei_signer, "sdk_date", lambda: date)  # where sign looks it up
    ours = sign(op, config, endpoint)
    assert ours == sdk_sign(op, config, endpoint, date)
    assert sign(op, config, endpoint) == ours  # the second time through the per-config memo
    if not any(k.lower() in ("host", "x-sdk-date") for k, _ in op.extra_headers):
        on_the_wire = {k: v.encode("iso-8859-1").decode("utf-8") for k, v in ours.headers.items()}
        received = as_received(SignedRequest(ours.method, ours.url, on_the_wire, ours.body))
        if not received["headers"].get("content-type", "").startswith("application/json"):
            return  # UNSIGNED-PAYLOAD: the simulator checks a JSON API's bodies
        now = datetime(2026, 12, 1, 10, 11, 12, tzinfo=timezone.utc).timestamp()
        assert _check_signature(**received, ak=config.ak, sk=config.sk, now=now) is None


def test_sdk_date_is_utc_now() -> None:
    when = datetime.strptime(huawei_signer.sdk_date(), huawei_signer.SDK_DATE_FORMAT)
    assert abs(when.replace(tzinfo=timezone.utc).timestamp() - datetime.now(timezone.utc).timestamp()) < 5


def test_sign_fills_the_project_headers_body_and_endpoint_prefix() -> None:
    signed = sign(CDM_START, CONFIG, "https://gw.example.com/prefix/")
    assert signed.url == "https://gw.example.com/prefix/v1.1/proj-1/clusters/cl/cdm/job/job/start"
    assert signed.method == "PUT"
    assert json.loads(signed.body or b"") == {"variables": {"day": "2026-01-01"}}
    headers = signed.headers
    assert headers["Host"] == "gw.example.com"
    assert headers["X-Project-Id"] == "proj-1"
    assert headers["X-Security-Token"] == TOKEN
    assert headers["Content-Type"] == "application/json"
    authorization = headers["Authorization"]
    assert authorization.startswith("SDK-HMAC-SHA256 Access=the-ak, SignedHeaders=")
    assert "x-security-token" in authorization and "x-sdk-date" in authorization
    assert SK not in json.dumps(headers)
    without_token = HuaweiConfig(conn_id="c", ak="a", sk="s", project_id="p")
    assert "X-Security-Token" not in sign(READ, without_token, "http://h").headers
    assert sign(READ, without_token, "http://h").body is None


# ---- the response handler ---------------------------------------------------------------------------


def test_2xx_is_the_json_object() -> None:
    assert classify(200, body({"status": "RUNNING"})) == {"status": "RUNNING"}
    assert classify(204, b"", CANCEL) == {}
    assert classify(200, b"<html>ok</html>", CANCEL) == {}  # a cancel's body is optional


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "empty body"),
        (b"   ", "empty body"),
        (b'{"status": "RUNN', "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "expected a JSON object, got list"),
        (b"null", "expected a JSON object, got NoneType"),
    ],
)
def test_2xx_without_a_json_object_is_a_retryable_bad_response(payload: bytes, reason: str) -> None:
    err = classify(200, payload)
    assert type(err) is BadResponseError and err.retryable
    assert reason in str(err) and err.job_id == "job-1" and err.service == "dli"
    assert err.__context__ is None and err.__cause__ is None


@pytest.mark.parametrize(
    ("status", "payload", "op", "service", "kind", "code"),
    [
        (
            401,
            {"error_code": "APIGW.0301", "error_msg": "Incorrect IAM authentication"},
            READ,
            "dli",
            AuthenticationError,
            "APIGW.0301",
        ),
        (
            403,
            {"error_code": "APIGW.0302", "error_msg": "project mismatch"},
            READ,
            "dli",
            AuthenticationError,
            "APIGW.0302",
        ),
        (403, {"error_code": "APIGW.0302"}, CDM_START, "cdm", AuthenticationError, "APIGW.0302"),
        (
            404,
            {"errCode": "Cdm.0100", "externalMessage": "Job job not exist."},
            CDM_READ,
            "cdm",
            JobNotFoundError,
            "Cdm.0100",
        ),
        (404, {"error_code": "DLI.0002", "error_msg": "gone"}, CANCEL, "dli", JobNotFoundError, "DLI.0002"),
        # DLI answers a read of an unknown job with 400 DLI.0002: a not-found on a read only.
        (
            400,
            {"is_success": False, "error_code": "DLI.0002", "error_msg": "The job x does not exist."},
            READ,
            "dli",
            JobNotFoundError,
            "DLI.0002",
        ),
        (
            400,
            {"error_code": "DLI.0002", "error_msg": "no such batch"},
            SPARK_READ,
            "dli",
            JobNotFoundError,
            "DLI.0002",
        ),
        (400, {"error_code": "DLI.0002", "error_msg": "gone"}, CANCEL, "dli", BadRequestError, "DLI.0002"),
        (400, {"error_code": "DLI.0002", "error_msg": "gone"}, CDM_READ, "cdm", BadRequestError, "DLI.0002"),
        (
            400,
            {"error_code": "DLI.0999", "error_msg": "cannot cancel"},
            READ,
            "dli",
            BadRequestError,
            "DLI.0999",
        ),
        (
            400,
            {"errCode": "Cdm.0104", "externalMessage": "Job job is running."},
            CDM_START,
            "cdm",
            BadRequestError,
            "Cdm.0104",
        ),
        (422, {}, READ, "dli", BadRequestError, 422),
        (
            409,
            {"error_code": "DLI.0015", "error_msg": "busy, try again"},
            READ,
            "dli",
            TransientServiceError,
            "DLI.0015",
        ),
        (
            429,
            {"error_code": "APIG.0308", "error_msg": "throttled"},
            READ,
            "dli",
            TransientServiceError,
            "APIG.0308",
        ),
        (
            429,
            {"error_code": "APIGW.0308", "error_msg": "over ratelimit"},
            CDM_READ,
            "cdm",
            TransientServiceError,
            "APIGW.0308",
        ),
        (
            500,
            {"errCode": "Cdm.0000", "externalMessage": "Internal"},
            CDM_READ,
            "cdm",
            TransientServiceError,
            "Cdm.0000",
        ),
        (
            502,
            {"error_code": "APIGW.0202", "error_msg": "Backend unavailable"},
            READ,
            "dli",
            TransientServiceError,
            "APIGW.0202",
        ),
        (
            503,
            {"is_success": False, "error_code": "DLI.0999", "error_msg": "unavailable"},
            READ,
            "dli",
            TransientServiceError,
            "DLI.0999",
        ),
        (
            504,
            {"error_code": "APIGW.0203", "error_msg": "Backend timeout"},
            READ,
            "dli",
            TransientServiceError,
            "APIGW.0203",
        ),
        (501, {}, READ, "dli", TransientServiceError, 501),  # any other 5xx: retried within the budget
        (302, {}, READ, "dli", ServiceError, 302),  # redirects are not followed: check the endpoint
    ],
)
def test_error_table(
    status: int, payload: dict[str, Any], op: Operation, service: str, kind: type[ServiceError], code: Any
) -> None:
    err = classify(status, body(payload), op, service)
    assert type(err) is kind, err
    assert err.code == code and err.service == service and err.job_id == op.job_id
    assert err.retryable is (kind is TransientServiceError)
    assert err.__context__ is None and err.__cause__ is None
    if kind is JobNotFoundError:
        assert f"job {op.job_id!r} not found in DLI project 'p'" in str(err)
    else:
        assert f"HTTP {status}" in str(err)
    message = payload.get("error_msg") or payload.get("externalMessage")
    if message:
        assert message in str(err)


def test_non_json_error_body_is_kept_clipped() -> None:
    err = classify(502, b"<html>" + b"x" * 2000 + b"</html>")
    assert type(err) is TransientServiceError and err.code == 502
    assert "<html>xxx" in str(err) and len(err.message) < 700
    assert "no message" in str(classify(503, b""))


@pytest.mark.parametrize("status", [409, 429, 503])
def test_retry_after_seconds_is_carried(status: int) -> None:
    err = classify(status, body({"error_code": "APIGW.0308"}), headers={"Retry-After": "7"})
    assert type(err) is TransientServiceError and err.retry_after == 7.0
    assert err.to_dict()["retry_after"] == 7.0
    lower = classify(status, b"", headers={"retry-after": "2"})
    assert lower.retry_after == 2.0
    assert classify(status, b"").retry_after is None


def test_retry_after_http_date_is_carried() -> None:
    future = "Wed, 21 Oct 2099 07:28:00 GMT"
    err = classify(
        429, body({"error_code": "APIG.0308", "error_msg": "throttled"}), headers={"Retry-After": future}
    )
    assert err.retry_after is not None and err.retry_after > 10**8


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("7", 7.0),
        ("0", 0.0),
        (" 1.5 ", 1.5),
        ("-3", 0.0),
        ("Wed, 21 Oct 2015 07:30:00 GMT", 120.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),  # in the past: now
        ("", None),
        (None, None),
        ("soon", None),
        ("nan", None),
        ("inf", None),
    ],
)
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    now = datetime(2015, 10, 21, 7, 28, tzinfo=timezone.utc)
    assert parse_retry_after(value, now=now) == seconds


def test_secrets_echoed_in_a_body_are_scrubbed() -> None:
    echo = body({"error_code": "APIGW.0301", "error_msg": f"bad signature for sk={SK} token={TOKEN}"})
    raw = f"proxy said: token {TOKEN} at http://user:pw-9@proxy:3128".encode()
    for status, payload in ((401, echo), (500, echo), (400, raw), (200, b"[" + TOKEN.encode())):
        err: Any = None
        try:
            handle_response(status, {}, payload, READ, service="dli", scrub=CONFIG.scrub)
        except ServiceError as caught:
            err = caught
        assert err is not None
        text = str(err) + repr(err) + repr(err.args) + json.dumps(err.to_dict())
        assert SK not in text and TOKEN not in text and "pw-9" not in text
        assert err.__context__ is None and err.__cause__ is None


# ---- transport errors, one function per library -----------------------------------------------------


def test_requests_failures_are_transient() -> None:
    import requests

    timeout = requests_failure(requests.ReadTimeout("read timed out"), READ, service="dli", timeout=2)
    refused = requests_failure(requests.ConnectionError("refused"), READ, service="dli", timeout=2)
    proxy = requests_failure(
        requests.exceptions.ProxyError(f"http://u:pw-7@p:1 {TOKEN}"),
        READ,
        service="dli",
        timeout=2,
        scrub=CONFIG.scrub,
    )
    assert (type(timeout), timeout.code) == (TransientServiceError, "timeout") and "2 s" in str(timeout)
    assert (type(refused), refused.code) == (TransientServiceError, "connection")
    assert "pw-7" not in str(proxy) and TOKEN not in str(proxy)


def test_aiohttp_failures_are_transient() -> None:
    import aiohttp

    cases: dict[str, list[BaseException]] = {
        "timeout": [TimeoutError(), aiohttp.ServerTimeoutError("t"), aiohttp.ConnectionTimeoutError("t")],
        "connection": [
            aiohttp.ServerDisconnectedError(),
            aiohttp.ClientConnectionError("refused"),
            aiohttp.ClientPayloadError("truncated"),
        ],
    }
    for code, excs in cases.items():
        for exc in excs:
            err = aiohttp_failure(exc, CDM_READ, service="cdm", timeout=1.5)
            assert (type(err), err.code, err.job_id) == (TransientServiceError, code, "cl/job"), exc
            assert err.__context__ is None


# ---- what the modules import --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "module",
    [
        "huaweicloud",
        "huawei_config",
        "huawei_signer",
        "huawei_responses",
        "huawei_async",
        "connection_cache",
        "loop_cache",
        "cdm",
        "dli",
    ],
)
def test_heavy_libraries_are_imported_lazily(module: str) -> None:
    """No module-level import of the SDK, aiohttp, yarl or requests (outside TYPE_CHECKING); no httpx at all."""
    source = importlib.import_module(f"airflow_jobstatus.hooks.{module}").__file__
    assert source is not None
    text = Path(source).read_text(encoding="utf-8")
    top_level: list[str] = []
    for node in ast.parse(text).body:
        if isinstance(node, ast.Import):
            top_level += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            top_level.append(node.module or "")
    heavy = ("huaweicloudsdk", "aiohttp", "yarl", "requests", "httpx")
    assert not [m for m in top_level if m.startswith(heavy)], top_level
    assert "httpx" not in text
