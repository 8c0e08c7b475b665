"""The scale scenario in a real deployment (`make bench-deployment`; docs/deployment.md "At scale").

PostgreSQL, scheduler (LocalExecutor), dag-processor, api-server, two triggerers and the simulator as
separate processes (tests/deployment/harness.py), one DAG run per scenario, measured by
tests/deployment/test_scale.run_scale. Two deployments, one after the other on this machine:

- ``ours``: Airflow from this interpreter's venv; ``deploy_scale`` (``--waits`` sensors over every
  service, started in the triggerer, in DAGs of ``--dag-size``, one run each), then ``deploy_scale_dataproc`` (``--dataproc`` Dataproc sensors).
- ``google``: every Airflow component from a venv with apache-airflow-providers-google (``--google-venv``,
  created with uv when missing); ``deploy_scale_dataproc`` again (ours, same venv), then the Google
  provider's ``DataprocSubmitJobOperator(deferrable=True)`` as it is (``deploy_scale_google``: submitted
  on a worker) and with its ``start_from_trigger=True`` (``deploy_scale_google_direct``), ``--dataproc``
  each. Its gRPC channels go to the simulator (benchmarks/google_sim/sitecustomize.py).

Usage: deployment_scale.py [--waits 2000] [--dag-size 100] [--dataproc 200] [--poll 10] [--only ours|google] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
GOOGLE_VENV = Path.home() / ".cache" / "airflow-jobstatus" / "deploy-google"
#: The Google deployment's components: Airflow as pinned here, the Google provider, and this provider's
#: own dependencies (the DAG folder's other DAGs import it from the checkout, on PYTHONPATH).
GOOGLE_REQUIREMENTS = (
    "apache-airflow==3.3.2",
    "apache-airflow-providers-google",
    "apache-airflow-providers-openlineage>=2.20.3",
    "google-cloud-dataproc>=5.32",
    "google-cloud-dataflow-client>=0.14.1",
    "google-cloud-aiplatform>=2.7",
    "huaweicloudsdkcdm>=3.1.219",
    "huaweicloudsdkdli>=3.1.219",
    "grpcio>=1.85",
    "aiohttp>=3.10",
    "psycopg2-binary>=2.9.10",
    "asyncpg>=0.30",
)
GOOGLE_PRELOAD = ("airflow.providers.google.cloud.operators.dataproc",)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--waits", type=int, default=2000, help="sensors in deploy_scale (default 2000)")
    p.add_argument("--dataproc", type=int, default=200, help="waits per Dataproc comparison DAG")
    p.add_argument(
        "--dag-size",
        type=int,
        default=100,
        help="deploy_scale's sensors per DAG (default 100; 0: all in one DAG, which Airflow 3.3's "
        "triggerer starts in O(N²): it deserializes the whole DAG for every trigger it starts)",
    )
    p.add_argument("--poll", type=float, default=10.0, help="poll interval of every wait, s")
    p.add_argument("--hold-polls", type=int, default=3, help="intervals held after every job was read")
    p.add_argument("--only", choices=("ours", "google"), help="one deployment only")
    p.add_argument("--google-venv", type=Path, default=GOOGLE_VENV)
    p.add_argument("--out", type=Path, default=RESULTS / "deployment-scale.json")
    p.add_argument("--phase", choices=("ours", "google"), help=argparse.SUPPRESS)  # the child's
    return p.parse_args(argv)


def ensure_google_venv(venv: Path) -> Path:
    python = venv / "bin" / "python"
    if not python.exists():
        uv = Path(sys.executable).parent / "uv"
        print(f"creating {venv} (apache-airflow-providers-google) with uv …", flush=True)
        subprocess.run([str(uv), "venv", str(venv), "--python", sys.executable, "-q"], check=True)
        subprocess.run(
            [str(uv), "pip", "install", "-q", "--python", str(python), *GOOGLE_REQUIREMENTS], check=True
        )
    return venv


def settings(args: argparse.Namespace, phase: str, sim_env: dict[str, str] | None = None) -> dict[str, str]:
    """The session's settings (tests/deployment/conftest.py), plus what a scale run needs."""
    from tests.deployment.conftest import PRELOAD, SETTINGS

    out = dict(SETTINGS)
    out.update(
        # Each triggerer can hold every wait of the run (so one can take the other's over).
        AIRFLOW__TRIGGERER__CAPACITY=str(max(args.waits, args.dataproc, 1000)),
        # A DAG of 2,000 (10,000) tasks takes longer to parse and serialize than the 30 s default.
        AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT="900",
        AIRFLOW__DAG_PROCESSOR__DAG_FILE_PROCESSOR_TIMEOUT="900",
        JOBSTATUS_DEPLOY_SCALE=str(args.waits if phase == "ours" else 10),
        JOBSTATUS_DEPLOY_SCALE_DATAPROC=str(args.dataproc),
        JOBSTATUS_DEPLOY_SCALE_POLL=str(args.poll),
        JOBSTATUS_DEPLOY_SCALE_DAG_SIZE=str(args.dag_size if phase == "ours" else 0),
    )
    if phase == "google":
        assert sim_env is not None
        extra = json.loads(sim_env["AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT"])["extra"]
        out.update(
            PYTHONPATH=os.pathsep.join([str(REPO), str(HERE / "google_sim")]),
            SIM_GRPC_TARGET=extra["api_endpoint"].removeprefix("http://"),
            AIRFLOW_CONN_GOOGLE_SIM=json.dumps(
                {
                    "conn_type": "google_cloud_platform",
                    "extra": {"project": extra["project"], "is_anonymous": True},
                }
            ),
            AIRFLOW__SCHEDULER__MP_FORKSERVER_PRELOAD=",".join((*PRELOAD, *GOOGLE_PRELOAD)),
        )
    return out


def run_phase(args: argparse.Namespace) -> dict[str, Any]:
    """In the child process (JOBSTATUS_DEPLOY_VENV already set for the google phase): one deployment."""
    from tests.deployment import harness
    from tests.deployment.scale_plan import (
        dataproc_waits,
        scale_dags,
        scale_waits,
    )
    from tests.deployment.test_scale import run_scale

    phase = args.phase
    # The harness builds the plans from the arguments, as the DAG files do from the settings' environment
    # (scale_plan's module-level plans are the smoke's sizes in this process).
    ours = dataproc_waits("scale-ours", args.dataproc, args.poll)
    scenarios: list[tuple[str, dict[str, list[Any]], bool]]
    if phase == "ours":
        scale = scale_dags(scale_waits(args.waits, args.poll), args.dag_size)
        scenarios = [
            ("deploy_scale", scale, False),
            ("deploy_scale_dataproc", {"deploy_scale_dataproc": ours}, False),
        ]
    else:
        scenarios = [
            ("deploy_scale_dataproc", {"deploy_scale_dataproc": ours}, False),
            (
                "deploy_scale_google",
                {"deploy_scale_google": dataproc_waits("scale-google", args.dataproc, args.poll)},
                True,
            ),
            (
                "deploy_scale_google_direct",
                {"deploy_scale_google_direct": dataproc_waits("scale-gdirect", args.dataproc, args.poll)},
                True,
            ),
        ]
    root = Path(tempfile.mkdtemp(prefix=f"jobstatus-scale-{phase}-", dir="/tmp"))
    out: dict[str, Any] = {"root": str(root)}
    started = time.monotonic()
    dag_ids = tuple(dag_id for _, dags, _ in scenarios for dag_id in dags)
    with harness.deployment(root, lambda sim: settings(args, phase, sim.env), dag_ids) as af:
        out["startup_s"] = round(time.monotonic() - started, 1)
        out["load_before"] = os.getloadavg()
        for dag_id, dags, submitted in scenarios:
            af.sim.reset()
            print(
                f"[{phase}] {dag_id}: {sum(map(len, dags.values()))} waits in {len(dags)} DAG(s) …",
                flush=True,
            )
            t0 = time.monotonic()
            try:
                metrics = run_scale(
                    af,
                    dags,
                    submitted=submitted,
                    hold_polls=args.hold_polls,
                    defer_timeout=3600,
                    finish_timeout=3600,
                )
            except BaseException as err:  # pytest.fail raises a BaseException: record it, go on
                metrics = {"failed": f"{type(err).__name__}: {str(err)[:3000]}"}
            metrics["load_after"] = os.getloadavg()
            metrics["wall_s"] = round(time.monotonic() - t0, 1)
            out[dag_id] = metrics
            print(
                f"[{phase}] {dag_id}: {json.dumps({k: v for k, v in metrics.items() if k != 'runs'})}",
                flush=True,
            )
    return out


def main() -> None:
    args = parse_args()
    sys.path.insert(0, str(REPO))
    if args.phase:
        result = run_phase(args)
        args.out.write_text(json.dumps(result, indent=2))
        return
    phases = [args.only] if args.only else ["ours", "google"]
    results: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "args": {
            "waits": args.waits,
            "dataproc": args.dataproc,
            "poll": args.poll,
            "hold_polls": args.hold_polls,
            "dag_size": args.dag_size,
        },
        "cpus": os.cpu_count(),
    }
    for phase in phases:
        env = dict(os.environ)
        if phase == "google":
            env["JOBSTATUS_DEPLOY_VENV"] = str(ensure_google_venv(args.google_venv))
        part = args.out.with_suffix(f".{phase}.json")
        argv = [sys.executable, __file__, "--phase", phase, "--out", str(part)]
        argv += ["--waits", str(args.waits), "--dataproc", str(args.dataproc), "--poll", str(args.poll)]
        argv += ["--hold-polls", str(args.hold_polls), "--dag-size", str(args.dag_size)]
        code = subprocess.run(argv, env=env, cwd=str(REPO)).returncode
        results[phase] = json.loads(part.read_text()) if part.exists() else {"failed": f"exit {code}"}
        part.unlink(missing_ok=True)
        args.out.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
