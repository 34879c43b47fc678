"""The skeleton every live display shares: work on helper threads while the calling thread paints and
takes Ctrl-C. No I/O and no IPython in it.

A cell's stream (`notebook.display.consume`), `--compare` (`notebook.compare.run_comparison`) and `batch()`
(`services.batch._Run.execute`) all run the same way: helper threads read sockets (or run an event loop), the
calling thread, the one the kernel interrupts, repaints at most as often as the view asks, and on
KeyboardInterrupt the work is cancelled (sockets shut down), the helpers are joined, and the interrupt
goes on up. `Live.run` is that loop, once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .response import Response

__all__ = ["Live", "LiveView"]


class LiveView(Protocol):
    """Where a streamed answer is shown: `_display.NotebookView` (Markdown) or `TerminalView` (text)."""

    interval: float  # the longest wait between looks at what arrived
    quiet: float  # a delta after a gap this long is shown at once

    @property
    def deadline(self) -> float | None:
        """When held-back text should be painted (None: nothing is held back)."""

    def feed(self, kind: str, text: str, arrived: float | None = None) -> None:
        """Store a delta ("text" or "reasoning"); paint it if the throttle allows."""

    def tick(self, now: float | None = None) -> None:
        """Paint held-back text if it is due."""

    def note(self, text: str) -> None:
        """Show a transient line (e.g. "retrying in 1 s")."""

    def clear_note(self) -> None:
        """Take the transient line away (the call failed before anything else was shown)."""

    def finish(self, response: Response, status_line: str | None = None,
               outputs: list[dict[str, object]] | None = None) -> None:
        """Show the finished answer once (or `outputs`, display data in its place) and its footer."""


class Live:
    """Run work on helper threads and paint on the calling thread until it is done.

    Workers call `wake()` (or `wake_locked()` holding `condition`) when there is something to paint;
    `paint(done)` runs on the calling thread after each wake-up, and returns when it wants to be called
    again (a `time.perf_counter()` time, or None: on the next wake-up only).
    """

    def __init__(self) -> None:
        self.condition = threading.Condition()
        self.errors: list[BaseException | None] = []
        self._woken = False
        self._finished = 0

    def wake(self) -> None:
        with self.condition:
            self.wake_locked()

    def wake_locked(self) -> None:
        self._woken = True
        self.condition.notify()

    def run(self, targets: Sequence[Callable[[], None]], *, paint: Callable[[bool], float | None],
            cancel: Callable[[], None], name: str = "aihubmix", join_timeout: float | None = 5.0,
            idle: float = 0.5) -> None:
        """Run `targets` (one thread each) and `paint` until all have returned. An exception in a target
        is kept in `errors` (in target order). On KeyboardInterrupt: `cancel()`, join the threads (at most
        `join_timeout` seconds each), and re-raise."""
        self.errors = [None] * len(targets)
        threads = [threading.Thread(target=self._guard, args=(number, target), name=f"{name}-{number}", daemon=True)
                   for number, target in enumerate(targets)]
        for thread in threads:
            thread.start()
        clock = time.perf_counter
        due: float | None = None
        try:
            while True:
                with self.condition:
                    if self._finished < len(targets) and not self._woken:
                        wait = idle if due is None else max(0.0, due - clock())
                        self.condition.wait(wait)
                    self._woken = False
                    done = self._finished == len(targets)
                due = paint(done)
                if done:
                    break
        except KeyboardInterrupt:
            cancel()
            for thread in threads:
                thread.join(join_timeout)
            raise
        for thread in threads:
            thread.join()

    def _guard(self, number: int, target: Callable[[], None]) -> None:
        try:
            target()
        except BaseException as exc:  # handed to the calling thread
            self.errors[number] = exc
        finally:
            with self.condition:
                self._finished += 1
                self.wake_locked()
