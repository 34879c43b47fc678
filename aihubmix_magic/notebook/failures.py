"""The cell that failed last, as `fix` and `--context error` read it.

It is recorded by a `post_run_cell` hook (`FailureRecorder`): the last cell whose run raised an exception,
prompt cells (`%%aihubmix`, `%aihubmix …`) left out, so a `fix` that fails does not replace the cell it was
about; a later successful run of the same code clears it. Without a record (the extension was loaded after
the failure) `sys.last_value` is used. Its traceback is plain text: no terminal colours, IPython's own frames
left out, the cell's file shown as `Cell In[7], line 2`; a very long one keeps its head and its end.
"""

from __future__ import annotations

import re
import sys
import traceback
from dataclasses import dataclass

__all__ = ["TRACEBACK_LIMIT", "Failure", "FailureRecorder", "last_failure", "plain_traceback"]

TRACEBACK_LIMIT = 6_000  # characters; a longer traceback keeps its first lines and its end

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
