"""`batch()`: many prompts at once, from a list, a Series or a DataFrame, with a progress bar.

This is the entry point: it reads the settings and the kernel's session (its client, cache and journal),
builds one typed `Request` per prompt, checks the budget and the catalog's notes before anything is sent,
and hands the requests to the engine in `services.batch`, which sends them concurrently, paced to the
server's rate limits, and journals them (see its docstring for how it runs). `results_table` is the
`--over` cell's table of the answers.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Iterator, Sequence, Sized
from pathlib import Path
from typing import Any

from ..core.exceptions import BatchInputError, InvalidRequestError
from ..core.request import ENDPOINTS, Request
from ..services import cost as _cost
from ..services.batch import OK_STATUSES, BatchResults, BatchSummary, _finish, _Run
from .progress import progress_view

__all__ = ["HOVER_LIMIT", "BatchResults", "BatchSummary", "batch", "check_template", "results_table"]


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
    log_items: bool = False,
    mcp: Iterable[str] | str | None = None,
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

    The log (`%aihubmix log`, `logs()`) gets one row per run: the template, the model, the counts, tokens and
    cost; `log_items=True` also writes each item's prompt and answer.

    `estimate=True` sends nothing and returns a `CostEstimate`: input tokens estimated from the text, output
    tokens from `max_tokens` (or an assumed 500 per item), at the model catalog's prices. With a session
    budget (`settings.budget`) a batch is refused (BudgetExceededError) when it is already used up, and stops
    starting items when it runs out: the finished ones are kept, the rest are "cancelled".

    `tools=[f, g]`: Python functions the model may call for each item (the tool loop, at most `max_steps`
    steps, default 8; each Response has `.steps`). Nobody can answer a prompt per call in a batch, so it
    needs `approve=True` (run every call) or `approve=callable(call) -> bool`; anything else is a
    BatchInputError before anything is sent. The calls run on a helper thread, one at a time.

    `mcp=["notes", …]`: the tools of these MCP servers (from mcp.json), as `tools=` (with them, if given);
    it needs `approve=` too. A server that cannot be used is an McpError before anything is sent.
    """
    from ..core.request import check_extra_body
    from ..session import state as _session
    from ..session.settings import settings

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
    if mcp is not None:
        params["tools"] = _with_mcp_tools(params.get("tools"), mcp, approve)
    source = _prompt_source(prompts, template, column)
    sink = None
    if out is not None:
        if estimate:
            raise BatchInputError("estimate=True sends nothing: it writes no out= file.")
        from ..store.batchfiles import ResultFile

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
            from ..core.protocol import request_body

            return _cost.estimate_batch([request_body(first.with_prompt(text)) for _, text in items], endpoint,
                                        model=first.model)
        journal = session.journal() if resume and first is not None else None
        total = source.total if first is not None else 0
        if first is None:  # no prompts at all
            run = _Run(client, [], concurrency, None, patience=settings.rate_limit_patience)
        else:
            from ..services.batchjob import _StreamRun

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
        from ..services.catalog import request_warnings_for
        from .live import show_notes

        show_notes(request_warnings_for(first, budget_set=settings.budget is not None))  # every item has the model and options of the first
    run.tool_loop = tool_loop
    if log_items:
        from ..session.log import record

        run.log_items = lambda finished: record(finished, "batch_item")
    view = progress_view(progress, total) if first is not None else None
    index = source.index if sink is None else None
    if not wait:
        from ..services.batchjob import BatchJob

        job = BatchJob(run, view, index)
        job.start()
        return job
    results = run.execute(view)
    if first is not None:
        from ..session.log import record_batch

        texts = source.texts or []
        described = template if template is not None else (
            texts[0] + (f"\n\n(and {len(texts) - 1:,} more prompts)" if len(texts) > 1 else "") if texts else "{}")
        record_batch(results, template=described, model=first.model, endpoint=endpoint)
    if sink is not None and isinstance(results, BatchResults):  # no prompts: nothing was written
        import dataclasses

        return dataclasses.replace(results.summary, out=str(sink.path))
    return _finish(results, index)


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
    from ..store.batchfiles import file_kind

    return "\n" not in text and file_kind(text) is not None


def _file_source(path: Path, template: str | None, column: str | None) -> _Source:
    from ..store.batchfiles import columns_of, count_rows, file_kind, read_rows

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
    from ..session.settings import settings

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
    from ..core.protocol import DEFAULT_MAX_STEPS, has_runnable_tools

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


def _with_mcp_tools(tools: Any, mcp: Iterable[str] | str, approve: Any) -> list[Any]:
    """`tools` and the tools of the MCP servers `mcp` (started now); approval is checked first, so a batch
    that could not run them starts no server."""
    from ..core.exceptions import ToolDefinitionError
    from ..core.tools import describe_tools, tool_name
    from ..session.mcp import mcp_tools

    names = [mcp] if isinstance(mcp, str) else list(mcp)
    if not all(isinstance(name, str) for name in names) or not names:
        raise BatchInputError(f"mcp= takes the names of MCP servers from mcp.json, not {mcp!r}")
    if approve is not True and not callable(approve):
        raise BatchInputError("batch() with mcp= needs approve=True (run every call) or approve=a function "
                              "(call) -> bool: nobody can answer a prompt for each call of a batch.")
    if isinstance(tools, (str, bytes, dict)) or (tools is not None and callable(tools)):
        raise BatchInputError("tools= takes a list of functions (or tool definitions)")
    try:
        described = list(describe_tools(tools or ()))
    except ToolDefinitionError as exc:
        raise BatchInputError(str(exc)) from None
    return described + list(mcp_tools(*names, taken=[tool_name(tool) for tool in described]))


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


HOVER_LIMIT = 4000  # characters of a cut cell's whole text shown on hover in the results table


def _cell(value: object, limit: int) -> str:
    """One table cell in plain text: on one line, cut at `limit` with "…"."""
    text = " ".join(str(value).split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.replace("|", "\\|")


def _markdown_cell(value: object, limit: int) -> str:
    """One Markdown table cell: the text on one line, in full or cut at `limit` with "…" and the whole
    text on hover (a title); `|`, `<` and `$` stay text (a `$` pair would be LaTeX math to Jupyter)."""
    import html

    from ..services.cost import markdown_dollars

    text = " ".join(str(value).split())
    shown = text if len(text) <= limit else text[: limit - 1] + "…"
    shown = markdown_dollars(html.escape(shown, quote=False)).replace("|", "&#124;")
    if len(text) <= limit:
        return shown
    if len(text) > HOVER_LIMIT:  # a long answer: enough to read, without megabytes in the notebook
        text = text[: HOVER_LIMIT - 1] + "…"
    title = html.escape(text).replace("|", "&#124;").replace("$", "&#36;")
    return f'<span title="{title}">{shown}</span>'


def _item_columns(items: Any, template: str | None, count: int) -> tuple[list[str], list[list[object]]] | None:
    """What varies from row to row, for the results table: (headers, columns of the first `count` rows).
    A Series or a list: one column, its values; a DataFrame: the columns the template names. None when
    the items are unknown (the table shows the prompts instead)."""
    if items is None:
        return None
    pd = sys.modules.get("pandas")
    if pd is not None and isinstance(items, pd.DataFrame):
        import string

        try:
            fields = [name for _, name, _, _ in string.Formatter().parse(template or "") if name]
        except ValueError:
            return None
        named = [name for name in dict.fromkeys(fields) if name in items.columns]
        if not named:
            return None
        head = items.iloc[:count]
        return [str(name) for name in named], [head[name].tolist() for name in named]
    if pd is not None and isinstance(items, pd.Series):
        return [str(items.name) if items.name is not None else "item"], [items.iloc[:count].tolist()]
    if isinstance(items, Sequence) and not isinstance(items, (str, bytes)):
        return ["item"], [list(items[:count])]
    return None


def results_table(results: Any, *, out: str | None = None, limit: int = 50, items: Any = None,
                  template: str | None = None) -> dict:
    """Display data for a batch's results: a Markdown table, one row per item (the progress view has
    already shown the summary). With `items` (what was batched) and its `template`, the table shows
    what varies, the item (a Series' or list's values, or the DataFrame columns the template names),
    beside the answer; without them, the prompt."""
    responses = results.attrs["responses"] if hasattr(results, "attrs") else results
    labels = list(results.index) if hasattr(results, "index") and not isinstance(results, list) else None
    if labels is None:
        labels = list(range(len(responses)))
    shown = list(zip(labels, responses, strict=True))[:limit]
    columns = _item_columns(items, template, len(shown))
    if columns is not None and any(len(column) != len(shown) for column in columns[1]):
        columns = None  # not the items of these results
    headers = columns[0] if columns else ["prompt"]
    item_limit = 200 if len(headers) == 1 else max(40, 200 // len(headers))
    markdown = ["| | " + " | ".join(_markdown_cell(h, 40) for h in headers) + " | answer | status |",
                "|---|" + "---|" * len(headers) + "---|---|"]
    plain = []
    for row, (label, response) in enumerate(shown):
        if response.status in OK_STATUSES:
            answer = response.text
        elif response.error is not None:
            answer = f"{type(response.error).__name__}: {response.error}"
        else:
            answer = ""
        values = [column[row] for column in columns[1]] if columns else [_prompt_text(response.request)]
        cells = " | ".join(_markdown_cell(value, item_limit) for value in values)
        markdown.append(f"| {_markdown_cell(label, 20)} | {cells} | {_markdown_cell(answer, 200)} | {response.status} |")
        item = "\t" + " · ".join(_cell(value, 40) for value in values) if columns else ""
        plain.append(f"{_cell(label, 20)}\t{response.status}{item}\t{_cell(answer, 100)}")
    notes = []
    if len(responses) > limit:
        notes.append(f"… {len(responses) - limit} more" + (f" (all in `{out}`)" if out else ""))
    return {
        "text/markdown": "\n".join(markdown) + "".join(f"\n\n<sub>{note}</sub>" for note in notes),
        "text/plain": "\n".join(plain + notes),
    }
