"""The ``airflow-jobstatus`` command: read or watch a job's normalized status, run the simulator, run the
demo, copy the example DAGs.

Airflow, the hooks and the SDKs are imported inside the subcommands, so ``--help`` stays fast.
Errors are one line on stderr. Exit codes (the same for every subcommand):
0 success (``status``: the job has not failed), 1 the job failed, 2 usage error (bad command line,
unknown service, invalid job reference, bad scenario file, a taken port), 3 service or connection
error (the job could not be read), 4 ``watch --timeout`` passed while the job was still running.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from airflow_jobstatus.services import REGISTRY, SERVICES, ServiceSpec

PROG = "airflow-jobstatus"
EXIT_OK, EXIT_JOB_FAILED, EXIT_USAGE, EXIT_SERVICE_ERROR, EXIT_TIMEOUT = 0, 1, 2, 3, 4
EXIT_CODES_HELP = (
    "Exit codes: 0 success, 1 the job failed, 2 usage error, 3 service or connection error,\n"
    "4 watch --timeout passed while the job was still running."
)
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
        "secrets backends, the metadata DB).\n" + EXIT_CODES_HELP
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
        description="Read or watch a cloud job's normalized status, run the local simulator, run the demo, "
        "copy the example DAGs.",
        epilog=EXIT_CODES_HELP,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for add in (_add_status, _add_watch, _add_simulate, _add_demo, _add_example_dags):
        add(sub)
    return parser


def _add_status(sub: Any) -> None:
    status = sub.add_parser(
        "status",
        help="print one job's normalized status",
        description="Read one job's status through the provider's hook and print it normalized.",
        epilog=JOB_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_job_args(status)
    status.add_argument("--json", action="store_true", help="print the status as JSON")


def _add_watch(sub: Any) -> None:
    watch = sub.add_parser(
        "watch",
        help="follow a job until it ends (exit 0 on success, 1 on failure, 3 on a service error, "
        "4 on --timeout)",
        description="Poll a job and print a line per change (state, progress, DLI subjob tasks, CDM "
        "counters) until it reaches a terminal state, and the sensors' warnings (a Dataproc attempt "
        "that failed and is retried, with its details; a stale status; a transient error being "
        "retried). Transient errors are retried for up to --error-budget seconds in a row.",
        epilog=JOB_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_job_args(watch)
    watch.add_argument("--interval", type=float, default=5.0, help="seconds between polls (default 5)")
    watch.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="stop watching after this many seconds; exit 4 if the job is still running then",
    )
    watch.add_argument(
        "--error-budget",
        type=float,
        default=60.0,
        help="seconds of consecutive transient errors to ride out before giving up (default 60)",
    )


def _add_simulate(sub: Any) -> None:
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


def _add_demo(sub: Any) -> None:
    demo = sub.add_parser(
        "demo",
        help="run the cross-cloud example DAG against the simulator",
        description="Start the simulator, run the example DAG example_cross_cloud.py (shipped in the "
        "package; a source checkout's example_dags/ otherwise) with dag.test() in a throwaway Airflow "
        "home, show live progress and a summary, then clean everything up. Exit 0 when the DAG run "
        "succeeded, 1 when it failed.",
    )
    demo.add_argument("--scenarios", help="scenario JSON file (default: the bundled default.json)")


def _add_example_dags(sub: Any) -> None:
    examples = sub.add_parser(
        "example-dags",
        help="copy the example DAGs into a DAGs folder",
        description="Copy the example DAGs shipped with the package (one per service and the cross-cloud "
        "one the demo runs) into DEST, e.g. your Airflow's dags folder. They read the "
        "huaweicloud_default and google_cloud_default connections; their params default to the "
        "simulator's scenarios.",
    )
    examples.add_argument("dest", metavar="DEST", help="folder to copy them into (created if missing)")
    examples.add_argument("--force", action="store_true", help="overwrite files of the same name that differ")


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
    from airflow_jobstatus.core.exceptions import ConfigurationError

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
    """The summary line (non-zero counters), then the message, every counter and each subjob's task counts."""
    from airflow_jobstatus.core.states import sub_job_text
    from airflow_jobstatus.wait.rules import progress_line

    lines = [progress_line(status)]
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
    from airflow_jobstatus.core.states import DEFAULT_FAILURE_STATES

    return EXIT_JOB_FAILED if status.state in DEFAULT_FAILURE_STATES else EXIT_OK


def watch_line(status: Any) -> str:
    """One line per poll: the sensors' progress line (state, progress, subjob tasks, non-zero counters)."""
    from airflow_jobstatus.wait.rules import progress_line

    return progress_line(status)


class WarningsKept(logging.Handler):
    """Keeps the watch's warnings (what a sensor logs as warnings) for ``watch`` to print in order."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.pending: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno == logging.WARNING:  # errors end the watch: main() prints them
            self.pending.append(" ".join(record.getMessage().split()))

    def print_pending(self) -> None:
        for text in self.pending:
            print(f"[{time.strftime('%H:%M:%S')}] warning: {text}", flush=True)
        self.pending.clear()


def cmd_watch(args: argparse.Namespace) -> int:
    if not args.interval > 0:
        raise UsageError("--interval must be > 0 seconds")
    if not 0 <= args.error_budget < float("inf"):
        raise UsageError("--error-budget must be a number of seconds >= 0")
    if args.timeout is not None and not 0 < args.timeout < float("inf"):
        raise UsageError("--timeout must be a number of seconds > 0")
    hook, ref = _hook_and_ref(args)
    from airflow_jobstatus.core.exceptions import JobFailedError
    from airflow_jobstatus.wait.rules import JobWatch, RetryPolicy

    # The watch logs every poll, the sensors' warnings and the final error; we print our own lines,
    # and its warnings (a retried Dataproc attempt's details, a stale status, a transient error).
    log = logging.getLogger("airflow_jobstatus.cli.watch")
    log.propagate = False
    log.setLevel(logging.WARNING)  # whatever the root logger's level: the warnings are printed
    if not log.handlers:
        log.addHandler(logging.NullHandler())  # no "last resort" printing once ours is removed
    warnings = WarningsKept()
    log.addHandler(warnings)
    watch = JobWatch(None, None, RetryPolicy(args.error_budget, max_backoff=max(args.interval, 1.0)), log=log)
    started = time.monotonic()
    last = None
    try:
        while True:
            status = watch.read(lambda: hook.get_status(ref))
            warnings.print_pending()  # the transient errors ridden out for this reading
            verdict = watch.verdict(status)
            line = watch_line(status)
            if line != last:
                print(f"[{time.strftime('%H:%M:%S')}] {line}", flush=True)
                last = line
            warnings.print_pending()  # what this reading means (e.g. a failed attempt being retried)
            if verdict != "wait":
                if verdict == "failure":
                    print(f"{PROG} watch: {JobFailedError(status)}", file=sys.stderr)
                return EXIT_OK if verdict == "success" else EXIT_JOB_FAILED
            elapsed = time.monotonic() - started
            if args.timeout is not None and elapsed >= args.timeout:
                print(
                    f"{PROG} watch: timeout: the job is still {status.state.value} after "
                    f"{args.timeout:g} s (exit {EXIT_TIMEOUT})",
                    file=sys.stderr,
                )
                return EXIT_TIMEOUT
            left = float("inf") if args.timeout is None else args.timeout - elapsed
            time.sleep(min(args.interval, left))  # one last reading at the timeout
    finally:
        log.removeHandler(warnings)


def scenario_file(arg: str | None) -> Path:
    """The scenario file to load (the bundled one by default), checked: a bad one is a usage error."""
    from airflow_jobstatus.simulator import DEFAULT_SCENARIOS, SimulatorCore

    scenarios = Path(arg) if arg else DEFAULT_SCENARIOS
    if not scenarios.is_file():
        raise UsageError(f"scenario file {str(scenarios)!r} not found")
    try:
        SimulatorCore().load_scenarios(scenarios)
    except Exception as err:  # not JSON, an unknown service or state, a bad phase: the file's fault
        raise UsageError(f"scenario file {str(scenarios)!r}: {' '.join(str(err).split())}") from None
    return scenarios


def cmd_simulate(args: argparse.Namespace) -> int:
    from airflow_jobstatus.simulator import Simulator

    for name, port in (("--grpc-port", args.grpc_port), ("--http-port", args.http_port)):
        if not 0 <= port <= 65535:
            raise UsageError(f"{name} must be a port number from 0 to 65535")
    sim = Simulator(
        ak=args.ak,
        sk=args.sk,
        scenarios=scenario_file(args.scenarios),
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
        raise UsageError(err.describe(f"--{err.option.replace('_', '-')} PORT")) from None
    print("# Simulator stopped.", flush=True)
    return 0


def _example_dags() -> Path:
    from airflow_jobstatus.demo import example_dags_dir

    found = example_dags_dir()
    if found is None:
        raise UsageError(
            "the example DAGs are neither in the installed package (airflow_jobstatus/example_dags) nor "
            "in a source checkout (example_dags/): reinstall airflow-jobstatus"
        )
    return found


def cmd_demo(args: argparse.Namespace) -> int:
    from airflow_jobstatus.demo import DEMO_DAG_FILE, missing_extras, run_demo

    dag_file = _example_dags() / DEMO_DAG_FILE
    missing = missing_extras()
    if missing:
        needs = " and ".join(what for _, what in missing)
        extras = ",".join(extra for extra, _ in missing)
        raise UsageError(f"the demo DAG needs {needs}: pip install 'airflow-jobstatus[{extras}]'")
    return run_demo(scenarios=scenario_file(args.scenarios), dag_file=dag_file)


def cmd_example_dags(args: argparse.Namespace) -> int:
    import filecmp
    import shutil

    source = _example_dags()
    files = sorted(source.glob("example_*.py"))
    dest = Path(args.dest).expanduser()
    if dest.exists() and not dest.is_dir():
        raise UsageError(f"{str(dest)!r} is not a folder")
    clashes = [f.name for f in files if (dest / f.name).exists() and not filecmp.cmp(f, dest / f.name, False)]
    if clashes and not args.force:
        raise UsageError(f"{', '.join(clashes)} already in {str(dest)!r} and different: --force overwrites")
    dest.mkdir(parents=True, exist_ok=True)
    copied = [f.name for f in files if not (dest / f.name).exists() or f.name in clashes]
    for name in copied:
        shutil.copyfile(source / name, dest / name)
    same = len(files) - len(copied)
    print(
        f"Copied {len(copied)} example DAG(s) to {dest}"
        + (f" ({same} already there, unchanged)" if same else "")
        + (f": {', '.join(copied)}" if copied else "")
    )
    print(
        "They use the huaweicloud_default and google_cloud_default connections; their params default "
        "to the simulator's jobs (`airflow-jobstatus simulate` prints the connections to export)."
    )
    return EXIT_OK


COMMANDS = {
    "status": cmd_status,
    "watch": cmd_watch,
    "simulate": cmd_simulate,
    "demo": cmd_demo,
    "example-dags": cmd_example_dags,
}


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
