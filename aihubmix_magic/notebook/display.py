"""Live rendering of a streamed answer into the cell, and the footer under it.

Notebook (Markdown), in the manner of rich's Live: storing text and repainting it are separate, repaints
are capped, and `finish` always paints once more.

- Text that can no longer change (blocks closed by a blank line outside a code fence) is sent once, as
  the last update of the display that showed it; only the open block, the tail, is repainted. A tail that
  grows past `max_tail` characters is cut at a line end (a code fence is closed and reopened around the
  cut), so the bytes sent stay O(n) in the answer's length.
- A delta that arrives after a quiet gap (`quiet` seconds without data) is painted at once; a fast
  stream is painted at most once per `interval` (10 a second).
- At the end the cell is cleared (`wait=True`, so without a flicker) and the whole answer is displayed as
  one Markdown output, then the footer: the saved notebook holds exactly one rendering of the answer.

Terminal: deltas are written as plain text as they arrive.

`consume(response, view)` reads the HTTP stream on a helper thread and paints on the calling thread
(`_live.Live`), so a held-back delta is painted on time even when the stream stalls. An interrupt
(KeyboardInterrupt on the calling thread) shuts the socket down at once, which also wakes the reader.
Both views implement `_live.LiveView`.
"""

from __future__ import annotations

import html
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any, TextIO

from ..core.response import Response
from ..core.types import FENCE
from ..services.cost import footer_cost, markdown_dollars
from .live import Live, LiveView

__all__ = ["IPythonPublisher", "NotebookView", "TerminalView", "citations_block", "consume", "footer_block",
           "footer_text", "provenance", "reasoning_block"]


class IPythonPublisher:
    """Sends display messages through IPython's display machinery (the kernel's display publisher)."""

    def show(self, data: dict[str, Any], display_id: str | None = None,
             metadata: dict[str, Any] | None = None) -> None:
        from IPython.display import display

        extra: dict[str, Any] = {"metadata": metadata} if metadata else {}
        if display_id is None:
            display(data, raw=True, **extra)
        else:
            display(data, raw=True, display_id=display_id, **extra)

    def update(self, data: dict[str, Any], display_id: str, metadata: dict[str, Any] | None = None) -> None:
        from IPython.display import update_display

        extra: dict[str, Any] = {"metadata": metadata} if metadata else {}
        update_display(data, raw=True, display_id=display_id, **extra)

    def clear(self) -> None:
        from IPython.display import clear_output

        clear_output(wait=True)


def _markdown(text: str) -> dict[str, Any]:
    return {"text/markdown": text}


class NotebookView:
    """Throttled, O(n) Markdown rendering of one streamed answer."""

    HEAD = 64  # characters kept of the line being written: enough to recognise a code fence
    SLACK = 2048  # repaint bytes allowed beyond the budget, so the start of an answer paints smoothly

    def __init__(
        self,
        publisher: Any = None,
        *,
        interval: float = 0.1,
        quiet: float = 0.04,
        max_tail: int = 2000,
        budget: float = 0.6,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.publisher = publisher or IPythonPublisher()
        self.interval = interval
        self.quiet = quiet
        self.max_tail = max_tail
        self.budget = budget  # throttled repaints may send at most budget × the characters received
        self.clock = clock
        self.paints = 0
        # the answer: frozen text (already sent in final form) + the tail being written
        self._tail_parts: list[str] = []
        self._tail_len = 0
        self._tail_prefix = ""  # a reopened code fence when a tail was cut inside a code block
        self._tail_id: str | None = None
        self._line_head = ""  # the start of the unfinished last line
        self._line_len = 0
        self._fence: str | None = None  # the open fence's marker, e.g. "```"
        self._fence_opener = ""  # the line that opened it, e.g. "```python"
        self._boundary = 0  # offset in the tail where finished blocks end (0: none yet)
        self._after_blank = False
        self._received = 0
        self._throttled_bytes = 0
        # reasoning, shown above the answer
        self._reasoning_parts: list[str] = []
        self._reasoning_id: str | None = None
        self._reasoning_painted = 0
        self._reasoning_len = 0
        # timing
        self._last_arrival = float("-inf")
        self._last_paint = float("-inf")
        self._next_paint = float("-inf")
        self._dirty = False
        self._note_id: str | None = None

    # -- input -------------------------------------------------------------------------------------------
    def feed(self, kind: str, text: str, arrived: float | None = None) -> None:
        now = self.clock() if arrived is None else arrived
        gap = now - self._last_arrival
        self._last_arrival = now
        self._received += len(text)
        if kind == "reasoning":
            self._reasoning_parts.append(text)
            self._reasoning_len += len(text)
        else:
            self._add_text(text)
        self._dirty = True
        if gap >= self.quiet:
            self.paint(now)  # the first delta after a quiet moment is never held back
        else:
            self.tick(now)

    def _add_text(self, text: str) -> None:
        start = self._tail_len
        self._tail_parts.append(text)
        self._tail_len += len(text)
        if "\n" in text:
            pieces = text.split("\n")
            offset = start
            for piece in pieces[:-1]:
                offset += len(piece) + 1
                head = self._line_head + piece[: self.HEAD]
                length = self._line_len + len(piece)
                self._line_head, self._line_len = "", 0
                self._end_of_line(head, length, offset)
            text = pieces[-1]
        if len(self._line_head) < self.HEAD:
            self._line_head += text[: self.HEAD - len(self._line_head)]
        self._line_len += len(text)
        if self._after_blank and self._line_head.strip() and self._fence is None:
            # a new line after a blank one: unless indented (a continuation), the blocks before are final
            self._after_blank = False
            if not self._line_head[:1].isspace():
                self._boundary = self._tail_len - self._line_len

    def _end_of_line(self, head: str, length: int, end: int) -> None:
        """A line ended at tail offset `end`: track code fences and blank lines."""
        stripped = head.strip()
        if self._fence is not None:
            if stripped.startswith(self._fence) and not stripped.strip(self._fence[0]):
                self._fence = None
            return
        opener = FENCE.match(head)
        if opener is not None:
            self._fence = opener.group(1)
            self._fence_opener = stripped
            self._after_blank = False
        elif not stripped:
            self._after_blank = True

    def note(self, text: str) -> None:
        """A transient line (e.g. "retrying in 1 s"); removed by `finish`."""
        data = _markdown(f"*{text}*")
        if self._note_id is None:
            self._note_id = uuid.uuid4().hex
            self.publisher.show(data, self._note_id)
        else:
            self.publisher.update(data, self._note_id)

    def clear_note(self) -> None:
        """The call failed before anything else was shown: take the note away (the error says it all)."""
        if self._note_id is not None:
            self._note_id = None
            self.publisher.clear()

    # -- output ------------------------------------------------------------------------------------------
    @property
    def deadline(self) -> float | None:
        """When the held-back text should be painted (None: nothing is held back)."""
        return max(self._last_paint + self.interval, self._next_paint) if self._dirty else None

    def tick(self, now: float | None = None) -> None:
        """Paint held-back text if the throttle and the byte budget allow it."""
        now = self.clock() if now is None else now
        if not self._dirty or now + 1e-9 < self._last_paint + self.interval or now + 1e-9 < self._next_paint:
            return
        # what a repaint costs beyond the finished blocks (those are sent once whatever happens)
        if self._boundary:
            cost = self._tail_len - self._boundary
        elif self._tail_len > self.max_tail:
            cost = self._line_len
        else:
            cost = self._tail_len
        cost += len(self._tail_prefix)
        if self._throttled_bytes + cost > self.budget * self._received + self.SLACK:
            self._next_paint = now + self.interval  # too costly for now: try again later
            return
        self._throttled_bytes += cost
        self.paint(now)

    def paint(self, now: float | None = None) -> None:
        self._last_paint = self.clock() if now is None else now
        self._dirty = False
        self.paints += 1
        if self._reasoning_painted < self._reasoning_len:
            self._paint_reasoning()
        if not self._tail_parts:
            return
        tail = "".join(self._tail_parts)
        if self._boundary:  # blank-line boundaries lie outside code fences by construction
            self._freeze(tail, self._boundary, in_fence=False)
            tail = tail[self._boundary:]
            self._boundary = 0
        elif self._tail_len > self.max_tail:
            cut = tail.rfind("\n", 0, len(tail) - self._line_len)
            if cut > 0:  # the fence state at a line end is the state after the last whole line
                self._freeze(tail, cut + 1, in_fence=self._fence is not None)
                tail = tail[cut + 1:]
        self._tail_parts = [tail]
        self._tail_len = len(tail)
        data = _markdown(self._tail_prefix + tail)
        if self._tail_id is None:
            self._tail_id = uuid.uuid4().hex
            self.publisher.show(data, self._tail_id)
        else:
            self.publisher.update(data, self._tail_id)

    def _freeze(self, tail: str, end: int, *, in_fence: bool) -> None:
        """Send tail[:end] once, in final form, as the last update of the current tail display."""
        block = self._tail_prefix + tail[:end]
        self._tail_prefix = ""
        if in_fence and self._fence:  # cut inside a code block: close it here, reopen it in the new tail
            block = block + self._fence + "\n"  # the cut is at a line end
            self._tail_prefix = self._fence_opener + "\n"
        if self._tail_id is None:
            self.publisher.show(_markdown(block), None)
        else:
            self.publisher.update(_markdown(block), self._tail_id)
        self._tail_id = None

    def _paint_reasoning(self) -> None:
        text = "".join(self._reasoning_parts)
        self._reasoning_parts = [text]
        # a long reasoning is repainted less often: only once it has grown by a quarter (O(n) in total)
        if self._reasoning_id is not None and len(text) < self._reasoning_painted * 1.25 and self._tail_parts:
            return
        self._reasoning_painted = len(text)
        data = _markdown(reasoning_block(text, open_=not self._tail_parts))
        if self._reasoning_id is None:
            self._reasoning_id = uuid.uuid4().hex
            self.publisher.show(data, self._reasoning_id)
        else:
            self.publisher.update(data, self._reasoning_id)

    def finish(self, response: Response, status_line: str | None = None,
               outputs: list[dict[str, Any]] | None = None) -> None:
        """Replace the live outputs with one rendering of the whole answer (or `outputs`, display data in
        its place, e.g. parsed JSON) and its footer."""
        self.publisher.clear()
        if response.reasoning:
            self.publisher.show(_markdown(reasoning_block(response.reasoning, open_=False)), None)
        if outputs is None:
            text = str(response)
            outputs = [_markdown(text)] if text else []
        metadata = provenance(response)  # saved with the output in the .ipynb: what made it
        for data in outputs:
            self.publisher.show(data, None, metadata=metadata)
        if response.citations:
            self.publisher.show(citations_block(response), None)
        self.publisher.show(footer_block(footer_text(response, status_line)), None)


def provenance(response: Response) -> dict[str, Any]:
    """The answer output's metadata, `{"aihubmix": {model, endpoint, id, created, usage, cost,
    finish_reason}}`: a saved notebook records what made each output (never the key: none of it is in a
    Response). `created` is the server's Unix time (chat `created`, responses `created_at`), else now;
    `cost` the estimate in USD from the model catalog's prices (None when unknown, 0 from the cache)."""
    from ..services.cost import response_cost

    raw = response.raw if isinstance(response.raw, dict) else {}
    created = raw.get("created", raw.get("created_at"))
    usage = response.usage
    return {"aihubmix": {
        "model": response.model,
        "endpoint": response.endpoint,
        "id": response.id,
        "created": created if isinstance(created, (int, float)) and not isinstance(created, bool) else int(time.time()),
        "usage": None if usage is None else {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
                                             "total_tokens": usage.total_tokens,
                                             "reasoning_tokens": usage.reasoning_tokens,
                                             "cached_tokens": usage.cached_tokens},
        "cost": response_cost(response),
        "finish_reason": response.finish_reason,
    }}


def citations_block(response: Response) -> dict[str, Any]:
    """The sources a web-search answer cites, as numbered links (Markdown) and numbered lines (text)."""
    markdown, plain = ["**Sources**", ""], ["Sources:"]
    for number, citation in enumerate(response.citations, start=1):
        title = (citation.title or citation.url).replace("[", "(").replace("]", ")")
        markdown.append(f"{number}. [{title}]({citation.url})")
        plain.append(f"  [{number}] {citation.title + ' ' if citation.title else ''}{citation.url}")
    return {"text/markdown": "\n".join(markdown), "text/plain": "\n".join(plain)}


def reasoning_block(text: str, *, open_: bool) -> str:
    quoted = "\n".join("> " + line for line in text.splitlines())
    return f"<details{' open' if open_ else ''}><summary>Reasoning</summary>\n\n{quoted}\n\n</details>"


class TerminalView:
    """Plain text for terminal IPython: each delta is written as it arrives."""

    deadline = None
    interval = 0.1
    quiet = 0.0

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self._kind: str | None = None
        self._wrote_any = False

    def feed(self, kind: str, text: str, arrived: float | None = None) -> None:
        if kind != self._kind:
            if kind == "reasoning":
                self.stream.write("[reasoning]\n")
            elif self._kind == "reasoning":
                self.stream.write("\n[answer]\n")
            self._kind = kind
        self.stream.write(text)
        self.stream.flush()
        self._wrote_any = True

    def note(self, text: str) -> None:
        self.stream.write(f"[{text}]\n")
        self.stream.flush()

    def clear_note(self) -> None:
        pass  # printed text stays

    def tick(self, now: float | None = None) -> None:
        pass

    def finish(self, response: Response, status_line: str | None = None,
               outputs: list[dict[str, Any]] | None = None) -> None:
        """The footer (the answer was printed as it came; `outputs` are for a notebook)."""
        if not self._wrote_any and str(response):  # not streamed: the whole answer at once
            self.stream.write(str(response))
        if response.citations:
            self.stream.write("\n\n" + citations_block(response)["text/plain"])
        self.stream.write("\n\n" + footer_text(response, status_line) + "\n")
        self.stream.flush()


def footer_block(line: str) -> dict[str, str]:
    """Display data for a footer line: small text, its dollar amounts kept as text (not LaTeX math)."""
    return {"text/markdown": f"<sub>{markdown_dollars(html.escape(line, quote=False))}</sub>", "text/plain": line}


def footer_text(response: Response, status_line: str | None = None) -> str:
    """model · endpoint · tokens in → out · ≈ cost · first token · tokens/s · total time [· what happened]."""
    parts = [response.model or "?", response.endpoint]
    usage = response.usage
    if usage:
        parts.append(f"{usage.input_tokens:,} → {usage.output_tokens:,} tokens")
    cost = footer_cost(response)  # `≈ $0.0012` / `< $0.0001`, an estimate from the catalog; None: unknown
    if cost:
        parts.append(cost)
    if response.cached:
        parts.append("cached")
    else:
        if response.time_to_first_token is not None and response.stream:
            parts.append(f"first token {response.time_to_first_token:.2f} s")
        if usage and usage.output_tokens and response.elapsed:
            generating = response.elapsed - (response.time_to_first_token or 0) if response.stream else response.elapsed
            if generating > 0:
                parts.append(f"{usage.output_tokens / generating:,.0f} tok/s")
        if response.elapsed is not None:
            parts.append(f"{response.elapsed:.2f} s")
    if response.status == "incomplete":
        parts.append(f"stopped early: {response.finish_reason or 'incomplete'}")
    elif response.status == "cancelled":
        parts.append(f"interrupted ({len(str(response)):,} characters kept)")
    elif response.status == "failed":
        kept = len(str(response))
        parts.append(f"failed: {type(response.error).__name__ if response.error else 'error'}"
                     + (f" ({kept:,} characters kept)" if kept else ""))
    if status_line:
        parts.append(status_line)
    return " · ".join(parts)


def consume(response: Response, view: LiveView) -> None:
    """Stream `response` into `view`: a helper thread reads the socket, this thread paints.

    Raises what the stream raised (after the view shows everything that arrived); on KeyboardInterrupt
    the response is cancelled, the connection shut down, and KeyboardInterrupt re-raised.
    """
    live = Live()
    pending: list[tuple[str, str, float]] = []
    clock = time.perf_counter
    quiet = view.quiet

    def read() -> None:
        last = float("-inf")
        for kind, text in response.iter_deltas():
            now = clock()
            with live.condition:
                pending.append((kind, text, now))
                if now - last >= quiet:  # after a quiet gap: paint at once; a fast stream is looked at
                    live.wake_locked()  # every `interval` instead of once per delta
            last = now

    def paint(done: bool) -> float:
        with live.condition:
            batch = pending[:]
            pending.clear()
        for kind, text, arrived in batch:
            view.feed(kind, text, arrived)
        view.tick()
        deadline = view.deadline
        return deadline if deadline is not None else clock() + view.interval

    live.run([read], paint=paint, cancel=response.cancel, name="aihubmix-stream")
    if live.errors[0] is not None:
        raise live.errors[0]
