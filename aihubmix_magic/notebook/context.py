"""`--context NAME[,NAME…]`: objects from the kernel, described for the prompt within a token budget.

Each name becomes a compact description in a fenced block under a line "`name` — summary", appended to the
prompt after the heading `HEADING`:

- a pandas DataFrame: shape, columns with dtypes and null counts, `describe()` of the numeric columns and
  the first 5 rows (never the whole frame); a Series likewise;
- a numpy array: shape, dtype and a few values;
- a function, class or module: its signature and docstring (a function or class defined in the notebook:
  its source, which the model cannot know otherwise);
- an object with `_repr_llm_()` (the protocol proposed in jupyter-ai issue 1157): what that returns;
- anything else: its repr, capped.

Two names are special: `cells:N` is the last N code cells' inputs (prompt cells left out), `error` the last
traceback as plain text (a variable named `error` wins, as a variable `Err` does in templates).

The whole is capped by `settings.context_max_tokens` (≈ 4 characters a token): when it does not fit, each
item gets a fair share (a small item keeps all of it, and gives what it does not need to the others), a long
description is cut at a line end and says so, and the summary line shown above the answer says what was
cut. Descriptions are deterministic (memory addresses are dropped), so a cell re-run hits the cache. The API
key never goes in: any description that contains it is masked.

pandas and numpy are recognised through `sys.modules`, never imported here.
"""

from __future__ import annotations

import html
import inspect
import math
import re
import sys
from dataclasses import dataclass, field

from IPython.core.error import UsageError

__all__ = ["HEADING", "Context", "ContextItem", "build_context", "describe", "estimate_tokens", "parse_names"]

HEADING = "Context from my Jupyter notebook"  # the simulator recognises it (simulator._CONTEXT_HEADING)
CHARS_PER_TOKEN = 4
ROWS = 5  # the first rows of a DataFrame, the first values of a Series
REPR_LIMIT = 2_000  # characters of a plain repr
DOC_LIMIT = 1_500  # characters of a docstring
SOURCE_LINES = 80  # lines of a notebook function's or class's source
_ADDRESS = re.compile(r" at 0x[0-9A-Fa-f]+")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_CELLS = re.compile(r"cells:(\S*)")
_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")


def estimate_tokens(text: str) -> int:
    """Tokens in `text`, estimated as one per 4 characters (close for English and code)."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


@dataclass
class ContextItem:
    """One named object: a one-line summary and a description in a fenced block."""

    name: str
    summary: str
    body: str
    language: str = "text"
    cut: str | None = None  # what the budget cut from it, or None

    def text(self) -> str:
        fence = _fence(self.body)
        return f"`{self.name}` — {self.summary}\n{fence}{self.language}\n{self.body}\n{fence}"


@dataclass
class Context:
    """What `--context` adds to a prompt, and the block that shows it above the answer."""

    items: list[ContextItem]
    budget: int
    omitted: list[str] = field(default_factory=list)  # names left out entirely by the budget

    def prompt_text(self) -> str:
        """The section appended to the prompt (after a blank line)."""
        parts = [f"{HEADING}:"] + [item.text() for item in self.items]
        if self.omitted:
            parts.append(f"(Left out to fit the context budget: {', '.join(self.omitted)}.)")
        return "\n\n".join(parts)

    @property
    def tokens(self) -> int:
        return estimate_tokens(self.prompt_text())

    def cut_notes(self) -> list[str]:
        notes = [f"{item.name}: {item.cut}" for item in self.items if item.cut]
        notes += [f"{name}: left out" for name in self.omitted]
        return notes

    def summary_line(self) -> str:
        names = ", ".join(item.name for item in self.items) or "nothing"
        line = f"Context sent (≈ {self.tokens:,} tokens): {names}"
        if self.cut_notes():
            line += f" — cut to the budget of {self.budget:,} tokens: " + "; ".join(self.cut_notes())
        return line

    def display_data(self) -> dict:
        """A collapsed block: the summary line, and exactly the text that was added to the prompt."""
        label = f"Context sent (≈ {self.tokens:,} tokens)"
        names = ", ".join(f"<code>{html.escape(item.name)}</code>" for item in self.items)
        cut = ""
        if self.cut_notes():
            cut = f"; cut to the budget of {self.budget:,} tokens: " + html.escape("; ".join(self.cut_notes()))
        markdown = f"<details><summary>{label}: {names}{cut}</summary>\n\n{self.prompt_text()}\n\n</details>"
        return {"text/markdown": markdown, "text/plain": self.summary_line()}

    def add_to(self, prompt: str) -> str:
        return f"{prompt}\n\n{self.prompt_text()}" if prompt else self.prompt_text()


def parse_names(specs: list[str] | str | None) -> list[str]:
    """`["df,model", "cells:2"]` -> `["df", "model", "cells:2"]`, without repeats; bad names raise UsageError."""
    if not specs:
        return []
    if isinstance(specs, str):
        specs = [specs]
    names: list[str] = []
    for spec in specs:
        for name in (part.strip() for part in spec.split(",")):
            if not name:
                continue
            cells = _CELLS.fullmatch(name)
            if cells:
                if not cells.group(1).isdigit() or int(cells.group(1)) < 1:
                    raise UsageError(f"--context {name}: write cells:N with N a whole number of cells, 1 or more.")
            elif not _PATH.fullmatch(name):
                raise UsageError(f"--context {name!r}: give variable names (df, model.coef_), cells:N or error, "
                                 "separated by commas.")
            if name not in names:
                names.append(name)
    return names


def build_context(names: list[str], shell, budget: int, *, failure=None, recorder=None) -> Context:
    """Describe `names` from the shell's namespace within `budget` tokens; an undefined name raises
    UsageError (nothing is sent). For `error`: `failure` (a _fix.Failure), else the last one `recorder`
    (a _fix.FailureRecorder) or `sys.last_value` knows."""
    namespace = shell.user_ns if shell is not None else {}
    items = []
    for name in names:
        if name.startswith("cells:"):
            items.append(_cells_item(shell, int(name[len("cells:"):])))
        elif name == "error" and "error" not in namespace:
            items.append(_error_item(shell, failure, recorder))
        else:
            value = _lookup(name, namespace)
            summary, body, language = describe(value)
            items.append(ContextItem(name, _mask(summary), _mask(body), language))
    return _fit(items, budget)


# -- describing one object -----------------------------------------------------------------------------


def describe(value) -> tuple[str, str, str]:
    """(one-line summary, description, fence language) of any object; deterministic."""
    note = ""
    llm = getattr(value, "_repr_llm_", None)
    if llm is not None and callable(llm) and not inspect.isclass(value):
        try:
            text = llm()
        except Exception as exc:  # a broken _repr_llm_ must not break the cell: say so, describe it otherwise
            text, note = None, f" (its _repr_llm_() raised {type(exc).__name__})"
        if isinstance(text, str):
            return f"{_type_name(value)} (described by its _repr_llm_())", _clean(text), "text"
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(value, pandas.DataFrame):
        return _dataframe(value)
    if pandas is not None and isinstance(value, pandas.Series):
        return _series(value)
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(value, numpy.ndarray):
        return _array(value, numpy)
    if inspect.ismodule(value):
        return _module(value)
    if inspect.isclass(value):
        return _class(value)
    if inspect.isroutine(value) or isinstance(value, _partial_type()):
        return _function(value)
    summary, body = _plain(value)
    return summary + note, body, "text"


def _dataframe(frame) -> tuple[str, str, str]:
    rows, columns = frame.shape
    summary = f"pandas DataFrame: {rows:,} row{'s' * (rows != 1)} × {columns:,} column{'s' * (columns != 1)}"
    nulls = frame.isna().sum()
    lines = ["columns (dtype, nulls):"]
    for column, dtype in frame.dtypes.items():
        count = int(nulls[column])
        lines.append(f"  {column}: {dtype}, {count:,} null{'s' * (count != 1)}")
    numeric = frame.select_dtypes("number")
    if numeric.shape[1]:
        lines += ["", "describe() of the numeric columns:", _table(numeric.describe())]
    if rows:
        lines += ["", f"first {min(ROWS, rows)} rows:", _table(frame.head(ROWS))]
    return summary, _clean("\n".join(lines)), "text"


def _series(series) -> tuple[str, str, str]:
    name = f" {series.name!r}" if series.name is not None else ""
    count = len(series)
    summary = f"pandas Series{name}: {count:,} value{'s' * (count != 1)}, dtype {series.dtype}"
    nulls = int(series.isna().sum())
    lines = [f"nulls: {nulls:,}"]
    if count:
        lines += ["", "describe():", _table(series.describe()), "", f"first {min(ROWS, count)} values:",
                  _table(series.head(ROWS))]
    return summary, _clean("\n".join(lines)), "text"


def _table(frame) -> str:
    """A DataFrame or Series as fixed-width text: long cells cut, floats to 4 significant digits."""
    try:
        return frame.to_string(max_colwidth=60, float_format=lambda x: f"{x:.4g}")
    except TypeError:  # a Series' to_string has no max_colwidth
        return frame.to_string(float_format=lambda x: f"{x:.4g}")


def _array(array, numpy) -> tuple[str, str, str]:
    shape = "×".join(str(n) for n in array.shape) or "scalar"
    summary = f"numpy array: shape {tuple(array.shape)}, dtype {array.dtype}"
    values = numpy.array2string(array, threshold=24, edgeitems=3, precision=4, max_line_width=100)
    return summary, _clean(f"shape {shape}, dtype {array.dtype}, {array.size:,} values:\n{values}"), "text"


def _module(module) -> tuple[str, str, str]:
    version = getattr(module, "__version__", None)
    summary = f"module {module.__name__}" + (f" (version {version})" if isinstance(version, str) else "")
    doc = _doc(module)
    public = sorted(name for name in getattr(module, "__all__", None) or dir(module) if not name.startswith("_"))
    shown = ", ".join(public[:40]) + (f", … ({len(public):,} in all)" if len(public) > 40 else "")
    body = (doc + "\n\n" if doc else "") + f"public names: {shown}"
    return summary, _clean(body), "text"


def _class(cls) -> tuple[str, str, str]:
    bases = ", ".join(base.__name__ for base in cls.__bases__ if base is not object)
    summary = f"class {cls.__qualname__}" + (f"({bases})" if bases else "")
    source = _notebook_source(cls)
    if source is not None:
        return summary + ", defined in this notebook", source, "python"
    lines = [f"class {cls.__qualname__}" + (f"({bases})" if bases else "") + ":"]
    doc = _doc(cls)
    if doc:
        lines.append(_indent(_docstring(doc)))
    init = cls.__dict__.get("__init__")
    if init is not None:
        lines.append(f"    def __init__{_signature(init)}: ...")
    methods = sorted(name for name, member in vars(cls).items() if not name.startswith("_") and callable(member))
    if methods:
        lines.append(f"    # methods: {', '.join(methods[:30])}")
    return summary, _clean("\n".join(lines)), "python"


def _function(function) -> tuple[str, str, str]:
    name = getattr(function, "__qualname__", None) or getattr(function, "__name__", None) or type(function).__name__
    signature = _signature(function)
    source = _notebook_source(function)
    if source is not None:
        return f"function {name}{signature}, defined in this notebook", source, "python"
    kind = "builtin" if inspect.isbuiltin(function) else "function"
    lines = [f"def {name}{signature}:"]
    doc = _doc(function)
    lines.append(_indent(_docstring(doc)) if doc else "    ...")
    module = getattr(function, "__module__", None)
    return f"{kind} {name}{signature}" + (f" from {module}" if module else ""), _clean("\n".join(lines)), "python"


def _plain(value) -> tuple[str, str]:
    kind = _type_name(value)
    try:
        size = len(value)
    except Exception:
        size = None
    if isinstance(value, str):
        summary = f"str of {len(value):,} characters"
    elif size is not None and isinstance(value, dict | list | tuple | set | frozenset):
        summary = f"{kind} of {size:,} item{'s' * (size != 1)}"
    else:
        summary = kind
    try:
        text = repr(value)
    except Exception as exc:
        text = f"<{kind}: repr() raised {type(exc).__name__}>"
    text = _clean(text)
    if len(text) > REPR_LIMIT:
        text = text[:REPR_LIMIT] + f" … ({len(text):,} characters in all)"
    return summary, text


def _type_name(value) -> str:
    kind = type(value)
    module = kind.__module__
    return kind.__qualname__ if module in ("builtins", "__main__") else f"{module}.{kind.__qualname__}"


def _signature(function) -> str:
    try:
        return _clean(str(inspect.signature(function)))
    except (TypeError, ValueError):
        return "(...)"


def _doc(obj) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc if len(doc) <= DOC_LIMIT else doc[:DOC_LIMIT].rstrip() + " …"


def _docstring(doc: str) -> str:
    return '"""' + doc.replace('"""', "'''") + '"""'


def _indent(text: str) -> str:
    return "\n".join(("    " + line) if line else line for line in text.splitlines())


def _notebook_source(obj) -> str | None:
    """The source of a function or class defined in the notebook (its module is __main__), or None."""
    if getattr(obj, "__module__", None) != "__main__":
        return None
    lines: list[str] | None
    try:
        lines = inspect.getsource(obj).splitlines()
    except (OSError, TypeError):
        lines = _class_source(obj) if inspect.isclass(obj) else None
        if not lines:
            return None
    if len(lines) > SOURCE_LINES:
        lines = lines[:SOURCE_LINES] + [f"# … {len(lines) - SOURCE_LINES} more lines"]
    return _clean("\n".join(lines))


def _class_source(cls) -> list[str] | None:
    """A notebook class's source, found through one of its methods (inspect cannot find classes defined
    in IPython cells before Python 3.13)."""
    import linecache

    for member in vars(cls).values():
        code = getattr(getattr(member, "__func__", member), "__code__", None)
        if code is None:
            continue
        lines = linecache.getlines(code.co_filename)
        for start in range(min(code.co_firstlineno, len(lines)) - 1, -1, -1):
            if re.match(rf"\s*class\s+{re.escape(cls.__name__)}\b", lines[start]):
                return [line.rstrip("\n") for line in inspect.getblock(lines[start:])]
    return None


def _partial_type():
    import functools

    return functools.partial


def _clean(text: str) -> str:
    """Deterministic text: no memory addresses, no terminal colours, no trailing spaces."""
    text = _ANSI.sub("", _ADDRESS.sub("", text))
    return "\n".join(line.rstrip() for line in text.splitlines())


def _mask(text: str) -> str:
    """Mask the API key (and a real key kept aside in demo mode) wherever it appears."""
    from ..core.protocol import Redactor
    from ..session.state import current

    for key in current().keys():
        text = Redactor(key).mask(text)
    return text


def _fence(body: str) -> str:
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    return "`" * max(3, longest + 1)


# -- names ---------------------------------------------------------------------------------------------


def _lookup(name: str, namespace: dict):
    first, *attributes = name.split(".")
    if first not in namespace:
        raise UsageError(f"--context: {first!r} is not defined in the notebook; nothing was sent.")
    value = namespace[first]
    done = first
    for attribute in attributes:
        if attribute.startswith("_"):
            raise UsageError(f"--context {name}: private attributes such as {attribute!r} are not read.")
        try:
            value = getattr(value, attribute)
        except Exception:
            raise UsageError(f"--context {name}: {done} has no attribute {attribute!r}; nothing was sent.") from None
        done += "." + attribute
    return value


def _cells_item(shell, count: int) -> ContextItem:
    """The last `count` code cells run before this one (prompt cells left out)."""
    history = getattr(getattr(shell, "history_manager", None), "input_hist_raw", None) or []
    current = getattr(shell, "execution_count", len(history))
    cells = []
    for number in range(min(current, len(history)) - 1, 0, -1):
        source = history[number].strip("\n")
        if not source.strip() or source.lstrip().startswith(("%%aihubmix", "%aihubmix")):
            continue
        cells.append((number, source))
        if len(cells) == count:
            break
    if not cells:
        raise UsageError("--context cells:N: no code cell has run yet in this session; nothing was sent.")
    cells.reverse()
    body = "\n\n".join(f"# In [{number}]\n{source}" for number, source in cells)
    span = f"In [{cells[0][0]}]" if len(cells) == 1 else f"In [{cells[0][0]}] to In [{cells[-1][0]}]"
    summary = f"the last {len(cells)} code cell{'s' * (len(cells) != 1)} ({span})"
    return ContextItem(f"cells:{count}", summary, _mask(_clean(body)), "python")


def _error_item(shell, failure, recorder) -> ContextItem:
    if failure is None:
        from .failures import last_failure

        failure = last_failure(shell, recorder)
    if failure is None:
        raise UsageError("--context error: no cell has failed in this session yet; nothing was sent.")
    where = f" in In [{failure.number}]" if failure.number else ""
    return ContextItem("error", f"the last error{where}: {_mask(failure.error_line)}", _mask(failure.traceback))


# -- the budget ----------------------------------------------------------------------------------------


def _fit(items: list[ContextItem], budget: int) -> Context:
    """Cut the items to `budget` tokens in all: fair shares, a small item gives what it does not need to
    the others, a long one is cut at a line end and says so; an item with no room left is left out."""
    context = Context(items, budget)
    if context.tokens <= budget:
        return context
    overhead = estimate_tokens(Context([], budget).prompt_text()) + 30  # heading, notes
    sizes = {id(item): estimate_tokens(item.text()) for item in items}
    remaining = max(0, budget - overhead)
    shares: dict[int, int] = {}
    pending = sorted(items, key=lambda item: sizes[id(item)])
    while pending:
        share = remaining // len(pending)
        item = pending.pop(0)
        shares[id(item)] = min(sizes[id(item)], share)
        remaining -= shares[id(item)]
    kept, omitted = [], []
    for item in items:
        allowed = shares[id(item)]
        if allowed >= sizes[id(item)]:
            kept.append(item)
        elif allowed < 40:
            omitted.append(item.name)
        else:
            kept.append(_cut(item, allowed))
    return Context(kept, budget, omitted)


def _cut(item: ContextItem, tokens: int) -> ContextItem:
    header = estimate_tokens(f"`{item.name}` — {item.summary}\n````{item.language}\n\n````\n") + 20
    room = max(0, (tokens - header) * CHARS_PER_TOKEN)
    lines = item.body.splitlines()
    kept: list[str] = []
    used = 0
    for line in lines:
        if used + len(line) + 1 > room:
            break
        kept.append(line)
        used += len(line) + 1
    if not kept and lines:  # one very long line: cut inside it
        kept = [lines[0][:room]]
        cut_lines = len(lines) - 1
        note = f"cut after {room:,} characters"
    else:
        cut_lines = len(lines) - len(kept)
        note = f"{cut_lines:,} of {len(lines):,} lines cut"
    body = "\n".join(kept) + f"\n… cut here to fit the context budget ({note})"
    return ContextItem(item.name, item.summary, body, item.language, note)
