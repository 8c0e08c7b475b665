"""`make bench`: trigger fleet, ours vs the Google provider, poke cost, import cost → benchmarks/results/.

Run with the project's venv: ``.venv/bin/python benchmarks/run.py [--quick] [--n 100,1000,5000]``.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import coalesce  # noqa: E402
import imports  # noqa: E402
import pollcost  # noqa: E402
import watchers  # noqa: E402
from common import write_json  # noqa: E402
from measure import base_env, run_fleet  # noqa: E402
from plan import REGION  # noqa: E402
from report import render, targets  # noqa: E402
from simctl import SimProcess  # noqa: E402

from airflow_jobstatus.wait.gc import RECOMMENDED as GC_SETTING  # noqa: E402

ANCHOR_VENV = HERE / ".venv-anchor"
ANCHOR_PY = ANCHOR_VENV / "bin" / "python"
ANCHOR_SERVICES = ("dataproc", "dataflow")
OURS_VERSIONS = (
    "apache-airflow",
    "google-cloud-dataproc",
    "google-cloud-dataflow-client",
    "grpcio",
    "protobuf",
    "aiohttp",
)
ANCHOR_VERSIONS = (
    "apache-airflow",
    "apache-airflow-providers-google",
    "google-cloud-dataproc",
    "grpcio",
    "protobuf",
)
ANCHOR_REQUIREMENTS = (
    "apache-airflow==3.3.2",
    "apache-airflow-providers-google[apache-beam]",  # its Dataflow hook imports the Beam provider
    "google-cloud-dataproc>=5.32",
    "google-cloud-dataflow-client>=0.14.1",
    "huaweicloudsdkcdm>=3.1.219",
    "huaweicloudsdkdli>=3.1.219",
    "grpcio>=1.85",
    "aiohttp>=3.10",
)


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="small N, 2 s polls, short jobs (about 2 minutes)")
    p.add_argument("--n", type=ints, help="fleet sizes for our mixed fleet (default 100,1000,5000,10000)")
    p.add_argument("--anchor-n", type=ints, help="fleet sizes for ours vs anchor (default 1000,5000)")
    p.add_argument("--poll", type=float, help="poll interval in seconds (default 10)")
    p.add_argument("--end", help="job end time range after submission, 'min,max' seconds (default 30,60)")
    p.add_argument("--stagger", type=float, help="spread of trigger starts in seconds (default: the poll)")
    p.add_argument("--services", help="our fleet's services (default dataproc,dataflow,cdm,dli[,vertex_ai])")
    p.add_argument("--seed", type=int, default=8)
    p.add_argument("--poke-count", type=int, help="pokes timed per service (default 200)")
    p.add_argument("--import-runs", type=int, help="fresh interpreters per import figure (default 7)")
    p.add_argument("--floor-n", type=ints, help="fleet sizes for ours vs the memory floor (default 2000)")
    p.add_argument("--pollcost-n", type=int, help="pollers per poll-cost run (default 1000)")
    p.add_argument("--pollcost-rounds", type=int, help="rounds of every poll-cost mode (default 4)")
    p.add_argument("--pollcost-seconds", type=float, help="measured seconds per poll-cost run (default 10)")
    p.add_argument("--pollcost-warm", type=float, help="warm-up seconds per poll-cost run (default 5.5)")
    p.add_argument(
        "--pollcost-modes", help=f"poll-cost modes (default all: {','.join(pollcost.DEFAULT_MODES)})"
    )
    p.add_argument("--no-pollcost", action="store_true", help="skip the poll-cost comparison")
    p.add_argument(
        "--gc-freeze",
        action="store_true",
        help="runners call gc.freeze() after warm-up (not what a triggerer does: for comparison)",
    )
    p.add_argument(
        "--gc-threshold",
        help="runners call gc.set_threshold(G0,G1,G2) after warm-up, e.g. 50000,20,100 (for comparison)",
    )
    p.add_argument(
        "--gc-setting-n",
        type=ints,
        help="our mixed fleet again at these sizes with [jobstatus] triggerer_gc_threshold set "
        "(default 10000; quick: none)",
    )
    p.add_argument("--no-anchor", action="store_true", help="skip everything that needs the anchor venv")
    p.add_argument("--no-poke", action="store_true")
    p.add_argument("--no-imports", action="store_true")
    p.add_argument("--out-dir", type=Path, default=HERE / "results")
    p.add_argument("--log-dir", type=Path, help="keep each fleet runner's log there (default: discarded)")
    coalesce.add_arguments(p)
    watchers.add_arguments(p)
    args = p.parse_args(argv)
    coalesce.finish_args(args)
    watchers.finish_args(args)
    quick = args.quick
    if args.n is None:
        args.n = [20, 100] if quick else [100, 1000, 5000, 10000]
    args.anchor_n = args.anchor_n if args.anchor_n is not None else ([100] if quick else [1000, 5000])
    args.floor_n = args.floor_n if args.floor_n is not None else ([100] if quick else [2000])
    args.gc_setting_n = args.gc_setting_n if args.gc_setting_n is not None else ([] if quick else [10000])
    args.pollcost_n = args.pollcost_n or (200 if quick else 1000)
    args.pollcost_rounds = args.pollcost_rounds or (1 if quick else 4)
    args.pollcost_seconds = args.pollcost_seconds or (5.0 if quick else 10.0)
    args.pollcost_warm = args.pollcost_warm or (3.0 if quick else 5.5)
    modes = args.pollcost_modes.split(",") if args.pollcost_modes else pollcost.DEFAULT_MODES
    unknown = [m for m in modes if m not in pollcost.MODES]
    if unknown:
        p.error(f"unknown poll-cost modes {unknown}; choose from {', '.join(pollcost.MODES)}")
    args.pollcost_modes = tuple(modes)
    args.poll = args.poll or (2.0 if quick else 10.0)
    lo, hi = (float(x) for x in (args.end or ("10,16" if quick else "30,60")).split(","))
    args.end = (lo, hi)
    args.stagger = args.poll if args.stagger is None else args.stagger
    args.poke_count = args.poke_count or (50 if quick else 200)
    args.import_runs = args.import_runs or (3 if quick else 7)
    default = ["dataproc", "dataflow", "cdm", "dli"]
    if importlib.util.find_spec("google.cloud.aiplatform_v1"):
        default.insert(2, "vertex_ai")
    args.services = tuple(args.services.split(",")) if args.services else tuple(default)
    return args


def ensure_anchor_venv() -> bool:
    """Create benchmarks/.venv-anchor with uv when missing; False when that is not possible."""
    if ANCHOR_PY.exists():
        return True
    uv = Path(sys.executable).parent / "uv"
    print(f"creating {ANCHOR_VENV} (apache-airflow-providers-google) with uv …", flush=True)
    try:
        subprocess.run([str(uv), "venv", str(ANCHOR_VENV), "--python", sys.executable, "-q"], check=True)
        subprocess.run(
            [str(uv), "pip", "install", "-q", "--python", str(ANCHOR_PY), *ANCHOR_REQUIREMENTS], check=True
        )
    except (OSError, subprocess.CalledProcessError) as err:
        print(f"cannot create the anchor venv: {err}", file=sys.stderr)
        return False
    return True


def versions(python: str, names: tuple[str, ...]) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json, sys\n"
        f"print(json.dumps({{n: m.version(n) for n in {list(names)!r}}}))"
    )
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def environment(anchor: bool) -> dict[str, Any]:
    env: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_start": os.getloadavg(),
        "ours": versions(sys.executable, (*OURS_VERSIONS, "airflow-jobstatus")),
    }
    if anchor:
        env["anchor"] = versions(str(ANCHOR_PY), ANCHOR_VERSIONS)
    return env


def log(text: str) -> None:
    print(f"[bench {datetime.datetime.now():%H:%M:%S}] {text}", flush=True)


def fleets(args: argparse.Namespace, sim: SimProcess, env: dict[str, str], anchor: bool) -> dict[str, Any]:
    ours_runner = [sys.executable, str(HERE / "fleet.py")]
    anchor_runner = [str(ANCHOR_PY), str(HERE / "anchor.py"), "fleet"]
    common = {
        "poll": args.poll,
        "end_range": args.end,
        "stagger": args.stagger,
        "seed": args.seed,
        "log_dir": args.log_dir,
    }
    out: dict[str, Any] = {"ours": [], "comparison": [], "floor": []}
    gc_env = {**env, "AIRFLOW__JOBSTATUS__TRIGGERER_GC_THRESHOLD": GC_SETTING}
    plain = [(n, env, None) for n in args.n]
    for n, fleet_env, setting in plain + [(n, gc_env, GC_SETTING) for n in args.gc_setting_n]:
        suffix = f", [jobstatus] triggerer_gc_threshold={setting}" if setting else ""
        log(f"our fleet: N={n} over {','.join(args.services)}{suffix}")
        try:
            row = run_fleet(sim, ours_runner, fleet_env, n=n, services=args.services, label="ours", **common)
        except RuntimeError as err:
            row = {"label": "ours", "n": n, "failed": str(err)}
        if setting:
            row["gc_setting"] = setting
        out["ours"].append(row)
        log(f"  → {summary_line(row)}")
    for n in args.anchor_n if anchor else []:
        pair = {}
        for label, runner in (("ours", ours_runner), ("anchor", anchor_runner)):
            log(f"comparison: {label} N={n} over dataproc,dataflow")
            try:
                pair[label] = run_fleet(
                    sim, runner, env, n=n, services=ANCHOR_SERVICES, label=label, **common
                )
            except RuntimeError as err:
                pair[label] = {"label": label, "n": n, "failed": str(err)}
            log(f"  → {summary_line(pair[label])}")
        out["comparison"].append(pair)
    floor_runner = [sys.executable, str(HERE / "floor.py")]
    for n in args.floor_n:
        pair = {}
        for label, runner in (("ours", ours_runner), ("floor", floor_runner)):
            log(f"memory floor: {label} N={n} over dataproc")
            try:
                pair[label] = run_fleet(sim, runner, env, n=n, services=("dataproc",), label=label, **common)
            except RuntimeError as err:
                pair[label] = {"label": label, "n": n, "failed": str(err)}
            log(f"  → {summary_line(pair[label])}")
        out["floor"].append(pair)
    return out


def summary_line(row: dict[str, Any]) -> str:
    if "failed" in row:
        return f"FAILED: {row['failed'][:300]}"
    return (
        f"polls={row['polls']} cpu/1000 polls={row['cpu_per_1000_polls']:.3f}s "
        f"rss/trigger={row['rss_per_trigger_kib'] or 0:.1f}KiB lag p99={row['loop_lag_ms']['p99']:.1f}ms "
        f"detect p99={row['detection_s']['p99'] or float('nan'):.2f}s outcomes={row['outcomes']}"
    )


def pokes(args: argparse.Namespace, sim: SimProcess, env: dict[str, str], anchor: bool) -> dict[str, Any]:
    services = args.services
    sim.reset()
    jobs = [
        {"key": f"{s}:poke-{s}", "service": s, "job_id": f"poke-{s}", "timeline": [{"state": state}]}
        for s, state in {
            "dataproc": "RUNNING",
            "dataflow": "JOB_STATE_RUNNING",
            "vertex_ai": "JOB_STATE_RUNNING",
            "cdm": "RUNNING",
            "dli": "RUNNING",
        }.items()
        if s in services or s == "dataproc"
    ]
    sim.add_jobs(jobs)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-poke-") as tmp:
        ours = Path(tmp) / "ours.json"
        run_quiet(
            [sys.executable, str(HERE / "poke.py"), ",".join(services), str(args.poke_count), str(ours)], env
        )
        results.update(json.loads(ours.read_text()))
        if anchor:
            theirs = Path(tmp) / "anchor.json"
            run_quiet(
                [str(ANCHOR_PY), str(HERE / "anchor.py"), "poke", str(args.poke_count), str(theirs)], env
            )
            results.update(json.loads(theirs.read_text()))
    return results


def run_quiet(cmd: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd[:2])} failed:\n{(done.stdout + done.stderr)[-3000:]}")


def import_costs(args: argparse.Namespace, env: dict[str, str], anchor: bool) -> dict[str, Any]:
    ours_mod, anchor_mod = "airflow_jobstatus.sensors", "airflow.providers.google.cloud.sensors.dataproc"
    out: dict[str, Any] = {"ours": imports.measure(sys.executable, ours_mod, args.import_runs, env)}
    out["ours_offenders"] = imports.offenders(sys.executable, ours_mod, env)
    if anchor:
        out["anchor"] = imports.measure(str(ANCHOR_PY), anchor_mod, args.import_runs, env)
        out["anchor_offenders"] = imports.offenders(str(ANCHOR_PY), anchor_mod, env)
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    anchor = not args.no_anchor and ensure_anchor_venv()
    results: dict[str, Any] = {"environment": environment(anchor), "settings": settings(args)}
    with tempfile.TemporaryDirectory(prefix="bench-home-") as home, SimProcess() as sim:
        env = base_env(sim, home)
        if args.gc_freeze:
            env["BENCH_GC_FREEZE"] = "1"
        if args.gc_threshold:
            env["BENCH_GC_THRESHOLD"] = args.gc_threshold
        if not args.no_pollcost:
            log(f"poll cost: {args.pollcost_rounds} round(s) of {len(args.pollcost_modes)} modes")
            results["pollcost"] = pollcost.run(
                sim,
                env,
                rounds=args.pollcost_rounds,
                n=args.pollcost_n,
                interval=5.0,
                warm=args.pollcost_warm,
                seconds=args.pollcost_seconds,
                modes=args.pollcost_modes,
                log=log,
            )
        results["fleet"] = fleets(args, sim, env, anchor)
        if args.coalesce_n:
            results["coalesce"] = coalesce.run_from_args(args, sim, env, log)
        if args.watchers_n:
            results["watchers"] = watchers.run_from_args(args, sim, env, log)
        if not args.no_poke:
            log("poke cost")
            results["poke"] = pokes(args, sim, env, anchor)
        if not args.no_imports:
            log("import cost")
            results["imports"] = import_costs(args, env, anchor)
    results["environment"]["load_average_end"] = os.getloadavg()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    write_json(args.out_dir / "latest.json", results)
    (args.out_dir / "latest.md").write_text(render(results), encoding="utf-8")
    if not args.quick:  # the committed reference: the last full run
        write_json(args.out_dir / "last-full.json", results)
        (args.out_dir / "last-full.md").write_text(render(results), encoding="utf-8")
    log(f"wrote {args.out_dir / 'latest.md'} and latest.json")
    print("\nTargets:\n" + "\n".join(targets(results)), flush=True)
    return 0


def settings(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "quick": args.quick,
        "n": args.n,
        "anchor_n": args.anchor_n,
        "poll_interval": args.poll,
        "job_end_range": list(args.end),
        "stagger": args.stagger,
        "services": list(args.services),
        "seed": args.seed,
        "poke_count": args.poke_count,
        "import_runs": args.import_runs,
        "floor_n": args.floor_n,
        "gc_setting_n": args.gc_setting_n,
        "gc_freeze": args.gc_freeze,
        "gc_threshold": args.gc_threshold,
        "pollcost": None
        if args.no_pollcost
        else {
            "n": args.pollcost_n,
            "rounds": args.pollcost_rounds,
            "seconds": args.pollcost_seconds,
            "warm": args.pollcost_warm,
            "modes": list(args.pollcost_modes),
        },
        "region": REGION,
    }


if __name__ == "__main__":
    sys.exit(main())
