"""The benchmarks never rot: `benchmarks/run.py --quick` runs every row and prints it.

Only that they run is checked, not that their targets pass: timings on a shared CI machine say
nothing, and the benchmarks themselves compare against baselines measured in the same run.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def row_titles() -> list[str]:
    """The TITLE of every benchmarks/bench_*.py, read without importing it."""
    titles = []
    for path in sorted(BENCHMARKS.glob("bench_*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "TITLE" for t in node.targets):
                titles.append(ast.literal_eval(node.value))
    return titles


@pytest.mark.kernel
def test_quick_run_runs_and_prints_every_row():
    titles = row_titles()
    assert len(titles) >= 6, titles
    env = {**os.environ, "JUPYTER_PLATFORM_DIRS": "1"}
    done = subprocess.run([sys.executable, str(BENCHMARKS / "run.py"), "--quick"], capture_output=True,
                          text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    table = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    for title in titles:
        rows = [line for line in table if line.startswith(f"| {title} |")]
        assert rows, f"row {title!r} missing from the table:\n{done.stdout}"
        assert all("the row raised" not in line for line in rows), done.stderr[-3000:]
    assert all(line.rstrip().endswith(("PASS |", "FAIL |", "— |")) for line in table[2:]), done.stdout
