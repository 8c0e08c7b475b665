"""The coalescer's rules against an in-memory list (no wire): one list call per interval per key,
absent or terminal → the job's own read, list errors per waiter, the poller's lifetime, keys kept
apart, detection within the interval; the trigger/sensor switch; and ``coalesce="auto"``: the
threshold, the page rule, hysteresis, switches that lose no poll, what auto polls per job; and, in
virtual time through the trigger, that auto never makes more calls than per-job polling."""

from __future__ import annotations

import asyncio
import itertools
import math
import selectors
from typing import Any

import pytest

from airflow_jobstatus.core.exceptions import (
    ConfigurationError,
    JobNotFoundError,
    TransientServiceError,
)
from airflow_jobstatus.core.states import JobState, JobStatus
from airflow_jobstatus.hooks.base import JobStatusHook
from airflow_jobstatus.services.base import Coalescing
from airflow_jobstatus.services.dataproc import DataprocJobRef
from airflow_jobstatus.triggers import coalescing
from airflow_jobstatus.triggers.coalescing import Waiter, active_pollers
from airflow_jobstatus.triggers.job_status import JobStatusTrigger
from tests.unit.fakes import make_sensor

INTERVAL = 0.1


class ListHook(JobStatusHook[Any]):
    """A Dataproc-like hook whose active list is a dict the test edits; every call is counted."""

    service = "dataproc"
    conn_name_attr = "fake_conn_id"
    default_conn_name = "fake_default"

    def __init__(self, active: dict[str, str], conn_id: str = "fake_default") -> None:
        JobStatusHook.__init__(self, conn_id)
        self.active = active  # job id → normalized state name of the jobs the list shows
        self.final: dict[str, JobStatus] = {}
        self.list_error: Exception | None = None
        self.lists: list[float] = []
        self.reads: list[str] = []

    async def alist_active(self, ref: Any) -> list[Any]:
        await asyncio.sleep(0)
        self.lists.append(asyncio.get_running_loop().time())
        if self.list_error is not None:
            error, self.list_error = self.list_error, None
            raise error
        return [{"id": job_id, "state": state} for job_id, state in self.active.items()]

    async def aget_status(self, ref: Any) -> JobStatus:
        await asyncio.sleep(0)
        self.reads.append(ref.job_id)
        return self.final.get(ref.job_id) or JobStatus("dataproc", ref.job_id, JobState.RUNNING, "RUNNING")


def parse_entry(entry: dict[str, Any], ref: Any) -> JobStatus:
    return JobStatus("dataproc", ref.job_id, JobState(entry["state"]), entry["state"], message="from list")


FAKE = Coalescing(("project_id", "region"), lambda p, r: None, lambda e: e["id"], parse_entry)


@pytest.fixture(autouse=True)
def fake_coalescing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dataproc's list facts replaced by the dict-based ones above (the rules are the same)."""
    real = coalescing.coalescing_of

    def of(service: str, ref: Any = None) -> Coalescing:
        real(service, ref)  # still refuses what cannot coalesce
        return FAKE

    monkeypatch.setattr(coalescing, "coalescing_of", of)


def ref(job_id: str, region: str = "europe-west1") -> DataprocJobRef:
    return DataprocJobRef(job_id=job_id, region=region, project_id="p")


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_one_list_call_per_interval_for_many_waiters() -> None:
    hook = ListHook({f"j{i}": "RUNNING" for i in range(50)})

    async def scenario() -> list[JobStatus]:
        waiters = [Waiter(hook, ref(f"j{i}"), INTERVAL) for i in range(50)]
        seen: list[JobStatus] = []
        for _ in range(3):  # three polls of every waiter, as their triggers would make
            seen += await asyncio.gather(*(w() for w in waiters))
            await asyncio.gather(*(w.pause() for w in waiters))
        for w in waiters:
            w.close()
        return seen

    seen = run(scenario())
    assert len(seen) == 150 and all(s.message == "from list" and s.state is JobState.RUNNING for s in seen)
    assert 3 <= len(hook.lists) <= 4  # one list call per interval, whatever the number of waiters
    assert hook.reads == []  # nobody needed its own read
    gaps = [b - a for a, b in zip(hook.lists, hook.lists[1:], strict=False)]
    assert all(g >= INTERVAL * 0.9 for g in gaps)


def test_absent_or_terminal_job_gets_its_own_read() -> None:
    hook = ListHook({"running": "RUNNING", "ended": "SUCCEEDED"})
    hook.final["gone"] = JobStatus("dataproc", "gone", JobState.FAILED, "ERROR", message="Driver died")
    hook.final["ended"] = JobStatus("dataproc", "ended", JobState.SUCCEEDED, "DONE", message="own read")

    async def scenario() -> list[JobStatus]:
        waiters = [Waiter(hook, ref(j), INTERVAL) for j in ("running", "gone", "ended")]
        out = list(await asyncio.gather(*(w() for w in waiters)))
        for w in waiters:
            w.close()
        return out

    running, gone, ended = run(scenario())
    assert running.message == "from list"
    assert gone.state is JobState.FAILED and gone.message == "Driver died"  # exactly the own read
    assert ended.message == "own read"  # a terminal entry is never the final word
    assert sorted(hook.reads) == ["ended", "gone"]


def test_a_failed_list_is_a_read_error_of_each_waiter() -> None:
    hook = ListHook({"a": "RUNNING", "b": "RUNNING"})
    hook.list_error = TransientServiceError("503", service="dataproc", job_id="(job list)", code=503)

    async def scenario() -> tuple[list[Any], list[JobStatus]]:
        waiters = [Waiter(hook, ref(j), INTERVAL) for j in ("a", "b")]
        first = await asyncio.gather(*(w() for w in waiters), return_exceptions=True)
        second = await asyncio.gather(*(w() for w in waiters))
        for w in waiters:
            w.close()
        return list(first), list(second)

    first, second = run(scenario())
    assert all(isinstance(e, TransientServiceError) for e in first)
    assert [e.job_id for e in first] == ["a", "b"] and first[0] is not first[1]
    assert [s.state for s in second] == [JobState.RUNNING] * 2  # the next list serves them again
    assert hook.reads == []


def test_a_final_list_error_keeps_its_kind() -> None:
    hook = ListHook({})
    hook.list_error = JobNotFoundError("no such region", service="dataproc", code=404)

    async def scenario() -> BaseException:
        w = Waiter(hook, ref("a"), INTERVAL)
        try:
            await w()
        except JobNotFoundError as err:
            return err
        finally:
            w.close()
        raise AssertionError("no error")

    assert not run(scenario()).retryable


def test_last_waiter_leaving_stops_the_poller() -> None:
    hook = ListHook({"a": "RUNNING", "b": "RUNNING"})

    async def scenario() -> tuple[int, int, int]:
        a, b = Waiter(hook, ref("a"), INTERVAL), Waiter(hook, ref("b"), INTERVAL)
        await asyncio.gather(a(), b())
        a.close()
        await asyncio.sleep(INTERVAL * 2.5)
        still = len(active_pollers())
        b.close()
        gone = len(active_pollers())
        calls = len(hook.lists)
        await asyncio.sleep(INTERVAL * 3)
        return still, gone, len(hook.lists) - calls

    still, gone, after = run(scenario())
    assert (still, gone, after) == (1, 0, 0)


def test_a_waiter_dropped_without_close_leaves_too() -> None:
    hook = ListHook({"a": "RUNNING"})

    async def scenario() -> int:
        w = Waiter(hook, ref("a"), INTERVAL)
        await w()
        del w  # a trigger garbage-collected without its finally: the weak set forgets it
        await asyncio.sleep(INTERVAL * 2.5)
        return len(active_pollers())

    assert run(scenario()) == 0


def test_connections_regions_and_intervals_are_not_mixed() -> None:
    hook, other_conn = ListHook({"a": "RUNNING"}), ListHook({"a": "RUNNING"}, conn_id="other")

    async def scenario() -> int:
        waiters = [
            Waiter(hook, ref("a"), INTERVAL),
            Waiter(hook, ref("b"), INTERVAL),  # same key as the first
            Waiter(other_conn, ref("a"), INTERVAL),
            Waiter(hook, ref("a", region="us-east1"), INTERVAL),
            Waiter(hook, ref("a"), INTERVAL * 2),
        ]
        await asyncio.gather(*(w() for w in waiters))
        count = len(active_pollers())
        for w in waiters:
            w.close()
        return count

    assert run(scenario()) == 4


def test_detection_within_the_interval() -> None:
    """A job leaving the list is seen at the first list answer after it left, even by a waiter that was
    busy past that answer: its pause returns at once instead of sleeping on top of the list's interval,
    and it waits only when it has seen the latest answer. List answers are driven by hand (an hour's
    interval: the poller makes its first call and then none), so no timing is asserted."""
    hook = ListHook({"a": "RUNNING"})
    hook.final["a"] = JobStatus("dataproc", "a", JobState.SUCCEEDED, "DONE")

    async def answers_once() -> None:
        for _ in range(5):  # the poller's task, the list call and the publication
            await asyncio.sleep(0)

    async def scenario() -> list[Any]:
        w = Waiter(hook, ref("a"), 3600.0)
        first = await w()  # joins; the poller's first list answer (generation 1)
        (poller,) = active_pollers().values()
        pause = asyncio.ensure_future(w.pause())
        await answers_once()
        blocked = not pause.done()  # nothing new since generation 1: the pause waits
        del hook.active["a"]  # the job ends while the waiter is "busy"
        poller._publish(await poller._list())  # generation 2 answers without it
        await answers_once()
        woke = pause.done()
        busy_pause = asyncio.ensure_future(w.pause())  # not yet read generation 2: returns at once
        await asyncio.sleep(0)
        at_once = busy_pause.done()
        final = await w()
        w.close()
        return [first.state, blocked, woke, at_once, final.state, hook.reads, len(hook.lists)]

    first, blocked, woke, at_once, final, reads, lists = run(scenario())
    assert first is JobState.RUNNING and final is JobState.SUCCEEDED
    assert blocked and woke and at_once
    assert reads == ["a"]  # one own read: when the job left the list
    assert lists == 2  # the first call and the hand-driven one: no call was added by the pauses


# -- the switch: trigger and sensors -------------------------------------------------------------


def test_trigger_reads_through_the_coalescer(monkeypatch: pytest.MonkeyPatch) -> None:
    hook = ListHook({"job-1": "RUNNING"})
    hook.final["job-1"] = JobStatus("dataproc", "job-1", JobState.SUCCEEDED, "DONE", message="done")
    monkeypatch.setattr(JobStatusTrigger, "_hook", lambda self: hook)
    trigger = JobStatusTrigger(
        "dataproc", {"job_id": "job-1", "region": "europe-west1"}, poll_interval=0.05, coalesce=True
    )
    assert trigger.serialize()[1]["coalesce"] is True

    async def scenario() -> dict[str, Any]:
        async def finish() -> None:
            await asyncio.sleep(0.2)
            hook.active.clear()

        ender = asyncio.create_task(finish())
        agen = trigger.run()
        event = await agen.__anext__()
        await agen.aclose()
        await ender
        assert active_pollers() == {}  # the trigger's end left the poller
        return dict(event.payload)

    payload = run(scenario())
    assert payload["status"] == "success" and payload["job_status"]["message"] == "done"
    assert hook.reads == ["job-1"] and len(hook.lists) >= 2


def test_unsupported_services_refuse_coalesce() -> None:
    with pytest.raises(ConfigurationError, match="not supported for CDM"):
        JobStatusTrigger("cdm", {"cluster_id": "c", "job_name": "j"}, coalesce=True)
    with pytest.raises(ConfigurationError, match="not supported for CDM"):
        make_sensor("cdm", coalesce=True)
    assert JobStatusTrigger("dli", {"job_id": "b", "job_type": "spark"}, coalesce=True).coalesce


def test_a_ref_the_service_cannot_list_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A service may refuse some refs (``Coalescing.unsupported``): at parse time and when rendered."""
    import dataclasses

    from airflow_jobstatus.services import REGISTRY

    spec = REGISTRY["dli"]
    assert spec.coalescing is not None
    refusing = dataclasses.replace(spec.coalescing, unsupported=lambda ref: "not this one")
    monkeypatch.setitem(REGISTRY, "dli", dataclasses.replace(spec, coalescing=refusing))
    with pytest.raises(ConfigurationError, match="not this one"):
        JobStatusTrigger("dli", {"job_id": "b"}, coalesce=True)
    with pytest.raises(ConfigurationError, match="not this one"):
        make_sensor("dli", coalesce=True)


@pytest.mark.parametrize("service", ["dataproc", "dataflow", "vertex_ai", "dli"])
def test_sensors_pass_coalesce_to_the_trigger(service: str) -> None:
    sensor = make_sensor(service, coalesce=True, deferrable=True)
    assert sensor.make_trigger(5.0).coalesce is True
    assert make_sensor(service).make_trigger(5.0).coalesce == "auto"  # coalesces where it pays
    assert make_sensor(service, coalesce=False).make_trigger(5.0).coalesce is False


def test_a_sensor_started_in_the_triggerer_coalesces_too() -> None:
    sensor = make_sensor("dli", coalesce=True, deferrable=True)
    args = sensor.start_trigger_args
    assert args is not None and args.trigger_kwargs["coalesce"] is True
    from airflow_jobstatus.triggers.job_status import JobStatusStartTrigger

    trigger = JobStatusStartTrigger(**args.trigger_kwargs)
    assert trigger.serialize()[1]["coalesce"] is True
    trigger.job_id, trigger.job_type = "j-1", "spark"  # rendered in the triggerer
    trigger._take_rendered_fields()
    assert trigger.job_ref == {"job_id": "j-1", "job_type": "spark"}


# -- the services' list facts (pure) --------------------------------------------------------------


def test_dli_list_pages_stop_at_the_documented_limit() -> None:
    from airflow_jobstatus.services import dli

    sql = dli.list_active_call("", dli.DliJobRef("j"))
    assert [dict(op.query)["job-status"] for op in sql] == ["LAUNCHING", "RUNNING", "SCALING"]
    full = {"jobs": [{"job_id": str(i)} for i in range(100)], "job_count": 50_000}
    _, nxt = dli.list_page(sql[1], full)
    assert nxt is not None and dict(nxt.query)["current-page"] == "2"
    last = dli._sql_list_op("RUNNING", 100)  # current-page ranges over 1..100: the rest are read one by one
    assert dli.list_page(last, full)[1] is None
    assert dli.list_page(sql[1], {"jobs": [], "job_count": 0}) == ([], None)

    spark = dli.list_active_call("", dli.DliJobRef("b", job_type="spark"))
    assert [dict(op.query)["state"] for op in spark] == ["starting", "running", "recovering"]
    page = {"sessions": [{"id": str(i)} for i in range(100)], "total": 150}
    _, nxt = dli.list_page(spark[1], page)
    assert nxt is not None and dict(nxt.query)["from"] == "100"
    assert dli.list_entry_id({"id": "b-1"}) == "b-1" and dli.list_entry_id({"job_id": "j-1"}) == "j-1"


def test_vertex_active_filter_keeps_exactly_the_non_terminal_states() -> None:
    from airflow_jobstatus.services import vertex_ai
    from airflow_jobstatus.simulator.vertex_grpc import state_filter

    keep = state_filter(vertex_ai.ACTIVE_FILTER)
    for native, state in vertex_ai.STATES.table.items():
        assert keep(native) is not state.is_terminal, native
    either = state_filter('state="JOB_STATE_RUNNING" OR state="JOB_STATE_QUEUED" AND NOT state="X"')
    assert either("JOB_STATE_QUEUED") and not either("JOB_STATE_FAILED")


# -- coalesce="auto" ---------------------------------------------------------------------------------

N = coalescing.AUTO_MIN_WAITS


async def polling(waiter: Waiter, readings: list[tuple[float, JobStatus]], rounds: int) -> None:
    """A trigger's loop over ``waiter``: ``rounds`` readings, a pause after each; then it leaves."""
    loop = asyncio.get_running_loop()
    try:
        for i in range(rounds):
            status = await waiter()  # a reading's time: when it is taken (a first one may wait for a list)
            readings.append((loop.time(), status))
            if i < rounds - 1:
                await waiter.pause()
    finally:
        waiter.close()


def auto_waiters(hook: ListHook, ids: list[str], region: str = "europe-west1") -> list[Waiter]:
    """Auto waiters, joined at once (in a loop): their triggers are all waiting, as in a steady state."""
    waiters = [Waiter(hook, ref(j, region), INTERVAL, auto=True) for j in ids]
    for w in waiters:
        w._join()
    return waiters


@pytest.mark.parametrize(("waits", "lists"), [(N - 1, False), (N, True)])
def test_auto_coalesces_from_the_threshold_on(waits: int, lists: bool) -> None:
    ids = [f"j{i}" for i in range(waits)]
    hook = ListHook(dict.fromkeys(ids, "RUNNING"))

    async def scenario() -> list[list[tuple[float, JobStatus]]]:
        readings: list[list[tuple[float, JobStatus]]] = [[] for _ in ids]
        waiters = auto_waiters(hook, ids)
        await asyncio.gather(*(polling(w, r, 3) for w, r in zip(waiters, readings, strict=True)))
        return readings

    readings = run(scenario())
    assert all(len(r) == 3 for r in readings)
    if lists:  # from the list: one call per interval for all of them, no own read
        assert 3 <= len(hook.lists) <= 4 and hook.reads == []
        assert all(s.message == "from list" for r in readings for _, s in r)
    else:  # below it: exactly what per-job polling reads
        assert hook.lists == [] and sorted(hook.reads) == sorted(ids * 3)


def test_auto_falls_back_when_the_scope_lists_more_pages_than_waits() -> None:
    """The list returns every active job of the scope: 450 others are 5 pages, more than 4 waits'
    reads. One list round shows it; from the next interval on the waits read their own jobs."""
    ids = [f"j{i}" for i in range(N)]
    hook = ListHook({**{f"other-{i}": "RUNNING" for i in range(450)}, **dict.fromkeys(ids, "RUNNING")})

    async def scenario() -> tuple[list[list[tuple[float, JobStatus]]], bool]:
        readings: list[list[tuple[float, JobStatus]]] = [[] for _ in ids]
        waiters = auto_waiters(hook, ids)
        runs = [asyncio.create_task(polling(w, r, 4)) for w, r in zip(waiters, readings, strict=True)]
        await asyncio.sleep(INTERVAL * 2.5)
        (poller,) = active_pollers().values()
        on = poller.coalescing_now
        await asyncio.gather(*runs)
        return readings, on

    readings, on = run(scenario())
    assert not on and len(hook.lists) == 1  # one probe, then per job
    assert all(len(r) == 4 for r in readings)  # no poll lost at the switch …
    assert sorted(hook.reads) == sorted(ids * 3)  # … and none doubled: 3 own reads after the list one


def test_auto_falls_back_when_listed_jobs_keep_missing() -> None:
    """Active jobs the list does not show (another status, past its last page) are each read on their
    own: a round then costs the list plus those reads, not fewer than per-job polling."""
    ids = [f"j{i}" for i in range(N)]
    hook = ListHook({"unrelated": "RUNNING"})  # none of the waits' jobs is listed; reads say RUNNING

    async def scenario() -> None:
        readings: list[list[tuple[float, JobStatus]]] = [[] for _ in ids]
        waiters = auto_waiters(hook, ids)
        await asyncio.gather(*(polling(w, r, 5) for w, r in zip(waiters, readings, strict=True)))

    run(scenario())
    assert len(hook.lists) <= 3  # the first rounds show the misses; then no more list calls
    assert sorted(hook.reads) == sorted(ids * 5)  # every poll of every wait, once


def test_auto_hysteresis_and_switches_lose_no_poll() -> None:
    """On at N waits; still on at 2 (a list still costs less than 2 reads); off at 1; back at 2 it
    stays off, on again at N. Through every switch each wait reads about once per interval: none lost,
    none doubled, and never more own reads than per-job polling."""
    assert (coalescing.AUTO_MIN_WAITS, coalescing.AUTO_KEEP_WAITS) == (3, 2)  # what the steps below assume
    names = ["a", "b", "c", "d", "e", "f"]
    hook = ListHook(dict.fromkeys(names, "RUNNING"))
    step = INTERVAL * 3

    async def scenario() -> tuple[dict[str, list[tuple[float, JobStatus]]], list[bool], dict[str, float]]:
        readings: dict[str, list[tuple[float, JobStatus]]] = {j: [] for j in names}
        tasks: dict[str, asyncio.Task[None]] = {}
        lived: dict[str, float] = {}
        loop = asyncio.get_running_loop()

        def start(*ids: str) -> None:
            for w, j in zip(auto_waiters(hook, list(ids)), ids, strict=True):
                tasks[j] = asyncio.create_task(polling(w, readings[j], 10_000))
                lived[j] = -loop.time()

        async def stop(*ids: str) -> None:
            for j in ids:
                tasks[j].cancel()
                lived[j] += loop.time()
            await asyncio.gather(*(tasks[j] for j in ids), return_exceptions=True)

        def on() -> bool:
            (poller,) = active_pollers().values()
            return poller.coalescing_now

        start("a", "b", "c")  # k=3: on
        await asyncio.sleep(step)
        states = [on()]
        await stop("a")  # k=2: still on
        await asyncio.sleep(step)
        states.append(on())
        await stop("b")  # k=1: off at the next round
        await asyncio.sleep(step)
        states.append(on())
        start("d")  # k=2: stays off
        await asyncio.sleep(step)
        states.append(on())
        start("e")  # k=3: on again
        await asyncio.sleep(step)
        states.append(on())
        await stop("c", "d", "e")
        return readings, states, lived

    readings, states, lived = run(scenario())
    assert states == [True, True, False, False, True]
    for job_id in ("a", "b", "c", "d", "e"):
        seen = readings[job_id]
        gaps = [b - a for (a, _), (b, _) in itertools.pairwise(seen)]
        assert all(g >= INTERVAL * 0.4 for g in gaps), (job_id, gaps)  # no reading doubled
        # A lost poll is a gap of two intervals; per-job pauses end on shared_sleep's 50 ms ticks.
        assert all(g < INTERVAL * 1.9 for g in gaps), (job_id, gaps)
        assert len(seen) >= lived[job_id] / (INTERVAL * 1.9), (job_id, len(seen))
        assert hook.reads.count(job_id) <= len(seen)  # never more calls than per-job polling


def test_mixed_scopes_and_modes_in_one_loop() -> None:
    """Per scope: N auto waits in one region coalesce, 2 in another read per job, and one forced
    ``coalesce=True`` wait coalesces on its own."""
    hook = ListHook({**{f"a{i}": "RUNNING" for i in range(N)}, "b0": "RUNNING", "b1": "RUNNING"})
    hook.active["c0"] = "RUNNING"

    async def scenario() -> dict[tuple[Any, ...], bool]:
        waiters = auto_waiters(hook, [f"a{i}" for i in range(N)])
        waiters += auto_waiters(hook, ["b0", "b1"], region="us-east1")
        waiters.append(Waiter(hook, ref("c0", "asia-east1"), INTERVAL))
        await asyncio.gather(*(w() for w in waiters))
        modes = {key[3]: p.coalescing_now for key, p in active_pollers().items()}
        for w in waiters:
            w.close()
        return modes

    modes = run(scenario())
    assert modes == {("p", "europe-west1"): True, ("p", "us-east1"): False, ("p", "asia-east1"): True}
    assert sorted(hook.reads) == ["b0", "b1"]


def test_auto_where_the_service_cannot_coalesce_polls_per_job(caplog: pytest.LogCaptureFixture) -> None:
    """CDM (no list of active jobs), a ref the list does not serve, DLI SQL (its list lacks what a
    read has): under auto, no error and no waiter (the job's own read), logged once; True still raises."""
    caplog.set_level("INFO", logger=coalescing.__name__)
    coalescing._LOGGED.clear()
    cdm = [JobStatusTrigger("cdm", {"cluster_id": "c", "job_name": f"j{i}"}) for i in range(3)]
    assert all(t.coalesce == "auto" for t in cdm)
    assert all(t._waiter(None, t._ref()) is None for t in cdm)  # type: ignore[arg-type]
    assert sum("CDM" in r.getMessage() for r in caplog.records) == 1
    assert make_sensor("cdm").coalesce == "auto"  # the default parses for every service
    with pytest.raises(ConfigurationError, match="not supported for CDM"):
        make_sensor("cdm", coalesce=True)

    sql = JobStatusTrigger("dli", {"job_id": "q", "job_type": "sql"})
    spark = JobStatusTrigger("dli", {"job_id": "b", "job_type": "spark"})
    assert sql._waiter(None, sql._ref()) is None  # type: ignore[arg-type]
    assert coalescing.auto_refusal("dli", spark._ref()) is None  # Spark batch entries are complete


def test_auto_with_a_ref_the_list_cannot_serve(monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    from airflow_jobstatus.services import REGISTRY

    spec = REGISTRY["dataproc"]
    assert spec.coalescing is not None
    refusing = dataclasses.replace(spec.coalescing, unsupported=lambda ref: "not this one")
    monkeypatch.setitem(REGISTRY, "dataproc", dataclasses.replace(spec, coalescing=refusing))
    trigger = JobStatusTrigger("dataproc", {"job_id": "a", "region": "europe-west1"})
    assert trigger._waiter(None, trigger._ref()) is None  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="not this one"):
        JobStatusTrigger("dataproc", {"job_id": "a", "region": "europe-west1"}, coalesce=True)


def test_auto_asks_the_service_whether_its_list_carries_a_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """Which lists carry less than a read is the service's word (``Coalescing.auto_unsupported`` in
    services/<name>.py), not coalescing.py's: auto polls such refs per job, True still lists them."""
    import dataclasses
    import inspect

    from airflow_jobstatus.services import REGISTRY, dli

    dli_coalescing = REGISTRY["dli"].coalescing
    assert dli_coalescing is not None and dli_coalescing.auto_unsupported is dli.auto_unsupported
    assert "progress" in (dli.auto_unsupported(dli.DliJobRef("q")) or "")
    assert dli.auto_unsupported(dli.DliJobRef("b", job_type="spark")) is None
    source = inspect.getsource(coalescing)
    assert '"dli"' not in source and "'dli'" not in source  # no service named in the mechanism

    spec = REGISTRY["dataproc"]
    assert spec.coalescing is not None and spec.coalescing.auto_unsupported(None) is None  # the default
    thin = dataclasses.replace(spec.coalescing, auto_unsupported=lambda ref: "thin entries")
    monkeypatch.setitem(REGISTRY, "dataproc", dataclasses.replace(spec, coalescing=thin))
    coalescing._LOGGED.clear()
    trigger = JobStatusTrigger("dataproc", {"job_id": "a", "region": "europe-west1"})
    assert coalescing.auto_refusal("dataproc", trigger._ref()) == "thin entries"
    assert trigger._waiter(None, trigger._ref()) is None  # type: ignore[arg-type]
    forced = JobStatusTrigger("dataproc", {"job_id": "a", "region": "europe-west1"}, coalesce=True)
    assert forced._waiter(None, forced._ref()) is not None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "parsed"), [("auto", "auto"), ("AUTO", "auto"), (True, True), (False, False), ("false", False)]
)
def test_coalesce_values(value: Any, parsed: Any) -> None:
    trigger = JobStatusTrigger("dataproc", {"job_id": "a", "region": "r"}, coalesce=value)
    assert trigger.coalesce == parsed and trigger.serialize()[1]["coalesce"] == parsed
    assert make_sensor("dataproc", coalesce=value).coalesce == parsed


@pytest.mark.parametrize("value", ["sometimes", 1, None])
def test_a_bad_coalesce_value_is_a_clear_error(value: Any) -> None:
    with pytest.raises(ConfigurationError, match="coalesce must be True, False or 'auto'"):
        make_sensor("dataproc", coalesce=value)


def test_list_requests_estimate() -> None:
    """Google lists one request a page; DLI one per listed status, plus at most one page each."""
    from airflow_jobstatus.services import get_service

    dataproc = get_service("dataproc").coalescing
    dli = get_service("dli").coalescing
    assert dataproc is not None and dli is not None
    assert coalescing.list_shape(dataproc, ref("a")) == (1, 100)
    from airflow_jobstatus.services.dli import DliJobRef

    assert coalescing.list_shape(dli, DliJobRef("b", job_type="spark")) == (3, 100)
    assert [coalescing.list_requests(1, 100, n) for n in (0, 100, 101, 450)] == [1, 1, 2, 5]
    assert coalescing.list_requests(3, 100, 150) == 4


def test_the_documented_auto_thresholds_are_the_code_s() -> None:
    """The sensor docstring and the README state the thresholds auto implements."""
    from pathlib import Path

    from airflow_jobstatus.sensors.base import JobStatusSensor

    on, off = coalescing.AUTO_MIN_WAITS, coalescing.AUTO_KEEP_WAITS
    doc = " ".join((JobStatusSensor.__doc__ or "").split())
    assert f"at least {on} such waits" in doc and f"below {off} waits" in doc
    readme = " ".join((Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8").split())
    assert f"on once `k >= {on}` and `L + r <= k / 2`" in readme
    assert f"off when `k < {off}` or `L + r >= k`" in readme


# -- auto against per-job polling, call for call (virtual time, through the trigger) -----------------


class _Jump(selectors.SelectSelector):
    """Nothing ever becomes ready here: instead of blocking, the loop's clock jumps to its next timer."""

    def __init__(self, loop: VirtualLoop) -> None:
        super().__init__()
        self.loop = loop

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        events = super().select(0)
        if not events:
            if timeout is None:
                raise RuntimeError("the scenario waits on nothing: deadlock")
            self.loop.now += timeout
        return events


class VirtualLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock moves only from timer to timer: a scenario of minutes runs in
    milliseconds, and every call's time is exact (no scheduler jitter)."""

    def __init__(self) -> None:
        self.now = 0.0
        super().__init__(_Jump(self))

    def time(self) -> float:
        return self.now


def run_virtual(coro: Any) -> Any:
    loop = VirtualLoop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


class TimedHook(ListHook):
    """Jobs that run until a loop time: the list shows the running ones, a read says RUNNING or DONE
    (the same status a list entry parses to, so both modes' events can be compared whole)."""

    def __init__(self, ends: dict[str, float]) -> None:
        super().__init__({})
        self.ends = ends

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    async def alist_active(self, ref: Any) -> list[Any]:
        self.active = {j: "RUNNING" for j, end in self.ends.items() if self._now() < end}
        return await super().alist_active(ref)

    async def aget_status(self, ref: Any) -> JobStatus:
        if self._now() >= self.ends[ref.job_id]:
            self.final[ref.job_id] = JobStatus(
                "dataproc", ref.job_id, JobState.SUCCEEDED, "DONE", message="m"
            )
        return await super().aget_status(ref)


def _same_as_a_read(entry: dict[str, Any], ref: Any) -> JobStatus:
    return JobStatus("dataproc", ref.job_id, JobState(entry["state"]), entry["state"])


SAME = Coalescing(("project_id", "region"), lambda p, r: None, lambda e: e["id"], _same_as_a_read)


def fleet(
    monkeypatch: pytest.MonkeyPatch, mode: Any, starts: list[float], lengths: list[float], interval: float
) -> tuple[int, list[dict[str, Any]], list[float]]:
    """One scope's waits through ``JobStatusTrigger.run`` as the triggerer drives them: wait i starts
    at ``starts[i]``, its job ends ``lengths[i]`` later. (calls, events, detection delays)."""
    ends = {f"j{i}": s + d for i, (s, d) in enumerate(zip(starts, lengths, strict=True))}
    hook = TimedHook(ends)
    monkeypatch.setattr(JobStatusTrigger, "_hook", lambda self: hook)
    monkeypatch.setattr(coalescing, "coalescing_of", lambda service, ref=None: SAME)
    events: dict[int, dict[str, Any]] = {}
    delays: dict[int, float] = {}

    async def one(i: int) -> None:
        await asyncio.sleep(starts[i])
        job = {"job_id": f"j{i}", "region": "europe-west1", "project_id": "p"}
        agen = JobStatusTrigger("dataproc", job, poll_interval=interval, coalesce=mode).run()
        event = await agen.__anext__()
        await agen.aclose()
        payload = dict(event.payload)  # the history's wall-clock times aside
        payload["progress_history"] = [{**h, "at": None} for h in payload["progress_history"]]
        events[i] = payload
        delays[i] = asyncio.get_running_loop().time() - max(starts[i], ends[f"j{i}"])

    async def scenario() -> None:
        await asyncio.gather(*(one(i) for i in range(len(starts))))
        assert active_pollers() == {}

    run_virtual(scenario())
    order = range(len(starts))
    return len(hook.lists) + len(hook.reads), [events[i] for i in order], [delays[i] for i in order]


def per_job_reads(starts: list[float], lengths: list[float], interval: float) -> int:
    """Reads per-job polling needs: one at each start and every interval until one sees the end."""
    return sum(1 + math.ceil(d / interval - 1e-9) for d in lengths)


T = 5.0
#: (starts, job lengths) in intervals; every wait's job outlives its start.
CASES = {
    **{  # three waits started within one interval, each polled P times by per-job polling
        f"short-{p}-polls": ([0.0, 0.3, 0.6], [p - 1.5] * 3) for p in (2, 3, 4)
    },
    **{  # the same with jobs ending at different points of their last interval
        f"short-{p}-polls-uneven": ([0.0, 0.3, 0.6], [p - 1.9, p - 1.5, p - 1.1]) for p in (2, 3, 4)
    },
    "long-20-polls": ([0.0, 0.3, 0.6], [18.5] * 3),
    "staggered-starts": ([0.0, 0.7, 1.6, 2.2, 3.9], [3.5] * 5),
    "different-ends": ([0.0, 0.2, 0.5, 0.9], [1.5, 4.2, 9.6, 19.5]),
    "all-at-once": ([0.0] * 4, [2.5, 2.5, 6.5, 6.5]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_auto_never_makes_more_calls_than_per_job_polling(monkeypatch: pytest.MonkeyPatch, case: str) -> None:
    """Calls of ``coalesce="auto"`` against ``False`` for the same waits and jobs: never more, the same
    events (verdict, job status, history), detection within the interval (+ 1 s) in both."""
    starts, lengths = ([x * T for x in v] for v in CASES[case])
    auto_calls, auto_events, auto_delays = fleet(monkeypatch, "auto", starts, lengths, T)
    per_job_calls, per_job_events, per_job_delays = fleet(monkeypatch, False, starts, lengths, T)
    assert per_job_calls == per_job_reads(starts, lengths, T)
    assert auto_calls <= per_job_calls, (case, auto_calls, per_job_calls)
    assert auto_events == per_job_events and all(e["status"] == "success" for e in auto_events)
    assert max(auto_delays) <= T + 1 and max(per_job_delays) <= T + 1
    if case == "long-20-polls":  # where it pays: about one call per interval for the three waits
        assert auto_calls <= 0.5 * per_job_calls


def test_auto_costs_one_call_more_at_most_when_its_first_list_finds_no_job(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two jobs ending right after their waits started (per-job polling reads each twice), the third
    over before its wait starts (one read): the first list round, which nothing saved so far pays
    for, finds none of them running, and it is the last round (its credit is spent). Auto costs one
    call more, with the same verdicts and final statuses: the bound of the rule."""
    starts, lengths = [0.0, 0.3 * T, 0.6 * T], [0.1 * T, 0.1 * T, -0.1 * T]
    auto_calls, auto_events, auto_delays = fleet(monkeypatch, "auto", starts, lengths, T)
    per_job_calls, per_job_events, _ = fleet(monkeypatch, False, starts, lengths, T)
    assert [(e["status"], e["job_status"]) for e in auto_events] == [
        (e["status"], e["job_status"]) for e in per_job_events
    ]
    assert auto_calls == per_job_calls + 1 and max(auto_delays) <= T + 1
