"""Render the benchmark results as Markdown (benchmarks/results/latest.md)."""

from __future__ import annotations

from typing import Any

TARGET_LAG_P99_MS = 100.0
TARGET_IMPORT_S = 0.150
TARGET_CPU_RATIO = 3.0
TARGET_MEM_RATIO = 5.0


def f(value: Any, digits: int = 2) -> str:
    """A number with ``digits`` decimals, or a dash."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def environment(res: dict[str, Any]) -> list[str]:
    env, s = res["environment"], res["settings"]
    ours = ", ".join(f"{k} {v}" for k, v in env["ours"].items())
    lines = [
        f"- Date: {env['date']}; {env['cpu_count']} cores; Python {env['python']}; {env['platform']}",
        f"- Ours: {ours}",
    ]
    if "anchor" in env:
        lines.append("- Anchor venv: " + ", ".join(f"{k} {v}" for k, v in env["anchor"].items()))
    lines += [
        f"- Load average at start / end: {f(env['load_average_start'][0])} / "
        f"{f(env.get('load_average_end', [None])[0])} (other work on the machine adds noise to wall figures)",
        f"- Poll interval {s['poll_interval']:g} s; jobs end {s['job_end_range'][0]:g}-{s['job_end_range'][1]:g} s "
        f"after submission; trigger starts spread over {s['stagger']:g} s; seed {s['seed']}"
        + (" (**--quick**)" if s["quick"] else ""),
    ]
    return lines


def fleet_row(r: dict[str, Any]) -> list[str]:
    if "failed" in r:
        return [f(r["n"]), r["label"], "FAILED: " + r["failed"].splitlines()[0][:120]] + ["-"] * 12
    lag, det = r["loop_lag_ms"], r["detection_s"]
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(r["outcomes"].items()))
    return [
        f(r["n"]),
        "+".join(r["services"]),
        f(r["polls"]),
        f(r["cpu_per_1000_polls"], 3),
        f(r.get("cpu_per_1000_polls_net"), 3),
        f(r.get("cpu_per_1000_polls_steady"), 3),
        f(r["rss_baseline_mib"], 0),
        f(r["rss_peak_mib"], 0),
        f(r["rss_per_trigger_kib"], 1),
        f(lag["p99"], 1),
        f(lag["max"], 1),
        f(det["p50"]),
        f(det["p99"]),
        f(r["calls_ratio_to_min"]),
        outcomes + (f"; {r['timed_out']} timed out" if r["timed_out"] else ""),
    ]


FLEET_HEADER = [
    "N",
    "services",
    "polls",
    "CPU s / 1,000 polls",
    "... net of idle",
    "... steady state",
    "RSS base MiB",
    "RSS peak MiB",
    "RSS / waiting trigger KiB",
    "loop lag p99 ms",
    "loop lag max ms",
    "detection p50 s",
    "detection p99 s",
    "calls / minimum",
    "outcomes",
]

COMPARED = [
    ("CPU s / 1,000 polls", lambda r: r["cpu_per_1000_polls"], 3),
    ("CPU s / 1,000 polls, net of idle", lambda r: r.get("cpu_per_1000_polls_net"), 3),
    ("CPU s / 1,000 polls, steady state", lambda r: r.get("cpu_per_1000_polls_steady"), 3),
    ("RSS / waiting trigger KiB", lambda r: r["rss_per_trigger_kib"], 1),
    ("RSS peak MiB", lambda r: r["rss_peak_mib"], 0),
    ("loop lag p99 ms", lambda r: r["loop_lag_ms"]["p99"], 1),
    ("loop lag max ms", lambda r: r["loop_lag_ms"]["max"], 1),
    ("detection p50 s", lambda r: r["detection_s"]["p50"], 2),
    ("detection p99 s", lambda r: r["detection_s"]["p99"], 2),
    ("API calls / wait", lambda r: r["polls"] / r["n"], 2),
    ("calls / minimum", lambda r: r["calls_ratio_to_min"], 2),
]


def comparison(pairs: list[dict[str, Any]]) -> list[str]:
    rows = []
    for pair in pairs:
        ours, anchor = pair.get("ours", {}), pair.get("anchor", {})
        n = ours.get("n") or anchor.get("n")
        for name, get, digits in COMPARED:
            a = b = None
            if "failed" not in ours:
                a = get(ours)
            if "failed" not in anchor:
                b = get(anchor)
            ratio = a / b if a is not None and b else None
            rows.append([f(n), name, f(a, digits), f(b, digits), f(ratio, 3)])
        for label, r in (("ours", ours), ("anchor", anchor)):
            if "failed" in r:
                rows.append([f(n), f"{label} FAILED", r["failed"].splitlines()[0][:150], "", ""])
    return table(["N", "metric", "ours", "anchor", "ours / anchor"], rows)


def calls_table(res: dict[str, Any]) -> list[str]:
    rows = []
    runs = [r for r in res["fleet"]["ours"] if "failed" not in r]
    runs += [p[k] for p in res["fleet"]["comparison"] for k in ("anchor",) if k in p and "failed" not in p[k]]
    for r in runs:
        for service, c in sorted(r["calls_per_service"].items()):
            rows.append(
                [
                    r["label"],
                    f(r["n"]),
                    service,
                    f(c["calls_per_wait"]),
                    f(c["min_calls"] / c["jobs"]),
                    f(c["ratio_to_min"]),
                ]
            )
    return table(["runner", "N", "service", "calls / wait", "minimum / wait", "ratio"], rows)


def poke_table(poke: dict[str, Any]) -> list[str]:
    rows = [[name, f(v["wall"] * 1000, 2), f(v["cpu"] * 1000, 2)] for name, v in poke.items()]
    return table(["poke", "wall ms", "CPU ms"], rows)


def import_table(imp: dict[str, Any]) -> list[str]:
    rows = []
    for key in ("ours", "anchor"):
        if key in imp:
            m = imp[key]
            rows.append(
                [
                    f"`{m['module']}`",
                    f(m["total_median"] * 1000, 0),
                    f(m["baseline_median"] * 1000, 0),
                    f(m["own_share_median"] * 1000, 0),
                    f(m["runs"]),
                ]
            )
    lines = table(["module", "cold import ms", "`airflow.sdk` alone ms", "own share ms", "runs"], rows)
    for key in ("ours_offenders", "anchor_offenders"):
        if imp.get(key):
            lines += [
                "",
                f"Largest imports of the {key.split('_')[0]} module after `airflow.sdk` (-X importtime):",
                "",
            ]
            lines += table(
                ["module", "cumulative ms", "self ms"],
                [
                    [("  " * o["depth"]) + o["module"], f(o["cumulative_ms"], 1), f(o["self_ms"], 1)]
                    for o in imp[key][:8]
                ],
            )
    return lines


def targets(res: dict[str, Any]) -> list[str]:
    poll = res["settings"]["poll_interval"]
    lines = []
    for r in res["fleet"]["ours"]:
        if "failed" in r:
            lines.append(f"- N={r['n']}: run failed")
            continue
        lag, det = r["loop_lag_ms"]["p99"], r["detection_s"]["p99"]
        ok = lag is not None and lag < TARGET_LAG_P99_MS and det is not None and det < poll + 1
        lines.append(
            f"- N={r['n']} at {poll:g} s: loop lag p99 {f(lag, 1)} ms (target < {TARGET_LAG_P99_MS:g}), "
            f"detection p99 {f(det)} s (target < {poll + 1:g}) → {'met' if ok else 'NOT met'}"
        )
    for pair in res["fleet"]["comparison"]:
        ours, anchor = pair.get("ours", {}), pair.get("anchor", {})
        if "failed" in ours or "failed" in anchor or not anchor:
            continue
        cpu = anchor["cpu_per_1000_polls"] / ours["cpu_per_1000_polls"]
        mem = (anchor["rss_per_trigger_kib"] or 0) / (ours["rss_per_trigger_kib"] or float("nan"))
        lines.append(
            f"- N={ours['n']}: anchor/ours CPU per poll {cpu:.2f}x (target ≥ {TARGET_CPU_RATIO:g}x), "
            f"memory per waiting trigger {mem:.2f}x (target ≥ {TARGET_MEM_RATIO:g}x)"
        )
    imp = res.get("imports", {})
    if "ours" in imp:
        own = imp["ours"]["own_share_median"]
        line = f"- sensors import: own share {own * 1000:.0f} ms (target < {TARGET_IMPORT_S * 1000:.0f} ms)"
        if "anchor" in imp:
            line += f", anchor's own share {imp['anchor']['own_share_median'] * 1000:.0f} ms"
        lines.append(line)
    return lines


def render(res: dict[str, Any]) -> str:
    out = ["# airflow-jobstatus benchmarks", "", *environment(res), "", "## Targets", "", *targets(res)]
    out += [
        "",
        "## Trigger fleet (ours, mixed services)",
        "",
        *table(FLEET_HEADER, [fleet_row(r) for r in res["fleet"]["ours"]]),
    ]
    if res["fleet"]["comparison"]:
        out += ["", "## Ours vs the Google provider's triggers (same jobs, dataproc + dataflow)", ""]
        out += comparison(res["fleet"]["comparison"])
    out += ["", "## API calls per wait (minimum: one call per poll interval over the job's life)", ""]
    out += calls_table(res)
    if "poke" in res:
        out += [
            "",
            "## Poke cost (sync, reused hook; the provider's sensor as it is)",
            "",
            *poke_table(res["poke"]),
        ]
    if "imports" in res:
        out += ["", "## Import cost (fresh interpreters, median)", "", *import_table(res["imports"])]
    out += ["", NOTES]
    return "\n".join(out) + "\n"


NOTES = """## How these are measured

- Each fleet runs in a fresh process; the simulator runs in another process (its CPU is not counted).
  Triggers are driven as the triggerer drives them: `run()` iterated as one task each on one event loop
  until its first event. Before measuring, one trigger per service runs to completion (imports, clients).
- CPU per 1,000 polls: the runner's user+system CPU from the first trigger start to the last event,
  divided by the API calls the simulator received for the fleet's jobs. "Net of idle" first subtracts
  the process's idle CPU rate (ticker, gRPC/SDK threads; measured for 2 s before the fleet starts)
  times the run's wall time; it matters only for small N. "Steady state" counts only the window in
  which every trigger is past its first poll and no job has ended yet (CPU sampled every 0.5 s, calls
  by request time at the simulator): the cost of one more poll, without trigger set-up and teardown.
- RSS per waiting trigger: (largest RSS sample while all triggers wait, before the first event - RSS
  before the first trigger) / N.
- Loop lag: a 50 ms ticker's lateness. Detection latency: trigger event time - the job's terminal
  transition (known from its timeline). Calls / minimum: calls received ÷ calls a perfect poller needs
  (one per poll interval from the trigger's start until the first poll after the job ended).
- Anchor: apache-airflow-providers-google's `DataprocSubmitTrigger` / `DataflowJobStatusTrigger` /
  `DataprocJobSensor`; only their gRPC channel creation (plaintext to the simulator) and the connection
  (`is_anonymous`) differ from production. Their client-per-trigger (Dataproc) and client-per-poll
  (Dataflow) behaviour is kept. Both sides log at INFO to a file.
"""
