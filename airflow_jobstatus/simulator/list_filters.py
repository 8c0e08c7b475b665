"""The Google list APIs' ``filter`` strings (AIP-160 and Dataproc's dialect) and ``order_by``, as the
simulator serves them: parsed against one API's documented fields, refused (FilterError, which the
servicers answer INVALID_ARGUMENT) for a field, operator, keyword or value that API does not accept.

Grammar (AIP-160): ``expression := sequence {AND sequence}``; ``sequence := factor {factor}``
(implicit AND); ``factor := term {OR term}`` (OR binds tighter than AND); ``term := [NOT] simple``;
``simple := "(" expression ")" | field op value``; ops ``= != < <= > >= :``. Values are bare words
or double/single-quoted strings; timestamps are RFC 3339 in quotes. A record is a dict from field
name to its value: a string, a wall time (float seconds, None when unset) or, for ``labels``, a dict.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

Record = Mapping[str, Any]
Predicate = Callable[[Record], bool]

EQUALITY = frozenset({"=", "!="})
COMPARISONS = frozenset({"=", "!=", "<", "<=", ">", ">="})


class FilterError(ValueError):
    """A filter or order_by the API refuses (INVALID_ARGUMENT)."""


@dataclass(frozen=True)
class Field:
    """One filterable field: ``kind`` "string", "enum", "time" or "map" (labels), and its operators."""

    kind: str
    ops: frozenset[str]
    #: Accepted values of an enum field (None: any).
    values: frozenset[str] | None = None
    #: A string field's ``:`` is a glob (``display_name:"my_job_*"``).
    glob: bool = False


@dataclass(frozen=True)
class Dialect:
    """One list API's filter language: its fields and which logical operators it takes."""

    name: str
    fields: Mapping[str, Field]
    allow_or: bool = True
    allow_not: bool = True
    allow_parens: bool = True
    #: Dataproc Serverless documents ``state = RUNNING and …`` (lower-case keywords).
    lowercase_keywords: bool = False
    #: Dataproc ListJobs: ``labels.k = *`` (and ``status.state = *``) match any value.
    star_matches_any: bool = False
    aliases: Mapping[str, str] = field(default_factory=dict)


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<paren>[()])
      | (?P<op><=|>=|!=|=|<|>|:)
      | "(?P<dq>(?:[^"\\]|\\.)*)"
      | '(?P<sq>(?:[^'\\]|\\.)*)'
      | (?P<word>[^\s()=<>!:"']+)
    )""",
    re.VERBOSE,
)


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise FilterError(f"cannot parse the filter at {text[pos : pos + 20]!r}")
        kind = match.lastgroup or ""
        value = match.group(kind)
        if kind in ("dq", "sq"):
            kind, value = "str", re.sub(r"\\(.)", r"\1", value)
        out.append((kind, value))
        pos = match.end()
    return out


def parse_time(text: str) -> float:
    """An RFC 3339 timestamp as epoch seconds; FilterError when it is not one."""
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        raise FilterError(f"{text!r} is not an RFC 3339 timestamp") from None
    if stamp.tzinfo is None:
        raise FilterError(f"{text!r} has no time zone (RFC 3339 needs Z or an offset)")
    return stamp.timestamp()


class _Parser:
    def __init__(self, text: str, dialect: Dialect):
        self.toks = _tokens(text)
        self.i = 0
        self.d = dialect

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def keyword(self, word: str) -> bool:
        tok = self.peek()
        if tok is None or tok[0] != "word":
            return False
        if tok[1] == word or (self.d.lowercase_keywords and tok[1].upper() == word):
            self.i += 1
            return True
        return False

    def expression(self) -> Predicate:
        parts = [self.sequence()]
        while self.keyword("AND"):
            parts.append(self.sequence())
        return parts[0] if len(parts) == 1 else (lambda r: all(p(r) for p in parts))

    def sequence(self) -> Predicate:
        parts = [self.factor()]
        while (tok := self.peek()) is not None and tok != ("paren", ")") and not self._is_kw(tok, "AND"):
            parts.append(self.factor())
        return parts[0] if len(parts) == 1 else (lambda r: all(p(r) for p in parts))

    def _is_kw(self, tok: tuple[str, str], word: str) -> bool:
        return tok[0] == "word" and (tok[1] == word or (self.d.lowercase_keywords and tok[1].upper() == word))

    def factor(self) -> Predicate:
        parts = [self.term()]
        while (tok := self.peek()) is not None and self._is_kw(tok, "OR"):
            if not self.d.allow_or:
                raise FilterError(f"{self.d.name}: only the logical AND operator is supported")
            self.i += 1
            parts.append(self.term())
        return parts[0] if len(parts) == 1 else (lambda r: any(p(r) for p in parts))

    def term(self) -> Predicate:
        tok = self.peek()
        if tok is not None and self._is_kw(tok, "NOT"):
            if not self.d.allow_not:
                raise FilterError(f"{self.d.name}: NOT is not supported")
            self.i += 1
            inner = self.term()
            return lambda r: not inner(r)
        if tok == ("paren", "("):
            if not self.d.allow_parens:
                raise FilterError(f"{self.d.name}: parentheses are not supported")
            self.i += 1
            inner = self.expression()
            if self.peek() != ("paren", ")"):
                raise FilterError(f"{self.d.name}: unbalanced parentheses")
            self.i += 1
            return inner
        return self.restriction()

    def restriction(self) -> Predicate:
        name_tok = self.peek()
        if name_tok is None or name_tok[0] != "word" or name_tok[1] in ("AND", "OR", "NOT"):
            raise FilterError(
                f"{self.d.name}: expected a field name, got {name_tok[1] if name_tok else 'the end'!r}"
            )
        self.i += 1
        op_tok = self.peek()
        if op_tok is None or op_tok[0] != "op":
            raise FilterError(
                f"{self.d.name}: a bare value {name_tok[1]!r} is not supported; use field = value"
            )
        self.i += 1
        value_tok = self.peek()
        if value_tok is None or value_tok[0] not in ("word", "str"):
            raise FilterError(f"{self.d.name}: {name_tok[1]} {op_tok[1]} needs a value")
        self.i += 1
        return restriction(self.d, name_tok[1], op_tok[1], value_tok[1], value_tok[0] == "str")


def restriction(dialect: Dialect, name: str, op: str, value: str, quoted: bool) -> Predicate:
    """One ``field op value`` as a predicate, checked against the dialect."""
    name = dialect.aliases.get(name, name)
    key: str | None = None
    if name.startswith("labels.") and "labels" in dialect.fields:
        name, key = "labels", name[len("labels.") :]
        if not key:
            raise FilterError(f"{dialect.name}: labels. needs a key")
    spec = dialect.fields.get(name)
    if spec is None or (spec.kind == "map" and key is None):
        known = ", ".join(f"{f}.KEY" if s.kind == "map" else f for f, s in dialect.fields.items())
        raise FilterError(f"{dialect.name}: unsupported filter field {name!r}; supported: {known}")
    if op not in spec.ops:
        raise FilterError(
            f"{dialect.name}: {name} does not support {op!r} (supports {' '.join(sorted(spec.ops))})"
        )
    star = value == "*" and not quoted
    if spec.kind == "map":
        assert key is not None
        if op == ":" or (star and dialect.star_matches_any):
            if not star:
                raise FilterError(f"{dialect.name}: labels.{key}:{value} — presence is labels.{key}:*")
            return lambda r: key in (r.get(name) or {})
        if op == "=":
            return lambda r: (r.get(name) or {}).get(key) == value
        return lambda r: (r.get(name) or {}).get(key) != value
    if spec.kind == "time":
        at = parse_time(value)
        compare: dict[str, Callable[[float], bool]] = {
            "=": lambda t: t == at,
            "!=": lambda t: t != at,
            "<": lambda t: t < at,
            "<=": lambda t: t <= at,
            ">": lambda t: t > at,
            ">=": lambda t: t >= at,
        }
        test = compare[op]
        return lambda r: r.get(name) is not None and test(float(r[name]))
    if star and dialect.star_matches_any:
        return lambda r: True
    if spec.values is not None and value not in spec.values:
        raise FilterError(
            f"{dialect.name}: {value!r} is not a valid {name}; valid: {', '.join(sorted(spec.values))}"
        )
    if op == ":":
        pattern = value if spec.glob else f"*{value}*"
        return lambda r: fnmatch.fnmatchcase(str(r.get(name) or ""), pattern)
    if op == "=":
        return lambda r: str(r.get(name) or "") == value
    return lambda r: str(r.get(name) or "") != value


def parse_filter(text: str, dialect: Dialect) -> Predicate:
    """The filter as a predicate over records; an empty filter keeps everything."""
    if not text.strip():
        return lambda r: True
    parser = _Parser(text, dialect)
    predicate = parser.expression()
    if parser.peek() is not None:
        raise FilterError(f"{dialect.name}: unexpected {parser.peek()[1]!r} in the filter")  # type: ignore[index]
    return predicate


def parse_order_by(text: str, allowed: frozenset[str], api: str) -> list[tuple[str, bool]]:
    """``"create_time desc, end_time"`` → [("create_time", True), ("end_time", False)]."""
    out: list[tuple[str, bool]] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        words = part.split()
        if len(words) > 2 or (len(words) == 2 and words[1] not in ("asc", "desc")) or words[0] not in allowed:
            raise FilterError(
                f"{api}: unsupported order_by {part!r}; supported: {', '.join(sorted(allowed))}"
            )
        out.append((words[0], len(words) == 2 and words[1] == "desc"))
    return out


def time_fields(*names: str) -> dict[str, Field]:
    return {n: Field("time", COMPARISONS) for n in names}


def _enum(*values: str) -> Field:
    return Field("enum", EQUALITY, frozenset(values))


def _labels(*ops: str) -> Field:
    return Field("map", frozenset(ops))


def google_dialects() -> dict[str, Dialect]:
    """Each simulated Google list call's filter, from the SDK docstrings of its request's ``filter``."""
    from airflow_jobstatus.simulator.vocabulary import GOOGLE_STATES

    vertex_state = Field("enum", EQUALITY, GOOGLE_STATES["vertex_ai"])
    display_name = Field("string", frozenset({"=", "!=", ":"}), glob=True)
    vertex_jobs = {
        "display_name": display_name,
        "state": vertex_state,
        **time_fields("create_time"),
        "labels": _labels("=", "!=", ":"),
    }
    return {
        # dataproc_v1.ListJobsRequest.filter: [field = value] AND …; status.state ACTIVE|NON_ACTIVE,
        # labels.KEY (value * matches any), insertTime (RFC 3339 in quotes); AND only.
        "dataproc": Dialect(
            "Dataproc ListJobs",
            {
                "status.state": _enum("ACTIVE", "NON_ACTIVE"),
                "insertTime": Field("time", COMPARISONS),
                "labels": _labels("="),
            },
            allow_or=False,
            allow_not=False,
            allow_parens=False,
            star_matches_any=True,
        ),
        # dataproc_v1.ListBatchesRequest.filter: batch_id, batch_uuid, state, create_time, labels;
        # AND/OR (the docs' examples spell them lower-case too).
        "dataproc_batch": Dialect(
            "Dataproc ListBatches",
            {
                "batch_id": Field("string", EQUALITY),
                "batch_uuid": Field("string", EQUALITY),
                "state": Field("enum", EQUALITY, GOOGLE_STATES["dataproc_batch"]),
                **time_fields("create_time"),
                "labels": _labels("=", "!=", ":"),
            },
            lowercase_keywords=True,
        ),
        # aiplatform_v1.List{CustomJobs,BatchPredictionJobs,HyperparameterTuningJobs}Request.filter.
        "vertex_ai": Dialect("Vertex AI List*Jobs", vertex_jobs),
        # aiplatform_v1.ListPipelineJobsRequest.filter.
        "vertex_pipeline": Dialect(
            "Vertex AI ListPipelineJobs",
            {
                "pipeline_name": Field("string", EQUALITY),
                "display_name": display_name,
                "pipeline_job_user_id": Field("string", frozenset({"=", "!=", ":"}), glob=True),
                "state": Field("enum", EQUALITY, GOOGLE_STATES["vertex_pipeline"]),
                **time_fields("create_time", "update_time", "end_time"),
                "labels": _labels("=", "!=", ":"),
                "template_uri": Field("string", frozenset({"=", "!=", ":"}), glob=True),
                "template_metadata.version": Field("string", frozenset({"=", "!=", ":"}), glob=True),
            },
        ),
    }


#: ListPipelineJobsRequest.order_by's fields; ListBatchesRequest.order_by takes "create_time desc" only.
PIPELINE_ORDER_FIELDS = frozenset({"create_time", "update_time", "end_time", "start_time"})
