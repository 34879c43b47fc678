"""The benchmarks of aihubmix-magic: one table of ratios against baselines measured in the same run.

    python benchmarks/run.py            # every row at full size (a few minutes)
    python benchmarks/run.py --quick    # every row with tiny sizes (seconds): the CI smoke test
    python benchmarks/run.py --only stream,memory

Each row is a module `benchmarks/bench_<name>.py` with `NAME` (a short id for --only), `TITLE` (the
row's heading) and `run(quick: bool) -> list[Result]` (`Result` is in `_common.py`: what was measured,
the ratio or figure compared with the target, the target, and PASS/FAIL, or no verdict for a baseline).
Rows run in the order of `ROWS` below; a `bench_*.py` module that is not listed there (e.g. a later
`bench_batch.py` for batch throughput) is found on its own and runs after them, so adding a row is
adding one file. `--quick` must keep every row to a few seconds: tests/test_benchmarks.py runs it to
check that no row rots (it checks that every row runs and is printed, not that targets pass).

The machines are shared and noisy: rows alternate baseline and candidate runs and take medians, and
never assert an absolute time alone. The exit status is 0 when every row ran, whatever the verdicts
(`--strict`: 1 if a target failed); 2 if a row raised.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import Result, machine  # noqa: E402

# Every row talks to a server of its own on loopback. A row that leaves `settings.base_url` alone (a view
# painted from a replayed stream, say) would still start fetching the default base URL's model catalog
# for an answer's cost: point the default at a closed loopback port, so nothing leaves the machine.
os.environ["AIHUBMIX_BASE_URL"] = "http://127.0.0.1:9/v1"

# the rows, in table order; bench_*.py modules not listed here run after these
ROWS = ["bench_stream", "bench_display", "bench_latency", "bench_load", "bench_connections", "bench_memory"]


def discover() -> list[str]:
    found = sorted(path.stem for path in HERE.glob("bench_*.py"))
    return [name for name in ROWS if name in found] + [name for name in found if name not in ROWS]


def table(results: list[Result]) -> str:
    headers = ("row", "measurement", "measured", "value", "target", "result")
    rows = [(r.row, r.name + (f" ({r.note})" if r.note else ""), r.measured, r.value, r.target, r.verdict)
            for r in results]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmarks of aihubmix-magic (ratios against baselines).")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test in seconds")
    parser.add_argument("--only", help="comma-separated row names (e.g. stream,memory)")
    parser.add_argument("--strict", action="store_true", help="exit 1 if a target fails")
    args = parser.parse_args(argv)
    wanted = set(args.only.split(",")) if args.only else None
    results: list[Result] = []
    crashed = []
    started = time.perf_counter()
    print(f"aihubmix-magic benchmarks{' (quick)' if args.quick else ''} on {machine()}", flush=True)
    for module_name in discover():
        module = importlib.import_module(module_name)
        if wanted is not None and module.NAME not in wanted:
            continue
        print(f"running {module.TITLE} …", file=sys.stderr, flush=True)
        row_started = time.perf_counter()
        try:
            row = module.run(quick=args.quick)
        except Exception:
            traceback.print_exc()
            crashed.append(module.NAME)
            row = [Result(module.TITLE, "the row raised", "see the traceback above", "", "", False)]
        print(f"  {module.TITLE}: {time.perf_counter() - row_started:.1f} s", file=sys.stderr, flush=True)
        results += row
    print()
    print(table(results))
    print()
    failed = [r for r in results if r.passed is False]
    print(f"{len(results) - len(failed)} of {len(results)} lines without a failed target; "
          f"{time.perf_counter() - started:.0f} s in all; Python {platform.python_version()}.")
    if crashed:
        print(f"rows that raised: {', '.join(crashed)}")
        return 2
    return 1 if args.strict and failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
