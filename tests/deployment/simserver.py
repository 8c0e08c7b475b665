"""The simulator in its own process for the deployment harness.

Run as ``python tests/deployment/simserver.py``: starts ``airflow_jobstatus.simulator.Simulator`` on
free loopback ports, prints one JSON line (``grpc_target``, ``http_url``, ``harness_url``, ``env``)
and serves until SIGTERM/SIGINT. The simulator's own control API (``/_sim/`` on ``http_url``) adds
jobs, faults and default timelines; this process adds a small harness API on ``harness_url``:

- ``GET  /calls?service=S``: every request the simulator received for service S, in order
  (``job_id``, ``method``, wall ``time``, and the request ``detail``), unbounded (the core keeps
  only the last 200 per job).
- ``GET  /jobs?service=S``: the jobs (for CDM: latest submissions) with state and actions.
- ``POST /release``: ``{service, job_id, timeline, where}`` switches a running job to ``timeline``
  from now (the way a real job moves on by itself); answers the wall time it becomes terminal.
- ``POST /flip``: ``{service, job_id, on_read, timeline}`` switches the job to ``timeline`` when
  its ``on_read``-th status read arrives, before that read is answered.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from airflow_jobstatus.simulator import Simulator, SimulatorCore

#: Operations that read a job's status (everything else submits, starts, cancels or stops).
READ_PREFIXES = ("Get", "Show")


def is_read(method: str) -> bool:
    return method.startswith(READ_PREFIXES)


class HarnessCore(SimulatorCore):
    """The simulator core plus an unbounded call log and read-count triggered timeline switches."""

    def reset(self) -> None:
        with self._lock:  # set by SimulatorCore.__init__ before it calls reset()
            super().reset()
            self.log: list[dict[str, Any]] = []
            self.reads: dict[tuple[str, str], int] = {}
            self.flips: dict[tuple[str, str], tuple[int, list[dict[str, Any]]]] = {}

    def record_call(
        self,
        service: str,
        job_id: str | None,
        method: str,
        detail: Any = None,
        headers: Mapping[str, Any] | None = None,
        **list_call: Any,
    ) -> None:
        # ``list_call``: a list call's scope and page, kept in the core's list-call log (list_calls).
        super().record_call(service, job_id, method, detail=detail, headers=headers, **list_call)
        key = (service, "" if job_id is None else str(job_id))
        with self._lock:
            self.log.append(
                {
                    "service": service,
                    "job_id": job_id,
                    "method": method,
                    "time": time.time(),
                    "detail": detail,
                }
            )
            if not is_read(method):
                return
            self.reads[key] = self.reads.get(key, 0) + 1
            flip = self.flips.get(key)
            if flip is None or self.reads[key] < flip[0]:
                return
            del self.flips[key]
        job = self._job_for(service, key[1])
        if job is not None:
            job.override(flip[1], action="flip")

    def _job_for(self, service: str, job_id: str) -> Any:
        name = job_id.rpartition("/")[2] if service == "cdm" else job_id
        return self.get_job(service, name)


def make_handler(sim: Simulator, core: HarnessCore) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

        def _send(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> dict[str, Any]:
            length = int(self.headers.get("Content-Length") or 0)
            return json.loads(self.rfile.read(length) or b"{}") if length else {}

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            service = query.get("service")
            if url.path == "/calls":
                with core._lock:
                    calls = [c for c in core.log if service is None or c["service"] == service]
                self._send(200, {"calls": calls})
            elif url.path == "/jobs":
                jobs = [
                    {
                        "service": j.service,
                        "job_id": j.job_id,
                        "ref": j.ref,
                        "where": j.where,
                        "state": j.state_at(),
                        "terminal": j.is_terminal(),
                        "actions": list(j.actions),
                    }
                    for j in core.jobs(service)
                ]
                self._send(200, {"jobs": jobs})
            elif url.path == "/health":
                self._send(200, {"status": "ok"})
            else:
                self._send(404, {"error": f"no route {url.path}"})

        def do_POST(self) -> None:
            url = urlsplit(self.path)
            try:
                body = self._body()
                if url.path == "/release":
                    job = core.get_job(body["service"], body["job_id"], **body.get("where", {}))
                    if job is None:
                        self._send(404, {"error": f"no job {body['service']}/{body['job_id']}"})
                        return
                    job.override(body["timeline"], action="release")
                    now = time.time()
                    running = sum(float(p.get("duration") or 0) for p in body["timeline"][:-1])
                    self._send(200, {"released_at": now, "terminal_at": now + running})
                elif url.path == "/flip":
                    service, job_id = body["service"], str(body["job_id"])
                    with core._lock:
                        core.flips[(service, job_id)] = (int(body["on_read"]), body["timeline"])
                    self._send(200, {"ok": True})
                else:
                    self._send(404, {"error": f"no route {url.path}"})
            except (KeyError, ValueError, TypeError) as err:
                self._send(400, {"error": f"{type(err).__name__}: {err}"})

    return Handler


def main() -> None:
    sim = Simulator()
    core = HarnessCore(sim.core.ak, sim.core.sk, sim.core.project_id, region=sim.core.region)
    sim.core = core
    harness = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(sim, core))
    harness.daemon_threads = True
    thread = threading.Thread(target=harness.serve_forever, name="harness-api", daemon=True)

    def announce() -> None:
        thread.start()
        info = {
            "grpc_target": sim.grpc_target,
            "http_url": sim.http_url,
            "harness_url": f"http://127.0.0.1:{harness.server_address[1]}",
            "env": sim.env(),
        }
        sys.stdout.write(json.dumps(info) + "\n")
        sys.stdout.flush()

    try:
        sim.serve_forever(ready=announce)
    finally:
        harness.shutdown()
        harness.server_close()


if __name__ == "__main__":
    main()
