"""Run one big `batch()` in a fresh process and print what it cost, as JSON (for bench_batch.py's memory row).

    python benchmarks/_batch_memory.py BASE_URL COUNT CONCURRENCY

Peak memory is the process's peak resident set (VmHWM, else `ru_maxrss`), the interpreter and every import included;
`baseline` is the resident set after the imports, before the batch. The progress goes to a text stream
that records when each repaint was written, to count repaints in any one second.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from _common import peak_rss_mb  # noqa: E402 - benchmarks/ is on the path when run as a script


class Repaints:
    """A text stream for the progress line that keeps the time of each repaint (a write starting with \\r)."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def write(self, text: str) -> int:
        if text.startswith("\r"):
            self.times.append(time.monotonic())
        return len(text)

    def flush(self) -> None:
        pass

    def most_in_one_second(self) -> int:
        most, start = 0, 0
        for end, when in enumerate(self.times):
            while when - self.times[start] >= 1.0:
                start += 1
            most = max(most, end - start + 1)
        return most



def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    base_url, count, concurrency = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    import os

    os.environ["AIHUBMIX_CACHE_PATH"] = str(Path(tempfile.mkdtemp(prefix="aihubmix-bench-")) / "responses.sqlite")
    import httpx  # noqa: F401 - the imports a batch needs, in the baseline

    from aihubmix_magic import batch, settings  # noqa: F401
    from aihubmix_magic.notebook.progress import TextProgress

    settings.base_url = base_url
    settings.set_key("sk-bench-0123456789abcdefghijklmnop")
    prompts = [f"Row {n}: positive or negative? words=5" for n in range(count)]
    baseline = _rss_mb()
    stream = Repaints()
    view = TextProgress(count, stream=stream)
    import aihubmix_magic.notebook.batch as batch_module

    batch_module.progress_view = lambda progress, total: view  # the terminal view, on the recording stream
    started = time.perf_counter()
    results = batch(prompts, model="gpt-4o-mini", concurrency=concurrency)
    elapsed = time.perf_counter() - started
    peak = peak_rss_mb()
    print(json.dumps({
        "count": count, "ok": results.summary.ok, "elapsed": elapsed, "peak_mb": peak, "baseline_mb": baseline,
        "repaints": len(stream.times), "most_in_one_second": stream.most_in_one_second(),
    }))


if __name__ == "__main__":
    main()
