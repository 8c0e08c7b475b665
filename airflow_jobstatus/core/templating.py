"""What counts as a template, and which templates the triggerer can render without a worker.

The triggerer renders a start-from-trigger sensor's fields with the task's template context, but
its supervisor answers only some of the task SDK's requests: on Airflow 3.3 ``ti.xcom_pull``
(``GetXComSequenceSlice``) and the ``prev_*_success`` dates are not among them, and such a render
waits for an answer that never comes. So a template may be rendered there only when every name it
reads is a plain value of the DAG run or the task (the allow-list below); anything else starts the
task on a worker, which renders exactly as before.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

#: The template marks Jinja recognises (a comment alone is still a template to render).
TEMPLATE_MARKS = ("{{", "{%", "{#")

#: Context names whose values the triggerer builds from the DAG run and the task alone (no request
#: to its supervisor), identical to a worker's. ``ti``/``task_instance`` (XComs), ``var``, ``conn``,
#: asset events and the ``prev_*`` dates ask the supervisor: they are left to a worker.
TRIGGERER_RENDERABLE = frozenset(
    {
        "dag",
        "dag_run",
        "data_interval_end",
        "data_interval_start",
        "ds",
        "ds_nodash",
        "logical_date",
        "macros",
        "map_index_template",
        "params",
        "partition_date",
        "partition_key",
        "run_after",
        "run_id",
        "task",
        "task_instance_key_str",
        "ts",
        "ts_nodash",
        "ts_nodash_with_tz",
    }
)


def is_template(value: Any) -> bool:
    """A string Jinja would render (it holds an expression, a statement or a comment)."""
    return isinstance(value, str) and any(mark in value for mark in TEMPLATE_MARKS)


@lru_cache(maxsize=256)
def template_names(source: str) -> frozenset[str]:
    """The context names a template reads; ``SyntaxError`` (as ValueError) for one Jinja cannot parse."""
    import jinja2
    from jinja2 import meta

    try:
        return frozenset(meta.find_undeclared_variables(jinja2.Environment().parse(source)))
    except jinja2.TemplateSyntaxError as err:
        raise ValueError(f"not a valid template: {err}") from None


def not_renderable_in_triggerer(values: dict[str, Any]) -> str | None:
    """Why the triggerer cannot render these field values as a worker would; None when it can."""
    for name, value in values.items():
        if not is_template(value):
            continue
        try:
            names = template_names(value)
        except ValueError as err:
            return f"{name} is {err}"
        other = sorted(names - TRIGGERER_RENDERABLE)
        if other:
            return (
                f"{name} reads {', '.join(other)}, which only a worker renders "
                "(the triggerer renders DAG-run values such as ds, run_id, params, dag_run.conf)"
            )
    return None
