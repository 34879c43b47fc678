"""`%%aihubmix --compare MODEL,MODEL,…`: one prompt, several models at once, answers side by side.

Each model gets its own thread and its own stream on the session's Client (one connection pool). The
main thread paints one display: a table with a column per model, each column's answer as Markdown and
its footer (tokens, time to first token, tokens/s). Repaints are throttled, more so as the answers grow,
so the bytes sent stay modest; the final paint shows every complete answer once. A model that fails
shows its error in its column and the others go on. In a terminal each answer is printed when it is
complete.

`last_response()` is then a Comparison: `.responses` (one Response per model, in the order given, or
None if a request could not even start), `.errors`, `.models`, and `.to_dataframe()` with pandas.
"""

from __future__ import annotations

import html
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..core.exceptions import AihubmixError, StreamInterruptedError
from ..core.types import FENCE
from ..services.cost import markdown_dollars
from .display import IPythonPublisher, footer_text
from .live import Live

if TYPE_CHECKING:
    from ..core.request import Request
    from ..net.client import Client

__all__ = ["Comparison", "parse_models", "run_comparison"]


def parse_models(text: str) -> list[str]:
    from IPython.core.error import UsageError

    models = [name.strip() for name in text.split(",") if name.strip()]
    if len(models) < 2:
        raise UsageError("--compare needs two or more models, separated by commas: --compare gpt-4o-mini,deepseek-chat")
    repeated = sorted({name for name in models if models.count(name) > 1})
    if repeated:
        raise UsageError(f"--compare: {', '.join(repeated)} is listed twice.")
    return models


@dataclass
class Column:
    """One model's answer while it arrives (written by its thread, read by the painter under the lock)."""

    model: str
    parts: list[str] = field(default_factory=list)
    reasoning_chars: int = 0
    response: Any = None
    error: AihubmixError | None = None
    note: str = ""
    started: float | None = None
    first_token: float | None = None
    finished: float | None = None

    @property
    def done(self) -> bool:
        return self.finished is not None

    def text(self) -> str:
        if len(self.parts) > 1:
            self.parts[:] = ["".join(self.parts)]
        return self.parts[0] if self.parts else ""


class Comparison:
    """The answers of several models to the same prompt, in the order the models were given."""

    def __init__(self, columns: list[Column]) -> None:
        self._columns = columns

    @property
    def models(self) -> list[str]:
        return [column.model for column in self._columns]

    @property
    def responses(self) -> list:
        return [column.response for column in self._columns]

    @property
    def errors(self) -> list:
        return [column.error for column in self._columns]

    @property
    def timings(self) -> list[tuple[float | None, float | None, float | None]]:
        """(started, first token, finished) per model, in `time.perf_counter()` seconds."""
        return [(c.started, c.first_token, c.finished) for c in self._columns]

    def __getitem__(self, key: int | str):
        """`comparison["gpt-4o-mini"]` or `comparison[0]`: that model's Response."""
        if isinstance(key, str):
            if key not in self.models:
                raise KeyError(f"{key!r} is not one of {', '.join(self.models)}")
            key = self.models.index(key)
        return self._columns[key].response

    def __len__(self) -> int:
        return len(self._columns)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.responses)

    def to_dataframe(self):
        """One row per model: status, tokens, time to first token, tokens/s, elapsed, cost (USD, an
        estimate), text, error."""
        try:
            import pandas
        except ImportError:
            raise ImportError("Comparison.to_dataframe() needs pandas: pip install pandas") from None
        rows = []
        for column in self._columns:
            response = column.response
            usage = getattr(response, "usage", None)
            first = getattr(response, "time_to_first_token", None)
            elapsed = getattr(response, "elapsed", None)
            rows.append({
                "model": column.model,
                "status": getattr(response, "status", "failed"),
                "input_tokens": usage.input_tokens if usage else None,
                "output_tokens": usage.output_tokens if usage else None,
                "time_to_first_token": first,
                "tokens_per_second": _rate(response),
                "elapsed": elapsed,
                "cost": getattr(response, "cost", None),  # USD, an estimate from the catalog's prices
                "text": str(response) if response is not None else "",
                "error": str(column.error) if column.error else None,
            })
        return pandas.DataFrame(rows).set_index("model")

    def __repr__(self) -> str:
        states = ", ".join(f"{c.model}: {getattr(c.response, 'status', 'failed')}" for c in self._columns)
        return f"<Comparison of {len(self._columns)} models ({states})>"

    def _repr_markdown_(self) -> str:
        return grid_markdown(self._columns, final=True)


def _rate(response) -> float | None:
    usage = getattr(response, "usage", None)
    elapsed = getattr(response, "elapsed", None)
    if not usage or not usage.output_tokens or not elapsed:
        return None
    generating = elapsed - (response.time_to_first_token or 0) if response.stream else elapsed
    return usage.output_tokens / generating if generating > 0 else None


# -- running -------------------------------------------------------------------------------------------
def run_comparison(requests: list[Request], *, client: Client, notebook: bool, status_line: str | None = None,
                   publisher: IPythonPublisher | None = None, clock: Callable[[], float] = time.perf_counter,
                   keep: Callable[[Comparison], None] | None = None) -> Comparison:
    """Send every request (one per model) at once and paint the columns until all are done.
    `keep(comparison)` is called before anything is sent (the magic records it, even if interrupted)."""
    columns = [Column(request.model) for request in requests]
    live = Live()
    painter = GridPainter(columns, publisher, clock=clock) if notebook else None

    def work(column: Column, request: Request) -> None:
        def on_retry(number: int, delay: float, reason: str) -> None:
            with live.condition:
                column.note = f"retrying in {delay:.1f} s ({reason})"
                live.wake_locked()

        column.started = clock()
        try:
            response = client.send(request, on_retry=on_retry)
            column.response = response
            for kind, text in response.iter_deltas():
                with live.condition:
                    if column.first_token is None:
                        column.first_token = clock()
                    if kind == "text":
                        column.parts.append(text)
                    else:
                        column.reasoning_chars += len(text)
                    column.note = ""
                    live.wake_locked()
        except AihubmixError as exc:
            column.error = exc
            if exc.response is not None:
                column.response = exc.response
        except Exception as exc:  # a bug of ours must not take the other columns down
            column.error = AihubmixError(f"{type(exc).__name__}: {exc}")
        finally:
            with live.condition:
                if column.first_token is None and column.response is not None and str(column.response):
                    column.first_token = clock()  # not streamed: the whole answer at once
                column.finished = clock()
            if column.response is not None and column.response.done:  # the log has each column as it finishes
                from ..session.log import record

                record([column.response], "compare")

    printed: set[int] = set()

    def paint(done: bool) -> float | None:
        with live.condition:
            if painter is not None:
                painter.tick()
                return painter.deadline()
        _print_finished(columns, printed, status_line)
        return None

    def cancel() -> None:
        for column in columns:
            if column.response is not None:
                column.response.cancel()

    comparison = Comparison(columns)
    if keep is not None:
        keep(comparison)
    targets = [lambda column=column, request=request: work(column, request)
               for column, request in zip(columns, requests, strict=True)]
    try:
        live.run(targets, paint=paint, cancel=cancel, name="aihubmix-compare")
    except KeyboardInterrupt:
        _final(painter, columns, printed, status_line)
        raise StreamInterruptedError("Interrupted: the comparison was stopped; what arrived is kept in "
                                     "last_response().") from None
    _final(painter, columns, printed, status_line)
    return comparison


def _final(painter: GridPainter | None, columns: list[Column], printed: set[int], status_line: str | None) -> None:
    if painter is not None:
        painter.paint(final=True, status_line=status_line)
    else:
        _print_finished(columns, printed, status_line)


def _print_finished(columns: list[Column], printed: set[int], status_line: str | None) -> None:
    for index, column in enumerate(columns):
        if index in printed or not column.done:
            continue
        printed.add(index)
        lines = [f"── {column.model} ──", column.text() or str(column.response or "")]
        if column.error is not None:
            lines.append(f"[{type(column.error).__name__}: {column.error}]")
        if column.response is not None:
            lines.append(footer_text(column.response, status_line))
        sys.stdout.write("\n".join(line for line in lines if line) + "\n\n")
        sys.stdout.flush()


# -- painting ------------------------------------------------------------------------------------------
class GridPainter:
    """One display with a column per model, repainted at most every `interval` seconds, and less often
    as the answers grow (about `rate` characters a second at most), so the bytes stay modest."""

    def __init__(self, columns: list[Column], publisher: IPythonPublisher | None = None, *, interval: float = 0.25,
                 rate: float = 20_000, clock: Callable[[], float] = time.perf_counter) -> None:
        self.columns = columns
        self.publisher = publisher or IPythonPublisher()
        self.interval = interval
        self.rate = rate
        self.clock = clock
        self.paints = 0
        self._id: str | None = None
        self._painted_state: tuple | None = None
        self._last_paint = float("-inf")
        self._size = 0

    def _state(self) -> tuple:
        return tuple((sum(map(len, c.parts)), c.reasoning_chars, c.note, c.done) for c in self.columns)

    def deadline(self) -> float | None:
        if self._state() == self._painted_state:
            return None
        return self._last_paint + max(self.interval, self._size / self.rate)

    def tick(self) -> None:
        deadline = self.deadline()
        if deadline is not None and self.clock() >= deadline:
            self.paint()

    def paint(self, *, final: bool = False, status_line: str | None = None) -> None:
        self._painted_state = self._state()
        self._last_paint = self.clock()
        self.paints += 1
        markdown = grid_markdown(self.columns, final=final, status_line=status_line)
        self._size = len(markdown)
        data = {"text/markdown": markdown, "text/plain": grid_text(self.columns, status_line)}
        extra = {"metadata": grid_provenance(self.columns)} if final else {}  # what made each column
        if self._id is None:
            self._id = uuid.uuid4().hex
            self.publisher.show(data, self._id, **extra)
        else:
            self.publisher.update(data, self._id, **extra)


def grid_provenance(columns: list[Column]) -> dict[str, Any]:
    """The final grid's metadata: `{"aihubmix": {"compare": [per column: model, endpoint, id, created, usage,
    cost, finish_reason]}}` (a column that got no answer: its model and error)."""
    from .display import provenance

    entries = []
    for column in columns:
        if column.response is not None:
            entries.append(provenance(column.response)["aihubmix"])
        else:
            entries.append({"model": column.model, "error": str(column.error) if column.error else None})
    return {"aihubmix": {"compare": entries}}


def grid_markdown(columns: list[Column], *, final: bool, status_line: str | None = None) -> str:
    """An HTML table whose cells hold Markdown (blank lines around it, so Jupyter renders it as such)."""
    width = f"{100 // len(columns)}%"
    lines = ["<table>", "<tr>"]
    lines += [f'<th width="{width}">{html.escape(c.model)}</th>' for c in columns]
    lines += ["</tr>", "<tr>"]
    for column in columns:
        body = column.text() if column.response is None or not column.done else str(column.response)
        body = _closed(body)
        if not body and not column.done:
            body = f"*{html.escape(column.note)}*" if column.note else (
                "*thinking…*" if column.reasoning_chars else "*waiting for the first token…*")
        elif column.note and not column.done:
            body += f"\n\n*{html.escape(column.note)}*"
        if column.error is not None:
            body += f"\n\n**{type(column.error).__name__}**: {html.escape(str(column.error))}"
        lines += ['<td valign="top">', "", body, "", "</td>"]
    lines += ["</tr>", "<tr>"]
    for column in columns:
        if column.done and column.response is not None:
            footer = footer_text(column.response, status_line)
        elif column.done:
            footer = "failed before any answer"
        else:
            footer = f"streaming… {sum(map(len, column.parts)):,} characters"
        lines.append(f'<td valign="top"><sub>{markdown_dollars(html.escape(footer))}</sub></td>')  # costs: no math
    lines += ["</tr>", "</table>"]
    return "\n".join(lines)


def grid_text(columns: list[Column], status_line: str | None = None) -> str:
    blocks = []
    for column in columns:
        block = [f"── {column.model} ──", column.text()]
        if column.error is not None:
            block.append(f"[{type(column.error).__name__}: {column.error}]")
        if column.done and column.response is not None:
            block.append(footer_text(column.response, status_line))
        blocks.append("\n".join(part for part in block if part))
    return "\n\n".join(blocks)


def _closed(text: str) -> str:
    """Close a code fence left open (mid-stream), so the rest of the table is not swallowed by it."""
    open_fence = None
    for match in FENCE.finditer(text):
        marker = match.group(1)
        if open_fence is None:
            open_fence = marker
        elif marker[0] == open_fence[0] and len(marker) >= len(open_fence):
            line_end = text.find("\n", match.end())
            rest = text[match.end():line_end if line_end != -1 else len(text)]
            if not rest.strip():
                open_fence = None
    return text + f"\n{open_fence}" if open_fence else text
