"""An OpenAI-compatible AiHubMix gateway on loopback, with simulated answers and faults on demand.

Standard library only. Tests, examples, benchmarks and the demo mode talk to it over a real socket,
with our own client or with the official ``openai`` SDK::

    with Simulator() as simulator:
        client = openai.OpenAI(base_url=simulator.base_url, api_key="sk-test")

or from a shell: ``python -m aihubmix_magic.simulator --port 8765``.

Endpoints: ``GET /v1/models``, ``POST /v1/chat/completions`` and ``POST /v1/responses``, streamed or
not, framed as the recorded OpenAI streams are (see the project's PROTOCOL.md). Every ``/v1`` request
needs ``Authorization: Bearer <key>``. Nothing ever leaves the machine.

The answer is deterministic Markdown derived from the model name and the last user message. Words in
that message act as directives: ``heading``, ``bold``, ``code``, ``list``/``bullet``, ``table``,
``json`` and ``words=N`` (N filler words, for long answers). Images are counted, ``max_tokens`` /
``max_output_tokens`` truncate, and thinking models (``-think``, ``deepseek-reasoner``, ``o4-mini``,
or a reasoning effort in the request) stream a short reasoning text first.

Faults are chosen by the model name; every fault model starts with ``sim-`` and any other ``sim-``
name (``sim-echo``) is a normal model. ``FAULT_MODELS`` (and ``--help``) lists them all:

* HTTP errors: ``sim-400``, ``sim-401``, ``sim-403``, ``sim-404``, ``sim-unknown-model``, ``sim-503``,
  ``sim-429``, ``sim-500``, ``sim-flaky-429-N``, ``sim-flaky-500-N``, ``sim-retry-after-S``,
  ``sim-html``, ``sim-html-200``, ``sim-408``, ``sim-409``, ``sim-flaky-408-N``, ``sim-flaky-409-N``,
  ``sim-retry-after-ms-N``, ``sim-retry-after-date-S``, ``sim-should-retry-N``, ``sim-500-no-retry``,
  ``sim-400-echo-headers``, ``sim-echo-headers`` (both quote the Authorization header back).
* Broken 200 answers: ``sim-200-error``, ``sim-null-choices``, ``sim-garbage``, ``sim-bad-json``.
* Broken streams: ``sim-drop-K``, ``sim-stall-K``, ``sim-error-event``, ``sim-error-event-flat``,
  ``sim-failed``, ``sim-incomplete``.
* Timing: ``sim-slow``, ``sim-tps-N``, ``sim-latency-MS``.
* Rate limits: ``Simulator(rate_limit=10.0)`` (``--rate-limit 10``) puts one token bucket of 10 requests a
  second (a burst of ``rate_limit_burst``, default one second's worth) in front of the two generation
  endpoints, for every model and key: a request over it gets HTTP 429 at once, with ``retry-after-ms``
  (when the next token comes) and ``retry-after`` (the same, rounded up to whole seconds). With
  ``rate_limit_headers=True`` (``--rate-limit-headers``) every answer also carries OpenAI's
  ``x-ratelimit-limit-requests``, ``x-ratelimit-remaining-requests`` and ``x-ratelimit-reset-requests``
  (the time until the bucket is full again, e.g. ``1.5s``). ``rate_limited`` counts the 429s sent.
* Valid but unusual framing: ``sim-crlf``, ``sim-cr``, ``sim-comments``, ``sim-multiline``,
  ``sim-no-done``, ``sim-with-done``, ``sim-no-event-lines``, ``sim-no-usage``,
  ``sim-usage-in-finish``, ``sim-empty-output``, ``sim-unknown-events``, ``sim-tools``,
  ``sim-chunked-utf8``.
"""

from __future__ import annotations

import argparse
import dataclasses
import email.utils
import functools
import itertools
import json
import math
import random
import re
import select
import socket
import socketserver
import sys
import textwrap
import threading
import time
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple
from urllib.parse import urlsplit

__all__ = ["FAULT_MODELS", "MODELS", "RecordedRequest", "Simulator", "main"]

_OWNERS = {
    "gpt-4o-mini": "OpenAI",
    "gpt-4o": "OpenAI",
    "gpt-4.1-mini": "OpenAI",
    "gpt-5.4": "OpenAI",
    "o4-mini": "OpenAI",
    "claude-sonnet-4-5": "Anthropic",
    "claude-sonnet-4-5-think": "Anthropic",
    "claude-haiku-4-5": "Anthropic",
    "gemini-2.5-flash": "Google",
    "gemini-2.5-flash-nothink": "Google",
    "gemini-3.1-pro-preview": "Google",
    "deepseek-chat": "DeepSeek",
    "deepseek-reasoner": "DeepSeek",
    "qwen3-coder": "Alibaba",
    "Kimi-K2-0905": "Moonshot",
}
MODELS: list[str] = list(_OWNERS)

FAULT_MODELS: dict[str, str] = {
    "sim-echo": "a normal model (so is any other sim-* name not listed here)",
    "sim-401": "HTTP 401 'Invalid token' (AiHubMix body)",
    "sim-403": "HTTP 403 insufficient_user_quota",
    "sim-404": "HTTP 404 model_not_found (OpenAI-style body)",
    "sim-unknown-model": "HTTP 400 'Incorrect model ID' (AiHubMix body)",
    "sim-400": "HTTP 400 'bad channel id' (AiHubMix body; nothing about the model)",
    "sim-503": "HTTP 503 'Incorrect model ID', as the AiHubMix docs describe it",
    "sim-429": "always HTTP 429 'Too many requests', with retry-after-ms: 20",
    "sim-500": "always HTTP 500 upstream_error",
    "sim-flaky-429-N": "the first N requests for this name get 429 (retry-after-ms: 20), then answers",
    "sim-flaky-500-N": "the first N requests for this name get 500, then answers",
    "sim-retry-after-S": "always HTTP 429 with retry-after: S (seconds)",
    "sim-html": "HTTP 502 with an nginx HTML page",
    "sim-html-200": "HTTP 200 with a proxy's HTML sign-in page (text/html, longer than 200 characters)",
    "sim-408": "always HTTP 408 Request Timeout",
    "sim-409": "always HTTP 409 Conflict",
    "sim-flaky-408-N": "the first N requests for this name get 408, then answers",
    "sim-flaky-409-N": "the first N requests for this name get 409, then answers",
    "sim-retry-after-ms-N": "always HTTP 429 with retry-after-ms: N (milliseconds)",
    "sim-retry-after-date-S": "always HTTP 429 with retry-after: an HTTP date S seconds ahead",
    "sim-should-retry-N": "the first N requests for this name get 400 with x-should-retry: true, then answers",
    "sim-500-no-retry": "always HTTP 500 with x-should-retry: false",
    "sim-echo-headers": "answers with the request's headers (Authorization included), like httpbin's /headers",
    "sim-400-echo-headers": "HTTP 400 whose error message quotes the request's headers, Authorization included",
    "sim-200-error": "HTTP 200 whose JSON body is an error (also when stream=true)",
    "sim-null-choices": "HTTP 200 with choices: null (responses: output: null) and zero usage",
    "sim-garbage": "non-stream: a text/plain body that is not JSON; stream: junk lines between events",
    "sim-bad-json": "non-stream: invalid JSON body; stream: an invalid data line after 3 tokens",
    "sim-drop-K": "stream: K tokens (sim-drop: 5), then the connection is cut; non-stream: no response",
    "sim-stall-K": "stream: K tokens (sim-stall: 2), then silence until the client leaves (max 120 s)",
    "sim-slow": "0.2 s between streamed tokens",
    "sim-tps-N": "N streamed tokens per second (sim-tps: 10)",
    "sim-latency-MS": "wait MS milliseconds before answering (sim-latency: 500)",
    "sim-error-event": "stream: 3 tokens, then an error event (responses: nested form); non-stream: 500",
    "sim-error-event-flat": "like sim-error-event, with the flat responses error event",
    "sim-failed": "responses: 3 tokens, then response.failed (non-stream: status failed); chat: error event",
    "sim-incomplete": "stops after 4 tokens: chat finish_reason length, responses status incomplete",
    "sim-crlf": "stream lines end with CRLF",
    "sim-cr": "stream lines end with CR",
    "sim-comments": "a ': keep-alive' comment line before every event",
    "sim-multiline": "every JSON payload split across two data: lines",
    "sim-no-done": "chat stream without data: [DONE]",
    "sim-with-done": "responses stream followed by data: [DONE]",
    "sim-no-event-lines": "responses stream without event: lines",
    "sim-no-usage": "chat stream without a usage chunk, even if asked",
    "sim-usage-in-finish": "chat stream with usage on the finish_reason chunk",
    "sim-empty-output": "responses: response.completed carries output: []",
    "sim-unknown-events": "unknown event types, unknown fields and obfuscation padding",
    "sim-tools": 'calls get_weather({"city": "Paris"}); answers in text once a tool result is sent',
    "sim-chunked-utf8": "answer with multi-byte characters, sent in HTTP chunks of 7 bytes",
}

_REASONING_MODELS = {"deepseek-reasoner", "o4-mini"}
_VOCABULARY = (
    "apple bright calm careful clear cloud early easy field friendly garden gentle green harbor honest idea "
    "kind lantern light little meadow morning ocean open orchard paper pebble plain quiet river road simple "
    "small steady stone story summer sunny tidy useful valley warm window winter wonder yellow"
).split()
_MAX_WORDS = 500_000
_STALL_LIMIT = 120.0
_DEFAULT_NUMBERS = {  # the N, K, S or MS of a numbered fault model whose name has none
    "flaky-429": 1,
    "flaky-500": 1,
    "flaky-408": 1,
    "flaky-409": 1,
    "retry-after": 1,
    "retry-after-ms": 1000,
    "retry-after-date": 2,
    "should-retry": 1,
    "drop": 5,
    "stall": 2,
    "tps": 10,
    "latency": 500,
}
_ENDINGS = {  # faults that end a stream early
    "error-event": "error",
    "error-event-flat": "error",
    "failed": "failed",
    "drop": "drop",
    "stall": "stall",
}
_ECHOED: dict[str, Any] = {  # request fields that a response object repeats, with their defaults
    "instructions": None,
    "max_output_tokens": None,
    "metadata": {},
    "parallel_tool_calls": True,
    "previous_response_id": None,
    "reasoning": {"effort": None, "summary": None},
    "store": False,
    "temperature": 1.0,
    "text": {"format": {"type": "text"}},
    "tool_choice": "auto",
    "tools": [],
    "top_p": 1.0,
    "truncation": "disabled",
}
_GARBAGE_LINES = ("garbage line without colon", ": keep-alive", "id: 7", "retry: 1000")
_UNICODE_SAMPLE = "Unicode check: héllo — 你好 😀😀😀."  # 7-byte pieces always split one of the 😀
_TOOL_ARGUMENT_PIECES = ('{"city', '": "', "Par", 'is"}')
_HTML_502 = (
    "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center>"
    "<hr><center>nginx</center></body></html>"
)
_PROXY_SIGN_IN = (
    "<!DOCTYPE html><html><head><title>Sign in to continue</title></head><body>"
    "<h1>Corporate network: sign in to continue</h1><p>Your request to the internet was intercepted by the "
    "proxy. Please sign in with your company account to reach external sites.</p>"
    '<form method="post" action="/login"><input name="user"><input name="password" type="password"></form>'
    "</body></html>"
)
_encode_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


@dataclass
class RecordedRequest:
    """One HTTP request as the simulator received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    time: float


# --- the answer ------------------------------------------------------------------------------------


def _tokenize(text: str) -> list[str]:
    """Split text into tokens (a word and the whitespace after it) that join back to the text."""
    return re.findall(r"\S+\s*|\s+", text)


def _sentences(rng: random.Random, words: list[str]) -> str:
    """Capitalised sentences of 5 to 12 words made of ``words``."""
    sentences = []
    start = 0
    while start < len(words):
        end = start + rng.randint(5, 12)
        if len(words) - end < 3:  # no one-word sentence at the end
            end = len(words)
        sentence = " ".join(words[start:end])
        sentences.append(sentence[:1].upper() + sentence[1:] + ".")
        start = end
    return " ".join(sentences)


def _filler(rng: random.Random, count: int) -> str:
    return _sentences(rng, rng.choices(_VOCABULARY, k=count))


def _quote(prompt: str) -> str:
    words = prompt.split()
    return " ".join(words[:8]) + (" …" if len(words) > 8 else "")


def _has_word(prompt: str, pattern: str) -> bool:
    return re.search(rf"\b(?:{pattern})\b", prompt, re.IGNORECASE) is not None


def _json_value(rng: random.Random, schema: Any) -> Any:
    """A value of the type that a JSON schema declares, with every listed property for objects."""
    schema = schema if isinstance(schema, dict) else {}
    if schema.get("enum"):
        return rng.choice(schema["enum"])  # varied but deterministic: the same prompt, the same choice
    kind = schema.get("type", "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        properties = schema.get("properties") or {}
        names = list(properties) + [n for n in schema.get("required") or [] if n not in properties]
        return {name: _json_value(rng, properties.get(name)) for name in names}
    if kind == "array":
        return [_json_value(rng, schema.get("items", {"type": "string"}))]
    simple = {"number": 3.5, "integer": 3, "boolean": True, "null": None}
    return simple[kind] if kind in simple else " ".join(rng.choices(_VOCABULARY, k=3))


def _json_answer(rng: random.Random, model: str, lead: str, schema: dict | None) -> str:
    if schema is not None:
        value = _json_value(rng, {"type": "object", **schema})
    else:
        answer = (lead + " " + _filler(rng, rng.randint(8, 16))).strip()
        value = {"answer": answer, "model": model, "words": len(answer.split())}
    return json.dumps(value, indent=2, ensure_ascii=False)


def _markdown_blocks(rng: random.Random, prompt: str) -> list[str]:
    """The extra blocks that directives in the prompt ask for."""
    blocks = []
    if _has_word(prompt, "bold"):
        blocks.append(f"This sentence has **bold text** about the {' '.join(rng.choices(_VOCABULARY, k=2))}.")
    if _has_word(prompt, "lists?|bullets?"):
        blocks.append("\n".join(f"- {_filler(rng, rng.randint(3, 6))}" for _ in range(3)))
    if _has_word(prompt, "tables?"):
        rows = [f"| {rng.choice(_VOCABULARY)} | {rng.randint(1, 99)} |" for _ in range(3)]
        blocks.append("\n".join(["| Name | Value |", "| --- | --- |", *rows]))
    if _has_word(prompt, "code"):
        name = rng.choice(_VOCABULARY)
        blocks.append(
            f"```python\ndef {name}_total(values):\n    total = sum(values)\n"
            f"    return total * {rng.randint(2, 9)}\n```"
        )
    return blocks


@functools.lru_cache(maxsize=8)  # long answers take tens of MB
def _answer_tokens(
    model: str, prompt: str, images: int, json_mode: bool, schema_text: str | None, unicode_sample: bool
) -> tuple[str, ...]:
    """The tokens of the answer; the same arguments always give the same answer."""
    rng = random.Random(zlib.crc32(f"{model}\n{prompt}".encode()))
    lead_sentences = [f"I see {images} image(s)."] if images else []
    if unicode_sample:
        lead_sentences.append(_UNICODE_SAMPLE)
    lead = " ".join(lead_sentences)
    if json_mode or schema_text is not None:
        schema = json.loads(schema_text) if schema_text is not None else None
        return tuple(_tokenize(_json_answer(rng, model, lead, schema)))

    blocks = [f"*Simulated answer from {model}.*"]
    if _has_word(prompt, "headings?"):
        blocks.insert(0, "## " + " ".join(rng.choices(_VOCABULARY, k=3)).title())
    words = re.search(r"\bwords=(\d+)", prompt, re.IGNORECASE)
    if words:
        paragraphs = [lead] if lead else []
        remaining = min(int(words.group(1)), _MAX_WORDS)
        while remaining > 0:
            size = min(remaining, rng.randint(40, 80))
            paragraphs.append(_filler(rng, size))
            remaining -= size
    else:
        opening = f'You asked: "{_quote(prompt)}".' if prompt.strip() else "You asked nothing in particular."
        first = " ".join(part for part in (opening, lead) if part)
        paragraphs = [first + " " + _filler(rng, rng.randint(25, 45) - len(first.split()))]
        if rng.random() < 0.5:
            paragraphs.append(_filler(rng, rng.randint(25, 45)))
    blocks += paragraphs + _markdown_blocks(rng, prompt)
    return tuple(_tokenize("\n\n".join(blocks)))


def _reasoning_tokens(model: str, prompt: str) -> tuple[str, ...]:
    """A short thinking text of 12 to 18 tokens."""
    rng = random.Random(zlib.crc32(f"reasoning\n{model}\n{prompt}".encode()))
    topic = " ".join(prompt.split()[:5]) or "the question"
    words = f'Let me think about "{topic}" step by step,'.split()
    extra = rng.choices(_VOCABULARY, k=max(0, rng.randint(12, 18) - len(words) - 1))
    return tuple(_tokenize(" ".join([*words, *extra, "done."])))


# --- reading a request -----------------------------------------------------------------------------


class _Input(NamedTuple):
    """What the answer is made from: the prompt, the size of all input text and the image count."""

    prompt: str
    words: int
    images: int
    has_tool_result: bool


def _content_text(content: Any) -> tuple[str, int]:
    """The text of a message's content (a string or a list of parts) and its image count."""
    if isinstance(content, str):
        return content, 0
    texts, images = [], 0
    for part in content if isinstance(content, list) else []:
        if not isinstance(part, dict):
            continue
        if part.get("type") in ("image_url", "input_image"):
            images += 1
        elif isinstance(part.get("text"), str):
            texts.append(part["text"])
    return "\n".join(texts), images


def _read_input(endpoint: str, body: dict) -> _Input:
    if endpoint == "chat":
        items = body.get("messages")
        extra_text = ""
    else:
        items = body.get("input")
        extra_text = str(body.get("instructions")) if isinstance(body.get("instructions"), str) else ""
        if isinstance(items, str):
            items = [{"role": "user", "content": items}]
    prompt, words, images, has_tool_result = "", len(extra_text.split()), 0, False
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        if item.get("role") == "tool" or item.get("type") == "function_call_output":
            has_tool_result = True
        text, count = _content_text(item.get("content", item.get("output")))
        words += len(text.split())
        images += count
        if item.get("role") == "user":
            prompt = text
    return _Input(prompt, max(1, words), images, has_tool_result)


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _json_format(endpoint: str, body: dict) -> tuple[bool, str | None]:
    """Whether JSON output was asked for, and the canonical text of the JSON schema if one was given."""
    if endpoint == "chat":  # chat nests the schema: response_format.json_schema.schema
        fmt = _dict(body.get("response_format"))
        schema = _dict(fmt.get("json_schema")).get("schema")
    else:  # responses: text.format.schema
        fmt = _dict(_dict(body.get("text")).get("format"))
        schema = fmt.get("schema")
    kind = fmt.get("type")
    if kind == "json_schema" and isinstance(schema, dict):
        return True, json.dumps(schema, sort_keys=True)
    return kind in ("json_object", "json_schema"), None


def _wants_reasoning(endpoint: str, body: dict, model: str) -> bool:
    reasoning = _dict(body.get("reasoning"))
    effort = body.get("reasoning_effort") if endpoint == "chat" else None
    effort = effort if effort is not None else reasoning.get("effort")
    if effort is not None:
        return effort != "none"
    if isinstance(reasoning.get("max_tokens"), int):
        return reasoning["max_tokens"] > 0
    return model.endswith("-think") or model in _REASONING_MODELS


def _max_tokens(endpoint: str, body: dict, fault: _Fault) -> int | None:
    """The output token limit: the request's, or 4 for ``sim-incomplete``."""
    if endpoint == "chat":
        limit = body.get("max_tokens", body.get("max_completion_tokens"))
    else:
        limit = body.get("max_output_tokens")
    limit = limit if isinstance(limit, int) and not isinstance(limit, bool) else None
    if fault.name == "incomplete":
        return 4 if limit is None else min(4, limit)
    return limit


class _Fault(NamedTuple):
    """The fault a model name asks for: ``name`` is the name after ``sim-`` without its number."""

    name: str
    number: int

    @classmethod
    def parse(cls, model: str) -> _Fault:
        if not model.startswith("sim-"):
            return cls("", 0)
        numbered = re.fullmatch(r"sim-(.+)-(\d+)", model)
        if numbered and numbered.group(1) in _DEFAULT_NUMBERS:
            return cls(numbered.group(1), int(numbered.group(2)))
        name = model[len("sim-") :]
        return cls(name, _DEFAULT_NUMBERS.get(name, 0))

    @property
    def token_delay(self) -> float | None:
        if self.name == "slow":
            return 0.2
        if self.name == "tps":
            return 1 / self.number if self.number else 0.0
        return None


@dataclass(frozen=True)
class _Reply:
    """A successful answer, before it is written as JSON or as a stream."""

    endpoint: str  # "chat" or "responses"
    model: str
    fault: str
    reasoning: tuple[str, ...]
    tokens: tuple[str, ...]  # the answer tokens that are sent, or the tool-call argument pieces
    tool_call: bool
    truncated: bool
    ending: str  # "complete", "error", "failed", "drop" or "stall"
    input_tokens: int
    include_usage: bool
    echo: dict  # the request fields that a response object repeats
    ident: str = field(default_factory=lambda: uuid.uuid4().hex[:24])
    created: int = field(default_factory=lambda: int(time.time()))

    @classmethod
    def build(cls, endpoint: str, body: dict, fault: _Fault) -> _Reply:
        model = body["model"]
        source = _read_input(endpoint, body)
        json_mode, schema_text = _json_format(endpoint, body)
        reasoning = _reasoning_tokens(model, source.prompt) if _wants_reasoning(endpoint, body, model) else ()
        tool_call = fault.name == "tools" and not source.has_tool_result
        if tool_call:
            tokens: tuple[str, ...] = _TOOL_ARGUMENT_PIECES
        else:
            json_mode = json_mode or _has_word(source.prompt, "json")
            tokens = _answer_tokens(
                model, source.prompt, source.images, json_mode, schema_text, fault.name == "chunked-utf8"
            )
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
            tool_call=tool_call,
            truncated=truncated,
            ending=ending,
            input_tokens=source.words,
            include_usage=bool(_dict(body.get("stream_options")).get("include_usage")),
            echo={
                name: default if body.get(name) is None else body[name] for name, default in _ECHOED.items()
            },
        )

    @property
    def text(self) -> str:
        return "".join(self.tokens)

    @property
    def output_tokens(self) -> int:
        return len(self.reasoning) + len(self.tokens)


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


def _chat_usage(reply: _Reply) -> dict:
    return {
        "prompt_tokens": reply.input_tokens,
        "completion_tokens": reply.output_tokens,
        "total_tokens": reply.input_tokens + reply.output_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
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
        "input_tokens_details": {"cached_tokens": 0},
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
            {
                "id": "call_sim1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": reply.text},
            }
        ]
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


def _reasoning_item(reply: _Reply, text: str) -> dict:
    summary = [{"type": "summary_text", "text": text}] if text else []
    return {"id": f"rs_sim{reply.ident}", "type": "reasoning", "summary": summary, "encrypted_content": None}


def _message_item(reply: _Reply, status: str, text: str | None) -> dict:
    content = (
        [] if text is None else [{"type": "output_text", "annotations": [], "logprobs": [], "text": text}]
    )
    return {
        "id": f"msg_sim{reply.ident}",
        "type": "message",
        "status": status,
        "content": content,
        "role": "assistant",
    }


def _function_call_item(reply: _Reply, status: str, arguments: str) -> dict:
    return {
        "id": f"fc_sim{reply.ident}",
        "type": "function_call",
        "status": status,
        "arguments": arguments,
        "call_id": "call_sim1",
        "name": "get_weather",
    }


def _final_output(reply: _Reply) -> list[dict]:
    output = [_reasoning_item(reply, "".join(reply.reasoning))] if reply.reasoning else []
    if reply.tool_call:
        output.append(_function_call_item(reply, "completed", reply.text))
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
        call = {
            "index": 0,
            "id": "call_sim1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": ""},
        }
        yield _Event(None, chunk({"tool_calls": [call]}))
        arguments = _Template(chunk({"tool_calls": [{"index": 0, "function": {"arguments": _SLOTS[0]}}]}))
        for piece in reply.tokens:
            yield _Event(None, arguments.fill(piece), True)
    else:
        content = _Template(chunk({"content": _SLOTS[0]}))
        for token in reply.tokens:
            yield _Event(None, content.fill(token), True)
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
        yield from self._function_call(index) if reply.tool_call else self._message(index)
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

    def _function_call(self, index: int) -> Iterator[_Event]:
        reply = self._reply
        item = _function_call_item(reply, "in_progress", "")
        ids = {"item_id": item["id"], "output_index": index}
        yield self._event("response.output_item.added", output_index=index, item=item)
        yield from self._deltas("response.function_call_arguments.delta", reply.tokens, **ids)
        yield self._event(
            "response.function_call_arguments.done", **ids, name="get_weather", arguments=reply.text
        )
        item = _function_call_item(reply, "completed", reply.text)
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


# --- HTTP ------------------------------------------------------------------------------------------


class _Canned(NamedTuple):
    """A complete non-stream HTTP answer."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


def _json_canned(status: int, body: dict, headers: tuple[tuple[str, str], ...] = ()) -> _Canned:
    return _Canned(status, _encode_json(body).encode(), "application/json", headers)


def _null_answer(endpoint: str, model: str) -> dict:
    created = int(time.time())
    if endpoint == "chat":
        usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        return {
            "id": "chatcmpl-simnull",
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": None,
            "usage": usage,
        }
    usage = {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
    return {
        "id": "resp_simnull",
        "object": "response",
        "created_at": created,
        "status": "completed",
        "model": model,
        "output": None,
        "usage": usage,
    }


def _canned_fault(name: str, number: int, model: str, endpoint: str, stream: bool) -> _Canned | None:
    """The fixed reply that fault ``name`` gives instead of an answer, or None."""
    too_many = _aihubmix_error(f"The {model} model Too many requests; please try again later.")
    if name == "401":
        return _json_canned(401, _invalid_token_error())
    if name == "403":
        message = f"insufficient_user_quota (tid: {_trace_id()})"
        return _json_canned(403, _aihubmix_error(message, code="insufficient_user_quota"))
    if name == "404":
        message = f"The model `{model}` does not exist or you do not have access to it."
        return _json_canned(404, _openai_error(message, "model_not_found"))
    if name == "unknown-model":
        return _json_canned(400, _incorrect_model_error())
    if name == "400":
        return _json_canned(400, _aihubmix_error(f"bad channel id (tid: {_trace_id()})"))
    if name == "503":
        return _json_canned(503, _incorrect_model_error())
    if name == "429":
        return _json_canned(429, too_many, (("retry-after-ms", "20"),))
    if name == "retry-after":
        return _json_canned(429, too_many, (("retry-after", str(number)),))
    if name == "retry-after-ms":
        return _json_canned(429, too_many, (("retry-after-ms", str(number)),))
    if name == "retry-after-date":
        when = email.utils.formatdate(time.time() + number, usegmt=True)
        return _json_canned(429, too_many, (("retry-after", when),))
    if name == "408":
        return _json_canned(408, _aihubmix_error("Request Timeout"))
    if name == "409":
        return _json_canned(409, _aihubmix_error("Conflict: a concurrent request is being processed"))
    if name == "should-retry":
        return _json_canned(400, _aihubmix_error("temporarily rejected"), (("x-should-retry", "true"),))
    if name == "500-no-retry":
        return _json_canned(500, _upstream_error("upstream error"), (("x-should-retry", "false"),))
    if name == "html-200":
        return _Canned(200, _PROXY_SIGN_IN.encode(), "text/html; charset=utf-8")
    if name == "500":
        return _json_canned(500, _upstream_error("upstream error"))
    if name == "html":
        return _Canned(502, _HTML_502.encode(), "text/html")
    if name == "200-error":
        body = _aihubmix_error(f"get_adaptor_failed (tid: {_trace_id()})")
        return _json_canned(200, {**body, "type": "error"})
    if name == "null-choices":
        return _json_canned(200, _null_answer(endpoint, model))
    if stream:
        return None
    if name == "garbage":
        return _Canned(200, b"this is not json <<<", "text/plain")
    if name == "bad-json":
        return _Canned(200, b'{"id": "chatcmpl-sim", "choices": [{', "application/json")
    if name in ("error-event", "error-event-flat") or (name == "failed" and endpoint == "chat"):
        return _json_canned(500, _upstream_error("upstream stream error"))
    return None


_ROUTES = {
    ("GET", "/v1/models"): "models",
    ("POST", "/v1/chat/completions"): "chat",
    ("POST", "/v1/responses"): "responses",
}
_INVALID_JSON = object()
_BAD_JSON_EVENT = _Event(None, '{"choices": [')


def _parse_body(raw: bytes) -> Any:
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return _INVALID_JSON


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "AiHubMixSimulator/1.0"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: no request lines in test output or in a notebook's log."""

    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    @property
    def _simulator(self) -> Simulator:
        return self.server.simulator

    def _handle(self) -> None:
        try:
            length = max(0, int(self.headers.get("Content-Length") or 0))
        except ValueError:
            length = 0
        body = _parse_body(self.rfile.read(length))
        headers = {name.lower(): value for name, value in self.headers.items()}
        recorded_body = None if body is _INVALID_JSON else body
        self._simulator._record(
            RecordedRequest(self.command, self.path, headers, recorded_body, time.monotonic())
        )
        path = urlsplit(self.path).path.rstrip("/")
        route = _ROUTES.get((self.command, path))
        self._rate_headers: tuple[tuple[str, str], ...] = ()
        if route in ("chat", "responses") and self._simulator.rate_limit and self._is_authorized():
            allowed, wait, self._rate_headers = self._simulator._take_token()
            if not allowed:  # over the limit: a 429 at once, as a gateway's limiter answers
                message = _aihubmix_error("Too many requests; please try again later.")
                retry = (("retry-after-ms", str(max(1, math.ceil(wait * 1000)))),
                         ("retry-after", str(max(1, math.ceil(wait)))))
                self._send(_json_canned(429, message, retry))
                return
        if self._simulator.latency:
            time.sleep(self._simulator.latency)
        if path.startswith("/v1/") and not self._is_authorized():
            self._send(_json_canned(401, _invalid_token_error()))
            return
        if route is None:
            self._send(_json_canned(404, _openai_error(f"Invalid URL ({self.command} {path})")))
        elif route == "models":
            self._send(_json_canned(200, _models_list()))
        else:
            self._generate(route, body)

    def _is_authorized(self) -> bool:
        scheme, _, token = self.headers.get("Authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return False
        return self._simulator.api_key is None or token == self._simulator.api_key

    def _generate(self, endpoint: str, body: Any) -> None:
        if not isinstance(body, dict):
            message = "We could not parse the JSON body of your request: it must be a JSON object."
            self._send(_json_canned(400, _openai_error(message)))
            return
        model = body.get("model")
        if not isinstance(model, str) or not model:
            self._send(_json_canned(400, _openai_error("you must provide a model parameter")))
            return
        if model not in _OWNERS and not model.startswith("sim-"):
            self._send(_json_canned(self._simulator.unknown_model_status, _incorrect_model_error()))
            return
        fault = _Fault.parse(model)
        stream = body.get("stream") is True
        if fault.name == "latency":
            time.sleep(fault.number / 1000)
        name = fault.name
        if name in ("flaky-429", "flaky-500", "flaky-408", "flaky-409", "should-retry"):
            failing = self._simulator._take_flaky_turn(model, fault.number)
            name = (name if name == "should-retry" else name[len("flaky-") :]) if failing else ""
        canned = _canned_fault(name, fault.number, model, endpoint, stream)
        if name == "400-echo-headers":  # a debugging proxy that quotes the request back
            headers = "; ".join(f"{key}: {value}" for key, value in self.headers.items())
            canned = _json_canned(400, _openai_error(f"Bad request. Headers received: {headers}"))
        if canned is not None:
            self._send(canned)
        elif name in ("drop", "stall") and not stream:
            if name == "stall":
                self._stall()
            self._abort()
        else:
            reply = _Reply.build(endpoint, body, fault)
            if name == "echo-headers":  # like httpbin's /headers: the answer is the request's headers
                lines = "\n".join(f"{key}: {value}" for key, value in self.headers.items())
                reply = dataclasses.replace(reply, tokens=tuple(_tokenize("Headers received:\n\n" + lines)))
            if stream:
                self._stream(reply, fault)
            else:
                self._send(
                    _json_canned(
                        200, _chat_completion(reply) if endpoint == "chat" else _response_json(reply)
                    )
                )

    def _send(self, canned: _Canned) -> None:
        self.send_response(canned.status)
        self.send_header("Content-Type", canned.content_type)
        self.send_header("Content-Length", str(len(canned.body)))
        for name, value in (*canned.headers, *getattr(self, "_rate_headers", ())):
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(canned.body)

    def _stream(self, reply: _Reply, fault: _Fault) -> None:
        framing = _Framing(fault.name)
        events = _iter_chat_events(reply) if reply.endpoint == "chat" else _ResponsesEvents(reply)
        delay = fault.token_delay if fault.token_delay is not None else self._simulator.delay
        junk_after = 3 if fault.name == "bad-json" else -1
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        for name, value in self._rate_headers:
            self.send_header(name, value)
        self.end_headers()
        writer = _ChunkedWriter(self.wfile, 7 if fault.name == "chunked-utf8" else None)
        tokens_sent = 0
        try:
            for event in events:
                if event.is_token:
                    if tokens_sent == junk_after:
                        writer.write(framing.frame(_BAD_JSON_EVENT))
                    if delay:
                        time.sleep(delay)
                    tokens_sent += 1
                writer.write(framing.frame(event))
            if reply.ending == "stall":
                self._stall()
            if reply.ending in ("drop", "stall"):
                self._abort()
            else:
                writer.close()
        except ConnectionError:
            self._client_left()

    def _stall(self) -> None:
        """Send nothing until the client goes away (a disconnect), the simulator stops, or 120 s pass."""
        if _wait_for_eof(self.connection, self.server.stopping, _STALL_LIMIT):
            self._client_left()

    def _client_left(self) -> None:
        self.close_connection = True
        self._simulator._record_disconnect(self.path)

    def _abort(self) -> None:
        """Cut the connection without finishing the response."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _models_list() -> dict:
    return {
        "object": "list",
        "data": [
            {"id": model, "object": "model", "created": 1626777600, "owned_by": owner}
            for model, owner in _OWNERS.items()
        ],
    }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], simulator: Simulator) -> None:
        self.simulator = simulator
        self.stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name, which can take seconds on an offline machine
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def process_request(self, request: Any, client_address: Any) -> None:
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._connections_lock:
            self._connections.add(request)
        self.simulator._count_connection()
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client going away is not an error
            super().handle_error(request, client_address)

    def close_connections(self) -> None:
        """End the stalls and the idle keep-alive connections, so that their threads finish."""
        self.stopping.set()
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


# --- public API ------------------------------------------------------------------------------------


class Simulator:
    """An AiHubMix-like gateway on a loopback port, serving from a background thread.

    ``api_key=None`` accepts any non-empty bearer token; ``delay`` is the time between streamed
    tokens and ``latency`` the time before each response starts, in seconds; ``unknown_model_status`` is
    the HTTP status of the answer to a model it does not know (400; AiHubMix also uses 404 and 503).
    ``rate_limit`` (requests a second, None: no limit) puts a token bucket of ``rate_limit_burst`` tokens
    (default: one second's worth, at least 1) in front of the generation endpoints: over it, HTTP 429 with
    ``retry-after-ms`` and ``retry-after``; ``rate_limit_headers`` adds ``x-ratelimit-*`` headers to every
    answer. The statistics (``requests``, ``connections_opened``, ``disconnects``, ``rate_limited``) are
    thread-safe and cleared by ``reset()``, which also fills the bucket again.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        api_key: str | None = None,
        delay: float = 0.0,
        latency: float = 0.0,
        unknown_model_status: int = 400,
        rate_limit: float | None = None,
        rate_limit_burst: float | None = None,
        rate_limit_headers: bool = False,
    ) -> None:
        self.unknown_model_status = unknown_model_status
        if rate_limit is not None and not rate_limit > 0:
            raise ValueError(f"rate_limit must be a positive number of requests a second, not {rate_limit!r}")
        self.rate_limit = rate_limit
        self.rate_limit_burst = rate_limit_burst if rate_limit_burst is not None else max(1.0, rate_limit or 1.0)
        self.rate_limit_headers = rate_limit_headers
        self.rate_limited = 0
        self._tokens = self.rate_limit_burst
        self._tokens_at = time.monotonic()
        self.host = host
        self.port = port
        self.api_key = api_key
        self.delay = delay
        self.latency = latency
        self.requests: list[RecordedRequest] = []
        self.connections_opened = 0
        self.disconnects: list[tuple[float, str]] = []
        self.disconnected = threading.Event()
        self._lock = threading.Lock()
        self._flaky_counts: dict[str, int] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        state = "running" if self._server is not None else "stopped"
        return f"<Simulator {self.base_url} {state}>"

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/v1"

    @property
    def request_count(self) -> int:
        return len(self.requests)

    def start(self) -> Simulator:
        """Listen and serve in a daemon thread; with ``port=0`` the port is chosen now."""
        if self._server is None:
            self._server = _Server((self.host, self.port), self)
            self.port = self._server.server_address[1]
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"aihubmix-simulator-{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket and every open connection."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join()

    def reset(self) -> None:
        """Clear the statistics and the ``sim-flaky-*`` counters."""
        with self._lock:
            self.requests.clear()
            self.disconnects.clear()
            self.connections_opened = 0
            self._flaky_counts.clear()
            self.disconnected.clear()
            self.rate_limited = 0
            self._tokens = self.rate_limit_burst
            self._tokens_at = time.monotonic()

    def wait_for_disconnect(self, timeout: float | None = None) -> bool:
        """Wait until a client leaves in the middle of a stream; False if ``timeout`` passes first."""
        return self.disconnected.wait(timeout)

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _count_connection(self) -> None:
        with self._lock:
            self.connections_opened += 1

    def _record_disconnect(self, path: str) -> None:
        with self._lock:
            self.disconnects.append((time.monotonic(), path))
            self.disconnected.set()

    def _take_token(self) -> tuple[bool, float, tuple[tuple[str, str], ...]]:
        """Take a token from the rate-limit bucket: (allowed, seconds until the next token, headers to send)."""
        rate = self.rate_limit or 1.0
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.rate_limit_burst, self._tokens + (now - self._tokens_at) * rate)
            self._tokens_at = now
            allowed = self._tokens >= 1.0
            if allowed:
                self._tokens -= 1.0
            else:
                self.rate_limited += 1
            wait = max(0.0, (1.0 - self._tokens) / rate)
            headers: tuple[tuple[str, str], ...] = ()
            if self.rate_limit_headers:
                full = (self.rate_limit_burst - self._tokens) / rate
                headers = (("x-ratelimit-limit-requests", f"{self.rate_limit_burst:g}"),
                           ("x-ratelimit-remaining-requests", str(int(self._tokens))),
                           ("x-ratelimit-reset-requests", f"{full:.3f}s"))
        return allowed, wait, headers

    def _take_flaky_turn(self, model: str, failures: int) -> bool:
        """Count a request for a ``sim-flaky-*`` model; True while it is one of the first ``failures``."""
        with self._lock:
            count = self._flaky_counts.get(model, 0)
            self._flaky_counts[model] = count + 1
        return count < failures


def _fault_help() -> str:
    width = max(map(len, FAULT_MODELS)) + 2
    models = textwrap.fill(
        ", ".join(MODELS), width=100, initial_indent="  ", subsequent_indent="  ", break_on_hyphens=False
    )
    lines = [
        "models:",
        models,
        "",
        "fault models (any other sim-* name answers normally; a missing N or S is 1):",
    ]
    lines += [f"  {name.ljust(width)}{description}" for name, description in FAULT_MODELS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the simulator from the command line until Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="python -m aihubmix_magic.simulator",
        description="An OpenAI-compatible AiHubMix gateway on loopback that simulates answers and faults.",
        epilog=_fault_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default: any free port)")
    parser.add_argument(
        "--delay", type=float, default=0.0, help="seconds between streamed tokens (default: 0)"
    )
    parser.add_argument(
        "--latency", type=float, default=0.0, help="seconds before each response (default: 0)"
    )
    parser.add_argument("--api-key", help="the only key to accept (default: any non-empty key)")
    parser.add_argument("--rate-limit", type=float, metavar="R",
                        help="at most R requests a second (a token bucket); over it: HTTP 429 with retry-after")
    parser.add_argument("--rate-limit-burst", type=float, metavar="B", help="the bucket's size (default: R, at least 1)")
    parser.add_argument("--rate-limit-headers", action="store_true",
                        help="send x-ratelimit-limit/remaining/reset-requests with every answer")
    args = parser.parse_args(argv)
    with Simulator(
        args.host, args.port, api_key=args.api_key, delay=args.delay, latency=args.latency,
        rate_limit=args.rate_limit, rate_limit_burst=args.rate_limit_burst,
        rate_limit_headers=args.rate_limit_headers,
    ) as simulator:
        print(f"AiHubMix simulator on {simulator.base_url} (answers are simulated)", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
