"""A batch that does not hold the notebook: prompts read as the workers need them, answers written to a
file as they finish, and batches in the background (`batch(..., wait=False)` → `BatchJob`).

- `_StreamRun` is `_batch._Run` for a source read lazily (a generator, a file, or a list a job reads as it
  goes) or an `out=` file (`_batchfiles.ResultFile`): at most a chunk of prompts, the queue and the
  requests in flight are in memory at once; without a file the answers are kept, by input position.
- `BatchJob` runs a run on its own thread (which paints, journals and writes) with its own event loop (in
  the run's thread, as for any batch): never the kernel's loop, and never touched by an interrupt of
  another cell. `atexit` cancels the running jobs, so a kernel that shuts down journals what finished.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any

from ..core.live import Live
from ..core.response import Response
from . import cost as _cost
from .batch import (
    _POLL,
    OK_STATUSES,
    BatchResults,
    BatchSummary,
    Progress,
    _finish,
    _Run,
    _shared_limiter,
    cancel_all,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ..core.request import Request
    from ..net.async_driver import AsyncDriver, _HttpxLane
    from ..net.client import Client
    from ..net.lane import Lane
    from ..store.batchfiles import ResultFile
    from ..store.cache import ResponseCache
    from ..store.journal import Journal

__all__ = ["BatchJob"]


# -- a batch read lazily, or written to a file ----------------------------------------------------------
class _StreamRun(_Run):
    """A batch over prompts read as the workers need them (a generator, a file), or whose answers go to an
    `out=` file: at most a chunk of prompts, the queue and the requests in flight are in memory at once.

    The event loop's thread reads the prompts a chunk at a time, answers what the out file, the cache or
    the journal already has, and queues the rest for the workers; the calling (or job) thread journals
    the answers, writes them to the file (or keeps them, without a file) and paints, as for a list."""

    def __init__(self, client: Client, first: Request, items: Iterator[tuple[int, str]], total: int | None,
                 concurrency: int, cache: ResponseCache | None, *, journal: Journal | None,
                 rpm: float | None, tpm: float | None, patience: float, sink: ResultFile | None,
                 finite: bool = False) -> None:
        super().__init__(client, [], concurrency, cache, journal=journal, rpm=rpm, tpm=tpm, patience=patience)
        self.first = first
        self.items = items
        self.sink = sink
        self.progress = Progress(total=total, started=time.perf_counter())
        self.gate = _cost.BudgetGate(first.endpoint)
        self.kept: dict[int, Response] = {}  # without a file: the answers, by input position
        self.pending: dict[int, tuple[Request, dict[str, Any]]] = {}  # read, not finished yet
        self.seen = 0  # prompts read
        self.input_error: str | None = None
        self.ok = self.failed = self.cached = self.resumed = self.input_tokens = self.output_tokens = 0
        self.skipped = 0  # answered in the out file by an earlier run: neither sent nor written again
        self.cost: float | None = None
        self._infos: dict = {}  # catalog entries, looked up once per model
        self._chunk = max(256, 2 * concurrency)
        self.finite = finite  # the prompts are a list in memory: those never read count as cancelled
        self._stopping = False  # the run is ending (done, cancelled or interrupted): send nothing more
        self.background = False  # a job: the notebook runs other cells meanwhile
        self.unread = 0  # with a file: prompts of such a list never read

    # -- the event loop's thread -------------------------------------------------------------------------
    async def _main(self, todo: list[int]) -> None:
        from ..net.async_driver import Gate

        with _shared_limiter(self.client.base_url, self.first.model, self.concurrency, rpm=self.rpm, tpm=self.tpm,
                             patience=self.patience) as self.limiter:
            await self._stream_all(Gate(self.limiter, shared=True))

    async def _stream_all(self, gate: Any) -> None:
        from ..net.async_driver import AsyncDriver

        async with AsyncDriver(self.client, gate=gate) as sender:
            driver: Any = sender
            if self.tool_loop is not None:
                from ..net.async_driver import ToolDriver

                driver = ToolDriver(sender, scrub=self.client._redactor().mask, **self.tool_loop)
            queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=2 * self.concurrency)
            workers = [asyncio.ensure_future(self._stream_worker(driver, sender, sender.lane(), queue))
                       for _ in range(self.concurrency)]
            try:
                await self._feed(queue)
                for _ in workers:
                    await queue.put(None)
                await asyncio.gather(*workers)
            finally:
                self._stopping = True
                while not queue.empty():  # what was queued is not sent (it stays pending: "cancelled")
                    queue.get_nowait()
                await cancel_all(workers)
                self.retries = sender.retries
                self.rate_limited = sender.throttled

    async def _read_chunk(self) -> tuple[list[tuple[int, Request]], bool]:
        """The next prompts as Requests, and whether the source is exhausted (or raised)."""
        chunk: list[tuple[int, Request]] = []
        try:
            for position, text in self.items:
                chunk.append((position, self.first.with_prompt(text)))
                if len(chunk) >= self._chunk:
                    return chunk, False
                if len(chunk) % 32 == 0:  # a file or a generator may take its time: the loop goes on meanwhile
                    await asyncio.sleep(0)
        except Exception as exc:  # noqa: BLE001  the user's generator or file: reported, what was read is sent
            self.input_error = f"{type(exc).__name__}: {exc}"
        return chunk, True

    async def _feed(self, queue: asyncio.Queue[Any]) -> None:
        from ..core.protocol import request_body, response_from_json
        from ..store.batchfiles import row_mark
        from ..store.cache import request_key
        from ..store.journal import batch_id

        base_url = self.client.base_url
        endpoint = self.first.endpoint
        need_keys = self.journal is not None or self.sink is not None
        answered = self.sink.answered if self.sink is not None else set()
        while not self.gate.stopped and not self.cancelled:
            chunk, exhausted = await self._read_chunk()
            bodies: list[dict[str, Any]] = []
            keys: list[str] = []
            for number, (_, request) in enumerate(chunk):
                body = request_body(request)
                bodies.append(body)
                keys.append(request_key(endpoint, base_url, body) if need_keys else "")
                if number % 16 == 15:  # let the answers in flight be read meanwhile: the server is not kept waiting
                    await asyncio.sleep(0)
            if need_keys and not self._batch_id and keys:  # the batch's journal tag: its first prompts, its file
                self._batch_id = batch_id([*keys, str(self.sink.path.resolve()) if self.sink is not None else ""])
            self.seen += len(chunk)
            todo = []
            for number, (position, _) in enumerate(chunk):
                if answered and row_mark(position, keys[number][:16]) in answered:
                    with self._lock:  # the out file has its answer: nothing to send, nothing to write
                        self.progress.done += 1
                        self.skipped += 1
                else:
                    todo.append(number)
            if self.cache is not None and todo:
                hits = self.cache.get_many(endpoint, base_url, [bodies[n] for n in todo], [chunk[n][1] for n in todo])
                for number, hit in zip(list(todo), hits, strict=True):
                    if hit is not None:
                        todo.remove(number)
                        self._deliver(chunk[number][0], hit, keys[number], "cache")
            if self.journal is not None and todo:
                try:
                    found = self.journal.lookup([keys[n] for n in todo])
                except (sqlite3.Error, OSError) as exc:
                    self._journal_failed(exc)
                    found = {}
                for number in list(todo):
                    raw = found.get(keys[number])
                    if raw is not None:
                        response = response_from_json(chunk[number][1], bodies[number], raw, endpoint=endpoint,
                                                      cached=True)
                        response.cached = False  # from this batch's own earlier run, not from the response cache
                        todo.remove(number)
                        self._deliver(chunk[number][0], response, keys[number], "journal")
            with self._lock:  # pending until answered: the whole chunk, so a cancel counts every one read
                for number in todo:
                    position, request = chunk[number]
                    self.pending[position] = (request, bodies[number])
            for number in todo:
                position, request = chunk[number]
                await queue.put((position, request, bodies[number], keys[number]))
            if exhausted:
                return

    async def _stream_worker(self, driver: Any, sender: AsyncDriver, lane: Lane | _HttpxLane,
                             queue: asyncio.Queue[Any]) -> None:
        while True:
            item = await queue.get()
            if item is None:
                return
            position, request, body, key = item
            reservation = None if self.gate.stopped or self._stopping else self.gate.start(body)
            if reservation is None:  # the session budget ran out: the item stays unsent ("cancelled")
                continue
            response = await driver.send(request, body, lane)
            self.gate.finish(reservation, response)  # counts its cost in the session's spend
            self._deliver(position, response, key, "sent")
            self.rate_limited = sender.throttled
            if self.background:  # give up the GIL a moment: a cell the notebook runs meanwhile gets its turn now
                time.sleep(0)

    def _deliver(self, position: int, response: Response, key: str, origin: str) -> None:
        with self._lock:
            self.pending.pop(position, None)
            self._count(response, spent=origin == "sent")
            self._finished.append((position, response, key, origin))

    # -- the calling (or job) thread -------------------------------------------------------------------
    def _store_finished(self) -> None:
        with self._lock:
            finished, self._finished = self._finished, []
        if not finished:
            return
        sent = [(response, key) for _, response, key, origin in finished if origin == "sent"]
        if self.journal is not None:
            rows = [(key, self._batch_id, response.endpoint, raw) for response, key in sent
                    if response.status in OK_STATUSES and (raw := response.raw_json()) is not None]
            try:
                self.journal.record(rows)
            except (sqlite3.Error, OSError) as exc:
                self._journal_failed(exc)
        if self.cache is not None:
            self.cache.put_many([response for response, _ in sent if response.status == "completed"],
                                self.client.base_url)
        if self.log_items is not None:  # `batch(..., log_items=True)`: each item, as it finishes
            self.log_items([response for _, response, _, _ in finished])
        lines = []
        for position, response, key, origin in finished:
            ok = response.status in OK_STATUSES
            self.ok += ok
            self.failed += response.status == "failed"
            self.cached += origin == "cache"
            if origin == "journal":  # maybe another run's entry (a list's): forgotten too once all is answered
                self.resumed += 1
                self._resumed_keys.append(key)
            usage = response.usage
            if origin == "sent" and usage is not None:
                self.input_tokens += usage.input_tokens
                self.output_tokens += usage.output_tokens
            cost = _cost.response_cost(response, _cost.PROMPT_WAIT if not self._infos else 0.0, self._infos)
            if cost is not None:
                self.cost = (self.cost or 0.0) + cost
            if self.sink is None:
                self.kept[position] = response
                continue
            error = response.error
            lines.append({"position": position, "id": key[:16], "status": response.status,
                          "text": response.text if ok else None,
                          "error": f"{type(error).__name__}: {error}" if error is not None else None,
                          "input_tokens": usage.input_tokens if usage is not None else None,
                          "output_tokens": usage.output_tokens if usage is not None else None, "cost": cost})
        if self.sink is not None:
            self.sink.write(lines)

    def execute(self, view: Any, *, background: bool = False) -> Any:
        self.background = background
        partial = False
        live = Live()

        paint = self._painter(view)

        if view is not None:
            view.update(self.progress)
        try:
            live.run([lambda: self._thread_main([])], paint=paint, cancel=self._cancel, name="aihubmix-batch",
                     join_timeout=None, idle=_POLL)
        except KeyboardInterrupt:
            partial = True
        try:
            self._store_finished()
        finally:
            if self.sink is not None:
                self.sink.close()
        if live.errors and live.errors[0] is not None:  # a bug of ours, from the event loop's thread
            raise live.errors[0]
        if self.finite and self.sink is not None:
            self.unread = sum(1 for _ in self.items)
        elif self.finite:
            self.unread = max(0, (self.progress.total or 0) - self.seen)
        summary = self.summary_so_far(partial=partial, final=True)
        if self.journal is not None and summary.ok == summary.total and not summary.partial:
            try:  # complete: the journal forgets it
                self.journal.drop(self._resumed_keys, batch=self._batch_id)
            except (sqlite3.Error, OSError) as exc:
                self._journal_failed(exc)
        if view is not None:
            self.progress.note = None
            if self.progress.total is None or self.progress.total < summary.total:
                self.progress.total = summary.total
            view.finish(self.progress, str(summary), show=not background)
        if self.sink is not None:
            return summary
        if self.finite:  # the rest of a list: cancelled too, as for a batch in the foreground
            from ..core.protocol import request_body

            for position, text in self.items:
                request = self.first.with_prompt(text)
                self.pending[position] = (request, request_body(request))
        for position, (request, body) in self.pending.items():  # read, never answered
            response = Response(endpoint=request.endpoint, request=body, spec=request)
            response.status = "cancelled"
            response.elapsed = 0.0
            self.kept[position] = response
        results = BatchResults(self.kept[position] for position in sorted(self.kept))
        results.summary = summary
        return results

    def results_so_far(self) -> Any:
        if self.sink is not None:
            return self.summary_so_far()
        with self._lock:
            kept = dict(self.kept)
        results = BatchResults(kept[position] for position in sorted(kept))
        results.summary = self.summary_so_far()
        return results

    def summary_so_far(self, *, partial: bool = True, final: bool = False) -> BatchSummary:
        cancelled = len(self.pending) + self.unread if final else 0
        ok = self.ok + self.skipped
        return BatchSummary(
            total=self.seen + self.unread if final else ok + self.failed, ok=ok, failed=self.failed, cancelled=cancelled, cached=self.cached, input_tokens=self.input_tokens,
            output_tokens=self.output_tokens, retries=self.retries,
            elapsed=time.perf_counter() - self.progress.started,
            partial=partial or self.cancelled or cancelled > 0 or self.input_error is not None,
            cost=self.cost, budget_reached=self.gate.stopped, rate_limited=self.rate_limited,
            resumed=self.resumed + self.skipped, input_error=self.input_error,
            out=str(self.sink.path) if self.sink is not None else None)


# -- in the background -----------------------------------------------------------------------------------
_jobs: weakref.WeakSet[BatchJob] = weakref.WeakSet()  # running jobs, cancelled at interpreter exit
_atexit_registered = False


class BatchJob:
    """A batch running in the background: `batch(..., wait=False)` or `%%aihubmix --over EXPR --background`.

    It runs on its own thread with its own event loop (never the kernel's), so the notebook runs other
    cells meanwhile, and an interrupt of another cell does not touch it. Its progress bar keeps updating
    in the cell that started it.

    - `done()`: whether it has finished (completed, cancelled or failed).
    - `wait(timeout=None)`: block until it finishes and return what `batch()` returns (results, a Series,
      or with `out=` the summary); TimeoutError if it is still running after `timeout` seconds (it goes on).
    - `cancel()`: stop sending; what finished is kept (and journaled: the same call resumes it).
    - `results`: the answers finished so far (in input order; with `out=`, the summary so far: the answers
      are in the file), `summary`: how it goes so far.

    The journal works as for a batch in the foreground: after a kernel restart the same call resumes.
    """

    def __init__(self, run: _Run, view: Any, index: Any) -> None:
        self._run = run
        self._view = view
        self._index = index
        self._result: Any = None
        self._error: BaseException | None = None
        self._finished = threading.Event()
        self._thread = threading.Thread(target=self._main, name="aihubmix-batch-job", daemon=True)

    def start(self) -> None:
        global _atexit_registered
        if not _atexit_registered:
            import atexit

            atexit.register(_cancel_jobs)
            _atexit_registered = True
        _jobs.add(self)
        self._thread.start()

    def _main(self) -> None:
        try:
            self._result = _finish(self._run.execute(self._view, background=True), self._index)
        except BaseException as exc:  # noqa: BLE001  kept, and raised by wait()
            self._error = exc
        finally:
            self._finished.set()
            _jobs.discard(self)

    def done(self) -> bool:
        """Whether the batch has finished (every item answered or failed, cancelled, or stopped by an error)."""
        return self._finished.is_set()

    def wait(self, timeout: float | None = None) -> Any:
        """The results, as `batch()` returns them, once the batch has finished; TimeoutError after `timeout`
        seconds if it has not (it keeps running)."""
        if not self._finished.wait(timeout):
            raise TimeoutError(f"The batch is still running ({self._run.progress.line()}); it goes on: "
                               "wait again, or job.cancel().")
        if self._error is not None:
            raise self._error
        return self._result

    def cancel(self) -> None:
        """Stop sending; the items that finished are kept (and journaled), the others are "cancelled"."""
        if not self._finished.is_set():
            self._run.cancel()

    @property
    def results(self) -> Any:
        """The answers so far (what `wait()` returns, once done)."""
        if self._finished.is_set() and self._error is None:
            return self._result
        return self._run.results_so_far()

    @property
    def summary(self) -> BatchSummary:
        """How the batch went (or goes, while it runs)."""
        result = self._result if self._finished.is_set() else None
        if isinstance(result, BatchSummary):
            return result
        if result is not None:
            return result.attrs["summary"] if hasattr(result, "attrs") else result.summary
        return self._run.summary_so_far()

    def __repr__(self) -> str:
        state = "done" if self.done() else "cancelling" if self._run.cancelled else "running"
        return f"<BatchJob {state}: {self._run.progress.line()}>"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


def _cancel_jobs() -> None:
    """At interpreter exit (a kernel shutting down): cancel the running jobs and let them journal what
    finished (a few seconds at most)."""
    jobs = list(_jobs)
    for job in jobs:
        job.cancel()
    deadline = time.monotonic() + 5.0
    for job in jobs:
        job._finished.wait(max(0.0, deadline - time.monotonic()))
