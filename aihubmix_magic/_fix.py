"""`%aihubmix fix [--explain] [options]`: explain the cell that failed last, and put the corrected code into
a new cell below.

What is sent: the failing cell's code, its traceback as plain text (no terminal colours; IPython's own
frames left out; the cell's file shown as `Cell In[7], line 2`, as IPython shows it; a very long traceback
keeps its head and its tail) and, through `--context`, descriptions of the names the cell uses that are
defined in the notebook (a DataFrame's columns, a function's source, …). The answer streams as Markdown;
then its last fenced code block goes into a new cell below, with the same note as `-f code` where the
frontend cannot insert cells (VS Code, Colab).

- `--explain` only explains (no code asked for, no cell added).
- `settings.fix_style = "hint"` (for teaching) asks for a hint that points to the mistake and never for the
  corrected code or the whole solution; no cell is added.
- The prompt options of `%%aihubmix` work too (`-m`, `-e`, `-t`, `--max-tokens`, `-r`, `--no-stream`, `-o`,
  `--cache`, `--context` for more names); the ones that make no sense here (`-f`, `--schema`, `--over`,
  `--compare`, `-c`, `--thread`, `--store`, `--image`, `-p`, `--no-template`) are a UsageError.

"The cell that failed last" is recorded by a `post_run_cell` hook: the last cell whose run raised an
exception, prompt cells (`%%aihubmix`, `%aihubmix …`) left out, so a `fix` that fails does not replace the
cell it was about; a later successful run of the same code clears it. Without a record (the extension was
loaded after the failure) `sys.last_value` is used. No failed cell: one line says so, nothing is sent.
"""

from __future__ import annotations

import ast
import re
import shlex
import sys
import traceback
from dataclasses import dataclass

from IPython.core.error import UsageError

__all__ = ["FIX_HEADING", "Failure", "FailureRecorder", "last_failure", "plain_traceback", "run_fix",
           "used_names"]

FIX_HEADING = "A cell in my Jupyter notebook failed"  # the simulator recognises it (simulator._FIX_HEADING)
TRACEBACK_LIMIT = 6_000  # characters; a longer traceback keeps its first lines and its end
SYSTEMS = {
    "fix": ("You help someone fix a failing cell in a Jupyter notebook. Say in a few sentences what went "
            "wrong and why, then give the whole corrected cell in one fenced ```python code block."),
    "explain": ("You help someone understand an error in a Jupyter notebook cell. Explain what went wrong, "
                "why, and how to fix it, in a few sentences. Do not write the corrected code."),
    "hint": ("You are a patient programming teacher. A student's notebook cell failed. Give one or two hints "
             "that help them find and fix the mistake themselves: where to look and what to check. Never give "
             "the corrected code or the whole solution."),
}
_NOT_HERE = (("format", "-f"), ("schema", "--schema"), ("over", "--over"), ("compare", "--compare"),
             ("continue_", "-c"), ("thread", "--thread"), ("store", "--store"), ("image", "--image"),
             ("prompt", "-p"), ("no_template", "--no-template"), ("concurrency", "--concurrency"))
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_PROMPT_CELL = re.compile(r"^\s*%%?aihubmix\b", re.MULTILINE)


@dataclass
class Failure:
    """The cell that failed: its number (None if unknown), code (None if unknown) and plain traceback."""

    number: int | None
    code: str | None
    traceback: str
    error_line: str  # "KeyError: 'raiting'"
    exception: BaseException


class FailureRecorder:
    """Remembers the last cell that raised (prompt cells left out), from IPython's post_run_cell event."""

    def __init__(self, shell) -> None:
        self.shell = shell
        self.cell: str | None = None
        self.number: int | None = None
        self.exception: BaseException | None = None
        self.cleared: BaseException | None = None  # fixed since: sys.last_value may still hold it
        if shell is not None:
            shell.events.register("post_run_cell", self._after_cell)

    def close(self) -> None:
        if self.shell is not None:
            try:
                self.shell.events.unregister("post_run_cell", self._after_cell)
            except ValueError:
                pass

    def _after_cell(self, result) -> None:
        raw = getattr(getattr(result, "info", None), "raw_cell", None) or ""
        if _PROMPT_CELL.search(raw):
            return
        error = result.error_before_exec or result.error_in_exec
        if isinstance(error, Exception):
            self.cell, self.number, self.exception = raw, result.execution_count, error
        elif error is None and self.cell is not None and raw.strip() == self.cell.strip():
            self.cleared = self.exception  # the same code ran fine: nothing to fix now
            self.cell = self.number = self.exception = None

    def last(self) -> Failure | None:
        if self.exception is None:
            return None
        text, number = plain_traceback(self.exception, self.shell)
        return Failure(self.number or number, self.cell, text, _error_line(self.exception), self.exception)


def last_failure(shell, recorder: FailureRecorder | None = None) -> Failure | None:
    """The recorded failure, else the one in `sys.last_value` (unless it came from a prompt cell)."""
    if recorder is not None and (failure := recorder.last()) is not None:
        return failure
    value = getattr(sys, "last_exc", None) or getattr(sys, "last_value", None)
    if not isinstance(value, Exception) or (recorder is not None and value is recorder.cleared):
        return None
    text, number = plain_traceback(value, shell)
    code = _cell_code(shell, number, value)
    if code is not None and _PROMPT_CELL.search(code):
        return None
    return Failure(number, code, text, _error_line(value), value)


def plain_traceback(exception: BaseException, shell) -> tuple[str, int | None]:
    """(the traceback as plain text, the number of the cell it started in): IPython's own frames left out,
    cell files shown as `Cell In[N], line L`, no colours; a very long one keeps its head and its end."""
    names = _cell_names(shell)
    summary = traceback.TracebackException.from_exception(exception)
    frames = list(summary.stack)
    first = next((index for index, frame in enumerate(frames) if frame.filename in names), None)
    number = None
    if first is not None:
        number = names[frames[first].filename]
        summary.stack = traceback.StackSummary.from_list(frames[first:])
    elif isinstance(exception, SyntaxError) and exception.filename in names:
        number = names[exception.filename]
    text = "".join(summary.format())
    for filename, cell in names.items():
        if filename in text:
            text = text.replace(f'File "{filename}", line', f"Cell In[{cell}], line")
    text = _ANSI.sub("", text).rstrip("\n")
    if len(text) > TRACEBACK_LIMIT:
        lines = text.splitlines()
        head = lines[:12]
        tail: list[str] = []
        size = sum(len(line) + 1 for line in head)
        for line in reversed(lines[12:]):
            if size + len(line) + 1 > TRACEBACK_LIMIT - 80:
                break
            tail.insert(0, line)
            size += len(line) + 1
        cut = len(lines) - len(head) - len(tail)
        text = "\n".join([*head, f"    … {cut:,} lines of the traceback cut …", *tail])
    return text, number


def used_names(code: str | None, shell) -> list[str]:
    """The names `code` reads that are defined in the notebook (not modules, not IPython's own, not names
    the code binds itself), in the order they first appear."""
    if not code:
        return []
    namespace = shell.user_ns
    hidden = getattr(shell, "user_ns_hidden", {})
    try:
        tree = ast.parse(shell.transform_cell(code))
    except (SyntaxError, ValueError):
        return [name for name in dict.fromkeys(re.findall(r"\b[A-Za-z_]\w*\b", code)) if _wanted(name, namespace, hidden)]
    bound: set[str] = set()
    loaded: list[tuple[int, int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Load):
                loaded.append((node.lineno, node.col_offset, node.id))
            else:
                bound.add(node.id)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.alias):
            bound.add((node.asname or node.name).split(".")[0])
    names = [name for _, _, name in sorted(loaded) if name not in bound]
    return [name for name in dict.fromkeys(names) if _wanted(name, namespace, hidden)][:8]


def _wanted(name: str, namespace: dict, hidden: dict) -> bool:
    if name.startswith("_") or name not in namespace or name in hidden:
        return False
    value = namespace[name]
    import inspect

    if inspect.ismodule(value):
        return False
    return not str(getattr(value, "__module__", "") or "").startswith("aihubmix_magic")


def fix_prompt(failure: Failure) -> str:
    """The user message: the failing cell and its traceback, in fenced blocks."""
    where = f" (In [{failure.number}])" if failure.number else ""
    parts = [f"{FIX_HEADING}{where}."]
    if failure.code is not None:
        code = failure.code.strip("\n")
        fence = _fence(code)
        parts.append(f"The cell:\n{fence}python\n{code}\n{fence}")
    fence = _fence(failure.traceback)
    parts.append(f"The error:\n{fence}text\n{failure.traceback}\n{fence}")
    return "\n\n".join(parts)


def system_prompt(mode: str, user_system: str | None) -> str:
    return SYSTEMS[mode] + (f"\n\n{user_system}" if user_system else "")


def run_fix(magics, rest: list[str]):
    """`%aihubmix fix [--explain] [options]`, for `AihubmixMagics._cmd_fix`."""
    from ._settings import settings

    try:
        words = shlex.split(" ".join(rest))
    except ValueError as exc:
        raise UsageError(f"Cannot read the options of fix: {exc} (check the quotes).") from None
    explain = "--explain" in words
    words = [word for word in words if word != "--explain"]
    args = magics.aihubmix.parser.parse_args(words)
    wrong = [flag for dest, flag in _NOT_HERE if getattr(args, dest, None)]
    if wrong:
        raise UsageError(f"%aihubmix fix does not take {', '.join(wrong)}: it sends the failing cell and its error, "
                         "and puts the corrected code into a new cell.")
    extras = magics._extras
    failure = last_failure(magics.shell, extras.failures)
    if failure is None:
        print("No cell has failed in this session yet: run the cell that fails, then `%aihubmix fix`.")
        return None
    extras.resolve_models(args)
    mode = "explain" if explain else settings.fix_style
    from ._context import parse_names

    names = list(dict.fromkeys(used_names(failure.code, magics.shell) + parse_names(args.context)))
    prompt = extras.context_for(names, fix_prompt(failure), failure=failure)
    request = magics._request(args, prompt)  # the options checked as a cell's are
    request = request.replace(system=system_prompt(mode, request.system))
    magics._prompt(request, out=args.out, cache=args.cache, present=_presenter(magics.shell, mode),
                   kind="fix")
    return None


def _presenter(shell, mode: str):
    """The finished answer as Markdown; in "fix" mode its last code block also goes into a new cell."""
    if mode != "fix":
        return None

    def present(response) -> list[dict]:
        from ._formats import _in_kernel, cell_insertion_problem

        text = str(response)
        from ._types import code_blocks

        blocks = [code for _, code in code_blocks(text)]
        shown = {"text/markdown": text, "text/plain": text}
        if not blocks:
            note = "The answer has no code block, so no cell was added."
        elif (where := cell_insertion_problem(shell)) is None:
            shell.set_next_input(blocks[-1], replace=False)
            note = ("The corrected code is in a new cell below." if _in_kernel(shell)
                    else "The corrected code is at the next prompt.")
        else:
            note = f"{where} cannot insert a cell from the kernel: copy the code above."
        return [shown, {"text/markdown": f"<sub>{note}</sub>", "text/plain": note}]

    return present


def _cell_names(shell) -> dict[str, int]:
    compiler = getattr(shell, "compile", None)
    names = getattr(compiler, "_filename_map", None)
    return dict(names) if isinstance(names, dict) else {}


def _cell_code(shell, number: int | None, exception: BaseException) -> str | None:
    """The raw code of cell `number`: from the input history when it matches the cell's compiled source."""
    if number is None:
        return None
    history = getattr(shell, "history_manager", None)
    raw = getattr(history, "input_hist_raw", [])
    parsed = getattr(history, "input_hist_parsed", [])
    import linecache

    filename = next((name for name, cell in _cell_names(shell).items() if cell == number), None)
    compiled = "".join(linecache.getlines(filename)) if filename else ""
    if number < len(raw) and number < len(parsed) and (not compiled or parsed[number].strip() == compiled.strip()):
        return raw[number]
    return compiled or None


def _error_line(exception: BaseException) -> str:
    return _ANSI.sub("", traceback.format_exception_only(type(exception), exception)[-1]).strip()


def _fence(text: str) -> str:
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)
