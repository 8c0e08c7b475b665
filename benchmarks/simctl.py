"""Start and drive the simulator process (benchmarks/simproc.py) from the orchestrator."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


class SimProcess:
    """The simulator running in a child process; one JSON line per command over its stdin/stdout."""

    def __init__(self, python: str = sys.executable, env: dict[str, str] | None = None):
        self.proc = subprocess.Popen(
            [python, str(HERE / "simproc.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        info = self._read()
        self.grpc_target: str = info["grpc_target"]
        self.http_url: str = info["http_url"]
        self.env: dict[str, str] = info["env"]

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the simulator process exited (code {self.proc.poll()})")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"simulator: {reply['error']}")
        return reply

    def request(self, op: str, **args: Any) -> dict[str, Any]:
        """Send one command and return its reply."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def add_jobs(self, jobs: list[dict[str, Any]]) -> dict[str, float]:
        """Add jobs; each job's timeline-start wall time by its key."""
        return self.request("add_jobs", jobs=jobs)["created"]

    def calls(self, keys: list[tuple[str, str]]) -> list[int]:
        """Calls received per (service, job_id)."""
        return self.request("calls", keys=[list(k) for k in keys])["calls"]

    def calls_between(self, services: list[str], start: float, end: float) -> int:
        """Requests to ``services`` received with wall time in [start, end)."""
        return self.request("calls_between", services=services, start=start, end=end)["count"]

    def reset(self) -> None:
        self.request("reset")

    def stats(self) -> dict[str, Any]:
        return self.request("stats")

    def close(self) -> None:
        """Ask the process to stop; kill it if it does not within 10 s."""
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self.proc.stdin.flush()
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> SimProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
