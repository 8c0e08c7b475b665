"""Floor clients for the poll-cost benchmark: the least a signed CDM poll or a Dataproc poll can cost.

Each floor does what a poll must do and nothing else: sign the request (SDK-HMAC-SHA256 by hand,
hashlib/hmac), send it on a kept-alive connection, read the answer, ``json.loads`` it. The simulator
verifies every signature, so a floor that cut a corner would get 401s (counted as errors).

- ``AiohttpFloor``: one shared ``aiohttp.ClientSession`` (the maintained client the project uses).
- ``HttpxFloor``: one shared ``httpx.AsyncClient`` (the client the project used before).
- ``StreamsFloor``: 100 keep-alive HTTP/1.1 connections over plain asyncio streams.
- ``GapicFloor``: one shared GAPIC ``JobControllerAsyncClient`` on one grpc.aio channel.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import urlsplit

EMPTY_HASH = hashlib.sha256(b"").hexdigest()
SIGNED = "host;x-project-id;x-sdk-date"


class HandSigner:
    """SDK-HMAC-SHA256 for a GET without a body or query, written out (no SDK)."""

    def __init__(self, endpoint: str, ak: str, sk: str, project_id: str):
        parts = urlsplit(endpoint)
        self.host = parts.netloc
        self.ak, self.sk, self.project_id = ak, sk.encode(), project_id

    def headers(self, path: str) -> dict[str, str]:
        date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        canonical = (
            f"GET\n{path}/\n\nhost:{self.host}\nx-project-id:{self.project_id}\nx-sdk-date:{date}\n\n"
            f"{SIGNED}\n{EMPTY_HASH}"
        )
        to_sign = f"SDK-HMAC-SHA256\n{date}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        signature = hmac.new(self.sk, to_sign.encode(), hashlib.sha256).hexdigest()
        return {
            "Host": self.host,
            "X-Project-Id": self.project_id,
            "X-Sdk-Date": date,
            "Authorization": f"SDK-HMAC-SHA256 Access={self.ak}, SignedHeaders={SIGNED}, Signature={signature}",
        }


def cdm_path(project_id: str, job_name: str) -> str:
    return f"/v1.1/{project_id}/clusters/sim-cluster/cdm/job/{job_name}/status"


def check_cdm(status: int, body: bytes) -> None:
    if status != 200:
        raise RuntimeError(f"HTTP {status}: {body[:200]!r}")
    data = json.loads(body)
    if not data["submissions"][0]["status"]:
        raise RuntimeError("no status")


class AiohttpFloor:
    def __init__(self, endpoint: str, signer: HandSigner):
        import aiohttp

        self.endpoint, self.signer = endpoint, signer
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100))

    async def poll(self, job_name: str) -> None:
        path = cdm_path(self.signer.project_id, job_name)
        async with self.session.get(self.endpoint + path, headers=self.signer.headers(path)) as response:
            check_cdm(response.status, await response.read())

    async def close(self) -> None:
        await self.session.close()


class HttpxFloor:
    def __init__(self, endpoint: str, signer: HandSigner):
        import httpx

        self.endpoint, self.signer = endpoint, signer
        self.client = httpx.AsyncClient(limits=httpx.Limits(max_connections=100))
        self.gate = asyncio.Semaphore(100)  # keep httpcore's queue empty (see notes.md)

    async def poll(self, job_name: str) -> None:
        path = cdm_path(self.signer.project_id, job_name)
        async with self.gate:
            response = await self.client.get(self.endpoint + path, headers=self.signer.headers(path))
        check_cdm(response.status_code, response.content)

    async def close(self) -> None:
        await self.client.aclose()


class StreamsFloor:
    """HTTP/1.1 keep-alive over asyncio streams: a pool of ``size`` connections, Content-Length bodies."""

    def __init__(self, endpoint: str, signer: HandSigner, size: int = 100):
        parts = urlsplit(endpoint)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.signer, self.size, self.opened = signer, size, 0
        self.idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.idle.empty() and self.opened < self.size:
            self.opened += 1
            return await asyncio.open_connection(self.host, self.port)
        return await self.idle.get()

    async def poll(self, job_name: str) -> None:
        path = cdm_path(self.signer.project_id, job_name)
        head = "".join(f"{k}: {v}\r\n" for k, v in self.signer.headers(path).items())
        reader, writer = await self._connection()
        writer.write(f"GET {path} HTTP/1.1\r\n{head}\r\n".encode())
        raw = await reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.lower() == "content-length":
                length = int(value)
        body = await reader.readexactly(length)
        self.idle.put_nowait((reader, writer))
        check_cdm(status, body)

    async def close(self) -> None:
        while not self.idle.empty():
            _, writer = self.idle.get_nowait()
            writer.close()


class GapicFloor:
    """One shared Dataproc ``JobControllerAsyncClient`` (plaintext channel), a bare ``get_job`` per poll."""

    def __init__(self, target: str, project_id: str, region: str):
        import grpc
        from google.cloud.dataproc_v1.services.job_controller import JobControllerAsyncClient
        from google.cloud.dataproc_v1.services.job_controller.transports import (
            JobControllerGrpcAsyncIOTransport,
        )

        self.channel = grpc.aio.insecure_channel(target)
        transport = JobControllerGrpcAsyncIOTransport(channel=self.channel, host=target)
        self.client = JobControllerAsyncClient(transport=transport)
        self.project_id, self.region = project_id, region

    async def poll(self, job_id: str) -> Any:
        request = {"project_id": self.project_id, "region": self.region, "job_id": job_id}
        job = await self.client.get_job(request=request, retry=None, timeout=30.0)
        if not job.status.state:
            raise RuntimeError("no state")
        return job

    async def close(self) -> None:
        await self.channel.close()
