"""Processes of the deployment harness: a throwaway PostgreSQL, the simulator, and Airflow's components.

Every process is started in its own session (so its process group id is its pid) and stopped by
that group: SIGTERM, a grace period, then SIGKILL for whatever is left. Nothing is found or killed
by name.
"""

from __future__ import annotations

import glob
import json
import os
import secrets
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import httpx
import psutil
import pytest
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception_type,
    retry_if_result,
    stop_after_delay,
    wait_fixed,
)

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
DAGS = HERE / "dags"
#: The provider's example DAGs, parsed from the repository as a second DAG bundle (never copied).
EXAMPLE_DAGS = REPO / "example_dags"
LOCAL_BUNDLE = "airflow.dag_processing.bundles.local.LocalDagBundle"
#: The venv Airflow's components run from: this interpreter's, or ``JOBSTATUS_DEPLOY_VENV``'s
#: (``make test-deployment-oldest``: the oldest supported Airflow's matrix venv, .ci/matrix). The
#: harness itself and the simulator stay in this interpreter.
AIRFLOW_BIN = (
    Path(os.environ["JOBSTATUS_DEPLOY_VENV"]) / "bin"
    if os.environ.get("JOBSTATUS_DEPLOY_VENV")
    else Path(sys.executable).parent
)
AIRFLOW = str(AIRFLOW_BIN / "airflow")


def components_render_in_triggerer() -> bool:
    """Whether the components' Airflow (>= 3.3) renders a start-from-trigger task's templates in the
    triggerer; an older one starts a templated sensor on a worker (README "Supported Airflow versions")."""
    code = "from airflow.triggers.base import BaseTrigger as B; print(hasattr(B, 'render_template_fields'))"
    done = subprocess.run(
        [str(AIRFLOW_BIN / "python"), "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    return done.stdout.strip().endswith("True")


T = TypeVar("T")
#: Scenario name → what it measured; printed at the end of the run (conftest.pytest_terminal_summary).
METRICS: dict[str, dict[str, Any]] = {}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


def wait_for(
    what: str,
    check: Callable[[], T],
    timeout: float,
    interval: float = 1.0,
    on_fail: Callable[[], str] | None = None,
) -> T:
    """Poll ``check()`` until it returns a truthy value; pytest.fail naming ``what`` if it never does.

    HTTP and database errors count as "not yet" (a component may be starting or busy).
    """
    import psycopg2

    retrying = Retrying(
        stop=stop_after_delay(timeout),
        wait=wait_fixed(interval),
        retry=retry_if_result(lambda v: not v)
        | retry_if_exception_type((httpx.HTTPError, psycopg2.OperationalError)),
    )
    try:
        return retrying(check)
    except RetryError as err:
        last = err.last_attempt
        detail = repr(last.exception()) if last.failed else repr(last.result())
        extra = on_fail() if on_fail else ""
        pytest.fail(f"timed out after {timeout:.0f} s waiting for {what} (last: {detail[:500]})\n{extra}")


# ---- process sessions -------------------------------------------------------------------------------


def session_members(sid: int) -> list[psutil.Process]:
    """Live (non-zombie) processes of session ``sid``.

    A component is started as the leader of a new session; everything it starts stays in that
    session, including what moves to a process group of its own (Airflow's task and trigger-runner
    processes call setpgid), unless it calls setsid itself (PostgreSQL's postmaster does).
    """
    members = []
    for proc in psutil.process_iter(["status"]):
        try:
            if proc.info["status"] != psutil.STATUS_ZOMBIE and os.getsid(proc.pid) == sid:
                members.append(proc)
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return members


def stop_session(sid: int, grace: float = 20.0, first: signal.Signals = signal.SIGTERM) -> None:
    """``first`` to the leader's process group, up to ``grace`` s to exit, then SIGKILL the whole session."""
    if first != signal.SIGKILL and session_members(sid):
        with suppress(ProcessLookupError):
            os.killpg(sid, first)
        deadline = time.monotonic() + grace
        while session_members(sid) and time.monotonic() < deadline:
            time.sleep(0.2)
    for _ in range(3):
        members = session_members(sid)
        if not members:
            return
        for member in members:
            with suppress(psutil.NoSuchProcess):
                member.kill()
        psutil.wait_procs(members, timeout=10)


@dataclass
class Proc:
    """One process started as a session (and process group) leader: ``pid`` is its session id."""

    name: str
    popen: subprocess.Popen[Any]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def members(self) -> list[psutil.Process]:
        return session_members(self.pid)

    def cpu_seconds(self) -> float:
        """CPU used so far by the session's live processes and the children they have reaped."""
        total = 0.0
        for member in self.members():
            try:
                t = member.cpu_times()
                total += t.user + t.system + t.children_user + t.children_system
            except psutil.Error:
                continue
        return total

    def stop(self, grace: float = 20.0) -> None:
        stop_session(self.pid, grace)
        self.reap()

    def pause(self) -> list[psutil.Process]:
        """SIGSTOP every process of the session (a frozen node: alive, silent); returns them for ``resume``."""
        members = self.members()
        for member in members:
            with suppress(psutil.NoSuchProcess):
                member.suspend()
        return members

    @staticmethod
    def resume(members: list[psutil.Process]) -> None:
        for member in members:
            with suppress(psutil.NoSuchProcess):
                member.resume()

    def kill(self) -> None:
        """SIGKILL every process of the session at once (a lost node), and reap the leader."""
        stop_session(self.pid, first=signal.SIGKILL)
        self.reap()

    def reap(self) -> None:
        with suppress(subprocess.TimeoutExpired):
            self.popen.wait(10)


def spawn(
    name: str, argv: list[str], env: dict[str, str], log: Path, stdout: int | IO[Any] | None = None
) -> Proc:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        popen = subprocess.Popen(
            argv,
            env=env,
            stdout=out if stdout is None else stdout,
            stderr=out,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=str(REPO),
        )
    return Proc(name, popen, log)


# ---- PostgreSQL -------------------------------------------------------------------------------------


def postgres_bindir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<major>/bin`` holding initdb and pg_ctl."""
    found = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")]
    found = [d for d in found if (d / "pg_ctl").exists() and (d / "postgres").exists()]
    return max(found, key=lambda d: int(d.parent.name) if d.parent.name.isdigit() else 0) if found else None


def install_postgres(log: Path) -> Path:
    """``apt-get install postgresql`` (no default cluster is created); the bin dir, or pytest.fail."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.fail(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb) and cannot be installed "
            "here (needs root and apt-get): run `apt-get install -y postgresql`."
        )
    conf = Path("/etc/postgresql-common/createcluster.conf")
    if not conf.exists():  # Debian's postinst would otherwise create and start a "main" cluster
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text("create_main_cluster = false\n")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    with log.open("ab") as out:
        for argv in (
            ["apt-get", "update"],
            ["apt-get", "install", "-y", "--no-install-recommends", "postgresql"],
        ):
            done = subprocess.run(
                argv, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=600
            )
            if done.returncode != 0:
                pytest.fail(
                    f"`{' '.join(argv)}` failed (exit {done.returncode}); cannot install PostgreSQL:\n{log_tail(log)}"
                )
    bindir = postgres_bindir()
    if bindir is None:
        pytest.fail(
            f"apt-get installed postgresql but no /usr/lib/postgresql/*/bin/initdb exists:\n{log_tail(log)}"
        )
    return bindir


@dataclass
class Postgres:
    """A throwaway cluster in a temp dir, owned by the ``postgres`` system user when run as root."""

    bindir: Path
    root: Path = field(
        default_factory=lambda: Path(tempfile.mkdtemp(prefix="jobstatus-deploy-pg-", dir="/tmp"))
    )
    port: int = field(default_factory=free_port)
    user: str = "airflow"
    database: str = "airflow"
    postmaster_pid: int | None = None

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "postgres.log"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://{self.user}@127.0.0.1:{self.port}/{self.database}"

    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user={self.user} dbname={self.database}"

    def _run(self, *argv: str, timeout: float = 120) -> None:
        command = [str(self.bindir / argv[0]), *argv[1:]]
        if os.geteuid() == 0:  # initdb refuses to run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        with self.log.open("ab") as out:
            done = subprocess.run(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                timeout=timeout,
                cwd=str(self.root),
            )
        if done.returncode != 0:
            pytest.fail(f"`{' '.join(command)}` failed (exit {done.returncode}):\n{log_tail(self.log)}")

    def start(self) -> Postgres:
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self.log.touch()
        if os.geteuid() == 0:
            shutil.chown(self.log, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", self.user, "-A", "trust", "-E", "UTF8", "--no-sync")
        options = " ".join(
            [
                "-c listen_addresses=127.0.0.1",
                f"-p {self.port}",
                f"-k {self.root}",  # the unix socket, out of /var/run/postgresql
                "-c max_connections=300",
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off",  # throwaway data
            ]
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "120", "start"
        )
        self.postmaster_pid = int((self.data / "postmaster.pid").read_text().split()[0])
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, self.database)
        return self

    def stop(self) -> None:
        pid = self.postmaster_pid
        if pid is not None and psutil.pid_exists(pid):
            with suppress(Exception, pytest.fail.Exception):  # a failed stop falls through to the kill
                self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop", timeout=90)
            stop_session(pid, grace=10.0)  # the postmaster leads a session of its own (pg_ctl setsid)
        shutil.rmtree(self.root, ignore_errors=True)

    @contextmanager
    def connect(self) -> Iterator[Any]:
        import psycopg2

        conn = psycopg2.connect(self.dsn(), connect_timeout=10)
        conn.autocommit = True
        try:
            yield conn
        finally:
            conn.close()

    def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with self.connect() as conn, conn.cursor() as cur:
            cur.execute(sql, args)
            return list(cur.fetchall())


# ---- the simulator ----------------------------------------------------------------------------------


@dataclass
class SimProc:
    """``simserver.py`` in its own process, driven over its /_sim/ API and the harness API."""

    proc: Proc
    http_url: str
    harness_url: str
    env: dict[str, str]
    sim: httpx.Client
    harness: httpx.Client

    @classmethod
    def start(cls, log: Path, env: dict[str, str]) -> SimProc:
        proc = spawn(
            "simulator", [sys.executable, str(HERE / "simserver.py")], env, log, stdout=subprocess.PIPE
        )
        assert proc.popen.stdout is not None
        selector = selectors.DefaultSelector()
        selector.register(proc.popen.stdout, selectors.EVENT_READ)
        if not selector.select(timeout=120):
            proc.stop()
            pytest.fail(f"the simulator did not start within 120 s:\n{log_tail(log)}")
        line = proc.popen.stdout.readline()
        if not line:
            proc.stop()
            pytest.fail(f"the simulator exited at start:\n{log_tail(log)}")
        info = json.loads(line)
        return cls(
            proc,
            info["http_url"],
            info["harness_url"],
            info["env"],
            httpx.Client(base_url=info["http_url"] + "/_sim", timeout=30),
            httpx.Client(base_url=info["harness_url"], timeout=60),
        )

    def stop(self) -> None:
        self.sim.close()
        self.harness.close()
        self.proc.stop(grace=10)

    def post(self, path: str, body: dict[str, Any]) -> Any:
        response = self.sim.post(path, json=body)
        if response.status_code >= 300:
            raise RuntimeError(f"simulator: POST /_sim{path} {body}: {response.status_code} {response.text}")
        return response.json()

    def reset(self) -> None:
        self.post("/reset", {})

    def add_job(self, service: str, job_id: str, timeline: list[dict[str, Any]] | None, **where: Any) -> None:
        self.post("/jobs", {"service": service, "job_id": job_id, "timeline": timeline, **where})

    def fault(self, kind: str, count: int, service: str, job_id: str) -> None:
        self.post("/faults", {"kind": kind, "count": count, "service": service, "job_id": job_id})

    def default_timeline(
        self, service: str, timeline: list[dict[str, Any]], job_type: str | None = None
    ) -> None:
        self.post("/default-timelines", {"service": service, "timeline": timeline, "job_type": job_type})

    def calls(self, service: str | None = None) -> list[dict[str, Any]]:
        response = self.harness.get("/calls", params={"service": service} if service else {})
        response.raise_for_status()
        return list(response.json()["calls"])

    def jobs(self, service: str | None = None) -> list[dict[str, Any]]:
        response = self.harness.get("/jobs", params={"service": service} if service else {})
        response.raise_for_status()
        return list(response.json()["jobs"])

    def release(self, service: str, job_id: str, timeline: list[dict[str, Any]]) -> dict[str, float]:
        response = self.harness.post(
            "/release", json={"service": service, "job_id": job_id, "timeline": timeline}
        )
        if response.status_code != 200:
            raise RuntimeError(
                f"simulator: release {service}/{job_id}: {response.status_code} {response.text}"
            )
        return dict(response.json())

    def flip(self, service: str, job_id: str, on_read: int, timeline: list[dict[str, Any]]) -> None:
        body = {"service": service, "job_id": job_id, "on_read": on_read, "timeline": timeline}
        self.harness.post("/flip", json=body).raise_for_status()


# ---- Airflow ----------------------------------------------------------------------------------------


class AllAdminsToken(httpx.Auth):
    """A bearer token for the REST API from the simple auth manager's all-admins ``GET /auth/token``.

    Airflow 3.3 makes every request an admin one with ``simple_auth_manager_all_admins``; 3.1 and
    3.2 still answer 401 to a request without a token. Fetched on the first 401, then sent each time.
    """

    def __init__(self, root: str) -> None:
        self.root = root
        self.token: str | None = None

    def auth_flow(self, request: httpx.Request) -> Iterator[httpx.Request]:
        if self.token:
            request.headers["Authorization"] = f"Bearer {self.token}"
        response = yield request
        if response.status_code == 401:
            answer = httpx.get(f"{self.root}/auth/token", timeout=60)
            if answer.status_code in (200, 201):
                self.token = str(answer.json()["access_token"])
                request.headers["Authorization"] = f"Bearer {self.token}"
                yield request


@dataclass
class Airflow:
    """One AIRFLOW_HOME, one metadata DB, and Airflow's components as separate processes."""

    home: Path
    db: Postgres
    sim: SimProc
    env: dict[str, str]
    api_port: int
    procs: dict[str, Proc] = field(default_factory=dict)
    triggerer_jobs: dict[str, int] = field(default_factory=dict)
    warm_ups: list[dict[str, Any]] = field(default_factory=list)
    warm_triggerers: set[int] = field(default_factory=set)  # TriggererJob ids that ran a warm-up wait
    api: httpx.Client = field(init=False)
    renders_in_triggerer: bool = field(init=False)

    def __post_init__(self) -> None:
        self.renders_in_triggerer = components_render_in_triggerer()
        root = f"http://127.0.0.1:{self.api_port}"
        self.api = httpx.Client(base_url=f"{root}/api/v2", timeout=60, auth=AllAdminsToken(root))

    @classmethod
    def environment(
        cls, home: Path, db: Postgres, sim: SimProc, api_port: int, settings: dict[str, str]
    ) -> dict[str, str]:
        """A clean environment (nothing from the test session's own Airflow settings) for every component."""
        from cryptography.fernet import Fernet

        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTEST", "COV_"))}
        env.update(sim.env)
        env.update(
            PATH=str(AIRFLOW_BIN) + os.pathsep + env.get("PATH", ""),
            PYTHONPATH=str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""),
            AIRFLOW_HOME=str(home),
            AIRFLOW__CORE__DAGS_FOLDER=str(DAGS),
            # The harness's DAGs (the dags folder) and the example DAGs, each its own bundle.
            AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST=json.dumps(
                [
                    {"name": "dags-folder", "classpath": LOCAL_BUNDLE, "kwargs": {}},
                    {
                        "name": "example-dags",
                        "classpath": LOCAL_BUNDLE,
                        "kwargs": {"path": str(EXAMPLE_DAGS)},
                    },
                ]
            ),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__CORE__EXECUTOR="LocalExecutor",
            AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=db.url,
            AIRFLOW__CORE__FERNET_KEY=Fernet.generate_key().decode(),
            AIRFLOW__API_AUTH__JWT_SECRET=secrets.token_urlsafe(32),
            AIRFLOW__API__SECRET_KEY=secrets.token_urlsafe(32),
            # No login: the simple auth manager makes every request an admin one.
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="True",
            AIRFLOW__API__HOST="127.0.0.1",
            AIRFLOW__API__PORT=str(api_port),
            AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"http://127.0.0.1:{api_port}/execution/",
            AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()),
            AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=str(free_port()),
        )
        env.update(settings)  # a setting may replace one of the above (the benchmark's PYTHONPATH)
        return env

    def run(self, name: str, *args: str, timeout: float = 600) -> None:
        """Run one airflow CLI command to completion (in its own process group, killed on timeout)."""
        proc = spawn(name, [AIRFLOW, *args], self.env, self.home / "logs-components" / f"{name}.log")
        try:
            code = proc.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail(
                f"`airflow {' '.join(args)}` did not finish within {timeout:.0f} s:\n{log_tail(proc.log)}"
            )
        if code != 0:
            pytest.fail(f"`airflow {' '.join(args)}` failed (exit {code}):\n{log_tail(proc.log)}")

    def start(self, name: str, *args: str, env: dict[str, str] | None = None) -> Proc:
        proc = spawn(
            name, [AIRFLOW, *args], {**self.env, **(env or {})}, self.home / "logs-components" / f"{name}.log"
        )
        self.procs[name] = proc
        return proc

    def start_triggerer(self, name: str) -> Proc:
        """Start a triggerer and wait for its TriggererJob row (so each job id maps to a process)."""
        known = {row[0] for row in self.db.query("SELECT id FROM job WHERE job_type = 'TriggererJob'")}
        proc = self.start(
            name, "triggerer", env={"AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port())}
        )

        def registered() -> int | None:
            if not proc.alive():
                pytest.fail(f"{name} exited:\n{log_tail(proc.log)}")
            rows = self.db.query("SELECT id FROM job WHERE job_type = 'TriggererJob' AND state = 'running'")
            new = [r[0] for r in rows if r[0] not in known]
            return new[0] if new else None

        self.triggerer_jobs[name] = wait_for(
            f"{name} to register", registered, 180, on_fail=lambda: log_tail(proc.log)
        )
        return proc

    def warm_up(self, attempts: int = 10, timeout: float = 300.0) -> dict[str, Any]:
        """Until every live triggerer has run a wait: one wait at a time, on whichever triggerer takes it.

        A triggerer builds Airflow's in-process execution API on the first request its trigger runner
        sends it (here: a sensor's console link, pushed from the triggerer), in the loop that also
        heartbeats: on this 2-core machine under load that took 15-44 s, past the harness's
        ``triggerer_health_check_threshold``, so the other triggerer took its triggers over (and
        Airflow 3.3.2 calls ``on_kill`` on the copies the first one cancels when it comes back,
        apache/airflow#73454: operators' jobs cancelled). Paid here, with nothing else running; then
        every heartbeat is fresh again before a scenario starts.
        """
        started = time.monotonic()
        live = {
            n: self.triggerer_jobs[n] for n, p in self.procs.items() if n in self.triggerer_jobs and p.alive()
        }
        warm: set[int] = set(self.warm_triggerers)
        runs = 0
        while not set(live.values()) <= warm and runs < attempts:
            runs += 1
            job_id = f"warm-up-{len(self.warm_triggerers)}-{runs}-{int(time.time())}"
            # The warm-up sensor's job id is templated: on an Airflow whose triggerer cannot render it,
            # the sensor starts on a worker, so its job must still run at that first read to defer.
            first = [] if self.renders_in_triggerer else [{"state": "RUNNING", "duration": 5}]
            self.sim.add_job("dataproc", job_id, [*first, {"state": "DONE"}])
            # The warm ones frozen until the trigger is assigned (< 10 s: well within the health check),
            # so a cold one takes it.
            frozen = [m for n, j in live.items() if j in warm for m in self.procs[n].pause()]
            try:
                run_id = self.trigger("deploy_warm_up", conf={"job_id": job_id})
                deadline = time.monotonic() + 10
                while (
                    frozen
                    and time.monotonic() < deadline
                    and not self.db.query(
                        "SELECT 1 FROM task_instance ti JOIN trigger t ON ti.trigger_id = t.id WHERE "
                        "ti.dag_id = 'deploy_warm_up' AND ti.run_id = %s AND t.triggerer_id IS NOT NULL",
                        run_id,
                    )
                ):
                    time.sleep(0.5)
            finally:
                Proc.resume(frozen)

            def finished(run_id: str = run_id) -> str | None:
                self.check_alive()
                rows = self.db.query(
                    "SELECT state FROM dag_run WHERE dag_id = 'deploy_warm_up' AND run_id = %s", run_id
                )
                return rows[0][0] if rows and rows[0][0] in ("success", "failed") else None

            state = wait_for("a warm-up wait", finished, timeout, interval=1, on_fail=self.diagnostics)
            if state != "success":
                pytest.fail(f"the warm-up wait ended {state}:\n{self.diagnostics()}")
            logs = self.home / "logs" / "dag_id=deploy_warm_up" / f"run_id={run_id}" / "task_id=wait"
            warm |= {
                int(m) for f in logs.glob("*.trigger.*.log") if (m := f.name.rsplit(".", 2)[-2]).isdigit()
            }
        self.warm_triggerers = warm
        cold = sorted(n for n, j in live.items() if j not in warm)
        if cold:
            pytest.fail(
                f"no warm-up wait ran on {cold} ({live}) in {runs} attempts (ran on: {sorted(warm)}):\n"
                + self.diagnostics()
            )
        settle_from = time.time()

        def heartbeats_fresh() -> bool:
            rows = self.db.query(
                "SELECT id, extract(epoch FROM latest_heartbeat) FROM job WHERE id = ANY(%s)",
                list(live.values()),
            )
            return len(rows) == len(live) and all(float(t) > settle_from for _, t in rows)

        wait_for(
            "every triggerer to heartbeat after the warm-up", heartbeats_fresh, 120, on_fail=self.diagnostics
        )
        cost = {"runs": runs, "s": round(time.monotonic() - started, 1), "triggerers": sorted(live)}
        self.warm_ups.append(cost)
        return cost

    def check_alive(self) -> None:
        dead = [
            f"{n} (exit {p.popen.returncode}):\n{log_tail(p.log)}"
            for n, p in self.procs.items()
            if not p.alive() and not n.startswith("killed-")
        ]
        if dead:
            pytest.fail("Airflow components exited:\n" + "\n".join(dead))

    def cpu_seconds(self) -> dict[str, float]:
        return {name: round(proc.cpu_seconds(), 1) for name, proc in self.procs.items() if proc.alive()}

    def stop(self) -> None:
        self.api.close()
        # The scheduler first, so it does not react to the others going away; then the rest.
        order = sorted(self.procs, key=lambda n: (n != "scheduler", n))
        for name in order:
            self.procs[name].stop(grace=30)

    # -- REST API ----------------------------------------------------------------------------------
    def get(self, path: str, **params: Any) -> Any:
        response = self.api.get(path, params=params)
        response.raise_for_status()
        return response.json()

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        self.api.patch(f"/dags/{dag_id}", json={"is_paused": False}).raise_for_status()
        response = self.api.post(f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf or {}})
        response.raise_for_status()
        return str(response.json()["dag_run_id"])

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            page = self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", limit=100, offset=len(out))
            out.extend(page["task_instances"])
            if len(out) >= page["total_entries"] or not page["task_instances"]:
                return out

    def states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        return {ti["task_id"]: ti["state"] for ti in self.task_instances(dag_id, run_id)}

    def state_counts(self, dag_id: str, run_id: str) -> dict[str | None, int]:
        """TI states of a run counted in the metadata DB (cheap enough to poll, unlike the REST listing)."""
        rows = self.db.query(
            "SELECT state, count(*) FROM task_instance WHERE dag_id = %s AND run_id = %s GROUP BY state",
            dag_id,
            run_id,
        )
        return {state: int(n) for state, n in rows}

    def run_state(self, dag_id: str, run_id: str) -> str:
        return str(self.get(f"/dags/{dag_id}/dagRuns/{run_id}")["state"])

    def lock_waits(self, longer_than: float = 5.0) -> list[dict[str, Any]]:
        """Sessions waiting on a lock for more than ``longer_than`` s, each with the sessions blocking it.

        Every session is named by the OS process holding its client socket (``pid``, command line),
        found from its client port, so a lock held by a task or a component's child shows whose it is.
        """
        rows = self.db.query(
            "SELECT pid, client_port, state, wait_event_type, extract(epoch FROM now() - query_start), "
            "extract(epoch FROM now() - xact_start), left(query, 300), pg_blocking_pids(pid) "
            "FROM pg_stat_activity WHERE datname = %s",
            self.db.database,
        )
        sessions = {
            row[0]: {
                "backend": row[0],
                "state": row[2],
                "wait": row[3],
                "query_s": round(float(row[4] or 0), 1),
                "xact_s": round(float(row[5] or 0), 1),
                "query": row[6],
                "process": self._process_on_port(row[1]),
            }
            for row in rows
        }
        waits = []
        for row in rows:
            if row[3] == "Lock" and float(row[4] or 0) > longer_than:
                waits.append(
                    {**sessions[row[0]], "blocked_by": [sessions.get(b, {"backend": b}) for b in row[7]]}
                )
        return waits

    @staticmethod
    def _process_on_port(port: int | None) -> str | None:
        if not port:
            return None
        for conn in psutil.net_connections("tcp"):
            if conn.laddr and conn.laddr.port == port and conn.pid:
                try:
                    proc = psutil.Process(conn.pid)
                    return f"{conn.pid} {' '.join(proc.cmdline())[:160]}"
                except psutil.Error:
                    return str(conn.pid)
        return None

    def diagnostics(self) -> str:
        return "\n".join(f"--- {n} ---\n{log_tail(p.log, 15)}" for n, p in self.procs.items())


# ---- scale runs (tests/deployment/test_scale.py, benchmarks/deployment_scale.py) ----------------------


@contextmanager
def deployment(
    root: Path,
    settings: dict[str, str] | Callable[[SimProc], dict[str, str]],
    dag_ids: tuple[str, ...],
    triggerers: tuple[str, ...] = ("triggerer-1", "triggerer-2"),
    timeout: float = 600.0,
) -> Iterator[Airflow]:
    """PostgreSQL, the simulator and Airflow's components under ``root`` outside pytest's fixtures (the
    benchmark's way to the conftest session): up, ``dag_ids`` parsed, every triggerer warmed up; all
    stopped by their sessions on exit. ``settings`` may be a function of the simulator (its connections)."""
    bindir = postgres_bindir() or install_postgres(root / "apt.log")
    db = Postgres(bindir)
    sim: SimProc | None = None
    af: Airflow | None = None
    try:
        db.start()
        sim_env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        sim_env["PYTHONPATH"] = str(REPO)
        sim = SimProc.start(root / "simulator.log", sim_env)
        home = root / "airflow-home"
        home.mkdir(parents=True, exist_ok=True)
        api_port = free_port()
        chosen = settings(sim) if callable(settings) else settings
        af = Airflow(home, db, sim, Airflow.environment(home, db, sim, api_port, chosen), api_port)
        af.run("db-migrate", "db", "migrate", timeout=timeout)
        for name in ("scheduler", "dag-processor", "api-server"):
            af.start(name, name)
        for name in triggerers:
            af.start_triggerer(name)

        def ready() -> bool:
            assert af is not None
            af.check_alive()
            return all(af.api.get(f"/dags/{dag_id}").status_code == 200 for dag_id in dag_ids)

        wait_for("the api-server and the DAGs", ready, timeout, interval=2, on_fail=af.diagnostics)
        af.warm_up()
        yield af
    finally:
        if af is not None:
            af.stop()
        if sim is not None:
            sim.stop()
        db.stop()


class Sampler:
    """CPU seconds and RSS of named processes' sessions, sampled every ``interval`` s in a thread.

    ``mark(name)`` records a point (e.g. "all deferred") so CPU can be split into phases; RSS is the
    sum over the session's live processes (a triggerer and its trigger-runner child)."""

    def __init__(self, procs: dict[str, Proc], interval: float = 1.0) -> None:
        import threading

        self.procs = procs
        self.interval = interval
        self.samples: list[dict[str, Any]] = []
        self.marks: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)

    def sample(self) -> dict[str, Any]:
        row: dict[str, Any] = {"t": time.monotonic()}
        for name, proc in self.procs.items():
            rss, cpu = 0, 0.0
            for member in proc.members():
                try:
                    rss += member.memory_info().rss
                    t = member.cpu_times()
                    cpu += t.user + t.system + t.children_user + t.children_system
                except psutil.Error:
                    continue
            row[name] = (cpu, rss)
        return row

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.samples.append(self.sample())

    def __enter__(self) -> Sampler:
        self.samples.append(self.sample())
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self.samples.append(self.sample())

    def mark(self, name: str) -> None:
        self.marks[name] = time.monotonic()

    def _at(self, t: float) -> dict[str, Any]:
        return min(self.samples, key=lambda s: abs(s["t"] - t))

    def summary(self) -> dict[str, dict[str, Any]]:
        """Per process: CPU s over the whole run and between consecutive marks, peak and last RSS (MiB)."""
        from itertools import pairwise

        first, last = self.samples[0], self.samples[-1]
        points = [("start", first["t"]), *sorted(self.marks.items(), key=lambda m: m[1]), ("end", last["t"])]
        out: dict[str, dict[str, Any]] = {}
        for name in self.procs:
            phases = {}
            for (a, ta), (b, tb) in pairwise(points):
                phases[f"{a}->{b}"] = round(self._at(tb)[name][0] - self._at(ta)[name][0], 1)
            out[name] = {
                "cpu_s": round(last[name][0] - first[name][0], 1),
                "cpu_s_by_phase": phases,
                "cpu_pct_of_a_core": round(
                    100 * (last[name][0] - first[name][0]) / max(last["t"] - first["t"], 1e-9), 1
                ),
                "rss_mib_max": round(max(s[name][1] for s in self.samples) / 2**20, 1),
                "rss_mib_start_end": [round(first[name][1] / 2**20, 1), round(last[name][1] / 2**20, 1)],
            }
        return out
