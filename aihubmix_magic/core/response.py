"""The value objects users hold: Response, Usage, ToolCall.

A Response is created before the first byte arrives. A streamed one fills in as it is iterated
(`for delta in response`), a non-streamed one is complete at once; either way it ends with the same
fields, whichever endpoint produced it. `repr` is short and safe at any point.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .exceptions import AihubmixError, AnswerTooLargeError, APIConnectionError, APIResponseError
from .streams import Accumulator, Delta
from .types import Citation, Step, ToolCall, ToolRun, Usage, fields_from_raw, links_in_text

if TYPE_CHECKING:
    from .request import Request

__all__ = ["Response", "ToolCall", "Usage"]

_SHAPE_ERRORS = (AttributeError, TypeError, KeyError, IndexError, ValueError)


def _shape_error(what: str, value: object, exc: Exception) -> APIResponseError:
    """The server sent JSON of the wrong shape: our error, quoting (200 characters of) what came."""
    try:
        text = json.dumps(value, ensure_ascii=False) if value is not None else ""
    except (TypeError, ValueError):
        text = repr(value)
    text = " ".join(text.split())
    quoted = f": {text[:200]}{'…' if len(text) > 200 else ''}" if text else ""
    return APIResponseError(f"The server sent {what} of an unexpected shape ({type(exc).__name__}: {exc}){quoted}",
                            body=value)


class _RawJSON:
    """`Response.raw`, the final JSON: a dict, or the JSON bytes it came as, decoded when first read.

    A batch keeps its answers as bytes (`Response.keep_raw_json`): 100,000 answers held at once take a third
    of the memory their dicts would. A data descriptor on a dataclass field: `Response(raw=...)` and
    `response.raw = ...` work as for any field."""

    def __get__(self, response: Response | None, owner: type | None = None) -> Any:
        if response is None:
            return None  # the field's default
        value = response.__dict__.get("_raw")
        if isinstance(value, bytes):
            value = response.__dict__["_raw"] = json.loads(value)
        return value

    def __set__(self, response: Response, value: Any) -> None:
        response.__dict__["_raw"] = value


@dataclass(eq=False)
class Response:
    """One answer from `/v1/chat/completions` or `/v1/responses`.

    Fields: `text`, `reasoning`, `tool_calls`, `model`, `endpoint` ("chat" | "responses"), `id`,
    `status` ("in_progress" | "completed" | "incomplete" | "failed" | "cancelled"), `finish_reason`,
    `error` (an AihubmixError or None), `usage`, `raw` (the final JSON as the non-streamed endpoint
    returns it), `request` (the JSON body sent, never the key), `spec` (the typed `Request` it answers),
    `time_to_first_token` and `elapsed` (seconds).

    With tools (`--tools`, `tools=[f, g]`), `steps` lists the steps of the tool loop: each `Step` holds
    the model's intermediate answer (`step.response`) and the calls it asked for (`step.calls`: name,
    arguments, approved, result or error, time); `usage` then sums every step. With web search,
    `citations` holds the sources (URL and title) the answer cites.
    """

    endpoint: str
    request: dict[str, Any]
    stream: bool = False
    model: str = ""
    id: str | None = None
    status: str = "in_progress"
    finish_reason: str | None = None
    error: AihubmixError | None = None
    usage: Usage | None = None
    raw: dict | None = _RawJSON()  # type: ignore[assignment]  # a dict, kept as bytes by a batch
    reasoning: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    time_to_first_token: float | None = None
    elapsed: float | None = None
    parsed: Any = None
    cached: bool = False
    steps: list[Step] = field(default_factory=list)
    citations: list[Citation] = field(default_factory=list)
    spec: Request | None = field(default=None, repr=False)
    _text: str = ""
    _started: float = field(default_factory=time.perf_counter, repr=False)
    _accumulator: Accumulator | None = field(default=None, repr=False)
    _source: Iterator[dict] | None = field(default=None, repr=False)
    _close: Callable[[], None] | None = field(default=None, repr=False)
    _abort: Callable[[], None] | None = field(default=None, repr=False)
    _cancelled: bool = field(default=False, repr=False)
    _on_done: Callable[[Response], None] | None = field(default=None, repr=False)  # e.g. store in the cache
    _max_text: int | None = field(default=None, repr=False)  # a stream's cap on its text (max_answer_bytes)

    def __post_init__(self) -> None:
        if not self.model:
            self.model = str(self.request.get("model", ""))

    # -- reading ---------------------------------------------------------------------------------------
    @property
    def text(self) -> str:
        """The answer's text; for a stream not read yet, reads it to the end first."""
        if self._source is not None and self.status == "in_progress":
            for _ in self.iter_deltas():
                pass
        return self._current_text()

    @property
    def done(self) -> bool:
        return self.status != "in_progress"

    @property
    def cost(self) -> float | None:
        """What this answer cost in USD, estimated from its usage and the model catalog's prices (per 1M
        tokens; see `_cost.py`): 0.0 if it came from the local cache, None if the model has no known price
        or the answer no usage. Waits up to a second for a catalog that is being fetched."""
        from . import hooks

        return hooks.answer_cost(self)

    def _current_text(self) -> str:
        if self._accumulator is not None and self.status == "in_progress":
            return self._accumulator.text()
        return self._text

    def __iter__(self) -> Iterator[str]:
        """The text deltas of a streamed answer as they arrive (all the text at once if not streamed)."""
        for kind, text in self.iter_deltas():
            if kind == "text":
                yield text

    def iter_deltas(self) -> Iterator[Delta]:
        """(kind, text) pairs as they arrive, kind being "text" or "reasoning".

        A broken stream raises its AihubmixError after recording what arrived; an interrupt
        (KeyboardInterrupt, or closing the generator) closes the connection and marks it cancelled.
        """
        if self._source is None:
            if self.reasoning:
                yield ("reasoning", self.reasoning)
            if self._text:
                yield ("text", self._text)
            return
        source, self._source = self._source, None
        accumulator = self._accumulator
        assert accumulator is not None
        limit = self._max_text
        kept = 0
        try:
            for event in source:
                try:
                    deltas = accumulator.feed(event)
                except _SHAPE_ERRORS as exc:  # JSON of the wrong shape (a number, a list, a str for a dict…)
                    raise _shape_error("an event", event, exc) from None
                if deltas:
                    if self.time_to_first_token is None:
                        self.time_to_first_token = time.perf_counter() - self._started
                    if limit is not None:  # what the answer keeps grows with its text: capped too
                        kept += sum(len(text) for _, text in deltas)
                        if kept > limit:
                            raise AnswerTooLargeError(limit)
                    yield from deltas
            accumulator.end()
        except AihubmixError as exc:
            if self._cancelled:  # the connection was shut down on purpose: not a failure
                self._finish(None, "cancelled")
                return
            self._finish(exc, "failed")
            exc.response = self
            raise
        except (KeyboardInterrupt, GeneratorExit):
            self._finish(None, "cancelled")
            raise
        except BaseException as exc:  # a bug of ours must not lose the partial text either
            self._finish(APIConnectionError(f"The stream failed: {exc}"), "failed")
            raise
        else:
            self._finish(None, None)
            if self.status == "failed" and self.error is not None:  # the final JSON said so, or was unusable
                self.error.response = self
                raise self.error

    def cancel(self) -> None:
        """Stop a stream from another thread: the socket is shut down, which wakes a blocked read."""
        self._cancelled = True
        if self._abort is not None and self.status == "in_progress":
            try:
                self._abort()
            except OSError:  # already closed
                pass

    def close(self) -> None:
        """Stop a stream that is still running (its text so far is kept, status "cancelled")."""
        if self._source is not None:
            self._source = None
            self._finish(None, "cancelled")

    def _finish(self, error: AihubmixError | None, status: str | None) -> None:
        accumulator = self._accumulator
        if self._close is not None:
            close, self._close = self._close, None
            try:
                close()
            except Exception:  # closing a broken connection may fail again; nothing to keep from it
                pass
        if accumulator is not None:
            self._text = accumulator.text()
            self._accumulator = None
            try:
                self._set_final(accumulator.raw(), streamed_text=True)
            except AihubmixError as exc:
                error = error or exc
            except _SHAPE_ERRORS as exc:  # raw() met pieces of the wrong shape
                error = error or _shape_error("events", None, exc)
            if accumulator.error is not None and error is None:
                error = accumulator.error
        if status is not None:
            self.status = status
        if error is not None:
            self.error = error
            if self.status not in ("cancelled",):
                self.status = "failed"
        elif self.status == "in_progress":  # the stream ended without a final status: never leave it running
            self.status = "failed"
            self.error = APIConnectionError("The stream ended before the answer was complete.")
        self.elapsed = time.perf_counter() - self._started
        if self._on_done is not None:
            on_done, self._on_done = self._on_done, None
            on_done(self)

    def _set_final(self, raw: dict, *, streamed_text: bool = False) -> None:
        """Take every field from the final JSON (the same code for streamed and non-streamed answers)."""
        try:
            fields = fields_from_raw(self.endpoint, raw)
        except _SHAPE_ERRORS as exc:
            raise _shape_error("an answer", raw, exc) from None
        self.raw = raw
        self.id = fields["id"] or self.id
        self.model = fields["model"] or self.model
        self.finish_reason = fields["finish_reason"]
        self.status = fields["status"]
        self.usage = fields["usage"]
        self.reasoning = fields["reasoning"]
        self.tool_calls = fields["tool_calls"]
        if not streamed_text:
            self._text = fields["text"]
        self.error = fields["error"]
        self.citations = fields["citations"]
        if not self.citations and self.spec is not None and getattr(self.spec, "web_search", False):
            self.citations = links_in_text(self._text)  # a search model that cites in the text itself

    @property
    def tool_runs(self) -> list[ToolRun]:
        """Every tool call of every step, in order."""
        return [call for step in self.steps for call in step.calls]

    def keep_raw_json(self, content: bytes) -> None:
        """Hold the final JSON as `content`, the bytes it was parsed from (`raw` decodes them when read)."""
        self.__dict__["_raw"] = content

    def raw_json(self) -> str | None:
        """The final JSON as text (None before there is one), without decoding bytes held by a batch."""
        value = self.__dict__.get("_raw")
        if value is None:
            return None
        if isinstance(value, bytes):
            return value.decode("utf-8")
        return json.dumps(value, ensure_ascii=False)

    # -- presentation ----------------------------------------------------------------------------------
    def __str__(self) -> str:
        return self._current_text()

    def __repr__(self) -> str:
        text = self._current_text()
        preview = text[:40].replace("\n", " ") + ("…" if len(text) > 40 else "")
        tokens = f", tokens={self.usage.input_tokens}->{self.usage.output_tokens}" if self.usage else ""
        error = f", error={type(self.error).__name__}" if self.error else ""
        cached = ", cached" if self.cached else ""
        cached += f", steps={len(self.steps)}" if self.steps else ""
        return (
            f"<Response {self.endpoint} model={self.model!r} status={self.status}{tokens}{error}{cached} "
            f"text={preview!r} ({len(text)} chars)>"
        )

    def _repr_markdown_(self) -> str:
        text = self._current_text()
        if self.reasoning:
            quoted = "\n".join("> " + line for line in self.reasoning.splitlines())
            return f"{quoted}\n\n{text}"
        return text
