"""The simulator's own SDK-HMAC-SHA256 verifier agrees with the real Huawei SDK signer, and rejects tampering."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.sdk_request import SdkRequest

from airflow_jobstatus.simulator import Simulator
from airflow_jobstatus.simulator.signature import (
    EMPTY_BODY_HASH,
    canonical_query,
    canonical_request,
    canonical_uri,
    check_signature,
    lower_headers,
)

AK, SK, PROJECT = "test-ak", "test-sk", "test-project"
HOST = "127.0.0.1:8961"


def sdk_signed(
    method: str,
    path: str,
    query: list[tuple[str, Any]] | None = None,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    token: str | None = None,
    sk: str = SK,
    host: str = HOST,
) -> SdkRequest:
    """A request signed by the SDK's public entry point, as its HTTP client would send it."""
    creds = BasicCredentials(AK, sk, PROJECT)
    if token is not None:
        creds = creds.with_security_token(token)
    request = SdkRequest(
        method=method,
        schema="http",
        host=host,
        resource_path=path,
        query_params=list(query or []),
        header_params={"Content-Type": "application/json", **(headers or {})},
        body=body,
    )
    return creds.sign_request(request)


def received(request: SdkRequest) -> dict[str, Any]:
    """What a server gets: the raw target, headers as text (the SDK sends UTF-8 bytes), the body."""
    raw_path, _, raw_query = request.uri.partition("?")
    headers = {k: v.encode("latin-1").decode("utf-8") for k, v in request.header_params.items()}
    return {
        "method": request.method,
        "raw_path": raw_path,
        "raw_query": raw_query,
        "headers": lower_headers(headers.items()),
        "body": request.body or b"",
    }


def verify(seen: dict[str, Any], sk: str = SK, ak: str = AK, now: float | None = None) -> str | None:
    return check_signature(**seen, ak=ak, sk=sk, now=now)


UNICODE_QUERY = [("jname", "a b+c~/ü&="), ("page_no", 2), ("all", True), ("tag", ["b", "a"]), ("empty", "")]
SIGNED_BY_THE_SDK = {
    "get, no query": dict(method="GET", path=f"/v1/{PROJECT}/jobs/j-1/progress"),
    "get, query": dict(
        method="GET", path=f"/v1.1/{PROJECT}/clusters/c1/cdm/submissions", query=UNICODE_QUERY
    ),
    "post, json body": dict(
        method="POST",
        path=f"/v1.0/{PROJECT}/jobs/submit-job",
        body=json.dumps({"sql": "SELECT 'ü' FROM t", "conf": ["a=b"]}).encode(),
    ),
    "post, body and query, security token": dict(
        method="POST",
        path=f"/v1.0/{PROJECT}/jobs/submit-job",
        query=[("x", "1")],
        body=b'{"sql": "select 1"}',
        token="temporary-security-token/+=",
    ),
    "put, body not json (unsigned payload)": dict(
        method="PUT",
        path=f"/v1.1/{PROJECT}/clusters/c1/cdm/job/j/start",
        body=b"\x00binary\xff",
        headers={"Content-Type": "application/octet-stream"},
    ),
    "delete, encoded path, non-ascii header": dict(
        method="DELETE",
        path=f"/v1.0/{PROJECT}/jobs/a%20b%2Fc~d",
        headers={"X-Note": "  déjà vu  "},
    ),
}


@pytest.mark.parametrize("case", SIGNED_BY_THE_SDK.values(), ids=SIGNED_BY_THE_SDK.keys())
def test_requests_signed_by_the_sdk_are_accepted(case: dict[str, Any]) -> None:
    seen = received(sdk_signed(**case))
    assert verify(seen) is None
    if "token" in case:
        assert seen["headers"]["x-security-token"] == case["token"]
        assert "x-security-token" in seen["headers"]["authorization"]  # it is a signed header


def _tamper(seen: dict[str, Any], **changes: Any) -> dict[str, Any]:
    headers = {**seen["headers"], **changes.pop("headers", {})}
    return {**seen, **changes, "headers": headers}


def test_tampered_or_foreign_requests_are_rejected() -> None:
    seen = received(sdk_signed(**SIGNED_BY_THE_SDK["post, body and query, security token"]))
    assert verify(seen) is None
    rejected = {
        "path": _tamper(seen, raw_path=seen["raw_path"] + "x"),
        "body": _tamper(seen, body=seen["body"] + b" "),
        "query": _tamper(seen, raw_query="x=2"),
        "method": _tamper(seen, method="PUT"),
        "signed header": _tamper(seen, headers={"x-project-id": "other-project"}),
        "token": _tamper(seen, headers={"x-security-token": "another-token"}),
    }
    for what, request in rejected.items():
        assert verify(request) == "verify aksk signature fail", what
    assert verify(seen, sk="wrong-sk") == "verify aksk signature fail"
    assert verify(seen, ak="other-ak") == "unknown access key"


def test_unsigned_stale_and_malformed_requests_are_rejected() -> None:
    seen = received(sdk_signed("GET", f"/v1/{PROJECT}/jobs/j/progress"))
    no_auth = {**seen, "headers": {k: v for k, v in seen["headers"].items() if k != "authorization"}}
    assert "Authorization" in str(verify(no_auth))
    assert "expired" in str(verify(seen, now=time.time() + 16 * 60))
    assert verify(seen, now=time.time() + 14 * 60) is None
    bad_date = _tamper(seen, headers={"x-sdk-date": "2024-01-01T00:00:00Z"})
    assert "YYYYMMDDTHHMMSSZ" in str(verify(bad_date))
    date_unsigned = _tamper(
        seen, headers={"authorization": seen["headers"]["authorization"].replace(";x-sdk-date", "")}
    )
    assert "X-Sdk-Date must be a signed header" in str(verify(date_unsigned))
    token_unsigned = _tamper(seen, headers={"x-security-token": "smuggled"})
    assert "X-Security-Token must be a signed header" in str(verify(token_unsigned))
    missing = {**seen, "headers": {k: v for k, v in seen["headers"].items() if k != "x-project-id"}}
    assert "missing" in str(verify(missing))
    posted = received(sdk_signed("POST", f"/v1.0/{PROJECT}/jobs/submit-job", body=b"{}"))
    lying = _tamper(posted, headers={"x-sdk-content-sha256": hashlib.sha256(b"other").hexdigest()})
    assert "does not match the body" in str(verify(lying))


def test_canonical_request_known_answer() -> None:
    """The canonical form written out by hand for one request (independent of the SDK)."""
    headers = {"host": "h:1", "x-sdk-date": "20260102T030405Z", "content-type": "application/json"}
    signed = ["content-type", "host", "x-sdk-date"]
    text = canonical_request("get", "/v1/p/jobs/a%20b", "z=1&a=%7E+&a=2", headers, signed, b"")
    assert text == (
        "GET\n/v1/p/jobs/a%20b/\n"
        "a=2&a=~%2B&z=1\n"  # decoded, sorted, encoded again: '~' kept, a literal '+' encoded
        "content-type:application/json\nhost:h:1\nx-sdk-date:20260102T030405Z\n\n"
        f"content-type;host;x-sdk-date\n{EMPTY_BODY_HASH}"
    )
    assert canonical_uri("/") == "/" and canonical_uri("/a/b/") == "/a/b/"
    assert canonical_query("") == "" and canonical_query("flag") == "flag="


def test_the_simulator_accepts_sdk_signed_requests_over_http(sim: Simulator) -> None:
    """The same SDK-signed requests (query string, body, security token) through the HTTP front."""
    host = urlsplit(sim.http_url).netloc

    def send(request: SdkRequest) -> httpx.Response:
        headers = dict(request.header_params)
        return httpx.request(
            request.method, sim.http_url + request.uri, headers=headers, content=request.body
        )

    def signed(method: str, path: str, **kw: Any) -> SdkRequest:
        creds = BasicCredentials(sim.core.ak, sim.core.sk, sim.core.project_id)
        if "token" in kw:
            creds = creds.with_security_token(kw.pop("token"))
        request = SdkRequest(
            method=method,
            schema="http",
            host=host,
            resource_path=path,
            query_params=kw.pop("query", []),
            header_params={"Content-Type": "application/json"},
            body=kw.pop("body", b""),
        )
        return creds.sign_request(request)

    project = sim.core.project_id
    sim.core.define_cdm_job("job a+b")
    history = send(
        signed("GET", f"/v1.1/{project}/clusters/sim-cluster/cdm/submissions", query=[("jname", "job a+b")])
    )
    assert history.status_code == 200 and history.json()["total"] == 0
    body = json.dumps({"sql": "SELECT 1"}).encode()
    created = send(signed("POST", f"/v1.0/{project}/jobs/submit-job", body=body, token="sts-token"))
    assert created.status_code == 200 and created.json()["job_type"] == "QUERY"
    last = sim.last_request("dli", created.json()["job_id"])
    assert last is not None and last["headers"]["x-security-token"] == "sts-token"
    tampered = signed("POST", f"/v1.0/{project}/jobs/submit-job", body=body)
    tampered.body = body.replace(b"1", b"2")
    refused = send(tampered)
    assert refused.status_code == 401 and refused.json()["error_code"] == "APIGW.0301"


def test_the_simulator_uses_no_huawei_sdk_code() -> None:
    from pathlib import Path

    import airflow_jobstatus.simulator as package

    sources = Path(package.__file__).parent.glob("*.py")
    assert not [p.name for p in sources if "huaweicloudsdk" in p.read_text(encoding="utf-8")]
