"""Rows: a long batch does not hold the notebook (issue 23). Each against a baseline measured in the same run.

1. Memory: 300,000 prompts from a generator to a JSONL file (`batch(gen, out=path)`, C=64, the simulator
   in its own process, latency 0) in a fresh process (`_batch_stream_memory.py`): its peak resident set,
   the interpreter and the imports included, must stay below 250 MB, and the file must have one line for
   every prompt. The baseline is the resident set after the imports.
2. Throughput: the same prompts to a file against a list whose answers are kept in memory (what a batch
   did before), 20,000 prompts at C=64, alternated (2 runs each, the median): >= 0.9x.
3. `batch(prompts, wait=False)` for 100,000 prompts (a list, and a generator): the time to return (the
   median of 3), against the time to build the list of prompts itself: < 1 s.
4. A cell while a job runs: the latency of a `Client.chat` call (median of 20) while a job of 100,000
   prompts runs in the background, against the same calls with no job, alternated: a job paced to 10
   requests a second (the issue's case) on a server answering in 50 ms <= 1.1x, and a job at full speed (informative: on 2 cores the job
   and the server it keeps busy take CPU from the cell).

Quick mode: 3,000 prompts to the file, 1,000 for the throughput, 10,000 for wait=False, 5 calls.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time

from _common import HERE, KEY, ROOT, Result
from bench_batch import _simulator

NAME = "jobs"
TITLE = "Batch to disk"
RETURN = "Batch in the background"
MODEL = "gpt-4o-mini"


def _stream_run(base_url: str, count: int, mode: str) -> dict:
    done = subprocess.run([sys.executable, str(HERE / "_batch_stream_memory.py"), base_url, str(count), "64", mode],
                          capture_output=True, text=True, timeout=7200, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def _memory(quick: bool) -> list[Result]:
    count = 3000 if quick else 300_000
    with _simulator() as base_url:
        figures = _stream_run(base_url, count, "file")
    complete = figures["ok"] == figures["lines"] == figures["positions"] == count
    return [Result(TITLE, f"{count:,} prompts from a generator to a JSONL file, C=64: peak resident set",
                   f"{figures['peak_mb']:,.0f} MB (after imports {figures['baseline_mb']:,.0f} MB); "
                   f"{figures['lines']:,} lines, {figures['positions']:,} positions; {figures['elapsed']:.0f} s, "
                   f"{count / figures['elapsed']:,.0f} req/s", f"{figures['peak_mb']:,.0f} MB",
                   "< 250 MB, every line written", figures["peak_mb"] < 250 and complete)]


def _throughput(quick: bool) -> list[Result]:
    count = 1000 if quick else 20_000
    rates: dict[str, list[float]] = {"file": [], "list": []}
    with _simulator() as base_url:
        for _ in range(1 if quick else 2):
            for mode in ("file", "list"):
                figures = _stream_run(base_url, count, mode)
                rates[mode].append(count / figures["elapsed"])
    file_rate, list_rate = statistics.median(rates["file"]), statistics.median(rates["list"])
    ratio = file_rate / list_rate
    return [Result(TITLE, f"{count:,} prompts, C=64: a generator to a file vs a list kept in memory",
                   f"{file_rate:,.0f} vs {list_rate:,.0f} req/s", f"{ratio:.2f}x", ">= 0.9x", ratio >= 0.9)]


def _wait(job) -> None:
    """Wait for a cancelled job; if it takes minutes, say where every thread is (then wait on)."""
    try:
        job.wait(timeout=300)
    except TimeoutError:
        import faulthandler

        faulthandler.dump_traceback(all_threads=True)
        job.wait(timeout=600)


def _returns(quick: bool) -> list[Result]:
    from aihubmix_magic import batch, settings

    count = 10_000 if quick else 100_000
    results = []
    with _simulator("--latency", "1") as base_url:  # seconds: no answer comes before the cancel
        settings.base_url = base_url
        for kind in ("list", "generator"):
            returns, builds = [], []
            for _ in range(3):
                started = time.perf_counter()
                prompts = [f"Row {n}: positive or negative?" for n in range(count)]
                builds.append(time.perf_counter() - started)
                source = prompts if kind == "list" else (prompt for prompt in prompts)
                started = time.perf_counter()
                job = batch(source, model=MODEL, concurrency=8, progress=False, resume=False, wait=False)
                returns.append(time.perf_counter() - started)
                job.cancel()
                _wait(job)
            took, build = statistics.median(returns), statistics.median(builds)
            results.append(Result(RETURN, f"batch(wait=False) of {count:,} prompts ({kind}): time to return",
                                  f"{took * 1000:,.0f} ms (building the list of prompts: {build * 1000:,.0f} ms)",
                                  f"{took:.2f} s", "< 1 s", took < 1.0))
    return results


def _cell_while_a_job_runs(quick: bool) -> list[Result]:
    from aihubmix_magic import Client, batch, settings

    calls = 5 if quick else 20
    count = 10_000 if quick else 100_000
    rows = []
    # the case: a job paced to 10 requests a second, on a server that answers in 50 ms (a real one
    # takes longer); and a job at full speed on a server with no latency (C=64: about 1,500 answers a second)
    for rpm, latency, what in ((600, "0.05", "paced to 10 requests/s, server latency 50 ms"),
                               (None, "0", "at full speed, C=64, server latency 0")):
        with _simulator("--latency", latency) as base_url:
            settings.base_url = base_url
            with Client(KEY, base_url) as client:
                client.chat("warm up", model=MODEL)

                def latencies() -> list[float]:
                    times = []
                    for n in range(calls):
                        started = time.perf_counter()
                        client.chat(f"question {n}", model=MODEL)
                        times.append(time.perf_counter() - started)
                    return times

                alone, beside = [], []
                for _ in range(2):
                    alone += latencies()
                    job = batch((f"Row {n}: label it" for n in range(count)), model=MODEL, concurrency=64,
                                progress=False, resume=False, wait=False, rpm=rpm)
                    time.sleep(0.5)  # the job under way
                    beside += latencies()
                    job.cancel()
                    _wait(job)
        a, b = statistics.median(alone), statistics.median(beside)
        measured = f"median {b * 1000:.1f} ms vs {a * 1000:.1f} ms with no job"
        if rpm:
            rows.append(Result(RETURN, f"a cell (Client.chat) while a job {what} runs", measured, f"{b / a:.2f}x",
                               "<= 1.1x", b / a <= 1.1))
        else:
            rows.append(Result(RETURN, f"a cell (Client.chat) while a job {what} runs", measured, f"{b / a:.2f}x",
                               "informative: the job takes its share of the 2 cores, and so does the server it "
                               "keeps busy", None))
    return rows


def run(quick: bool = False) -> list[Result]:
    from aihubmix_magic import settings

    saved = settings.base_url, settings.api_key
    settings.set_key(KEY)
    try:
        rows = []
        for part in (_memory, _throughput, _returns, _cell_while_a_job_runs):
            try:
                rows += part(quick)
            except Exception as exc:  # noqa: BLE001  one part failing does not lose the others' figures
                import traceback

                traceback.print_exc()
                rows.append(Result(TITLE if part in (_memory, _throughput) else RETURN, f"{part.__name__} raised",
                                   f"{type(exc).__name__}: {exc}"[:200], "", "", False))
        return rows
    finally:
        settings.base_url = saved[0]
        settings.set_key(saved[1])
