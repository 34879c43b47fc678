"""The protocol core: what a request means and what an answer says, with no I/O in it.

The sync client (`_client.Client`: cells, `--compare`) and the async driver (`_async.AsyncDriver`:
`batch()`) only send, wait and read; every decision is made here, once, for both (as httpx keeps its
policy in `BaseClient` and h11 a whole protocol without a socket):

- `request_body(request)`: the JSON body of POST /v1/chat/completions or /v1/responses;
- `status_failure(...)`: an HTTP error status → our error, and whether to retry it (statuses, Retry-After,
  `x-should-retry`, and the unknown-model rule: a 400/404/503 naming an unknown model stays unknown);
- `transport_failure(...)`: an httpx exception → our error, and whether to retry it;
- `retry_delay(failure, retries_taken, max_retries)`: how long to wait before the next attempt, or None;
- `parse_json(...)` and `complete(response, json)` / `response_from_json(...)`: a final body → Response;
- `follow_up(request, response, runs)`: the next request of a tool loop: the conversation so far, the
  model's tool calls echoed (a chat `assistant` message with `tool_calls`; responses `function_call`
  items) and each call's result (`tool` messages / `function_call_output` items, by call id).

Retries follow the SDK (PROTOCOL.md §4): connect errors, timeouts before any answer, and HTTP
408/409/429/5xx, with `retry-after-ms` / `retry-after` honoured up to 60 s, else exponential backoff with
jitter. Nothing is retried once a 2xx answer has started, nor a body that broke while it was read.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlsplit

from .exceptions import (
    AihubmixError,
    APIConnectionError,
    APIResponseError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    InternalServerError,
    ModelNotFoundError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
)
from .request import DEFAULT_THREAD, ENDPOINTS, FORMAT_INSTRUCTIONS, FORMATS, REASONING_EFFORTS, Request

if TYPE_CHECKING:
    from .response import Response
    from .types import ToolRun

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_STEPS",
    "DEFAULT_THREAD",
    "ENDPOINTS",
    "ENDPOINT_PATHS",
    "FORMATS",
    "FORMAT_INSTRUCTIONS",
    "REASONING_EFFORTS",
    "Failure",
    "Redactor",
    "close_suggestions",
    "complete",
    "convert_content",
    "format_fields",
    "follow_up",
    "format_system",
    "has_runnable_tools",
    "is_loopback",
    "mask_key",
    "parse_json",
    "request_body",
    "response_from_json",
    "retry_delay",
    "retry_reason",
    "status_failure",
    "tool_definition",
    "transport_failure",
    "validate_base_url",
    "validate_header_value",
    "validate_key",
]

DEFAULT_BASE_URL = "https://aihubmix.com/v1"
ENDPOINT_PATHS = {"chat": "/chat/completions", "responses": "/responses"}
DEFAULT_MAX_STEPS = 8  # tool-loop steps before the loop stops (--max-steps)
RETRY_STATUSES = frozenset({408, 409, 429}) | frozenset(range(500, 600))
MAX_RETRY_AFTER = 60.0


# -- the key and the base URL --------------------------------------------------------------------------
def mask_key(key: str | None) -> str:
    """`sk-…abcd`: enough to recognise a key, never enough to use it."""
    if not key:
        return "(not set)"
    if len(key) <= 12:
        return "…" + key[-2:]
    prefix = key[:3] if key.startswith("sk-") else ""
    return f"{prefix}…{key[-4:]}"


class Redactor:
    """Masks the key in whatever a server sends back: the key goes no further than the header."""

    def __init__(self, key: str | None) -> None:
        self.key = key or None
        self.masked = mask_key(key)
        self._key_bytes = self.key.encode() if self.key else None
        self._masked_bytes = self.masked.encode()

    def redact(self, content: bytes) -> bytes:
        if self._key_bytes is not None and self._key_bytes in content:
            return content.replace(self._key_bytes, self._masked_bytes)
        return content

    def mask(self, text: str) -> str:
        """`text` with the key masked, its spacing kept (a tool's result, a table)."""
        return text.replace(self.key, self.masked) if self.key and self.key in text else text

    def scrub(self, text: object) -> str:
        """`text` on one line, the key masked."""
        text = " ".join(str(text).split())
        return text.replace(self.key, self.masked) if self.key else text


_CHARACTER_NAMES = {"\r": "a carriage return (CR)", "\n": "a line feed (LF)", "\x00": "a NUL character",
                    "\t": "a tab"}


def control_character(text: str) -> str | None:
    """The name of the first control character in `text` (CR, LF, NUL, any other C0 or C1 control, DEL),
    or None: what must never reach a request's head, where it would end a line."""
    for char in text:
        if char < " " or "\x7f" <= char <= "\x9f":
            return _CHARACTER_NAMES.get(char, f"the control character U+{ord(char):04X}")
    return None


def validate_key(key: str | None, *, source: str = "the API key") -> str | None:
    """The key without surrounding whitespace (None if empty), or ConfigurationError if it holds a control
    character or a character that is not ASCII: it goes into a header as it is, where CR LF would start
    a header of its own. The message shows the key masked, its characters escaped."""
    key = (key or "").strip()
    if not key:
        return None
    problem = control_character(key)
    if problem is None and not key.isascii():
        problem = "a character that is not ASCII"
    if problem is not None:
        raise ConfigurationError(
            f"The API key from {source} ({mask_key(key)!r}) contains {problem}: refused, nothing was sent. "
            "Copy the key again from aihubmix.com and set it with `%aihubmix key`.")
    return key


def validate_header_value(name: str, value: str) -> str:
    """`value`, or ConfigurationError if it holds a control character (it would end the header's line)."""
    problem = control_character(value)
    if problem is None and not value.isascii():
        problem = "a character that is not ASCII"
    if problem is not None:
        raise ConfigurationError(f"{name} contains {problem}: refused, nothing was sent.")
    return value


def validate_base_url(url: str) -> str:
    """Return the URL without a trailing slash, or raise ConfigurationError (nothing is sent). A control
    character is refused by name; percent-escapes (`%0D%0A`) are kept as written and sent as written."""
    url = (url or "").strip()
    character = control_character(url)
    if character is not None:
        raise ConfigurationError(f"Base URL {url!r} is not an http(s) URL: it contains {character} (refused, "
                                 f"nothing was sent); e.g. {DEFAULT_BASE_URL}")
    problem = ConfigurationError(f"Base URL {url!r} is not an http(s) URL, e.g. {DEFAULT_BASE_URL}")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number from 0 to 65535
    except ValueError:
        raise problem from None
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not host or not url.isprintable() or " " in url:
        raise problem
    if not host.startswith("[") and ":" not in host and not re.fullmatch(r"[\w.\-~%]+", host):
        raise problem  # characters no host name has (httpx would refuse the URL when sending)
    return url.rstrip("/")


def is_loopback(url: str) -> bool:
    import ipaddress

    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# -- the request body ----------------------------------------------------------------------------------
def request_body(request: Request) -> dict[str, Any]:
    """The JSON body of POST /v1/chat/completions or /v1/responses for `request`."""
    system = format_system(request.system, request.format)
    body: dict[str, Any]
    if request.endpoint == "chat":
        if isinstance(request.prompt, tuple):
            messages = [dict(message) for message in request.prompt]
        else:
            messages = [*request.history, user_message(request.user_content(), "chat")]
        if system:
            messages = [{"role": "system", "content": system}, *messages]
        body = {"model": request.model, "messages": messages}
        _put(body, temperature=request.temperature, top_p=request.top_p, max_tokens=request.max_tokens,
             reasoning_effort=request.reasoning_effort)
    else:
        given: str | list[dict[str, Any]]
        if isinstance(request.prompt, tuple):
            given = [dict(item) for item in request.prompt]
        elif request.history or request.images or request.previous_response_id:
            given = [*request.history, user_message(request.user_content(), "responses")]
        else:
            given = request.prompt
        body = {"model": request.model, "input": given}
        _put(body, instructions=system, temperature=request.temperature, top_p=request.top_p,
             max_output_tokens=request.max_tokens)
        if request.reasoning_effort:
            body["reasoning"] = {"effort": request.reasoning_effort}
        body["store"] = request.store
        _put(body, previous_response_id=request.previous_response_id)
    body.update(format_fields(request.format, request.schema, request.schema_name, request.endpoint))
    if request.tools:
        body["tools"] = [tool_definition(tool, request.endpoint) for tool in request.tools]
    if request.web_search:  # the hosted web-search tool (PROTOCOL §1)
        if request.endpoint == "responses":
            body.setdefault("tools", []).append({"type": "web_search"})
        else:
            body["web_search_options"] = {}
    body.update(request.extra)
    if request.stream:
        body["stream"] = True
        if request.endpoint == "chat":
            body["stream_options"] = {"include_usage": True}
    if body.get("tools") == []:  # AiHubMix's "Empty Tools Fix": `tools: []` goes, and `tool_choice` with it
        body.pop("tools")
        body.pop("tool_choice", None)
    return body


def has_runnable_tools(request: Request) -> bool:
    """Whether the request offers a Python function to run (JSON definitions alone are the caller's)."""
    return any(getattr(tool, "function", None) is not None for tool in request.tools)


def tool_definition(tool: Any, endpoint: str) -> dict[str, Any]:
    """One `tools` entry in the endpoint's shape: chat nests a function (`{"type": "function", "function":
    {name, description, parameters}}`), responses is flat (`{"type": "function", "name", …}`). A JSON
    definition given in the other endpoint's shape is converted; any other dict is sent as it is."""
    definition = getattr(tool, "definition", None)
    if callable(definition):
        return dict(definition(endpoint))
    tool = dict(tool)
    if tool.get("type", "function") != "function":
        return tool
    if endpoint == "chat" and "function" not in tool and "name" in tool:
        return {"type": "function", "function": {k: v for k, v in tool.items() if k != "type"}}
    if endpoint == "responses" and isinstance(tool.get("function"), dict):
        return {"type": "function", **tool["function"]}
    return tool


# -- the tool loop's next request ----------------------------------------------------------------------
def follow_up(request: Request, response: Response, runs: list[ToolRun]) -> Request:
    """The request that sends the results of `runs` (the calls `response` asked for) back to the model.

    Chat: the conversation so far, the assistant message with its `tool_calls`, then one `tool` message per
    call (`tool_call_id`). Responses, stateless: the input so far, the `function_call` items echoed, then
    one `function_call_output` item per call (`call_id`); when the answer was stored upstream (`--store`,
    or the request continued one with `previous_response_id`), only the outputs go, with
    `previous_response_id` set to the answer's id. The system prompt, tools and options stay."""
    if request.endpoint == "chat":
        outputs: list[dict[str, Any]] = [{"role": "tool", "tool_call_id": run.id, "content": run.output}
                                         for run in runs]
        turns = [*conversation(request), assistant_turn(response), *outputs]
        return request.replace(prompt=tuple(turns), history=(), images=())
    outputs = [{"type": "function_call_output", "call_id": run.id, "output": run.output} for run in runs]
    if (request.store or request.previous_response_id) and response.id:
        return request.replace(prompt=tuple(outputs), history=(), images=(), previous_response_id=response.id)
    echoed = [item for item in (response.raw or {}).get("output") or ()
              if isinstance(item, dict) and item.get("type") in ("function_call", "message")]
    echoed = [{k: v for k, v in item.items() if k != "status"} for item in echoed]
    return request.replace(prompt=tuple([*conversation(request), *echoed, *outputs]), history=(), images=())


def conversation(request: Request) -> list[dict[str, Any]]:
    """The turns a request sends, in its endpoint's shape, without the system prompt (which
    `request_body` adds from `request.system`)."""
    if isinstance(request.prompt, tuple):
        return [dict(turn) for turn in request.prompt]
    return [*request.history, user_message(request.user_content(), request.endpoint)]


def assistant_turn(response: Response) -> dict[str, Any]:
    """The chat assistant message that asked for tools, to echo back before the results."""
    choices = (response.raw or {}).get("choices") or [{}]
    message = choices[0].get("message") or {} if isinstance(choices[0], dict) else {}
    turn: dict[str, Any] = {"role": "assistant", "content": response.text or None}
    turn["tool_calls"] = [{"id": call.id, "type": "function",
                           "function": {"name": call.name, "arguments": call.arguments or "{}"}}
                          for call in response.tool_calls]
    if message.get("reasoning_details"):  # echoed unchanged in later turns (PROTOCOL §1)
        turn["reasoning_details"] = message["reasoning_details"]
    return turn


def _put(body: dict[str, Any], **fields: object) -> None:
    body.update({name: value for name, value in fields.items() if value is not None})


def format_system(system: str | None, output_format: str) -> str | None:
    """The system prompt with the output format's instruction added (None: no system prompt)."""
    instruction = FORMAT_INSTRUCTIONS.get(output_format)
    if not instruction:
        return system or None
    return f"{system}\n\n{instruction}" if system else instruction


def format_fields(output_format: str, schema: Mapping[str, Any] | None, schema_name: str,
                  endpoint: str) -> dict[str, Any]:
    """The body fields an output format needs: JSON mode, or structured output against a schema."""
    if output_format != "json":
        return {}
    if schema is None:
        fmt: dict[str, Any] = {"type": "json_object"}
        return {"response_format": fmt} if endpoint == "chat" else {"text": {"format": fmt}}
    if endpoint == "chat":
        return {"response_format": {"type": "json_schema", "json_schema": {
            "name": schema_name, "schema": dict(schema), "strict": True}}}
    return {"text": {"format": {"type": "json_schema", "name": schema_name, "schema": dict(schema), "strict": True}}}


def user_message(content: str | list[dict[str, Any]], endpoint: str) -> dict[str, Any]:
    """A user message for chat `messages` or responses `input`; content parts converted to the endpoint."""
    if isinstance(content, list):
        content = convert_content(content, endpoint)
    return {"role": "user", "content": content}


def convert_content(parts: Iterable[dict[str, Any]], endpoint: str) -> list[dict[str, Any]]:
    """Content parts in the endpoint's shape (chat `text` / `image_url`, responses `input_text` / `input_image`)."""
    converted = []
    for part in parts:
        kind = part.get("type")
        if endpoint == "responses" and kind == "text":
            part = {"type": "input_text", "text": part["text"]}
        elif endpoint == "responses" and kind == "image_url":
            part = {"type": "input_image", "image_url": part["image_url"]["url"]}
        elif endpoint == "chat" and kind == "input_text":
            part = {"type": "text", "text": part["text"]}
        elif endpoint == "chat" and kind == "input_image":
            part = {"type": "image_url", "image_url": {"url": part["image_url"]}}
        converted.append(part)
    return converted


# -- failures and retries ------------------------------------------------------------------------------
class Failure(NamedTuple):
    """An attempt that failed: the error to raise, whether another attempt may help, and the server's
    wish for the delay (seconds, or None)."""

    error: AihubmixError
    retryable: bool
    retry_after: float | None = None


def status_failure(
    status: int,
    headers: Mapping[str, str],
    content: bytes,
    *,
    base_url: str,
    path: str,
    model: str,
    redactor: Redactor,
    suggest: Callable[[str], list[str]] | None = None,
) -> Failure:
    """An HTTP error answer: our error (the server's message quoted, the key masked) and the retry rule.
    `suggest(model)` gives close model ids for an unknown model (the driver may look them up)."""
    retryable = status in RETRY_STATUSES
    should_retry = headers.get("x-should-retry")
    if should_retry in ("true", "false"):
        retryable = should_retry == "true"
    error = status_error(status, content, base_url=base_url, path=path, model=model, redactor=redactor,
                         suggest=suggest)
    if isinstance(error, ModelNotFoundError) and should_retry != "true":
        retryable = False  # a 503 that names an unknown model: it stays unknown, do not wait
    return Failure(error, retryable, _retry_after(headers))


def status_error(status: int, content: bytes, *, base_url: str, path: str, model: str, redactor: Redactor,
                 suggest: Callable[[str], list[str]] | None = None) -> APIStatusError:
    from .types import error_message, quote

    text = redactor.redact(content).decode("utf-8", "replace")
    try:
        body: object = json.loads(text)
    except ValueError:
        body = None
    server_message = ""
    if isinstance(body, dict):
        server_message = error_message(body.get("error", body), default="")
    if not server_message:
        server_message = quote(text) if text.strip() else _phrase(status)
    server_message = redactor.scrub(server_message)
    said = f"(server said: {server_message})"
    kwargs: dict[str, Any] = {"status_code": status, "body": body if body is not None else text[:2000],
                              "server_message": server_message}
    if status in (400, 404, 503) and _MODEL_ERROR.search(server_message):
        suggestions = suggest(model) if suggest is not None else []
        hint = f" Did you mean: {', '.join(suggestions)}?" if suggestions else ""
        return ModelNotFoundError(
            f"Unknown model {model!r} (HTTP {status}): this key cannot use it or it does not exist.{hint} "
            f"See `%aihubmix models`. {said}",
            model=model, suggestions=suggestions, **kwargs,
        )
    if status == 401:
        return AuthenticationError(
            f"401 Unauthorized from {base_url}: the API key was rejected; set a valid one with "
            f"`%aihubmix key`. {said}", **kwargs)
    if status == 403:
        if "quota" in server_message.lower():
            return PermissionDeniedError(
                f"403 Forbidden: the account's quota is used up (insufficient_user_quota); top up on "
                f"aihubmix.com. {said}", **kwargs)
        return PermissionDeniedError(
            f"403 Forbidden: this key may not use {model or 'this endpoint'}, or the account or IP is "
            f"not allowed. {said}", **kwargs)
    if status == 429:
        return RateLimitError(f"429 Too Many Requests for {model or base_url}: wait and try again. {said}", **kwargs)
    if status >= 500:
        return InternalServerError(f"HTTP {status} from {base_url}: the server or the upstream model "
                                   f"failed. {said}", **kwargs)
    if status == 400:
        if _SEARCH_ERROR.search(server_message):  # --web on a model that has no hosted search
            return BadRequestError(f"400 Bad Request: {model or 'this model'} refused web search (--web); "
                                   f"some models need their -search variant. (server said: {server_message})",
                                   **kwargs)
        return BadRequestError(f"400 Bad Request: {server_message}", **kwargs)
    if status == 404:
        return NotFoundError(f"404 Not Found at {path}: {server_message}", **kwargs)
    return APIStatusError(f"HTTP {status} from {base_url}: {server_message}", **kwargs)


def _phrase(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


_MODEL_ERROR = re.compile(
    r"incorrect model|model[_ ]not[_ ]found|does not exist|unknown model|invalid model|no such model|"
    r"not (?:a )?(?:valid|supported) model|permission to use this model",
    re.IGNORECASE,
)


_SEARCH_ERROR = re.compile(r"web[_ ]?search", re.IGNORECASE)


def close_suggestions(model: str, ids: list[str]) -> list[str]:
    """Up to three known model ids close to `model`."""
    import difflib

    close = difflib.get_close_matches(model, ids, n=3, cutoff=0.5)
    if not close:
        lowered = difflib.get_close_matches(model.lower(), [i.lower() for i in ids], n=3, cutoff=0.3)
        close = [i for i in ids if i.lower() in lowered]
    return close


def transport_failure(exc: Exception, *, timeout: bool, phase: str, base_url: str, redactor: Redactor,
                      read_timeout: float | None = None) -> Failure:
    """A transport's exception as our error (`timeout`: the driver says it was a timeout). `phase`: "send"
    (no answer yet: retried), "read" (a non-streamed body broke off: not retried, it may be billed),
    "stream" (mid-stream: never retried) or "models"."""
    error: AihubmixError
    if phase == "send":
        if timeout:
            error = APITimeoutError(f"{base_url} did not answer in time ({type(exc).__name__}).")
        else:
            error = APIConnectionError(f"Cannot reach {base_url}: {redactor.scrub(exc) or type(exc).__name__}")
        return Failure(error, retryable=True)
    if phase == "stream":
        if timeout:
            error = APITimeoutError(f"The stream from {base_url} stalled: no data within the read timeout "
                                    f"({read_timeout:g} s).")
        else:
            error = APIConnectionError(f"The connection to {base_url} broke mid-stream ({type(exc).__name__}).")
        return Failure(error, retryable=False)
    what = "No model list" if phase == "models" else "No answer"
    if timeout:
        error = APITimeoutError(f"{what} from {base_url} within the read timeout.")
    else:
        error = APIConnectionError(f"The connection to {base_url} broke: {redactor.scrub(exc)}")
    return Failure(error, retryable=False)


def retry_delay(failure: Failure, retries_taken: int, max_retries: int) -> float | None:
    """Seconds to wait before the next attempt, or None: raise `failure.error`."""
    if not failure.retryable or retries_taken >= max_retries:
        return None
    return failure.retry_after if failure.retry_after is not None else _backoff(retries_taken)


def retry_reason(error: AihubmixError) -> str:
    """A few words for the "retrying in N s (…)" note."""
    if isinstance(error, APIStatusError):
        message = error.server_message
        if message.lstrip().startswith("<"):  # an HTML error page: its tags would render in the cell's note
            message = _phrase(error.status_code)
        return f"{error.status_code} {message}"[:80].rstrip()
    if isinstance(error, APITimeoutError):
        return "timed out"
    if isinstance(error, APIConnectionError):
        return "cannot connect"
    return type(error).__name__


def retry_after(headers: Mapping[str, str], wall_now: float) -> float | None:
    """Seconds the server asks to wait (`retry-after-ms`, else `retry-after`: seconds or an HTTP date), if
    positive; `wall_now` is `time.time()` (for a date)."""
    value = headers.get("retry-after-ms")
    if value is not None:
        try:
            delay = float(value) / 1000
        except ValueError:
            delay = math.nan
        if delay > 0:
            return delay
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        delay = float(value)
    except ValueError:
        try:
            import email.utils  # only for a date: not at %load_ext

            delay = email.utils.parsedate_to_datetime(value).timestamp() - wall_now
        except (TypeError, ValueError):
            return None
    return delay if delay > 0 else None


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """The server's wish, if it is within (0, 60] seconds; else None (use backoff). A batch reads the same
    headers without the cap (`retry_after`)."""
    delay = retry_after(headers, time.time())
    if delay is not None and delay <= MAX_RETRY_AFTER:
        return delay
    return None


def _backoff(retries_taken: int) -> float:
    import random

    return min(0.5 * 2**retries_taken, 8.0) * (1 - 0.25 * random.random())


# -- answers -------------------------------------------------------------------------------------------
def parse_json(content: bytes, content_type: str, *, base_url: str, redactor: Redactor) -> object:
    """A 2xx body as JSON (the key masked), or APIResponseError quoting what came instead."""
    from .types import quote

    content = redactor.redact(content)
    try:
        return json.loads(content)
    except ValueError:
        kind = content_type or "no content type"
        text = content.decode("utf-8", "replace")
        if "html" in kind.lower() or text.lstrip()[:1] == "<":  # a proxy, firewall or sign-in page
            what = f"{base_url} answered with an HTML page, not JSON (is a proxy or a sign-in page in the way?)"
        else:
            what = f"The server's answer is not JSON ({kind})"
        raise APIResponseError(f"{what}: {quote(redactor.scrub(text))}", body=content[:2000]) from None


def complete(response: Response, body_json: object) -> Response:
    """Fill a non-streamed Response from the server's final JSON (APIResponseError if it is not an answer)."""
    from .types import check_body

    response._set_final(check_body(response.endpoint, body_json))
    response.time_to_first_token = response.elapsed = time.perf_counter() - response._started
    if response._on_done is not None:
        response._on_done(response)
    return response


def response_from_json(spec: Request | None, body: dict[str, Any], raw: dict[str, Any], *,
                       endpoint: str | None = None, cached: bool = False) -> Response:
    """A complete Response for a request (`spec`, and the `body` sent) from the final JSON `raw`: a
    non-streamed answer, or one rebuilt from the response cache (`cached`)."""
    from .response import Response

    response = Response(endpoint=endpoint or (spec.endpoint if spec else "chat"), request=body,
                        stream=body.get("stream") is True, spec=spec)
    if cached:
        response._set_final(raw)
        response.cached = True
        response.time_to_first_token = response.elapsed = time.perf_counter() - response._started
        return response
    return complete(response, raw)
