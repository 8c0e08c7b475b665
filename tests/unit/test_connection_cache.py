"""The one connection cache both clouds use (``hooks/connection_cache.py``): TTL, per process, one
read shared by the loaders of a loop, forgetting a connection, the read counter; and the one
normalizer of impersonation chains (``services.google.impersonation_chain``)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from airflow_jobstatus.core.exceptions import ConfigurationError
from airflow_jobstatus.hooks import gcp, huawei_config
from airflow_jobstatus.hooks.connection_cache import TTL_SECONDS, ConnectionCache, connection_key
from airflow_jobstatus.services.google import impersonation_chain


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def cache(ttl: float = 60.0) -> tuple[ConnectionCache[tuple[str, ...], str], Clock]:
    clock = Clock()
    return ConnectionCache(ttl, clock=clock), clock


def test_both_clouds_use_it_with_the_documented_ttl() -> None:
    assert isinstance(gcp.CONNECTIONS, ConnectionCache) and isinstance(huawei_config.CONFIGS, ConnectionCache)
    assert gcp.CONNECTIONS.ttl == huawei_config.CONFIGS.ttl == TTL_SECONDS == 60.0


def test_a_read_is_kept_for_the_ttl_then_read_again() -> None:
    connections, clock = cache(ttl=60)
    reads: list[str] = []

    def read() -> str:
        reads.append("c")
        return f"parsed-{len(reads)}"

    assert connections.load(("c", ""), read) == "parsed-1"
    clock.now = 59.9
    assert connections.load(("c", ""), read) == "parsed-1"
    clock.now = 60.0
    assert connections.get(("c", "")) is None  # expired
    assert connections.load(("c", ""), read) == "parsed-2"
    assert connections.reads == len(reads) == 2


def test_shared_by_every_thread_of_the_process() -> None:
    connections, _ = cache()
    connections.load(("c", ""), lambda: "parsed")
    seen: list[str | None] = []
    thread = threading.Thread(target=lambda: seen.append(connections.get(("c", ""))))
    thread.start()
    thread.join()
    assert seen == ["parsed"]
    assert asyncio.run(connections.aload(("c", ""), _never)) == "parsed"  # and every loop
    assert connections.reads == 1


async def _never() -> str:
    raise AssertionError("read although cached")


def test_concurrent_loaders_of_a_loop_share_one_read() -> None:
    connections, _ = cache()
    reads: list[int] = []

    async def read() -> str:
        reads.append(1)
        await asyncio.sleep(0.01)  # a read takes a while: everybody arrives while it runs
        return "parsed"

    async def many() -> list[str]:
        return list(await asyncio.gather(*(connections.aload(("c", ""), read) for _ in range(100))))

    assert asyncio.run(many()) == ["parsed"] * 100
    assert reads == [1] and connections.reads == 1


def test_a_failed_shared_read_fails_each_loader_and_the_next_call_reads_again() -> None:
    connections, _ = cache()
    attempts: list[int] = []

    async def read() -> str:
        attempts.append(1)
        await asyncio.sleep(0.01)
        if len(attempts) == 1:
            raise ConfigurationError("Connection 'c' is not defined")
        return "parsed"

    async def scenario() -> tuple[list[Any], str]:
        failed = await asyncio.gather(
            *(connections.aload(("c", ""), read) for _ in range(5)), return_exceptions=True
        )
        return failed, await connections.aload(("c", ""), read)

    failed, value = asyncio.run(scenario())
    assert all(isinstance(f, ConfigurationError) for f in failed) and len(failed) == 5
    assert value == "parsed" and len(attempts) == 2


def test_one_loaded_value_per_key() -> None:
    connections, _ = cache()
    connections.load(("c", "", "sa@x"), lambda: "impersonating")
    connections.load(("c", ""), lambda: "plain")
    assert connections.get(("c", "", "sa@x")) == "impersonating" and connections.get(("c", "")) == "plain"


def test_drop_forgets_every_key_of_the_connection_only() -> None:
    connections, _ = cache()
    for key in (("c", ""), ("c", "digest"), ("c", "", "sa@x"), ("other", "")):
        connections.put(key, "v")
    connections.drop("c")  # after an authentication error: a rotated key is read at the next call
    assert [connections.get(k) for k in (("c", ""), ("c", "digest"), ("c", "", "sa@x"))] == [None] * 3
    assert connections.get(("other", "")) == "v"
    connections.clear()
    assert connections.get(("other", "")) is None


def test_the_key_follows_the_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_CK_TEST", raising=False)
    assert connection_key("ck_test") == ("ck_test", "")
    monkeypatch.setenv("AIRFLOW_CONN_CK_TEST", '{"conn_type": "huaweicloud", "login": "a"}')
    first = connection_key("ck_test")
    assert first[0] == "ck_test" and first[1] and "login" not in first[1]
    assert connection_key("ck_test") == first
    monkeypatch.setenv("AIRFLOW_CONN_CK_TEST", '{"conn_type": "huaweicloud", "login": "b"}')
    assert connection_key("ck_test") != first


@pytest.mark.parametrize(
    ("value", "chain"),
    [
        (None, ()),
        ("", ()),
        ("target@x.iam", ("target@x.iam",)),
        ("mid@x.iam, target@x.iam", ("mid@x.iam", "target@x.iam")),
        (["mid@x.iam", " target@x.iam "], ("mid@x.iam", "target@x.iam")),
        (("target@x.iam", ""), ("target@x.iam",)),
    ],
)
def test_impersonation_chain_normalized(value: Any, chain: tuple[str, ...]) -> None:
    assert impersonation_chain(value) == chain


def test_impersonation_chain_of_another_type_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="impersonation_chain must be a string or a list"):
        impersonation_chain(42)  # type: ignore[arg-type]


def test_hooks_and_coalescing_key_by_the_normalized_chain() -> None:
    from airflow_jobstatus.hooks.dataproc import DataprocJobHook
    from airflow_jobstatus.services.dataproc import SPEC, DataprocJobRef
    from airflow_jobstatus.triggers.coalescing import poller_key

    spelled = [
        DataprocJobHook("g", impersonation_chain=c) for c in ("a@x, b@x", ["a@x", "b@x"], ("a@x", "b@x"))
    ]
    assert len({hook._conn_key() for hook in spelled}) == 1
    assert spelled[0]._conn_key() != DataprocJobHook("g")._conn_key()
    assert SPEC.coalescing is not None
    ref = DataprocJobRef("j", "r", "p")
    keys = {poller_key(hook, ref, SPEC.coalescing, 5) for hook in spelled}
    assert len(keys) == 1 and next(iter(keys))[2] == ("a@x", "b@x")
