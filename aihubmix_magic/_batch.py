"""`batch()`: many prompts at once, concurrently, over one pooled `httpx.AsyncClient`.

    from aihubmix_magic import batch
    answers = batch(["Say hi", "Say bye"], model="gpt-4o-mini")       # a list of Response, in input order
    df["label"] = batch(df, template="Positive or negative? {review}")  # a Series of texts, df's index

How it runs:

- The requests go out on a private event loop in a helper thread, so `batch()` works the same in a
  script, in terminal IPython and in a kernel whose own loop is already running (that loop is never used
  nor blocked on). At most `concurrency` requests are in flight, over one connection pool (HTTP/2 when
  `h2` is installed and the server offers it). The answers are not streamed.
- The request bodies, the retry policy (PROTOCOL §4) and the error mapping are the sync `Client`'s
  (`chat_body`, `retry_decision`, `Client._status_error`, `complete_from_json`): an item is retried as a
  cell would be, and a failed item becomes a Response with status "failed" and `.error` set; the others
  go on.
- The calling thread shows the progress (`_progress.py`) and handles an interrupt: the finished items
  are kept, the others get status "cancelled", and the result is marked partial.
- With the cache on (`settings.cache` or `cache=True`), items already answered come from the cache and
  new completed answers are stored in it.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import json
import os
import ssl
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from . import _cost
from ._client import (
    ENDPOINT_PATHS,
    Client,
    chat_body,
    complete_from_json,
    responses_body,
    retry_decision,
    retry_delay,
    sanitize_body,
)
from ._exceptions import AihubmixError, APIConnectionError, APITimeoutError, BatchInputError
from ._progress import Progress, progress_view
from ._response import Response

__all__ = ["BatchResults", "BatchSummary", "batch"]

HTTP2 = importlib.util.find_spec("h2") is not None
OK_STATUSES = ("completed", "incomplete")
_POLL = 0.1  # seconds between progress repaints on the calling thread


@dataclass(frozen=True)
class BatchSummary:
    """How a batch went. `ok` counts answers (completed, or cut short by a token limit); `partial` is
    True when the batch was interrupted before every item finished."""

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
        parts.append(f"{self.input_tokens:,} → {self.output_tokens:,} tokens")
        if self.cost is not None:
            parts.append(_cost.format_cost(self.cost))
        if self.retries:
            parts.append(f"{self.retries} retr{'y' if self.retries == 1 else 'ies'}")
        parts.append(f"{self.elapsed:.2f} s ({self.rate:,.1f}/s)")
        text = "Batch: " + " · ".join(parts)
        if self.partial:
            text += " · budget reached: the rest were not sent" if self.budget_reached else " · interrupted: partial results"
        return text


class BatchResults(list):
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
    prompts: Iterable[str] | Any,
    model: str | None = None,
    endpoint: str | None = None,
    concurrency: int = 8,
    template: str | None = None,
    *,
    progress: bool | str = True,
    cache: bool | None = None,
    estimate: bool = False,
    **params: Any,
):
    """Send many prompts concurrently; return the answers in input order.

    `prompts`: a list of strings, a pandas Series, or a pandas DataFrame with a `template` that names its
    columns (`"Classify: {review}"`). For a list or a Series the template is optional and `{}` stands for
    the value. Literal braces in a template are doubled: `{{` and `}}`.

    `model`, `endpoint` ("chat" or "responses") and the request parameters (`system`, `temperature`,
    `top_p`, `max_tokens`, `reasoning_effort`, or any other body field such as `response_format`) default
    to `aihubmix_magic.settings`. At most `concurrency` requests are in flight at once.

    Returns a `BatchResults` (a list of `Response`, with `.summary` and `.partial`) for a list, or for a
    Series/DataFrame a pandas Series of answer texts with the same index, where an item that failed or was
    cancelled is missing (`None`/NaN: `.isna()` finds it); its `attrs["responses"]` holds the
    BatchResults and `attrs["summary"]` the BatchSummary. A failed item has status "failed" and `.error`.
    An interrupt (Ctrl-C, or the kernel's stop button) keeps what finished: the other items have status
    "cancelled" and `summary.partial` is True.

    `progress`: True (a widget bar in a notebook, a text line in a terminal), False, "notebook" or
    "terminal". `cache`: None follows `settings.cache`, True/False forces it for this batch.

    `estimate=True` sends nothing and returns a `CostEstimate`: input tokens estimated from the text, output
    tokens from `max_tokens` (or an assumed 500 per item), at the model catalog's prices. With a session
    budget (`settings.budget`) a batch is refused (BudgetExceededError) when it is already used up, and stops
    starting items when it runs out: the finished ones are kept, the rest are "cancelled".
    """
    from . import _session
    from ._settings import settings

    texts, index = _prompt_texts(prompts, template)
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise BatchInputError(f"concurrency must be a whole number of at least 1, not {concurrency!r}")
    endpoint = endpoint or settings.endpoint
    if endpoint not in ENDPOINT_PATHS:
        raise BatchInputError(f"Unknown endpoint {endpoint!r}: use 'chat' or 'responses'.")
    bodies = [_body(text, endpoint, model or settings.model, settings, params) for text in texts]
    if estimate:
        return _cost.estimate_batch(bodies, endpoint)
    _cost.check_budget()  # BudgetExceededError before anything is sent

    client = _session.client()
    client._headers()  # MissingKeyError now, before anything is sent
    response_cache = _session.response_cache(force=bool(cache)) if cache is not False else None
    run = _Run(client, endpoint, bodies, concurrency, response_cache)
    results = run.execute(progress_view(progress, len(bodies)) if bodies else None)
    if index is None:
        return results
    import pandas as pd

    series = pd.Series(results.texts(), index=index, name="answer")
    series.attrs["responses"] = results
    series.attrs["summary"] = results.summary
    return series


# -- input ---------------------------------------------------------------------------------------------
def _prompt_texts(prompts: Any, template: str | None) -> tuple[list[str], Any]:
    """The prompts as strings, and the pandas index to give the answers (None for a list)."""
    pd = sys.modules.get("pandas")
    if template is not None and (not isinstance(template, str) or not template.strip()):
        raise BatchInputError("The template is empty: write the prompt, with {} (or {column}) where each value goes.")
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


def _body(text: str, endpoint: str, model: str, settings, params: dict) -> dict:
    """The request body for one prompt: the sync client's body builders, the settings as defaults."""
    from traitlets import TraitError

    from ._settings import SettingTraits

    values = dict(params)
    common = {name: values.pop(name, getattr(settings, name))
              for name in ("temperature", "top_p", "reasoning_effort")}
    max_tokens = values.pop("max_tokens", settings.max_tokens)
    system = values.pop("system", None) or settings.system or None
    checker = SettingTraits()
    for name, value in {**common, "max_tokens": max_tokens}.items():
        if value is not None:
            try:
                setattr(checker, name, value)
            except TraitError as exc:
                raise BatchInputError(f"{name}: {exc}") from None
    if not model or not model.strip():
        raise BatchInputError("No model: pass model=… or `%aihubmix use MODEL`.")
    if endpoint == "chat":
        body = chat_body(text, model=model, system=system, max_tokens=max_tokens, **common, **values)
    else:
        instructions = values.pop("instructions", None) or system
        max_output_tokens = values.pop("max_output_tokens", None) or max_tokens
        body = responses_body(text, model=model, instructions=instructions, max_output_tokens=max_output_tokens,
                              **common, **values)
    for name in ("stream", "stream_options"):
        body.pop(name, None)
    return sanitize_body(body)


# -- the run ---------------------------------------------------------------------------------------------
class _Run:
    """One batch: the event loop in its thread sends; the calling thread paints and handles interrupts."""

    def __init__(self, client: Client, endpoint: str, bodies: list[dict], concurrency: int, cache) -> None:
        self.client = client
        self.endpoint = endpoint
        self.url = client.base_url + ENDPOINT_PATHS[endpoint]
        self.bodies = bodies
        self.concurrency = concurrency
        self.cache = cache
        self.results: list[Response | None] = [None] * len(bodies)
        self.retries = 0
        self.progress = Progress(total=len(bodies), started=time.perf_counter())
        self._finished: list[Response] = []  # answered since the calling thread last looked
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None
        self._closed = False
        self._error: BaseException | None = None
        self.gate = _cost.BudgetGate(endpoint)  # the session budget: may this item still be sent?

    def execute(self, view) -> BatchResults:
        todo = list(range(len(self.bodies)))
        cached = 0
        if self.cache is not None and self.bodies:
            hits = self.cache.get_many(self.endpoint, self.client.base_url, self.bodies)
            for number, hit in enumerate(hits):
                if hit is not None:
                    self.results[number] = hit
                    self._count(hit)
            todo = [number for number, hit in enumerate(hits) if hit is None]
            cached = len(self.bodies) - len(todo)
        partial = False
        thread = threading.Thread(target=self._thread_main, args=(todo,), name="aihubmix-batch", daemon=True)
        try:
            if view is not None:
                view.update(self.progress)
            if todo:
                thread.start()
                while thread.is_alive():
                    thread.join(_POLL)
                    self._store_finished()
                    if view is not None:
                        view.update(self.progress)
        except KeyboardInterrupt:
            partial = True
            self._cancel()
            thread.join()
        self._store_finished()
        if self._error is not None:
            raise self._error
        summary = self._summary(cached, partial)
        if view is not None:
            view.finish(self.progress, str(summary))
        results = BatchResults(self.results)  # every slot is filled now
        results.summary = summary
        return results

    def _summary(self, cached: int, partial: bool) -> BatchSummary:
        now = time.perf_counter()
        for number, response in enumerate(self.results):
            if response is None:  # never sent, or in flight when interrupted
                response = Response(endpoint=self.endpoint, request=self.bodies[number])
                response.status = "cancelled"
                response.elapsed = 0.0
                self.results[number] = response
        statuses = [r.status for r in self.results]
        usages = [r.usage for r in self.results if r.usage is not None and not r.cached]
        return BatchSummary(
            total=len(self.results),
            ok=sum(s in OK_STATUSES for s in statuses),
            failed=statuses.count("failed"),
            cancelled=statuses.count("cancelled"),
            cached=cached,
            input_tokens=sum(u.input_tokens for u in usages),
            output_tokens=sum(u.output_tokens for u in usages),
            retries=self.retries,
            elapsed=now - self.progress.started,
            partial=partial or "cancelled" in statuses,
            cost=_cost.total_cost(self.results),
            budget_reached=self.gate.stopped,
        )

    def _count(self, response: Response) -> None:
        self.progress.done += 1
        if response.status == "failed":
            self.progress.failed += 1
        if response.usage is not None and not response.cached:
            self.progress.tokens += response.usage.total_tokens

    def _store_finished(self) -> None:
        with self._lock:
            finished, self._finished = self._finished, []
        if self.cache is not None and finished:
            self.cache.put_many(finished, self.client.base_url)

    # -- the helper thread -----------------------------------------------------------------------------
    def _thread_main(self, todo: list[int]) -> None:
        loop = asyncio.new_event_loop()
        try:
            with self._lock:
                self._loop = loop
                self._task = loop.create_task(self._main(todo))
            loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            pass
        except BaseException as exc:  # a bug of ours: handed to the calling thread
            self._error = exc
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
        workers_count = min(self.concurrency, len(todo))
        limits = httpx.Limits(max_connections=workers_count, max_keepalive_connections=workers_count,
                              keepalive_expiry=30.0)
        verify = _ssl_context(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
        async with httpx.AsyncClient(http2=HTTP2, timeout=self.client.timeout, limits=limits, verify=verify,
                                     follow_redirects=False) as http:
            queue = iter(todo)
            workers = [asyncio.ensure_future(self._worker(http, queue)) for _ in range(workers_count)]
            try:
                await asyncio.gather(*workers)
            finally:
                for worker in workers:
                    worker.cancel()
                await asyncio.gather(*workers, return_exceptions=True)

    async def _worker(self, http: httpx.AsyncClient, queue: Iterator[int]) -> None:
        for number in queue:
            reservation = self.gate.start(self.bodies[number])
            if reservation is None:  # the session budget ran out: this item and the rest stay unsent
                return
            response = await self._request(http, self.bodies[number])
            self.gate.finish(reservation, response)  # counts its cost in the session's spend
            with self._lock:
                self.results[number] = response
                self._count(response)
                if response.status == "completed":
                    self._finished.append(response)

    async def _request(self, http: httpx.AsyncClient, body: dict) -> Response:
        response = Response(endpoint=self.endpoint, request=body, stream=False)
        try:
            content, http_response = await self._send(http, body)
            complete_from_json(response, self.client._parse_json(content, http_response))
        except AihubmixError as exc:
            response.status = "failed"
            response.error = exc
            response.elapsed = time.perf_counter() - response._started
            exc.response = response
        return response

    async def _send(self, http: httpx.AsyncClient, body: dict) -> tuple[bytes, httpx.Response]:
        """POST with the sync client's retry policy; return the 2xx body (or raise its AihubmixError)."""
        client = self.client
        headers = client._headers()
        headers["Content-Type"] = "application/json"
        content = json.dumps(body, ensure_ascii=False).encode()
        model = str(body.get("model", ""))
        retries = 0
        while True:
            if retries:
                headers["x-stainless-retry-count"] = str(retries)
            retry_after: float | None = None
            error: AihubmixError
            try:
                http_response = await http.post(self.url, content=content, headers=headers)
            except httpx.TimeoutException as exc:
                error = APITimeoutError(f"{client.base_url} did not answer in time ({type(exc).__name__}).")
                should_retry = True
            except httpx.TransportError as exc:
                error = APIConnectionError(
                    f"Cannot reach {client.base_url}: {client._scrub(exc) or type(exc).__name__}")
                should_retry = True
            else:
                if http_response.status_code < 400:
                    return http_response.content, http_response
                should_retry, retry_after = retry_decision(http_response)
                error = client._status_error(http_response, model)
            if not should_retry or retries >= client.max_retries:
                raise error
            delay = retry_delay(retry_after, retries)
            retries += 1
            self.retries += 1
            await asyncio.sleep(delay)


@functools.lru_cache(maxsize=4)
def _ssl_context(cert_file: str | None, cert_dir: str | None) -> ssl.SSLContext:
    """httpx's default context (certifi, or SSL_CERT_FILE / SSL_CERT_DIR), built once instead of per batch:
    building it costs about 20 ms, a tenth of a round of requests at 200 ms latency."""
    return httpx.create_ssl_context()


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


def _prompt_text(body: dict) -> str:
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
