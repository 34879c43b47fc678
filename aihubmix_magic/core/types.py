"""Value types and the final-JSON parser: Usage, ToolCall, and what a finished answer's JSON says.

No I/O and no imports of our other modules but the errors: the accumulators (`_streams`), the Response
(`_response`) and the protocol core (`_protocol`) all read from here, so nothing imports in a circle.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from .exceptions import APIResponseError

__all__ = [
    "FENCE",
    "Citation",
    "Step",
    "ToolCall",
    "ToolRun",
    "Usage",
    "check_body",
    "code_blocks",
    "dataframe_markdown",
    "content_text",
    "error_message",
    "fields_from_raw",
    "links_in_text",
    "first_code_block",
    "quote",
    "text_field",
]

# a Markdown code fence at the start of a line (CommonMark: at most three spaces of indentation)
FENCE = re.compile(r"^[ ]{0,3}(`{3,}|~{3,})", re.MULTILINE)
_FENCED = re.compile(r"^[ ]{0,3}(`{3,}|~{3,})[ \t]*([^\n`]*)\n(.*?)^[ ]{0,3}\1[ \t]*$", re.MULTILINE | re.DOTALL)
_OPEN_FENCE = re.compile(r"^[ ]{0,3}(`{3,}|~{3,})[ \t]*([^\n`]*)\n(.*)\Z", re.MULTILINE | re.DOTALL)


def code_blocks(text: str) -> list[tuple[str, str]]:
    """(language, code) of every closed fenced block, in order."""
    return [(match.group(2).strip().split(" ")[0], match.group(3).rstrip("\n")) for match in _FENCED.finditer(text)]


def first_code_block(text: str) -> tuple[str, str] | None:
    """(language, code) of the first fenced block; an unclosed one runs to the end. None if there is none."""
    match = _FENCED.search(text) or _OPEN_FENCE.search(text)
    if match is None:
        return None
    return match.group(2).strip().split(" ")[0], match.group(3).rstrip("\n")


def content_text(content: object) -> str:
    """The text of a message's content: a string, or the text parts of a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(part.get("text", "")) for part in content
                         if isinstance(part, dict) and part.get("type") in ("text", "input_text"))
    return ""


def quote(text: str, limit: int = 200) -> str:
    """`text` on one line, cut at `limit` characters (for quoting a server's words in a message)."""
    text = " ".join(text.split())
    return text[:limit] + ("…" if len(text) > limit else "")


def text_field(value: object) -> str:
    """A text field of an event or answer: a str, or None for none. Anything else is a malformed event
    (the Response turns the TypeError into an APIResponseError)."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise TypeError(f"expected text, got {type(value).__name__}")
    return value


def error_message(error: object, default: str = "unknown error") -> str:
    """A server's error object (`{"message", "code", "type"}`, or a string) as one line, code included;
    `default` when it says nothing."""
    if isinstance(error, dict):
        message = str(error.get("message") or error.get("code") or error.get("type") or "")
        code = error.get("code")
        if code and str(code) not in message:
            message = f"{message} ({code})" if message else str(code)
    else:
        message = str(error)
    return " ".join(message.split()) or default


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts with the same names for both endpoints (chat's prompt/completion are mapped)."""

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    reasoning_tokens: int = 0
    cached_tokens: int = 0

    @classmethod
    def from_json(cls, usage: dict[str, Any] | None) -> Usage | None:
        if not usage:
            return None
        details_in = usage.get("prompt_tokens_details") or usage.get("input_tokens_details") or {}
        details_out = usage.get("completion_tokens_details") or usage.get("output_tokens_details") or {}
        input_tokens = _int(usage.get("prompt_tokens", usage.get("input_tokens")))
        output_tokens = _int(usage.get("completion_tokens", usage.get("output_tokens")))
        return cls(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            total_tokens=_int(usage.get("total_tokens")) or input_tokens + output_tokens,
            reasoning_tokens=_int(details_out.get("reasoning_tokens")),
            cached_tokens=_int(details_in.get("cached_tokens")),
        )

    def __add__(self, other: Usage) -> Usage:
        return Usage(*(a + b for a, b in zip(_fields(self), _fields(other), strict=True)))


def _fields(usage: Usage) -> tuple[int, ...]:
    return (usage.input_tokens, usage.output_tokens, usage.total_tokens, usage.reasoning_tokens,
            usage.cached_tokens)


def _int(value: object) -> int:
    return value if isinstance(value, int) else 0


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A function call the model asked for; `arguments` is the JSON text as sent."""

    id: str
    name: str
    arguments: str

    def parsed_arguments(self) -> Any:
        return json.loads(self.arguments or "{}")


@dataclass(slots=True)
class ToolRun:
    """One tool call as it went: the function's name and arguments (the key masked), whether the user
    approved it, its result (as sent back to the model) or its error, and how long it took."""

    id: str
    name: str
    arguments: dict[str, Any]
    arguments_text: str = ""
    approved: bool = False
    result: str | None = None
    error: str | None = None
    elapsed: float = 0.0
    note: str | None = None  # why a call was skipped without asking (no one to ask, the approval failed)

    @property
    def output(self) -> str:
        """What went back to the model: the result, or the error's one line."""
        if self.error is not None:
            return f"Error: {self.error}"
        return self.result if self.result is not None else ""

    def signature(self) -> str:
        """`get_weather(city='Paris')`: the call as Python would write it."""
        shown = ", ".join(f"{name}={value!r}" for name, value in self.arguments.items())
        return f"{self.name}({shown})"

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "arguments": self.arguments, "approved": self.approved,
                "result": self.result, "error": self.error, "elapsed": round(self.elapsed, 4),
                **({"note": self.note} if self.note else {})}


@dataclass(slots=True)
class Step:
    """One step of a tool loop: the model's answer that asked for tools (`response`, a Response), and the
    calls it asked for, in order (`calls`)."""

    number: int
    response: Any
    calls: list[ToolRun] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        usage = getattr(self.response, "usage", None)
        return {"step": self.number, "response_id": getattr(self.response, "id", None),
                "usage": None if usage is None else {"input_tokens": usage.input_tokens,
                                                     "output_tokens": usage.output_tokens},
                "calls": [call.to_dict() for call in self.calls]}


@dataclass(frozen=True, slots=True)
class Citation:
    """A source the answer cites (web search): its URL and title."""

    url: str
    title: str = ""


_LINK = re.compile(r"\[([^\]\n]{1,200})\]\((https?://[^\s)]+)\)|(?<![(\[<])\b(https?://[^\s)>\]]+)")


def links_in_text(text: str) -> list[Citation]:
    """The links in an answer's text (Markdown links and bare URLs), each once, in order."""
    found: dict[str, Citation] = {}
    for match in _LINK.finditer(text):
        url = (match.group(2) or match.group(3) or "").rstrip(".,;:")
        if url and url not in found:
            found[url] = Citation(url, match.group(1) or "")
    return list(found.values())


def _citations(annotations: object) -> list[Citation]:
    found = []
    for annotation in annotations if isinstance(annotations, list) else ():
        if not isinstance(annotation, dict) or annotation.get("type") != "url_citation":
            continue
        nested = annotation.get("url_citation")
        inner: dict[str, Any] = nested if isinstance(nested, dict) else annotation
        url = inner.get("url")
        if isinstance(url, str) and url:
            found.append(Citation(url, str(inner.get("title") or "")))
    return found


def _unique(citations: list[Citation]) -> list[Citation]:
    seen: dict[str, Citation] = {}
    for citation in citations:
        seen.setdefault(citation.url, citation)
    return list(seen.values())


# -- final JSON -> Response fields ---------------------------------------------------------------------
def fields_from_raw(endpoint: str, raw: dict[str, Any]) -> dict[str, Any]:
    """Read a final chat.completion or response object (already checked by `check_body`)."""
    if endpoint == "chat":
        choice = (raw.get("choices") or [{}])[0] or {}
        message = choice.get("message") or {}
        finish_reason = text_field(choice.get("finish_reason")) or None
        text = message.get("content") or message.get("refusal") or ""
        if isinstance(text, list):  # some gateways send content parts
            text = "".join(text_field(part.get("text")) for part in text if isinstance(part, dict))
        text = text_field(text)
        tool_calls = [
            ToolCall(text_field(call.get("id")), text_field((call.get("function") or {}).get("name")),
                     text_field((call.get("function") or {}).get("arguments")))
            for call in message.get("tool_calls") or ()
        ]
        status = "incomplete" if finish_reason in ("length", "content_filter") else "completed"
        return {
            "citations": _unique(_citations(message.get("annotations"))),
            "id": text_field(raw.get("id")) or None,
            "model": text_field(raw.get("model")),
            "text": text,
            "reasoning": text_field(message.get("reasoning_content")),
            "tool_calls": tool_calls,
            "finish_reason": finish_reason,
            "status": status,
            "usage": Usage.from_json(raw.get("usage")),
            "error": None,
        }
    texts, reasoning, tool_calls = [], [], []
    citations: list[Citation] = []
    for item in raw.get("output") or ():
        kind = item.get("type")
        if kind == "message":
            for part in item.get("content") or ():
                if part.get("type") == "output_text":
                    texts.append(text_field(part.get("text")))
                    citations += _citations(part.get("annotations"))
                elif part.get("type") == "refusal":
                    texts.append(text_field(part.get("refusal")))
        elif kind == "reasoning":
            summary = [text_field(s.get("text")) for s in item.get("summary") or ()]
            summary += [text_field(c.get("text")) for c in item.get("content") or () if isinstance(c, dict)]
            reasoning.append("\n\n".join(s for s in summary if s))
        elif kind == "function_call":
            tool_calls.append(ToolCall(text_field(item.get("call_id") or item.get("id")), text_field(item.get("name")),
                                       text_field(item.get("arguments"))))
    status = text_field(raw.get("status")) or "completed"
    if status not in ("completed", "incomplete", "failed", "cancelled", "in_progress"):
        status = "completed" if status == "queued" else status
    reason = (raw.get("incomplete_details") or {}).get("reason")
    if status == "incomplete":
        finish_reason = "length" if reason in (None, "max_output_tokens") else reason
    elif tool_calls:
        finish_reason = "tool_calls"
    elif status == "completed":
        finish_reason = "stop"
    else:
        finish_reason = None
    error = None
    if raw.get("error"):
        error = APIResponseError(f"The response failed: {error_message(raw['error'])}", body=raw)
    return {
        "citations": _unique(citations),
        "id": text_field(raw.get("id")) or None,
        "model": text_field(raw.get("model")),
        "text": "".join(texts),
        "reasoning": "\n\n".join(r for r in reasoning if r),
        "tool_calls": tool_calls,
        "finish_reason": finish_reason,
        "status": status,
        "usage": Usage.from_json(raw.get("usage")),
        "error": error,
    }


def check_body(endpoint: str, body: object) -> dict[str, Any]:
    """A 2xx body must be an answer: an `error` key or a missing `choices`/`output` is an error."""
    if not isinstance(body, dict):
        raise APIResponseError("The server's answer is not a JSON object.", body=body)
    if body.get("error") and (endpoint == "chat" or body.get("status") != "failed"):
        raise APIResponseError(f"The server returned an error: {error_message(body['error'])}", body=body)
    key = "choices" if endpoint == "chat" else "output"
    if not isinstance(body.get(key), list) or (endpoint == "chat" and not body[key]):
        raise APIResponseError(
            f"The server's answer has no {key} (got {key}={body.get(key)!r}); the upstream model may have failed.",
            body=body,
        )
    return body


def dataframe_markdown(frame: Any, max_rows: int = 20) -> str:
    """A DataFrame as a Markdown table: the index first, at most `max_rows` rows, then "… N more rows"."""
    def cell(value: object) -> str:
        return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")

    index_name = " / ".join(str(n) for n in frame.index.names if n is not None)
    header = [index_name] + [cell(c) for c in frame.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    shown = frame.head(max(0, max_rows))
    for label, row in zip(shown.index, shown.itertuples(index=False, name=None), strict=True):
        lines.append("| " + " | ".join([cell(label), *(cell(v) for v in row)]) + " |")
    hidden = len(frame) - len(shown)
    if hidden > 0:
        lines.append(f"\n… {hidden:,} more row{'s' if hidden != 1 else ''} ({len(frame):,} in all)")
    return "\n".join(lines)
