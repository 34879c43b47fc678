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
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..core.live import Live
from ..core.ratelimit import Limiter
from ..core.request import Request
from ..core.response import Response
from . import cost as _cost

if TYPE_CHECKING:
    from ..net.async_driver import AsyncDriver, _HttpxLane
    from ..net.client import Client
    from ..net.lane import Lane
    from ..store.cache import ResponseCache
    from ..store.journal import Journal

__all__ = ["OK_STATUSES", "BatchResults", "BatchSummary", "Progress", "cancel_all"]


@dataclass
class Progress:
    """What a progress view shows; `done` counts finished items (answered, failed or from the cache)."""

    total: int | None  # None: not known (prompts from a generator)
    done: int = 0
    failed: int = 0
    tokens: int = 0
    started: float = 0.0
    rate_limited: int = 0  # 429 / overloaded answers so far
    note: str | None = None  # why requests wait, e.g. "rate limited: resuming in 4 s"

    def line(self, now: float | None = None) -> str:
        elapsed = (now if now is not None else time.perf_counter()) - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        parts = [f"{self.done}/{self.total}" if self.total is not None else f"{self.done} done"]
        if self.failed:
            parts.append(f"{self.failed} failed")
        parts.append(f"{rate:,.1f}/s")
        if self.total is not None and self.done < self.total:
            parts.append(f"ETA {_duration((self.total - self.done) / rate) if rate > 0 else '?'}")
        else:
            parts.append(_duration(elapsed))
        parts.append(f"{self.tokens:,} tokens")
        if self.rate_limited:
            parts.append(f"{self.rate_limited} rate-limited")
        if self.note:
            parts.append(self.note)
        return " · ".join(parts)


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}:{seconds:02d}"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}"


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


def _finish(results: Any, index: Any) -> Any:
    """What batch() returns for a run's results: as they are, or a pandas Series on `index`."""
    if index is None or not isinstance(results, BatchResults):
        return results
    import pandas as pd

    series = pd.Series(results.texts(), index=index, name="answer")
    series.attrs["responses"] = results
    series.attrs["summary"] = results.summary
    return series


# -- the run ---------------------------------------------------------------------------------------------
class _Run:
    """One batch: the event loop in its thread sends; the calling thread paints, journals and handles
    interrupts."""

    def __init__(self, client: Client, requests: list[Request], concurrency: int,
                 cache: ResponseCache | None, *, journal: Journal | None = None, rpm: float | None = None,
                 tpm: float | None = None, patience: float = 600.0) -> None:
        from ..core.protocol import request_body

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
        # called with the items as they finish, to write them to the log (`batch(..., log_items=True)`)
        self.log_items: Callable[[list[Response]], Any] | None = None
        self.cancelled = False  # a job's cancel()
        self._counts = (0, 0)  # (cached, resumed), once known

    def _painter(self, view: Any) -> Callable[[bool], float]:
        """`Live.run`'s paint for this run: store what finished, repaint the progress (with the limiter's
        note while it waits), and say when to be called again."""

        def paint(done: bool) -> float:
            self._store_finished()
            if view is not None:
                limiter = self.limiter
                self.progress.note = limiter.status(time.monotonic()) if limiter is not None and not done else None
                self.progress.rate_limited = self.rate_limited
                view.update(self.progress)
            return time.perf_counter() + _POLL

        return paint

    def execute(self, view: Any, *, background: bool = False) -> BatchResults:
        """Run the batch and return its results; `background`: on a job's thread (the view's summary is
        shown in the view itself, not displayed in whatever cell runs then)."""
        cached = self._from_cache()
        self._counts = (cached, len(self._resumed))
        resumed = self._from_journal()
        if self.log_items is not None and (cached or resumed):  # answered before anything is sent: logged now
            self.log_items([result for result in self.results if result is not None])
        todo = [number for number, result in enumerate(self.results) if result is None]
        partial = False
        live = Live()

        paint = self._painter(view)

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
        from ..core.protocol import response_from_json
        from ..store.cache import request_key
        from ..store.journal import batch_id

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
        from ..store.cache import request_key

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
        if self.log_items is not None:
            self.log_items([response for _, response in finished])

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
        from ..net.async_driver import Gate

        workers_count = min(self.concurrency, len(todo))
        with _shared_limiter(self.client.base_url, self.requests[0].model, workers_count, rpm=self.rpm, tpm=self.tpm,
                             patience=self.patience) as self.limiter:
            await self._send_all(todo, workers_count, Gate(self.limiter, shared=True))

    async def _send_all(self, todo: list[int], workers_count: int, gate: Any) -> None:
        from ..net.async_driver import AsyncDriver

        async with AsyncDriver(self.client, gate=gate) as sender:
            driver: Any = sender
            if self.tool_loop is not None:
                from ..net.async_driver import ToolDriver

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
