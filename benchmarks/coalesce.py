"""Coalesced polling at scale: N waits with ``coalesce`` auto / False / True, calls per wait per poll,
detection latency.

As a runner (a fresh process, like ``fleet.py``): ``coalesce.py SERVICES READY PLAN RESULT`` runs the
plan's triggers with ``coalesce=$BENCH_COALESCE`` (``true``, ``false`` or ``auto``; default true)
through ``common.fleet_main``. As a library, ``run_from_args`` measures each N and mode through
``measure.run_fleet`` (the same plan, simulator and scoring as our fleet) and adds the list calls
the simulator received; ``--coalesce-sweep`` runs K waits per scope (K times the services) in each mode,
which is how ``AUTO_MIN_WAITS`` was chosen; ``targets``/``section`` render them for the report.

Calls per wait per poll = (list calls + the jobs' own reads) ÷ the calls per-job polling needs at
least (one per interval from each trigger's start to the first poll after its job ended).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
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
MODES = ("auto", "false", "true")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """run.py's options for this measurement."""
    p.add_argument(
        "--coalesce-n", help="fleet sizes, each in every mode (default 100,1000,5000; 'none' skips)"
    )
    p.add_argument("--coalesce-poll", type=float, help="their poll interval in seconds (default 5)")
    p.add_argument("--coalesce-end", help="their jobs' end range 'min,max' seconds (default 60,120)")
    p.add_argument("--coalesce-services", help="default: dataproc, dataflow, dli (SQL), vertex_ai")
    p.add_argument("--coalesce-modes", help="coalesce values per N: auto,false,true (default; --quick: true)")
    p.add_argument(
        "--coalesce-sweep",
        help="K waits per scope (e.g. 1,2,3,4,8) in each mode over the Google services (default none)",
    )


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
    modes = args.coalesce_modes or ("true" if quick else ",".join(MODES))
    args.coalesce_modes = [m.strip().lower() for m in modes.split(",") if m.strip()]
    unknown = set(args.coalesce_modes) - set(MODES)
    if unknown:
        raise SystemExit(f"--coalesce-modes: unknown {sorted(unknown)}; valid: {', '.join(MODES)}")
    sweep = args.coalesce_sweep or ""
    args.coalesce_sweep = [int(x) for x in sweep.split(",") if x.strip()]


def run_from_args(args: argparse.Namespace, sim: Any, env: dict[str, str], log: Callable[[str], None]) -> Any:
    """Every ``--coalesce-n`` fleet in every mode (and the sweep): run_fleet rows plus list calls and
    calls per wait per poll."""
    settings = {
        "n": args.coalesce_n,
        "modes": args.coalesce_modes,
        "poll_interval": args.coalesce_poll,
        "job_end_range": list(args.coalesce_end),
        "stagger": args.coalesce_poll,
        "services": list(args.coalesce_services),
        "seed": args.seed,
    }
    rows = [
        one_fleet(args, sim, env, log, n, mode, args.coalesce_services)
        for n in args.coalesce_n
        for mode in args.coalesce_modes
    ]
    out: dict[str, Any] = {"settings": settings, "rows": rows}
    if args.coalesce_sweep:
        google = tuple(s for s in args.coalesce_services if s != "dli") or ("dataproc",)
        settings["sweep_services"] = list(google)
        out["sweep"] = [
            {**one_fleet(args, sim, env, log, k * len(google), mode, google), "per_scope": k}
            for k in args.coalesce_sweep
            for mode in args.coalesce_modes
        ]
    return out


def one_fleet(
    args: argparse.Namespace,
    sim: Any,
    env: dict[str, str],
    log: Callable[[str], None],
    n: int,
    mode: str,
    services: tuple[str, ...],
) -> dict[str, Any]:
    """One fleet of ``n`` waits with ``coalesce=mode``: its run_fleet row plus the list calls."""
    from measure import run_fleet

    runner = [sys.executable, str(HERE / "coalesce.py")]
    label = f"coalesce-{mode}"
    log(f"coalesce={mode} fleet: N={n} over {','.join(services)}, poll {args.coalesce_poll:g} s")
    try:
        row = run_fleet(
            sim,
            runner,
            {**env, "BENCH_COALESCE": mode},
            n=n,
            services=services,
            poll=args.coalesce_poll,
            end_range=args.coalesce_end,
            stagger=args.coalesce_poll,
            seed=args.seed,
            label=label,
            log_dir=args.log_dir,
        )
        add_list_calls(sim, row, services)
    except RuntimeError as err:
        row = {"label": label, "n": n, "failed": str(err)}
    row["mode"] = mode
    log(f"  → {summary_line(row)}")
    return row


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
    """The report's Targets lines: coalesce=True ≤ 0.1 calls per wait per poll at N=1,000; auto never
    more calls than per-job polling (False) at the same N; outcomes and detection per N and mode."""
    if not res or not res.get("rows"):
        return []
    poll = res["settings"]["poll_interval"]
    lines = []
    rows = res["rows"]
    for row in rows:
        ok, text = verdict(row, poll)
        mode = row.get("mode", "true")
        lines.append(
            f"- coalesced polling coalesce={mode} N={row['n']}: {text} → {'met' if ok else 'NOT met'}"
        )
    at_target = [
        r for r in rows if r.get("n") == TARGET_N and r.get("mode", "true") == "true" and "failed" not in r
    ]
    if at_target:
        value = at_target[0]["calls_per_wait_per_poll"]
        ok = value is not None and value <= TARGET_CALLS_PER_POLL
        lines.append(
            f"- coalesced polling: {_num(value, 3)} calls per wait per poll at N={TARGET_N:,} "
            f"(target ≤ {TARGET_CALLS_PER_POLL:g}) → {'met' if ok else 'NOT met'}"
        )
    else:
        lines.append(f"- coalesced polling at N={TARGET_N:,}: not measured in this run → NOT met")
    by = {(r["n"], r.get("mode")): r for r in rows if "failed" not in r}
    for (n, mode), auto in sorted(by.items()):
        per_job = by.get((n, "false"))
        if mode != "auto" or per_job is None:
            continue
        a, f = auto["calls_per_wait_per_poll"], per_job["calls_per_wait_per_poll"]
        ok = a is not None and f is not None and a <= f * 1.01  # within 1 %: the same reads, measured
        lines.append(
            f"- coalesce=auto N={n}: {_num(a, 3)} calls per wait per poll vs {_num(f, 3)} per-job "
            f"(target: not more) → {'met' if ok else 'NOT met'}"
        )
    return lines


HEADER = ["N", "coalesce", "service", "list calls", "own reads", "per-job min", "calls/wait/poll"]
HEADER += ["detect p50 s", "detect p99 s", "outcomes", "lag p99 ms", "CPU s"]


def _rows(rows: list[dict[str, Any]], first: str = "n") -> list[list[str]]:
    out = []
    for r in rows:
        key = f"{r.get(first, r['n']):,}"
        if "failed" in r:
            out.append(
                [key, r.get("mode", "true"), "FAILED: " + r["failed"].splitlines()[0][:100]] + ["-"] * 9
            )
            continue
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(r["outcomes"].items()))
        out.append(
            [
                key,
                r.get("mode", "true"),
                f"all ({r['n']})",
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
            out.append(
                ["", "", name, str(svc.get("list_calls", "-")), str(svc.get("own_reads", "-"))]
                + [str(svc["min_calls"]), _num(svc.get("calls_per_wait_per_poll"), 3)]
                + [""] * 5
            )
    return out


def section(res: dict[str, Any] | None) -> list[str]:
    """The report's section: one row per N and mode, and per service; the sweep per scope size."""
    if not res or not (res.get("rows") or res.get("sweep")):
        return []
    s = res["settings"]
    out = [
        "",
        "## Coalesced polling (coalesce auto / False / True: one list call per interval per service and scope)",
        "",
        f"Poll interval {s['poll_interval']:g} s; jobs end {s['job_end_range'][0]:g}-{s['job_end_range'][1]:g} s "
        f"after submission; trigger starts spread over {s['stagger']:g} s; services {', '.join(s['services'])}. "
        "Calls per wait per poll = (list calls + own reads) ÷ the calls per-job polling needs at least. "
        "Each wait still reads its own job once when it leaves the active list (final status, message, "
        "counters), so the figure cannot go below about 1 ÷ (polls per wait).",
        "",
    ]
    out += ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    out += ["| " + " | ".join(row) + " |" for row in _rows(res["rows"])]
    if res.get("sweep"):
        out += [
            "",
            f"Sweep: K waits per scope (one scope per service: {', '.join(s.get('sweep_services', []))}), "
            "same interval and jobs; the first column is K.",
            "",
            "| " + " | ".join(["K", *HEADER[1:]]) + " |",
            "|" + "---|" * len(HEADER),
        ]
        out += ["| " + " | ".join(row) + " |" for row in _rows(res["sweep"], first="per_scope")]
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
    """The trigger a deferred sensor with ``coalesce=$BENCH_COALESCE`` hands the triggerer."""
    from airflow_jobstatus.triggers.job_status import JobStatusTrigger

    mode = os.environ.get("BENCH_COALESCE", "true")
    coalesce = "auto" if mode == "auto" else mode == "true"
    return JobStatusTrigger(job["service"], job["ref"], poll_interval=job["poll"], coalesce=coalesce)


def standalone(argv: list[str]) -> int:
    """``coalesce.py --alone [--coalesce-… options] [--seed S] [--out-dir D]``: only this measurement,
    with its own simulator process; writes ``coalesce.json`` and ``coalesce.md`` to ``--out-dir``."""
    import tempfile
    import time

    from common import write_json
    from measure import base_env
    from simctl import SimProcess

    p = argparse.ArgumentParser(prog="coalesce.py --alone")
    add_arguments(p)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--seed", type=int, default=8)
    p.add_argument("--out-dir", type=Path, default=HERE / "results")
    p.add_argument("--log-dir", type=Path)
    args = p.parse_args(argv)
    finish_args(args)

    def log(text: str) -> None:
        print(f"[coalesce {time.strftime('%H:%M:%S')}] {text}", flush=True)

    with tempfile.TemporaryDirectory(prefix="bench-home-") as home, SimProcess() as sim:
        res = run_from_args(args, sim, base_env(sim, home), log)
    res["settings"]["load_average_end"] = list(os.getloadavg())
    args.out_dir.mkdir(parents=True, exist_ok=True)
    write_json(args.out_dir / "coalesce.json", res)
    (args.out_dir / "coalesce.md").write_text(
        "\n".join([*section(res), "", *targets(res), ""]), encoding="utf-8"
    )
    print("\n".join(targets(res)))
    return 0


if __name__ == "__main__" and sys.argv[1:2] == ["--alone"]:
    raise SystemExit(standalone(sys.argv[2:]))
if __name__ == "__main__":
    from common import fleet_main
    from fleet import counters, warm_up_for

    fleet_main(make_trigger, warm_up_for(sys.argv[1].split(",")), sys.argv[2:], counters)
