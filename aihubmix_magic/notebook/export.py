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
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import nbformat
from nbformat import v4

from ..core.exceptions import InvalidRequestError
from ..core.request import DEFAULT_THREAD, FORMAT_INSTRUCTIONS, Request
from ..core.response import Response
from ..core.types import content_text
from .display import citations_block, footer_block, footer_text, provenance, reasoning_block

__all__ = ["build_notebook", "export_notebook", "magic_line", "request_of"]

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


def build_notebook(items: list[Any], *, title: str | None = None, thread: str | None = None) -> Any:
    """The notebook node for `items` (Response or Comparison objects), not yet written."""
    from ..core.version import __version__

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
def _response_cell(response: Response, number: int, thread: str | None) -> Any:
    line = magic_line(response, thread=thread)
    cell = v4.new_code_cell(f"{line}\n{request_of(response).text}", execution_count=number)
    cell.outputs = _outputs(response)
    cell.metadata["aihubmix"] = _metadata(response)
    return cell


def _comparison_cell(responses: list[Response], number: int) -> Any:
    first = responses[0]
    models = ",".join(r.model or str(r.request.get("model", "")) for r in responses)
    line = magic_line(first, model_option=f"--compare {models}")
    cell = v4.new_code_cell(f"{line}\n{request_of(first).text}", execution_count=number)
    outputs = []
    for response in responses:
        outputs.append(_markdown_output(f"**{response.model}**"))
        outputs.extend(_outputs(response))
    cell.outputs = outputs
    cell.metadata["aihubmix"] = {"compare": [_metadata(r) for r in responses]}
    return cell


def _outputs(response: Response) -> list[Any]:
    outputs = []
    if response.steps:  # the tool loop's steps, collapsed, above the answer (as the cell showed them)
        from .toolcell import step_block

        for step in response.steps:
            for run in step.calls:
                outputs.append(v4.new_output("display_data", data=step_block(step, run)))
    if response.reasoning:
        outputs.append(_markdown_output(reasoning_block(response.reasoning, open_=False)))
    text = str(response)
    if text:  # with the provenance metadata the live cell gave it
        outputs.append(v4.new_output("display_data", data={"text/markdown": text, "text/plain": text},
                                     metadata=provenance(response)))
    if response.error is not None and not text:
        message = f"{type(response.error).__name__}: {response.error}"
        outputs.append(v4.new_output("display_data", data={"text/markdown": f"**{message}**", "text/plain": message}))
    if response.citations:
        outputs.append(v4.new_output("display_data", data=citations_block(response)))
    footer = footer_text(response, _tool_summary(response))
    outputs.append(v4.new_output("display_data", data=footer_block(footer)))
    return outputs


def _tool_summary(response: Response) -> str | None:
    if not response.steps:
        return None
    from ..core.toolloop import summary_line

    return summary_line(response)


def _markdown_output(markdown: str) -> Any:
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
    spec = request_of(response)
    if spec.system and "\n" in spec.system:  # the magic line holds it on one line; the exact text is kept here
        meta["system"] = spec.system
    if spec.thread:
        meta["thread"] = spec.thread
    images = spec.images
    if images:
        meta["images"] = len(images)
        omitted = sum(len(url) > MAX_INLINE_IMAGE for url in images)
        if omitted:
            meta["images_omitted"] = omitted  # too large to put on the magic line
    if response.error is not None:
        meta["error"] = {"type": type(response.error).__name__, "message": str(response.error)}
    if response.steps:
        meta["steps"] = [step.to_dict() for step in response.steps]
    if response.citations:
        meta["citations"] = [{"url": c.url, "title": c.title} for c in response.citations]
    return meta


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


# -- the magic line -----------------------------------------------------------------------------------------
def magic_line(response: Response, *, thread: str | None = None, model_option: str | None = None) -> str:
    """The `%%aihubmix …` line whose cell sends the same request as `response` did, from its typed request."""
    spec = request_of(response)
    parts = ["%%aihubmix", model_option or f"-m {_quote(spec.model or response.model)}", "-e", spec.endpoint]
    if spec.system:
        parts += ["-s", _quote(" ".join(spec.system.split()) if "\n" in spec.system else spec.system)]
    for flag, value in (("-t", spec.temperature), ("--top-p", spec.top_p), ("--max-tokens", spec.max_tokens)):
        if value is not None:
            parts += [flag, _number(value)]
    if spec.reasoning_effort:
        parts += ["-r", spec.reasoning_effort]
    if spec.format != "markdown":
        parts += ["-f", spec.format]
    for url in spec.images:
        if len(url) <= MAX_INLINE_IMAGE:  # a data URL is sent as it is: the cell carries the image itself
            parts += ["--image", _quote(url)]
    thread = thread or spec.thread
    if thread and thread != DEFAULT_THREAD:
        parts += ["--thread", _quote(thread)]
    elif spec.continued:
        parts.append("-c")
    if spec.store:
        parts.append("--store")
    servers = list(dict.fromkeys(tool.server for tool in spec.tools if getattr(tool, "server", "")))  # MCP tools
    names = [name for name in (getattr(tool, "name", "") for tool in spec.tools if not getattr(tool, "server", ""))
             if name]
    runnable = any(getattr(tool, "function", None) is not None for tool in spec.tools)
    if names and runnable:
        parts += ["--tools", ",".join(names)]  # the functions must be defined where the cell runs again
    if servers:
        parts += ["--mcp", _quote(",".join(servers))]
    if (names or servers) and runnable:
        if spec.max_steps:
            parts += ["--max-steps", str(spec.max_steps)]
    if spec.web_search:
        parts.append("--web")
    if _TEMPLATE_FIELD.search(spec.text):  # the prompt is sent as it was, never templated again
        parts.append("--no-template")
    if not spec.stream:
        parts.append("--no-stream")
    return " ".join(parts)


_TEMPLATE_FIELD = re.compile(r"\{[A-Za-z_][^{}\s]*\}")


def _quote(text: str) -> str:
    """Quoted for the magic's argument parser (POSIX shell rules) when it needs quoting."""
    if text and re.fullmatch(r"[\w@%+=:,./-]+", text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _number(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


# -- a Response made without a typed request (by hand, or by an older version) -----------------------------
def request_of(response: Response) -> Request:
    """The typed request of `response`; for one made without it, read back from the JSON body sent."""
    if response.spec is not None:
        return response.spec
    body = response.request or {}
    turns = _turns(response.endpoint, body)
    system = ""
    if response.endpoint == "responses":
        system = str(body.get("instructions") or "")
    else:
        system = next((content_text(t.get("content")) for t in turns if t.get("role") in ("system", "developer")), "")
    output_format = "markdown"
    for name, instruction in FORMAT_INSTRUCTIONS.items():
        if system == instruction or system.endswith("\n\n" + instruction):
            system, output_format = system[: -len(instruction)].rstrip("\n"), name
            break
    else:
        if _wants_json(body):
            output_format = "json"
    user = next((t for t in reversed(turns) if t.get("role", "user") == "user" and t.get("type", "message") == "message"),
                {})
    history = tuple(t for t in turns if t.get("role") not in ("system", "developer") and t is not user)
    effort = body.get("reasoning_effort")
    if effort is None and isinstance(body.get("reasoning"), dict):
        effort = body["reasoning"].get("effort")
    max_tokens = body.get("max_tokens", body.get("max_output_tokens"))
    try:
        return Request(model=str(body.get("model") or response.model or "?"), endpoint=response.endpoint,
                       prompt=content_text(user.get("content")) or " ", system=system or None,
                       temperature=body.get("temperature"), top_p=body.get("top_p"), max_tokens=max_tokens,
                       reasoning_effort=effort, stream=response.stream, format=output_format,
                       images=tuple(_image_urls(user.get("content"))), history=history,
                       store=body.get("store") is True and response.endpoint == "responses")
    except InvalidRequestError:  # a body no cell could have sent: keep what can be shown
        return Request(model=str(body.get("model") or response.model or "?"), endpoint=response.endpoint,
                       prompt=content_text(user.get("content")) or " ", stream=response.stream)


def _wants_json(request: dict[str, Any]) -> bool:
    fmt = request.get("response_format")
    if not isinstance(fmt, dict) and isinstance(request.get("text"), dict):
        fmt = request["text"].get("format")
    return isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema")


def _turns(endpoint: str, request: dict[str, Any]) -> list[dict[str, Any]]:
    if endpoint == "chat":
        messages = request.get("messages")
        return [m for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []
    given = request.get("input")
    if isinstance(given, str):
        return [{"role": "user", "content": given}]
    return [item for item in given if isinstance(item, dict)] if isinstance(given, list) else []


def _image_urls(content: object) -> list[str]:
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
    from ..session.settings import settings

    return settings.api_key
