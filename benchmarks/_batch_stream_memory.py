"""Run one big `batch()` from a generator into a JSONL file in a fresh process and print what it cost, as
JSON (for bench_jobs.py's memory row).

    python benchmarks/_batch_stream_memory.py BASE_URL COUNT CONCURRENCY MODE

MODE "file": `batch(generator, out=path)`; MODE "list": the same prompts as a list, answers kept in
memory (what a batch was before `out=`: the baseline). Peak memory is the process's peak resident set
(VmHWM, else `ru_maxrss`), the interpreter and every import included; `baseline_mb` the resident set after the
imports. `lines` counts the lines of the file and `positions` the distinct positions in it.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

from _common import peak_rss_mb  # noqa: E402 - benchmarks/ is on the path when run as a script


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    base_url, count, concurrency, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    folder = Path(tempfile.mkdtemp(prefix="aihubmix-bench-"))
    os.environ["AIHUBMIX_CACHE_PATH"] = str(folder / "responses.sqlite")
    import httpx  # noqa: F401 - the imports a batch needs, in the baseline

    from aihubmix_magic import batch, settings  # noqa: F401

    settings.base_url = base_url
    settings.set_key("sk-bench-0123456789abcdefghijklmnop")
    baseline = _rss_mb()
    out = folder / "answers.jsonl"
    started = time.perf_counter()
    if mode == "file":
        prompts = (f"Row {n}: positive or negative? words=5" for n in range(count))
        summary = batch(prompts, model="gpt-4o-mini", concurrency=concurrency, progress=False, out=out)
    else:
        results = batch([f"Row {n}: positive or negative? words=5" for n in range(count)], model="gpt-4o-mini",
                        concurrency=concurrency, progress=False)
        summary = results.summary
    elapsed = time.perf_counter() - started
    peak = peak_rss_mb()
    lines = positions = 0
    if mode == "file":
        seen = set()
        with out.open() as stream:
            for line in stream:
                lines += 1
                seen.add(json.loads(line)["position"])
        positions = len(seen)
    print(json.dumps({"count": count, "ok": summary.ok, "elapsed": elapsed, "peak_mb": peak, "baseline_mb": baseline,
                      "lines": lines, "positions": positions}))


if __name__ == "__main__":
    main()
