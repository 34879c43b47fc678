"""A reply, built whole before it is sent: its fault, its tool calls, its text, its usage, and the final JSON
of each endpoint (chat completion, response object) and the error bodies of each kind of gateway."""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    pass

from .data import _ECHOED, _ENDINGS, _encode_json
from .reading import _has_word, _tokenize
from .tooling import (
    _Call,
    _dict,
    _Fault,
    _json_format,
    _max_tokens,
    _read_input,
    _sources,
    _tool_answer,
    _tool_calls,
    _wants_reasoning,
    _wants_web_search,
)
from .writing import _answer_tokens, _reasoning_tokens


@dataclass(frozen=True)
class _Reply:
    """A successful answer, before it is written as JSON or as a stream."""

    endpoint: str  # "chat" or "responses"
    model: str
    fault: str
    reasoning: tuple[str, ...]
    tokens: tuple[str, ...]  # the answer tokens that are sent
    calls: tuple[_Call, ...]  # the function calls made instead of a text answer
    truncated: bool
    ending: str  # "complete", "error", "failed", "drop" or "stall"
    input_tokens: int
    include_usage: bool
    echo: dict  # the request fields that a response object repeats
    annotations: tuple[dict, ...] = ()  # url_citation annotations (flat, responses-style) of a web search
    ident: str = field(default_factory=lambda: uuid.uuid4().hex[:24])
    created: int = field(default_factory=lambda: int(time.time()))

    @classmethod
    def build(cls, endpoint: str, body: dict, fault: _Fault) -> _Reply:
        model = body["model"]
        source = _read_input(endpoint, body)
        json_mode, schema_text = _json_format(endpoint, body)
        reasoning = _reasoning_tokens(model, source.prompt) if _wants_reasoning(endpoint, body, model) else ()
        calls = _tool_calls(fault.name, model, endpoint, body, source)
        tool_call = bool(calls)
        annotations: tuple[dict, ...] = ()
        tokens: tuple[str, ...] = ()
        if tool_call:
            pass
        elif source.tool_results and fault.name != "tools":
            tokens = _tool_answer(model, source.tool_results)
        else:
            json_mode = json_mode or _has_word(source.prompt, "json")
            tokens = _answer_tokens(
                model, source.prompt, source.images, json_mode, schema_text, fault.name == "chunked-utf8",
                source.system,
            )
        if not tool_call and _wants_web_search(endpoint, body):
            sentence, annotations = _sources(source.prompt)
            offset = len("".join(tokens))
            annotations = tuple({**a, "start_index": a["start_index"] + offset, "end_index": a["end_index"] + offset}
                                for a in annotations)
            tokens = (*tokens, *_tokenize(sentence))
        ending = _ENDINGS.get(fault.name, "complete")
        limit = _max_tokens(endpoint, body, fault)
        truncated = False
        if ending != "complete":
            tokens = tokens[: 3 if ending in ("error", "failed") else fault.number]
        elif limit is not None and limit < len(tokens) and not tool_call:
            tokens, truncated = tokens[: max(0, limit)], True
        return cls(
            endpoint=endpoint,
            model=model,
            fault=fault.name,
            reasoning=reasoning,
            tokens=tokens,
            calls=calls,
            truncated=truncated,
            ending=ending,
            input_tokens=source.words,
            include_usage=bool(_dict(body.get("stream_options")).get("include_usage")),
            echo={
                name: default if body.get(name) is None else body[name] for name, default in _ECHOED.items()
            },
            annotations=annotations if not truncated and ending == "complete" else (),
        )

    @property
    def tool_call(self) -> bool:
        return bool(self.calls)

    @property
    def text(self) -> str:
        return "".join(self.tokens)

    @property
    def output_tokens(self) -> int:
        return len(self.reasoning) + len(self.tokens) + sum(len(call.pieces) for call in self.calls)


# --- JSON bodies -----------------------------------------------------------------------------------


def _trace_id() -> str:
    """A trace id shaped like AiHubMix's: a timestamp and 17 more digits."""
    return time.strftime("%Y%m%d%H%M%S") + "".join(random.choices("0123456789", k=17))


def _aihubmix_error(message: str, **extra: str) -> dict:
    return {"error": {"message": message, "type": "Aihubmix_api_error", **extra}}


def _invalid_token_error() -> dict:
    return _aihubmix_error(f"Invalid token (request id: sim-{_trace_id()})")


def _openai_error(message: str, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}


def _upstream_error(message: str) -> dict:
    return {"error": {"message": f"{message} (tid: {_trace_id()})", "type": "upstream_error"}}


def _incorrect_model_error() -> dict:
    return _aihubmix_error(
        "Incorrect model ID. Please request to view the model page or you do not have permission to use "
        f"this model  (tid: {_trace_id()})"
    )


def _cached_tokens(reply: _Reply) -> int:
    """``sim-cached`` reports half of its input tokens as read from the provider's prompt cache."""
    return reply.input_tokens // 2 if reply.fault == "cached" else 0


def _chat_usage(reply: _Reply) -> dict:
    return {
        "prompt_tokens": reply.input_tokens,
        "completion_tokens": reply.output_tokens,
        "total_tokens": reply.input_tokens + reply.output_tokens,
        "prompt_tokens_details": {"cached_tokens": _cached_tokens(reply), "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": len(reply.reasoning),
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _responses_usage(reply: _Reply) -> dict:
    return {
        "input_tokens": reply.input_tokens,
        "input_tokens_details": {"cached_tokens": _cached_tokens(reply)},
        "output_tokens": reply.output_tokens,
        "output_tokens_details": {"reasoning_tokens": len(reply.reasoning)},
        "total_tokens": reply.input_tokens + reply.output_tokens,
    }


def _finish_reason(reply: _Reply) -> str:
    return "tool_calls" if reply.tool_call else "length" if reply.truncated else "stop"


def _chat_completion(reply: _Reply) -> dict:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": reply.text,
        "refusal": None,
        "tool_calls": None,
    }
    if reply.tool_call:
        message["content"] = None
        message["tool_calls"] = [
            {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
            for call in reply.calls
        ]
    if reply.annotations:
        message["annotations"] = [_chat_annotation(a) for a in reply.annotations]
    if reply.reasoning:
        message["reasoning_content"] = "".join(reply.reasoning)
    return {
        "id": f"chatcmpl-sim{reply.ident}",
        "object": "chat.completion",
        "created": reply.created,
        "model": reply.model,
        "system_fingerprint": "fp_sim",
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": _finish_reason(reply)}
        ],
        "usage": _chat_usage(reply),
    }


def _chat_annotation(annotation: dict) -> dict:
    """A flat url_citation annotation in chat's nested shape."""
    return {"type": "url_citation", "url_citation": {k: v for k, v in annotation.items() if k != "type"}}


def _web_search_item(reply: _Reply, status: str) -> dict:
    return {"id": f"ws_sim{reply.ident}", "type": "web_search_call", "status": status,
            "action": {"type": "search", "query": "simulated search"}}


def _reasoning_item(reply: _Reply, text: str) -> dict:
    summary = [{"type": "summary_text", "text": text}] if text else []
    return {"id": f"rs_sim{reply.ident}", "type": "reasoning", "summary": summary, "encrypted_content": None}


def _message_item(reply: _Reply, status: str, text: str | None) -> dict:
    annotations = list(reply.annotations) if status == "completed" else []
    content = (
        [] if text is None else [{"type": "output_text", "annotations": annotations, "logprobs": [], "text": text}]
    )
    return {
        "id": f"msg_sim{reply.ident}",
        "type": "message",
        "status": status,
        "content": content,
        "role": "assistant",
    }


def _function_call_item(reply: _Reply, call: _Call, status: str, arguments: str) -> dict:
    return {
        "id": f"fc_sim{reply.ident}" + ("" if call.id == "call_sim1" else call.id[-1]),
        "type": "function_call",
        "status": status,
        "arguments": arguments,
        "call_id": call.id,
        "name": call.name,
    }


def _final_output(reply: _Reply) -> list[dict]:
    output = [_reasoning_item(reply, "".join(reply.reasoning))] if reply.reasoning else []
    if reply.annotations:
        output.append(_web_search_item(reply, "completed"))
    if reply.tool_call:
        output += [_function_call_item(reply, call, "completed", call.arguments) for call in reply.calls]
    else:
        output.append(_message_item(reply, "incomplete" if reply.truncated else "completed", reply.text))
    return output


def _response_object(reply: _Reply, status: str, output: list | None, usage: dict | None) -> dict:
    error = {"code": "server_error", "message": "The model failed"} if status == "failed" else None
    incomplete = {"reason": "max_output_tokens"} if status == "incomplete" else None
    return {
        "id": f"resp_sim{reply.ident}",
        "object": "response",
        "created_at": reply.created,
        "status": status,
        "error": error,
        "incomplete_details": incomplete,
        "model": reply.model,
        "output": output,
        "usage": usage,
        **reply.echo,
    }


def _final_status(reply: _Reply) -> str:
    return "failed" if reply.ending == "failed" else "incomplete" if reply.truncated else "completed"


def _response_json(reply: _Reply) -> dict:
    status = _final_status(reply)
    return _response_object(
        reply, status, [] if status == "failed" else _final_output(reply), _responses_usage(reply)
    )


# --- HTTP ------------------------------------------------------------------------------------------


class _Canned(NamedTuple):
    """A complete non-stream HTTP answer."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


def _json_canned(status: int, body: dict, headers: tuple[tuple[str, str], ...] = ()) -> _Canned:
    return _Canned(status, _encode_json(body).encode(), "application/json", headers)
