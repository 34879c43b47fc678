"""The simulator's fixed data: its models and their owners, the fault models, the words it answers with, the
canned pages of a broken gateway."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass





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
    "sim-cached": "a normal answer whose usage reports half of the input tokens as cached (prompt caching)",
    "sim-tool-call": "calls the first offered tool with arguments from its schema, then answers with the result",
    "sim-parallel-tools": "calls every offered tool at once (the only one twice), then answers with the results",
    "sim-tools-forever": "calls the first offered tool again after every result: never answers in text",
    "sim-no-web": "HTTP 400 'does not support web_search' when web search is asked for",
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
