"""`batch()`: many prompts at once, concurrently, paced to the server's rate limits, resumable.

    from aihubmix_magic import batch
    answers = batch(["Say hi", "Say bye"], model="gpt-4o-mini")       # a list of Response, in input order
    df["label"] = batch(df, template="Positive or negative? {review}")  # a Series of texts, df's index
    summary = batch("reviews.csv", column="review", out="labels.jsonl")  # row by row, answers to a file
    job = batch(prompts, wait=False)                                    # a BatchJob: the notebook stays free

How it runs:

- The requests go out on a private event loop in a helper thread, so `batch()` works the same in a
  script, in terminal IPython and in a kernel whose own loop is already running (that loop is never used
  nor blocked on). `concurrency` workers each send one request at a time on their own keep-alive
  connection (`_async.AsyncDriver.lane`). The answers are not streamed.
- Each item is a typed `Request`; the body, the retry policy (PROTOCOL §4) and the error mapping are the
  protocol core's (`_protocol.py`), sent by the async driver (`_async.py`): a failed item becomes a
  Response with status "failed" and `.error` set; the others go on.
- Rate limits slow the whole batch, not one item: one `Limiter` (`_ratelimit.py`) shared by the workers
  honours `retry-after` and `x-ratelimit-*`, halves the concurrency on a 429 (or a 503/529 overloaded)
  and grows it back on successes, and paces to `rpm` / `tpm` when asked. Those answers are retried until
  the item succeeds or no item has finished for `settings.rate_limit_patience` seconds; any other failure
  keeps the normal retry policy (`settings.max_retries`).
- Finished answers are journaled as they arrive (`_journal.py`, unless `resume=False`): the same batch
  run again after an interrupt, an error or a crash sends only the items that had not finished. A batch
  whose every item was answered drops its entries.
- The calling thread shows the progress (`_progress.py`) and handles an interrupt (`_live.Live`): the
  finished items are kept, the others get status "cancelled", and the result is marked partial.
- With the cache on (`settings.cache` or `cache=True`), items already answered come from the cache and
  new completed answers are stored in it.
- A list, a Series or a DataFrame is read at once (`_Run`: a Request per prompt). A generator, any other
  iterable or a prompts file (`_batchfiles.py`) is read as the workers need items, and `out=` writes each
  answer to a file instead of keeping it; `wait=False` returns a `BatchJob` at once: both are in
  `_batchjob.py`. Batches running at once (jobs, and one in the foreground) share the `Limiter` of their
  base URL and model (`_shared_limiter`).
- Options are named; other body fields go only through `extra_body` (an unknown keyword is a TypeError).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence, Sized
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import _cost
from ._exceptions import BatchInputError, InvalidRequestError
from ._live import Live
from ._progress import Progress, progress_view
from ._ratelimit import Limiter
from ._request import ENDPOINTS, Request
from ._response import Response

if TYPE_CHECKING:
    from ._async import AsyncDriver, _HttpxLane
    from ._cache import ResponseCache
    from ._client import Client
    from ._journal import Journal
    from ._lane import Lane

__all__ = ["BatchResults", "BatchSummary", "batch"]

OK_STATUSES = ("completed", "incomplete")
_POLL = 0.1  # seconds between progress repaints on the calling thread


@dataclass(frozen=True)
class BatchSummary:
    """How a batch went. `ok` counts answers (completed, or cut short by a token limit); `partial` is
    True when the batch was interrupted before every item finished. `cached` answers came from the
    response cache and `resumed` ones from the journal of an earlier run of the same batch (neither is
    counted in the tokens); `retries` counts every request sent again, `rate_limited` the answers among
    them that asked the batch to slow down (429, 503/529 overloaded)."""

    total: int
    ok: int
    failed: int
    cancelled: int
    cached: int
    input_tokens: int
    output_tokens: int
    retries: int
    elapsed: float
    partial: bool
    cost: float | None = None  # USD, estimated from the model catalog's prices; None if no answer has a price
    budget_reached: bool = False  # items were left unsent because the session budget ran out
    rate_limited: int = 0
    resumed: int = 0
    input_error: str | None = None  # the prompts raised (a generator, a bad row of a file): no more were read
    out: str | None = None  # the file the answers were written to (`out=`)

    @property
    def rate(self) -> float:
        """Items finished per second (cached ones included)."""
        finished = self.ok + self.failed
        return finished / self.elapsed if self.elapsed > 0 else 0.0

    def __str__(self) -> str:
        parts = [f"{self.ok} ok", f"{self.failed} failed"]
        if self.cancelled:
            parts.append(f"{self.cancelled} cancelled")
        if self.cached:
            parts.append(f"{self.cached} cached")
        if self.resumed:
            parts.append(f"{self.resumed} resumed")
        parts.append(f"{self.input_tokens:,} → {self.output_tokens:,} tokens")
        if self.cost is not None:
            parts.append(_cost.format_cost(self.cost))
        if self.retries:
            parts.append(f"{self.retries} retr{'y' if self.retries == 1 else 'ies'}")
        if self.rate_limited:
            parts.append(f"{self.rate_limited} rate-limited (429)")
        parts.append(f"{self.elapsed:.2f} s ({self.rate:,.1f}/s)")
        if self.out:
            parts.append(f"written to {self.out}")
        text = "Batch: " + " · ".join(parts)
        if self.input_error:
            text += f" · the prompts raised {self.input_error}: the rest were not read"
        elif self.partial:
            text += " · budget reached: the rest were not sent" if self.budget_reached else " · interrupted: partial results"
        return text


class BatchResults(list[Response]):
    """The Responses of a batch, in input order (a list), with `.summary` and `.partial`."""

    summary: BatchSummary

    @property
    def partial(self) -> bool:
        return self.summary.partial

    def texts(self) -> list[str | None]:
        """The answers' texts; None for an item that failed or was cancelled."""
        return [r.text if r.status in OK_STATUSES else None for r in self]

    def __deepcopy__(self, memo: dict) -> BatchResults:
        # pandas deep-copies `Series.attrs` on most operations; the Responses are shared, not copied
        return self


def batch(
    prompts: Iterable[Any] | str | os.PathLike[str] | Any,
    model: str | None = None,
    endpoint: str | None = None,
    concurrency: int = 8,
    template: str | None = None,
    *,
    column: str | None = None,
    out: str | os.PathLike[str] | None = None,
    wait: bool = True,
    progress: bool | str = True,
    cache: bool | None = None,
    estimate: bool = False,
    approve: Any = None,
    max_steps: int | None = None,
    rpm: float | None = None,
    tpm: float | None = None,
    resume: bool = True,
    system: str | None = None,
    instructions: str | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    max_tokens: int | None = None,
    max_output_tokens: int | None = None,
    reasoning_effort: str | None = None,
    store: bool | None = None,
    previous_response_id: str | None = None,
    tools: list[Any] | None = None,
    web_search: bool | None = None,
    extra_body: dict[str, Any] | None = None,
    **unknown: object,
) -> Any:  # BatchResults, a pandas Series, a BatchSummary (out=), a BatchJob (wait=False) or a CostEstimate
    """Send many prompts concurrently; return the answers in input order.

    `prompts`: a list of strings, a pandas Series, a pandas DataFrame with a `template` that names its
    columns (`"Classify: {review}"`) or a `column=`, any other iterable (a generator is read lazily, as the
    workers need items, so its prompts are never all in memory), or the path of a `.jsonl`, `.csv` or
    `.parquet` file (Parquet needs pyarrow) whose rows are read lazily: `column="review"` takes that
    field, or a template names the fields (a JSONL line may also be a bare string). For a list, a Series or
    a column the template is optional and `{}` stands for the value. Literal braces in a template are
    doubled: `{{` and `}}`.

    `model`, `endpoint` ("chat" or "responses") and the request parameters (`system` / `instructions`,
    `temperature`, `top_p`, `max_tokens` / `max_output_tokens`, `reasoning_effort`, `store`,
    `previous_response_id`, `tools`, `web_search`) default to `aihubmix_magic.settings`. Any other body
    field goes in `extra_body={"response_format": ...}` (as the SDK's); an unknown keyword is a TypeError
    before anything is sent. At most `concurrency` requests are in flight at once.

    Returns a `BatchResults` (a list of `Response`, with `.summary` and `.partial`) for a list or an
    iterable, or for a Series/DataFrame a pandas Series of answer texts with the same index, where an item
    that failed or was cancelled is missing (`None`/NaN: `.isna()` finds it); its `attrs["responses"]`
    holds the BatchResults and `attrs["summary"]` the BatchSummary. A failed item has status "failed" and
    `.error`. An interrupt (Ctrl-C, or the kernel's stop button) keeps what finished: the other items have
    status "cancelled" and `summary.partial` is True. If the prompts themselves raise (a generator, a bad
    row of a file), no more items are read, what finished is kept, and `summary.input_error` says why.

    `out="results.jsonl"` (or `.csv`, or `.parquet` with pyarrow): each answer is written to the file as
    it finishes (`position` in the input, prompt `id`, `status`, `text`, `error`, `input_tokens`,
    `output_tokens`, `cost`), no Response is kept in memory, and the call returns the `BatchSummary`.
    Run again after an interrupt or a crash, it appends only the items the file has no answer for.

    `wait=False` returns a `BatchJob` at once; the batch runs on its own thread and event loop while the
    notebook runs other cells: `job.done()`, `job.wait(timeout)` (the results as above), `job.cancel()`,
    `job.results` so far, `job.summary`. Its progress bar keeps updating in the cell that started it.
    Batches running at once share the rate limiter of their base URL and model.

    Rate limits: a 429 (or a 503/529 "overloaded") slows the whole batch down (the server's
    `retry-after` and `x-ratelimit-*` headers are honoured, the concurrency is halved and grows back), and
    such items are retried until they succeed or no item has finished for `settings.rate_limit_patience`
    seconds (10 minutes). `rpm` / `tpm`: send at most that many requests / tokens a minute (tokens are
    estimated before a request, from its length and `max_tokens`, and corrected by each answer's usage).

    `resume`: finished answers are journaled as they arrive, so the same call run again after an
    interrupt, an error or a kernel crash sends only the items that had not finished (`summary.resumed`
    counts the others); once every item is answered the journal forgets the batch. False: no journal.

    `progress`: True (a widget bar in a notebook, a text line in a terminal), False, "notebook" or
    "terminal". `cache`: None follows `settings.cache`, True/False forces it for this batch.

    `estimate=True` sends nothing and returns a `CostEstimate`: input tokens estimated from the text, output
    tokens from `max_tokens` (or an assumed 500 per item), at the model catalog's prices. With a session
    budget (`settings.budget`) a batch is refused (BudgetExceededError) when it is already used up, and stops
    starting items when it runs out: the finished ones are kept, the rest are "cancelled".

    `tools=[f, g]`: Python functions the model may call for each item (the tool loop, at most `max_steps`
    steps, default 8; each Response has `.steps`). Nobody can answer a prompt per call in a batch, so it
    needs `approve=True` (run every call) or `approve=callable(call) -> bool`; anything else is a
    BatchInputError before anything is sent. The calls run on a helper thread, one at a time.
    """
    from . import _session
    from ._request import check_extra_body
    from ._settings import settings

    params: dict[str, Any] = {"extra_body": check_extra_body("batch()", extra_body, unknown)}
    for name, value in (("system", system), ("instructions", instructions), ("temperature", temperature),
                        ("top_p", top_p), ("max_tokens", max_tokens), ("max_output_tokens", max_output_tokens),
                        ("reasoning_effort", reasoning_effort), ("store", store),
                        ("previous_response_id", previous_response_id), ("tools", tools),
                        ("web_search", web_search)):
        if value is not None:
            params[name] = value
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise BatchInputError(f"concurrency must be a whole number of at least 1, not {concurrency!r}")
    for name, value in (("rpm", rpm), ("tpm", tpm)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0
                                  or value == float("inf")):
            raise BatchInputError(f"{name} must be a positive number (a limit per minute), not {value!r}")
    endpoint = endpoint or settings.endpoint
    if endpoint not in ENDPOINTS:
        raise BatchInputError(f"Unknown endpoint {endpoint!r}: use 'chat' or 'responses'.")
    source = _prompt_source(prompts, template, column)
    sink = None
    if out is not None:
        if estimate:
            raise BatchInputError("estimate=True sends nothing: it writes no out= file.")
        from ._batchfiles import ResultFile

        sink = ResultFile(out)
    model = model or settings.model
    session = _session.current()
    client = session.client()
    response_cache = session.response_cache(force=bool(cache)) if cache is not False else None
    run: _Run
    if source.texts is not None and sink is None and wait:  # in memory: as many Requests as prompts
        requests = _requests(source.texts, endpoint, model, params)
        tool_loop = _tool_options(requests, approve, max_steps)
        journal = session.journal() if resume and requests else None
        run = _Run(client, requests, concurrency, response_cache, journal=journal, rpm=rpm, tpm=tpm,
                   patience=settings.rate_limit_patience)
        first = requests[0] if requests else None
        total: int | None = len(requests)
    else:  # read as the workers need items (a job's too: it returns at once); answers to `sink`, or kept
        first, items = source.first_request(lambda text: _request(text, endpoint, model, params))
        tool_loop = _tool_options([first] if first is not None else [], approve, max_steps)
        if estimate:  # an estimate reads every prompt once (it sends nothing)
            if first is None:
                return _cost.estimate_batch([], endpoint, model=None)
            from ._protocol import request_body

            return _cost.estimate_batch([request_body(first.with_prompt(text)) for _, text in items], endpoint,
                                        model=first.model)
        journal = session.journal() if resume and first is not None else None
        total = source.total if first is not None else 0
        if first is None:  # no prompts at all
            run = _Run(client, [], concurrency, None, patience=settings.rate_limit_patience)
        else:
            from ._batchjob import _StreamRun

            run = _StreamRun(client, first, items, total, concurrency, response_cache, journal=journal, rpm=rpm,
                             tpm=tpm, patience=settings.rate_limit_patience, sink=sink,
                             finite=source.texts is not None)
    if estimate:  # the items the cache or an earlier run answered cost nothing more
        answered = run._from_cache() + run._from_journal()
        todo = [body for body, result in zip(run.bodies, run.results, strict=True) if result is None]
        return _cost.estimate_batch(todo, endpoint, model=first.model if first is not None else None,
                                    answered=answered)
    _cost.check_budget()  # BudgetExceededError before anything is sent
    client._headers()  # MissingKeyError now, before anything is sent
    if first is not None:  # the catalog's notes on the model (a budget without its price, no vision…), as a cell shows them
        from ._catalog import request_warnings_for
        from ._live import show_notes

        show_notes(request_warnings_for(first))  # every item has the model and options of the first
    run.tool_loop = tool_loop
    view = progress_view(progress, total) if first is not None else None
    index = source.index if sink is None else None
    if not wait:
        from ._batchjob import BatchJob

        job = BatchJob(run, view, index)
        job.start()
        return job
    results = run.execute(view)
    if sink is not None and isinstance(results, BatchResults):  # no prompts: nothing was written
        import dataclasses

        return dataclasses.replace(results.summary, out=str(sink.path))
    return _finish(results, index)


def _finish(results: Any, index: Any) -> Any:
    """What batch() returns for a run's results: as they are, or a pandas Series on `index`."""
    if index is None or not isinstance(results, BatchResults):
        return results
    import pandas as pd

    series = pd.Series(results.texts(), index=index, name="answer")
    series.attrs["responses"] = results
    series.attrs["summary"] = results.summary
    return series


# -- input ---------------------------------------------------------------------------------------------
class _Source:
    """The prompts of a batch: `texts` (a list, with `index` for pandas) when they are all in memory, or
    `rows` read lazily (a generator, a file) with `total` when known."""

    def __init__(self, *, texts: list[str] | None = None, index: Any = None, rows: Iterator[Any] | None = None,
                 total: int | None = None, template: str | None = None, column: str | None = None,
                 named: bool = False) -> None:
        self.texts = texts
        self.index = index
        self.rows = rows
        self.total = len(texts) if texts is not None else total
        self.template = template
        self.column = column
        self.named = named  # rows are dicts (a file's): the template names their fields

    def iter_texts(self) -> Iterator[str]:
        """The prompts as strings, checked one by one (BatchInputError for a bad one)."""
        if self.texts is not None:
            yield from self.texts
            return
        assert self.rows is not None
        template, column = self.template, self.column
        for number, row in enumerate(self.rows):
            if self.named:
                if column is not None:
                    if column not in row:
                        raise BatchInputError(f"Row {number} has no field {column!r} (fields: "
                                              f"{', '.join(map(str, row))}).")
                    value: Any = row[column]
                    text = _fill(template, None, value, number) if template is not None else value
                elif template is not None:
                    text = _fill(template, row, None, number)
                elif len(row) == 1:
                    text = next(iter(row.values()))
                else:
                    raise BatchInputError(f"The rows have several fields ({', '.join(map(str, row))}): pass "
                                          "column=\"...\" or a template naming them.")
            else:
                text = _fill(template, None, row, number) if template is not None else row
            if not isinstance(text, str):
                raise BatchInputError(f"Item {number} is a {type(text).__name__}, not a string: pass "
                                      "template=\"... {} ...\" to put each value into a prompt.")
            if not text.strip():
                raise BatchInputError(f"Item {number} is an empty prompt.")
            yield text

    def first_request(self, build: Any) -> tuple[Request | None, Iterator[tuple[int, str]]]:
        """The first prompt's Request, built and checked in full before anything is sent (None when there
        are no prompts), and the numbered prompts, the first included."""
        texts = enumerate(self.iter_texts())
        try:
            head = next(texts)
        except StopIteration:
            return None, iter(())
        first = build(head[1])

        def numbered() -> Iterator[tuple[int, str]]:
            yield head
            yield from texts

        return first, numbered()


def _prompt_source(prompts: Any, template: str | None, column: str | None) -> _Source:
    """What batch() was given as prompts, checked as far as it can be without reading a lazy source."""
    pd = sys.modules.get("pandas")
    if template is not None and (not isinstance(template, str) or not template.strip()):
        raise BatchInputError("The template is empty: write the prompt, with {} (or {column}) where each value goes.")
    if column is not None and not isinstance(column, str):
        raise BatchInputError(f"column must be a column name (a string), not {type(column).__name__}.")
    if isinstance(prompts, os.PathLike) or (isinstance(prompts, str) and _looks_like_path(prompts)):
        return _file_source(Path(prompts).expanduser(), template, column)
    if pd is not None and isinstance(prompts, pd.DataFrame) and column is not None:
        if column not in prompts.columns:
            raise BatchInputError(f"The DataFrame has no column {column!r} (columns: "
                                  f"{', '.join(map(str, prompts.columns))}).")
        prompts = prompts[column]
    elif column is not None:
        raise BatchInputError("column= goes with a DataFrame or a prompts file (.jsonl, .csv, .parquet).")
    if isinstance(prompts, (list, tuple)) or (pd is not None and isinstance(prompts, (pd.DataFrame, pd.Series))):
        texts, index = _prompt_texts(prompts, template)
        return _Source(texts=texts, index=index)
    if isinstance(prompts, (str, bytes)):
        raise BatchInputError("batch() takes a list of prompts, not one string: use [prompt] or %%aihubmix "
                              "(or the path of a .jsonl, .csv or .parquet file).")
    if isinstance(prompts, dict) or not isinstance(prompts, Iterable):
        raise BatchInputError(
            f"batch() takes a list of prompts, a pandas Series or a DataFrame, an iterable or a file path, not "
            f"{type(prompts).__name__}."
        )
    total = len(prompts) if isinstance(prompts, Sized) else None
    return _Source(rows=iter(prompts), total=total, template=template)


def _looks_like_path(text: str) -> bool:
    from ._batchfiles import file_kind

    return "\n" not in text and file_kind(text) is not None


def _file_source(path: Path, template: str | None, column: str | None) -> _Source:
    from ._batchfiles import columns_of, count_rows, file_kind, read_rows

    kind = file_kind(path)
    if kind is None:
        raise BatchInputError(f"{str(path)!r}: batch() reads prompts from a .jsonl, .csv or .parquet file.")
    if not path.is_file():
        raise BatchInputError(f"No prompts file {str(path)!r}.")
    columns = columns_of(path, kind)
    if columns and column is not None and column not in columns:
        raise BatchInputError(f"{path.name} has no column {column!r} (columns: {', '.join(columns)}).")
    if columns and column is None and template is None and len(columns) > 1:
        raise BatchInputError(f"{path.name} has several columns ({', '.join(columns)}): pass column=\"...\" or a "
                              "template naming them.")
    return _Source(rows=read_rows(path, kind), total=count_rows(path, kind), template=template, column=column,
                   named=True)


def _prompt_texts(prompts: Any, template: str | None) -> tuple[list[str], Any]:
    """The prompts as strings, and the pandas index to give the answers (None for a list)."""
    pd = sys.modules.get("pandas")
    if pd is not None and isinstance(prompts, pd.DataFrame):
        if template is None:
            raise BatchInputError(
                "A DataFrame needs a template naming its columns, e.g. template=\"Classify: {review}\" "
                f"(columns: {', '.join(map(str, prompts.columns))})."
            )
        rows = prompts.to_dict("records")
        return [_fill(template, row, None, number) for number, row in enumerate(rows)], prompts.index
    if pd is not None and isinstance(prompts, pd.Series):
        values, index = prompts.tolist(), prompts.index
    elif isinstance(prompts, (str, bytes)):
        raise BatchInputError("batch() takes a list of prompts, not one string: use [prompt] or %%aihubmix.")
    elif isinstance(prompts, dict) or not isinstance(prompts, Iterable):
        raise BatchInputError(
            f"batch() takes a list of prompts, a pandas Series or a DataFrame, not {type(prompts).__name__}."
        )
    else:
        values, index = list(prompts), None
    if template is not None:
        texts = [_fill(template, None, value, number) for number, value in enumerate(values)]
    else:
        for number, value in enumerate(values):
            if not isinstance(value, str):
                raise BatchInputError(
                    f"Item {number} is a {type(value).__name__}, not a string: pass template=\"... {{}} ...\" "
                    "to put each value into a prompt."
                )
        texts = list(values)
    for number, text in enumerate(texts):
        if not text.strip():
            raise BatchInputError(f"Item {number} is an empty prompt; nothing was sent.")
    return texts, index


def _fill(template: str, row: dict | None, value: Any, number: int) -> str:
    try:
        return template.format(**row) if row is not None else template.format(value)
    except KeyError as exc:
        known = f" (columns: {', '.join(map(str, row))})" if row is not None else " (use {} for the value)"
        raise BatchInputError(f"The template names {{{exc.args[0]}}}, which item {number} does not have{known}.") from None
    except IndexError:
        raise BatchInputError(
            "The template has {} but a DataFrame row has named fields: write {column} instead."
            if row is not None else "The template has more than one {}: each item has one value."
        ) from None
    except (ValueError, AttributeError, TypeError) as exc:
        raise BatchInputError(f"The template cannot be filled in: {exc} (write literal braces as {{{{ and }}}}).") from None


def _request(text: str, endpoint: str, model: str, params: dict[str, Any]) -> Request:
    """The typed request for one prompt: `params` (batch()'s named options, and the body fields of
    `extra_body` under that key) over the settings."""
    from ._settings import settings

    values = dict(params)
    extra = dict(values.pop("extra_body", None) or {})
    extra.pop("stream", None)
    extra.pop("stream_options", None)
    if not model or not model.strip():
        raise BatchInputError("No model: pass model=… or `%aihubmix use MODEL`.")
    fields: dict[str, Any] = {name: values.pop(name) for name in ("temperature", "top_p", "reasoning_effort", "store",
                                                                 "previous_response_id", "tools", "web_search")
                              if name in values}
    fields["max_tokens"] = values.pop("max_tokens", None)
    fields["system"] = values.pop("system", None)
    fields["system"] = values.pop("instructions", None) or fields["system"]  # the responses name, either endpoint
    fields["max_tokens"] = values.pop("max_output_tokens", None) or fields["max_tokens"]
    if values:  # a named option this function does not place: a bug of ours, not a body field
        raise TypeError(f"batch(): unhandled options {sorted(values)}")
    try:
        return Request.from_settings(settings, prompt=text, model=model, endpoint=endpoint, stream=False,
                                     extra=extra, **fields)
    except InvalidRequestError as exc:
        raise BatchInputError(str(exc)) from None


def _requests(texts: list[str], endpoint: str, model: str, params: dict[str, Any]) -> list[Request]:
    """One typed request per prompt: the first built and checked in full, the others copies of it with
    their own prompt."""
    if not texts:
        return []
    first = _request(texts[0], endpoint, model, params)
    requests = [first]
    try:
        requests.extend(first.with_prompt(text) for text in texts[1:])
    except InvalidRequestError as exc:
        raise BatchInputError(str(exc)) from None
    return requests


def _tool_options(requests: list[Request], approve: Any, max_steps: int | None) -> dict[str, Any] | None:
    """The tool loop's options when the requests offer Python functions (None if they do not); a batch
    cannot ask, so approval must be given up front."""
    from ._protocol import DEFAULT_MAX_STEPS, has_runnable_tools

    if not requests or not has_runnable_tools(requests[0]):
        if approve is not None or max_steps is not None:
            raise BatchInputError("approve= and max_steps= go with tools=[...] (Python functions).")
        return None
    if approve is not True and not callable(approve):
        raise BatchInputError("batch() with tools needs approve=True (run every call) or approve=a function "
                              "(call) -> bool: nobody can answer a prompt for each call of a batch.")
    if max_steps is not None and (isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1):
        raise BatchInputError(f"max_steps must be a whole number of at least 1, not {max_steps!r}")
    return {"approve": approve, "max_steps": max_steps or DEFAULT_MAX_STEPS}


# -- the run ---------------------------------------------------------------------------------------------
class _Run:
    """One batch: the event loop in its thread sends; the calling thread paints, journals and handles
    interrupts."""

    def __init__(self, client: Client, requests: list[Request], concurrency: int,
                 cache: ResponseCache | None, *, journal: Journal | None = None, rpm: float | None = None,
                 tpm: float | None = None, patience: float = 600.0) -> None:
        from ._protocol import request_body

        self.client = client
        self.requests = requests
        self.bodies = [request_body(request) for request in requests]
        self.concurrency = concurrency
        self.cache = cache
        self.journal = journal
        self.rpm = rpm
        self.tpm = tpm
        self.patience = patience
        self.results: list[Response | None] = [None] * len(requests)
        self.retries = 0
        self.rate_limited = 0
        self.progress = Progress(total=len(requests), started=time.perf_counter())
        self.limiter: Limiter | None = None
        self._resumed_keys: list[str] = []  # journal entries this run answered from (maybe another batch's)
        self._batch_id = ""
        self._resumed: set[int] = set()  # items answered by an earlier run (from the journal)
        self._finished: list[Any] = []  # (number, Response, …) answered since the calling thread last looked
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.gate = _cost.BudgetGate(requests[0].endpoint if requests else "chat")  # may an item still be sent?
        self.tool_loop: dict[str, Any] | None = None  # approve and max_steps, when the items run tools
        self.cancelled = False  # a job's cancel()
        self._counts = (0, 0)  # (cached, resumed), once known

    def execute(self, view: Any, *, background: bool = False) -> BatchResults:
        """Run the batch and return its results; `background`: on a job's thread (the view's summary is
        shown in the view itself, not displayed in whatever cell runs then)."""
        cached = self._from_cache()
        self._counts = (cached, len(self._resumed))
        resumed = self._from_journal()
        todo = [number for number, result in enumerate(self.results) if result is None]
        partial = False
        live = Live()

        def paint(done: bool) -> float:
            self._store_finished()
            if view is not None:
                limiter = self.limiter
                self.progress.note = limiter.status(time.monotonic()) if limiter is not None and not done else None
                self.progress.rate_limited = self.rate_limited
                view.update(self.progress)
            return time.perf_counter() + _POLL

        if view is not None:
            view.update(self.progress)
        if todo:
            try:
                live.run([lambda: self._thread_main(todo)], paint=paint, cancel=self._cancel, name="aihubmix-batch",
                         join_timeout=None, idle=_POLL)
            except KeyboardInterrupt:
                partial = True
        self._store_finished()
        if live.errors and live.errors[0] is not None:  # a bug of ours, from the event loop's thread
            raise live.errors[0]
        summary = self._summary(cached, resumed, partial)
        if self.journal is not None and summary.ok == summary.total:  # complete: the journal forgets it
            try:
                self.journal.drop(self._resumed_keys, batch=self._batch_id)
            except (sqlite3.Error, OSError) as exc:
                self._journal_failed(exc)
        if view is not None:
            self.progress.note = None
            view.finish(self.progress, str(summary), show=not background)
        results = BatchResults(response for response in self.results if response is not None)  # all filled now
        results.summary = summary
        return results

    def cancel(self) -> None:
        """From any thread: stop sending; what finished is kept (a job's `cancel()`)."""
        with self._lock:
            self.cancelled = True
        self._cancel()

    def results_so_far(self) -> Any:
        """The answers finished so far, in input order (a job's `results` while it runs)."""
        results = BatchResults(response for response in list(self.results) if response is not None)
        results.summary = self.summary_so_far()
        return results

    def summary_so_far(self, *, partial: bool = True, final: bool = False) -> BatchSummary:
        """How the batch goes so far (a job's `summary` while it runs)."""
        done = [r for r in list(self.results) if r is not None]
        statuses = [r.status for r in done]
        cached, resumed = self._counts
        spent = [r.usage for r in done if r.usage is not None and not r.cached]
        return BatchSummary(total=len(self.results), ok=sum(s in OK_STATUSES for s in statuses),
                            failed=statuses.count("failed"), cancelled=0, cached=cached,
                            input_tokens=sum(u.input_tokens for u in spent),
                            output_tokens=sum(u.output_tokens for u in spent), retries=self.retries,
                            elapsed=time.perf_counter() - self.progress.started, partial=True,
                            rate_limited=self.rate_limited, resumed=resumed)

    def _from_cache(self) -> int:
        """Fill the items the response cache has answered; returns how many."""
        if self.cache is None or not self.requests:
            return 0
        by_endpoint: dict[str, list[int]] = {}
        for number, request in enumerate(self.requests):
            by_endpoint.setdefault(request.endpoint, []).append(number)
        count = 0
        for endpoint, numbers in by_endpoint.items():
            hits = self.cache.get_many(endpoint, self.client.base_url, [self.bodies[n] for n in numbers],
                                       [self.requests[n] for n in numbers])
            for number, hit in zip(numbers, hits, strict=True):
                if hit is not None:
                    self.results[number] = hit
                    self._count(hit)
                    count += 1
        return count

    def _from_journal(self) -> int:
        """Fill the items an earlier run of this batch answered; returns how many."""
        if self.journal is None:
            return 0
        from ._cache import request_key
        from ._journal import batch_id
        from ._protocol import response_from_json

        base_url = self.client.base_url
        keys = [request_key(request.endpoint, base_url, body) for request, body in zip(self.requests, self.bodies,
                                                                                        strict=True)]
        self._batch_id = batch_id(keys)  # the keys are not kept: 100,000 of them take 12 MB
        wanted = [key for key, result in zip(keys, self.results, strict=True) if result is None]
        try:
            found = self.journal.lookup(wanted) if wanted else {}
        except (sqlite3.Error, OSError) as exc:
            self._journal_failed(exc)
            return 0
        count = 0
        for number, key in enumerate(keys):
            raw = found.get(key)
            if raw is None or self.results[number] is not None:
                continue
            response = response_from_json(self.requests[number], self.bodies[number], raw,
                                          endpoint=self.requests[number].endpoint, cached=True)
            response.cached = False  # from this batch's own earlier run, not from the response cache
            self.results[number] = response
            self._resumed.add(number)
            self._resumed_keys.append(key)
            self._count(response, spent=False)
            count += 1
        return count

    def _summary(self, cached: int, resumed: int, partial: bool) -> BatchSummary:
        now = time.perf_counter()
        for number, response in enumerate(self.results):
            if response is None:  # never sent, or in flight when interrupted
                response = Response(endpoint=self.requests[number].endpoint, request=self.bodies[number],
                                    spec=self.requests[number])
                response.status = "cancelled"
                response.elapsed = 0.0
                self.results[number] = response
        done = [r for r in self.results if r is not None]
        statuses = [r.status for r in done]
        spent = [r.usage for number, r in enumerate(done) if r.usage is not None and not r.cached
                 and number not in self._resumed]
        return BatchSummary(
            total=len(done),
            ok=sum(s in OK_STATUSES for s in statuses),
            failed=statuses.count("failed"),
            cancelled=statuses.count("cancelled"),
            cached=cached,
            input_tokens=sum(u.input_tokens for u in spent),
            output_tokens=sum(u.output_tokens for u in spent),
            retries=self.retries,
            elapsed=now - self.progress.started,
            partial=partial or self.cancelled or "cancelled" in statuses,
            cost=_cost.total_cost(self.results),
            budget_reached=self.gate.stopped,
            rate_limited=self.rate_limited,
            resumed=resumed,
        )

    def _count(self, response: Response, *, spent: bool = True) -> None:
        self.progress.done += 1
        if response.status == "failed":
            self.progress.failed += 1
        if spent and response.usage is not None and not response.cached:
            self.progress.tokens += response.usage.total_tokens

    def _journal_failed(self, exc: Exception) -> None:
        """A journal that cannot be read or written (a read-only disk, a locked or broken file) does not
        stop the batch: one warning, and this run goes on without it."""
        import warnings

        path = self.journal.path if self.journal is not None else "?"
        self.journal = None
        warnings.warn(f"The batch journal ({path}) cannot be used ({type(exc).__name__}: {exc}): this batch "
                      "runs without it and cannot be resumed.", RuntimeWarning, stacklevel=4)

    def _store_finished(self) -> None:
        """On the calling thread: journal the answers that arrived, and store them in the cache."""
        from ._cache import request_key

        with self._lock:
            finished, self._finished = self._finished, []
        if not finished:
            return
        if self.journal is not None:
            rows: list[tuple[str, str, str, str]] = []
            for number, response in finished:
                raw = response.raw_json()
                if raw is not None:
                    key = request_key(response.endpoint, self.client.base_url, self.bodies[number])
                    rows.append((key, self._batch_id, response.endpoint, raw))
            try:
                self.journal.record(rows)
            except (sqlite3.Error, OSError) as exc:
                self._journal_failed(exc)
        if self.cache is not None:
            self.cache.put_many([response for _, response in finished if response.status == "completed"],
                                self.client.base_url)

    # -- the helper thread -----------------------------------------------------------------------------
    def _thread_main(self, todo: list[int]) -> None:
        loop = asyncio.new_event_loop()
        try:
            with self._lock:
                self._loop = loop
                self._task = loop.create_task(self._main(todo))
                if self.cancelled:  # a job cancelled before its loop started
                    self._task.cancel()
            loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            pass
        finally:
            with self._lock:
                self._closed = True
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

    def _cancel(self) -> None:
        """From the calling thread: cancel the run; the in-flight requests are abandoned."""
        with self._lock:
            if self._loop is not None and self._task is not None and not self._closed:
                self._loop.call_soon_threadsafe(self._task.cancel)

    async def _main(self, todo: list[int]) -> None:
        from ._async import Gate

        workers_count = min(self.concurrency, len(todo))
        with _shared_limiter(self.client.base_url, self.requests[0].model, workers_count, rpm=self.rpm, tpm=self.tpm,
                             patience=self.patience) as self.limiter:
            await self._send_all(todo, workers_count, Gate(self.limiter, shared=True))

    async def _send_all(self, todo: list[int], workers_count: int, gate: Any) -> None:
        from ._async import AsyncDriver

        async with AsyncDriver(self.client, gate=gate) as sender:
            driver: Any = sender
            if self.tool_loop is not None:
                from ._toolloop import ToolDriver

                driver = ToolDriver(sender, scrub=self.client._redactor().mask, **self.tool_loop)
            queue = iter(todo)
            workers = [asyncio.ensure_future(self._worker(driver, sender, sender.lane(), queue))
                       for _ in range(workers_count)]
            try:
                await asyncio.gather(*workers)
            finally:
                await cancel_all(workers)
                self.retries = sender.retries
                self.rate_limited = sender.throttled

    async def _worker(self, driver: Any, sender: AsyncDriver, lane: Lane | _HttpxLane,
                      queue: Iterator[int]) -> None:
        """Send items from `queue` on `lane` (this worker's connection) through `driver` (the async driver,
        or the tool loop around it)."""
        for number in queue:
            reservation = self.gate.start(self.bodies[number])
            if reservation is None:  # the session budget ran out: this item and the rest stay unsent
                return
            response = await driver.send(self.requests[number], self.bodies[number], lane)
            self.gate.finish(reservation, response)  # counts its cost in the session's spend
            with self._lock:
                self.results[number] = response
                self._count(response)
                if response.status in OK_STATUSES:
                    self._finished.append((number, response))
            self.rate_limited = sender.throttled


async def cancel_all(workers: Sequence[asyncio.Future[Any]]) -> None:
    """Cancel the workers and wait until they have all ended. A cancel is sent again to any still running
    after a moment: Python 3.11's `asyncio.wait_for` (a worker connecting) can swallow one that comes just
    as the connection is made, and that worker would go on sending."""
    pending = [worker for worker in workers if not worker.done()]
    while pending:
        for worker in pending:
            worker.cancel()
        _, still = await asyncio.wait(pending, timeout=0.25)
        pending = list(still)
    await asyncio.gather(*workers, return_exceptions=True)


# -- batches at once ------------------------------------------------------------------------------------
_limiters: dict[tuple[str, str], tuple[Limiter, int]] = {}  # (base URL, model) -> the limiter, its batches
_limiters_lock = threading.Lock()


@contextlib.contextmanager
def _shared_limiter(base_url: str, model: str, concurrency: int, *, rpm: float | None, tpm: float | None,
                    patience: float) -> Iterator[Limiter]:
    """The rate limiter of `base_url` and `model`: one for every batch running on them at once (a job and a
    foreground batch, or several jobs), so a 429 slows them all and `rpm` holds for all together; their
    concurrencies add up."""
    key = (base_url.rstrip("/"), model)
    with _limiters_lock:
        entry = _limiters.get(key)
        if entry is None:
            limiter, users = Limiter(concurrency, rpm=rpm, tpm=tpm, patience=patience, now=time.monotonic()), 0
        else:
            limiter, users = entry
            with limiter.lock:
                limiter.join(concurrency, rpm=rpm, tpm=tpm)
        _limiters[key] = (limiter, users + 1)
    try:
        yield limiter
    finally:
        with _limiters_lock:
            limiter, users = _limiters[key]
            if users <= 1:
                del _limiters[key]
            else:
                _limiters[key] = (limiter, users - 1)
                with limiter.lock:
                    limiter.leave(concurrency)


# -- for %%aihubmix --over -------------------------------------------------------------------------------
def check_template(template: str, items: Any) -> None:
    """A cell used as a template must have a field ({} or {column}); BatchInputError if not."""
    import string

    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise BatchInputError(f"The cell cannot be a template: {exc} (write literal braces as {{{{ and }}}}).") from None
    if not fields:
        pd = sys.modules.get("pandas")
        where = "{column}" if pd is not None and isinstance(items, pd.DataFrame) else "{}"
        raise BatchInputError(f"The cell is the template: put {where} where each item goes.")


def _prompt_text(body: dict[str, Any]) -> str:
    if "messages" in body:
        content = body["messages"][-1].get("content", "")
    else:
        content = body.get("input", "")
    return content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)


def _cell(value: object, limit: int) -> str:
    text = " ".join(str(value).split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.replace("|", "\\|")


def results_table(results: Any, *, out: str | None = None, limit: int = 50) -> dict:
    """Display data for a batch's results: a Markdown table, one row per item (the progress view has
    already shown the summary)."""
    responses = results.attrs["responses"] if hasattr(results, "attrs") else results
    labels = list(results.index) if hasattr(results, "index") and not isinstance(results, list) else None
    if labels is None:
        labels = list(range(len(responses)))
    markdown = ["| | prompt | answer | status |", "|---|---|---|---|"]
    plain = []
    for label, response in list(zip(labels, responses, strict=True))[:limit]:
        if response.status in OK_STATUSES:
            answer = response.text
        elif response.error is not None:
            answer = f"{type(response.error).__name__}: {response.error}"
        else:
            answer = ""
        prompt = _prompt_text(response.request)
        markdown.append(f"| {_cell(label, 20)} | {_cell(prompt, 60)} | {_cell(answer, 100)} | {response.status} |")
        plain.append(f"{_cell(label, 20)}\t{response.status}\t{_cell(answer, 100)}")
    notes = []
    if len(responses) > limit:
        notes.append(f"… {len(responses) - limit} more" + (f" (all in `{out}`)" if out else ""))
    return {
        "text/markdown": "\n".join(markdown) + "".join(f"\n\n<sub>{note}</sub>" for note in notes),
        "text/plain": "\n".join(plain + notes),
    }
