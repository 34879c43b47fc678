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

from IPython.core.error import UsageError

from .failures import Failure, FailureRecorder, last_failure, plain_traceback

__all__ = ["FIX_HEADING", "Failure", "FailureRecorder", "last_failure", "plain_traceback", "run_fix",
           "used_names"]

FIX_HEADING = "A cell in my Jupyter notebook failed"  # the simulator recognises it (simulator._FIX_HEADING)
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
    from ..session.settings import settings

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
    from .context import parse_names

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
        from .formats import _in_kernel, cell_insertion_problem

        text = str(response)
        from ..core.types import code_blocks

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


def _fence(text: str) -> str:
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)
