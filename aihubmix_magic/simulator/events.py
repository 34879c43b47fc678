"""A reply as server-sent events: the chat chunks and the Responses API's typed events, and the HTTP framing
(Content-Length, chunked, a close) each fault asks for."""

from __future__ import annotations

import itertools
import re
import select
import socket
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    pass

from .data import _GARBAGE_LINES, _encode_json
from .replies import (
    _chat_annotation,
    _chat_usage,
    _final_output,
    _final_status,
    _finish_reason,
    _function_call_item,
    _message_item,
    _reasoning_item,
    _Reply,
    _response_object,
    _responses_usage,
    _upstream_error,
    _web_search_item,
)
from .tooling import _Call

# --- streams ---------------------------------------------------------------------------------------


class _Event(NamedTuple):
    """One server-sent event: its type (for the ``event:`` line), its data, and whether it is a token."""

    type: str | None
    data: dict | str
    is_token: bool = False


_UNKNOWN_FIELDS = {"obfuscation": "x7Qp2", "sim_future_field": {"level": 1}}
_SLOTS = ("\0slot0\0", "\0slot1\0")


class _Template:
    """The JSON text of a payload with slots (``_SLOTS``) to fill, so a token costs one small encode."""

    def __init__(self, payload: dict) -> None:
        self._parts = re.split(r'"\\u0000slot\d\\u0000"', _encode_json(payload))

    def fill(self, *values: Any) -> str:
        pieces = [self._parts[0]]
        for value, part in zip(values, self._parts[1:], strict=True):
            pieces += (_encode_json(value), part)
        return "".join(pieces)


def _iter_chat_events(reply: _Reply) -> Iterator[_Event]:
    base = {
        "id": f"chatcmpl-sim{reply.ident}",
        "object": "chat.completion.chunk",
        "created": reply.created,
        "model": reply.model,
        "system_fingerprint": "fp_sim",
    }
    extra = _UNKNOWN_FIELDS if reply.fault == "unknown-events" else {}

    def chunk(delta: dict, finish_reason: str | None = None, usage: dict | None = None) -> dict:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return {**base, "choices": [choice], "usage": usage, **extra}

    yield _Event(None, chunk({"role": "assistant", "content": "", "refusal": None}))
    reasoning = _Template(chunk({"reasoning_content": _SLOTS[0]}))
    for token in reply.reasoning:
        yield _Event(None, reasoning.fill(token), True)
    if reply.tool_call:
        for index, tool_call in enumerate(reply.calls):
            call = {
                "index": index,
                "id": tool_call.id,
                "type": "function",
                "function": {"name": tool_call.name, "arguments": ""},
            }
            yield _Event(None, chunk({"tool_calls": [call]}))
            arguments = _Template(chunk({"tool_calls": [{"index": index, "function": {"arguments": _SLOTS[0]}}]}))
            for piece in tool_call.pieces:
                yield _Event(None, arguments.fill(piece), True)
    else:
        content = _Template(chunk({"content": _SLOTS[0]}))
        for token in reply.tokens:
            yield _Event(None, content.fill(token), True)
        if reply.annotations:
            yield _Event(None, chunk({"annotations": [_chat_annotation(a) for a in reply.annotations]}))
    if reply.ending in ("error", "failed"):
        yield _Event(None, _upstream_error("upstream stream error"))
        return
    if reply.ending in ("drop", "stall"):
        return
    usage = _chat_usage(reply)
    in_finish = reply.fault == "usage-in-finish"
    yield _Event(None, chunk({}, _finish_reason(reply), usage if in_finish else None))
    if reply.include_usage and reply.fault not in ("no-usage", "usage-in-finish"):
        yield _Event(None, {**base, "choices": [], "usage": usage, **extra})
    if reply.fault != "no-done":
        yield _Event(None, "[DONE]")


class _ResponsesEvents:
    """The events of a streamed ``/v1/responses`` answer, with sequence numbers from 0."""

    def __init__(self, reply: _Reply) -> None:
        self._reply = reply
        self._sequence = itertools.count()
        self._extra = _UNKNOWN_FIELDS if reply.fault == "unknown-events" else {}

    def __iter__(self) -> Iterator[_Event]:
        reply = self._reply
        yield self._event("response.created", response=_response_object(reply, "in_progress", [], None))
        yield self._event("response.in_progress", response=_response_object(reply, "in_progress", [], None))
        if self._extra:
            yield self._event("response.future_thing", note="an event type that clients do not know yet")
        if reply.reasoning:
            yield from self._reasoning(0)
        index = 1 if reply.reasoning else 0
        if reply.annotations:
            yield from self._web_search(index)
            index += 1
        if reply.tool_call:
            for number, call in enumerate(reply.calls):
                yield from self._function_call(index + number, call)
        else:
            yield from self._message(index)
        if reply.ending in ("error", "drop", "stall"):
            return
        if self._extra:
            yield self._event("response.sim_metrics.updated", tokens=reply.output_tokens)
        status = _final_status(reply)
        output = [] if status == "failed" or reply.fault == "empty-output" else _final_output(reply)
        response = _response_object(reply, status, output, _responses_usage(reply))
        yield self._event(f"response.{status}", response=response)
        if reply.fault == "with-done":
            yield _Event(None, "[DONE]")

    def _event(self, kind: str, **fields: Any) -> _Event:
        return _Event(kind, {"type": kind, "sequence_number": next(self._sequence), **fields, **self._extra})

    def _deltas(self, kind: str, tokens: tuple[str, ...], **fields: Any) -> Iterator[_Event]:
        payload = {"type": kind, "sequence_number": _SLOTS[0], **fields, "delta": _SLOTS[1], **self._extra}
        template = _Template(payload)
        for token in tokens:
            yield _Event(kind, template.fill(next(self._sequence), token), True)

    def _reasoning(self, index: int) -> Iterator[_Event]:
        reply = self._reply
        text = "".join(reply.reasoning)
        item = _reasoning_item(reply, "")
        ids = {"item_id": item["id"], "output_index": index, "summary_index": 0}
        yield self._event("response.output_item.added", output_index=index, item=item)
        yield self._event(
            "response.reasoning_summary_part.added", **ids, part={"type": "summary_text", "text": ""}
        )
        yield from self._deltas("response.reasoning_summary_text.delta", reply.reasoning, **ids)
        yield self._event("response.reasoning_summary_text.done", **ids, text=text)
        yield self._event(
            "response.reasoning_summary_part.done", **ids, part={"type": "summary_text", "text": text}
        )
        yield self._event("response.output_item.done", output_index=index, item=_reasoning_item(reply, text))

    def _web_search(self, index: int) -> Iterator[_Event]:
        reply = self._reply
        item = _web_search_item(reply, "in_progress")
        ids = {"item_id": item["id"], "output_index": index}
        yield self._event("response.output_item.added", output_index=index, item=item)
        for stage in ("in_progress", "searching", "completed"):
            yield self._event(f"response.web_search_call.{stage}", **ids)
        yield self._event("response.output_item.done", output_index=index, item=_web_search_item(reply, "completed"))

    def _function_call(self, index: int, call: _Call) -> Iterator[_Event]:
        reply = self._reply
        item = _function_call_item(reply, call, "in_progress", "")
        ids = {"item_id": item["id"], "output_index": index}
        yield self._event("response.output_item.added", output_index=index, item=item)
        yield from self._deltas("response.function_call_arguments.delta", call.pieces, **ids)
        yield self._event(
            "response.function_call_arguments.done", **ids, name=call.name, arguments=call.arguments
        )
        item = _function_call_item(reply, call, "completed", call.arguments)
        yield self._event("response.output_item.done", output_index=index, item=item)

    def _message(self, index: int) -> Iterator[_Event]:
        """The message item; it stops after the deltas when the stream breaks or the answer fails."""
        reply = self._reply
        item = _message_item(reply, "in_progress", None)
        ids = {"item_id": item["id"], "output_index": index, "content_index": 0}
        empty_part = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
        yield self._event("response.output_item.added", output_index=index, item=item)
        yield self._event("response.content_part.added", **ids, part=empty_part)
        yield from self._deltas("response.output_text.delta", reply.tokens, **ids, logprobs=[])
        if reply.ending == "error":
            yield self._error_event()
        if reply.ending != "complete":
            return
        for number, annotation in enumerate(reply.annotations):
            yield self._event("response.output_text.annotation.added", **ids, annotation_index=number,
                              annotation=annotation)
        item = _message_item(reply, "incomplete" if reply.truncated else "completed", reply.text)
        yield self._event("response.output_text.done", **ids, text=reply.text, logprobs=[])
        yield self._event("response.content_part.done", **ids, part=item["content"][0])
        yield self._event("response.output_item.done", output_index=index, item=item)

    def _error_event(self) -> _Event:
        """The mid-stream error: nested as live OpenAI sends it, or flat as documented."""
        error = {"code": "server_error", "message": "upstream stream error", "param": None}
        if self._reply.fault == "error-event-flat":
            return self._event("error", **error)
        return self._event("error", error={"type": "server_error", **error})


class _Framing:
    """How events become bytes on the wire: the normal framing, or the variant that a fault asks for."""

    def __init__(self, fault: str = "") -> None:
        self.line_end = {"crlf": "\r\n", "cr": "\r"}.get(fault, "\n")
        self.comments = fault == "comments"
        self.garbage = fault == "garbage"
        self.multiline = fault == "multiline"
        self.event_lines = fault != "no-event-lines"
        self._plain = fault not in ("crlf", "cr", "comments", "garbage", "multiline", "no-event-lines")

    def frame(self, event: _Event) -> bytes:
        data = event.data if isinstance(event.data, str) else _encode_json(event.data)
        if self._plain:
            return (f"event: {event.type}\ndata: {data}\n\n" if event.type else f"data: {data}\n\n").encode()
        lines = [": keep-alive"] if self.comments else []
        if self.garbage:
            lines += _GARBAGE_LINES
        if event.type and self.event_lines:
            lines.append("event: " + event.type)
        if self.multiline and "," in data:
            # the first comma always follows the first key's value, never inside a string
            head, tail = data.split(",", 1)
            lines += ["data: " + head + ",", "data: " + tail]
        else:
            lines.append("data: " + data)
        lines += ["", ""]
        return self.line_end.join(lines).encode()


class _ChunkedWriter:
    """Writes an HTTP/1.1 chunked body, one chunk per write, or in pieces of ``piece_size`` bytes."""

    def __init__(self, wfile: Any, piece_size: int | None = None) -> None:
        self._wfile = wfile
        self._piece_size = piece_size

    def write(self, data: bytes) -> None:
        step = self._piece_size or len(data)
        for start in range(0, len(data), step):
            piece = data[start : start + step]
            self._wfile.write(b"%X\r\n%b\r\n" % (len(piece), piece))

    def close(self) -> None:
        self._wfile.write(b"0\r\n\r\n")


def _wait_for_eof(sock: socket.socket, stopping: threading.Event, limit: float) -> bool:
    """Wait, without writing, until the peer closes ``sock`` (True), or ``stopping`` or ``limit`` s."""
    deadline = time.monotonic() + limit
    while not stopping.is_set() and time.monotonic() < deadline:
        readable, _, _ = select.select([sock], [], [], 0.1)
        if not readable:
            continue
        try:
            if not sock.recv(1, socket.MSG_PEEK):
                return True
        except OSError:
            return True
        stopping.wait(0.1)  # the client sent more bytes, so it is still there
    return False
