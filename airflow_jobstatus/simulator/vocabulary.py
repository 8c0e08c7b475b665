"""What the five simulated services call things: state names, where-keys, job types, default timelines.

Native vocabulary only, written out here from the services' documentation and SDK enums. Nothing in
this module says what a state *means* to the provider (no native → normalized mapping): the simulator
stays an independent witness of the package's own tables.
"""

from __future__ import annotations

from typing import Any

SERVICES = (
    "dataproc",
    "dataflow",
    "vertex_ai",
    "cdm",
    "dli",
    "dataproc_batch",
    "vertex_pipeline",
    "dli_flink",
)

DEFAULT_GOOGLE_REGION = "europe-west1"
DEFAULT_CDM_CLUSTER = "sim-cluster"

#: Where-keys per service (besides the job id) and their defaults; project_id and the Google region
#: default to the core's ``project_id`` and ``region``.
WHERE_DEFAULTS: dict[str, dict[str, str | None]] = {
    "dataproc": {"project_id": None, "region": DEFAULT_GOOGLE_REGION},
    "dataflow": {"project_id": None, "location": DEFAULT_GOOGLE_REGION},
    "vertex_ai": {"project_id": None, "location": DEFAULT_GOOGLE_REGION, "job_type": "custom_job"},
    "cdm": {"cluster_id": DEFAULT_CDM_CLUSTER},
    "dli": {"job_type": "sql"},
    "dli_flink": {"name": None},  # the job's name (ListFlinkJobs filters by it); default flink-<id>
    "dataproc_batch": {"project_id": None, "region": DEFAULT_GOOGLE_REGION},
    "vertex_pipeline": {"project_id": None, "location": DEFAULT_GOOGLE_REGION},
}
JOB_TYPES = {
    "vertex_ai": ("custom_job", "batch_prediction_job", "hyperparameter_tuning_job"),
    "dli": ("sql", "spark"),
}

#: The services' own job types (``SimJob.meta["type"]``), as a list call or a job body shows them:
#: Dataproc's ``Job`` / ``Batch`` oneof field, Dataflow's ``Job.type``, DLI SQL's ``job_type``, DLI
#: Flink's ``job_type``, CDM's ``job_type``. The first is the default.
NATIVE_JOB_TYPES: dict[str, tuple[str, ...]] = {
    "dataproc": (
        "spark_job",
        "pyspark_job",
        "hadoop_job",
        "hive_job",
        "pig_job",
        "spark_r_job",
        "spark_sql_job",
        "presto_job",
        "trino_job",
        "flink_job",
    ),
    "dataproc_batch": ("pyspark_batch", "spark_batch", "spark_r_batch", "spark_sql_batch"),
    "dataflow": ("JOB_TYPE_BATCH", "JOB_TYPE_STREAMING"),
    "dli": (
        "QUERY",
        "DDL",
        "DCL",
        "IMPORT",
        "EXPORT",
        "INSERT",
        "DATA_MIGRATION",
        "UPDATE",
        "DELETE",
        "RESTART_QUEUE",
        "SCALE_QUEUE",
    ),
    "dli_flink": ("flink_opensource_sql_job", "flink_sql_job", "flink_sql_edge_job", "flink_jar_job"),
    "cdm": ("NORMAL_JOB", "BATCH_JOB", "SCENARIO_JOB"),
}
#: Services whose jobs carry Google ``labels``, and those carrying DLI ``tags``.
LABELLED = frozenset({"dataproc", "dataflow", "vertex_ai", "dataproc_batch", "vertex_pipeline"})
TAGGED = frozenset({"dli", "dli_flink"})
#: Services whose jobs have a name besides their id (Dataflow ``name``, Vertex AI ``display_name``,
#: DLI Flink ``name``, a DLI Spark batch's ``name``); a CDM job's name is its id.
NAMED = frozenset({"dataflow", "vertex_ai", "vertex_pipeline", "dli_flink", "dli:spark"})

#: Native enum names of the Google services (as the SDKs spell them); checked when a timeline is added
#: because a misspelt name could not be put on the wire. An int is accepted too (an unknown enum value).
GOOGLE_STATES: dict[str, frozenset[str]] = {
    "dataproc": frozenset(
        [
            "STATE_UNSPECIFIED",
            "PENDING",
            "SETUP_DONE",
            "RUNNING",
            "CANCEL_PENDING",
            "CANCEL_STARTED",
            "CANCELLED",
            "DONE",
            "ERROR",
            "ATTEMPT_FAILURE",
        ]
    ),
    "dataflow": frozenset(
        "JOB_STATE_" + s
        for s in [
            "UNKNOWN",
            "STOPPED",
            "RUNNING",
            "DONE",
            "FAILED",
            "CANCELLED",
            "UPDATED",
            "DRAINING",
            "DRAINED",
            "PENDING",
            "CANCELLING",
            "QUEUED",
            "RESOURCE_CLEANING_UP",
            "PAUSING",
            "PAUSED",
        ]
    ),
    "vertex_ai": frozenset(
        "JOB_STATE_" + s
        for s in [
            "UNSPECIFIED",
            "QUEUED",
            "PENDING",
            "RUNNING",
            "SUCCEEDED",
            "FAILED",
            "CANCELLING",
            "CANCELLED",
            "PAUSED",
            "EXPIRED",
            "UPDATING",
            "PARTIALLY_SUCCEEDED",
        ]
    ),
    # google.cloud.dataproc_v1.Batch.State
    "dataproc_batch": frozenset(
        ["STATE_UNSPECIFIED", "PENDING", "RUNNING", "CANCELLING", "CANCELLED", "SUCCEEDED", "FAILED"]
    ),
    # google.cloud.aiplatform_v1.PipelineState
    "vertex_pipeline": frozenset(
        "PIPELINE_STATE_" + s
        for s in [
            "UNSPECIFIED",
            "QUEUED",
            "PENDING",
            "RUNNING",
            "SUCCEEDED",
            "FAILED",
            "CANCELLING",
            "CANCELLED",
            "PAUSED",
        ]
    ),
}
#: ``aiplatform_v1.PipelineTaskDetail.State`` names (a vertex_pipeline phase's ``task_details`` states).
PIPELINE_TASK_STATES = frozenset(
    [
        "STATE_UNSPECIFIED",
        "PENDING",
        "RUNNING",
        "SUCCEEDED",
        "CANCEL_PENDING",
        "CANCELLING",
        "CANCELLED",
        "FAILED",
        "SKIPPED",
        "NOT_TRIGGERED",
    ]
)
DATAPROC_SUBSTATES = frozenset({"UNSPECIFIED", "SUBMITTED", "QUEUED", "STALE_STATUS"})

#: Native states after which a job no longer changes (cancel on them is refused by the real services).
#: Keyed like the timelines: "dli" is DLI SQL, "dli:spark" a Spark batch (Livy's lower-case states;
#: DLI's documentation also shows them capitalized, so they are compared case-insensitively).
TERMINAL_NATIVE: dict[str, frozenset[str]] = {
    "dataproc": frozenset({"DONE", "ERROR", "CANCELLED"}),
    "dataflow": frozenset(
        {
            "JOB_STATE_DONE",
            "JOB_STATE_FAILED",
            "JOB_STATE_CANCELLED",
            "JOB_STATE_UPDATED",
            "JOB_STATE_DRAINED",
        }
    ),
    "vertex_ai": frozenset(
        {
            "JOB_STATE_SUCCEEDED",
            "JOB_STATE_FAILED",
            "JOB_STATE_CANCELLED",
            "JOB_STATE_EXPIRED",
            "JOB_STATE_PARTIALLY_SUCCEEDED",
        }
    ),
    "cdm": frozenset({"SUCCEEDED", "FAILED", "FAILURE_ON_SUBMIT", "NEVER_EXECUTED"}),
    "dli": frozenset({"FINISHED", "FAILED", "CANCELLED"}),
    "dli:spark": frozenset({"dead", "success"}),
    # DLI Flink ``FlinkJob.status`` values a stop is refused on (the job is no longer running).
    "dli_flink": frozenset({"job_submit_fail", "job_running_exception", "job_cancel_success", "job_finish"}),
    "dataproc_batch": frozenset({"SUCCEEDED", "FAILED", "CANCELLED"}),
    "vertex_pipeline": frozenset(
        {"PIPELINE_STATE_SUCCEEDED", "PIPELINE_STATE_FAILED", "PIPELINE_STATE_CANCELLED"}
    ),
}
CASE_INSENSITIVE_STATES = frozenset({"dli:spark"})

Timeline = list[dict[str, Any]]

#: Built-in default timelines (used by create_job until set_default_timeline changes them). Key "dli"
#: is DLI SQL; "dli:spark" is a DLI Spark batch.
BUILTIN_DEFAULTS: dict[str, Timeline] = {
    # A DLI Flink streaming job: submitted, then running until stopped. Payload keys: status_desc,
    # restart_times (a number).
    "dli_flink": [
        {"state": "job_submitting", "duration": 1, "status_desc": ""},
        {"state": "job_running", "status_desc": "", "restart_times": 0},
    ],
    "dataproc": [
        {"state": "PENDING", "duration": 1},
        {"state": "RUNNING", "duration": 2},
        {"state": "DONE"},
    ],
    "dataflow": [
        {"state": "JOB_STATE_PENDING", "duration": 1},
        {"state": "JOB_STATE_RUNNING", "duration": 2},
        {"state": "JOB_STATE_DONE"},
    ],
    "vertex_ai": [
        {"state": "JOB_STATE_PENDING", "duration": 1},
        {"state": "JOB_STATE_RUNNING", "duration": 2},
        {"state": "JOB_STATE_SUCCEEDED"},
    ],
    "cdm": [
        {"state": "BOOTING", "duration": 1, "progress": 0},
        {"state": "RUNNING", "duration": 2, "progress": [0, 100]},
        {"state": "SUCCEEDED", "progress": 100, "counters": {"rows_read": 1000, "rows_written": 1000}},
    ],
    "dli": [
        {"state": "LAUNCHING", "duration": 1, "progress": 0},
        {"state": "RUNNING", "duration": 2, "progress": [0, 1]},
        {"state": "FINISHED", "progress": 1},
    ],
    "dli:spark": [
        {"state": "starting", "duration": 1},
        {"state": "running", "duration": 2},
        {"state": "success"},
    ],
    "dataproc_batch": [
        {"state": "PENDING", "duration": 1},
        {"state": "RUNNING", "duration": 2},
        {"state": "SUCCEEDED", "approximate_usage": {"milli_dcu_seconds": 3600000}},
    ],
    "vertex_pipeline": [
        {"state": "PIPELINE_STATE_PENDING", "duration": 1},
        {"state": "PIPELINE_STATE_RUNNING", "duration": 2},
        {"state": "PIPELINE_STATE_SUCCEEDED"},
    ],
}

#: What cancel/stop/drain switch a job to, per (timeline key, action). The core copies this per
#: instance (``SimulatorCore.action_timelines``) so a test can change it.
ACTION_TIMELINES: dict[tuple[str, str], Timeline] = {
    ("dataproc", "cancel"): [
        {"state": "CANCEL_PENDING", "duration": 0.2},
        {"state": "CANCEL_STARTED", "duration": 0.1},
        {"state": "CANCELLED", "details": "Job cancelled by user."},
    ],
    ("dataflow", "cancel"): [
        {"state": "JOB_STATE_CANCELLING", "duration": 0.3},
        {"state": "JOB_STATE_CANCELLED"},
    ],
    ("dataflow", "drain"): [
        {"state": "JOB_STATE_DRAINING", "duration": 0.3},
        {"state": "JOB_STATE_DRAINED"},
    ],
    ("vertex_ai", "cancel"): [
        {"state": "JOB_STATE_CANCELLING", "duration": 0.3},
        {"state": "JOB_STATE_CANCELLED", "error": "CANCELED"},
    ],
    ("cdm", "stop"): [
        {
            "state": "FAILED",
            "progress": -1,
            "error_summary": "stopped by user",
            "error_details": "The job was stopped by the user.",
        }
    ],
    ("dli", "cancel"): [{"state": "CANCELLED", "message": "The job was cancelled by the user."}],
    ("dli:spark", "cancel"): [{"state": "dead"}],
    ("dli_flink", "stop"): [
        {"state": "job_canceling", "duration": 0.3, "status_desc": "Stopping the job."},
        {"state": "job_cancel_success", "status_desc": "The job was stopped by the user."},
    ],
    ("dataproc_batch", "cancel"): [
        {"state": "CANCELLING", "duration": 0.3},
        {"state": "CANCELLED", "state_message": "Batch cancelled by user."},
    ],
    ("vertex_pipeline", "cancel"): [
        {"state": "PIPELINE_STATE_CANCELLING", "duration": 0.3},
        {"state": "PIPELINE_STATE_CANCELLED", "error": "CANCELED"},
    ],
}

#: CDM counters as timelines name them (snake_case); on the wire they are upper-cased under SQOOP_COUNTERS.
CDM_COUNTERS = (
    "bytes_written",
    "total_files",
    "rows_read",
    "bytes_read",
    "rows_written",
    "files_written",
    "files_read",
    "total_size",
    "files_skipped",
    "rows_written_skipped",
)
SQOOP_COUNTERS = "org.apache.sqoop.submission.counter.SqoopCounters"

#: DLI's job_type for a SQL statement, by its first word (anything else is "DDL").
DLI_SQL_JOB_TYPES = {
    "SELECT": "QUERY",
    "WITH": "QUERY",
    "INSERT": "INSERT",
    "LOAD": "IMPORT",
    "GRANT": "DCL",
    "REVOKE": "DCL",
}


def timeline_key(service: str, job_type: str | None = None) -> str:
    """The key of a job's timelines: the service, or ``"dli:spark"`` for a DLI Spark batch."""
    return "dli:spark" if service == "dli" and job_type == "spark" else service


def is_terminal_state(key: str, state: Any) -> bool:
    """True when native ``state`` is final for timeline key ``key`` (see TERMINAL_NATIVE)."""
    terminal = TERMINAL_NATIVE.get(key, frozenset())
    if key in CASE_INSENSITIVE_STATES and isinstance(state, str):
        return state.lower() in terminal
    return state in terminal


def ids_match(service: str, a: str, b: str) -> bool:
    """Equal ids; for CDM a bare job name also matches ``cluster/name``."""
    if a == b:
        return True
    if service == "cdm" and ("/" in a) != ("/" in b):
        return a.rpartition("/")[2] == b.rpartition("/")[2]
    return False
