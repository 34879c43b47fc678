"""Row 6, memory: the peak memory of receiving a 2 MB answer, above the baseline before the call.

Measured with `tracemalloc` (Python allocations of every thread in this process; the server is the
replay server in its own process, so its buffers are not counted). The baseline is the traced memory
just before the request, with the Client already connected. Two paths:

- our Client alone: `for delta in client.chat(..., stream=True)`;
- the magic's path: the Client through `consume()` into a `NotebookView` (a publisher that drops the
  messages), then `finish()`, which displays the whole answer once.

Target: peak - baseline < 5x the answer's size (UTF-8 bytes). Also shown: what stays allocated
after the call (the Response keeps the text, and `raw`, whose content is the same string).
Quick mode: a 20 kB answer.
"""

from __future__ import annotations

import gc
import tracemalloc

from _common import KEY, ReplayServer, Result

NAME = "memory"
TITLE = "6. Memory"


class NullPublisher:
    def show(self, data: dict, display_id: str | None = None, metadata: dict | None = None) -> None:
        pass

    def update(self, data: dict, display_id: str, metadata: dict | None = None) -> None:
        pass

    def clear(self) -> None:
        pass


def client_only(client) -> object:
    response = client.chat("bench", model="gpt-4o-mini", stream=True)
    for _ in response:
        pass
    return response


def magic_path(client) -> object:
    from aihubmix_magic.notebook.display import NotebookView, consume

    response = client.chat("bench", model="gpt-4o-mini", stream=True)
    view = NotebookView(NullPublisher())
    consume(response, view)
    view.finish(response)
    return response


def traced(function, client) -> tuple[int, int, str]:
    """(peak above baseline, retained above baseline, the answer) in bytes."""
    gc.collect()
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        response = function(client)
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - baseline, current - baseline, str(response)


def run(quick: bool = False) -> list[Result]:
    from aihubmix_magic import Client

    words = 3_000 if quick else 304_000  # about 6.6 bytes a word: 20 kB, or 2 MB
    results = []
    with ReplayServer(f"words={words}", endpoints=("chat",)) as server, Client(KEY, server.base_url) as client:
        client.models()  # connect before the baseline
        for label, function in (("Client alone", client_only), ("magic path (consume + NotebookView)", magic_path)):
            peak, retained, text = traced(function, client)
            size = len(text.encode())
            results.append(Result(
                TITLE, f"{size / 1e6:.2f} MB answer, {label}: peak above baseline",
                f"peak +{peak / 1e6:.1f} MB, retained +{retained / 1e6:.1f} MB (tracemalloc)",
                f"{peak / size:.1f}x", "< 5x", peak / size < 5))
    return results
