"""Answers the simulator writes: code for a task, a pandas line for a DataFrame in the context, the fix of a
failed cell, the shaped text of a reply and its reasoning."""

from __future__ import annotations

import functools
import json
import random
import re
import sys
import zlib
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    pass

from .data import _MAX_WORDS, _UNICODE_SAMPLE, _VOCABULARY
from .reading import (
    _CELL_LABEL,
    _ERROR_LABEL,
    _FIX_HEADING,
    _STOPWORDS,
    _SUMMARY,
    _case_like,
    _choose,
    _filler,
    _has_word,
    _json_answer,
    _options,
    _parse_prompt,
    _Prompt,
    _quote,
    _reason,
    _sentence_split,
    _Shape,
    _shape,
    _tokenize,
    _words_of,
)

# -- code --------------------------------------------------------------------------------------------

_LANGUAGES = {  # a word in the prompt -> the fence's language
    "python": "python", "javascript": "javascript", "js": "javascript", "node": "javascript",
    "typescript": "typescript", "sql": "sql", "bash": "bash", "shell": "bash", "r": "r",
}
_WANTS_CODE = re.compile(
    r"\b(?:write|implement|create|define|code|make)\s+(?:me\s+)?(?:a|an|the|some)?\s*"
    r"(?:small\s+|short\s+|simple\s+|quick\s+|tiny\s+)?(?:python\s+|javascript\s+|js\s+|typescript\s+|sql\s+|bash\s+"
    r"|shell\s+|r\s+)?(?:function|script|program|class|method|query|snippet|code|regex|one-liner)\b",
    re.IGNORECASE,
)
# (pattern, function name, python body, javascript body); {name} is the function's name
_RECIPES = (
    (r"revers\w*", "reverse_string", "text: str", "str",
     '"""Return the text with its characters in reverse order."""\n    return text[::-1]', '"notebook"',
     "return text.split('').reverse().join('');"),
    (r"palindrome", "is_palindrome", "text: str", "bool",
     '"""True if the text reads the same backwards, ignoring case and spaces."""\n'
     '    letters = [c.lower() for c in text if c.isalnum()]\n    return letters == letters[::-1]',
     '"Never odd or even"', "const s = text.toLowerCase().replace(/[^a-z0-9]/g, '');\n"
     "  return s === s.split('').reverse().join('');"),
    (r"factorial", "factorial", "n: int", "int",
     '"""n! = 1 * 2 * ... * n, for n >= 0."""\n    if n < 0:\n        raise ValueError("n must be 0 or more")\n'
     "    result = 1\n    for k in range(2, n + 1):\n        result *= k\n    return result", "5",
     "let result = 1;\n  for (let k = 2; k <= n; k++) result *= k;\n  return result;"),
    (r"fibonacci", "fibonacci", "n: int", "list[int]",
     '"""The first n Fibonacci numbers."""\n    numbers = []\n    a, b = 0, 1\n    for _ in range(n):\n'
     "        numbers.append(a)\n        a, b = b, a + b\n    return numbers", "10",
     "const out = [];\n  let [a, b] = [0, 1];\n  for (let i = 0; i < n; i++) { out.push(a); [a, b] = [b, a + b]; }\n"
     "  return out;"),
    (r"primes?\b", "is_prime", "n: int", "bool",
     '"""True if n is a prime number."""\n    if n < 2:\n        return False\n'
     "    return all(n % k for k in range(2, int(n ** 0.5) + 1))", "97",
     "if (n < 2) return false;\n  for (let k = 2; k * k <= n; k++) if (n % k === 0) return false;\n  return true;"),
    (r"vowels?", "count_vowels", "text: str", "int",
     '"""How many vowels (a, e, i, o, u) the text has."""\n    return sum(1 for c in text.lower() if c in "aeiou")',
     '"Jupyter notebook"', "return (text.match(/[aeiou]/gi) || []).length;"),
    (r"count\w*\s+(?:the\s+)?words|word\s+count", "count_words", "text: str", "int",
     '"""How many words the text has."""\n    return len(text.split())', '"to be or not to be"',
     "return text.split(/\\s+/).filter(Boolean).length;"),
    (r"average|\bmean\b", "average", "values: list[float]", "float",
     '"""The arithmetic mean of the values."""\n    if not values:\n        raise ValueError("no values")\n'
     "    return sum(values) / len(values)", "[3, 4, 5]",
     "return values.reduce((a, b) => a + b, 0) / values.length;"),
    (r"\bsums?\b|\btotal\b|add\s+up", "sum_values", "values: list[float]", "float",
     '"""The sum of the values."""\n    total = 0\n    for value in values:\n        total += value\n    return total',
     "[1, 2, 3]", "return values.reduce((a, b) => a + b, 0);"),
    (r"\bmax\w*|largest|biggest", "largest", "values: list[float]", "float",
     '"""The largest of the values."""\n    return max(values)', "[3, 9, 4]", "return Math.max(...values);"),
    (r"\bmin\w*|smallest", "smallest", "values: list[float]", "float",
     '"""The smallest of the values."""\n    return min(values)', "[3, 9, 4]", "return Math.min(...values);"),
    (r"\bsort", "sort_values", "values: list", "list",
     '"""The values in ascending order (a new list)."""\n    return sorted(values)', "[3, 1, 2]",
     "return [...values].sort((a, b) => a - b);"),
    (r"fahrenheit|celsius", "celsius_to_fahrenheit", "celsius: float", "float",
     '"""Degrees Celsius in degrees Fahrenheit."""\n    return celsius * 9 / 5 + 32', "100",
     "return celsius * 9 / 5 + 32;"),
    (r"fizz\s*buzz", "fizzbuzz", "n: int", "list[str]",
     '"""FizzBuzz from 1 to n."""\n    out = []\n    for k in range(1, n + 1):\n'
     '        out.append("FizzBuzz" if k % 15 == 0 else "Fizz" if k % 3 == 0 else "Buzz" if k % 5 == 0 else str(k))\n'
     "    return out", "15",
     "return Array.from({length: n}, (_, i) => (i + 1) % 15 === 0 ? 'FizzBuzz' : (i + 1) % 3 === 0 ? 'Fizz'"
     " : (i + 1) % 5 === 0 ? 'Buzz' : String(i + 1));"),
    (r"duplicates?|unique", "unique", "values: list", "list",
     '"""The values without duplicates, in their first order."""\n    return list(dict.fromkeys(values))',
     "[1, 2, 2, 3, 1]", "return [...new Set(values)];"),
    (r"even\b", "is_even", "n: int", "bool", '"""True if n is even."""\n    return n % 2 == 0', "4",
     "return n % 2 === 0;"),
)


def _language(text: str) -> str:
    for word in re.findall(r"[A-Za-z+#]+", text):
        low = word.lower()
        if low == "r" and word != "R":
            continue
        if low in _LANGUAGES:
            return _LANGUAGES[low]
    return "python"


def _task(request: str) -> str:
    """What the code should do: the words after "that", "which" or "to", as a phrase."""
    match = re.search(r"\b(?:that|which|to|for)\s+(.+?)(?:[.?!\n]|$)", request)
    return (match.group(1) if match else request).strip()


def _snake_name(task: str) -> str:
    words = [w for w in _words_of(task) if w not in _STOPWORDS and w.isalpha()][:3]
    if words and words[0].endswith("s") and len(words[0]) > 3 and not words[0].endswith("ss"):
        words[0] = words[0][:-1]  # "reverses" -> "reverse", "cleans" -> "clean"
    return "_".join(words) or "solve"


def _code_answer(ask: _Prompt) -> str:
    """One fenced block in the language asked; Python always parses."""
    language = _language(ask.request)
    text = ask.request
    frames = _context_frames(ask.context)
    recipe = next((r for r in _RECIPES if re.search(r[0], text, re.IGNORECASE)), None)
    name = None
    if recipe is not None:
        _, name, parameters, returns, body, example, js_body = recipe
    if language == "python" and frames and (name is None or not _has_word(text, "function|def")):
        return f"```python\n{_pandas_code(ask.request, frames)}\n```"
    if language == "sql":
        table = re.search(r"\b(?:from|in|of)\s+(?:the\s+)?(\w+)\s+table\b|\btable\s+(\w+)", text, re.I)
        table_name = next((g for g in table.groups() if g), "items") if table else "items"
        return f"```sql\nSELECT *\nFROM {table_name}\nLIMIT 10;\n```"
    if language == "bash":
        return '```bash\n#!/usr/bin/env bash\nset -euo pipefail\necho "Done: ' + _task(text).replace('"', "") + '"\n```'
    if name is None:
        task = _task(text)
        name = _snake_name(task)
        parameters, returns, example = "value", "object", "None"
        body = f'"""{task[:1].upper() + task[1:].rstrip(".")}."""\n    result = value\n    return result'
        js_body = "return value;"
    if language in ("javascript", "typescript"):
        camel = re.sub(r"_(\w)", lambda m: m.group(1).upper(), name)
        params = ", ".join(p.split(":")[0].strip() for p in parameters.split(","))
        return f"```{language}\nfunction {camel}({params}) {{\n  {js_body}\n}}\n\nconsole.log({camel}({example}));\n```"
    if language == "r":
        params = ", ".join(p.split(":")[0].strip() for p in parameters.split(","))
        return f"```r\n{name} <- function({params}) {{\n  {params.split(',')[0]}\n}}\n```"
    call = "" if example == "None" else f"\n\n\nprint({name}({example}))"
    return f"```python\ndef {name}({parameters}) -> {returns}:\n    {body}{call}\n```"


# -- context and fix ---------------------------------------------------------------------------------


class _Frame(NamedTuple):
    name: str
    rows: int
    columns: list[tuple[str, str]]  # (name, dtype)


def _context_items(context: str) -> list[tuple[str, str]]:
    """(name, one-line summary) of every object in a context section."""
    return re.findall(r"^`([^`\n]+)` — ([^\n]+)$", context, re.MULTILINE)


def _context_frames(context: str) -> list[_Frame]:
    """The DataFrames in a context section, with their columns."""
    frames = []
    for match in re.finditer(r"^`([^`\n]+)` — pandas DataFrame: ([\d,]+) rows? × [\d,]+ columns?\n(`{3,})text\n(.*?)^\3$",
                             context, re.MULTILINE | re.DOTALL):
        block = match.group(4)
        listing = re.search(r"^columns \(dtype, nulls\):\n((?:  .*\n)+)", block, re.MULTILINE)
        columns = []
        for line in (listing.group(1).splitlines() if listing else []):
            column = re.fullmatch(r"  (.+): (\S+), [\d,]+ nulls?", line)
            if column:
                columns.append((column.group(1), column.group(2)))
        frames.append(_Frame(match.group(1), int(match.group(2).replace(",", "")), columns))
    return frames


def _context_sentence(context: str) -> str:
    """What the answer says about the context it was sent."""
    parts = []
    frames = {frame.name: frame for frame in _context_frames(context)}
    for name, summary in _context_items(context):
        frame = frames.get(name)
        if frame is not None:
            columns = ", ".join(f"`{column}` ({dtype})" for column, dtype in frame.columns)
            parts.append(f"`{name}` is a DataFrame of {frame.rows:,} rows with the columns {columns}")
        elif name.startswith("cells:"):
            parts.append(f"I read {summary}")
        elif name == "error":
            parts.append(f"the last error was {summary.split(': ', 1)[-1]}")
        else:
            parts.append(f"`{name}` is {summary[:1].lower() + summary[1:]}")
    if not parts:
        return ""
    return "From the notebook context: " + "; ".join(parts) + "."


def _numeric_columns(frame: _Frame) -> list[str]:
    return [name for name, dtype in frame.columns if re.match(r"(?:int|float|uint|Int|Float)", dtype)]


def _pandas_code(request: str, frames: list[_Frame]) -> str:
    frame = frames[0]
    mentioned = [c for c, _ in frame.columns if re.search(rf"\b{re.escape(c)}\b", request, re.IGNORECASE)]
    numeric = _numeric_columns(frame)
    value = next((c for c in mentioned if c in numeric), numeric[0] if numeric else None)
    group = next((c for c in mentioned if c != value and c not in numeric), None)
    if group is None:
        group = next((c for c, dtype in frame.columns if dtype in ("object", "category", "string")), None)
    lines = ["import matplotlib.pyplot as plt", ""] if _has_word(request, r"plot|chart|graph|histogram") else []
    if value and group and _has_word(request, r"per|by|each|group\w*|average|mean|compare"):
        lines += [f'summary = {frame.name}.groupby("{group}")["{value}"].mean().sort_values()']
        if lines[0].startswith("import"):
            lines += [f'summary.plot.barh(title="Mean {value} per {group}")', "plt.show()"]
        else:
            lines += ["summary"]
    elif value and _has_word(request, r"plot|chart|graph|histogram|distribution"):
        lines += [f'{frame.name}["{value}"].plot.hist(bins=10, title="{value}")', "plt.show()"]
    else:
        lines += [f"{frame.name}.describe(include=\"all\")"]
    return "\n".join(lines)


class _Failure(NamedTuple):
    code: str
    error_type: str
    message: str
    line: int | None


def _failure(request: str) -> _Failure | None:
    """The failing cell and its error, from the prompt `%aihubmix fix` builds."""
    if _FIX_HEADING not in request:
        return None
    cell = re.search(rf"^{_CELL_LABEL}[^\n]*:\n(`{{3,}})python\n(.*?)\n\1$", request, re.MULTILINE | re.DOTALL)
    error = re.search(rf"^{_ERROR_LABEL}[^\n]*:\n(`{{3,}})text\n(.*?)\n\1$", request, re.MULTILINE | re.DOTALL)
    if not error:
        return None
    traceback_text = error.group(2)
    last = next((line for line in reversed(traceback_text.splitlines()) if re.match(r"\w[\w.]*(?::|$)", line)), "")
    error_type, _, message = last.partition(":")
    # the innermost frame in the failing cell itself (a function it calls may come from another cell)
    number = re.search(r"failed \(In \[(\d+)\]\)", request)
    frames = re.findall(r"Cell In\[(\d+)\], line (\d+)", traceback_text)
    own = [line for cell_number, line in frames if number and cell_number == number.group(1)]
    line = own[-1] if own else frames[0][1] if frames else None
    return _Failure(cell.group(2) if cell else "", error_type.strip(), message.strip(),
                    int(line) if line else None)


def _close_match(word: str, candidates: list[str]) -> str | None:
    import difflib

    matches = difflib.get_close_matches(word, [c for c in candidates if c != word], n=1, cutoff=0.6)
    return matches[0] if matches else None


def _fix_answer(failure: _Failure, ask: _Prompt) -> str:
    """Explanation (and, unless a hint or an explanation alone is asked for, the corrected cell)."""
    hint = _has_word(ask.system, "hints?")
    explain_only = re.search(r"do not (?:write|give|show) (?:the )?(?:corrected|fixed) code", ask.system, re.I)
    error = f"`{failure.error_type}: {failure.message}`" if failure.message else f"`{failure.error_type}`"
    where = f"line {failure.line}" if failure.line else "the cell"
    code_lines = failure.code.splitlines()
    failing_line = code_lines[failure.line - 1].strip() if failure.line and failure.line <= len(code_lines) else ""
    frames = _context_frames(ask.context)
    columns = [c for frame in frames for c, _ in frame.columns]
    names_in_code = sorted(set(re.findall(r"\b[A-Za-z_]\w*\b", failure.code)))
    context_names = [name for name, _ in _context_items(ask.context)]
    wrong = right = None
    explanation = f"The cell fails at {where} with {error}."
    quoted = re.search(r"'([^']+)'", failure.message)
    if failure.error_type == "NameError" and quoted:
        wrong = quoted.group(1)
        right = _close_match(wrong, names_in_code + context_names)
        explanation += f" Python does not know the name `{wrong}`: nothing of that name is defined when that line runs."
    elif failure.error_type == "KeyError" and quoted:
        wrong = quoted.group(1)
        right = _close_match(wrong, columns)
        where_from = f" `{frames[0].name}` has the columns {', '.join(f'`{c}`' for c in columns)}." if frames else ""
        explanation += f" There is no key or column `{wrong}`.{where_from}"
    elif failure.error_type == "AttributeError" and quoted:
        attribute = re.findall(r"'([^']+)'", failure.message)[-1]
        wrong = attribute
        right = _close_match(attribute, columns + names_in_code)
        explanation += f" The object has no attribute `{attribute}`."
    elif failure.error_type in ("ModuleNotFoundError", "ImportError") and quoted:
        explanation += f" The package `{quoted.group(1)}` is not installed in this kernel's environment."
    elif failure.error_type == "ZeroDivisionError":
        explanation += " A number is divided by zero there: check that the divisor cannot be 0 (an empty list?)."
    elif failure.error_type == "TypeError":
        explanation += " An operation got a value of a type it cannot handle: check the types of the values there."
    elif failure.error_type in ("SyntaxError", "IndentationError"):
        explanation += " Python cannot read the code there: check brackets, quotes, colons and indentation."
    elif failure.error_type == "IndexError":
        explanation += " An index is past the end of a sequence: check its length first."
    right = _typo_fix(failure, ask, wrong, right)
    if right:
        explanation += f" It looks like a typo for `{right}`."
    if hint:
        look = f" Look closely at `{failing_line}`." if failing_line else ""
        if wrong:
            look += f" Which names does the cell define, and how is `{wrong}` spelt there?"
        return f"**Hint:** the error is {error}.{look} Read the last line of the traceback again, then try once more."
    if explain_only:
        fix = f" Change `{wrong}` to `{right}` and run the cell again." if right else ""
        return explanation + fix
    if right and wrong:
        fixed = re.sub(rf"(?<![\w.]){re.escape(wrong)}(?!\w)" if failure.error_type == "NameError"
                       else rf"(?<=[.'\"]){re.escape(wrong)}(?=['\"]|\b)", right, failure.code)
        change = f"Here is the cell with `{wrong}` changed to `{right}`:"
    elif failure.error_type in ("ModuleNotFoundError", "ImportError") and quoted:
        fixed = f"%pip install {quoted.group(1).split('.')[0]}\n{failure.code}"
        change = "Install it first, then run the cell again:"
    elif repaired := _repaired_cell(failure):
        fixed, change = repaired
    else:
        fixed_lines = list(code_lines)
        if failure.line and failure.line <= len(fixed_lines):
            fixed_lines[failure.line - 1] += f"  # <- {failure.error_type} here"
        fixed = "\n".join(fixed_lines)
        change = "Here is the cell with the line to change marked; fix it as described above:"
    fence = "```" if "```" not in fixed else "~~~~"
    return f"{explanation}\n\n{change}\n\n{fence}python\n{fixed}\n{fence}"


# a fix that runs: the demo's corrected cell must not fail again for the common errors (a division by
# zero, a misspelt name / key / attribute, an index out of range, a string added to a number, a standard
# module used without its import); each repair changes only the failing line, or adds the import on top
_MODULE_ALIASES = {"np": "numpy", "pd": "pandas", "plt": "matplotlib.pyplot", "sns": "seaborn"}


def _missing_import(failure: _Failure) -> str | None:
    """`import math` for "name 'math' is not defined" (a standard module, or a usual alias), else None."""
    named = re.search(r"name '([A-Za-z_]\w*)' is not defined", failure.message)
    if failure.error_type != "NameError" or not named:
        return None
    name = named.group(1)
    if name in sys.stdlib_module_names and not name.startswith("_"):
        return f"import {name}"
    return f"import {_MODULE_ALIASES[name]} as {name}" if name in _MODULE_ALIASES else None


def _typo_fix(failure: _Failure, ask: _Prompt, wrong: str | None, right: str | None) -> str | None:
    """The existing name for a misspelt one: Python's own "Did you mean", else the closest among the
    builtins (a name), the attributes of a builtin type or a standard module (an attribute), or the strings
    of the cell and its context (a key). None for a module used without its import."""
    if wrong is None or _missing_import(failure):
        return None
    suggested = re.search(r"Did you mean:? '([^']+)'", failure.message)
    if right or suggested:
        return right or (suggested.group(1) if suggested else None)
    import builtins

    candidates: list[str] = []
    if failure.error_type == "NameError":
        candidates = dir(builtins)
    elif failure.error_type == "AttributeError":
        owner = re.match(r"'(\w+)' object has no attribute", failure.message)
        module = re.match(r"module '([\w.]+)' has no attribute", failure.message)
        if owner and isinstance(getattr(builtins, owner.group(1), None), type):
            candidates = dir(getattr(builtins, owner.group(1)))
        elif module and module.group(1).split(".")[0] in sys.stdlib_module_names:
            import importlib

            try:
                candidates = dir(importlib.import_module(module.group(1)))
            except Exception:  # a standard module this platform lacks
                candidates = []
    elif failure.error_type == "KeyError":
        text = failure.code + "\n" + ask.context
        candidates = [a or b for a, b in re.findall(r"'([^'\n]{1,60})'|\"([^\"\n]{1,60})\"", text)]
    return _close_match(wrong, [c for c in dict.fromkeys(candidates) if not c.startswith("_")])


def _repaired_cell(failure: _Failure) -> tuple[str, str] | None:
    """(the corrected cell, the sentence that introduces it) for an error whose repair is mechanical, or
    None. Only the failing line changes (its source is edited where the parsed nodes stand)."""
    imported = _missing_import(failure)
    if imported:
        return f"{imported}\n{failure.code}", f"Here is the cell with `{imported}` added at the top:"
    import ast

    lines = failure.code.splitlines()
    if not failure.line or failure.line > len(lines):
        return None
    try:
        tree = ast.parse(failure.code)
    except SyntaxError:
        return None
    number, line = failure.line, lines[failure.line - 1].encode()  # ast's columns count UTF-8 bytes

    def on_line(node: ast.AST) -> bool:
        return getattr(node, "lineno", None) == number and getattr(node, "end_lineno", None) == number

    def source(node: ast.expr) -> str:
        return line[node.col_offset:node.end_col_offset].decode()

    def is_text(node: ast.expr) -> bool:
        return isinstance(node, ast.JoinedStr) or isinstance(node, ast.Constant) and isinstance(node.value, str)

    edits: list[tuple[ast.expr, str]] = []  # (node, its replacement)
    nodes = [node for node in ast.walk(tree) if on_line(node)]
    if failure.error_type == "ZeroDivisionError":
        for node in nodes:
            if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Div, ast.FloorDiv, ast.Mod)) and not (
                    isinstance(node.right, ast.Constant) and node.right.value):
                edits.append((node, f"({source(node)} if {source(node.right)} else 0)"))
        change = "Here is the cell with the division guarded (0 where the divisor is 0):"
    elif failure.error_type == "IndexError":
        for node in nodes:
            if not isinstance(node, ast.Subscript) or isinstance(node.slice, (ast.Slice, ast.Tuple)):
                continue
            sized = node.value.value if isinstance(node.value, ast.Attribute) and node.value.attr in (
                "iloc", "iat") else node.value
            index, length = source(node.slice), f"len({source(sized)})"
            if isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, int):
                edits.append((node, f"{source(node.value)}[-1]"))
            else:
                edits.append((node, f"({source(node)} if -{length} <= {index} < {length} else None)"))
        change = "Here is the cell reading only indexes that exist (the last item, or None past the end):"
    elif failure.error_type == "TypeError" and re.search(r"concatenate str|operand type\(s\) for \+=?:", failure.message):
        number_first = "operand type(s)" in failure.message  # 'int' + 'str', not 'str' + 'int'
        for node in nodes:
            if isinstance(node, ast.AugAssign) and isinstance(node.op, ast.Add):
                if number_first and isinstance(node.value, ast.Constant) and str(node.value.value).strip().isdigit():
                    edits.append((node.value, str(int(str(node.value.value)))))
                elif number_first:
                    edits.append((node.value, f"float({source(node.value)})"))
                else:
                    edits.append((node.value, f"str({source(node.value)})"))
            elif (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add)
                  and is_text(node.left) != is_text(node.right)):
                text, other = (node.left, node.right) if is_text(node.left) else (node.right, node.left)
                if isinstance(text, ast.Constant) and str(text.value).strip().isdigit():
                    edits.append((text, str(int(str(text.value)))))  # "5" meant as the number 5
                else:
                    edits.append((other, f"str({source(other)})"))
        if not edits:  # two names: the number becomes text, so the line runs
            for node in nodes:
                if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
                    edits.append((node.left if number_first else node.right,
                                  f"str({source(node.left if number_first else node.right)})"))
                    break
        change = "Here is the cell with the text and the number made the same type:"
    if not edits:
        return None
    kept: list[tuple[int, int, str]] = []  # innermost first; an edit around another one is dropped
    for node, replacement in sorted(edits, key=lambda edit: (edit[0].end_col_offset or 0) - edit[0].col_offset):
        start, end = node.col_offset, node.end_col_offset or node.col_offset
        if all(end <= s or start >= e for s, e, _ in kept):
            kept.append((start, end, replacement))
    for start, end, replacement in sorted(kept, reverse=True):
        line = line[:start] + replacement.encode() + line[end:]
    lines[number - 1] = line.decode()
    return "\n".join(lines), change


# -- the answer --------------------------------------------------------------------------------------


def _shaped_text(rng: random.Random, shape: _Shape, ask: _Prompt) -> list[str] | None:
    """Paragraphs for a prompt that asks for a length (sentences, paragraphs, words), or None."""
    if shape.max_words and ask.judged and _has_word(ask.instruction, _SUMMARY):
        words = _sentence_split(ask.judged)[0].rstrip(".!?;").split()[: shape.max_words]
        return [" ".join(words) + "."]
    if _has_word(ask.instruction, _SUMMARY) and ask.judged:
        count = shape.sentences or 1
        return [" ".join(_sentence_split(ask.judged)[:count])]
    if shape.max_words:
        words = rng.choices(_VOCABULARY, k=max(1, min(shape.max_words, 12)))
        sentence = " ".join(words)
        return [sentence[:1].upper() + sentence[1:] + "."]
    if shape.sentences:
        return [" ".join(_filler(rng, rng.randint(6, 11)) for _ in range(min(shape.sentences, 20)))]
    if shape.paragraphs:
        return [_filler(rng, rng.randint(25, 45)) for _ in range(min(shape.paragraphs, 10))]
    return None


def _choice_answer(options: list[str], shape: _Shape, ask: _Prompt) -> str:
    chosen = _case_like(_choose(options, ask.judged, ask.instruction), options)
    if shape.one_word and not _has_word(ask.request, r"reason|why|explain|because|justify"):
        return chosen
    reason = "" if chosen.lower() in ("yes", "no", "true", "false", "maybe") else _reason(chosen, ask.judged)
    return f"{chosen[:1].upper() + chosen[1:]} — {reason}" if reason else chosen


@functools.lru_cache(maxsize=8)  # long answers take tens of MB
def _answer_tokens(
    model: str, prompt: str, images: int, json_mode: bool, schema_text: str | None, unicode_sample: bool,
    system: str = "",
) -> tuple[str, ...]:
    """The tokens of the answer; the same arguments always give the same answer."""
    rng = random.Random(zlib.crc32(f"{model}\n{prompt}".encode()))
    lead_sentences = [f"I see {images} image(s)."] if images else []
    if unicode_sample:
        lead_sentences.append(_UNICODE_SAMPLE)
    lead = " ".join(lead_sentences)
    ask = _parse_prompt(prompt, system)
    failure = _failure(ask.request)
    if failure is not None:
        return tuple(_tokenize(_fix_answer(failure, ask)))
    if json_mode or schema_text is not None or _has_word(ask.request, "json"):
        schema = json.loads(schema_text) if schema_text is not None else None
        return tuple(_tokenize(_json_answer(rng, model, lead, schema, ask)))
    if _WANTS_CODE.search(ask.request) or re.search(r"fenced code block", system, re.IGNORECASE):
        return tuple(_tokenize(_code_answer(ask)))
    shape = _shape(ask.request + "\n" + system)
    options = _options(ask.instruction)
    if options and not lead:
        return tuple(_tokenize(_choice_answer(options, shape, ask)))
    if shape.one_word and not lead:
        return tuple(_tokenize(rng.choice(_VOCABULARY).capitalize()))

    blocks = [f"*Simulated answer from {model}.*"]
    if _has_word(ask.request, "headings?"):
        blocks.insert(0, "## " + " ".join(rng.choices(_VOCABULARY, k=3)).title())
    if ask.context and (sentence := _context_sentence(ask.context)):
        blocks.append(sentence)
    words = re.search(r"\bwords=(\d+)", ask.request, re.IGNORECASE)
    shaped = _shaped_text(rng, shape, ask)
    if words:
        paragraphs = [lead] if lead else []
        remaining = min(int(words.group(1)), _MAX_WORDS)
        while remaining > 0:
            size = min(remaining, rng.randint(40, 80))
            paragraphs.append(_filler(rng, size))
            remaining -= size
    elif shaped is not None:
        paragraphs = ([lead] if lead else []) + shaped
    elif shape.bullets:
        paragraphs = [lead] if lead else []
    else:
        opening = f'You asked: "{_quote(ask.request)}".' if ask.request.strip() else "You asked nothing in particular."
        first = " ".join(part for part in (opening, lead) if part)
        paragraphs = [first + " " + _filler(rng, rng.randint(25, 45) - len(first.split()))]
        if rng.random() < 0.5:
            paragraphs.append(_filler(rng, rng.randint(25, 45)))
    blocks += paragraphs + _markdown_blocks(rng, ask.request, shape)
    return tuple(_tokenize("\n\n".join(blocks)))


def _markdown_blocks(rng: random.Random, prompt: str, shape: _Shape) -> list[str]:
    """The extra blocks that directives in the prompt ask for."""
    blocks = []
    if _has_word(prompt, "bold"):
        blocks.append(f"This sentence has **bold text** about the {' '.join(rng.choices(_VOCABULARY, k=2))}.")
    if shape.bullets is not None:
        count = min(shape.bullets or 3, 50)
        blocks.append("\n".join(f"- {_filler(rng, rng.randint(3, 6))}" for _ in range(count)))
    if _has_word(prompt, "tables?"):
        rows = [f"| {rng.choice(_VOCABULARY)} | {rng.randint(1, 99)} |" for _ in range(3)]
        blocks.append("\n".join(["| Name | Value |", "| --- | --- |", *rows]))
    if _has_word(prompt, "code"):
        name = rng.choice(_VOCABULARY)
        blocks.append(
            f"```python\ndef {name}_total(values):\n    total = sum(values)\n"
            f"    return total * {rng.randint(2, 9)}\n```"
        )
    return blocks


def _reasoning_tokens(model: str, prompt: str) -> tuple[str, ...]:
    """A short thinking text of 12 to 18 tokens."""
    rng = random.Random(zlib.crc32(f"reasoning\n{model}\n{prompt}".encode()))
    topic = " ".join(prompt.split()[:5]) or "the question"
    words = f'Let me think about "{topic}" step by step,'.split()
    extra = rng.choices(_VOCABULARY, k=max(0, rng.randint(12, 18) - len(words) - 1))
    return tuple(_tokenize(" ".join([*words, *extra, "done."])))
