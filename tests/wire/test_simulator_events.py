"""Jobs started outside any DAG (the control API's ``POST /_sim/jobs``) and the list calls event
watchers make, through the real SDK clients: labels/tags, the documented filters, pagination, a
refused filter, the list-call log (``GET /_sim/calls?kind=list``) and a job ending on its timeline."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import grpc
import httpx
import pytest
from google.api_core import exceptions as gexc
from google.cloud import dataflow_v1beta3, dataproc_v1
from google.cloud.dataflow_v1beta3.services.jobs_v1_beta3.transports import JobsV1Beta3GrpcTransport
from google.cloud.dataproc_v1.services.job_controller.transports import JobControllerGrpcTransport
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdkdli.v1 import DliClient, ListSqlJobsRequest

from airflow_jobstatus.simulator import Simulator

P, R = "sim-project", "europe-west1"
PARENT = f"projects/{P}/locations/{R}"
NO_RETRY = {"retry": None, "timeout": 5}
RUNNING_THEN_DONE = [{"state": "RUNNING", "duration": 1.0}, {"state": "DONE"}]
HTTP = httpx.Client(timeout=5)  # one client: httpx.post builds an SSL context per call (~70 ms)


def start(sim: Simulator, **body: Any) -> dict[str, Any]:
    """A job started outside any DAG, through the control API."""
    answer = HTTP.post(sim.http_url + "/_sim/jobs", json=body)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def list_log(sim: Simulator, **query: Any) -> dict[str, Any]:
    answer = HTTP.get(sim.http_url + "/_sim/calls", params={"kind": "list", **query})
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def rfc3339(wall: float) -> str:
    return datetime.fromtimestamp(wall, tz=timezone.utc).isoformat().replace("+00:00", "Z")


@pytest.fixture(scope="module")
def dataproc(simulator: Simulator) -> Iterator[dataproc_v1.JobControllerClient]:
    channel = grpc.insecure_channel(simulator.grpc_target)
    yield dataproc_v1.JobControllerClient(transport=JobControllerGrpcTransport(channel=channel))
    channel.close()


@pytest.fixture(scope="module")
def dataflow(simulator: Simulator) -> Iterator[dataflow_v1beta3.JobsV1Beta3Client]:
    channel = grpc.insecure_channel(simulator.grpc_target)
    yield dataflow_v1beta3.JobsV1Beta3Client(transport=JobsV1Beta3GrpcTransport(channel=channel))
    channel.close()


@pytest.fixture(scope="module")
def vertex(simulator: Simulator) -> Iterator[Any]:
    pytest.importorskip("google.cloud.aiplatform_v1")
    from google.cloud.aiplatform_v1.services.job_service import JobServiceClient
    from google.cloud.aiplatform_v1.services.job_service.transports import JobServiceGrpcTransport

    channel = grpc.insecure_channel(simulator.grpc_target)
    yield JobServiceClient(transport=JobServiceGrpcTransport(channel=channel))
    channel.close()


def dli_client(sim: Simulator) -> Any:
    cfg = HttpConfig.get_default_config()
    cfg.timeout, cfg.retry_times = (2, 5), 0
    creds = BasicCredentials(sim.core.ak, sim.core.sk, sim.core.project_id)
    builder = DliClient.new_builder().with_credentials(creds).with_endpoints([sim.http_url])
    return builder.with_http_config(cfg).build()


# ---- the control API ------------------------------------------------------------------------------


def test_a_job_started_outside_any_dag_gets_an_id_labels_and_the_default_timeline(sim: Simulator) -> None:
    made = start(sim, service="dataproc", labels={"team": "ingest"}, type="pyspark_job", cluster_name="c1")
    job = sim.get_job("dataproc", made["job_id"])
    assert job is not None and made["job_id"].startswith("sim-")
    assert made["state"] == "PENDING" and made["meta"]["labels"] == {"team": "ingest"}
    assert job.meta["origin"] == "control" and job.meta["type"] == "pyspark_job"
    vertex = start(
        sim, service="vertex_ai", name="train", labels={"a": "b"}, timeline=[{"state": "JOB_STATE_RUNNING"}]
    )
    assert vertex["job_id"].isdigit() and vertex["meta"]["name"] == "train"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"service": "dli", "labels": {"a": "b"}}, "no labels"),
        ({"service": "dataflow", "tags": {"a": "b"}}, "no tags"),
        ({"service": "dataproc", "name": "x"}, "no name"),
        ({"service": "dataflow", "type": "JOB_TYPE_SOMETIMES"}, "unknown job type"),
        ({"service": "dataflow", "labels": {"a": 1}}, "string values"),
        ({"service": "dli", "tags": {"bad key!": "v"}}, "tag key"),
        ({"service": "dataflow", "started_ago": -1}, "started_ago"),
    ],
)
def test_a_bad_job_body_is_a_400_saying_why(sim: Simulator, body: dict[str, Any], reason: str) -> None:
    answer = HTTP.post(sim.http_url + "/_sim/jobs", json=body)
    assert answer.status_code == 400 and reason in answer.json()["error_msg"], answer.text


def test_the_old_job_body_still_works(sim: Simulator) -> None:
    body = {"service": "dataflow", "job_id": "df-old", "timeline": [{"state": "JOB_STATE_RUNNING"}]}
    made = start(sim, **body)
    assert (made["service"], made["job_id"], made["state"]) == ("dataflow", "df-old", "JOB_STATE_RUNNING")
    assert start(sim, service="cdm", job_id="never", timeline=None)["state"] == "NEVER_EXECUTED"


# ---- Dataproc ListJobs ----------------------------------------------------------------------------


def test_dataproc_list_filter_on_state_and_labels_with_pagination(sim: Simulator, dataproc) -> None:
    for i in range(5):
        start(
            sim,
            service="dataproc",
            job_id=f"in-{i}",
            labels={"team": "ingest", "n": str(i)},
            timeline=RUNNING_THEN_DONE,
        )
    start(sim, service="dataproc", job_id="other", labels={"team": "ml"}, timeline=RUNNING_THEN_DONE)
    start(sim, service="dataproc", job_id="bare", timeline=[{"state": "DONE"}])

    def ids(flt: str, page_size: int = 0) -> list[str]:
        request = {"project_id": P, "region": R, "filter": flt, "page_size": page_size}
        return [j.reference.job_id for j in dataproc.list_jobs(request=request, **NO_RETRY)]

    assert sorted(ids("labels.team = ingest")) == [f"in-{i}" for i in range(5)]
    assert sorted(ids("status.state = ACTIVE AND labels.team = ingest", page_size=2)) == [
        f"in-{i}" for i in range(5)
    ]
    assert sorted(ids("labels.team = *")) == sorted([*(f"in-{i}" for i in range(5)), "other"])
    assert ids("status.state = NON_ACTIVE") == ["bare"]
    assert ids("labels.team = ingest labels.n = 3") == ["in-3"]  # implicit AND
    listed = list(
        dataproc.list_jobs(request={"project_id": P, "region": R, "filter": "labels.n = 3"}, **NO_RETRY)
    )
    assert dict(listed[0].labels) == {"team": "ingest", "n": "3"}
    time.sleep(1.0)
    assert sorted(ids("status.state = NON_ACTIVE AND labels.team = ingest")) == [f"in-{i}" for i in range(5)]
    # Pages of 2: the first page of each of the two ACTIVE lists, then the pages followed.
    pages = [c for c in list_log(sim, service="dataproc")["calls"]]
    assert {c["scope"] for c in pages} == {f"projects/{P}/regions/{R}"}
    assert sum(1 for c in pages if not c["first_page"]) == 2  # the page_size=2 list's pages 2 and 3


@pytest.mark.parametrize(
    "bad",
    [
        "status.state = RUNNING",
        "labels.team = a OR labels.team = b",
        "NOT labels.team = a",
        "placement.clusterName = c1",
        'insertTime > "yesterday"',
        "labels.team",
    ],
)
def test_dataproc_refuses_a_filter_the_api_refuses(sim: Simulator, dataproc, bad: str) -> None:
    with pytest.raises(gexc.InvalidArgument):
        list(dataproc.list_jobs(request={"project_id": P, "region": R, "filter": bad}, **NO_RETRY))


def test_dataproc_insert_time_and_cluster_name(sim: Simulator, dataproc) -> None:
    start(sim, service="dataproc", job_id="old", started_ago=60, cluster_name="c1")
    start(sim, service="dataproc", job_id="new", cluster_name="c2")
    cut = rfc3339(time.time() - 30)
    request = {"project_id": P, "region": R, "filter": f'insertTime >= "{cut}"'}
    assert [j.reference.job_id for j in dataproc.list_jobs(request=request, **NO_RETRY)] == ["new"]
    request = {"project_id": P, "region": R, "cluster_name": "c1"}
    assert [j.placement.cluster_name for j in dataproc.list_jobs(request=request, **NO_RETRY)] == ["c1"]


# ---- Dataflow ListJobs ----------------------------------------------------------------------------


def test_dataflow_list_filters_labels_names_and_orders(sim: Simulator, dataflow) -> None:
    ended = [{"state": "JOB_STATE_RUNNING", "duration": 0.2}, {"state": "JOB_STATE_DONE"}]
    start(
        sim,
        service="dataflow",
        job_id="a",
        name="etl",
        labels={"team": "ingest"},
        type="JOB_TYPE_STREAMING",
        timeline=ended,
    )
    start(sim, service="dataflow", job_id="b", name="etl", timeline=[{"state": "JOB_STATE_RUNNING"}])
    start(
        sim,
        service="dataflow",
        job_id="c",
        name="other",
        timeline=[{"state": "JOB_STATE_FAILED"}],
        started_ago=10,
    )
    time.sleep(0.3)
    F = dataflow_v1beta3.ListJobsRequest.Filter

    def listed(which: Any, **extra: Any) -> list[Any]:
        request = {"project_id": P, "location": R, "filter": which, **extra}
        return list(dataflow.list_jobs(request=request, **NO_RETRY))

    assert [j.id for j in listed(F.ACTIVE)] == ["b"]
    assert [j.id for j in listed(F.TERMINATED)] == ["a", "c"]  # newest termination first
    assert [j.id for j in listed(F.ALL)] == ["b", "a", "c"]  # active ones, then the terminated ones
    assert [j.id for j in listed(F.UNKNOWN)] == ["c", "b", "a"]  # descending id
    assert [j.id for j in listed(F.ALL, name="etl")] == ["b", "a"]
    job = next(j for j in listed(F.TERMINATED) if j.id == "a")
    assert dict(job.labels) == {"team": "ingest"} and job.name == "etl"
    assert job.type_ == dataflow_v1beta3.JobType.JOB_TYPE_STREAMING
    assert [j.id for j in listed(F.ALL, page_size=1)] == ["b", "a", "c"]
    assert list_log(sim, service="dataflow", log="false")["counts"] == {
        "dataflow": {"ListJobs": {f"projects/{P}/locations/{R}": 9}}
    }


def test_a_bad_page_token_or_page_size_is_invalid_argument(sim: Simulator, dataflow) -> None:
    with pytest.raises(gexc.InvalidArgument):
        dataflow.list_jobs(request={"project_id": P, "location": R, "page_token": "nope"}, **NO_RETRY)
    with pytest.raises(gexc.InvalidArgument):
        dataflow.list_jobs(request={"project_id": P, "location": R, "page_size": -1}, **NO_RETRY)


# ---- Vertex AI ListCustomJobs ---------------------------------------------------------------------


def test_vertex_custom_jobs_filter_on_state_labels_display_name_and_create_time(
    sim: Simulator, vertex
) -> None:
    done = [{"state": "JOB_STATE_RUNNING", "duration": 0.2}, {"state": "JOB_STATE_SUCCEEDED"}]
    start(
        sim,
        service="vertex_ai",
        job_id="1",
        name="train-a",
        labels={"team": "ml"},
        timeline=done,
        started_ago=100,
    )
    start(sim, service="vertex_ai", job_id="2", name="train-b", labels={"team": "ml"}, timeline=done)
    start(sim, service="vertex_ai", job_id="3", name="score", timeline=[{"state": "JOB_STATE_FAILED"}])
    start(
        sim,
        service="vertex_ai",
        job_id="4",
        name="hp",
        job_type="hyperparameter_tuning_job",
        labels={"team": "ml"},
    )
    time.sleep(0.3)

    def ids(flt: str, page_size: int = 0) -> list[str]:
        request = {"parent": PARENT, "filter": flt, "page_size": page_size}
        return [j.name.rpartition("/")[2] for j in vertex.list_custom_jobs(request=request, **NO_RETRY)]

    assert ids('labels.team="ml"') == ["2", "1"]  # newest first; the tuning job is another collection
    assert ids('state="JOB_STATE_SUCCEEDED" AND labels.team="ml"', page_size=1) == ["2", "1"]
    assert ids('state="JOB_STATE_FAILED" OR labels.team:*') == ["3", "2", "1"]
    # AIP-160: OR binds tighter than AND, so this is ml AND (SUCCEEDED OR FAILED): job 3 has no label.
    assert ids('labels.team="ml" AND state="JOB_STATE_SUCCEEDED" OR state="JOB_STATE_FAILED"') == ["2", "1"]
    assert ids('(labels.team="ml" AND state="JOB_STATE_SUCCEEDED") OR state="JOB_STATE_FAILED"') == [
        "3",
        "2",
        "1",
    ]
    assert ids('display_name:"train-*" AND NOT display_name="train-a"') == ["2"]
    assert ids(f'create_time>"{rfc3339(time.time() - 50)}"') == ["3", "2"]
    job = next(
        iter(
            vertex.list_custom_jobs(
                request={"parent": PARENT, "filter": 'display_name="train-a"'}, **NO_RETRY
            )
        )
    )
    assert dict(job.labels) == {"team": "ml"} and job.display_name == "train-a"


@pytest.mark.parametrize(
    "bad",
    [
        'update_time>"2024-01-01T00:00:00Z"',  # ListCustomJobs documents create_time only
        'state="JOB_STATE_SOMETIMES"',
        'state>"JOB_STATE_RUNNING"',
        'create_time>"not a time"',
        "labels.team:ml",
    ],
)
def test_vertex_refuses_a_filter_the_api_refuses(sim: Simulator, vertex, bad: str) -> None:
    with pytest.raises(gexc.InvalidArgument):
        list(vertex.list_custom_jobs(request={"parent": PARENT, "filter": bad}, **NO_RETRY))


# ---- DLI SQL ListSqlJobs --------------------------------------------------------------------------


def test_dli_sql_jobs_started_outside_filter_by_tags_and_time(sim: Simulator) -> None:
    client = dli_client(sim)
    ended = [{"state": "RUNNING", "duration": 0.3}, {"state": "FINISHED"}]
    start(
        sim,
        service="dli",
        tags={"team": "ingest", "run": "nightly"},
        statement="INSERT INTO t SELECT 1",
        timeline=ended,
    )
    start(
        sim,
        service="dli",
        tags=[{"key": "team", "value": "ingest"}],
        queue_name="q2",
        timeline=[{"state": "FAILED"}],
        started_ago=120,
    )
    start(sim, service="dli", tags={"team": "ml"}, timeline=ended)
    by_tag = client.list_sql_jobs(ListSqlJobsRequest(tags="team=ingest", job_type="ALL"))
    assert by_tag.job_count == 2 and [j.queue_name for j in by_tag.jobs] == ["default", "q2"]  # newest first
    both = client.list_sql_jobs(ListSqlJobsRequest(tags="team=ingest,run=nightly", job_type="INSERT"))
    assert both.job_count == 1 and both.jobs[0].job_type == "INSERT"
    assert {(t.key, t.value) for t in both.jobs[0].tags} == {("team", "ingest"), ("run", "nightly")}
    recent = client.list_sql_jobs(
        ListSqlJobsRequest(start=int((time.time() - 60) * 1000), page_size=1, current_page=2)
    )
    assert recent.job_count == 2 and len(recent.jobs) == 1
    time.sleep(0.4)
    finished = client.list_sql_jobs(ListSqlJobsRequest(job_status="FINISHED", tags="team=ingest"))
    assert finished.job_count == 1 and finished.jobs[0].end_time >= finished.jobs[0].start_time
    assert client.list_sql_jobs(ListSqlJobsRequest(queue_name="q2")).job_count == 1
    with pytest.raises(ClientRequestException) as bad:
        client.list_sql_jobs(ListSqlJobsRequest(job_status="SOMETIMES"))
    assert bad.value.status_code == 400 and bad.value.error_code == "DLI.0001"
    log = list_log(sim, service="dli")
    assert log["counts"]["dli"]["ListSqlJobs"] == {f"projects/{P}": 4, f"projects/{P}/queues/q2": 1}
    assert log["polls"] == 4  # current-page 2 is not a new poll; the refused list is not recorded


# ---- a job ending on its timeline, seen by a list poll ----------------------------------------------


def test_a_job_started_outside_ends_on_its_timeline_and_the_log_counts_polls_per_interval(
    sim: Simulator, dataflow
) -> None:
    timeline = [{"state": "JOB_STATE_RUNNING", "duration": 0.6}, {"state": "JOB_STATE_DONE"}]
    start(sim, service="dataflow", job_id="ends", labels={"team": "ingest"}, timeline=timeline)
    since = time.time()
    F = dataflow_v1beta3.ListJobsRequest.Filter
    seen: list[str] = []
    deadline = time.monotonic() + 5
    while "ends" not in seen and time.monotonic() < deadline:
        seen = [
            j.id
            for j in dataflow.list_jobs(
                request={"project_id": P, "location": R, "filter": F.TERMINATED}, **NO_RETRY
            )
        ]
        time.sleep(0.25)
    assert seen == ["ends"]
    job = sim.get_job("dataflow", "ends")
    assert job is not None and job.ended_wall() == pytest.approx(job.created_wall + 0.6, abs=0.01)
    log = list_log(sim, service="dataflow", since=since, interval=0.25, log="false")
    assert 2 <= log["polls"] <= 6
    buckets = log["polls_by_interval"]["buckets"]
    assert all(sum(b.values()) == 1 for b in buckets.values()), buckets  # one poll per scope per 0.25 s


# ---- Vertex AI ListPipelineJobs and ListBatchPredictionJobs ----------------------------------------


@pytest.fixture(scope="module")
def pipelines(simulator: Simulator) -> Iterator[Any]:
    pytest.importorskip("google.cloud.aiplatform_v1")
    from google.cloud.aiplatform_v1.services.pipeline_service import PipelineServiceClient
    from google.cloud.aiplatform_v1.services.pipeline_service.transports import PipelineServiceGrpcTransport

    channel = grpc.insecure_channel(simulator.grpc_target)
    yield PipelineServiceClient(transport=PipelineServiceGrpcTransport(channel=channel))
    channel.close()


def test_pipeline_jobs_filter_on_update_and_end_time_and_order_by(sim: Simulator, pipelines) -> None:
    ends = [{"state": "PIPELINE_STATE_RUNNING", "duration": 0.2}, {"state": "PIPELINE_STATE_SUCCEEDED"}]
    start(
        sim, service="vertex_pipeline", job_id="p-old", labels={"team": "ml"}, timeline=ends, started_ago=100
    )
    start(sim, service="vertex_pipeline", job_id="p-new", labels={"team": "ml"}, timeline=ends)
    start(sim, service="vertex_pipeline", job_id="p-run", timeline=[{"state": "PIPELINE_STATE_RUNNING"}])
    time.sleep(0.3)
    since = rfc3339(time.time() - 30)

    def ids(flt: str = "", order_by: str = "", page_size: int = 0) -> list[str]:
        request = {"parent": PARENT, "filter": flt, "order_by": order_by, "page_size": page_size}
        return [j.name.rpartition("/")[2] for j in pipelines.list_pipeline_jobs(request=request, **NO_RETRY)]

    assert ids() == ["p-run", "p-new", "p-old"]  # default: create_time desc
    assert ids(order_by="create_time") == ["p-old", "p-new", "p-run"]
    assert ids(order_by="end_time desc, create_time", page_size=1) == ["p-run", "p-new", "p-old"]
    assert ids(f'update_time>"{since}" AND labels.team="ml"') == ["p-new"]
    assert ids(f'end_time>"{since}" OR state="PIPELINE_STATE_RUNNING"') == ["p-run", "p-new"]
    assert ids('labels.team="ml" AND NOT state="PIPELINE_STATE_RUNNING"') == ["p-new", "p-old"]
    job = next(
        iter(pipelines.list_pipeline_jobs(request={"parent": PARENT, "filter": "labels.team:*"}, **NO_RETRY))
    )
    assert dict(job.labels) == {"team": "ml"}
    for bad in ({"filter": 'state="JOB_STATE_RUNNING"'}, {"order_by": "name"}, {"filter": "labels.team = "}):
        with pytest.raises(gexc.InvalidArgument):
            list(pipelines.list_pipeline_jobs(request={"parent": PARENT, **bad}, **NO_RETRY))
    assert {c["scope"] for c in list_log(sim, service="vertex_pipeline")["calls"]} == {PARENT}


def test_batch_prediction_jobs_are_listed_with_their_own_collection_and_labels(
    sim: Simulator, vertex
) -> None:
    start(sim, service="vertex_ai", job_id="7", job_type="batch_prediction_job", labels={"team": "ml"})
    start(sim, service="vertex_ai", job_id="8", labels={"team": "ml"})
    listed = list(
        vertex.list_batch_prediction_jobs(
            request={"parent": PARENT, "filter": 'labels.team="ml"'}, **NO_RETRY
        )
    )
    assert [j.name for j in listed] == [f"{PARENT}/batchPredictionJobs/7"]
    assert list_log(sim, service="vertex_ai")["calls"][0]["method"] == "ListBatchPredictionJobs"


# ---- Dataproc ListBatches ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def batches(simulator: Simulator) -> Iterator[Any]:
    from google.cloud.dataproc_v1.services.batch_controller.transports import BatchControllerGrpcTransport

    channel = grpc.insecure_channel(simulator.grpc_target)
    yield dataproc_v1.BatchControllerClient(transport=BatchControllerGrpcTransport(channel=channel))
    channel.close()


def test_batches_filter_on_state_labels_create_time_and_order_by(sim: Simulator, batches) -> None:
    start(
        sim,
        service="dataproc_batch",
        job_id="b-old",
        labels={"env": "prod"},
        started_ago=100,
        timeline=[{"state": "SUCCEEDED"}],
    )
    start(
        sim,
        service="dataproc_batch",
        job_id="b-new",
        labels={"env": "prod"},
        type="spark_sql_batch",
        timeline=[{"state": "RUNNING"}],
    )
    start(
        sim, service="dataproc_batch", job_id="b-dev", labels={"env": "dev"}, timeline=[{"state": "RUNNING"}]
    )
    parent = f"projects/{P}/locations/{R}"

    def ids(flt: str = "", order_by: str = "", page_size: int = 0) -> list[str]:
        request = {"parent": parent, "filter": flt, "order_by": order_by, "page_size": page_size}
        return [b.name.rpartition("/")[2] for b in batches.list_batches(request=request, **NO_RETRY)]

    assert ids() == ["b-dev", "b-new", "b-old"]  # unspecified order: by id here
    assert ids(order_by="create_time desc", page_size=1) == ["b-dev", "b-new", "b-old"]
    assert ids("state = RUNNING and labels.env = prod") == ["b-new"]  # the docs' lower-case "and"
    assert ids(f'state = SUCCEEDED OR create_time > "{rfc3339(time.time() - 30)}"') == [
        "b-dev",
        "b-new",
        "b-old",
    ]
    assert ids(f'create_time < "{rfc3339(time.time() - 30)}"') == ["b-old"]
    assert ids("batch_id = b-dev") == ["b-dev"]
    batch = next(
        iter(batches.list_batches(request={"parent": parent, "filter": "batch_id = b-new"}, **NO_RETRY))
    )
    assert dict(batch.labels) == {"env": "prod"} and "spark_sql_batch" in batch
    for bad in (
        {"filter": "state = DONE"},
        {"filter": "runtime_info.output_uri = x"},
        {"order_by": "create_time"},
    ):
        with pytest.raises(gexc.InvalidArgument):
            list(batches.list_batches(request={"parent": parent, **bad}, **NO_RETRY))


# ---- DLI Flink ListFlinkJobs and CDM ShowJobs (all) ------------------------------------------------


def test_flink_jobs_started_outside_filter_by_tags_type_and_queue(sim: Simulator) -> None:
    from huaweicloudsdkdli.v1 import ListFlinkJobsRequest

    client = dli_client(sim)
    a = start(
        sim,
        service="dli_flink",
        name="ingest-a",
        tags={"team": "ingest"},
        type="flink_jar_job",
        queue_name="q1",
    )
    start(sim, service="dli_flink", name="ingest-b", tags={"team": "ingest", "tier": "gold"})
    start(sim, service="dli_flink", name="ml", tags={"team": "ml"})
    assert a["job_id"].isdigit() and a["where"]["name"] == "ingest-a"
    listed = client.list_flink_jobs(ListFlinkJobsRequest(tags="team=ingest")).job_list
    assert listed.total_count == 2 and [j.name for j in listed.jobs] == ["ingest-b", "ingest-a"]  # id desc
    assert [
        j.name
        for j in client.list_flink_jobs(ListFlinkJobsRequest(tags="team=ingest,tier=gold")).job_list.jobs
    ] == ["ingest-b"]
    jar = client.list_flink_jobs(ListFlinkJobsRequest(job_type="flink_jar_job")).job_list.jobs
    assert [(j.name, j.job_type, j.queue_name) for j in jar] == [("ingest-a", "flink_jar_job", "q1")]
    assert (
        client.list_flink_jobs(ListFlinkJobsRequest(queue_name="q1", limit=1, offset=0)).job_list.total_count
        == 1
    )
    with pytest.raises(ClientRequestException):
        client.list_flink_jobs(ListFlinkJobsRequest(tags="team"))
    log = list_log(sim, service="dli_flink")
    assert log["counts"] == {"dli_flink": {"ListFlinkJobs": {f"projects/{P}": 4}}}


def test_cdm_lists_every_job_of_a_cluster_with_its_last_run(sim: Simulator) -> None:
    from huaweicloudsdkcdm.v1 import CdmClient, ShowJobsRequest

    cfg = HttpConfig.get_default_config()
    cfg.timeout, cfg.retry_times = (2, 5), 0
    creds = BasicCredentials(sim.core.ak, sim.core.sk, sim.core.project_id)
    client = (
        CdmClient.new_builder()
        .with_credentials(creds)
        .with_endpoints([sim.http_url])
        .with_http_config(cfg)
        .build()
    )
    start(
        sim,
        service="cdm",
        job_id="copy-orders",
        timeline=[{"state": "RUNNING", "duration": 0.3}, {"state": "SUCCEEDED"}],
    )
    start(sim, service="cdm", job_id="copy-users", timeline=[{"state": "FAILED"}])
    start(sim, service="cdm", job_id="never", timeline=None)
    start(sim, service="cdm", job_id="whole-db", type="BATCH_JOB", timeline=[{"state": "RUNNING"}])
    listed = client.show_jobs(ShowJobsRequest(cluster_id="sim-cluster", job_name="all", page_size=10))
    assert listed.total == 3 and [(j.name, j.status) for j in listed.jobs] == [
        ("copy-orders", "RUNNING"),
        ("copy-users", "FAILED"),
        ("never", "NEW"),
    ]
    time.sleep(0.35)
    copies = client.show_jobs(
        ShowJobsRequest(cluster_id="sim-cluster", job_name="all", filter="COPY", page_size=10)
    )
    assert [(j.name, j.status) for j in copies.jobs] == [
        ("copy-orders", "SUCCEEDED"),
        ("copy-users", "FAILED"),
    ]
    batch = client.show_jobs(ShowJobsRequest(cluster_id="sim-cluster", job_name="all", job_type="BATCH_JOB"))
    assert [j.name for j in batch.jobs] == ["whole-db"]
    with pytest.raises(ClientRequestException):
        client.show_jobs(ShowJobsRequest(cluster_id="sim-cluster", job_name="all", page_size=5))
    scopes = {c["scope"] for c in list_log(sim, service="cdm")["calls"]}
    assert scopes == {f"projects/{P}/clusters/sim-cluster"}


def test_spark_batches_started_outside_filter_by_queue_name_and_time(sim: Simulator) -> None:
    from huaweicloudsdkdli.v1 import ListSparkJobsRequest

    client = dli_client(sim)
    start(
        sim,
        service="dli",
        job_type="spark",
        name="nightly",
        queue_name="q1",
        timeline=[{"state": "success"}],
        started_ago=100,
    )
    start(sim, service="dli", job_type="spark", name="hourly", queue_name="q1")
    start(sim, service="dli", job_type="spark", queue_name="q2")
    listed = client.list_spark_jobs(ListSparkJobsRequest(queue_name="q1"))
    assert listed.total == 2 and [s.state for s in listed.sessions] == ["starting", "success"]  # newest first
    recent = client.list_spark_jobs(
        ListSparkJobsRequest(queue_name="q1", start=int((time.time() - 50) * 1000))
    )
    assert recent.total == 1
    assert (
        client.list_spark_jobs(ListSparkJobsRequest(job_name="nightly", order="CREATE_TIME_ASC")).total == 1
    )
    with pytest.raises(ClientRequestException):
        client.list_spark_jobs(ListSparkJobsRequest(order="NEWEST"))
    scopes = list_log(sim, service="dli", log="false")["counts"]["dli"]["ListSparkJobs"]
    assert scopes == {f"projects/{P}/queues/q1": 2, f"projects/{P}": 1}
    answer = HTTP.post(
        sim.http_url + "/_sim/jobs", json={"service": "dli", "job_type": "spark", "tags": {"a": "b"}}
    )
    assert answer.status_code == 400 and "no tags" in answer.json()["error_msg"]


def test_scenarios_and_submitted_jobs_carry_labels_and_types(sim: Simulator, dataproc) -> None:
    sim.load_scenarios(
        [
            {
                "service": "dataflow",
                "job_id": "s1",
                "timeline": [{"state": "JOB_STATE_DONE"}],
                "labels": {"a": "b"},
            },
            {
                "service": "dli_flink",
                "job_id": "42",
                "timeline": [{"state": "job_running"}],
                "tags": {"t": "v"},
            },
        ]
    )
    assert sim.get_job("dataflow", "s1").meta == {"labels": {"a": "b"}}  # type: ignore[union-attr]
    flink = sim.get_job("dli_flink", "42")
    assert flink is not None and flink.meta["tags"] == [{"key": "t", "value": "v"}]
    job = dataproc_v1.Job(
        placement=dataproc_v1.JobPlacement(cluster_name="c9"),
        pyspark_job=dataproc_v1.PySparkJob(main_python_file_uri="gs://b/m.py"),
        labels={"team": "ingest"},
    )
    made = dataproc.submit_job(project_id=P, region=R, job=job, **NO_RETRY)
    request = {"project_id": P, "region": R, "filter": "labels.team = ingest"}
    (listed,) = list(dataproc.list_jobs(request=request, **NO_RETRY))
    assert listed.reference.job_id == made.reference.job_id and "pyspark_job" in listed
    assert listed.placement.cluster_name == "c9" and dict(listed.labels) == {"team": "ingest"}
