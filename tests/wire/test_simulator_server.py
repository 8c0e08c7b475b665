"""The Simulator runner: explicit ports, a clear error when one is taken, clean stops."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from airflow_jobstatus.simulator import (
    DEFAULT_GRPC_PORT,
    DEFAULT_HTTP_PORT,
    Simulator,
    SimulatorPortInUse,
)


def _port(address: str) -> int:
    return int(address.rpartition(":")[2])


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A plain socket listening on a free local port (taken for as long as the test runs)."""
    with socket.create_server(("127.0.0.1", 0)) as sock:
        yield sock


def _free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        return int(sock.getsockname()[1])


def _sim_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "airflow-jobstatus-simulator"]


def test_default_ports_for_the_cli() -> None:
    assert (DEFAULT_GRPC_PORT, DEFAULT_HTTP_PORT) == (50061, 8961)


def test_explicit_ports_are_used() -> None:
    grpc_port, http_port = _free_port(), _free_port()
    with Simulator(grpc_port=grpc_port, http_port=http_port) as sim:
        assert sim.grpc_target == f"127.0.0.1:{grpc_port}"
        assert sim.http_url == f"http://127.0.0.1:{http_port}"
        assert httpx.get(sim.http_url + "/_sim/health").json() == {"status": "ok"}
    # Stopped: the same ports can be taken again at once.
    with Simulator(grpc_port=grpc_port, http_port=http_port) as again:
        assert _port(again.grpc_target) == grpc_port


def test_a_taken_http_port_is_a_clear_error(listener: socket.socket) -> None:
    port = int(listener.getsockname()[1])
    threads_before = len(_sim_threads())
    grpc_port = _free_port()
    sim = Simulator(grpc_port=grpc_port, http_port=port)
    with pytest.raises(SimulatorPortInUse) as info:
        sim.start()
    assert (info.value.front, info.value.port) == ("HTTP", port)
    message = str(info.value)
    assert f"port {port}" in message and "http_port=" in message and "0 for any free port" in message
    assert info.value.option == "http_port"  # a front end names its own option instead (the CLI: --http-port)
    assert info.value.describe("--http-port PORT") == message.replace("http_port=<port>", "--http-port PORT")
    assert not sim.running and len(_sim_threads()) == threads_before
    with socket.create_server(("127.0.0.1", grpc_port)):  # the gRPC server it had started was stopped
        pass


def test_a_port_held_by_another_simulator_is_a_clear_error(simulator: Simulator) -> None:
    """gRPC would share a port (SO_REUSEPORT) with another gRPC server; the simulator refuses instead."""
    taken = _port(simulator.grpc_target)
    with pytest.raises(SimulatorPortInUse, match=rf"gRPC port {taken} on .*\(grpc_port=<port>"):
        Simulator(grpc_port=taken).start()
    taken_http = urlsplit(simulator.http_url).port
    assert taken_http is not None
    with pytest.raises(SimulatorPortInUse, match=f"HTTP port {taken_http}"), Simulator(http_port=taken_http):
        pass
    assert httpx.get(simulator.http_url + "/_sim/health").status_code == 200  # the first one is unharmed


def test_port_arguments_are_checked() -> None:
    for bad in (-1, 65536, "8961"):
        with pytest.raises(ValueError, match=r"from 0 .* to 65535"):
            Simulator(http_port=bad)  # type: ignore[arg-type]


def test_addresses_need_a_running_simulator() -> None:
    sim = Simulator()
    for read in (lambda: sim.grpc_target, lambda: sim.http_url, sim.connections):
        with pytest.raises(RuntimeError, match="not running"):
            read()
    sim.stop()  # stopping a simulator that never started is a no-op
