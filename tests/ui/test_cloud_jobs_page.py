"""The Cloud jobs board in a real Airflow (``airflow standalone``) and headless Chromium.

One Airflow for the module (see ``standalone.py``), with the simulator behind every connection:
- run 1 of the cross-cloud example ends (CDM, DLI, Dataproc, Vertex AI all SUCCEEDED);
- run 2 is held with its DLI job RUNNING at 42 % (the simulator's DLI timeline has no end);
- ``cloud_jobs_failing`` waits on a DLI job that fails with a message;
- ``cloud_jobs_ops``, in team ``ops``'s bundle, waits on a DLI job only ``ops`` members may see;
- ``cloud_jobs_unstarted`` starts no job: its CDM start fails (the job is held RUNNING, CDM refuses to
  start it again) and its sensor is upstream failed. Their rows name no job (not that running one) and
  say why.
The connection form is checked too: every secret field masked, and the REST API hiding its value.
The simulator's jobs last four times their default (CDM, DLI and Dataproc run for 12 s or more) so a
task's deferral is always seen before its job ends.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from airflow_jobstatus.get_provider_info import get_provider_info
from airflow_jobstatus.services import REGISTRY
from airflow_jobstatus.simulator import DEFAULT_SCENARIOS, Simulator
from airflow_jobstatus.ui.board import NoJob
from tests.e2e.test_e2e import DAG_ID, xcom
from tests.ui.browser import chromium
from tests.ui.standalone import Deployment, standalone

pytestmark = [pytest.mark.ui, pytest.mark.e2e, pytest.mark.timeout(1500)]

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
FAILING_DAG, OPS_DAG, UNSTARTED_DAG = "cloud_jobs_failing", "cloud_jobs_ops", "cloud_jobs_unstarted"
FAILING_JOB, OPS_JOB = "sim-dli-failing", "sim-dli-ops"
#: The CDM job ``cloud_jobs_unstarted`` names: RUNNING for the whole module, so it cannot be started.
HELD_CDM_JOB = "sim-cdm-held"
HELD_CDM = [{"state": "RUNNING", "progress": 37, "counters": {"rows_read": 4242}}]
FAILURE_MESSAGE = "DLI.0005: Table orders_raw does not exist"
SLOWER = 4.0
RUN_TIMEOUT = 400.0
HELD_PROGRESS = 0.42
HELD_DLI = [
    {"state": "LAUNCHING", "duration": 2, "progress": 0},
    {
        "state": "RUNNING",
        "progress": HELD_PROGRESS,
        "sub_jobs": [
            {
                "id": 0,
                "name": "runJob at FileFormatWriter.scala:266",
                "stage_ids": [0],
                "status": "RUNNING",
                "num_tasks": 8,
                "num_active_tasks": 2,
                "num_completed_tasks": 3,
                "num_failed_tasks": 0,
                "num_active_stages": 1,
                "num_completed_stages": 0,
            }
        ],
    },
]


def slower(timeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**p, "duration": p["duration"] * SLOWER} if "duration" in p else p for p in timeline]


@dataclass
class Scene:
    deployment: Deployment
    run1: str
    run2: str
    failing_run: str
    ops_run: str
    unstarted_run: str

    @property
    def expected(self) -> dict[tuple[str, str, str], tuple[str, str]]:
        """(dag_id, run_id, task_id) -> (service, normalized state): one row per job."""
        return {
            (DAG_ID, self.run1, "cdm_migration"): ("cdm", "SUCCEEDED"),
            (DAG_ID, self.run1, "dli_sql"): ("dli", "SUCCEEDED"),
            (DAG_ID, self.run1, "wait_for_dataproc_job"): ("dataproc", "SUCCEEDED"),
            (DAG_ID, self.run1, "wait_for_batch_prediction"): ("vertex_ai", "SUCCEEDED"),
            (DAG_ID, self.run2, "cdm_migration"): ("cdm", "SUCCEEDED"),
            (DAG_ID, self.run2, "dli_sql"): ("dli", "RUNNING"),
            (FAILING_DAG, self.failing_run, "wait_for_dli_job"): ("dli", "FAILED"),
            (OPS_DAG, self.ops_run, "wait_for_ops_job"): ("dli", "SUCCEEDED"),
        }

    @property
    def no_jobs(self) -> dict[tuple[str, str, str], tuple[str, str]]:
        """(dag_id, run_id, task_id) -> (service, why the row names no job)."""
        return {
            (UNSTARTED_DAG, self.unstarted_run, "start_cdm_job"): ("cdm", NoJob.FAILED_BEFORE_SUBMITTING),
            (UNSTARTED_DAG, self.unstarted_run, "wait_for_cdm_job"): ("cdm", NoJob.UPSTREAM_FAILED),
        }

    @property
    def rows(self) -> dict[tuple[str, str, str], tuple[str, str | None]]:
        """Every row: (service, normalized state), None for the rows without a job."""
        return {**self.expected, **{k: (service, None) for k, (service, _) in self.no_jobs.items()}}


def trigger(deployment: Deployment, dag_id: str) -> str:
    response = deployment.airflow.api.post(f"/dags/{dag_id}/dagRuns", json={"logical_date": None})
    response.raise_for_status()
    return str(response.json()["dag_run_id"])


def ti_state(deployment: Deployment, dag_id: str, run_id: str, task_id: str) -> str | None:
    ti = deployment.airflow.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}")
    return ti.get("state")


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    sim = Simulator(scenarios=DEFAULT_SCENARIOS).start()
    try:
        for service in REGISTRY:
            sim.set_default_timeline(service, slower(sim.core.default_timeline(service)))
        # The Dataproc sensor starts a while after the job is submitted (another task submits it):
        # its job runs long enough for the sensor's deferral to be seen before the job ends.
        sim.set_default_timeline(
            "dataproc",
            [{"state": "PENDING", "duration": 4}, {"state": "RUNNING", "duration": 26}, {"state": "DONE"}],
        )
        with standalone(tmp_path_factory.mktemp("cloud-jobs"), sim) as deployment:
            airflow = deployment.airflow
            for dag_id in (DAG_ID, FAILING_DAG, OPS_DAG, UNSTARTED_DAG):
                airflow.wait_for(
                    f"DAG {dag_id} to be parsed", lambda d=dag_id: airflow.get(f"/dags/{d}"), 300
                )
            sim.add_job(
                "dli",
                FAILING_JOB,
                [
                    {"state": "RUNNING", "duration": 12, "progress": [0, 0.6]},
                    {"state": "FAILED", "progress": 0.6, "message": FAILURE_MESSAGE},
                ],
            )
            sim.add_job("dli", OPS_JOB, [{"state": "FINISHED", "progress": 1}])
            sim.add_job("cdm", HELD_CDM_JOB, HELD_CDM, cluster_id="sim-cluster")
            run1 = trigger(deployment, DAG_ID)
            failing_run = trigger(deployment, FAILING_DAG)
            ops_run = trigger(deployment, OPS_DAG)
            unstarted_run = trigger(deployment, UNSTARTED_DAG)
            # Once run 1 has submitted its DLI job, every later DLI submission stays RUNNING.
            airflow.wait_for("run 1's DLI job", lambda: xcom(airflow, run1, "dli_sql", "job_id"), RUN_TIMEOUT)
            sim.set_default_timeline("dli", HELD_DLI)
            run2 = trigger(deployment, DAG_ID)
            scene = Scene(deployment, run1, run2, failing_run, ops_run, unstarted_run)
            # Every job's task in its final state (the rest of the example's run does not matter here).
            unstarted = {"start_cdm_job": "failed", "wait_for_cdm_job": "upstream_failed"}
            for (dag_id, run_id, task_id), (_, job_state) in scene.rows.items():
                task_state = (
                    unstarted[task_id]
                    if dag_id == UNSTARTED_DAG
                    else {"SUCCEEDED": "success", "FAILED": "failed", "RUNNING": "deferred"}[str(job_state)]
                )
                airflow.wait_for(
                    f"{dag_id} {run_id} {task_id} to be {task_state}",
                    lambda d=dag_id, r=run_id, t=task_id, s=task_state: ti_state(deployment, d, r, t) == s,
                    RUN_TIMEOUT,
                )
            yield scene
    finally:
        sim.stop()


def rows_by_task(rows: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {(r["dag_id"], r["run_id"], r["task_id"]): r for r in rows}


def board_rows(deployment: Deployment, user: str, **params: Any) -> list[dict[str, Any]]:
    response = deployment.board(user, **params)
    response.raise_for_status()
    return list(response.json()["jobs"])


def settled_rows(
    scene: Scene, user: str, expected: dict[Any, tuple[str, str | None]] | None = None
) -> list[dict[str, Any]]:
    """The user's rows once each job shows its expected state (a live read may still be on its way)."""
    expected = scene.rows if expected is None else expected

    def check() -> list[dict[str, Any]] | None:
        rows = board_rows(scene.deployment, user)
        seen = {(r["dag_id"], r["run_id"], r["task_id"]): (r["service"], r["state"]) for r in rows}
        return rows if seen == expected else None

    rows: list[dict[str, Any]] = scene.deployment.airflow.wait_for(f"{user}'s rows", check, 120)
    return rows


def airflow_link(deployment: Deployment, dag_id: str, run_id: str, task_id: str) -> str | None:
    """The console link Airflow itself shows for the task (its operator extra link), if any."""
    body = deployment.airflow.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/links")
    return next((url for url in body["extra_links"].values() if url), None)


# -- the data API --------------------------------------------------------------------------------------
def test_the_board_api_requires_a_login(scene: Scene) -> None:
    assert scene.deployment.board(None).status_code == 401
    assert scene.deployment.board("admin").status_code == 200


def test_the_board_lists_one_row_per_job_with_its_state(scene: Scene) -> None:
    deployment = scene.deployment
    rows = rows_by_task(settled_rows(scene, "admin"))
    assert {k: (r["service"], r["state"]) for k, r in rows.items()} == scene.rows

    cdm = rows[(DAG_ID, scene.run1, "cdm_migration")]
    counters = {c["name"]: c["value"] for c in cdm["counters"]}
    assert counters["rows_read"] == 120000 and counters["rows_written"] == 119800
    assert counters["bytes_read"] == 48000000 and counters["bytes_written"] == 47900000
    assert cdm["progress"] == 1 and cdm["ended"] and cdm["source"] == "task"

    held = rows[(DAG_ID, scene.run2, "dli_sql")]
    assert held["progress"] == pytest.approx(HELD_PROGRESS) and held["task_state"] == "deferred"
    assert held["sub_jobs"]["tasks_completed"] == 3 and held["sub_jobs"]["tasks_total"] == 8
    assert held["source"] == "live" and held["last_polled"] and held["ended"] is None
    assert held["job_id"] == xcom(deployment.airflow, scene.run2, "dli_sql", "job_id")

    failed = rows[(FAILING_DAG, scene.failing_run, "wait_for_dli_job")]
    assert failed["job_id"] == FAILING_JOB and failed["native_state"] == "FAILED"
    assert FAILURE_MESSAGE in failed["message"]

    # A task that started no job names none (not the running job its arguments name), and says why.
    for key, (_, why) in scene.no_jobs.items():
        row = rows[key]
        assert (row["job_id"], row["console_url"], row["state"], row["source"]) == (None, None, None, None)
        assert (row["progress"], row["counters"], row["sub_jobs"]) == (None, [], None), row
        assert row["no_job_reason"] == why
    assert all(r["no_job_reason"] is None for k, r in rows.items() if k in scene.expected)

    # Most recent first: the jobs waited on now come before those that ended.
    active = [r["active"] for r in board_rows(deployment, "admin")]
    assert active == sorted(active, reverse=True) and active[0]


def test_console_links_are_the_ones_airflow_shows(scene: Scene) -> None:
    deployment = scene.deployment
    huawei = deployment.sim.connections()["huaweicloud_default"]["extra"]
    google = deployment.sim.connections()["google_cloud_default"]["extra"]
    for (dag_id, run_id, task_id), row in rows_by_task(settled_rows(scene, "admin")).items():
        if (dag_id, run_id, task_id) in scene.no_jobs:
            assert row["console_url"] is None  # Airflow's link names the job the task never started
            continue
        expected = airflow_link(deployment, dag_id, run_id, task_id)
        if expected is None:  # never on a worker (started in the triggerer): the registry's URL
            spec = REGISTRY[row["service"]]
            scope = huawei.get("region") if spec.cloud == "huawei" else google.get("project")
            fields = {"job_id": row["job_id"]}
            if row["service"] == "vertex_ai":
                fields |= {"location": "europe-west1", "job_type": row["job_type"]}
            expected = spec.console_url(spec.ref(fields), scope) or None
        assert expected and row["console_url"] == expected, (task_id, row["console_url"], expected)


def test_a_user_without_access_to_a_dag_gets_none_of_its_jobs(scene: Scene) -> None:
    deployment = scene.deployment
    not_ops = {k: v for k, v in scene.rows.items() if k[0] != OPS_DAG}
    admin = {r["dag_id"] for r in settled_rows(scene, "admin")}
    viewer = {r["dag_id"] for r in settled_rows(scene, "viewer", not_ops)}
    ops_viewer = {r["dag_id"] for r in settled_rows(scene, "ops_viewer")}
    assert admin == ops_viewer == {DAG_ID, FAILING_DAG, OPS_DAG, UNSTARTED_DAG}
    assert viewer == {DAG_ID, FAILING_DAG, UNSTARTED_DAG}
    # The API server's own routes agree: the viewer may not read that DAG at all.
    with deployment.client("viewer") as client:
        assert client.get(f"/api/v2/dags/{OPS_DAG}").status_code == 403
    assert deployment.board("viewer", dag_id=OPS_DAG).status_code == 403
    assert board_rows(deployment, "ops_viewer", dag_id=OPS_DAG)


def test_no_secret_reaches_the_api(scene: Scene) -> None:
    deployment = scene.deployment
    body = deployment.board("admin").text
    connections = deployment.sim.connections()
    secrets = [connections["huaweicloud_default"]["password"], connections["huaweicloud_default"]["login"]]
    for secret in secrets:
        assert secret and secret not in body
    for name in ("huaweicloud_default", "google_cloud_default", "conn_id", "INSERT OVERWRITE"):
        assert name not in body


# -- the page, as a user sees it -------------------------------------------------------------------------
def wait(driver: Any, what: str, check: Any, timeout: float = 120) -> Any:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.5).until(lambda d: check(d))
    except TimeoutException:
        pytest.fail(f"timed out waiting for {what}")


ROWS_JS = """
return Array.from(document.querySelectorAll('tr.job')).map(function (r) {
  var bar = r.querySelector('progress');
  var link = r.querySelector('a.console-link');
  return {
    dag_id: r.dataset.dagId, run_id: r.dataset.runId, task_id: r.dataset.taskId,
    service: r.dataset.service, state: r.dataset.state || null,
    state_class: r.querySelector('.state').className,
    progress: bar ? Number(bar.value) : null,
    progress_text: bar ? r.querySelector('.progress-text').textContent : null,
    job: r.querySelector('.job-cell').innerText, no_job: r.dataset.noJob,
    details: r.querySelector('.details-cell').innerText,
    console_url: link ? link.href : null,
    task_url: r.querySelector('a.task-link').getAttribute('href'),
  };
});
"""


def click(driver: Any, css: str) -> str:
    """Click the first element matching ``css``; returns its href. Retried if a refresh replaced it."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    def attempt(d: Any) -> str | None:
        try:
            element = d.find_element(By.CSS_SELECTOR, css)
            href = str(element.get_attribute("href"))
            element.click()
            return href
        except StaleElementReferenceException:
            return None

    return str(wait(driver, f"a click on {css}", attempt))


def open_board(driver: Any, deployment: Deployment, user: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{deployment.base_url}/api/v2/version")  # a page of the site, to set its cookie on
    driver.add_cookie({"name": "_token", "value": deployment.token(user), "path": "/"})
    driver.get(f"{deployment.base_url}/plugin/cloud-jobs")
    frame = wait(
        driver, "the board's frame", lambda d: d.find_elements(By.CSS_SELECTOR, "iframe[title='Cloud jobs']")
    )
    driver.switch_to.frame(frame[0])
    wait(
        driver,
        "the board to load",
        lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-loaded") == "true",
    )


def test_the_page_shows_every_job_in_the_airflow_ui(scene: Scene) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    deployment = scene.deployment
    expected = scene.rows
    api_rows = rows_by_task(settled_rows(scene, "admin"))
    ARTIFACTS.mkdir(exist_ok=True)
    with chromium() as driver:
        open_board(driver, deployment, "admin")
        # The nav has the entry, top level.
        driver.switch_to.default_content()
        assert driver.find_elements(By.CSS_SELECTOR, "a[href$='plugin/cloud-jobs']")
        driver.switch_to.frame(driver.find_element(By.CSS_SELECTOR, "iframe[title='Cloud jobs']"))

        def settled(d: Any) -> list[dict[str, Any]] | None:
            rows = d.execute_script(ROWS_JS)
            seen = {(r["dag_id"], r["run_id"], r["task_id"]): (r["service"], r["state"]) for r in rows}
            return rows if len(rows) == len(expected) and seen == expected else None

        rows = wait(driver, "one row per job, each in its state", settled)
        by_task = rows_by_task(rows)
        for key, (_, state) in expected.items():
            kind = {"SUCCEEDED": "success", "FAILED": "failure", "RUNNING": "active", None: "none"}[state]
            assert f"kind-{kind}" in by_task[key]["state_class"], by_task[key]

        held = by_task[(DAG_ID, scene.run2, "dli_sql")]
        assert held["progress"] == round(HELD_PROGRESS * 100) and held["progress_text"] == "42%"
        assert "3/8 tasks" in held["details"]
        bars = [r for r in rows if r["progress"] is not None and r["state"] == "RUNNING"]
        assert [(r["task_id"], r["run_id"]) for r in bars] == [("dli_sql", scene.run2)]

        cdm = by_task[(DAG_ID, scene.run1, "cdm_migration")]
        for text in (
            "rows read 120,000",
            "rows written 119,800",
            "bytes read 48,000,000",
            "bytes written 47,900,000",
        ):
            assert text in cdm["details"], cdm["details"]
        failed = by_task[(FAILING_DAG, scene.failing_run, "wait_for_dli_job")]
        assert FAILURE_MESSAGE in failed["details"]

        for key, (_, why) in scene.no_jobs.items():  # no job: the reason where the job would be
            assert by_task[key]["no_job"] == why and why in by_task[key]["job"], by_task[key]
            assert by_task[key]["console_url"] is None and by_task[key]["state"] is None
        for key, row in by_task.items():
            assert row["console_url"] == api_rows[key]["console_url"]
            assert row["console_url"] or key in scene.no_jobs
            assert row["task_url"] == api_rows[key]["task_url"]

        driver.switch_to.default_content()
        driver.save_screenshot(str(ARTIFACTS / "cloud-jobs.png"))
        driver.switch_to.frame(driver.find_element(By.CSS_SELECTOR, "iframe[title='Cloud jobs']"))

        # Filters: by service, then by state.
        Select(driver.find_element(By.ID, "filter-service")).select_by_value("dli")
        wait(
            driver,
            "only DLI rows",
            lambda d: (
                (rows := d.execute_script(ROWS_JS))
                and {r["service"] for r in rows} == {"dli"}
                and len(rows) == sum(1 for s, _ in expected.values() if s == "dli")
            ),
        )
        Select(driver.find_element(By.ID, "filter-state")).select_by_value("RUNNING")
        wait(
            driver,
            "only the running DLI job",
            lambda d: (
                [(r["task_id"], r["run_id"]) for r in d.execute_script(ROWS_JS)] == [("dli_sql", scene.run2)]
            ),
        )

        # A console link opens the job's console page in a new tab (no network: every host but
        # loopback resolves to nothing in this browser).
        handles = set(driver.window_handles)
        url = click(driver, "tr.job a.console-link")
        new = wait(driver, "a new tab", lambda d: set(d.window_handles) - handles)
        board_tab = driver.current_window_handle
        driver.switch_to.window(new.pop())
        assert wait(
            driver, "the console URL", lambda d: d.current_url.startswith(url.split("#")[0]) and d.current_url
        )
        driver.close()
        driver.switch_to.window(board_tab)

        # A task link opens the task instance in the Airflow UI itself (the whole window).
        driver.switch_to.frame(driver.find_element(By.CSS_SELECTOR, "iframe[title='Cloud jobs']"))
        target = click(driver, "tr.job a.task-link")
        driver.switch_to.default_content()
        wait(driver, "the task instance page", lambda d: d.current_url == target)
        assert "/dags/" in target and target.endswith("/tasks/dli_sql")


def test_the_page_of_a_viewer_without_access_lists_none_of_that_dags_jobs(scene: Scene) -> None:
    with chromium() as driver:
        open_board(driver, scene.deployment, "viewer")
        rows = wait(driver, "the viewer's rows", lambda d: d.execute_script(ROWS_JS))
        assert OPS_DAG not in {r["dag_id"] for r in rows}
        assert len(rows) == sum(1 for (dag, _, _) in scene.rows if dag != OPS_DAG)


def test_json_rows_are_plain_data(scene: Scene) -> None:
    body = scene.deployment.board("admin").json()
    assert json.loads(json.dumps(body)) == body
    assert {s["name"] for s in body["services"]} == set(REGISTRY)
    assert httpx.get(f"{scene.deployment.base_url}/cloud-jobs/static/app.py").status_code == 404
    assert httpx.get(f"{scene.deployment.base_url}/cloud-jobs/static/board.js").status_code == 200


# -- the connection form ---------------------------------------------------------------------------------
HUAWEI_FORM_CONN, GOOGLE_FORM_CONN = "huawei_form_check", "google_form_check"
SK = "sk-form-secret-5678"
HUAWEI_SECRET_EXTRAS = {
    "security_token": "sts-form-secret-1234",
    "proxy": "http://user:proxy-form-secret-99@proxy.example:3128",
}
KEY = "-----BEGIN PRIVATE KEY-----key-form-secret"
GOOGLE_SECRET_EXTRAS = {
    "keyfile_dict": json.dumps({"type": "service_account", "private_key": KEY}),
    "extra__google_cloud_platform__keyfile_dict": json.dumps({"private_key": KEY + "-prefixed"}),
}
FORM_INPUTS_JS = """
return Array.from(document.querySelectorAll('[role=dialog] input[name]')).map(function (i) {
  return {name: i.name, type: i.type, value: i.value,
          eye: !!i.parentElement.querySelector('button[aria-label="Show value"]')};
});
"""


def secret_extras(conn_type: str) -> set[str]:
    """The extras the provider declares secret: a password input in the connection form."""
    (conn,) = [c for c in get_provider_info()["connection-types"] if c["connection-type"] == conn_type]
    return {name for name, f in conn["conn-fields"].items() if f["schema"].get("format") == "password"}


def add_connection(
    deployment: Deployment, conn_id: str, conn_type: str, extra: dict[str, Any], **fields: Any
) -> None:
    """Create (or re-create) a connection in the metadata database through the REST API.

    Retried on a 5xx: SQLite answers "database is locked" after 5 s while the scheduler writes.
    """
    api = deployment.airflow.api
    body = {"connection_id": conn_id, "conn_type": conn_type, "extra": json.dumps(extra), **fields}

    def created() -> bool:
        api.delete(f"/connections/{conn_id}")  # a rerun against the same Airflow
        response = api.post("/connections", json=body)
        if response.status_code < 500:
            response.raise_for_status()
        return response.status_code == 201

    deployment.airflow.wait_for(f"connection {conn_id}", created, 60)


def press(driver: Any, by: str, selector: str, within: str = "") -> None:
    """Click an element once it can be clicked (a table refreshing, an accordion opening): retried.

    ``within``: only an element inside the table row holding this text (XPath ``selector`` relative to it).
    """
    from selenium.common.exceptions import ElementNotInteractableException, StaleElementReferenceException
    from selenium.webdriver.common.by import By

    def attempt(d: Any) -> bool:
        try:
            root = d
            if within:
                rows = [r for r in d.find_elements(By.CSS_SELECTOR, "tr") if within in r.text]
                if not rows:
                    return False
                root = rows[0]
            root.find_element(by, selector).click()
            return True
        except (ElementNotInteractableException, StaleElementReferenceException):
            return False

    wait(driver, f"a click on {selector} {within}", attempt, timeout=60)


def open_connection_form(driver: Any, deployment: Deployment, conn_id: str) -> None:
    """The Airflow UI's edit dialog of ``conn_id`` (Admin > Connections > Edit Connection)."""
    from selenium.webdriver.common.by import By

    driver.get(f"{deployment.base_url}/api/v2/version")
    driver.add_cookie({"name": "_token", "value": deployment.token("admin"), "path": "/"})
    driver.get(f"{deployment.base_url}/connections")
    press(driver, By.CSS_SELECTOR, "button[aria-label='Edit Connection']", within=conn_id)
    wait(driver, "the connection form", lambda d: d.execute_script(FORM_INPUTS_JS))


def test_the_rest_api_hides_every_secret_field(scene: Scene) -> None:
    deployment = scene.deployment
    assert set(HUAWEI_SECRET_EXTRAS) == secret_extras("huaweicloud")  # every declared secret is checked
    extra = {"region": "cn-north-4", "project_id": "0123456789abcdef", **HUAWEI_SECRET_EXTRAS}
    add_connection(deployment, HUAWEI_FORM_CONN, "huaweicloud", extra, login="AK-form", password=SK)
    add_connection(
        deployment, GOOGLE_FORM_CONN, "google_cloud_platform", {"project": "p", **GOOGLE_SECRET_EXTRAS}
    )
    for conn_id, extras, secrets in (
        (HUAWEI_FORM_CONN, HUAWEI_SECRET_EXTRAS, [SK, *HUAWEI_SECRET_EXTRAS.values()]),
        (GOOGLE_FORM_CONN, GOOGLE_SECRET_EXTRAS, [KEY]),
    ):
        body = deployment.airflow.get(f"/connections/{conn_id}")
        assert not [s for s in secrets if s in json.dumps(body)], conn_id
        shown = json.loads(body["extra"])
        assert {name: shown[name] for name in extras} == {name: "***" for name in extras}
    assert (
        json.loads(deployment.airflow.get(f"/connections/{HUAWEI_FORM_CONN}")["extra"])["region"]
        == "cn-north-4"
    )


def test_the_connection_form_masks_every_secret_field(scene: Scene) -> None:
    """The SK and every secret extra are password inputs with the show/hide eye; the rest plain text."""
    from selenium.webdriver.common.by import By

    deployment = scene.deployment
    if HUAWEI_FORM_CONN not in {
        c["connection_id"] for c in deployment.airflow.get("/connections")["connections"]
    }:
        test_the_rest_api_hides_every_secret_field(scene)  # this test run alone
    with chromium() as driver:
        open_connection_form(driver, deployment, HUAWEI_FORM_CONN)
        inputs = {i["name"]: i for i in driver.execute_script(FORM_INPUTS_JS)}
        masked = {
            "password",
            *(f"element_{name}" for name in HUAWEI_SECRET_EXTRAS),
        }  # not read from the provider
        assert {name for name, i in inputs.items() if i["type"] == "password"} == masked, inputs
        for name in masked:
            assert inputs[name]["eye"] and inputs[name]["value"] == "***", inputs[name]
        assert (
            inputs["element_region"]["type"] == "text" and inputs["element_region"]["value"] == "cn-north-4"
        )
        # Showing a masked value shows the redaction: the form never had the secret.
        press(driver, By.XPATH, "//*[@role='dialog']//button[normalize-space()='Extra Fields']")
        press(
            driver,
            By.CSS_SELECTOR,
            "[role=dialog] #element_security_token + * button[aria-label='Show value']",
        )
        shown = {i["name"]: i for i in driver.execute_script(FORM_INPUTS_JS)}["element_security_token"]
        assert (shown["type"], shown["value"]) == ("text", "***")
        assert not [s for s in (SK, *HUAWEI_SECRET_EXTRAS.values()) if s in driver.page_source]

        # A Google connection (its form is the google provider's): no key content reaches the page.
        open_connection_form(driver, deployment, GOOGLE_FORM_CONN)
        assert KEY not in driver.page_source
