"""Rows: batch at scale (issue 11). Each against a baseline measured in the same run.

1. Throughput at concurrency C = 8, 32, 64, 128: 3,000 prompts, a server latency L of 50 ms. The simulator
   runs in its own process, as a remote server would (`python -m aihubmix_magic.simulator --latency L`).
   `batch(prompts, concurrency=C, progress=False)` and the baseline, `openai.AsyncOpenAI` with an
   `asyncio.Semaphore(C)` (one client, `asyncio.gather` of every request), send the same non-streamed chat
   requests; after one untimed warm-up each, runs alternate (3 times at C=8, 5 times above) and the
   median is kept; the CPU time of the process during each run is reported too. Targets: batch >= the SDK's requests/s, and >= 90% of
   min(C/L, what the server can serve), where "what the server can serve" at concurrency C is the rate of
   the leanest possible client, run alternately with the two others (`_raw_run`: C raw asyncio
   connections, pre-built requests, nothing parsed): it includes the simulator's own time per request
   (a few ms over L on top of its sleep), and above C=32 on 2 cores the simulator's CPU is the ceiling.
2. Memory: 100,000 short prompts in a fresh process (`_batch_memory.py`, latency 0, C=64): its peak
   resident set (the interpreter and the imports included) must stay below 300 MB, and the progress line
   must be repainted at most ~10 times in any second (<= 11).
3. Rate limits: the simulator with a token bucket (`--rate-limit 10`: 10 requests a second, a burst of
   10; over it 429 with retry-after). 200 prompts at C=16: every item answered, at >= 85% of the limit;
   1 request a second, 12 prompts: 12 answers. Baseline: the SDK with a semaphore on the same server
   (it retries each 429 on its own, twice, then raises: the items it loses are counted).

Quick mode: 240 prompts at C=8 and 64 only, 2,000 prompts for the memory row, 30 prompts at 10/s and
3 at 1/s.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from contextlib import contextmanager

from _common import HERE, KEY, ROOT, Result, median

NAME = "batch"
TITLE = "Batch throughput"
MEMORY = "Batch memory"
LIMITS = "Batch rate limits"
MODEL = "gpt-4o-mini"


def _openai_run(base_url: str, prompts: list[str], concurrency: int) -> int:
    """The baseline: AsyncOpenAI with a semaphore; returns how many items failed."""
    import openai

    async def main() -> int:
        client = openai.AsyncOpenAI(api_key=KEY, base_url=base_url)
        semaphore = asyncio.Semaphore(concurrency)

        async def one(prompt: str) -> bool:
            async with semaphore:
                try:
                    await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": prompt}])
                except openai.APIError:
                    return False
                return True

        try:
            done = await asyncio.gather(*(one(prompt) for prompt in prompts))
        finally:
            await client.close()
        return done.count(False)

    return asyncio.run(main())


def _raw_run(base_url: str, prompts: list[str], concurrency: int) -> None:
    """What the server can serve at this concurrency: the leanest client there is (asyncio streams, C
    keep-alive connections, pre-built HTTP/1.1 requests, the body read by Content-Length, nothing parsed)."""
    from urllib.parse import urlsplit

    url = urlsplit(base_url)
    requests = []
    for prompt in prompts:
        body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": prompt}]}).encode()
        head = (f"POST {url.path}/chat/completions HTTP/1.1\r\nHost: {url.netloc}\r\n"
                f"Authorization: Bearer {KEY}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        requests.append(head + body)

    async def main() -> None:
        queue = iter(requests)

        async def worker() -> None:
            reader, writer = await asyncio.open_connection(url.hostname, url.port)
            try:
                for request in queue:
                    writer.write(request)
                    head = await reader.readuntil(b"\r\n\r\n")
                    if not head.startswith(b"HTTP/1.1 200"):
                        raise RuntimeError(head[:80])
                    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
                    await reader.readexactly(length)
            finally:
                writer.close()

        await asyncio.gather(*(worker() for _ in range(concurrency)))

    asyncio.run(main())


@contextmanager
def _simulator(*options: str):
    """`python -m aihubmix_magic.simulator OPTIONS` in a subprocess; yields its base URL."""
    process = subprocess.Popen([sys.executable, "-u", "-m", "aihubmix_magic.simulator", *options],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
    try:
        assert process.stdout is not None
        match = re.search(r"http://\S+/v1", process.stdout.readline())
        if match is None:
            raise RuntimeError("the simulator did not start")
        yield match.group(0)
    finally:
        process.terminate()
        process.wait(10)
        if process.stdout is not None:
            process.stdout.close()


def _timed(function) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one call."""
    cpu, wall = time.process_time(), time.perf_counter()
    function()
    return time.perf_counter() - wall, time.process_time() - cpu


# -- 1. throughput -------------------------------------------------------------------------------------------
def _throughput(quick: bool, has_openai: bool) -> list[Result]:
    from aihubmix_magic import batch, settings

    latency = 0.05
    count = 240 if quick else 3000
    levels = (8, 64) if quick else (8, 32, 64, 128)
    repeats = 1 if quick else 3  # and 5 above C=8, where a run takes a few seconds: a steadier median
    prompts = [f"Item {n}: say something short, words=8" for n in range(count)]
    measured: dict[int, dict[str, list[tuple[float, float]]]] = {}
    failures: list[str] = []
    with _simulator("--latency", str(latency)) as base_url:
        settings.base_url = base_url
        for concurrency in levels:
            def ours(c: int = concurrency) -> None:
                answers = batch(prompts, model=MODEL, concurrency=c, progress=False, resume=False)
                failures.extend(str(r.error) for r in answers if r.status != "completed")

            candidates = {"batch": ours, "raw": lambda c=concurrency: _raw_run(base_url, prompts, c)}
            if has_openai:
                candidates["openai"] = lambda c=concurrency: _openai_run(base_url, prompts, c)
            batch(prompts[:concurrency], model=MODEL, concurrency=concurrency, progress=False, resume=False)  # warm-up
            if has_openai:
                _openai_run(base_url, prompts[:concurrency], concurrency)
            runs: dict[str, list[tuple[float, float]]] = {name: [] for name in candidates}
            for _ in range(repeats if quick or concurrency <= 8 else 5):  # alternated: passing load hits all alike
                for name, function in candidates.items():
                    runs[name].append(_timed(function))
            measured[concurrency] = runs
    if failures:
        raise RuntimeError(f"batch items failed: {failures[:3]}")

    def rate(runs: list[tuple[float, float]]) -> float:
        return count / median([wall for wall, _ in runs])

    def cpu_ms(runs: list[tuple[float, float]]) -> float:
        return 1000 * median([cpu for _, cpu in runs]) / count

    results = []
    for concurrency, runs in measured.items():
        ours = rate(runs["batch"])
        server = rate(runs["raw"])
        ceiling = min(concurrency / latency, server)
        label = f"C={concurrency}, L=50 ms, {count:,} prompts"
        if has_openai:
            sdk = rate(runs["openai"])
            results.append(Result(
                TITLE, f"batch() vs openai.AsyncOpenAI + Semaphore({concurrency}), {label}",
                f"{ours:,.0f} vs {sdk:,.0f} req/s; CPU {cpu_ms(runs['batch']):.2f} vs {cpu_ms(runs['openai']):.2f} "
                f"ms/request; {ours / ceiling:.0%} of min(C/L = {concurrency / latency:,.0f}, server {server:,.0f})",
                f"{ours / sdk:.2f}x", ">= 1.00x SDK and >= 90% of min(C/L, server)",
                ours >= sdk and ours >= 0.9 * ceiling))
        else:
            results.append(Result(TITLE, f"batch(), {label}", f"{ours:,.0f} req/s", f"{ours / ceiling:.0%}",
                                  ">= 90% of min(C/L, server)", ours >= 0.9 * ceiling, "openai not installed"))
    return results


# -- 2. memory -----------------------------------------------------------------------------------------------
def _memory(quick: bool) -> list[Result]:
    count = 2000 if quick else 100_000
    with _simulator() as base_url:
        done = subprocess.run([sys.executable, str(HERE / "_batch_memory.py"), base_url, str(count), "64"],
                              capture_output=True, text=True, timeout=3600, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    if figures["ok"] != count:
        raise RuntimeError(f"only {figures['ok']} of {count} answered")
    per_item = (figures["peak_mb"] - figures["baseline_mb"]) * 1024 * 1024 / count
    return [
        Result(MEMORY, f"{count:,} short prompts, C=64: peak resident set of the process",
               f"{figures['peak_mb']:,.0f} MB (after imports {figures['baseline_mb']:,.0f} MB; about "
               f"{per_item / 1024:.1f} KB an item); {figures['elapsed']:.0f} s, {count / figures['elapsed']:,.0f} req/s",
               f"{figures['peak_mb']:,.0f} MB", "< 300 MB", figures["peak_mb"] < 300),
        Result(MEMORY, f"{count:,} short prompts: progress repaints",
               f"{figures['repaints']:,} in {figures['elapsed']:.0f} s", f"{figures['most_in_one_second']} in 1 s",
               "<= 11 in any 1 s", figures["most_in_one_second"] <= 11),
    ]


# -- 3. rate limits ------------------------------------------------------------------------------------------
def _rate_limits(quick: bool, has_openai: bool) -> list[Result]:
    from aihubmix_magic import batch, settings

    results = []
    for limit, count, concurrency in ((10.0, 30 if quick else 200, 16), (1.0, 3 if quick else 12, 8)):
        prompts = [f"Row {n}: label it" for n in range(count)]
        with _simulator("--rate-limit", f"{limit:g}") as base_url:
            settings.base_url = base_url
            started = time.perf_counter()
            answers = batch(prompts, model=MODEL, concurrency=concurrency, progress=False, resume=False)
            elapsed = time.perf_counter() - started
        summary = answers.summary
        # a burst of one second's worth is served at once; the rest at the limit
        best = count / max((count - limit) / limit, 1e-9)
        rate = count / elapsed
        measured = (f"{summary.ok} of {count} answered, {summary.rate_limited} rate-limited (429) on the way; "
                    f"{rate:.2f} req/s in {elapsed:.1f} s (the bucket allows {best:.2f}/s with its burst)")
        if limit == 10.0:
            results.append(Result(LIMITS, f"{limit:g} requests/s limit, {count} prompts, C={concurrency}", measured,
                                  f"{rate / limit:.0%} of the limit", "all answered, >= 85% of the limit",
                                  summary.ok == count and rate >= 0.85 * limit))
        else:
            results.append(Result(LIMITS, f"{limit:g} request/s limit, {count} prompts, C={concurrency}", measured,
                                  f"{summary.ok}/{count}", f"{count}/{count} answered", summary.ok == count))
        if has_openai:
            with _simulator("--rate-limit", f"{limit:g}") as base_url:
                lost = _openai_run(base_url, prompts, concurrency)
            results.append(Result(LIMITS, f"baseline: openai.AsyncOpenAI + Semaphore({concurrency}) on the same "
                                  f"{limit:g}/s server", f"{lost} of {count} items failed (RateLimitError after "
                                  "its 2 retries)", f"{count - lost}/{count}", "baseline", None))
    return results


def run(quick: bool = False) -> list[Result]:
    from aihubmix_magic import settings

    try:
        import openai  # noqa: F401

        has_openai = True
    except ImportError:
        has_openai = False
    saved = settings.base_url, settings.api_key
    settings.set_key(KEY)
    try:
        return _throughput(quick, has_openai) + _memory(quick) + _rate_limits(quick, has_openai)
    finally:
        settings.base_url = saved[0]
        settings.set_key(saved[1])


if __name__ == "__main__":
    from run import table

    print(table(run("--quick" in sys.argv)))
