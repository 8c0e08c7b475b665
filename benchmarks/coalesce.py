"""Coalesced polling at scale: N waits with ``coalesce=True``, calls per wait per poll, detection.

As a runner (a fresh process, like ``fleet.py``): ``coalesce.py SERVICES READY PLAN RESULT`` runs the
plan's triggers with ``coalesce=True`` through ``common.fleet_main``. As a library, ``run_from_args``
measures each N through ``measure.run_fleet`` (the same plan, simulator and scoring as our fleet) and
adds the list calls the simulator received; ``targets``/``section`` render them for the report.

Calls per wait per poll = (list calls + the jobs' own reads) ÷ the calls per-job polling needs at
least (one per interval from each trigger's start to the first poll after its job ended).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

TARGET_CALLS_PER_POLL = 0.1
TARGET_N = 1000
#: Detection target: a job's end is seen within the poll interval plus this many seconds.
DETECTION_SLACK = 1.0
LABEL = "coalesced"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """run.py's options for this measurement."""
    p.add_argument(
        "--coalesce-n", help="fleet sizes with coalesce=True (default 100,1000,5000; 'none' skips)"
    )
    p.add_argument("--coalesce-poll", type=float, help="their poll interval in seconds (default 5)")
    p.add_argument("--coalesce-end", help="their jobs' end range 'min,max' seconds (default 60,120)")
    p.add_argument("--coalesce-services", help="default: dataproc, dataflow, dli (SQL), vertex_ai")


def finish_args(args: argparse.Namespace) -> None:
    """Defaults for the options above (``--quick``: N=100, 2 s polls, 20-30 s jobs)."""
    quick = args.quick
    text = args.coalesce_n or ("100" if quick else "100,1000,5000")
    args.coalesce_n = [] if text == "none" else [int(x) for x in text.split(",") if x.strip()]
    args.coalesce_poll = args.coalesce_poll or (2.0 if quick else 5.0)
    lo, hi = (float(x) for x in (args.coalesce_end or ("20,30" if quick else "60,120")).split(","))
    args.coalesce_end = (lo, hi)
    default = ["dataproc", "dataflow", "dli"]
    if importlib.util.find_spec("google.cloud.aiplatform_v1"):
        default.insert(2, "vertex_ai")
    services = args.coalesce_services.split(",") if args.coalesce_services else default
    args.coalesce_services = tuple(services)


def run_from_args(args: argparse.Namespace, sim: Any, env: dict[str, str], log: Callable[[str], None]) -> Any:
    """Every ``--coalesce-n`` fleet: its measure.run_fleet row plus list calls and calls per wait per poll."""
    from measure import run_fleet

    runner = [sys.executable, str(HERE / "coalesce.py")]
    settings = {
        "n": args.coalesce_n,
        "poll_interval": args.coalesce_poll,
        "job_end_range": list(args.coalesce_end),
        "stagger": args.coalesce_poll,
        "services": list(args.coalesce_services),
        "seed": args.seed,
    }
    rows = []
    for n in args.coalesce_n:
        log(f"coalesced fleet: N={n} over {','.join(args.coalesce_services)}, poll {args.coalesce_poll:g} s")
        try:
            row = run_fleet(
                sim,
                runner,
                env,
                n=n,
                services=args.coalesce_services,
                poll=args.coalesce_poll,
                end_range=args.coalesce_end,
                stagger=args.coalesce_poll,
                seed=args.seed,
                label=LABEL,
                log_dir=args.log_dir,
            )
            add_list_calls(sim, row, args.coalesce_services)
        except RuntimeError as err:
            row = {"label": LABEL, "n": n, "failed": str(err)}
        rows.append(row)
        log(f"  → {summary_line(row)}")
    return {"settings": settings, "rows": rows}


def add_list_calls(sim: Any, row: dict[str, Any], services: tuple[str, ...]) -> None:
    """The list calls (requests naming no job) per service, and calls per wait per poll."""
    listed = sim.calls([(s, "") for s in services])
    minimum = 0
    for service, count in zip(services, listed, strict=True):
        svc = row["calls_per_service"][service]
        svc["list_calls"], svc["own_reads"] = count, svc["calls"]
        svc["calls_per_wait_per_poll"] = (
            (count + svc["calls"]) / svc["min_calls"] if svc["min_calls"] else None
        )
        minimum += svc["min_calls"]
    row["list_calls"], row["own_reads"] = sum(listed), row["polls"]
    row["per_job_min_calls"] = minimum
    row["calls_per_wait_per_poll"] = (row["list_calls"] + row["own_reads"]) / minimum if minimum else None


def verdict(row: dict[str, Any], poll: float) -> tuple[bool, str]:
    """(met, text) for one N: every wait succeeded and detection p99 ≤ interval + 1 s."""
    if "failed" in row:
        return False, "run failed"
    ok_outcomes = row["outcomes"] == {"success": row["n"]}
    p99 = row["detection_s"]["p99"]
    ok_detection = p99 is not None and p99 <= poll + DETECTION_SLACK
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(row["outcomes"].items()))
    text = (
        f"{_num(row['calls_per_wait_per_poll'], 3)} calls per wait per poll, detection p99 {_num(p99)} s "
        f"(≤ {poll + DETECTION_SLACK:g} s), outcomes {outcomes} of {row['n']} expected success"
    )
    return ok_outcomes and ok_detection, text


def targets(res: dict[str, Any] | None) -> list[str]:
    """The report's Targets lines: ≤ 0.1 calls per wait per poll at N=1,000, outcomes and detection per N."""
    if not res or not res.get("rows"):
        return []
    poll = res["settings"]["poll_interval"]
    lines = []
    for row in res["rows"]:
        ok, text = verdict(row, poll)
        lines.append(f"- coalesced polling N={row['n']}: {text} → {'met' if ok else 'NOT met'}")
    at_target = [r for r in res["rows"] if r.get("n") == TARGET_N and "failed" not in r]
    if at_target:
        value = at_target[0]["calls_per_wait_per_poll"]
        ok = value is not None and value <= TARGET_CALLS_PER_POLL
        lines.append(
            f"- coalesced polling: {_num(value, 3)} calls per wait per poll at N={TARGET_N:,} "
            f"(target ≤ {TARGET_CALLS_PER_POLL:g}) → {'met' if ok else 'NOT met'}"
        )
    else:
        lines.append(f"- coalesced polling at N={TARGET_N:,}: not measured in this run → NOT met")
    return lines


def section(res: dict[str, Any] | None) -> list[str]:
    """The report's section: one row per N and per service."""
    if not res or not res.get("rows"):
        return []
    s = res["settings"]
    out = [
        "",
        "## Coalesced polling (coalesce=True: one list call per interval per service and scope)",
        "",
        f"Poll interval {s['poll_interval']:g} s; jobs end {s['job_end_range'][0]:g}-{s['job_end_range'][1]:g} s "
        f"after submission; trigger starts spread over {s['stagger']:g} s; services {', '.join(s['services'])}. "
        "Calls per wait per poll = (list calls + own reads) ÷ the calls per-job polling needs at least. "
        "Each wait still reads its own job once when it leaves the active list (final status, message, "
        "counters), so the figure cannot go below about 1 ÷ (polls per wait).",
        "",
    ]
    header = ["N", "service", "waits", "list calls", "own reads", "per-job min", "calls/wait/poll"]
    header += ["detect p50 s", "detect p99 s", "outcomes", "lag p99 ms", "CPU s"]
    rows = []
    for r in res["rows"]:
        if "failed" in r:
            rows.append([str(r["n"]), "FAILED: " + r["failed"].splitlines()[0][:100]] + ["-"] * 10)
            continue
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(r["outcomes"].items()))
        rows.append(
            [
                f"{r['n']:,}",
                "all",
                str(r["n"]),
                str(r["list_calls"]),
                str(r["own_reads"]),
                str(r["per_job_min_calls"]),
                _num(r["calls_per_wait_per_poll"], 3),
                _num(r["detection_s"]["p50"]),
                _num(r["detection_s"]["p99"]),
                outcomes,
                _num(r["loop_lag_ms"]["p99"], 1),
                _num(r["cpu_seconds"], 1),
            ]
        )
        for name, svc in sorted(r["calls_per_service"].items()):
            rows.append(
                ["", name, str(svc["jobs"]), str(svc.get("list_calls", "-")), str(svc.get("own_reads", "-"))]
                + [str(svc["min_calls"]), _num(svc.get("calls_per_wait_per_poll"), 3)]
                + [""] * 5
            )
    out += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return out


def summary_line(row: dict[str, Any]) -> str:
    if "failed" in row:
        return f"FAILED: {row['failed'][:300]}"
    return (
        f"list calls={row['list_calls']} own reads={row['own_reads']} per-job min={row['per_job_min_calls']} "
        f"calls/wait/poll={_num(row['calls_per_wait_per_poll'], 3)} "
        f"detect p99={_num(row['detection_s']['p99'])}s outcomes={row['outcomes']}"
    )


def _num(value: Any, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def make_trigger(job: dict[str, Any]) -> Any:
    """The trigger a deferred sensor with ``coalesce=True`` hands the triggerer."""
    from airflow_jobstatus.triggers.job_status import JobStatusTrigger

    return JobStatusTrigger(job["service"], job["ref"], poll_interval=job["poll"], coalesce=True)


if __name__ == "__main__":
    from common import fleet_main
    from fleet import counters, warm_up_for

    fleet_main(make_trigger, warm_up_for(sys.argv[1].split(",")), sys.argv[2:], counters)
