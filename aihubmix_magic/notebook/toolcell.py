"""A `%%aihubmix --tools f,g` cell: the tool loop, shown as it goes.

Each step's calls appear as collapsed blocks (`<details>`) above the answer, each with its call, result
and time; the model's final answer streams below them; the footer counts the steps and sums the tokens.
A call waits for approval (buttons in a notebook, a y/n question in a terminal, `--yes` for none); where
nobody can answer, it is skipped. In a terminal each step is one printed line.
"""

from __future__ import annotations

import html
import json
from typing import TYPE_CHECKING, Any

from ..core.exceptions import AihubmixError, StreamInterruptedError
from ..core.toolloop import Approver, ToolLoopInterrupted, max_steps_line, run_tool_loop, summary_line
from ..core.types import Step, ToolRun
from .display import NotebookView, TerminalView, consume

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..core.request import Request
    from ..core.response import Response

__all__ = ["StepsPublisher", "run_tool_cell", "step_block", "step_line"]

SUMMARY_CHARS = 90


class StepsPublisher:
    """A display publisher that keeps the step blocks above whatever is painted below them: after every
    clear the blocks are shown again (the context block, if any, comes first: it is the inner one's)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.blocks: list[dict[str, Any]] = []

    def show(self, data: dict[str, Any], display_id: str | None = None,
             metadata: dict[str, Any] | None = None) -> None:
        self.inner.show(data, display_id, metadata=metadata)

    def update(self, data: dict[str, Any], display_id: str) -> None:
        self.inner.update(data, display_id)

    def clear(self) -> None:
        self.inner.clear()
        for block in self.blocks:
            self.inner.show(block, None)

    def add(self, data: dict[str, Any]) -> None:
        self.blocks.append(data)
        self.inner.show(data, None)


def _outcome(run: ToolRun) -> str:
    if not run.approved:
        return "skipped" + (f" ({run.note})" if run.note else " (declined)")
    if run.error is not None:
        return f"error: {run.error}"
    return " ".join((run.result or "").split())


def _cut(text: str, limit: int = SUMMARY_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def step_line(step: Step, run: ToolRun) -> str:
    """`Step 1 · get_weather(city='Paris') → sunny in Paris, 21C · 0.01 s` (one line)."""
    return f"Step {step.number} · {_cut(run.signature(), 120)} → {_cut(_outcome(run))} · {run.elapsed:.2f} s"


def step_block(step: Step, run: ToolRun) -> dict[str, Any]:
    """A collapsed block for one call: the call and its outcome in the summary, the arguments and the
    whole result inside."""
    summary = (f"Step {step.number} · <code>{html.escape(_cut(run.signature(), 120))}</code> → "
               f"{html.escape(_cut(_outcome(run)))} · {run.elapsed:.2f} s")
    arguments = json.dumps(run.arguments, ensure_ascii=False, indent=2, default=str)
    body = [f"**{run.name}** arguments:\n\n```json\n{arguments}\n```"]
    said = getattr(step.response, "text", "") if step.calls and step.calls[0] is run else ""
    if said:  # what the model wrote before asking for the tools
        body.insert(0, "The model said: " + " ".join(said.split()))
    if not run.approved:
        body.append(f"Not run: {html.escape(run.note or 'declined')}. The model was told: *{run.output}*")
    elif run.error is not None:
        body.append(f"Error (sent to the model):\n\n```text\n{run.error}\n```")
    else:
        body.append(f"Result (sent to the model):\n\n{_fenced(run.result or '')}")
    markdown = f"<details><summary>{summary}</summary>\n\n" + "\n\n".join(body) + "\n\n</details>"
    return {"text/markdown": markdown, "text/plain": step_line(step, run)}


def _fenced(text: str) -> str:
    if text.lstrip().startswith("|"):  # a Markdown table (a DataFrame): shown as a table
        return text
    fence = "```"
    while fence in text:
        fence += "`"
    return f"{fence}text\n{text}\n{fence}"


def run_tool_cell(magics: Any, request: Request, *, approve: Any, max_steps: int, out: str | None, cache: bool,
                  present: Callable[[Response], list[dict[str, Any]] | None] | None,
                  status: Callable[[list[str]], str | None]) -> Response:
    """Run the tool loop in a cell; returns the final Response (kept in history and in `out`)."""
    from .approval import default_asker

    client = magics.session.client(cache=cache)
    first = magics._view()
    notebook = isinstance(first, NotebookView)
    publisher = StepsPublisher(first.publisher) if notebook else None
    if publisher is not None:
        first.publisher = publisher
    stream = first.stream if isinstance(first, TerminalView) else None
    views: list[Any] = [first]
    retries: list[str] = []

    def on_retry(number: int, delay: float, reason: str) -> None:
        retries.append(reason)
        views[-1].note(f"retrying in {delay:.1f} s ({reason})")

    def send(step_request: Request) -> Response:
        view = views[-1]
        try:
            response = client._send_one(step_request, on_retry=on_retry)
        except AihubmixError:
            view.clear_note()
            raise
        except KeyboardInterrupt:
            view.clear_note()
            raise
        try:
            if response.stream and not response.done:
                consume(response, view)
        except KeyboardInterrupt as exc:
            exc.response = response  # type: ignore[attr-defined]  # the loop keeps it, cancelled
            raise
        if response.status == "failed" and response.error is not None:
            raise response.error
        if response.tool_calls:  # a step that asks for tools (the final answer is logged as the cell)
            from ..session import log as _log

            _log.record([response], "tool_step")
        return response

    def before_calls(step: Step) -> None:
        if publisher is not None:
            publisher.clear()  # the live paint of the step's own text goes; the blocks stay

    def on_call(step: Step, run: ToolRun) -> None:
        if publisher is not None:
            publisher.clear()  # the approval prompt goes
            publisher.add(step_block(step, run))
        elif stream is not None:
            stream.write(step_line(step, run) + "\n")
            stream.flush()
        views.append(NotebookView(publisher=publisher) if publisher is not None else TerminalView(stream))

    approver = Approver(approve=approve, ask=default_asker() if approve is None else None)
    try:
        response = run_tool_loop(request, send, approver=approver, max_steps=max_steps,
                                 scrub=client._redactor().mask, before_calls=before_calls, on_call=on_call)
    except ToolLoopInterrupted as exc:
        final = exc.response
        magics._keep(final, out)
        views[-1].finish(final, _status(status(retries), final))
        magics._finished(final)
        count = len(final.steps)
        raise StreamInterruptedError(
            f"Interrupted: the tool loop stopped after {count} step{'s' * (count != 1)}; what arrived and the "
            "steps so far are kept in last_response()."
        ) from None
    except KeyboardInterrupt:  # before the first answer arrived
        views[-1].clear_note()
        raise StreamInterruptedError("Interrupted before the answer arrived: the request was abandoned and "
                                     "nothing was received.") from None
    except AihubmixError as exc:
        if exc.response is not None:
            magics._keep(exc.response, out)
            views[-1].finish(exc.response, _status(status(retries), exc.response))
            magics._finished(exc.response)
        raise
    magics._keep(response, out)
    outputs = present(response) if present is not None and response.text else None
    limit = max_steps_line(response, max_steps)
    if limit is not None:
        if notebook:
            text = str(response)
            outputs = [*(outputs or ([{"text/markdown": text}] if text else [])),
                       {"text/markdown": f"*{limit}*", "text/plain": limit}]
        elif stream is not None:
            stream.write(limit + "\n")
    views[-1].finish(response, _status(status(retries), response), outputs)
    magics._finished(response)
    return response


def _status(base: str | None, response: Response) -> str | None:
    parts = [part for part in (summary_line(response), base) if part]
    return " · ".join(parts) or None
