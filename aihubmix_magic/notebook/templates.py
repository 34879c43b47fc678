"""Prompt templates: `{name}` in a `%%aihubmix` cell is replaced by a value from the user namespace.

The rule, chosen so that code and JSON in a prompt survive untouched:

- A field is `{` + a name + any number of `.attr`, `[0]`, `[-1]`, `['key']`, `["key"]` or `[word]`
  + `}`, with no spaces: `{df.shape}`, `{rows[0]}`, `{d['k']}`, `{In[3]}`, `{Out[3]}`, `{Err}`.
  Nothing is ever evaluated: attributes are read with getattr (names starting with `_` are refused),
  indexes with `[]`; no calls, no operators.
- Anything else in braces stays as it is: `{}`, `{"a": 1}`, `{x: 1}`, `{a, b}`, `{ x }`.
- `{{name}}` is the literal text `{name}` (the escape). Other double braces stay as they are, so
  nested JSON (`{"a": {"b": 1}}`) and Jinja (`{{ x }}`) survive.
- One pass: a value that contains braces goes in as it is; it is never read as a template again.
- An unknown name is a UsageError naming it, except inside Markdown code (a ``` fenced block or an
  `inline` span), where a field whose name is not defined is left as it is (it is probably code, such as an
  f-string).
- `{Err}` is the last exception's traceback as plain text (unless a variable `Err` exists); `In` and
  `Out` are IPython's input and output history.
- A field that would put the API key into the prompt (`{settings.api_key}`) is refused.
- A pandas DataFrame (or Series) goes in as a Markdown table of at most `settings.template_max_rows` rows,
  then "… N more rows".
"""

from __future__ import annotations

import re
import sys
import traceback

from IPython.core.error import UsageError

from ..core.types import FENCE, dataframe_markdown
from ..session.settings import settings

__all__ = ["dataframe_markdown", "last_traceback", "render_template"]

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_INDEX = r"\[(?:-?\d+|'[^'\]]*'|\"[^\"\]]*\"|[A-Za-z0-9_]+)\]"
_STEP = re.compile(rf"\.({_NAME})|\[(-?\d+|'[^'\]]*'|\"[^\"\]]*\"|[A-Za-z0-9_]+)\]")
_PATH = rf"{_NAME}(?:\.{_NAME}|{_INDEX})*"
_TOKENS = re.compile(rf"\{{\{{({_PATH})\}}\}}|\{{({_PATH})\}}")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_MISSING = object()


def render_template(template: str, namespace: dict, *, max_rows: int = 20) -> str:
    """Replace the fields of `template` with values from `namespace`, in one pass (see the module doc)."""
    code = _code_spans(template)
    parts: list[str] = []
    last = 0
    for match in _TOKENS.finditer(template):
        parts.append(template[last:match.start()])
        last = match.end()
        escaped, path = match.groups()
        if escaped is not None:
            parts.append("{" + escaped + "}")
        else:
            in_code = any(start <= match.start() < end for start, end in code)
            value = _resolve(path, namespace, in_code=in_code)
            parts.append(match.group(0) if value is _MISSING else _as_text(value, max_rows))
    parts.append(template[last:])
    result = "".join(parts)
    key = settings.api_key
    if key and key in result and key not in template:
        raise UsageError("Template: a field would put the API key into the prompt; nothing was sent.")
    return result


def _resolve(path: str, namespace: dict, *, in_code: bool):
    match = re.match(_NAME, path)
    assert match is not None  # _TOKENS only matches paths that start with a name
    name = match.group(0)
    if name in namespace:
        value = namespace[name]
    elif name == "Err":
        value = last_traceback()
        if value is None:
            if in_code:
                return _MISSING
            raise UsageError("{Err}: no exception has been raised in this session yet.")
    elif in_code:
        return _MISSING
    else:
        raise UsageError(
            f"Template: {name!r} is not defined; define it, write {{{{{name}}}}} for a literal brace, or use "
            "--no-template."
        )
    done = name
    for step in _STEP.finditer(path, len(name)):
        attribute, key = step.groups()
        if attribute is not None:
            if attribute.startswith("_"):
                raise UsageError(f"Template {{{path}}}: private attributes such as {attribute!r} are not read.")
            try:
                value = getattr(value, attribute)
            except Exception:
                raise UsageError(f"Template {{{path}}}: {done} has no attribute {attribute!r}.") from None
        else:
            index = _index(key)
            try:
                value = value[index]
            except Exception as exc:
                raise UsageError(f"Template {{{path}}}: {done}[{key}] does not exist "
                                 f"({type(exc).__name__}).") from None
        done = path[:step.end()]
    return value


def _index(key: str):
    if key[0] in "'\"":
        return key[1:-1]
    if re.fullmatch(r"-?\d+", key):
        return int(key)
    return key


def _code_spans(text: str) -> list[tuple[int, int]]:
    """Where Markdown code is: fenced blocks (an unclosed fence runs to the end) and `inline` spans."""
    spans: list[tuple[int, int]] = []
    fences = list(FENCE.finditer(text))
    index = 0
    outside: list[tuple[int, int]] = []
    position = 0
    while index < len(fences):
        opening = fences[index]
        marker = opening.group(1)
        closing = next((f for f in fences[index + 1:]
                        if f.group(1)[0] == marker[0] and len(f.group(1)) >= len(marker)), None)
        end = closing.end() if closing else len(text)
        outside.append((position, opening.start()))
        spans.append((opening.start(), end))
        position = end
        index = fences.index(closing) + 1 if closing else len(fences)
    outside.append((position, len(text)))
    for start, end in outside:
        for match in re.finditer(r"(`+)(?!`)(.+?)(?<!`)\1(?!`)", text[start:end], re.DOTALL):
            spans.append((start + match.start(), start + match.end()))
    return spans


def last_traceback() -> str | None:
    """The last exception's traceback, as plain text (no ANSI colours); None if there was none."""
    value = getattr(sys, "last_exc", None) or getattr(sys, "last_value", None)
    if value is None:
        return None
    text = "".join(traceback.format_exception(type(value), value, value.__traceback__))
    return _ANSI.sub("", text).rstrip("\n")


def _as_text(value, max_rows: int) -> str:
    pandas = sys.modules.get("pandas")
    if pandas is not None:
        if isinstance(value, pandas.Series):
            value = value.to_frame()
        if isinstance(value, pandas.DataFrame):
            return dataframe_markdown(value, max_rows)
    return value if isinstance(value, str) else str(value)
