"""Accumulators: stream events in, text deltas out, and at the end the JSON the endpoint would have
returned without streaming. Pure logic, no I/O: `feed(event)` takes one decoded JSON object.

The final JSON of either endpoint is read by `_types.fields_from_raw`, so streamed and non-streamed
answers go through the same code.
"""

from __future__ import annotations

from typing import Any

from .exceptions import AihubmixError, APIConnectionError, APIResponseError
from .types import error_message as _error_message
from .types import text_field as _text

__all__ = ["DONE", "Accumulator", "ChatAccumulator", "Delta", "ResponsesAccumulator", "accumulator_for"]

Delta = tuple[str, str]  # ("text" | "reasoning", text)
DONE: dict = {"type": "[DONE]"}  # what the transport feeds for `data: [DONE]`


class Accumulator:
    """What both accumulators share: the text so far, and whether the stream reached its end."""

    endpoint = ""

    JOIN_EVERY = 1024  # small text pieces are joined by this many: a token's str costs ~50 bytes of overhead

    def __init__(self) -> None:
        self.text_parts: list[str] = []
        self.reasoning_parts: list[str] = []
        self.ended = False
        self.error: AihubmixError | None = None
        self._joined = 0  # text_parts[:_joined] are already joined blocks

    def add_text(self, text: str) -> None:
        """Keep a text delta. Every JOIN_EVERY pieces are joined into one block, so a long answer holds
        about its own size in memory instead of one small str per token (~12x for a 2 MB answer)."""
        parts = self.text_parts
        parts.append(_text(text))
        if len(parts) - self._joined >= self.JOIN_EVERY:
            parts[self._joined:] = ["".join(parts[self._joined:])]
            self._joined += 1

    def text(self) -> str:
        if len(self.text_parts) > 1:
            self.text_parts[:] = ["".join(self.text_parts)]
            self._joined = 1
        return self.text_parts[0] if self.text_parts else ""

    def reasoning(self) -> str:
        return "".join(self.reasoning_parts)

    def feed(self, event: dict) -> list[Delta]:
        raise NotImplementedError

    def raw(self) -> dict:
        raise NotImplementedError

    def end(self) -> None:
        """The byte stream is over: complain if the answer never reached its end."""
        if not self.ended:
            received = len(self.text())
            raise APIConnectionError(
                f"The connection closed before the answer was complete ({received} characters received)."
            )


class ChatAccumulator(Accumulator):
    """`chat.completion.chunk` objects -> deltas, then a `chat.completion` object."""

    endpoint = "chat"

    def __init__(self) -> None:
        super().__init__()
        self.first: dict | None = None
        self.finish_reason: str | None = None
        self.usage: dict | None = None
        self.tool_calls: dict[int, dict] = {}
        self.refusal_parts: list[str] = []
        self.message_extra: dict[str, Any] = {}

    def feed(self, chunk: dict) -> list[Delta]:
        if chunk is DONE:
            self.ended = True
            return []
        if chunk.get("error"):
            self.error = APIResponseError(
                f"The server reported an error mid-stream: {_error_message(chunk['error'])}", body=chunk
            )
            raise self.error
        if self.first is None:
            self.first = chunk
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        deltas: list[Delta] = []
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            reasoning = _text(delta.get("reasoning_content"))
            if reasoning:
                self.reasoning_parts.append(reasoning)
                deltas.append(("reasoning", reasoning))
            content = delta.get("content")
            if content:
                self.add_text(content)
                deltas.append(("text", content))
            if delta.get("refusal"):
                self.refusal_parts.append(_text(delta["refusal"]))
                deltas.append(("text", delta["refusal"]))
            if delta.get("tool_calls"):
                self._merge_tool_calls(delta["tool_calls"])
            if delta.get("reasoning_details"):
                self.message_extra.setdefault("reasoning_details", []).extend(delta["reasoning_details"])
            if delta.get("annotations"):  # url_citation annotations of a search model
                self.message_extra.setdefault("annotations", []).extend(delta["annotations"])
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
                self.ended = True
        return deltas

    def _merge_tool_calls(self, fragments: list[dict]) -> None:
        for fragment in fragments:
            index = fragment.get("index", 0)
            call = self.tool_calls.get(index)
            function = fragment.get("function") or {}
            if call is None:
                self.tool_calls[index] = {
                    "id": _text(fragment.get("id")),
                    "type": _text(fragment.get("type")) or "function",
                    "function": {"name": _text(function.get("name")), "arguments": _text(function.get("arguments"))},
                }
                continue
            if fragment.get("id"):
                call["id"] = _text(fragment["id"])
            if function.get("name"):
                call["function"]["name"] += function["name"]
            if function.get("arguments"):
                call["function"]["arguments"] += function["arguments"]

    def raw(self) -> dict:
        first = self.first or {}
        message: dict[str, Any] = {"role": "assistant", "content": self.text(), "refusal": None}
        if self.refusal_parts:
            message["refusal"] = "".join(self.refusal_parts)
        if self.reasoning_parts:
            message["reasoning_content"] = self.reasoning()
        message.update(self.message_extra)
        message["tool_calls"] = [self.tool_calls[i] for i in sorted(self.tool_calls)] or None
        return {
            "id": first.get("id"),
            "object": "chat.completion",
            "created": first.get("created"),
            "model": first.get("model"),
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": self.finish_reason}],
            "usage": self.usage,
        }


_TERMINAL = {"response.completed": "completed", "response.failed": "failed", "response.incomplete": "incomplete"}


class ResponsesAccumulator(Accumulator):
    """Responses API events, dispatched on their JSON `type` -> deltas, then the final response object."""

    endpoint = "responses"

    def __init__(self) -> None:
        super().__init__()
        self.response: dict = {}
        self.items: dict[int, dict] = {}  # output_index -> the item, as added then as done
        self.arguments: dict[int, list[str]] = {}
        self.sequence_number = -1
        self.annotations: list[dict] = []
        self._summary_key: tuple | None = None

    def feed(self, event: dict) -> list[Delta]:
        if event is DONE:  # a gateway's [DONE]: the end, even without a terminal event before it
            self.ended = True
            return []
        kind = event.get("type")
        sequence_number = event.get("sequence_number")
        if isinstance(sequence_number, int):
            self.sequence_number = sequence_number
        if kind == "response.output_text.delta" or kind == "response.refusal.delta":  # a refusal is shown as text
            delta = event.get("delta") or ""
            if delta:
                self.add_text(delta)
                return [("text", delta)]
            return []
        if kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
            return self._reasoning_delta(event)
        if kind == "response.function_call_arguments.delta":
            self.arguments.setdefault(event.get("output_index", 0), []).append(_text(event.get("delta")))
        elif kind == "response.output_text.annotation.added":
            if isinstance(event.get("annotation"), dict):
                self.annotations.append(event["annotation"])
        elif kind in ("response.output_item.added", "response.output_item.done"):
            item = event.get("item")
            if isinstance(item, dict):
                self.items[event.get("output_index", len(self.items))] = item
        elif kind in ("response.created", "response.in_progress", "response.queued"):
            if isinstance(event.get("response"), dict):
                self.response = event["response"]
        elif kind in _TERMINAL:
            response = event.get("response")
            self.response = response if isinstance(response, dict) else {}
            self.response.setdefault("status", _TERMINAL[kind])
            self.ended = True
            if kind == "response.failed":
                error = self.response.get("error") or {"message": "the model failed"}
                self.error = APIResponseError(f"The response failed: {_error_message(error)}", body=event)
                raise self.error
        elif kind == "error" or (kind is None and event.get("error")):
            error = event.get("error") if isinstance(event.get("error"), dict) else event
            self.error = APIResponseError(
                f"The server reported an error mid-stream: {_error_message(error)}", body=event
            )
            raise self.error
        return []

    def _reasoning_delta(self, event: dict) -> list[Delta]:
        delta = _text(event.get("delta"))
        key = (event.get("type"), event.get("output_index"), event.get("summary_index"))
        if self._summary_key is not None and key != self._summary_key and self.reasoning_parts:
            self.reasoning_parts.append("\n\n")
            delta = "\n\n" + delta
        self._summary_key = key
        if not delta:
            return []
        self.reasoning_parts.append(delta)
        return [("reasoning", delta)]

    def raw(self) -> dict:
        response = dict(self.response)
        if not response.get("output"):
            response["output"] = self._rebuild_output()
        response.setdefault("object", "response")
        response.setdefault("status", "in_progress")
        if self.ended and response["status"] in ("in_progress", "queued"):  # ended by [DONE] alone
            response["status"] = "completed"
        return response

    def _rebuild_output(self) -> list[dict]:
        output = []
        for index in sorted(self.items):
            item = dict(self.items[index])
            if item.get("type") == "function_call" and not item.get("arguments") and index in self.arguments:
                item["arguments"] = "".join(self.arguments[index])
            if item.get("type") == "message" and not item.get("content") and not self.ended:
                item["content"] = [{"type": "output_text", "text": self.text(), "annotations": self.annotations}]
            output.append(item)
        if not output and self.text_parts:
            output.append(
                {"type": "message", "role": "assistant", "status": "incomplete",
                 "content": [{"type": "output_text", "text": self.text(), "annotations": self.annotations}]}
            )
        return output


def accumulator_for(endpoint: str) -> Accumulator:
    return ChatAccumulator() if endpoint == "chat" else ResponsesAccumulator()
