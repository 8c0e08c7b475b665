"""Smoke run of the benchmark harness (benchmarks/run.py): small fleet, short jobs, no timing asserts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_harness_produces_the_result_fields(tmp_path: Path) -> None:
    cmd = [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--n", "20", "--poll", "1"]
    cmd += ["--end", "7,9", "--no-anchor", "--no-imports", "--poke-count", "5", "--out-dir", str(tmp_path)]
    cmd += ["--floor-n", "10", "--pollcost-n", "20", "--pollcost-rounds", "1", "--pollcost-warm", "1.5"]
    cmd += ["--coalesce-n", "20", "--coalesce-poll", "1", "--coalesce-end", "6,8", "--gc-setting-n", "20"]
    cmd += ["--watchers-n", "20", "--watchers-poll", "1", "--watchers-end", "2,4"]
    cmd += [
        "--pollcost-seconds",
        "2",
        "--pollcost-modes",
        "cdm-ours,cdm-aiohttp-floor,cdm-streams-floor,dataproc-ours",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=360)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]

    results = json.loads((tmp_path / "latest.json").read_text())
    assert {"date", "cpu_count", "python", "ours"} <= set(results["environment"])
    run, with_setting = results["fleet"]["ours"]
    assert "failed" not in run, run
    # The provider applied [jobstatus] triggerer_gc_threshold in the runner, as in a triggerer.
    assert with_setting["gc_setting"] == "700,10,1000" and with_setting["gc_threshold"] == [700, 10, 1000]
    assert run["gc_threshold"] != [700, 10, 1000] and with_setting["outcomes"] == {"success": 20}
    assert run["n"] == 20 and run["outcomes"] == {"success": 20}
    for field in ("polls", "cpu_per_1000_polls", "cpu_per_1000_polls_steady", "rss_per_trigger_kib"):
        assert run[field] is not None, field
    assert {"p99", "max"} <= set(run["loop_lag_ms"]) and run["detection_s"]["count"] == 20
    assert run["calls_per_service"]["dli"]["ratio_to_min"] is not None
    assert "dataproc (get_status)" in results["poke"]
    assert set(run["counters"]) == {"google_connection_reads", "huawei_connection_reads"}

    (pair,) = results["fleet"]["floor"]
    assert pair["floor"]["outcomes"] == {"success": 10} and pair["ours"]["outcomes"] == {"success": 10}
    assert pair["floor"]["rss_per_trigger_kib"] is not None

    modes = results["pollcost"]["modes"]
    assert set(modes) == {"cdm-ours", "cdm-aiohttp-floor", "cdm-streams-floor", "dataproc-ours"}
    for mode, row in modes.items():
        assert row["errors"] == [0] and row["ms_per_poll"]["median"] is not None, (mode, row)
    assert "cdm ours / streams floor" in results["pollcost"]["ratios"]

    (coalesced,) = results["coalesce"]["rows"]
    assert coalesced["outcomes"] == {"success": 20} and coalesced["list_calls"] > 0
    assert coalesced["calls_per_wait_per_poll"] is not None

    (watched,) = results["watchers"]["rows"]
    assert "failed" not in watched, watched
    assert watched["groups"] == 10 and watched["list_calls_per_scope_per_interval"] is not None
    assert watched["cpu_per_interval_s"] is not None and watched["detection_s"]["count"] is not None

    report = (tmp_path / "latest.md").read_text()
    assert "| N |" in report
    for target in (
        "Huawei poll CPU",
        "mixed waits",
        "RSS per waiting trigger",
        "Connection reads",
        "coalesced polling",
    ):
        assert target in report, target
    assert "Targets:" in done.stdout and ("→ met" in done.stdout or "NOT met" in done.stdout)
