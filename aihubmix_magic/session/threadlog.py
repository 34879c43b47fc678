"""Conversation threads from the log: what a new kernel continues (`thread_turns`), and `reset` ending a
thread for later kernels too (`end_thread`). The session's `Threads` are given these two functions."""

from __future__ import annotations

import sqlite3
from typing import Any

from ..store.log import _content, log_for, response_of

__all__ = ["end_thread", "thread_turns"]


# -- threads from the log -------------------------------------------------------------------------------------
def thread_turns(name: str) -> list[tuple[Any, Any]]:
    """The turns of conversation thread NAME the log holds (what a new kernel continues), oldest first, as
    (user content, Response); [] when the log is off, empty or unreadable."""
    from .settings import settings

    if not settings.log:
        return []
    log = log_for()
    try:
        rows = log.thread_turns(name)
    except (sqlite3.Error, OSError) as exc:
        log.failed(exc)
        return []
    return [(_content(row), response_of(row)) for row in rows]


def end_thread(name: str) -> int:
    """`%aihubmix reset NAME`: the log's turns of NAME no longer continue it (0 when the log is off)."""
    from .settings import settings

    if not settings.log:
        return 0
    log = log_for()
    try:
        return log.end_thread(name)
    except (sqlite3.Error, OSError) as exc:
        log.failed(exc)
        return 0
