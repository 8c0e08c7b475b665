"""``airflow-jobstatus demo``: run the cross-cloud example DAG against the simulator and show it move.

The parent runs the in-process simulator and prints one line per job change read from its core;
a child process (``_demo_run``) migrates a throwaway SQLite DB and runs the DAG with ``dag.test()``,
its verbose Airflow logs going to a log file. Everything started is stopped, even on Ctrl-C.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from airflow_jobstatus.core.states import JobState, JobStatus, sub_job_tasks, sub_job_text
from airflow_jobstatus.simulator import DEFAULT_SCENARIOS, Simulator, SimulatorCore

#: Where the example DAGs are: shipped in the wheel as package data (pyproject.toml/setup.py copy the
#: checkout's example_dags/ there), or a source checkout's example_dags/ (an editable install).
PACKAGED_EXAMPLE_DAGS = Path(__file__).resolve().parent / "example_dags"
CHECKOUT_EXAMPLE_DAGS = Path(__file__).resolve().parent.parent / "example_dags"
DEMO_DAG_FILE = "example_cross_cloud.py"
#: The CDM job the example DAGs start (default.json cannot declare a never-started CDM job yet).
TICK = 0.25  # seconds between reads of the simulator core
MIN_LINE_GAP = 0.5  # at most one progress line per job per this many seconds (state changes always print)
CHILD_TIMEOUT = 300.0
#: Child log lines echoed as milestones: the runner's own ``[demo]`` lines and dag.test()'s task starts.
TIMESTAMPED = re.compile(r"^\d{4}-\d\d-\d\dT")
LOG_MARKER = re.compile(r"^\[demo\] (.*)$|\[DAG TEST\] starting task_id=(\S+)")


def example_dags_dir() -> Path | None:
    """The folder holding the example DAGs (the package's, else the checkout's); None when neither has them."""
    for folder in (PACKAGED_EXAMPLE_DAGS, CHECKOUT_EXAMPLE_DAGS):
        if (folder / DEMO_DAG_FILE).is_file():
            return folder
    return None


#: SDKs the demo DAG needs beyond the package's own requirements: module → (the extra installing it, what it is).
DEMO_EXTRAS = {"google.cloud.aiplatform_v1": ("vertex", "the Vertex AI client (google-cloud-aiplatform)")}


def missing_extras() -> list[tuple[str, str]]:
    """(extra, what) for each SDK the demo DAG needs that is not installed (its Vertex AI wait: ``[vertex]``)."""
    import importlib.util

    missing = []
    for module, extra in DEMO_EXTRAS.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except ImportError:  # a parent package is missing
            found = False
        if not found:
            missing.append(extra)
    return missing


def normalized_state(service: str, snap: dict[str, Any]) -> str:
    """The simulator's native state as this provider's parsers normalize it."""
    from airflow_jobstatus.services import get_service

    job_type = snap.get("where", {}).get("job_type")
    return get_service(service).normalize(str(snap["state"]), snap.get("substate"), job_type).value


def progress_text(service: str, snap: dict[str, Any]) -> str:
    """Percent done, CDM rows and the running DLI subjob's task counts, when the service reports them."""
    parts: list[str] = []
    progress = snap.get("progress")
    if isinstance(progress, int | float) and progress >= 0:
        percent = progress if service == "cdm" else progress * 100
        parts.append(f"{percent:3.0f}%")
    counters = {k: int(v or 0) for k, v in (snap.get("counters") or {}).items()}
    if any(counters.values()):  # the non-zero ones: CDM reports all ten counters
        parts.append(", ".join(f"{k} {v:,}" for k, v in counters.items() if v))
    subs = [s for s in snap.get("sub_jobs") or [] if isinstance(s, dict)]
    if subs:
        status = JobStatus(service, "", JobState.RUNNING, "", sub_jobs=subs)
        done, total = status.task_counts()
        sub = status.running_sub_job() or subs[-1]
        parts.append(f"subjob {sub_job_text(sub)} ({done}/{total} in {len(subs)} subjobs)")
    return "  ".join(parts)


@dataclass
class ProgressPrinter:
    """Prints one line per job change, for the jobs the DAG has touched (called the API for)."""

    core: SimulatorCore
    out: TextIO
    log_file: Path
    started: float = field(default_factory=time.monotonic)
    _last: dict[str, tuple[str, str, float]] = field(default_factory=dict)
    _log_offset: int = 0

    def warm_up(self) -> None:
        """Import the state tables now, while the child starts, so the first job line is not late."""
        normalized_state("dataproc", {"state": "PENDING"})
        normalized_state("cdm", {"state": "BOOTING"})

    def _new_log_lines(self) -> list[str]:
        """Complete lines the child logged since the last tick."""
        try:
            with self.log_file.open("rb") as f:
                f.seek(self._log_offset)
                data = f.read()
        except OSError:
            return []
        end = data.rfind(b"\n") + 1
        self._log_offset += end
        return data[:end].decode("utf-8", errors="replace").splitlines()

    def tick(self, final: bool = False) -> None:
        """Print what changed since the last tick: job lines first, then the child's milestones."""
        now = time.monotonic()
        for job in self.core.jobs():
            if self.core.calls(job.service, job.ref) == 0:
                continue
            snap = job.snapshot()
            state = normalized_state(job.service, snap)
            detail = progress_text(job.service, snap)
            key = f"{job.service}:{job.ref}"
            last = self._last.get(key)
            if last is not None and last[:2] == (state, detail):
                continue
            if last is not None and last[0] == state and now - last[2] < MIN_LINE_GAP and not final:
                continue
            self._last[key] = (state, detail, now)
            self._say(
                now, f"{job.service:<9} {short_id(job.ref):<24} {state:<10} ({snap.get('state')})  {detail}"
            )
        for line in self._new_log_lines():
            match = LOG_MARKER.search(line)
            if match:
                self._say(now, match.group(1) or f"task {match.group(2)} started")

    def _say(self, now: float, text: str) -> None:
        self.out.write(f"  +{now - self.started:5.1f}s  {text}".rstrip() + "\n")
        self.out.flush()


def short_id(job_id: str, width: int = 24) -> str:
    return job_id if len(job_id) <= width else job_id[: width - 1] + "…"


def child_env(home: Path, sim: Simulator) -> dict[str, str]:
    """The child's environment: this one without AIRFLOW__* settings, plus the throwaway home and connections."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(home / "dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db",
        AIRFLOW__LOGGING__LOGGING_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
    )
    env.update(sim.env())
    return env


def stop_process_group(proc: subprocess.Popen[Any], grace: float = 2.0) -> None:
    """SIGTERM the child's process group, then SIGKILL it if it lingers."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, grace)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def error_tail(log_file: Path, lines: int = 6) -> list[str]:
    """The first "Task failed" log line and the end of its traceback; else the log's last lines."""
    try:
        text = log_file.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    for i, line in enumerate(text):
        if "Task failed with exception" in line:
            block: list[str] = []
            for following in text[i + 1 :]:
                if TIMESTAMPED.match(following):
                    break
                block.append(following)
            return [line, *block[-lines:]]
    return text[-lines:]


def print_summary(result: dict[str, Any], out: TextIO, total_seconds: float) -> None:
    """Each task's Airflow and normalized state, the CDM counters and the DLI subjob progress."""
    xcoms: dict[str, dict[str, Any]] = result.get("xcoms") or {}
    tasks: dict[str, str | None] = result.get("tasks") or {}
    order = [t for t in result.get("task_order") or [] if t in tasks] or sorted(tasks)
    out.write(
        f"\nDAG {result.get('dag_id')}: {result.get('state')} "
        f"(DAG run {result.get('run_seconds', '?')} s, demo {total_seconds:.1f} s)\n"
    )
    for task_id in order:
        value = (xcoms.get(task_id) or {}).get("return_value")
        extra = ""
        if isinstance(value, dict) and "state" in value and "service" in value:
            extra = f"{value['state']:<10} {value['service']} job {value.get('job_id')}"
        elif isinstance(value, str):
            extra = f"returned {value}"
        elif (xcoms.get(task_id) or {}).get("status"):
            extra = str(xcoms[task_id]["status"])
        out.write(f"  {task_id:<27} {tasks[task_id] or '-':<9} {extra}\n")
    summary = next(
        (
            v.get("return_value")
            for v in xcoms.values()
            if isinstance(v.get("return_value"), dict) and "cdm_counters" in v["return_value"]
        ),
        None,
    )
    counters: dict[str, Any] = (summary or {}).get("cdm_counters") or next(
        (v["counters"] for v in xcoms.values() if isinstance(v.get("counters"), dict)), {}
    )
    if counters:
        out.write("CDM counters: " + ", ".join(f"{k} {v:,}" for k, v in counters.items() if v) + "\n")
    dli = next((v for v in xcoms.values() if "sub_jobs" in v), None)
    if dli is not None:
        progress = dli.get("progress")
        pct = f"{progress * 100:.0f}%" if isinstance(progress, int | float) else "?"
        out.write(f"DLI progress {pct}; subjobs as last reported while running:\n")
        for sub in dli.get("sub_jobs") or []:
            out.write(f"  #{sub.get('id')} {sub.get('name')}: {sub.get('status')}, {sub_job_tasks(sub)}\n")
        history = dli.get("progress_history") or []
        if history:
            steps = " → ".join(
                f"{h.get('state')} {float(h.get('progress') or 0) * 100:.0f}%" for h in history
            )
            out.write(f"DLI progress history: {steps}\n")
    out.flush()


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run_demo(
    scenarios: str | Path | None = None,
    out: TextIO = sys.stdout,
    log_file: Path | None = None,
    dag_file: Path | None = None,
) -> int:
    """Run the demo; 0 when the DAG run succeeded, 1 when it failed, 2 when the DAG file is missing,
    130 when interrupted.

    ``dag_file`` defaults to ``example_cross_cloud.py`` of ``example_dags_dir()``. The Airflow log goes
    to ``log_file`` (default: a new temp file, kept only when the run failed).
    """
    started = time.monotonic()
    folder = example_dags_dir()
    dag_path = dag_file or (folder or PACKAGED_EXAMPLE_DAGS) / DEMO_DAG_FILE
    if not dag_path.is_file():
        print(f"error: the demo DAG {dag_path} is missing: reinstall airflow-jobstatus.", file=sys.stderr)
        return 2
    keep_log = log_file is not None
    if log_file is None:
        fd, name = tempfile.mkstemp(prefix="airflow-jobstatus-demo-", suffix=".log")
        os.close(fd)
        log_file = Path(name)
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    work = Path(tempfile.mkdtemp(prefix="airflow-jobstatus-demo-"))
    sim = Simulator(scenarios=scenarios or DEFAULT_SCENARIOS)
    proc: subprocess.Popen[Any] | None = None
    try:
        sim.start()
        (work / "dags").mkdir()
        shutil.copy(dag_path, work / "dags" / dag_path.name)
        result_file = work / "result.json"
        out.write(
            f"Simulator up (gRPC {sim.grpc_target}, HTTP {sim.http_url}).\n"
            f"Running {dag_path.name} with dag.test() in a throwaway Airflow home; "
            f"Airflow logs: {log_file} (kept if the run fails)\n"
        )
        out.flush()
        with log_file.open("w", encoding="utf-8") as log:
            proc = _start_dag_run(work / "dags" / dag_path.name, result_file, work, sim, log)
            printer = ProgressPrinter(sim.core, out, log_file, started=started)
            printer.warm_up()
            watch_child(proc, printer.tick, started)
        result = _read_result(result_file)
        print_summary(result, out, time.monotonic() - started)
        if result.get("state") == "success":
            return 0
        keep_log = True
        _report_failure(result, out, log_file)
        return 1
    except TimeoutError as err:
        out.write(f"\nerror: {err}; Airflow log: {log_file}\n")
        keep_log = True
        return 1
    except KeyboardInterrupt:
        out.write("\nInterrupted: stopping the DAG run and the simulator.\n")
        return 130
    finally:
        if proc is not None:
            stop_process_group(proc)
        sim.stop()
        shutil.rmtree(work, ignore_errors=True)
        if not keep_log:
            log_file.unlink(missing_ok=True)
        signal.signal(signal.SIGTERM, previous)


def _start_dag_run(
    dag: Path, result_file: Path, work: Path, sim: Simulator, log: TextIO
) -> subprocess.Popen[Any]:
    """The DAG run, in its own process and process group (Ctrl-C reaches only us; we stop its group)."""
    return subprocess.Popen(
        [sys.executable, "-m", "airflow_jobstatus._demo_run", str(dag), str(result_file)],
        env=child_env(work, sim),
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


def _report_failure(result: dict[str, Any], out: TextIO, log_file: Path) -> None:
    """Which tasks failed or did not run, and the log's error lines."""
    tasks = result.get("tasks") or {}
    failed = [t for t, state in tasks.items() if state == "failed"]
    blocked = [t for t, state in tasks.items() if state == "upstream_failed"]
    out.write(f"\nThe DAG run failed{': ' + result['error'] if result.get('error') else ''}.\n")
    if failed:
        out.write(
            f"Failed: {', '.join(failed)}" + (f"; not run: {', '.join(blocked)}" if blocked else "") + "\n"
        )
    out.write(f"Full Airflow log: {log_file}\n")
    for line in error_tail(log_file):
        out.write(f"  | {line}\n")


def watch_child(proc: subprocess.Popen[Any], tick: Callable[..., None], started: float) -> None:
    """Call ``tick`` until the child exits (or times out), then once more for the final states."""
    while proc.poll() is None:
        if time.monotonic() - started > CHILD_TIMEOUT:
            raise TimeoutError(f"the demo DAG did not finish within {CHILD_TIMEOUT:.0f} s")
        tick()
        time.sleep(TICK)
    tick(final=True)


def _read_result(path: Path) -> dict[str, Any]:
    try:
        result: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return result
    except (OSError, ValueError):
        return {"state": "error", "error": "the DAG runner wrote no result (it crashed: see the log)"}
