"""The request as the simulator reads it (its input, the functions it offers, web search, formats), and the
tool calls a tool model makes."""

from __future__ import annotations

import json
import random
import re
import uuid
import zlib
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    pass

from .data import _DEFAULT_NUMBERS, _REASONING_MODELS, _TOOL_ARGUMENT_PIECES
from .reading import _json_value, _parse_prompt, _sentence_split, _tokenize, _words_of

# --- reading a request -----------------------------------------------------------------------------


class _Input(NamedTuple):
    """What the answer is made from: the prompt, the size of all input text and the image count."""

    prompt: str
    words: int
    images: int
    has_tool_result: bool
    system: str = ""  # the system / developer messages and the instructions, joined
    tool_results: tuple[str, ...] = ()  # the tool results that end the conversation (the model's turn now)


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
    system = [extra_text] if extra_text else []
    results: list[str] = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        if item.get("role") == "tool" or item.get("type") == "function_call_output":
            has_tool_result = True
            output = item.get("content", item.get("output"))
            results.append(output if isinstance(output, str) else json.dumps(output))
        elif item.get("type") != "function_call" and item.get("role") != "assistant":
            results = []
        text, count = _content_text(item.get("content", item.get("output")))
        words += len(text.split())
        images += count
        if item.get("role") == "user":
            prompt = text
        elif item.get("role") in ("system", "developer"):
            system.append(text)
    return _Input(prompt, max(1, words), images, has_tool_result, "\n\n".join(system), tuple(results))


def _offered_functions(endpoint: str, body: dict) -> list[tuple[str, dict]]:
    """The functions a request offers: (name, parameters schema), in order."""
    functions = []
    tools = body.get("tools")
    for tool in tools if isinstance(tools, list) else []:
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            continue
        inner = tool.get("function")
        spec: dict = inner if isinstance(inner, dict) else tool
        if isinstance(spec.get("name"), str):
            functions.append((spec["name"], _dict(spec.get("parameters"))))
    return functions


def _function_description(body: dict, name: str) -> str:
    """The description (the docstring's summary) of the function `name` that a request offers."""
    tools = body.get("tools")
    for tool in tools if isinstance(tools, list) else []:
        spec = tool.get("function") if isinstance(tool, dict) and isinstance(tool.get("function"), dict) else tool
        if isinstance(spec, dict) and spec.get("name") == name and isinstance(spec.get("description"), str):
            return spec["description"]
    return ""


def _named_values(text: str, parameter: str | None = None) -> list[str]:
    """The values a description names for a parameter: quoted ('fruit' or 'vegetable'), or a bare list
    that is the whole description ("fruit, vegetable or herb."). With `parameter`, only the sentences that
    mention it count (a function's description speaks of all its parameters)."""
    if parameter is not None:
        sentences = [s for s in _sentence_split(text) if re.search(rf"\b{re.escape(parameter)}\b", s, re.I)]
        text = " ".join(sentences)
    pattern = r"(?<![\w'])'([^'\n]{1,40})'(?!\w)|\"([^\"\n]{1,40})\"|`([^`\n]{1,40})`"  # not "today's"
    quoted = list(dict.fromkeys(a or b or c for a, b, c in re.findall(pattern, text)))
    if len(quoted) >= 2:
        return quoted
    if parameter is None:
        bare = re.sub(r"(?i)^\s*(?:one of|either)\s*:?\s*", "", text).strip().rstrip(".")
        parts = [part.strip() for part in re.split(r",|/|\bor\b", bare) if part.strip()]
        if len(parts) >= 2 and all(re.fullmatch(r"[\w-]+", part) for part in parts):
            return parts
    return []


def _with_named_values(schema: dict, description: str) -> dict:
    """`schema` with an enum for each text parameter whose values the docstring names (its own line under
    Args:, or the function's description), so a demo call uses them rather than a made-up value; a schema's
    own enum (Literal, Enum) stays first."""
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return schema
    named = {}
    for name, spec in properties.items():
        if not isinstance(spec, dict) or spec.get("enum") or spec.get("type", "string") != "string":
            continue
        values = _named_values(str(spec.get("description", ""))) or _named_values(description, name)
        if values:
            named[name] = {**spec, "enum": values}
    return {**schema, "properties": {**properties, **named}} if named else schema


def _wants_web_search(endpoint: str, body: dict) -> bool:
    if endpoint == "chat":
        return isinstance(body.get("web_search_options"), dict)
    tools = body.get("tools")
    return isinstance(tools, list) and any(
        isinstance(t, dict) and t.get("type") in ("web_search", "web_search_preview") for t in tools)


_OTHER_VALUES = {"Paris": "London", "London": "Paris"}


def _other_value(value: Any) -> Any:
    """A second, different value of the same type (for a second call of the same tool)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, str):
        return _OTHER_VALUES.get(value, value + " 2")
    if isinstance(value, dict):
        return {key: _other_value(item) for key, item in value.items()}
    return value


def _argument_pieces(arguments: dict) -> tuple[str, ...]:
    """The arguments' JSON in pieces of 5 characters: keys, strings and numbers are split across chunks."""
    text = json.dumps(arguments, ensure_ascii=False)
    return tuple(text[i : i + 5] for i in range(0, len(text), 5)) or ("{}",)


def _tool_calls(fault: str, model: str, endpoint: str, body: dict, source: _Input) -> tuple[_Call, ...]:
    """The calls this answer makes (none: it answers in text)."""
    if fault == "tools":  # the fixed call of the original tool model
        return () if source.has_tool_result else (_Call("call_sim1", "get_weather", _TOOL_ARGUMENT_PIECES),)
    offered = _offered_functions(endpoint, body)
    if not offered or (fault not in ("", "tool-call", "parallel-tools", "tools-forever", "echo")
                       and fault not in _TIMING_FAULTS):
        return ()
    if source.tool_results and fault != "tools-forever":
        return ()  # the results are in: answer with them
    ask = _parse_prompt(source.prompt, source.system)
    rng = random.Random(zlib.crc32(f"{model}\n{source.prompt}".encode()))

    def arguments(schema: dict) -> dict:
        value = _json_value(rng, {"type": "object", **schema}, ask, "arguments")
        return value if isinstance(value, dict) else {}

    prefix = uuid.uuid4().hex[:8]
    chosen = offered[:1]
    if fault == "parallel-tools":
        chosen = offered if len(offered) > 1 else offered * 2
    calls: list[_Call] = []
    seen: dict[str, dict] = {}
    for number, (name, schema) in enumerate(chosen):
        values = arguments(_with_named_values(schema, _function_description(body, name)))
        if name in seen:
            values = _other_value(seen[name])
        seen[name] = values
        calls.append(_Call(f"call_{prefix}{number}", name, _argument_pieces(values)))
    return tuple(calls)


_TIMING_FAULTS = ("slow", "tps", "latency")


def _tool_answer(model: str, results: tuple[str, ...]) -> tuple[str, ...]:
    """The answer once the tool results are in: it says what they were."""
    several = any("\n" in result for result in results)  # a table: each result a paragraph of its own
    head = "The tool returned:" if len(results) == 1 else "The tools returned:"
    said = head + ("".join(f"\n\n{result}" for result in results) if several else " " + "; ".join(results))
    return tuple(_tokenize(f"*Simulated answer from {model}.* {said}"))


def _sources(prompt: str) -> tuple[str, tuple[dict, ...]]:
    """The sentence a web-search answer ends with, and its two url_citation annotations (flat form)."""
    slug = "-".join(_words_of(prompt)[:4]) or "search"
    sources = ((f"https://example.org/articles/{slug}", f"Example article on {slug.replace('-', ' ')}"),
               (f"https://example.com/{slug}/facts", "Example facts page"))
    sentence, annotations = " Sources:", []
    for number, (url, title) in enumerate(sources, start=1):
        label = f" [{number}]"
        start = len(sentence) + 1
        sentence += label
        annotations.append({"type": "url_citation", "url": url, "title": title, "start_index": start,
                            "end_index": start + len(label) - 1})
    return sentence + ".", tuple(annotations)


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


class _Call(NamedTuple):
    """A function call an answer makes: its id, the function's name and the arguments' JSON in pieces."""

    id: str
    name: str
    pieces: tuple[str, ...]

    @property
    def arguments(self) -> str:
        return "".join(self.pieces)
