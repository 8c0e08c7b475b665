"""A standalone Airflow for the board's tests: ``tests.e2e.test_e2e``'s set-up plus the plugin, users and a team.

On top of the e2e environment (``airflow_env``; same simulator connections, LocalExecutor, SQLite):
- the plugin: through its ``airflow.plugins`` entry point when the package is installed with it, else
  from a plugins folder holding one import line;
- the simple auth manager with passwords and three users: ``admin`` (Admin), ``viewer`` (Viewer) and
  ``ops_viewer`` (Viewer of team ``ops``);
- multi-team mode, with a second DAG bundle owned by team ``ops``: its DAGs are readable only by
  members of ``ops`` (and admins). That is the simple auth manager's only per-DAG permission.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import httpx

from airflow_jobstatus.simulator import Simulator
from tests.e2e.test_e2e import EXAMPLES, Airflow, airflow_env, free_port, log_tail, stop_group

HERE = Path(__file__).resolve().parent
PLUGIN = "airflow_jobstatus.ui.plugin:CloudJobsPlugin"
OPS_TEAM = "ops"
OPS_BUNDLE = "ops-dags"
#: user -> (role, teams)
USERS = {"admin": ("admin", ""), "viewer": ("viewer", ""), "ops_viewer": ("viewer", OPS_TEAM)}
LOCAL_BUNDLE = "airflow.dag_processing.bundles.local.LocalDagBundle"


def plugin_entry_point_installed() -> bool:
    return any(ep.value == PLUGIN for ep in entry_points(group="airflow.plugins"))


@dataclass
class Deployment:
    """The running Airflow, its simulator, and one logged-in API client per user."""

    airflow: Airflow
    sim: Simulator
    base_url: str
    passwords: dict[str, str]
    plugin_source: str
    tokens: dict[str, str] = field(default_factory=dict)

    def token(self, user: str) -> str:
        if user not in self.tokens:
            response = httpx.post(
                f"{self.base_url}/auth/token",
                json={"username": user, "password": self.passwords[user]},
                timeout=30,
            )
            response.raise_for_status()
            self.tokens[user] = response.json()["access_token"]
        return self.tokens[user]

    def client(self, user: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token(user)}"} if user else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=60)

    def board(self, user: str | None, **params: Any) -> httpx.Response:
        with self.client(user) as client:
            return client.get("/cloud-jobs/api/jobs", params=params)


def _run(command: list[str], env: dict[str, str], log: Path) -> None:
    with log.open("a") as out:
        done = subprocess.run(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=600
        )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[2:])} failed:\n{log_tail(log)}")


@contextmanager
def standalone(home: Path, sim: Simulator) -> Iterator[Deployment]:
    """Start ``airflow standalone`` in ``home`` against ``sim``; stop it, process group and all, at the end."""
    dags, ops_dags, plugins = home / "dags", home / "ops_dags", home / "plugins"
    for folder in (dags, ops_dags, plugins):
        folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(EXAMPLES / "example_cross_cloud.py", dags)
    for dag_file in sorted((HERE / "dags").glob("*.py")):
        shutil.copy(dag_file, dags)
    shutil.copy(HERE / "dags" / "ops" / "cloud_jobs_ops.py", ops_dags)
    if plugin_entry_point_installed():
        plugin_source = "entry point"
    else:
        module, _, name = PLUGIN.partition(":")
        (plugins / "cloud_jobs_plugin.py").write_text(f"from {module} import {name}  # noqa: F401\n")
        plugin_source = "plugins folder"

    passwords = {user: secrets.token_urlsafe(12) for user in USERS}
    (home / "passwords.json").write_text(json.dumps(passwords))
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = airflow_env(home, sim, port)
    env.update(
        AIRFLOW__CORE__PLUGINS_FOLDER=str(plugins),
        AIRFLOW__API__BASE_URL=base_url,
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="False",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=",".join(
            ":".join(filter(None, (user, role, teams))) for user, (role, teams) in USERS.items()
        ),
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(home / "passwords.json"),
        AIRFLOW__CORE__MULTI_TEAM="True",
        AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST=json.dumps(
            [
                {"name": "dags-folder", "classpath": LOCAL_BUNDLE, "kwargs": {}},
                {
                    "name": OPS_BUNDLE,
                    "classpath": LOCAL_BUNDLE,
                    "kwargs": {"path": str(ops_dags)},
                    "team_name": OPS_TEAM,
                },
            ]
        ),
    )
    log = home / "standalone.log"
    # The team must exist before the dag-processor syncs the bundles that name it.
    _run([sys.executable, "-m", "airflow", "db", "migrate"], env, log)
    _run([sys.executable, "-m", "airflow", "teams", "create", OPS_TEAM], env, log)
    proc = None
    try:
        with log.open("a") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "airflow", "standalone"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        with httpx.Client(base_url=f"{base_url}/api/v2", timeout=30) as api:
            deployment = Deployment(Airflow(api, home, log, proc), sim, base_url, passwords, plugin_source)
            deployment.airflow.wait_for("the API server", lambda: _answers(base_url), 300)
            api.headers["Authorization"] = f"Bearer {deployment.token('admin')}"
            yield deployment
    finally:
        if proc is not None:
            stop_group(proc)


def _answers(base_url: str) -> bool:
    try:
        return httpx.get(f"{base_url}/api/v2/monitor/health", timeout=10).status_code == 200
    except httpx.HTTPError:
        time.sleep(1)
        return False
