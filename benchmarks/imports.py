"""Import cost: what a DAG file pays at parse time, measured in fresh interpreters."""

from __future__ import annotations

import re
import statistics
import subprocess
from typing import Any

BASELINE = "airflow.sdk"
_TIMED = (
    "import time, sys\n"
    "t0 = time.perf_counter(); import {base}; t1 = time.perf_counter()\n"
    "import {module}; t2 = time.perf_counter()\n"
    "print(t1 - t0, t2 - t1)\n"
)
_ALONE = "import time\nt0 = time.perf_counter(); import {module}; print(time.perf_counter() - t0)\n"
_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def _python(python: str, code: str, env: dict[str, str], *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [python, *flags, "-c", code], capture_output=True, text=True, env=env, timeout=300, check=True
    )


def measure(python: str, module: str, runs: int, env: dict[str, str]) -> dict[str, Any]:
    """Median seconds over ``runs`` fresh interpreters: the module alone, the baseline, the module's share."""
    alone, base, share = [], [], []
    for _ in range(runs):
        alone.append(float(_python(python, _ALONE.format(module=module), env).stdout.split()[-1]))
        b, s = _python(python, _TIMED.format(base=BASELINE, module=module), env).stdout.split()[-2:]
        base.append(float(b))
        share.append(float(s))
    return {
        "module": module,
        "runs": runs,
        "total_median": statistics.median(alone),
        "baseline_median": statistics.median(base),
        "own_share_median": statistics.median(share),
        "total_all": alone,
        "own_share_all": share,
    }


def offenders(python: str, module: str, env: dict[str, str], top: int = 12) -> list[dict[str, Any]]:
    """The module's own imports (after airflow.sdk is loaded) with the largest cumulative time."""
    code = f"import sys, {BASELINE}\nsys.stderr.write('--MARK--\\n')\nimport {module}\n"
    err = _python(python, code, env, "-X", "importtime").stderr
    rows = []
    for line in err.split("--MARK--", 1)[-1].splitlines():
        match = _LINE.match(line)
        if match:
            own, cumulative, indent, name = match.groups()
            depth = len(indent) // 2
            rows.append(
                {
                    "module": name,
                    "self_ms": int(own) / 1000,
                    "cumulative_ms": int(cumulative) / 1000,
                    "depth": depth,
                }
            )
    # Top-level entries (depth 0) are what the module import triggers directly or transitively first.
    rows.sort(key=lambda r: r["cumulative_ms"], reverse=True)
    return rows[:top]
