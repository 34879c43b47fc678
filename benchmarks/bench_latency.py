"""Row 3, latency added: from the server writing a delta to the display publishing it.

The replay server (its own process) writes one text event every 50 ms (20 tokens/s) and records the
`time.monotonic()` of each write; this process streams it with our Client through `consume()` (the
helper thread that reads the socket, and the painting thread, as in the magic) into a `NotebookView`
whose publisher records the `time.monotonic()` of each show/update. A delta's latency is the time of the
first publish that contains it minus the time the server wrote it. On Linux `time.monotonic()` is
CLOCK_MONOTONIC, one clock for every process.

Target: median and p99 <= 5 ms over 1,000 deltas (the first token after a quiet moment is painted at
once; 50 ms between tokens is longer than the view's 40 ms `quiet`). Quick mode: 20 deltas.
"""

from __future__ import annotations

import json
import statistics
import time

from _common import KEY, ReplayServer, Result

NAME = "latency"
TITLE = "3. Latency added"
TPS = 20.0


def answer_deltas(body: bytes) -> list[str]:
    deltas = []
    for event in body.split(b"\n\n"):
        if event.startswith(b"data: {"):
            for choice in json.loads(event[6:]).get("choices") or ():
                if choice["delta"].get("content"):
                    deltas.append(choice["delta"]["content"])
    return deltas


def measure(deltas_wanted: int) -> tuple[list[float], int]:
    from aihubmix_magic import Client
    from aihubmix_magic.notebook.display import NotebookView, consume

    published: list[tuple[float, int]] = []  # (time, characters fed when it was published)

    class View(NotebookView):
        fed = 0

        def feed(self, kind: str, text: str, arrived: float | None = None) -> None:
            self.fed += len(text)
            super().feed(kind, text, arrived)

    class Publisher:
        def show(self, data: dict, display_id: str | None = None) -> None:
            published.append((time.monotonic(), view.fed))

        def update(self, data: dict, display_id: str) -> None:
            published.append((time.monotonic(), view.fed))

        def clear(self) -> None:
            pass

    # the simulator's answer has a one-line lead before the words: ask for a few words less
    with ReplayServer(f"words={deltas_wanted - 4}", tps=TPS) as server, Client(KEY, server.base_url) as client:
        view = View(Publisher())
        response = client.chat("bench", model="gpt-4o-mini", stream=True)
        consume(response, view)
        written = server.timestamps()
        deltas = answer_deltas(server.bodies["chat"])
    assert len(written) == len(deltas), (len(written), len(deltas))
    latencies = []
    cursor = 0
    total = 0
    for delta, sent in zip(deltas, written, strict=True):
        total += len(delta)
        while published[cursor][1] < total:
            cursor += 1
        latencies.append(published[cursor][0] - sent)
    return latencies, len(deltas)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def run(quick: bool = False) -> list[Result]:
    latencies, count = measure(20 if quick else 1_000)
    middle = statistics.median(latencies) * 1000
    p99 = percentile(latencies, 0.99) * 1000
    worst = max(latencies) * 1000
    return [
        Result(TITLE, f"server write -> display publish, median ({count:,} deltas at 20 tok/s)",
               f"{middle:.2f} ms", f"{middle:.2f} ms", "<= 5 ms", middle <= 5.0),
        Result(TITLE, f"server write -> display publish, p99 ({count:,} deltas)",
               f"{p99:.2f} ms (max {worst:.2f} ms)", f"{p99:.2f} ms", "<= 5 ms", p99 <= 5.0),
    ]
