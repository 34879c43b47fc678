"""`%aihubmix log …`: the newest logged exchanges as Markdown, the log's path, on/off, clear."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any

from ..store.log import SEARCHED_KINDS, log_for, parse_since

__all__ = ["LOG_USAGE", "cmd_log", "markdown"]


def markdown(rows: list[dict[str, Any]], *, limit: int = 600) -> str:
    """`%aihubmix log`: the rows (newest first) as Markdown blocks."""
    from ..services.cost import format_cost, markdown_dollars

    blocks = []
    for row in rows:
        when = datetime.fromtimestamp(row["time"]).strftime("%Y-%m-%d %H:%M:%S")
        head = [f"**{when}**", f"`{row['model']}`", row["endpoint"], row["kind"]]
        if row["thread"] and not row["starts"]:
            head.append(f"thread `{row['thread']}`")
        if row["input_tokens"] is not None:
            head.append(f"{row['input_tokens']:,} → {row['output_tokens'] or 0:,} tokens")
        if row["cost"] is not None:
            head.append(format_cost(row["cost"]))
        if row["status"] not in ("completed", ""):
            head.append(row["status"])
        answer = row["answer"] or ""
        if len(answer) > limit:
            answer = answer[:limit] + "…"
        body = [" · ".join(head), "", "> " + "\n> ".join((row["prompt"] or "").strip().splitlines() or [""]), ""]
        if answer:
            body.append(answer)
        if row["error"]:
            body.append(f"*{row['error']}*")
        blocks.append("\n".join(body))
    return markdown_dollars("\n\n---\n\n".join(blocks))


# -- %aihubmix log --------------------------------------------------------------------------------------------
LOG_USAGE = ("Usage: %aihubmix log [TEXT] [-n N] [--model M] [--thread NAME] | log path | log on | log off | "
             "log clear [--before DATE]")


def cmd_log(rest: list[str]) -> None:
    """`%aihubmix log …` (see LOG_USAGE); bad input is a one-line UsageError."""
    import shlex

    from IPython.core.error import UsageError

    from ..session.settings import settings

    try:
        words = shlex.split(" ".join(rest))
    except ValueError as exc:
        raise UsageError(f"{LOG_USAGE} ({exc})") from None
    log = log_for()
    if words in (["on"], ["off"]):
        settings.log = words[0] == "on"
        print(f"Log {words[0]}: " + (f"every exchange is written to {log.path}." if settings.log else
                                     "exchanges are no longer written (what is logged stays; `%aihubmix log clear` "
                                     "deletes it)."))
        return
    if words == ["path"]:
        print(log.path)
        return
    if words[:1] == ["clear"]:
        before = None
        if words[1:2] == ["--before"] and len(words) == 3:
            try:
                before = parse_since(words[2])
            except ValueError as exc:
                raise UsageError(f"--before: {exc}") from None
        elif len(words) != 1:
            raise UsageError(LOG_USAGE)
        try:
            count = log.clear(before) if log.path.exists() else 0
        except (sqlite3.Error, OSError) as exc:
            raise UsageError(f"Cannot clear the log {log.path}: {exc}") from None
        print(f"Log cleared: {count} exchange{'s' * (count != 1)} deleted"
              + (f" (older than {words[2]})" if before is not None else "") + f" from {log.path}.")
        return
    options: dict[str, Any] = {"n": 10, "model": None, "thread": None}
    text: list[str] = []
    at = 0
    while at < len(words):
        word = words[at]
        if word in ("-n", "--model", "--thread"):
            if at + 1 >= len(words):
                raise UsageError(f"{word} needs a value. {LOG_USAGE}")
            value = words[at + 1]
            if word == "-n":
                if not value.isdigit() or int(value) < 1:
                    raise UsageError(f"-n needs a whole number of at least 1, not {value!r}")
                options["n"] = int(value)
            else:
                options[word.lstrip("-")] = value
            at += 2
            continue
        if word.startswith("-"):
            raise UsageError(f"Unknown option {word}. {LOG_USAGE}")
        text.append(word)
        at += 1
    try:
        rows = log.search(" ".join(text) or None, n=options["n"], model=options["model"], thread=options["thread"],
                          kinds=SEARCHED_KINDS)
    except (sqlite3.Error, OSError) as exc:
        raise UsageError(f"Cannot read the log {log.path}: {type(exc).__name__}: {exc}") from None
    from IPython.display import display

    if not rows:
        what = " matching " + " ".join(text) if text else ""
        message = f"No logged exchanges{what} in {log.path}." + ("" if settings.log else " (The log is off.)")
        display({"text/markdown": message, "text/plain": message}, raw=True)
        return
    body = markdown(rows)
    display({"text/markdown": body, "text/plain": body}, raw=True)
