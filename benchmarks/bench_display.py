"""Row 2, display traffic: what the live display sends to the frontend for answers of 1k, 10k and 100k
tokens, at 200 tokens/s and at full speed.

Synthetic time: `aihubmix_magic.notebook.display.NotebookView` is driven directly, with a counting publisher
and a synthetic clock (its `clock` and `arrived` arguments), so 100k tokens at 200 tokens/s take
seconds instead of 8 minutes. The answer is the simulator's answer to `words=N`, cut into its tokens
(one per word, as it streams them). Between deltas the driver calls `tick()` at the view's `deadline`,
as `consume()` does. "Full speed" is 50,000 tokens/s, about what the client reads from loopback.

Counted: every show/update/clear the view publishes; bytes are the UTF-8 bytes of the Markdown it
sends (the final rendering and the footer included; not the JSON envelope of each message), divided by
the answer's UTF-8 bytes. Repaints: the view's paints during the stream, and the most of them in any
1 s window.

Cross-check on the real path: a kernel (jupyter_client) runs a `%%aihubmix` cell against a paced
replay server (1k tokens at 200 tokens/s, in real time), and this process counts the display messages
on iopub: the ratio must agree with the synthetic one.

Targets: bytes / answer bytes <= 3, and flat as the answer grows (the ratio at 100k tokens within 1.25x of
the ratio at 10k: quadratic traffic would multiply it by 10); about 10 repaints/s at most, checked as at
most 11 paints in any 1 s window (10 throttled ones plus the immediate paint of a delta after a quiet gap).
A short answer that ends within one interval is painted only once, so its ratio is lower, not a sign of
growth.
"""

from __future__ import annotations

import re

from _common import ReplayServer, Result

NAME = "display"
TITLE = "2. Display traffic"
FULL_SPEED = 50_000.0


class CountingPublisher:
    def __init__(self) -> None:
        self.messages = 0
        self.bytes = 0

    def show(self, data: dict, display_id: str | None = None, metadata: dict | None = None) -> None:
        self.messages += 1
        self.bytes += len(data.get("text/markdown", "").encode())

    def update(self, data: dict, display_id: str, metadata: dict | None = None) -> None:
        self.show(data)

    def clear(self) -> None:
        self.messages += 1


def answer_tokens(words: int) -> list[str]:
    """The simulator's streamed tokens for `words=N` (a word and the whitespace after it)."""
    import httpx
    from _common import KEY, request_body

    from aihubmix_magic.simulator import Simulator

    with Simulator() as simulator:
        body = {**request_body("chat", f"words={words}"), "stream": False}
        body.pop("stream_options")
        response = httpx.post(simulator.base_url + "/chat/completions", json=body,
                              headers={"Authorization": f"Bearer {KEY}"}, timeout=120)
        text = response.json()["choices"][0]["message"]["content"]
    return re.findall(r"\S+\s*|\s+", text)


def drive(tokens: list[str], rate: float) -> dict:
    """Feed the tokens to a NotebookView at `rate` tokens/s of synthetic time; count what it publishes."""
    from aihubmix_magic import Response
    from aihubmix_magic.notebook.display import NotebookView

    clock = [0.0]
    publisher = CountingPublisher()
    view = NotebookView(publisher, clock=lambda: clock[0])
    step = 1.0 / rate
    paint_times: list[float] = []

    def note_paints(now: float, before: int) -> None:
        paint_times.extend([now] * (view.paints - before))

    for index, token in enumerate(tokens):
        now = index * step
        deadline = view.deadline
        while deadline is not None and deadline <= now:  # what consume() does while it waits
            clock[0] = deadline
            before = view.paints
            view.tick(deadline)
            note_paints(deadline, before)
            if view.deadline == deadline:
                break
            deadline = view.deadline
        clock[0] = now
        before = view.paints
        view.feed("text", token, now)
        note_paints(now, before)
    duration = len(tokens) * step
    clock[0] = duration
    text = "".join(tokens)
    response = Response(endpoint="chat", request={"model": "gpt-4o-mini"}, stream=True)
    response._text = text  # a finished answer, as the magic hands it to finish()
    response.status = "completed"
    view.finish(response)
    answer_bytes = len(text.encode())
    return {"ratio": publisher.bytes / answer_bytes, "messages": publisher.messages,
            "bytes": publisher.bytes, "answer_bytes": answer_bytes, "paints": len(paint_times),
            "duration": duration, "max_per_second": max_in_window(paint_times, 1.0)}


def max_in_window(times: list[float], window: float) -> int:
    """The most events within any `window` seconds (times sorted)."""
    best = start = 0
    for end, time in enumerate(times):
        while time - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def real_kernel(words: int, tps: float) -> dict:
    from bench_stream import Kernel, magic_cell

    with ReplayServer(f"words={words}", tps=tps) as server:
        kernel = Kernel(server.base_url)
        try:
            traffic = kernel.execute(magic_cell("chat"))
        finally:
            kernel.close()
    if traffic["errors"]:
        raise RuntimeError(f"the magic failed in the kernel: {traffic['errors']}")
    text = _answer_text(server.bodies["chat"])
    return {"ratio": traffic["display_bytes"] / len(text.encode()), "messages": traffic["display_messages"],
            "wire_bytes": traffic["wire_bytes"], "answer_bytes": len(text.encode())}


def _answer_text(body: bytes) -> str:
    import json

    parts = []
    for event in body.split(b"\n\n"):
        if event.startswith(b"data: {"):
            for choice in json.loads(event[6:]).get("choices") or ():
                parts.append(choice["delta"].get("content") or "")
    return "".join(parts)


def run(quick: bool = False) -> list[Result]:
    sizes = (100, 1_000) if quick else (1_000, 10_000, 100_000)
    results: list[Result] = []
    for rate, label in ((200.0, "200 tok/s"), (FULL_SPEED, "full speed")):
        ratios = []
        for size in sizes:
            tokens = answer_tokens(size)
            figures = drive(tokens, rate)
            ratios.append(figures["ratio"])
            results.append(Result(
                TITLE, f"{size // 1000 or size}{'k' if size >= 1000 else ''} tokens, {label}: bytes/answer",
                f"{figures['bytes']:,} B for {figures['answer_bytes']:,} B, {figures['messages']:,} messages, "
                f"{figures['paints']:,} paints in {figures['duration']:.2f} s, at most {figures['max_per_second']} in 1 s",
                f"{figures['ratio']:.2f}x", "<= 3x; <= 11 paints in any 1 s",
                figures["ratio"] <= 3 and figures["max_per_second"] <= 11,
                "synthetic clock"))
        growth = ratios[-1] / ratios[-2]
        results.append(Result(TITLE, f"{label}: flat (ratio at {sizes[-1]:,} / at {sizes[-2]:,} tokens)",
                              " → ".join(f"{r:.2f}" for r in ratios), f"{growth:.2f}x", "<= 1.25x (O(n))",
                              growth <= 1.25, "synthetic clock"))
    words = 200 if quick else 1_000
    real = real_kernel(words, 200.0)
    synthetic = drive(answer_tokens(words), 200.0)
    agree = abs(real["ratio"] - synthetic["ratio"]) <= 0.25 * synthetic["ratio"]
    results.append(Result(
        TITLE, f"cross-check: real kernel, {words} tokens at 200 tok/s",
        f"real {real['ratio']:.2f}x ({real['messages']} display messages, {real['wire_bytes']:,} B on iopub "
        f"with headers) vs synthetic {synthetic['ratio']:.2f}x ({synthetic['messages']} messages)",
        f"{real['ratio']:.2f}x", "<= 3x, within 25% of synthetic", real["ratio"] <= 3 and agree, "real time"))
    return results
