"""Row: batch throughput. With a server latency of L seconds per request and a concurrency of C, `batch()`
must reach at least 90% of C/L requests a second.

The simulator runs in its own process, as a remote server would (so its threads do not compete with
the client for this process's GIL), with `--latency L`: every answer starts L seconds after its request.
`aihubmix_magic.batch(prompts, concurrency=C, progress=False)` and the baseline,
`openai.AsyncOpenAI` with an `asyncio.Semaphore(C)` (one client, `asyncio.gather` of every request), send
the same N non-streamed chat requests; after one untimed warm-up each, runs alternate and the median is
kept. The verdict compares
batch's requests/s with 0.9·C/L; the line after it gives batch against the baseline measured in the
same run (no verdict: the target is the absolute one). Quick mode: fewer, shorter requests.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from contextlib import contextmanager

from _common import KEY, ROOT, Result, alternate, median

NAME = "batch"
TITLE = "Batch throughput"


def _openai_run(base_url: str, model: str, prompts: list[str], concurrency: int) -> None:
    import openai

    async def main() -> None:
        client = openai.AsyncOpenAI(api_key=KEY, base_url=base_url)
        semaphore = asyncio.Semaphore(concurrency)

        async def one(prompt: str) -> None:
            async with semaphore:
                await client.chat.completions.create(model=model, messages=[{"role": "user", "content": prompt}])

        try:
            await asyncio.gather(*(one(prompt) for prompt in prompts))
        finally:
            await client.close()

    asyncio.run(main())


@contextmanager
def _simulator(latency: float):
    """`python -m aihubmix_magic.simulator --latency L` in a subprocess; yields its base URL."""
    process = subprocess.Popen([sys.executable, "-u", "-m", "aihubmix_magic.simulator", "--latency", str(latency)],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
    try:
        match = re.search(r"http://\S+/v1", process.stdout.readline())
        if match is None:
            raise RuntimeError("the simulator did not start")
        yield match.group(0)
    finally:
        process.terminate()
        process.wait(10)
        process.stdout.close()


def _measure(base_url: str, concurrency: int, latency: float, count: int, repeats: int,
             has_openai: bool) -> list[Result]:
    from aihubmix_magic import batch

    model = "gpt-4o-mini"
    prompts = [f"Item {n}: say something short, words=8" for n in range(count)]
    failures: list[str] = []

    def ours() -> None:
        answers = batch(prompts, model=model, concurrency=concurrency, progress=False)
        failures.extend(str(r.error) for r in answers if r.status != "completed")

    candidates = {"batch": ours}
    if has_openai:
        candidates["openai"] = lambda: _openai_run(base_url, model, prompts, concurrency)
    # warm-up, untimed: imports, the first client, the TLS context (both candidates alike)
    batch(prompts[:concurrency], model=model, concurrency=concurrency, progress=False)
    if has_openai:
        _openai_run(base_url, model, prompts[:concurrency], concurrency)
    times = alternate(candidates, repeats)
    if failures:
        raise RuntimeError(f"batch items failed: {failures[:3]}")
    ideal = concurrency / latency
    rate = count / median(times["batch"])
    label = f"C={concurrency}, L={latency * 1000:.0f} ms, {count} requests"
    results = [Result(TITLE, f"batch() requests/s, {label}", f"{rate:,.1f} req/s (ideal C/L = {ideal:,.0f})",
                      f"{rate / ideal:.0%} of C/L", "≥ 90% of C/L", rate >= 0.9 * ideal)]
    if has_openai:
        baseline = count / median(times["openai"])
        results.append(Result(TITLE, f"openai.AsyncOpenAI + Semaphore({concurrency}), {label}",
                              f"{baseline:,.1f} req/s; batch/openai = {rate / baseline:.2f}",
                              f"{baseline / ideal:.0%} of C/L", "baseline", None))
    else:
        results.append(Result(TITLE, "openai.AsyncOpenAI baseline", "openai is not installed", "", "baseline", None))
    return results


def run(quick: bool = False) -> list[Result]:
    from aihubmix_magic import settings

    try:
        import openai  # noqa: F401

        has_openai = True
    except ImportError:
        has_openai = False
    configurations = [(8, 0.1, 64)] if quick else [(8, 0.2, 160), (32, 0.25, 512)]
    repeats = 1 if quick else 3
    results: list[Result] = []
    saved = settings.base_url, settings.api_key
    try:
        for concurrency, latency, count in configurations:
            with _simulator(latency) as base_url:
                settings.base_url = base_url
                settings.set_key(KEY)
                results += _measure(base_url, concurrency, latency, count, repeats, has_openai)
    finally:
        settings.base_url = saved[0]
        settings.set_key(saved[1])
    return results


if __name__ == "__main__":
    from run import table

    print(table(run()))
