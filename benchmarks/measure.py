"""One fleet run end to end (runner process + simulator jobs), and the figures derived from it."""

from __future__ import annotations

import math
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from common import MIB, summary, wait_for_file, write_json
from plan import make_plan
from simctl import SimProcess

HERE = Path(__file__).resolve().parent
TERMINAL = {
    "dataproc": "DONE",
    "dataflow": "JOB_STATE_DONE",
    "vertex_ai": "JOB_STATE_SUCCEEDED",
    "cdm": "SUCCEEDED",
    "dli": "FINISHED",
}
SUCCESS = {"success", "DONE"}


def _warm_up_jobs(services: tuple[str, ...]) -> list[dict[str, Any]]:
    return [
        {"key": f"{s}:warm-{s}", "service": s, "job_id": f"warm-{s}", "timeline": [{"state": TERMINAL[s]}]}
        for s in services
    ]


def _wait_child(proc: subprocess.Popen[bytes], path: Path, timeout: float, log: Path) -> Any:
    """The JSON the runner writes to ``path``; RuntimeError with its log tail if it dies first."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"runner exited with {proc.returncode} before writing {path.name}:\n{tail}")
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"runner did not write {path.name} within {timeout:.0f} s")
        time.sleep(0.1)
    return wait_for_file(path, 5)


def run_fleet(
    sim: SimProcess,
    runner: list[str],
    env: dict[str, str],
    *,
    n: int,
    services: tuple[str, ...],
    poll: float,
    end_range: tuple[float, float],
    stagger: float,
    seed: int,
    label: str,
    log_dir: Path | None = None,
) -> dict[str, Any]:
    """Start the runner, add the jobs once it is warm, hand it the plan, and score its result."""
    sim.reset()
    sim.add_jobs(_warm_up_jobs(services))
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        work = Path(tmp)
        ready, plan_file, result_file, log = (work / x for x in ("ready", "plan", "result", "log"))
        if log_dir is not None:  # keep the runner's log (trigger log lines, tracebacks)
            log_dir.mkdir(parents=True, exist_ok=True)
            log = log_dir / f"{label}-{n}-{'+'.join(services)}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [*runner, ",".join(services), str(ready), str(plan_file), str(result_file)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
            try:
                _wait_child(proc, ready, 600, log)
                jobs = make_plan(n, services, end_range, stagger, seed, tag=f"n{n}")
                created = sim.add_jobs(jobs)
                sim_cpu0 = sim.stats()["cpu_seconds"]
                timeout = stagger + end_range[1] + 3 * poll + 30
                plan_jobs = [
                    {k: j[k] for k in ("key", "service", "job_id", "ref", "offset")} | {"poll": poll}
                    for j in jobs
                ]
                write_json(plan_file, {"jobs": plan_jobs, "poll": poll, "timeout": timeout})
                result = _wait_child(proc, result_file, timeout + 180, log)
                proc.wait(60)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
    sim_cpu = sim.stats()["cpu_seconds"] - sim_cpu0
    calls = sim.calls([(j["service"], j["job_id"]) for j in jobs])
    window = result["steady_window"]
    steady_calls = sim.calls_between(list(services), *window) if window else 0
    row = score(label, jobs, created, calls, result, poll, stagger, end_range, sim_cpu)
    row["steady_polls"] = steady_calls
    row["steady_seconds"] = window[1] - window[0] if window else None
    row["cpu_per_1000_polls_steady"] = (
        result["steady_cpu_seconds"] / steady_calls * 1000 if steady_calls else None
    )
    return row


def min_calls(start: float, terminal: float, poll: float) -> int:
    """Calls needed polling every ``poll`` s from ``start`` to see a job that ends at ``terminal``."""
    return 1 + max(0, math.ceil((terminal - start) / poll - 1e-9))


def score(
    label: str,
    jobs: list[dict[str, Any]],
    created: dict[str, float],
    calls: list[int],
    result: dict[str, Any],
    poll: float,
    stagger: float,
    end_range: tuple[float, float],
    sim_cpu: float,
) -> dict[str, Any]:
    """The figures of one run: CPU per 1,000 polls, RSS per trigger, loop lag, latency, calls per wait."""
    n = len(jobs)
    outcomes: dict[str, int] = {}
    latencies: list[float] = []
    per_service: dict[str, dict[str, Any]] = {}
    for job, count in zip(jobs, calls, strict=True):
        seen = result["jobs"].get(job["key"], {})
        status = seen.get("status", "no event")
        outcomes[status] = outcomes.get(status, 0) + 1
        terminal = created[job["key"]] + job["end_after"]
        svc = per_service.setdefault(job["service"], {"jobs": 0, "calls": 0, "min_calls": 0})
        svc["jobs"] += 1
        svc["calls"] += count
        if "start" in seen:
            svc["min_calls"] += min_calls(seen["start"], terminal, poll)
        if status in SUCCESS and "event" in seen:
            latencies.append(seen["event"] - terminal)
    for svc in per_service.values():
        svc["calls_per_wait"] = svc["calls"] / svc["jobs"]
        svc["ratio_to_min"] = svc["calls"] / svc["min_calls"] if svc["min_calls"] else None
    polls = sum(calls)
    net_cpu = max(0.0, result["cpu_seconds"] - result["idle_cpu_per_second"] * result["wall_seconds"])
    waiting = result["rss_waiting"]
    errors = [s.get("message") for s in result["jobs"].values() if s.get("status") not in SUCCESS]
    return {
        "label": label,
        "n": n,
        "services": sorted(per_service),
        "poll_interval": poll,
        "stagger": stagger,
        "end_range": list(end_range),
        "polls": polls,
        "cpu_seconds": result["cpu_seconds"],
        "wall_seconds": result["wall_seconds"],
        "cpu_per_1000_polls": result["cpu_seconds"] / polls * 1000 if polls else None,
        "idle_cpu_per_second": result["idle_cpu_per_second"],
        "cpu_per_1000_polls_net": net_cpu / polls * 1000 if polls else None,
        "rss_baseline_mib": result["rss_baseline"] / MIB,
        "rss_waiting_mib": waiting / MIB if waiting else None,
        "rss_peak_mib": result["rss_peak"] / MIB,
        "rss_per_trigger_kib": (waiting - result["rss_baseline"]) / n / 1024 if waiting else None,
        "loop_lag_ms": {k: (v * 1000 if isinstance(v, float) else v) for k, v in result["loop_lag"].items()},
        "detection_s": summary(latencies),
        "outcomes": outcomes,
        "first_errors": errors[:3],
        "calls_per_service": per_service,
        "calls_ratio_to_min": polls / sum(s["min_calls"] for s in per_service.values()) if polls else None,
        "timed_out": result["timed_out"],
        "simulator_cpu_seconds": sim_cpu,
        "counters": result.get("counters", {}),
        "gc_pauses": result.get("gc_pauses", {}),
        "gc_frozen": result.get("gc_frozen", 0),
        "gc_threshold": result.get("gc_threshold"),
    }


def base_env(sim: SimProcess, home: str) -> dict[str, str]:
    """The runners' environment: the simulator's connections and a throwaway AIRFLOW_HOME."""
    env = dict(os.environ)
    env.update(sim.env)
    env.update(
        AIRFLOW_HOME=home,
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        SIM_GRPC_TARGET=sim.grpc_target,
        SIM_PROJECT="sim-project",
        PYTHONUNBUFFERED="1",
    )
    return env
