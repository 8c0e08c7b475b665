"""The ``airflow-jobstatus`` command: read or watch a job's normalized status, run the simulator, run the demo.

Airflow, the hooks and the SDKs are imported inside the subcommands, so ``--help`` stays fast.
Errors are one line on stderr: exit 2 for a usage error, 1 for anything else.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from typing import Any, NoReturn

from airflow_jobstatus.states import SERVICES

PROG = "airflow-jobstatus"
JOB_HELP = """\
JOB is the service's job reference:
  dataproc   JOB_ID --region R [--project P]
  dataflow   JOB_ID --location L [--project P]
  vertex_ai  JOB_ID --location L [--job-type custom_job|batch_prediction_job|hyperparameter_tuning_job]
  cdm        CLUSTER_ID JOB_NAME
  dli        JOB_ID [--job-type sql|spark]
The connection is the service's default (google_cloud_default or huaweicloud_default) unless
--conn-id is given; it is read as Airflow reads it (AIRFLOW_CONN_* environment variables,
secrets backends, the metadata DB)."""


class UsageError(Exception):
    """A bad command line: reported in one line, exit code 2."""


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit 2) instead of usage + message."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> Parser:
    parser = Parser(
        prog=PROG,
        description="Read or watch a cloud job's normalized status, run the local simulator, run the demo.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True

    status = sub.add_parser(
        "status",
        help="print one job's normalized status",
        description="Read one job's status through the provider's hook and print it normalized.",
        epilog=JOB_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_job_args(status)
    status.add_argument("--json", action="store_true", help="print the status as JSON")

    watch = sub.add_parser(
        "watch",
        help="follow a job until it ends (exit 0 on success, 1 on failure)",
        description="Poll a job and print a line per change (state, progress, DLI subjob tasks, CDM "
        "rows) until it reaches a terminal state. Exit 0 on success, 1 on failure.",
        epilog=JOB_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_job_args(watch)
    watch.add_argument("--interval", type=float, default=5.0, help="seconds between polls (default 5)")
    watch.add_argument("--timeout", type=float, default=None, help="give up after this many seconds")

    sim = sub.add_parser(
        "simulate",
        help="run the local simulator of the five services in the foreground",
        description="Serve fake Dataproc, Dataflow, Vertex AI (gRPC) and CDM, DLI (signed REST) until "
        "Ctrl-C or SIGTERM, and print the AIRFLOW_CONN_* lines pointing at it.",
    )
    sim.add_argument("--scenarios", help="scenario JSON file (default: the bundled default.json)")
    sim.add_argument("--grpc-port", type=int, default=0, help="gRPC port (default: a free one)")
    sim.add_argument("--http-port", type=int, default=0, help="HTTP port (default: a free one)")
    sim.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    sim.add_argument("--ak", default="sim-ak", help="Huawei access key the simulator accepts")
    sim.add_argument("--sk", default="sim-sk", help="Huawei secret key the simulator accepts")

    demo = sub.add_parser(
        "demo",
        help="run the cross-cloud example DAG against the simulator",
        description="Start the simulator, run example_dags/example_cross_cloud.py with dag.test() in a "
        "throwaway Airflow home, show live progress and a summary, then clean everything up.",
    )
    demo.add_argument("--scenarios", help="scenario JSON file (default: the bundled default.json)")
    return parser


def _add_job_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("service", metavar="SERVICE", help=f"one of {', '.join(SERVICES)}")
    p.add_argument("job", nargs="*", metavar="JOB", help="the job reference (see below)")
    p.add_argument("--conn-id", help="Airflow connection id (default: the service's default)")
    p.add_argument(
        "--region",
        "--location",
        dest="location",
        metavar="REGION",
        help="Dataproc region / Dataflow, Vertex AI location",
    )
    p.add_argument("--project", help="Google project (default: the connection's)")
    p.add_argument("--job-type", help="Vertex AI or DLI job type")


# ---- job references ---------------------------------------------------------------------------


def parse_service(name: str) -> str:
    service = name.strip().lower().replace("-", "_")
    if service not in SERVICES:
        raise UsageError(f"unknown service {name!r}; valid services: {', '.join(SERVICES)}")
    return service


def job_ref(service: str, args: argparse.Namespace) -> dict[str, Any]:
    """The hook's get_status keywords from the positional JOB arguments and the options."""
    names = {"cdm": ("CLUSTER_ID", "JOB_NAME")}.get(service, ("JOB_ID",))
    if len(args.job) != len(names):
        raise UsageError(f"{service} takes {' '.join(names)}, got {len(args.job)} argument(s)")
    for name, value in zip(names, args.job, strict=True):
        if not value.strip():
            raise UsageError(f"{name} must not be empty")
    values = [v.strip() for v in args.job]
    if service == "cdm":
        return {"cluster_id": values[0], "job_name": values[1]}
    ref: dict[str, Any] = {"job_id": values[0]}
    if service in ("dataproc", "dataflow", "vertex_ai"):
        option = "--region" if service == "dataproc" else "--location"
        if not args.location:
            raise UsageError(f"{service} needs {option}")
        ref["region" if service == "dataproc" else "location"] = args.location
        if args.project:
            ref["project_id"] = args.project
    if args.job_type:
        if service not in ("vertex_ai", "dli"):
            raise UsageError(f"--job-type applies to vertex_ai and dli, not {service}")
        ref["job_type"] = args.job_type
    return ref


def _hook_and_ref(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    service = parse_service(args.service)
    ref = job_ref(service, args)
    from airflow_jobstatus.hooks.base import make_hook

    return make_hook(service, args.conn_id), ref


# ---- subcommands ------------------------------------------------------------------------------


def status_lines(status: Any) -> list[str]:
    """The summary line, then CDM counters and each DLI subjob's task counts."""
    lines = [status.summary()]
    if status.message:
        lines.append(f"  message: {status.message}")
    if status.counters:
        lines.append("  counters: " + ", ".join(f"{k}={v:,}" for k, v in status.counters.items()))
    for sub in status.sub_jobs:
        lines.append(
            f"  subjob {sub.get('id')} {sub.get('status')}: "
            f"{sub.get('num_completed_tasks', 0)}/{sub.get('num_tasks', 0)} tasks"
            + (f" ({sub.get('name')})" if sub.get("name") else "")
        )
    return lines


def cmd_status(args: argparse.Namespace) -> int:
    hook, ref = _hook_and_ref(args)
    status = hook.get_status(**ref)
    if args.json:
        print(json.dumps(status.to_dict(), indent=2, sort_keys=True))
    else:
        print("\n".join(status_lines(status)))
    return 0


def watch_line(status: Any) -> str:
    """One line per poll: the summary, plus CDM rows written when the service counts them."""
    line = status.summary()
    if status.counters:
        line += f", {status.counters.get('rows_written', 0):,}/{status.counters.get('rows_read', 0):,} rows written"
    return line


def cmd_watch(args: argparse.Namespace) -> int:
    if args.interval <= 0:
        raise UsageError("--interval must be > 0 seconds")
    hook, ref = _hook_and_ref(args)
    from airflow_jobstatus.waiting import JobWatch

    quiet = logging.getLogger("airflow_jobstatus.cli.watch")
    quiet.setLevel(logging.WARNING)  # the watch logs every poll at INFO; we print our own lines
    watch = JobWatch(None, None, log=quiet)
    started = time.monotonic()
    last = None
    while True:
        status = watch.read(lambda: hook.get_status(**ref))
        verdict = watch.verdict(status)
        line = watch_line(status)
        if line != last:
            print(f"[{time.strftime('%H:%M:%S')}] {line}", flush=True)
            last = line
        if verdict != "wait":
            if verdict == "failure":
                print(f"{status.service} job {status.job_id} failed: {status.state.value}", file=sys.stderr)
            return 0 if verdict == "success" else 1
        if args.timeout is not None and time.monotonic() - started > args.timeout:
            print(f"{PROG}: error: still {status.state.value} after {args.timeout:g} s", file=sys.stderr)
            return 1
        time.sleep(args.interval)


def cmd_simulate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from airflow_jobstatus.simulator import DEFAULT_SCENARIOS, Simulator

    scenarios = Path(args.scenarios) if args.scenarios else DEFAULT_SCENARIOS
    if not scenarios.is_file():
        raise UsageError(f"scenario file {str(scenarios)!r} not found")
    sim = Simulator(
        ak=args.ak,
        sk=args.sk,
        scenarios=scenarios,
        host=args.host,
        grpc_port=args.grpc_port,
        http_port=args.http_port,
    )

    def announce() -> None:
        print(f"# Simulator: gRPC {sim.grpc_target}, HTTP {sim.http_url} (control API under /_sim/)")
        for name, value in sim.env().items():
            print(f"export {name}='{value}'")
        print("# Serving until Ctrl-C or SIGTERM.", flush=True)

    sim.serve_forever(ready=announce)
    print("# Simulator stopped.", flush=True)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from airflow_jobstatus.demo import run_demo

    return run_demo(scenarios=args.scenarios)


COMMANDS = {"status": cmd_status, "watch": cmd_watch, "simulate": cmd_simulate, "demo": cmd_demo}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse, run the subcommand, and turn any error into one line and an exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except UsageError as err:
        print(f"{PROG} {args.command}: error: {err} (see --help)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        print(f"{PROG} {args.command}: error: {one_line(err)}", file=sys.stderr)
        return 1


def one_line(err: BaseException) -> str:
    """The error's message on one line; the type name when it says nothing."""
    text = " ".join(str(err).split())
    from_provider = type(err).__module__.startswith("airflow_jobstatus")
    return text if from_provider and text else f"{type(err).__name__}: {text}" if text else type(err).__name__


if __name__ == "__main__":
    sys.exit(main())
