"""The in-process simulator: one asyncio loop in a daemon thread serving gRPC (Google) and HTTP (Huawei).

Ports: 0 (the default) picks a free one; a given port that is taken raises SimulatorPortInUse from
``start()``. ``airflow-jobstatus simulate`` uses DEFAULT_GRPC_PORT and DEFAULT_HTTP_PORT, so exported
connections stay valid across restarts.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import signal
import socket
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any

from airflow_jobstatus.simulator.core import Fault, SimJob, SimulatorCore
from airflow_jobstatus.simulator.vocabulary import DEFAULT_GOOGLE_REGION, Timeline

if TYPE_CHECKING:
    from airflow_jobstatus.simulator.http import HttpFront

log = logging.getLogger(__name__)

#: Fixed ports for a long-running simulator (the CLI's ``simulate``); tests use 0 (a free port).
DEFAULT_GRPC_PORT = 50061
DEFAULT_HTTP_PORT = 8961
DEFAULT_HUAWEI_REGION = "cn-north-4"
#: The demo's job set and default timelines (``Simulator(scenarios=DEFAULT_SCENARIOS)``).
DEFAULT_SCENARIOS = Path(__file__).parent / "scenarios" / "default.json"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


class SimulatorPortInUse(RuntimeError):
    """A port given to Simulator(...) is taken by another process (or another simulator)."""

    def __init__(self, front: str, host: str, port: int, option: str):
        self.front, self.host, self.port = front, host, port
        #: The ``Simulator`` argument naming the port (``grpc_port``, ``http_port``).
        self.option = option
        super().__init__(self.describe(f"{option}=<port>"))

    def describe(self, how: str) -> str:
        """The message, with ``how`` saying how to pick another port (``--http-port PORT`` in the CLI)."""
        return (
            f"The simulator's {self.front} port {self.port} on {self.host} is already in use. Stop "
            f"whatever listens there, or pick another port ({how}, or 0 for any free port)."
        )


class Simulator:
    """Fake Dataproc/Dataflow/Vertex AI (plaintext gRPC) and CDM/DLI (signed REST) on local ports.

    Use as a context manager, or ``start()``/``stop()``. Job, fault and call helpers delegate to
    ``self.core`` (a SimulatorCore), which tests may also use directly.
    """

    def __init__(
        self,
        ak: str = "sim-ak",
        sk: str = "sim-sk",
        project_id: str = "sim-project",
        scenarios: str | Path | Iterable[Any] | Mapping[str, Any] | None = None,
        host: str = "127.0.0.1",
        grpc_port: int = 0,
        http_port: int = 0,
        region: str = DEFAULT_GOOGLE_REGION,
        huawei_region: str = DEFAULT_HUAWEI_REGION,
    ):
        for name, port in (("grpc_port", grpc_port), ("http_port", http_port)):
            if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
                raise ValueError(f"{name} must be an integer from 0 (any free port) to 65535, got {port!r}.")
        self.core = SimulatorCore(ak, sk, project_id, region=region)
        self.host = host
        self.region = region
        self.huawei_region = huawei_region
        self._requested_ports = (grpc_port, http_port)
        self._grpc_port: int | None = None
        self._http_port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stoppers: list[Callable[[], Awaitable[None]]] = []
        self._error: BaseException | None = None
        if scenarios is not None:
            self.core.load_scenarios(scenarios)

    # ---- lifecycle --------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> Simulator:
        """Start the servers in a background thread; returns once they accept connections.

        SimulatorPortInUse when a given port is taken; RuntimeError for any other failure.
        """
        if self.running:
            return self
        ready = threading.Event()
        self._error = None
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name="airflow-jobstatus-simulator", daemon=True
        )
        self._thread.start()
        if not ready.wait(START_TIMEOUT):
            raise RuntimeError(f"The simulator did not start within {START_TIMEOUT:.0f} s.")
        if self._error is not None:
            self._thread.join(STOP_TIMEOUT)
            self._thread = None
            if isinstance(self._error, SimulatorPortInUse):
                raise self._error
            raise RuntimeError(f"The simulator failed to start: {self._error}") from self._error
        return self

    def stop(self) -> None:
        """Stop the servers and join the thread (idempotent)."""
        thread, loop = self._thread, self._loop
        if thread is None:
            return
        if loop is not None and thread.is_alive():
            loop.call_soon_threadsafe(loop.stop)
        thread.join(STOP_TIMEOUT)
        if thread.is_alive():
            log.warning("The simulator thread did not stop within %.0f s.", STOP_TIMEOUT)
        self._thread = None
        self._loop = None
        self._grpc_port = self._http_port = None

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def serve_forever(self, ready: Callable[[], None] | None = None) -> None:
        """Block until SIGINT/SIGTERM, then stop; ``ready`` runs once the signal handlers are set.

        Call from the main thread. Handlers go in before ``ready`` (which usually announces the
        server), so a signal sent as soon as the announcement is seen always stops it cleanly.
        """
        done = threading.Event()

        def on_signal(signum: int, frame: FrameType | None) -> None:
            done.set()

        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            self.start()
            if ready is not None:
                ready()
            while not done.wait(0.5):
                if not self.running:
                    break
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            self.stop()

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            try:
                loop.run_until_complete(self._start_servers())
            except BaseException as err:
                self._error = err
                loop.run_until_complete(self._stop_servers())
                return
            finally:
                ready.set()
            loop.run_forever()
            loop.run_until_complete(self._stop_servers())
        finally:
            self._cancel_leftovers(loop)
            loop.close()

    async def _start_servers(self) -> None:
        from airflow_jobstatus.simulator.google_grpc import start_grpc_server

        grpc_port, http_port = self._requested_ports
        _check_free("gRPC", self.host, grpc_port, "grpc_port")
        grpc_server, self._grpc_port = await start_grpc_server(self.core, self.host, grpc_port)
        self._stoppers.append(lambda: grpc_server.stop(grace=None))
        http_front = _http_front(self.core)
        try:
            await http_front.start(self.host, http_port)
        except OSError as err:
            if http_port and err.errno == errno.EADDRINUSE:
                raise SimulatorPortInUse("HTTP", self.host, http_port, "http_port") from err
            raise
        self._stoppers.append(http_front.stop)
        self._http_port = http_front.port

    async def _stop_servers(self) -> None:
        stoppers, self._stoppers = self._stoppers, []
        for stop in stoppers:
            try:
                await stop()
            except Exception:
                log.exception("Error while stopping a simulator server.")

    @staticmethod
    def _cancel_leftovers(loop: asyncio.AbstractEventLoop) -> None:
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())

    # ---- addresses and connections ----------------------------------------------------------------

    @property
    def grpc_target(self) -> str:
        """``host:port`` of the plaintext gRPC server (Dataproc, Dataflow, Vertex AI)."""
        if self._grpc_port is None:
            raise RuntimeError("The simulator is not running: call start() first.")
        return f"{self.host}:{self._grpc_port}"

    @property
    def http_url(self) -> str:
        """``http://host:port`` of the REST server (CDM, DLI, and the control API under /_sim/)."""
        if self._http_port is None:
            raise RuntimeError("The simulator is not running: call start() first.")
        return f"http://{self.host}:{self._http_port}"

    def connections(self) -> dict[str, dict[str, Any]]:
        """Airflow connections (AIRFLOW_CONN_* JSON form) pointing at this simulator."""
        huawei_extra = {
            "region": self.huawei_region,
            "project_id": self.core.project_id,
            "endpoint": self.http_url,
        }
        return {
            "google_cloud_default": {
                "conn_type": "google_cloud_platform",
                "extra": {"project": self.core.project_id, "api_endpoint": f"http://{self.grpc_target}"},
            },
            "huaweicloud_default": {
                "conn_type": "huaweicloud",
                "login": self.core.ak,
                "password": self.core.sk,
                "extra": huawei_extra,
            },
        }

    def env(self) -> dict[str, str]:
        """``{"AIRFLOW_CONN_<ID>": json}`` for every connection."""
        return {f"AIRFLOW_CONN_{cid.upper()}": json.dumps(conn) for cid, conn in self.connections().items()}

    # ---- delegation to the core -------------------------------------------------------------------

    def add_job(self, service: str, job_id: str, timeline: Timeline, **where: Any) -> SimJob:
        return self.core.add_job(service, job_id, timeline, **where)

    def start_job(
        self, service: str, job_id: str | None = None, timeline: Timeline | None = None, **fields: Any
    ) -> SimJob:
        """A job started outside any DAG (``SimulatorCore.start_job``; the control API's POST /_sim/jobs)."""
        return self.core.start_job(service, job_id, timeline, **fields)

    def list_calls(self, service: str | None = None, **query: Any) -> list[dict[str, Any]]:
        """The list-call log (``SimulatorCore.list_calls``; GET /_sim/calls?kind=list)."""
        return self.core.list_calls(service, **query)

    def get_job(self, service: str, job_id: str, **where: Any) -> SimJob | None:
        return self.core.get_job(service, job_id, **where)

    def inject_fault(
        self,
        kind: str,
        count: int = 1,
        service: str | None = None,
        job_id: str | None = None,
        seconds: float | None = None,
        method: str | None = None,
    ) -> None:
        self.core.inject_fault(
            kind, count=count, service=service, job_id=job_id, seconds=seconds, method=method
        )

    def take_fault(
        self, service: str, job_id: str | None, protocol: str, method: str | None = None
    ) -> Fault | None:
        return self.core.take_fault(service, job_id, protocol, method)

    def calls(self, service: str, job_id: str | None = None) -> int:
        return self.core.calls(service, job_id)

    def method_calls(self, service: str) -> dict[str, int]:
        """Requests the service received, by method (list calls included: ``ListJobs``, …)."""
        return self.core.method_calls(service)

    def requests(self, service: str, job_id: str) -> list[dict[str, Any]]:
        return self.core.requests(service, job_id)

    def last_request(self, service: str, job_id: str) -> dict[str, Any] | None:
        return self.core.last_request(service, job_id)

    def reset(self) -> None:
        self.core.reset()

    def set_default_timeline(self, service: str, timeline: Timeline, job_type: str | None = None) -> None:
        self.core.set_default_timeline(service, timeline, job_type=job_type)

    def load_scenarios(self, source: str | Path | Iterable[Any] | Mapping[str, Any]) -> list[SimJob]:
        return self.core.load_scenarios(source)

    def stats(self) -> dict[str, Any]:
        return self.core.stats()


def _check_free(front: str, host: str, port: int, option: str) -> None:
    """SimulatorPortInUse when something listens on (host, port); port 0 is always free.

    Checked with a plain socket before gRPC binds, since gRPC's own bind failure is only a log line.
    """
    if not port:
        return
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        with socket.create_server((host, port), family=family):
            pass
    except OSError as err:
        if err.errno == errno.EADDRINUSE:
            raise SimulatorPortInUse(front, host, port, option) from err
        raise


def _http_front(core: SimulatorCore) -> HttpFront:
    """CDM and DLI (signed) and the /_sim/ control API, as one aiohttp application."""
    from airflow_jobstatus.simulator.control import PREFIX, ControlApi
    from airflow_jobstatus.simulator.http import HttpFront, build_app
    from airflow_jobstatus.simulator.huawei import HuaweiApi

    huawei = HuaweiApi(core, unsigned_prefix=PREFIX)
    from airflow_jobstatus.simulator.dli_flink import DliFlinkApi

    routes = [*ControlApi(core).routes(), *huawei.routes(), *DliFlinkApi(huawei).routes()]
    app = build_app(routes, middlewares=[huawei.middleware])
    return HttpFront(app)
