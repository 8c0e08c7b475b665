"""Requests to the triggerer's supervisor from the loop and from worker threads at once
(``compat.supervisor_call``, ``compat.mask_secret``), through Airflow's real ``TriggerCommsDecoder``.

The supervisor end is a thread on the other side of a socket pair that answers every request in
the order it came, as Airflow's does. On 3.1 a worker thread's sync ``send`` bypasses the runner's
lock and reads other requests' answers ("Response read out of order!"); the compat calls take it
to the loop. On 3.2+ Airflow bridges such calls itself and the same test passes unchanged.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
import time
from typing import Any

import msgspec
import pytest

from airflow_jobstatus.core import compat

pytest.importorskip("airflow.jobs.triggerer_job_runner")


def _serve(sock: socket.socket, seen: list[dict[str, Any]]) -> None:
    """Answer each request frame in order: a connection for GetConnection, an empty answer otherwise."""
    from airflow.sdk.execution_time.comms import _RequestFrame, _ResponseFrame

    decoder = msgspec.msgpack.Decoder(_RequestFrame)
    stream = sock.makefile("rb")
    while True:
        head = stream.read(4)
        if len(head) < 4:
            return
        frame = decoder.decode(stream.read(struct.unpack(">I", head)[0]))
        body = frame.body or {}
        seen.append(body)
        time.sleep(0.002)  # an answer takes a moment: requests overlap
        if body.get("type") == "GetConnection":
            answer = {"conn_id": body["conn_id"], "conn_type": "http", "type": "ConnectionResult"}
            answer |= dict.fromkeys(("host", "schema", "login", "password", "port", "extra"))
            sock.sendall(_ResponseFrame(id=frame.id, body=answer).as_bytes())
        else:
            sock.sendall(_ResponseFrame(id=frame.id).as_bytes())


async def _comms(monkeypatch: pytest.MonkeyPatch, sock: socket.socket) -> Any:
    from airflow.jobs.triggerer_job_runner import TriggerCommsDecoder
    from airflow.sdk.execution_time import task_runner

    reader, writer = await asyncio.open_connection(sock=sock)
    comms = TriggerCommsDecoder(async_reader=reader, async_writer=writer, socket=sock)
    if hasattr(comms, "start_reader"):  # Airflow >= 3.2
        await comms.start_reader()
    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", comms, raising=False)
    return comms


def test_loop_and_thread_requests_at_once_get_their_own_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk.execution_time.comms import GetConnection

    ours, theirs = socket.socketpair()
    seen: list[dict[str, Any]] = []
    supervisor = threading.Thread(target=_serve, args=(theirs, seen), daemon=True)
    supervisor.start()

    async def main() -> tuple[list[Any], list[Any]]:
        comms = await _comms(monkeypatch, ours)

        def from_thread(conn_id: str) -> Any:
            return compat.supervisor_call(comms.send, comms.asend, GetConnection(conn_id=conn_id))

        on_loop = [comms.asend(GetConnection(conn_id=f"loop-{i}")) for i in range(15)]
        in_threads = [asyncio.to_thread(from_thread, f"thread-{i}") for i in range(15)]
        masks = [asyncio.to_thread(compat.mask_secret, f"secret-value-{i}") for i in range(15)]
        results = await asyncio.wait_for(asyncio.gather(*on_loop, *in_threads, *masks), 60)
        return results[:30], results[30:]

    try:
        conns, masked = asyncio.run(main())
    finally:
        ours.close()
        supervisor.join(5)
        theirs.close()
    assert [c.conn_id for c in conns] == [f"loop-{i}" for i in range(15)] + [f"thread-{i}" for i in range(15)]
    assert masked == [None] * 15
    # Every secret reached the supervisor once (its masker), besides this process's.
    sent = sorted(b["value"] for b in seen if b.get("type") == "MaskSecret")
    assert sent == sorted(f"secret-value-{i}" for i in range(15))


def test_amask_secret_on_the_loop_reaches_the_supervisor(monkeypatch: pytest.MonkeyPatch) -> None:
    ours, theirs = socket.socketpair()
    seen: list[dict[str, Any]] = []
    supervisor = threading.Thread(target=_serve, args=(theirs, seen), daemon=True)
    supervisor.start()

    async def main() -> None:
        import greenback

        await greenback.ensure_portal()  # as the triggerer runs each trigger (3.2's sync send needs it)
        await _comms(monkeypatch, ours)
        await asyncio.wait_for(compat.amask_secret("loop-secret-value"), 30)

    try:
        asyncio.run(main())
    finally:
        ours.close()
        supervisor.join(5)
        theirs.close()
    assert [b.get("value") for b in seen if b.get("type") == "MaskSecret"] == ["loop-secret-value"]


def test_outside_a_trigger_runner_supervisor_call_is_the_sync_call() -> None:
    calls: list[str] = []

    async def never(_: str) -> str:  # pragma: no cover - must not run
        raise AssertionError("bridged outside a trigger runner")

    assert compat.supervisor_call(lambda v: calls.append(v) or "sync", never, "x") == "sync"
    assert calls == ["x"]


def test_airflow_s_own_sync_sends_from_threads_get_their_own_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    """What Airflow itself sends from a worker thread (``Connection.extra_dejson``'s ``mask_secret``,
    a secrets backend's ``GetConnection``) goes through the runner's loop once bridged."""
    from airflow.sdk.execution_time.comms import GetConnection

    ours, theirs = socket.socketpair()
    seen: list[dict[str, Any]] = []
    supervisor = threading.Thread(target=_serve, args=(theirs, seen), daemon=True)
    supervisor.start()

    async def main() -> list[Any]:
        comms = await _comms(monkeypatch, ours)
        cls = type(comms)
        monkeypatch.setattr(cls, "send", cls.send)  # restored afterwards: the bridge patches the class
        monkeypatch.setattr(cls, "_jobstatus_bridged", False, raising=False)
        compat.bridge_trigger_comms()
        on_loop = [comms.asend(GetConnection(conn_id=f"loop-{i}")) for i in range(15)]
        in_threads = [asyncio.to_thread(comms.send, GetConnection(conn_id=f"thread-{i}")) for i in range(15)]
        return list(await asyncio.wait_for(asyncio.gather(*on_loop, *in_threads), 60))

    try:
        conns = asyncio.run(main())
    finally:
        ours.close()
        supervisor.join(5)
        theirs.close()
    assert [c.conn_id for c in conns] == [f"loop-{i}" for i in range(15)] + [f"thread-{i}" for i in range(15)]
