"""What this kernel writes to the log, and reads back: every exchange as it finishes (`record`), one row per
batch run (`record_batch`), the turns of a conversation thread for a new kernel (`thread_turns`), and
`logs()` for Python. The log itself (an SQLite file in the data directory) is `store.log`; this layer knows
the settings (`settings.log` turns it off) and the session's keys (masked before anything is written)."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from typing import Any

from ..core.protocol import DEFAULT_THREAD
from ..store.log import (
    COLUMNS,
    SEARCHED_KINDS,
    _mask,
    log_for,
    parse_since,
    public_row,
    row_of,
)
from .threadlog import end_thread, thread_turns

__all__ = ["end_thread", "logs", "record", "record_batch", "thread_turns"]


def logs(query: str | None = None, *, n: int | None = None, model: str | None = None, thread: str | None = None,
         since: Any = None) -> Any:
    """The logged exchanges, newest first: a pandas DataFrame with the columns time, model, endpoint, prompt,
    answer, status, error, input_tokens, output_tokens, cost, thread, id when pandas is installed, else a list
    of dicts. `query`: words that must all appear in the prompt or the answer (full-text search);
    `n`: at most that many; `model`, `thread`: only those; `since`: a datetime, date, ISO string or
    timedelta. Tool steps and batch items are left out (batch runs are in, the template as the prompt)."""
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"n must be a whole number of at least 1, not {n!r}")
    start = parse_since(since)
    rows = [public_row(row) for row in log_for().search(query, n=n, model=model, thread=thread, since=start,
                                                        kinds=SEARCHED_KINDS)]
    try:
        import pandas as pd
    except ImportError:
        return rows
    return pd.DataFrame(rows, columns=list(COLUMNS))


# -- writing from the session ---------------------------------------------------------------------------------
def record(responses: Iterable[Any], kind: str) -> int:
    """Log answers as they finish (a cell's, each column of a comparison, a tool step): one transaction.
    Nothing when `settings.log` is off; a log that cannot be written warns once and is skipped."""
    from ..services.cost import response_cost
    from . import state as _session
    from .settings import settings

    if not settings.log:
        return 0
    log = log_for()
    try:
        keys = _session.current().keys()
        # with a budget per day or month the cost must be known: wait (a second at most) for the catalog
        from ..services.catalog import PROMPT_WAIT

        wait = PROMPT_WAIT if settings.budget_day is not None or settings.budget_month is not None else 0.0
        rows = []
        infos: dict = {}  # each model looked up once (a batch's items)
        for response in responses:
            if response is None:
                continue
            spec = getattr(response, "spec", None)
            thread = getattr(spec, "thread", None)
            starts = kind == "cell" and thread is None  # a cell that stands alone starts the default thread anew
            rows.append(row_of(response, kind, keys=keys, thread=DEFAULT_THREAD if starts else thread, starts=starts,
                               cost=response_cost(response, wait, infos)))
        return log.write(rows)
    except (sqlite3.Error, OSError) as exc:
        log.failed(exc)
        return 0


def record_batch(results: Any, *, template: str | None, model: str, endpoint: str) -> int:
    """Log one run of a batch: the template, the model, counts, tokens and cost (its items, with
    `log_items=True`, are logged by the run as they finish: `record(…, "batch_item")`)."""
    from . import state as _session
    from .settings import settings

    if not settings.log:
        return 0
    log = log_for()
    try:
        keys = _session.current().keys()
        summary = getattr(results, "summary", results)  # a BatchResults, or the BatchSummary of an out= run
        extra = {"ok": summary.ok, "cancelled": summary.cancelled, "cached": summary.cached,
                 "resumed": summary.resumed, "elapsed": round(summary.elapsed, 3)}
        status = "completed" if summary.ok == summary.total else ("cancelled" if summary.partial else "incomplete")
        row = {"time": time.time(), "kind": "batch", "model": model, "endpoint": endpoint,
               "prompt": _mask(template or "{}", keys), "answer": str(summary), "status": status,
               "input_tokens": summary.input_tokens, "output_tokens": summary.output_tokens, "cost": summary.cost,
               "starts": 0, "items": summary.total, "failed": summary.failed, "extra": json.dumps(extra)}
        return log.write([row])
    except (sqlite3.Error, OSError) as exc:
        log.failed(exc)
        return 0


