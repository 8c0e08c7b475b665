"""Asset watchers at scale: N ``JobEventTrigger`` watchers over S scopes in one triggerer-like loop.

As a runner (a fresh process): ``watchers.py CONFIG READY RESULT`` builds the watchers and drives
Airflow 3.3's own ``SharedStreamManager`` (airflow/triggers/shared_stream.py) exactly as the
triggerer's ``TriggerRunner.run_trigger`` does: ``subscribe`` per watcher under its
``shared_stream_key``, ``filter_shared_stream`` over that stream, ``bind_pending_event`` for every
event it yields, and ``confirm_persisted`` for them once a second (the triggerer's state sync). Each
watcher gets an in-memory asset state store. It writes READY after two intervals, runs for the
configured seconds, then writes every event (watcher, dedupe key, wall time) and its CPU and loop lag.

As a library (``run_from_args``): the orchestrator adds the jobs to the simulator (its own process)
once the runner is READY: per scope one job per label value plus unlabelled ones, ending over the
configured range; then scores detection latency (event time - the job's end), misses, duplicates
and the first-page list calls per scope per interval from the simulator's list-call log.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import LoopSampler, cpu_seconds, summary, wait_for_file, write_json  # noqa: E402

#: Detection target: an end is reported within the poll interval plus this many seconds.
DETECTION_SLACK = 1.0
TARGET_N = 1000
#: The scopes: Dataflow locations and Dataproc regions (one list call each per interval).
SCOPES = tuple(("dataflow", f"bench-df-{i}") for i in range(5)) + tuple(
    ("dataproc", f"bench-dp-{i}") for i in range(5)
)
#: Label values per scope (watcher i of a scope filters team=t<i % LABELS>).
LABELS = 20
#: Unlabelled jobs per scope: listed by every poll, reported by no watcher.
UNMATCHED_PER_SCOPE = 5
DONE = {"dataflow": "JOB_STATE_DONE", "dataproc": "DONE"}
RUNNING = {"dataflow": "JOB_STATE_RUNNING", "dataproc": "RUNNING"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--watchers-n", help="watcher counts (default 1000; quick: 200; 'none' skips)")
    p.add_argument("--watchers-poll", type=float, help="their poll interval in seconds (default 5; quick: 2)")
    p.add_argument("--watchers-end", help="their jobs' end range 'min,max' s after READY (default 10,40)")


def finish_args(args: argparse.Namespace) -> None:
    quick = args.quick
    text = args.watchers_n or ("200" if quick else "1000")
    args.watchers_n = [] if text == "none" else [int(x) for x in text.split(",") if x.strip()]
    args.watchers_poll = args.watchers_poll or (2.0 if quick else 5.0)
    lo, hi = (float(x) for x in (args.watchers_end or ("4,12" if quick else "10,40")).split(","))
    args.watchers_end = (lo, hi)


# -- the plan ---------------------------------------------------------------------------------------------
def watcher_kwargs(i: int, poll: float) -> dict[str, Any]:
    """Watcher ``i``: scope ``i % len(SCOPES)``, label team=t<(i // len(SCOPES)) % LABELS>."""
    service, place = SCOPES[i % len(SCOPES)]
    where = {"location": place} if service == "dataflow" else {"region": place}
    label = f"t{(i // len(SCOPES)) % LABELS}"
    return {"service": service, "gcp_conn_id": "google_cloud_default", "labels": {"team": label},
            "poll_interval": poll, **where}  # fmt: skip


def labels_in_use(n: int) -> int:
    return min(LABELS, max(1, math.ceil(n / len(SCOPES))))


def job_plan(n: int, end_range: tuple[float, float], seed: int) -> list[dict[str, Any]]:
    """Per scope: one job per label value in use and UNMATCHED_PER_SCOPE unlabelled, ending in range."""
    import random

    rng = random.Random(seed)
    jobs = []
    for s, (service, place) in enumerate(SCOPES):
        where_key = "location" if service == "dataflow" else "region"
        for k in range(labels_in_use(n) + UNMATCHED_PER_SCOPE):
            label = f"t{k}" if k < labels_in_use(n) else None
            end_after = rng.uniform(*end_range)
            job_id = f"bench-watch-{s:02d}-{k:03d}"
            meta = {"labels": {"team": label} if label else {"team": "nobody"}}
            jobs.append(
                {
                    "key": f"{service}:{job_id}",
                    "service": service,
                    "job_id": job_id,
                    "scope": s,
                    "label": label,
                    "end_after": end_after,
                    "timeline": [
                        {"state": RUNNING[service], "duration": end_after},
                        {"state": DONE[service]},
                    ],
                    "where": {where_key: place, "meta": meta},
                }
            )
    return jobs


def expected_pairs(n: int, jobs: list[dict[str, Any]]) -> dict[tuple[int, str], str]:
    """(watcher, dedupe key) → job key for every report the plan must produce."""
    by_scope_label: dict[tuple[int, str], list[int]] = {}
    for i in range(n):
        label = watcher_kwargs(i, 1.0)["labels"]["team"]
        by_scope_label.setdefault((i % len(SCOPES), label), []).append(i)
    out = {}
    for job in jobs:
        for i in by_scope_label.get((job["scope"], job["label"] or ""), []):
            out[(i, f"{job['service']}:{job['job_id']}:SUCCEEDED")] = job["key"]
    return out


# -- the runner (a fresh process) ------------------------------------------------------------------------
class MemoryStore:
    """An asset state store's accessor in memory (``aget``/``aset``), as the trigger uses it."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    async def aget(self, key: str) -> Any:
        return self.data.get(key)

    async def aset(self, key: str, value: Any) -> None:
        self.data[key] = value


async def drive(config: dict[str, Any], ready: Path) -> dict[str, Any]:
    """Run the watchers through the real SharedStreamManager for ``config['seconds']`` after READY."""
    from airflow.triggers.shared_stream import SharedStreamManager

    from airflow_jobstatus.triggers.job_events import JobEventTrigger

    n, poll = config["n"], config["poll"]
    manager = SharedStreamManager()
    events: list[tuple[int, str, float]] = []
    to_confirm: list[int] = []
    errors: list[str] = []
    triggers = []
    for i in range(n):
        trigger = JobEventTrigger(**watcher_kwargs(i, poll))
        trigger.trigger_id = i
        trigger.asset_state_store = MemoryStore()
        triggers.append(trigger)

    async def run_one(i: int, trigger: Any) -> None:  # TriggerRunner.run_trigger's shared path
        key = trigger.shared_stream_key()
        stream = manager.subscribe(trigger_id=i, trigger=trigger, key=key)
        try:
            async for event in trigger.filter_shared_stream(stream):
                seq = manager.bind_pending_event(trigger_id=i, key=key)
                events.append((i, str(event.payload["dedupe_key"]), time.time()))
                if seq is not None:
                    to_confirm.append(seq)
        except Exception as err:  # a watcher that ended: counted, not hidden
            errors.append(f"{i}: {type(err).__name__}: {err}")
        finally:
            await manager.unsubscribe(i, key)

    async def confirm(stop: asyncio.Event) -> None:  # the supervisor's persist confirmations
        while not stop.is_set():
            await asyncio.sleep(1.0)
            if to_confirm:
                seqs = to_confirm[:]
                to_confirm.clear()
                manager.confirm_persisted(seqs)

    stop = asyncio.Event()
    sampler = LoopSampler()
    tasks = [asyncio.create_task(run_one(i, t)) for i, t in enumerate(triggers)]
    helpers = [asyncio.create_task(confirm(stop)), asyncio.create_task(sampler.run(stop))]
    keys = {t.shared_stream_key() for t in triggers}
    await asyncio.sleep(2 * poll + 1.0)  # every group past its first list (SDK imported, channel up)
    start_wall, start_cpu = time.time(), cpu_seconds()
    lags_from = len(sampler.lags)
    write_json(ready, {"ready_at": start_wall})
    await asyncio.sleep(config["seconds"])
    end_wall, end_cpu = time.time(), cpu_seconds()
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, *helpers, return_exceptions=True)
    await manager.stop_all()
    return {
        "events": events,
        "errors": errors[:20],
        "error_count": len(errors),
        "groups": len(keys),
        "window": [start_wall, end_wall],
        "cpu_seconds": end_cpu - start_cpu,
        "loop_lag_ms": summary([x * 1000 for x in sampler.lags[lags_from:]]),
    }


def runner_main(argv: list[str]) -> int:
    config_path, ready, result = (Path(a) for a in argv)
    config = json.loads(config_path.read_text())
    write_json(result, asyncio.run(drive(config, ready)))
    return 0


# -- the orchestrator side --------------------------------------------------------------------------------
def first_page_calls(sim: Any, start: float, end: float) -> dict[str, int]:
    """First-page list calls per scope in [start, end), from the simulator's list-call log."""
    calls = sim.request("list_calls", start=start, end=end)["calls"]
    places = {place for _, place in SCOPES}
    out: Counter[str] = Counter()
    for call in calls:
        place = next((p for p in places if p in call["scope"]), None)
        if place is not None and call.get("first_page"):
            out[place] += 1
    return dict(out)


def run_one_n(
    sim: Any, env: dict[str, str], n: int, poll: float, end_range: tuple[float, float], seed: int
) -> dict[str, Any]:
    sim.reset()
    seconds = end_range[1] + 3 * poll + 5.0
    jobs = job_plan(n, end_range, seed)
    with tempfile.TemporaryDirectory(prefix="bench-watchers-") as tmp:
        config, ready, result = Path(tmp) / "config.json", Path(tmp) / "ready.json", Path(tmp) / "result.json"
        config.write_text(json.dumps({"n": n, "poll": poll, "seconds": seconds}))
        log_file = Path(tmp) / "runner.log"
        with log_file.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, str(HERE / "watchers.py"), str(config), str(ready), str(result)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_for_file(ready, 300)
            created = sim.add_jobs(jobs)
            proc.wait(seconds + 300)
            if proc.returncode:
                raise RuntimeError(f"runner exited {proc.returncode}:\n{log_file.read_text()[-3000:]}")
            res = json.loads(result.read_text())
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    ended = {j["key"]: created[j["key"]] + j["end_after"] for j in jobs}
    expected = expected_pairs(n, jobs)
    fired = Counter((i, key) for i, key, _ in res["events"])
    first: dict[tuple[int, str], float] = {}
    for i, key, at in res["events"]:
        first.setdefault((i, key), at)
    latencies = [first[pair] - ended[job] for pair, job in expected.items() if pair in first]
    start, end = res["window"]
    intervals = (end - start) / poll
    per_scope = first_page_calls(sim, start, end)
    return {
        "n": n,
        "scopes": len(SCOPES),
        "groups": res["groups"],
        "poll_interval": poll,
        "window_s": round(end - start, 1),
        "intervals": round(intervals, 1),
        "jobs": len(jobs),
        "expected_events": len(expected),
        "events": len(res["events"]),
        "misses": sum(1 for pair in expected if pair not in fired),
        "duplicates": sum(c - 1 for c in fired.values() if c > 1),
        "unexpected": sum(1 for pair in fired if pair not in expected),
        "watcher_errors": res["error_count"],
        "error_sample": res["errors"][:3],
        "list_calls_per_scope": per_scope,
        "list_calls_per_interval": round(sum(per_scope.values()) / intervals, 2) if intervals else None,
        "list_calls_per_scope_per_interval": round(sum(per_scope.values()) / intervals / len(SCOPES), 3)
        if intervals
        else None,
        "cpu_seconds": round(res["cpu_seconds"], 2),
        "cpu_per_interval_s": round(res["cpu_seconds"] / intervals, 4) if intervals else None,
        "detection_s": summary(latencies),
        "loop_lag_ms": res["loop_lag_ms"],
    }


def run_from_args(args: argparse.Namespace, sim: Any, env: dict[str, str], log: Callable[[str], None]) -> Any:
    rows = []
    for n in args.watchers_n:
        log(f"asset watchers: N={n} over {len(SCOPES)} scopes, poll {args.watchers_poll:g} s")
        try:
            row = run_one_n(sim, env, n, args.watchers_poll, args.watchers_end, args.seed)
        except (RuntimeError, TimeoutError, KeyError) as err:
            row = {"n": n, "failed": f"{type(err).__name__}: {err}"}
        rows.append(row)
        log(f"  → {summary_line(row)}")
    settings = {
        "n": args.watchers_n,
        "poll_interval": args.watchers_poll,
        "job_end_range": list(args.watchers_end),
    }
    return {"settings": settings, "rows": rows}


def _num(value: Any, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def summary_line(row: dict[str, Any]) -> str:
    if "failed" in row:
        return f"FAILED: {row['failed'][:300]}"
    return (
        f"groups={row['groups']} list calls/scope/interval={_num(row['list_calls_per_scope_per_interval'], 3)} "
        f"cpu/interval={_num(row['cpu_per_interval_s'], 4)}s detect p99={_num(row['detection_s']['p99'])}s "
        f"events={row['events']}/{row['expected_events']} misses={row['misses']} dups={row['duplicates']}"
    )


def verdict(row: dict[str, Any]) -> tuple[bool, str]:
    if "failed" in row:
        return False, "run failed"
    poll = row["poll_interval"]
    p99 = row["detection_s"]["p99"]
    ok = (
        p99 is not None
        and p99 <= poll + DETECTION_SLACK
        and row["misses"] == 0
        and row["duplicates"] == 0
        and row["unexpected"] == 0
        and (row["list_calls_per_scope_per_interval"] or 0) <= 1.1
    )
    text = (
        f"{row['n']:,} watchers / {row['scopes']} scopes: {_num(row['list_calls_per_scope_per_interval'], 3)} "
        f"list calls per scope per interval, CPU {_num(row['cpu_per_interval_s'], 4)} s per interval, detection "
        f"p99 {_num(p99)} s (≤ {poll + DETECTION_SLACK:g} s), misses {row['misses']}, duplicates {row['duplicates']}"
    )
    return ok, text


def targets(res: dict[str, Any] | None) -> list[str]:
    if not res or not res.get("rows"):
        return []
    lines = []
    for row in res["rows"]:
        ok, text = verdict(row)
        lines.append(f"- asset watchers: {text} → {'met' if ok else 'NOT met'}")
    if not any(r.get("n") == TARGET_N and "failed" not in r for r in res["rows"]):
        lines.append(f"- asset watchers at N={TARGET_N:,}: not measured in this run → NOT met")
    return lines


def section(res: dict[str, Any] | None) -> list[str]:
    if not res or not res.get("rows"):
        return []
    s = res["settings"]
    out = [
        "",
        "## Asset watchers (JobEventTrigger through Airflow's SharedStreamManager)",
        "",
        f"Poll interval {s['poll_interval']:g} s; {len(SCOPES)} scopes (5 Dataflow locations, 5 Dataproc "
        f"regions); jobs end {s['job_end_range'][0]:g}-{s['job_end_range'][1]:g} s after the runner is ready. "
        "One process drives Airflow 3.3's SharedStreamManager as the triggerer does (subscribe, "
        "filter_shared_stream, bind_pending_event, confirm_persisted once a second). Detection = event "
        "time - the job's end in the simulator.",
        "",
    ]
    header = ["N", "groups", "list calls/scope/interval", "CPU s/interval", "events", "misses", "dups"]
    header += ["detect p50 s", "detect p99 s", "lag p99 ms"]
    rows = []
    for r in res["rows"]:
        if "failed" in r:
            rows.append([str(r["n"]), "FAILED: " + r["failed"].splitlines()[0][:100]] + ["-"] * 8)
            continue
        rows.append(
            [
                f"{r['n']:,}",
                str(r["groups"]),
                _num(r["list_calls_per_scope_per_interval"], 3),
                _num(r["cpu_per_interval_s"], 4),
                f"{r['events']}/{r['expected_events']}",
                str(r["misses"]),
                str(r["duplicates"]),
                _num(r["detection_s"]["p50"]),
                _num(r["detection_s"]["p99"]),
                _num(r["loop_lag_ms"]["p99"], 1),
            ]
        )
    out += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return out


if __name__ == "__main__":
    sys.exit(runner_main(sys.argv[1:]))
