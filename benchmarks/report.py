"""Render the benchmark results as Markdown (benchmarks/results/latest.md)."""

from __future__ import annotations

from typing import Any

from coalesce import section as coalesce_section
from coalesce import targets as coalesce_targets
from watchers import section as watchers_section
from watchers import targets as watchers_targets

TARGET_LAG_P99_MS = 100.0
TARGET_IMPORT_S = 0.150
#: Huawei poll CPU: ours ≤ 1.5x the best maintained client's floor and ≤ 2x the plain-asyncio floor.
TARGET_HUAWEI_VS_CLIENT = 1.5
TARGET_HUAWEI_VS_STREAMS = 2.0
#: RSS per waiting trigger: ours ≤ 1.5x the shared-client floor; the Google provider's ≥ 8x ours.
TARGET_FLOOR_RATIO = 1.5
TARGET_ANCHOR_MEM_RATIO = 8.0
TARGET_ANCHOR_MEM_N = 5000
#: "API calls = the minimum", within rounding (a poll that races the job's end by milliseconds).
CALLS_TOLERANCE = 0.005
#: Connection reads: at most one per connection per TTL (seconds) in one process.
CONNECTION_TTL = 60.0
MAINTAINED_FLOORS = ("cdm-aiohttp-floor", "cdm-httpx-floor")


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
        return [f(r["n"]), r["label"], "FAILED: " + r["failed"].splitlines()[0][:120]] + ["-"] * 13
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
        gc_text(r),
        outcomes + (f"; {r['timed_out']} timed out" if r["timed_out"] else ""),
    ]


def gc_text(r: dict[str, Any]) -> str:
    """Full (generation 2) garbage collections during the run: count, total and longest pause."""
    full = (r.get("gc_pauses") or {}).get("gen2")
    if not full:
        return "-"
    frozen = " (frozen)" if r.get("gc_frozen") else ""
    if r.get("gc_threshold") and r["gc_threshold"] != [700, 10, 10]:
        frozen += f" (thresholds {','.join(str(t) for t in r['gc_threshold'])})"
    return f"{full['count']}, {full['total_ms'] / 1000:.1f} s, max {full['max_ms']:.0f} ms{frozen}"


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
    "full GCs: count, total, max pause",
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


def comparison(pairs: list[dict[str, Any]], other: str = "anchor") -> list[str]:
    rows = []
    for pair in pairs:
        ours, anchor = pair.get("ours", {}), pair.get(other, {})
        n = ours.get("n") or anchor.get("n")
        for name, get, digits in COMPARED:
            a = b = None
            if "failed" not in ours:
                a = get(ours)
            if "failed" not in anchor:
                b = get(anchor)
            ratio = a / b if a is not None and b else None
            rows.append([f(n), name, f(a, digits), f(b, digits), f(ratio, 3)])
        for label, r in (("ours", ours), (other, anchor)):
            if "failed" in r:
                rows.append([f(n), f"{label} FAILED", r["failed"].splitlines()[0][:150], "", ""])
    return table(["N", "metric", "ours", other, f"ours / {other}"], rows)


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


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _spread(values: list[float], digits: int = 2) -> str:
    return (
        f"median {_median(values):.{digits}f} (min {min(values):.{digits}f}, max {max(values):.{digits}f}, "
        f"{len(values)} round{'s' if len(values) != 1 else ''})"
    )


def pollcost_targets(pc: dict[str, Any]) -> list[str]:
    """Huawei poll CPU against the floors, per round (the modes of a round ran back to back)."""
    client_ratios, stream_ratios, grpc_ratios, best_names = [], [], [], []
    for row in pc["rounds"]:
        ours = row.get("cdm-ours")
        floors = {m: row[m] for m in MAINTAINED_FLOORS if row.get(m)}
        if not ours or not floors:
            continue
        best = min(floors, key=lambda m: floors[m])
        best_names.append(best.split("-")[1])
        client_ratios.append(ours / floors[best])
        if row.get("cdm-streams-floor"):
            stream_ratios.append(ours / row["cdm-streams-floor"])
        if row.get("dataproc-ours"):
            grpc_ratios.append(ours / row["dataproc-ours"])
    if not client_ratios:
        return ["- Huawei poll CPU: no complete poll-cost round → NOT met"]
    ms = {m: v["ms_per_poll"]["median"] for m, v in pc["modes"].items()}
    best_name = max(set(best_names), key=best_names.count)
    lines = [
        f"- Huawei poll CPU vs the best maintained client's floor ({best_name}, one shared client): "
        f"ours/floor {_spread(client_ratios)} (target ≤ {TARGET_HUAWEI_VS_CLIENT:g}) → "
        f"{_verdict(_median(client_ratios) <= TARGET_HUAWEI_VS_CLIENT)}"
    ]
    if stream_ratios:
        lines.append(
            f"- Huawei poll CPU vs the plain-asyncio floor (100 keep-alive streams): ours/floor "
            f"{_spread(stream_ratios)} (target ≤ {TARGET_HUAWEI_VS_STREAMS:g}) → "
            f"{_verdict(_median(stream_ratios) <= TARGET_HUAWEI_VS_STREAMS)}"
        )
    detail = ", ".join(f"{m} {f(v, 3)}" for m, v in ms.items() if v is not None)
    lines.append(f"  (CPU ms per poll, median: {detail})")
    if grpc_ratios:
        lines.append(f"  (signed CDM poll / gRPC Dataproc poll, ours: {_spread(grpc_ratios)})")
    return lines


def fleet_targets(res: dict[str, Any]) -> list[str]:
    poll = res["settings"]["poll_interval"]
    lines = []
    for r in res["fleet"]["ours"]:
        if "failed" in r:
            lines.append(f"- N={r['n']}: run failed → NOT met")
            continue
        lag, det = r["loop_lag_ms"]["p99"], r["detection_s"]["p99"]
        all_ok = r["outcomes"] == {"success": r["n"]}
        calls = r["calls_ratio_to_min"]
        ok = (
            all_ok
            and lag is not None
            and lag < TARGET_LAG_P99_MS
            and det is not None
            and det <= poll + 1
            and calls is not None
            and calls <= 1 + CALLS_TOLERANCE
        )
        name = f"{r['n']:,} mixed waits ({len(r['services'])} services) at {poll:g} s"
        if r.get("gc_setting"):
            name += f" with [jobstatus] triggerer_gc_threshold = {r['gc_setting']}"
        else:
            name += ", CPython's default GC"
        lines.append(
            f"- {name}: every wait ended correctly {'yes' if all_ok else 'NO'}; "
            f"loop lag p99 {f(lag, 1)} ms (target < {TARGET_LAG_P99_MS:g}); detection p99 {f(det)} s "
            f"(target ≤ {poll + 1:g}); calls / minimum {f(calls, 3)} (target = 1) → {_verdict(ok)}"
            f" [full GCs {gc_text(r)}]"
        )
    return lines


def memory_targets(res: dict[str, Any]) -> list[str]:
    lines = []
    for pair in res["fleet"].get("floor", []):
        ours, floor = pair.get("ours", {}), pair.get("floor", {})
        if "failed" in ours or "failed" in floor or not floor.get("rss_per_trigger_kib"):
            lines.append("- RSS per waiting trigger vs the shared-client floor: run failed → NOT met")
            continue
        ratio = (ours["rss_per_trigger_kib"] or 0) / floor["rss_per_trigger_kib"]
        lines.append(
            f"- RSS per waiting trigger at N={ours['n']:,} (dataproc): ours {f(ours['rss_per_trigger_kib'], 1)} "
            f"KiB, shared GAPIC client floor {f(floor['rss_per_trigger_kib'], 1)} KiB → {ratio:.2f}x "
            f"(target ≤ {TARGET_FLOOR_RATIO:g}x) → {_verdict(ratio <= TARGET_FLOOR_RATIO)}"
        )
    for pair in res["fleet"]["comparison"]:
        ours, anchor = pair.get("ours", {}), pair.get("anchor", {})
        if "failed" in ours or "failed" in anchor or not anchor:
            continue
        mem = (anchor["rss_per_trigger_kib"] or 0) / (ours["rss_per_trigger_kib"] or float("nan"))
        cpu = anchor["cpu_per_1000_polls"] / ours["cpu_per_1000_polls"]
        target = ours["n"] == TARGET_ANCHOR_MEM_N
        verdict = f" → {_verdict(mem >= TARGET_ANCHOR_MEM_RATIO)}" if target else " (information)"
        lines.append(
            f"- N={ours['n']:,}: the Google provider's RSS per waiting trigger / ours {mem:.2f}x "
            f"(target ≥ {TARGET_ANCHOR_MEM_RATIO:g}x at {TARGET_ANCHOR_MEM_N:,}){verdict}; "
            f"its CPU per poll / ours {cpu:.2f}x"
        )
    return lines


def connection_targets(res: dict[str, Any]) -> list[str]:
    lines = []
    for r in res["fleet"]["ours"]:
        counts = r.get("counters") or {}
        if "failed" in r or not counts:
            continue
        conns = int(any(s in r["services"] for s in ("dataproc", "dataflow", "vertex_ai")))
        conns += int(any(s in r["services"] for s in ("cdm", "dli")))
        allowed = conns * (1 + int(r["wall_seconds"] // CONNECTION_TTL))
        reads = counts.get("google_connection_reads", 0) + counts.get("huawei_connection_reads", 0)
        lines.append(
            f"- Connection reads, N={r['n']:,}: {reads} for {r['n']:,} triggers over {r['wall_seconds']:.0f} s "
            f"(google {counts.get('google_connection_reads', 0)}, huawei "
            f"{counts.get('huawei_connection_reads', 0)}; target ≤ 1 per connection per {CONNECTION_TTL:g} s "
            f"TTL = {allowed}) → {_verdict(reads <= allowed)}"
        )
    return lines


def targets(res: dict[str, Any]) -> list[str]:
    lines = []
    if res.get("pollcost"):
        lines += pollcost_targets(res["pollcost"])
    lines += fleet_targets(res) + memory_targets(res) + connection_targets(res)
    lines += coalesce_targets(res.get("coalesce"))
    lines += watchers_targets(res.get("watchers"))
    imp = res.get("imports", {})
    if "ours" in imp:
        own = imp["ours"]["own_share_median"]
        line = f"- sensors import: own share {own * 1000:.0f} ms (target < {TARGET_IMPORT_S * 1000:.0f} ms)"
        if "anchor" in imp:
            line += f", anchor's own share {imp['anchor']['own_share_median'] * 1000:.0f} ms"
        lines.append(line + f" → {_verdict(own < TARGET_IMPORT_S)}")
    return lines


def pollcost_tables(pc: dict[str, Any]) -> list[str]:
    st = pc["settings"]
    rows = []
    for mode, v in pc["modes"].items():
        ms = v["ms_per_poll"]
        rows.append(
            [
                f"`{mode}`",
                v["what"],
                f(ms["min"], 3),
                f(ms["median"], 3),
                f(ms["max"], 3),
                ", ".join(str(p) for p in v["polls"]),
                ", ".join(str(e) for e in v["errors"]),
            ]
        )
    lines = [
        f"{st['n']:,} pollers per run, each polling its own running job every {st['interval']:g} s; CPU over "
        f"{st['seconds']:g} s after a {st['warm']:g} s warm-up; {st['rounds']} round(s), every mode once per "
        "round in an order rotated per round, each in a fresh process.",
        "",
        *table(["mode", "what", "CPU ms / poll min", "median", "max", "polls", "errors"], rows),
        "",
    ]
    ratio_rows = [
        [name, f(v["min"], 2), f(v["median"], 2), f(v["max"], 2)] for name, v in pc["ratios"].items()
    ]
    return lines + table(["ratio (per round)", "min", "median", "max"], ratio_rows)


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
    if res["fleet"].get("floor"):
        out += ["", "## Ours vs the memory floor (bare waiters on one shared GAPIC client, dataproc)", ""]
        out += comparison(res["fleet"]["floor"], other="floor")
    if res.get("pollcost"):
        out += ["", "## Poll cost: our poll paths vs floors (same run, same simulator)", ""]
        out += pollcost_tables(res["pollcost"])
    out += ["", "## API calls per wait (minimum: one call per poll interval over the job's life)", ""]
    out += calls_table(res)
    out += coalesce_section(res.get("coalesce"))
    out += watchers_section(res.get("watchers"))
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
- Full GCs: generation-2 collections while the fleet ran (`gc.callbacks`); each one walks every live
  object (Airflow's and the SDKs' modules, every waiting trigger's) with the event loop stopped.
- Loop lag: a 50 ms ticker's lateness. Detection latency: trigger event time - the job's terminal
  transition (known from its timeline). Calls / minimum: calls received ÷ calls a perfect poller needs
  (one per poll interval from the trigger's start until the first poll after the job ended).
- Memory floor (`floor.py`): one task per wait polling one shared GAPIC `JobControllerAsyncClient`
  (`get_job`, sleep, repeat), no hook, trigger, wait rules or logging: what a Dataproc wait cannot do
  with less. Poll cost (`pollcost.py`, `floors.py`): the floors sign by hand (hashlib/hmac), send on
  one shared client (aiohttp, httpx) or 100 keep-alive asyncio streams, and `json.loads` the answer;
  the simulator verifies every signature.
- Anchor: apache-airflow-providers-google's `DataprocSubmitTrigger` / `DataflowJobStatusTrigger` /
  `DataprocJobSensor`; only their gRPC channel creation (plaintext to the simulator) and the connection
  (`is_anonymous`) differ from production. Their client-per-trigger (Dataproc) and client-per-poll
  (Dataflow) behaviour is kept. Both sides log at INFO to a file.
"""
