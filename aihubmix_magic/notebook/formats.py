"""`-f/--format markdown|text|code|json|html|math`: what is asked for, and how the answer is shown.

The answer streams as usual; when it is complete it is shown in the chosen form instead of Markdown:

- `markdown` (default): rendered Markdown.
- `text`: plain text.
- `code`: the first fenced code block (or the whole answer) is shown and put into a new cell below
  (`shell.set_next_input(code, replace=False)`); where the frontend cannot insert cells (VS Code, Colab),
  the output says so.
- `json`: asks for a JSON object (chat `response_format`, responses `text.format`); with `--schema VAR`
  (a JSON Schema dict or a pydantic model class) for structured output against that schema. The parsed
  value is shown and kept in `Response.parsed` (an instance of the model class when one was given).
- `html`: rendered as HTML.  `math`: Markdown with LaTeX math (`$…$`, `$$…$$`).

Every format but markdown adds one short instruction to the system prompt (e.g. "Answer with a single JSON
object only."), which `Response.request` shows: the request fields are the protocol core's
(`Request.format` / `Request.schema`, `_protocol.format_fields`); this module parses `--schema` and shows
the finished answer.
"""

from __future__ import annotations

import json
import os
import re
import sys
from typing import Any

from IPython.core.error import UsageError

from ..core.request import FORMATS
from ..core.types import first_code_block

__all__ = ["FORMATS", "OutputFormat", "first_code_block"]


class OutputFormat:
    """One cell's output format: the request fields it needs and the display of the finished answer."""

    def __init__(self, name: str = "markdown", schema: dict | None = None, schema_name: str = "answer",
                 model_class: Any = None) -> None:
        self.name = name
        self.schema = schema
        self.schema_name = schema_name
        self.model_class = model_class

    @classmethod
    def from_options(cls, name: str | None, schema_var: str | None, namespace: dict) -> OutputFormat:
        name = name or ("json" if schema_var else "markdown")
        if name not in FORMATS:
            raise UsageError(f"--format {name}: use one of {', '.join(FORMATS)}.")
        if schema_var is None:
            return cls(name)
        if name != "json":
            raise UsageError(f"--schema goes with --format json, not --format {name}.")
        if schema_var not in namespace:
            raise UsageError(f"--schema {schema_var}: no variable named {schema_var!r}.")
        value: Any = namespace[schema_var]
        pydantic = sys.modules.get("pydantic")
        model_class: Any = None
        if pydantic is not None and isinstance(value, type) and issubclass(value, pydantic.BaseModel):
            model_class = value
            schema = model_class.model_json_schema()
        elif isinstance(value, dict):
            schema = value
        else:
            raise UsageError(f"--schema {schema_var}: a {type(value).__name__} is not a JSON Schema dict or a "
                             "pydantic model class.")
        if schema.get("type", "object") != "object":
            raise UsageError(f"--schema {schema_var}: the schema must describe an object (type: object), "
                             f"not {schema.get('type')!r}.")
        title = str(schema.get("title") or schema_var)
        schema_name = re.sub(r"[^A-Za-z0-9_-]", "_", title)[:64] or "answer"
        return cls(name, _strict(json.loads(json.dumps(schema))), schema_name, model_class)

    # -- the answer --------------------------------------------------------------------------------------
    def present(self, response, shell=None) -> list[dict] | None:
        """Display data for the finished answer, in place of its Markdown (None: plain Markdown).

        Side effects: `json` sets `response.parsed`; `code` puts the code into the next cell.
        """
        text = str(response)
        if self.name == "markdown":
            return None
        if self.name == "text":
            return [{"text/plain": text}]
        if self.name == "code":
            return self._code(text, shell)
        if self.name == "json":
            return self._json(response, text)
        if self.name == "html":
            block = first_code_block(text)
            html = block[1] if block and block[0] in ("html", "") and text.lstrip().startswith(("```", "~~~")) else text
            return [{"text/html": html, "text/plain": text}]
        return [{"text/markdown": math_markdown(text), "text/plain": text}]

    def _code(self, text: str, shell) -> list[dict]:
        block = first_code_block(text)
        language, code = block if block else ("", text.strip())
        fence = "~~~~" if "```" in code else "```"
        shown = {"text/markdown": f"{fence}{language}\n{code}\n{fence}", "text/plain": code}
        where = cell_insertion_problem(shell)
        if where is None:
            shell.set_next_input(code, replace=False)
            note = "The code is in a new cell below." if _in_kernel(shell) else "The code is at the next prompt."
        else:
            note = f"{where} cannot insert a cell from the kernel: copy the code above."
        return [shown, {"text/markdown": f"<sub>{note}</sub>", "text/plain": note}]

    def _json(self, response, text: str) -> list[dict]:
        block = first_code_block(text)
        source = block[1] if block and text.lstrip().startswith(("```", "~~~")) else text
        try:
            value = json.loads(source)
        except ValueError as exc:
            note = f"The answer is not valid JSON ({exc}); shown as it came."
            return [{"text/markdown": f"```\n{text}\n```", "text/plain": text},
                    {"text/markdown": f"<sub>{note}</sub>", "text/plain": note}]
        response.parsed = value
        outputs = [{"application/json": value if isinstance(value, (dict, list)) else {"value": value},
                    "text/markdown": "```json\n" + json.dumps(value, indent=2, ensure_ascii=False) + "\n```",
                    "text/plain": json.dumps(value, indent=2, ensure_ascii=False)}]
        if self.model_class is not None:
            try:
                response.parsed = self.model_class.model_validate(value)
            except Exception as exc:  # pydantic.ValidationError, without importing pydantic
                first = str(exc).splitlines()[0]
                note = f"The JSON does not match {self.model_class.__name__} ({first}); `.parsed` holds the dict."
                outputs.append({"text/markdown": f"<sub>{note}</sub>", "text/plain": note})
        return outputs


def math_markdown(text: str) -> str:
    """Markdown whose math Jupyter renders: \\[…\\] and \\(…\\) become $$…$$ and $…$; an answer with no
    math delimiters at all is taken to be one formula."""
    text = re.sub(r"\\\[(.+?)\\\]", lambda m: f"$${m.group(1)}$$", text, flags=re.DOTALL)
    text = re.sub(r"\\\((.+?)\\\)", lambda m: f"${m.group(1)}$", text, flags=re.DOTALL)
    if "$" not in text:
        text = f"$$\n{text.strip()}\n$$"
    return text


def cell_insertion_problem(shell) -> str | None:
    """The name of a frontend that ignores set_next_input (VS Code, Colab), or None."""
    if os.environ.get("COLAB_RELEASE_TAG") or "google.colab" in sys.modules:
        return "Colab"
    if os.environ.get("VSCODE_PID") or os.environ.get("VSCODE_CWD"):
        return "VS Code"
    if shell is None:
        return "This frontend"
    return None


def _in_kernel(shell) -> bool:
    return getattr(shell, "kernel", None) is not None


def _strict(schema):
    """OpenAI's strict mode wants every object closed and every property required (as the SDK does)."""
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    schema = {key: _strict(value) for key, value in schema.items()}
    if schema.get("type") == "object" or "properties" in schema:
        properties = schema.get("properties") or {}
        schema.setdefault("additionalProperties", False)
        schema["required"] = list(properties)
    return schema
