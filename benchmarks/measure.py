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


# -- the garbage collector at 10,000 waits, side by side (issue 27 item 3) ---------------------------
#
# ``.venv/bin/python benchmarks/measure.py gc --tree before=/tmp/parent --tree after=. --n 10000``:
# per tree (a checkout of the package; its ``airflow_jobstatus`` is put first on PYTHONPATH, the
# runner is this directory's ``fleet.py``), the tracked objects per waiting trigger of each service
# (``BENCH_GC_CENSUS``, a separate run: the census pauses the loop) and the mixed fleet at ``--n`` with
# CPython's default thresholds: loop lag and full-collection pauses. Trees alternate, in one run.

GC_SERVICES = ("dataproc", "dataflow", "vertex_ai", "cdm", "dli")


def census(sim: SimProcess, env: dict[str, str], service: str, n: int, poll: float) -> dict[str, Any]:
    """Tracked objects per waiting trigger of ``service`` (``n`` waits on jobs that outlast the census)."""
    with tempfile.TemporaryDirectory(prefix="bench-census-") as tmp:
        out = Path(tmp) / "census.json"
        runner = [env.get("BENCH_PYTHON", "python"), str(HERE / "fleet.py")]
        run_fleet(
            sim,
            runner,
            {**env, "BENCH_GC_CENSUS": str(out)},
            n=n,
            services=(service,),
            poll=poll,
            end_range=(5 * poll, 5 * poll + 1),
            stagger=poll,
            seed=8,
            label="census",
        )
        import json

        return dict(json.loads(out.read_text(encoding="utf-8")))


def _gc_main(argv: list[str]) -> int:
    import argparse
    import json
    import sys

    from common import write_json

    p = argparse.ArgumentParser(prog="measure.py gc")
    p.add_argument("--tree", action="append", required=True, help="LABEL=PATH (a checkout of the package)")
    p.add_argument("--n", type=int, default=10000, help="mixed fleet size (0: none)")
    p.add_argument("--census-n", type=int, default=1000, help="waits per service in the census (0: none)")
    p.add_argument("--services", default=",".join(GC_SERVICES))
    p.add_argument("--poll", type=float, default=10.0)
    p.add_argument("--end", default="30,60")
    p.add_argument("--env", action="append", default=[], help="LABEL:NAME=VALUE for one tree's runner")
    p.add_argument("--out", type=Path, default=HERE / "results" / "gc-latest.json")
    p.add_argument("--sim-tree", help="the checkout the simulator runs from (default: the first --tree)")
    args = p.parse_args(argv)
    trees = [tuple(t.split("=", 1)) for t in args.tree]
    extra: dict[str, dict[str, str]] = {}
    for item in args.env:
        label, assignment = item.split(":", 1)
        name, value = assignment.split("=", 1)
        extra.setdefault(label, {})[name] = value
    services = tuple(s for s in args.services.split(",") if s)
    end = tuple(float(x) for x in args.end.split(","))
    results: dict[str, Any] = {"load_average_start": os.getloadavg(), "census": {}, "fleet": {}}
    sim_tree = str(Path(args.sim_tree or trees[0][1]).resolve())
    sim_env = {**os.environ, "PYTHONPATH": sim_tree}
    with tempfile.TemporaryDirectory(prefix="bench-home-") as home, SimProcess(env=sim_env) as sim:
        env = base_env(sim, home)
        envs = {
            label: {
                **env,
                "PYTHONPATH": str(Path(path).resolve()),
                "BENCH_PYTHON": sys.executable,
                **extra.get(label, {}),
            }
            for label, path in trees
        }
        for service in services if args.census_n else ():
            for label, _ in trees:
                row = census(sim, envs[label], service, args.census_n, args.poll)
                results["census"].setdefault(service, {})[label] = row
                print(
                    f"census {service:10s} {label:8s} {row['per_wait']:7.1f} tracked objects per wait",
                    flush=True,
                )
        for label, _ in trees if args.n else ():
            row = run_fleet(
                sim,
                [sys.executable, str(HERE / "fleet.py")],
                envs[label],
                n=args.n,
                services=services,
                poll=args.poll,
                end_range=(end[0], end[1]),
                stagger=args.poll,
                seed=8,
                label=label,
            )
            results["fleet"][label] = row
            write_json(args.out, results)
            if row["loop_lag_ms"].get("p99") is None:
                print(f"fleet {args.n} {label}: no figures: {row.get('outcomes')} {row.get('first_errors')}")
                continue
            gen2 = row["gc_pauses"].get("gen2", {})
            print(
                f"fleet {args.n} {label:8s} lag p99 {row['loop_lag_ms']['p99']:.1f} ms max "
                f"{row['loop_lag_ms']['max']:.1f} ms; full GCs {gen2.get('count')} "
                f"(max {gen2.get('max_ms', 0):.0f} ms, total {gen2.get('total_ms', 0):.0f} ms); "
                f"detection p99 {row['detection_s']['p99']}; calls/min {row['calls_ratio_to_min']:.3f}; "
                f"rss/wait {row['rss_per_trigger_kib'] or float('nan'):.1f} KiB; frozen {row['gc_frozen']}; "
                f"outcomes {row['outcomes']}",
                flush=True,
            )
    results["load_average_end"] = os.getloadavg()
    write_json(args.out, results)
    print(json.dumps({"wrote": str(args.out)}))
    return 0


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] != ["gc"]:
        raise SystemExit("usage: measure.py gc --tree LABEL=PATH [--tree ...] [--n N] (see _gc_main)")
    raise SystemExit(_gc_main(sys.argv[2:]))
