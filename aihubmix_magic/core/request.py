"""The typed request: what one call asks for, built once and validated before anything is sent.

A `Request` comes from a cell's options over the settings (`Request.from_settings`), or from the
arguments of `Client.chat` / `Client.respond` / `batch()`. The protocol core (`_protocol.request_body`)
turns it into the JSON body of either endpoint; every `Response` keeps the Request it answered
(`Response.spec`) next to the body that was sent (`Response.request`), and export rebuilds the
`%%aihubmix` line from it. It never holds the API key.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .exceptions import InvalidRequestError
from .types import content_text

__all__ = ["DEFAULT_THREAD", "ENDPOINTS", "FORMATS", "FORMAT_INSTRUCTIONS", "REASONING_EFFORTS", "Request",
           "check_extra_body"]

ENDPOINTS = ("chat", "responses")
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")
FORMATS = ("markdown", "text", "code", "json", "html", "math")
# the instruction each output format adds to the system prompt (markdown adds none)
FORMAT_INSTRUCTIONS = {
    "text": "Answer in plain text, without Markdown formatting.",
    "code": "Answer with the code in a single fenced code block.",
    "json": "Answer with a single JSON object only.",
    "html": "Answer with an HTML fragment only: no Markdown, no <html>, <head> or <body>.",
    "math": "Write mathematics in LaTeX: $...$ inline and $$...$$ for displayed equations.",
}
DEFAULT_THREAD = "default"  # the conversation `-c` continues

# the settings a Request takes its defaults from
SETTING_FIELDS = ("model", "endpoint", "system", "temperature", "top_p", "max_tokens", "reasoning_effort", "stream")

Message = dict[str, Any]
_NO_EXTRA: Mapping[str, Any] = MappingProxyType({})


def check_extra_body(caller: str, extra_body: Any, unknown: Mapping[str, object]) -> dict[str, Any]:
    """The body fields given as `extra_body={...}`, as a new dict. A keyword the caller does not know is a
    TypeError that names it (the SDK's `extra_body` is the one way to send any other field): it is never
    sent silently as a body field."""
    if unknown:
        name = next(iter(unknown))
        raise TypeError(f"{caller} got an unexpected keyword argument {name!r}: a request body field goes in "
                        f"extra_body={{{name!r}: ...}}.")
    if extra_body is None:
        return {}
    if not isinstance(extra_body, Mapping) or not all(isinstance(key, str) for key in extra_body):
        raise TypeError(f"{caller}: extra_body must be a dict of body fields, not {type(extra_body).__name__}.")
    return dict(extra_body)


@dataclass(frozen=True, slots=True)  # slots: a batch holds one per item
class Request:
    """One call: the model, the endpoint, what is asked and how.

    `prompt` is the new user turn as text, or a whole list of chat messages / responses input items given
    by the caller. `images` are image URLs (http(s) or data URLs) sent with a text prompt; `history` the
    earlier turns of a conversation thread, in the endpoint's shape; `thread` that thread's name (None: the
    cell stands alone). `format` and `schema` ask for an output format (`-f`, `--schema`); `extra` holds
    any other body field, sent as given. `tools` are the functions the model may call: `Tool` objects
    (a Python callable given here is described into one) or JSON tool definitions (dicts, sent as they
    are); `web_search` adds the hosted web-search tool (`--web`).
    """

    model: str
    prompt: str | tuple[Message, ...]
    endpoint: str = "chat"
    system: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    reasoning_effort: str | None = None
    stream: bool = False
    format: str = "markdown"
    schema: Mapping[str, Any] | None = None
    schema_name: str = "answer"
    images: tuple[str, ...] = ()
    history: tuple[Message, ...] = ()
    thread: str | None = None
    store: bool = False
    previous_response_id: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    tools: tuple[Any, ...] = ()
    web_search: bool = False
    max_steps: int | None = None  # the tool loop's limit of steps (--max-steps): not sent, kept for export

    def __post_init__(self) -> None:
        if isinstance(self.prompt, list):  # a list of messages is kept as a tuple (the request is frozen)
            object.__setattr__(self, "prompt", tuple(self.prompt))
        object.__setattr__(self, "images", tuple(self.images))
        object.__setattr__(self, "history", tuple(self.history))
        extra = {k: v for k, v in dict(self.extra).items() if v is not None}
        object.__setattr__(self, "extra", extra or _NO_EXTRA)  # one empty mapping for the 100,000 items of a batch
        if self.tools:
            if isinstance(self.tools, (str, bytes, dict)) or callable(self.tools):
                raise InvalidRequestError("tools", "give a list of functions (or tool definitions)")
            from .tools import describe_tools  # loaded only when a request has tools

            object.__setattr__(self, "tools", describe_tools(self.tools))
        else:
            object.__setattr__(self, "tools", ())
        self._validate()

    # -- building ----------------------------------------------------------------------------------------
    @classmethod
    def from_settings(cls, settings: Any, **fields: Any) -> Request:
        """The settings as defaults (any object with the `SETTING_FIELDS` attributes, such as
        `aihubmix_magic.settings`), overridden by every field given that is not None."""
        values: dict[str, Any] = {name: getattr(settings, name) for name in SETTING_FIELDS}
        values["system"] = values["system"] or None
        values.update({name: value for name, value in fields.items() if value is not None})
        return cls(**values)

    def replace(self, **changes: Any) -> Request:
        """A copy with `changes` (validated again)."""
        return dataclasses.replace(self, **changes)

    def with_prompt(self, prompt: str) -> Request:
        """A copy asking the text `prompt` instead. Only the prompt is checked: the rest was checked in
        this request (a batch builds its 100,000 items from one checked request, at a third of the cost)."""
        if not isinstance(self.prompt, str) or not isinstance(prompt, str):
            return self.replace(prompt=prompt)
        if not prompt.strip():
            raise InvalidRequestError("prompt", "the prompt is empty")
        copy = object.__new__(Request)
        for name in _FIELDS:
            object.__setattr__(copy, name, getattr(self, name))
        object.__setattr__(copy, "prompt", prompt)
        return copy

    # -- reading -----------------------------------------------------------------------------------------
    @property
    def text(self) -> str:
        """The text of the new user turn (what a cell's body held)."""
        if isinstance(self.prompt, str):
            return self.prompt
        for message in reversed(self.prompt):
            if message.get("role", "user") == "user" and message.get("type", "message") == "message":
                return content_text(message.get("content"))
        return ""

    def user_content(self) -> str | list[dict[str, Any]]:
        """The new user turn in chat's shape: the text, or content parts (the text, then one per image)."""
        if isinstance(self.prompt, tuple):
            raise TypeError("a request given as messages has no single user turn")
        if not self.images:
            return self.prompt
        return [{"type": "text", "text": self.prompt},
                *({"type": "image_url", "image_url": {"url": url}} for url in self.images)]

    @property
    def continued(self) -> bool:
        """Whether earlier turns go with it (a `-c` / `--thread` conversation past its first exchange)."""
        return bool(self.history) or self.previous_response_id is not None

    def __repr__(self) -> str:
        text = self.text
        preview = text[:40].replace("\n", " ") + ("…" if len(text) > 40 else "")
        return f"<Request {self.endpoint} model={self.model!r} prompt={preview!r}>"

    # -- validation ----------------------------------------------------------------------------------------
    def _validate(self) -> None:
        if not isinstance(self.model, str) or not self.model.strip():
            raise InvalidRequestError("model", f"no model given ({self.model!r})")
        if self.endpoint not in ENDPOINTS:
            raise InvalidRequestError("endpoint", f"{self.endpoint!r} is not one of {', '.join(ENDPOINTS)}")
        if isinstance(self.prompt, str):
            if not self.prompt.strip():
                raise InvalidRequestError("prompt", "the prompt is empty")
        elif not self.prompt or not all(isinstance(message, dict) for message in self.prompt):
            raise InvalidRequestError("prompt", "give a prompt string or a non-empty list of message dicts")
        elif self.images:
            raise InvalidRequestError("images", "images go with a text prompt, not with a list of messages")
        _check_range("temperature", self.temperature, 0.0, 2.0)
        _check_range("top_p", self.top_p, 0.0, 1.0)
        if self.max_tokens is not None and (isinstance(self.max_tokens, bool) or not isinstance(self.max_tokens, int)
                                            or self.max_tokens < 1):
            raise InvalidRequestError("max_tokens", f"max_tokens must be a positive whole number, not {self.max_tokens}")
        if self.reasoning_effort is not None and self.reasoning_effort not in REASONING_EFFORTS:
            raise InvalidRequestError("reasoning_effort", f"{self.reasoning_effort!r} is not one of "
                               f"{', '.join(REASONING_EFFORTS)}")
        if self.format not in FORMATS:
            raise InvalidRequestError("format", f"{self.format!r} is not one of {', '.join(FORMATS)}")
        if self.schema is not None:
            if self.format != "json":
                raise InvalidRequestError("schema", f"a schema goes with format json, not {self.format}")
            if not isinstance(self.schema, Mapping) or self.schema.get("type", "object") != "object":
                raise InvalidRequestError("schema", "the schema must describe an object (type: object)")
        if self.store and self.endpoint != "responses" or self.previous_response_id and self.endpoint != "responses":
            raise InvalidRequestError("store", "works with the responses endpoint only")
        if self.max_steps is not None and (isinstance(self.max_steps, bool) or not isinstance(self.max_steps, int)
                                           or self.max_steps < 1):
            raise InvalidRequestError("max_steps", f"max_steps must be 1 or more, not {self.max_steps!r}")
        if not isinstance(self.web_search, bool):
            raise InvalidRequestError("web_search", f"web_search must be True or False, not {self.web_search!r}")
        if not isinstance(self.stream, bool):
            raise InvalidRequestError("stream", f"stream must be True or False, not {self.stream!r}")


_FIELDS = tuple(field.name for field in dataclasses.fields(Request))


def _check_range(name: str, value: float | None, low: float, high: float) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidRequestError(name, f"{name} must be a number, not {value!r}")
    if math.isnan(value) or not low <= value <= high:
        raise InvalidRequestError(name, f"{name} must be between {low:g} and {high:g}, not {value:g}")
