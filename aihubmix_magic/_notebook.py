"""Export answers as a notebook (nbformat v4) that reproduces them: `export_notebook(responses, path)`.

Each answer becomes one code cell: the `%%aihubmix` line with the options that produce the same request
(model, endpoint, system prompt, sampling, limits, format), the prompt below it, and as outputs what the
cell showed live (the reasoning, the answer as Markdown, the footer). The cell metadata
`metadata["aihubmix"]` holds the model, usage, timings and status. The key is never written: it is not in
a Response at all (`request` is the body sent, the key travels only in a header), and the notebook is
checked for it once more before it is written.

Imported lazily (it imports nbformat); no IPython or widget imports here.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import nbformat
from nbformat import v4

from ._display import _reasoning_block, footer_text
from ._response import Response

__all__ = ["build_notebook", "export_notebook", "magic_line", "prompt_of", "system_of"]

# the request fields a `%%aihubmix` option reproduces, and how it is spelled on the line
_OPTIONS = (
    ("temperature", "-t"),
    ("top_p", "--top-p"),
    ("max_tokens", "--max-tokens"),
    ("max_output_tokens", "--max-tokens"),
)
MAX_INLINE_IMAGE = 256 * 1024  # characters of a data URL written on the magic line; larger ones are left out
_BODY_FIELDS_SHOWN = ("model", "temperature", "top_p", "max_tokens", "max_output_tokens", "reasoning_effort",
                      "reasoning", "response_format", "text", "store", "tools", "tool_choice")


def export_notebook(responses: Iterable[Any], path: str | os.PathLike, *, title: str | None = None,
                    thread: str | None = None, api_key: str | None = None) -> Path:
    """Write `responses` (Response objects, e.g. `history()`; a Comparison counts as its responses) to
    `path` as a notebook that reproduces them when run. Returns the path written.

    `api_key` (default: the session's) is searched for in the result as a last guard: it is never in a
    Response, and if it ever were the export stops with ValueError instead of writing it.
    Raises ValueError for an empty list or a path that does not end in `.ipynb`, OSError if it can't write.
    """
    target = Path(os.fspath(path)).expanduser()
    if target.suffix != ".ipynb":
        raise ValueError(f"{os.fspath(path)!r} is not a notebook path: it must end in .ipynb")
    items = list(responses)
    if not items:
        raise ValueError("There are no answers to export yet: run a %%aihubmix cell first.")
    if not target.parent.is_dir():
        raise ValueError(f"The folder {str(target.parent)!r} does not exist.")
    nb = build_notebook(items, title=title, thread=thread)
    nbformat.validate(nb)
    text = nbformat.writes(nb)
    key = api_key if api_key is not None else _session_key()
    if key and key in text:  # cannot happen (the key is in no Response); refuse rather than leak it
        raise ValueError("The export would contain the API key; nothing was written.")
    target.write_text(text, encoding="utf-8")
    return target


def build_notebook(items: list, *, title: str | None = None, thread: str | None = None):
    """The notebook node for `items` (Response or Comparison objects), not yet written."""
    from . import __version__

    heading = title or (f"Thread `{thread}`" if thread else "Answers from aihubmix-magic")
    count = sum(len(_responses_of(item)) for item in items)
    intro = (f"# {heading}\n\nExported by aihubmix-magic {__version__}: {count} answer{'s' * (count != 1)}. "
             "Each code cell is the `%%aihubmix` cell that produced the answer below it; model, tokens and "
             "timings are in the cell metadata (`aihubmix`). Run the notebook to ask again (without a key, "
             "`%aihubmix demo auto` answers from the built-in simulator).")
    cells = [v4.new_markdown_cell(intro), v4.new_code_cell("%load_ext aihubmix_magic\n%aihubmix demo auto")]
    for number, item in enumerate(items, start=1):
        responses = _responses_of(item)
        if not responses:
            continue
        if len(responses) > 1 or _is_comparison(item):
            cells.append(_comparison_cell(responses, number))
        else:
            cells.append(_response_cell(responses[0], number, thread))
    nb = v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.metadata["aihubmix"] = {"version": __version__, "answers": count, **({"thread": thread} if thread else {})}
    return nb


# -- one cell ----------------------------------------------------------------------------------------------
def _response_cell(response: Response, number: int, thread: str | None):
    line = magic_line(response, continued=_continues(response), thread=thread)
    cell = v4.new_code_cell(f"{line}\n{prompt_of(response)}", execution_count=number)
    cell.outputs = _outputs(response)
    cell.metadata["aihubmix"] = _metadata(response)
    return cell


def _comparison_cell(responses: list[Response], number: int):
    first = responses[0]
    models = ",".join(r.model or str(r.request.get("model", "")) for r in responses)
    line = magic_line(first, model_option=f"--compare {models}")
    cell = v4.new_code_cell(f"{line}\n{prompt_of(first)}", execution_count=number)
    outputs = []
    for response in responses:
        outputs.append(_markdown_output(f"**{response.model}**"))
        outputs.extend(_outputs(response))
    cell.outputs = outputs
    cell.metadata["aihubmix"] = {"compare": [_metadata(r) for r in responses]}
    return cell


def _outputs(response: Response) -> list:
    outputs = []
    if response.reasoning:
        outputs.append(_markdown_output(_reasoning_block(response.reasoning, open_=False)))
    text = str(response)
    if text:
        outputs.append(v4.new_output("display_data", data={"text/markdown": text, "text/plain": text}))
    if response.error is not None and not text:
        message = f"{type(response.error).__name__}: {response.error}"
        outputs.append(v4.new_output("display_data", data={"text/markdown": f"**{message}**", "text/plain": message}))
    footer = footer_text(response)
    outputs.append(v4.new_output("display_data", data={"text/markdown": f"<sub>{footer}</sub>", "text/plain": footer}))
    return outputs


def _markdown_output(markdown: str):
    return v4.new_output("display_data", data={"text/markdown": markdown, "text/plain": markdown})


def _metadata(response: Response) -> dict:
    usage = response.usage
    request = response.request or {}
    meta: dict[str, Any] = {
        "model": response.model,
        "endpoint": response.endpoint,
        "id": response.id,
        "status": response.status,
        "finish_reason": response.finish_reason,
        "stream": response.stream,
        "cached": response.cached,
        "usage": None if usage is None else {
            "input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
            "total_tokens": usage.total_tokens, "reasoning_tokens": usage.reasoning_tokens,
            "cached_tokens": usage.cached_tokens,
        },
        "time_to_first_token": _seconds(response.time_to_first_token),
        "elapsed": _seconds(response.elapsed),
        "cost_usd_estimate": response.cost,  # from the model catalog's prices; None when unknown
        "request": {name: request[name] for name in _BODY_FIELDS_SHOWN if name in request},
    }
    system = system_of(response)
    if system and "\n" in system:  # the magic line holds it on one line; the exact text is kept here
        meta["system"] = system
    if _thread_of(response):
        meta["thread"] = _thread_of(response)
    images = _images(response)
    if images:
        meta["images"] = len(images)
        omitted = sum(len(url) > MAX_INLINE_IMAGE for url in images)
        if omitted:
            meta["images_omitted"] = omitted  # too large to put on the magic line
    if response.error is not None:
        meta["error"] = {"type": type(response.error).__name__, "message": str(response.error)}
    return meta


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


# -- the magic line -----------------------------------------------------------------------------------------
def magic_line(response: Response, *, continued: bool = False, thread: str | None = None,
               model_option: str | None = None) -> str:
    """The `%%aihubmix …` line whose cell sends the same request as `response` did."""
    request = response.request or {}
    parts = ["%%aihubmix", model_option or f"-m {_quote(str(request.get('model') or response.model))}",
             "-e", response.endpoint]
    system, output_format = _split_format(system_of(response), request)
    if system:
        parts += ["-s", _quote(" ".join(system.split()) if "\n" in system else system)]
    for name, flag in _OPTIONS:
        if request.get(name) is not None:
            parts += [flag, _number(request[name])]
    effort = request.get("reasoning_effort")
    if effort is None and isinstance(request.get("reasoning"), dict):
        effort = request["reasoning"].get("effort")
    if effort:
        parts += ["-r", str(effort)]
    if output_format:
        parts += ["-f", output_format]
    for url in _images(response):
        if len(url) <= MAX_INLINE_IMAGE:  # a data URL is sent as it is: the cell carries the image itself
            parts += ["--image", _quote(url)]
    thread = thread or _thread_of(response)
    if thread and thread != _DEFAULT_THREAD:
        parts += ["--thread", _quote(thread)]
    elif continued:
        parts.append("-c")
    if request.get("store") is True:
        parts.append("--store")
    if _TEMPLATE_FIELD.search(prompt_of(response)):  # the prompt is sent as it was, never templated again
        parts.append("--no-template")
    if not response.stream:
        parts.append("--no-stream")
    return " ".join(parts)


_DEFAULT_THREAD = "default"
_TEMPLATE_FIELD = re.compile(r"\{[A-Za-z_][^{}\s]*\}")


def _split_format(system: str, request: dict) -> tuple[str, str | None]:
    """(the system prompt as typed, the `-f` format) from a system prompt that may end with the format's
    instruction. The instructions come from `_formats`, which is loaded whenever a format was used."""
    formats = sys.modules.get("aihubmix_magic._formats")
    instructions = getattr(formats, "_INSTRUCTIONS", {}) if formats is not None else {}
    for name, instruction in instructions.items():
        if system == instruction:
            return "", name
        if system.endswith("\n\n" + instruction):
            return system[: -len(instruction) - 2], name
    return system, ("json" if _wants_json(request) else None)


def _thread_of(response: Response) -> str | None:
    """The conversation thread that holds `response` (threads are loaded only when a cell used one)."""
    threads = sys.modules.get("aihubmix_magic._threads")
    for name, thread in (getattr(threads, "_threads", {}) or {}).items():
        if any(turn.response is response for turn in thread.turns):
            return name
    return None


def _quote(text: str) -> str:
    """Quoted for the magic's argument parser (POSIX shell rules) when it needs quoting."""
    if text and re.fullmatch(r"[\w@%+=:,./-]+", text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _number(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _wants_json(request: dict) -> bool:
    fmt = request.get("response_format")
    if not isinstance(fmt, dict) and isinstance(request.get("text"), dict):
        fmt = request["text"].get("format")
    return isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema")


# -- reading a request ----------------------------------------------------------------------------------------
def _turns(response: Response) -> list[dict]:
    request = response.request or {}
    if response.endpoint == "chat":
        messages = request.get("messages")
        return [m for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []
    given = request.get("input")
    if isinstance(given, str):
        return [{"role": "user", "content": given}]
    return [item for item in given if isinstance(item, dict)] if isinstance(given, list) else []


def prompt_of(response: Response) -> str:
    """The text of the last user turn: what was typed in the cell."""
    for turn in reversed(_turns(response)):
        if turn.get("role", "user") == "user" and turn.get("type", "message") == "message":
            return _text_of(turn.get("content"))
    return ""


def system_of(response: Response) -> str:
    request = response.request or {}
    if response.endpoint == "responses":
        return str(request.get("instructions") or "")
    for turn in _turns(response):
        if turn.get("role") in ("system", "developer"):
            return _text_of(turn.get("content"))
    return ""


def _continues(response: Response) -> bool:
    """Whether the request carries earlier turns (a `-c` conversation)."""
    return any(turn.get("role") == "assistant" or turn.get("type") == "function_call_output"
               for turn in _turns(response))


def _text_of(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(part.get("text", "")) for part in content
                         if isinstance(part, dict) and part.get("type") in ("text", "input_text"))
    return ""


def _images(response: Response) -> list[str]:
    """The image URLs (or data URLs) of the last user turn."""
    for turn in reversed(_turns(response)):
        if turn.get("role", "user") != "user":
            continue
        content = turn.get("content")
        urls = []
        for part in content if isinstance(content, list) else []:
            if not isinstance(part, dict):
                continue
            if part.get("type") == "image_url":
                image = part.get("image_url")
                urls.append(str(image.get("url", "") if isinstance(image, dict) else image))
            elif part.get("type") == "input_image":
                urls.append(str(part.get("image_url", "")))
        return urls
    return []


def _responses_of(item: Any) -> list[Response]:
    if isinstance(item, Response):
        return [item]
    inner = getattr(item, "responses", None)
    if inner is not None:
        return [r for r in inner if isinstance(r, Response)]
    raise TypeError(f"Cannot export {type(item).__name__}: expected Response objects (e.g. history()).")


def _is_comparison(item: Any) -> bool:
    return not isinstance(item, Response) and getattr(item, "responses", None) is not None


def _session_key() -> str | None:
    from ._settings import settings

    return settings.api_key
