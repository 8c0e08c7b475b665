"""The ``airflow-jobstatus`` command: read or watch a job's normalized status, run the simulator, run the demo.

Airflow, the hooks and the SDKs are imported inside the subcommands, so ``--help`` stays fast.
Errors are one line on stderr. Exit codes (the same for every subcommand):
0 success (``status``: the job has not failed), 1 the job failed, 2 usage error (bad command line,
unknown service, invalid job reference), 3 service or connection error (the job could not be read).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from collections.abc import Sequence
from typing import Any, NoReturn

from airflow_jobstatus.services import REGISTRY, SERVICES, ServiceSpec

PROG = "airflow-jobstatus"
EXIT_OK, EXIT_JOB_FAILED, EXIT_USAGE, EXIT_SERVICE_ERROR = 0, 1, 2, 3
#: Job-reference fields given as options rather than positional JOB arguments.
OPTION_FIELDS = {
    "region": "--region",
    "location": "--location",
    "project_id": "--project",
    "job_type": "--job-type",
}


def _positional(spec: ServiceSpec) -> list[str]:
    return [f for f in spec.ref_type.id_fields if f not in OPTION_FIELDS]


def _job_help() -> str:
    lines = ["JOB is the service's job reference:"]
    for spec in REGISTRY.values():
        fields = {f.name for f in dataclasses.fields(spec.ref_type)}
        words = [f.upper() for f in _positional(spec)]
        words += [f"{OPTION_FIELDS[f]} X" for f in spec.ref_type.id_fields if f in OPTION_FIELDS]
        words += [f"[{OPTION_FIELDS[f]} X]" for f in ("project_id",) if f in fields]
        if spec.job_types:
            words.append(f"[--job-type {'|'.join(spec.job_types)}]")
        lines.append(f"  {spec.name:<10} {' '.join(words)}")
    lines.append(
        "The connection is the service's default (google_cloud_default or huaweicloud_default) unless\n"
        "--conn-id is given; it is read as Airflow reads it (AIRFLOW_CONN_* environment variables,\n"
        "secrets backends, the metadata DB).\n"
        "Exit codes: 0 success, 1 the job failed, 2 usage error, 3 service or connection error."
    )
    return "\n".join(lines)


JOB_HELP = _job_help()


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
        help="follow a job until it ends (exit 0 on success, 1 on failure, 3 on a service error)",
        description="Poll a job and print a line per change (state, progress, DLI subjob tasks, CDM "
        "rows) until it reaches a terminal state. Transient errors are retried for up to "
        "--error-budget seconds in a row.",
        epilog=JOB_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_job_args(watch)
    watch.add_argument("--interval", type=float, default=5.0, help="seconds between polls (default 5)")
    watch.add_argument("--timeout", type=float, default=None, help="give up after this many seconds")
    watch.add_argument(
        "--error-budget",
        type=float,
        default=60.0,
        help="seconds of consecutive transient errors to ride out before giving up (default 60)",
    )

    sim = sub.add_parser(
        "simulate",
        help="run the local simulator of the five services in the foreground",
        description="Serve fake Dataproc, Dataflow, Vertex AI (gRPC) and CDM, DLI (signed REST) until "
        "Ctrl-C or SIGTERM, and print the AIRFLOW_CONN_* lines pointing at it.",
    )
    sim.add_argument("--scenarios", help="scenario JSON file (default: the bundled default.json)")
    sim.add_argument(
        "--grpc-port", type=int, default=50061, help="gRPC port (default 50061; 0: any free one)"
    )
    sim.add_argument("--http-port", type=int, default=8961, help="HTTP port (default 8961; 0: any free one)")
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


def job_ref(service: str, args: argparse.Namespace) -> Any:
    """The service's typed job reference from the positional JOB arguments and the options."""
    from airflow_jobstatus.exceptions import ConfigurationError

    spec = REGISTRY[service]
    names = _positional(spec)
    if len(args.job) != len(names):
        words = " ".join(n.upper() for n in names)
        raise UsageError(f"{service} takes {words}, got {len(args.job)} argument(s)")
    fields: dict[str, Any] = dict(zip(names, args.job, strict=True))
    ref_fields = {f.name for f in dataclasses.fields(spec.ref_type)}
    given = {
        "region": args.location,
        "location": args.location,
        "project_id": args.project,
        "job_type": args.job_type,
    }
    for name, value in given.items():
        if value is None:
            continue
        if name not in ref_fields:
            if name in ("region", "location") and not ref_fields & {"region", "location"}:
                raise UsageError(f"--region/--location does not apply to {service}")
            if name in ("project_id", "job_type"):
                raise UsageError(f"{OPTION_FIELDS[name]} does not apply to {service}")
            continue
        fields[name] = value
    for name in spec.ref_type.id_fields:
        if name in OPTION_FIELDS and name not in fields:
            raise UsageError(f"{service} needs {OPTION_FIELDS[name]}")
    try:
        return spec.ref(fields)
    except ConfigurationError as err:
        raise UsageError(str(err)) from None


def _hook_and_ref(args: argparse.Namespace) -> tuple[Any, Any]:
    service = parse_service(args.service)
    ref = job_ref(service, args)
    from airflow_jobstatus.hooks.base import make_hook

    return make_hook(service, args.conn_id), ref


# ---- subcommands ------------------------------------------------------------------------------


def status_lines(status: Any) -> list[str]:
    """The summary line, then the counters and each subjob's task counts."""
    from airflow_jobstatus.states import sub_job_text

    lines = [status.summary()]
    if status.message:
        lines.append(f"  message: {status.message}")
    if status.counters:
        lines.append("  counters: " + ", ".join(f"{k}={v:,}" for k, v in status.counters.items()))
    for sub in status.sub_jobs:
        lines.append(
            f"  subjob {sub_job_text(sub)} ({sub.get('status')})"
            + (f" ({sub.get('name')})" if sub.get("name") else "")
        )
    return lines


def cmd_status(args: argparse.Namespace) -> int:
    hook, ref = _hook_and_ref(args)
    status = hook.get_status(ref)
    if args.json:
        print(json.dumps(status.to_dict(), indent=2, sort_keys=True))
    else:
        print("\n".join(status_lines(status)))
    from airflow_jobstatus.states import DEFAULT_FAILURE_STATES

    return EXIT_JOB_FAILED if status.state in DEFAULT_FAILURE_STATES else EXIT_OK


def watch_line(status: Any) -> str:
    """One line per poll: the summary (state, progress, subjob tasks, counters)."""
    return str(status.summary())


def cmd_watch(args: argparse.Namespace) -> int:
    if not args.interval > 0:
        raise UsageError("--interval must be > 0 seconds")
    if not 0 <= args.error_budget < float("inf"):
        raise UsageError("--error-budget must be a number of seconds >= 0")
    hook, ref = _hook_and_ref(args)
    from airflow_jobstatus.exceptions import JobFailedError
    from airflow_jobstatus.waiting import JobWatch, RetryPolicy

    quiet = logging.getLogger("airflow_jobstatus.cli.watch")
    quiet.propagate = False  # the watch logs every poll and the final error; we print our own lines
    if not quiet.handlers:
        quiet.addHandler(logging.NullHandler())
    watch = JobWatch(
        None, None, RetryPolicy(args.error_budget, max_backoff=max(args.interval, 1.0)), log=quiet
    )
    started = time.monotonic()
    last = None
    while True:
        status = watch.read(lambda: hook.get_status(ref))
        verdict = watch.verdict(status)
        line = watch_line(status)
        if line != last:
            print(f"[{time.strftime('%H:%M:%S')}] {line}", flush=True)
            last = line
        if verdict != "wait":
            if verdict == "failure":
                print(f"{PROG} watch: {JobFailedError(status)}", file=sys.stderr)
            return EXIT_OK if verdict == "success" else EXIT_JOB_FAILED
        if args.timeout is not None and time.monotonic() - started > args.timeout:
            print(
                f"{PROG} watch: error: still {status.state.value} after {args.timeout:g} s", file=sys.stderr
            )
            return EXIT_SERVICE_ERROR
        time.sleep(args.interval)


def cmd_simulate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from airflow_jobstatus.simulator import DEFAULT_SCENARIOS, Simulator

    scenarios = Path(args.scenarios) if args.scenarios else DEFAULT_SCENARIOS
    if not scenarios.is_file():
        raise UsageError(f"scenario file {str(scenarios)!r} not found")
    for name, port in (("--grpc-port", args.grpc_port), ("--http-port", args.http_port)):
        if not 0 <= port <= 65535:
            raise UsageError(f"{name} must be a port number from 0 to 65535")
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

    from airflow_jobstatus.simulator import SimulatorPortInUse

    try:
        sim.serve_forever(ready=announce)
    except SimulatorPortInUse as err:
        raise UsageError(str(err)) from None
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
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        print(f"{PROG} {args.command}: error: {one_line(err)}", file=sys.stderr)
        return EXIT_SERVICE_ERROR


def one_line(err: BaseException) -> str:
    """The error's message on one line; the type name when it says nothing."""
    text = " ".join(str(err).split())
    from_provider = type(err).__module__.startswith("airflow_jobstatus")
    return text if from_provider and text else f"{type(err).__name__}: {text}" if text else type(err).__name__


if __name__ == "__main__":
    sys.exit(main())
