"""Row: what the log of every exchange (issue 22) costs.

1. A cell's exchange: `client.chat(...)` against the simulator over loopback (no delay: the fastest a call
   can ever be, about a millisecond; a real model takes hundreds of times longer) followed by the log write
   a cell makes (`_log.record`: one transaction on the kernel's open connection, WAL, no fsync per commit),
   against the same call with the log off (`settings.log = False`). Alternated runs, medians.
   Target: <= 1.5x (the write costs less than half of even that round trip).
2. A batch of 2,000 prompts (1,000 in quick mode) with `log_items=True` (every item written in chunks
   as they finish, on the calling thread while the requests are in flight) against the same batch with
   the log off (5 alternated runs each, medians). Target: <= 1.15x.
3. Search: `%aihubmix log WORD` over 20,000 logged exchanges (FTS5), the median of 20 searches (informative).

The log goes to a temporary directory (AIHUBMIX_DATA_DIR), never the user's.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time

from _common import KEY, Result, alternate

NAME = "log"
TITLE = "9. Log overhead"


def run(quick: bool = False) -> list[Result]:
    from aihubmix_magic import Client, batch, settings
    from aihubmix_magic.session import log as _log
    from aihubmix_magic.simulator import Simulator

    saved_dir = os.environ.get("AIHUBMIX_DATA_DIR")
    saved = (settings.base_url, settings.api_key, settings.log)
    results = []
    with tempfile.TemporaryDirectory() as directory, Simulator() as sim, Client(KEY, sim.base_url) as client:
        os.environ["AIHUBMIX_DATA_DIR"] = os.path.join(directory, "data")
        settings.base_url = sim.base_url
        settings.set_key(KEY)
        try:
            def cell(log: bool) -> None:
                settings.log = log
                response = client.chat("Tell me about logs, words=40", model="gpt-4o-mini")
                _log.record([response], "cell")

            repeats = 20 if quick else 500
            times = alternate({"off": lambda: cell(False), "on": lambda: cell(True)}, repeats)
            off, on = statistics.median(times["off"]), statistics.median(times["on"])
            ratio = on / off
            results.append(Result(TITLE, f"a cell's exchange with the log vs without ({repeats} each, medians)",
                                  f"{on * 1000:.2f} ms vs {off * 1000:.2f} ms", f"{ratio:.2f}x", "<= 1.5x",
                                  ratio <= 1.5))

            items = 1_000 if quick else 2_000
            prompts = [f"item {number}" for number in range(items)]

            def run_batch(log: bool) -> None:
                settings.log = log
                batch(prompts, model="gpt-4o-mini", progress=False, resume=False, log_items=log, concurrency=32)

            batches = 2 if quick else 5
            times = alternate({"off": lambda: run_batch(False), "on": lambda: run_batch(True)}, batches)
            off, on = statistics.median(times["off"]), statistics.median(times["on"])
            ratio = on / off
            results.append(Result(TITLE, f"batch of {items:,} with log_items=True vs the log off ({batches} each, medians)",
                                  f"{on:.2f} s vs {off:.2f} s", f"{ratio:.2f}x", "<= 1.15x", ratio <= 1.15))

            from aihubmix_magic.store.log import log_for

            log = log_for()
            rows = 2_000 if quick else 20_000
            now = time.time()
            log.write([{"time": now - number, "kind": "cell", "model": "m", "prompt": f"question {number} about "
                        f"{'penguins' if number % 100 == 0 else 'tables'}", "answer": "an answer " * 40,
                        "status": "completed"} for number in range(rows)])
            searches = []
            for _ in range(20):
                start = time.perf_counter()
                found = log.search("penguins", n=10, kinds=("cell",))
                searches.append(time.perf_counter() - start)
            assert len(found) == 10
            middle = statistics.median(searches) * 1000
            total = log.info()["entries"]
            results.append(Result(TITLE, f"search one word in {total:,} logged exchanges ({'FTS5' if log.fts else 'LIKE'}"
                                  ", newest 10)", f"{middle:.2f} ms", f"{middle:.2f} ms", "—", None))
        finally:
            settings.base_url, key, settings.log = saved
            settings.set_key(key)
            if saved_dir is None:
                os.environ.pop("AIHUBMIX_DATA_DIR", None)
            else:
                os.environ["AIHUBMIX_DATA_DIR"] = saved_dir
    return results
