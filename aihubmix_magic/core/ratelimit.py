"""Rate limits of a batch, with no I/O in it: what a server's headers say, and one limiter for all workers.

A batch of 50,000 prompts meets the server's limits; each item retrying on its own (as a cell does) makes
every worker hit the limit again at the same moment, and items fail. Instead the whole batch slows down:

- `retry_after(headers, now)`: the server's wish (`retry-after-ms`, `retry-after` in seconds or as an
  HTTP date), in seconds, without the 60 s cap of a single cell (`_protocol.retry_delay`): a batch has the
  time, a cell does not.
- `RateHeaders.parse(headers, now)`: `x-ratelimit-remaining-requests` / `-tokens` and
  `x-ratelimit-reset-requests` / `-tokens` ("1s", "6m0s", "20ms", seconds, or a Unix time).
- `is_throttle(status, failure)`: a 429, or a retryable 503/529 ("overloaded"): the server asks the whole
  batch to slow down. An unknown model's 503 is not one (the protocol core has already made it final).
- `Limiter`: when the next request may start, shared by every worker of a batch. It
  * pauses every worker for the server's `retry-after` (or a backoff that doubles while nothing succeeds),
  * halves the concurrency on the first throttle of an episode, lets one request probe after a pause, and
    grows the concurrency back by one per round of successes (additive increase, multiplicative decrease),
  * waits for `x-ratelimit-reset-*` when the server says nothing remains,
  * paces the starts to `rpm` requests and `tpm` tokens a minute when asked (evenly spaced: a request's
    tokens are estimated before, and the estimate corrected by the usage the answer reports),
  * and says when the batch is `stalled`: throttled with no item finished for `patience` seconds.

Time is an argument everywhere (`now`, a monotonic clock), so every rule is tested without sleeping.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from .protocol import Failure, retry_after

__all__ = ["THROTTLE_STATUSES", "Limiter", "RateHeaders", "Ticket", "is_throttle", "parse_duration", "retry_after"]

THROTTLE_STATUSES = frozenset({429, 503, 529})
MAX_BACKOFF = 30.0  # seconds: the longest pause without a retry-after (it doubles from 0.5 s while nothing succeeds)
SPACING_DECAY = 0.98  # the learned spacing shrinks by this on each success, until a throttle says it is too short
DEFAULT_OUTPUT_GUESS = 256  # tokens an answer is guessed to take for tpm pacing, until answers say otherwise
_EPOCH_SECONDS = 1e9  # a reset "duration" above this is a Unix time


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def parse_duration(value: str, wall_now: float) -> float | None:
    """An `x-ratelimit-reset-*` value in seconds from now: "1s", "6m0s", "1h2m3.5s", "20ms", a plain number of
    seconds, or a Unix time (a number above 1e9); None if it is none of these."""
    text = value.strip().lower()
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        if math.isnan(number) or number < 0:
            return None
        return max(0.0, number - wall_now) if number > _EPOCH_SECONDS else number
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(amount + unit for amount, unit in parts) != text:
        return None
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    return sum(float(amount) * scale[unit] for amount, unit in parts)


def _count(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if number >= 0 else None


@dataclass(frozen=True)
class RateHeaders:
    """What `x-ratelimit-*` headers say: how many requests / tokens remain, and in how many seconds the
    count resets (None where a header is missing or unreadable)."""

    remaining_requests: float | None = None
    reset_requests: float | None = None
    remaining_tokens: float | None = None
    reset_tokens: float | None = None

    @classmethod
    def parse(cls, headers: Mapping[str, str], wall_now: float) -> RateHeaders | None:
        """The rate-limit headers of an answer, or None when it has none."""
        remaining_requests = _count(headers.get("x-ratelimit-remaining-requests"))
        remaining_tokens = _count(headers.get("x-ratelimit-remaining-tokens"))
        if remaining_requests is None and remaining_tokens is None:
            return None
        reset_requests = headers.get("x-ratelimit-reset-requests")
        reset_tokens = headers.get("x-ratelimit-reset-tokens")
        return cls(remaining_requests, parse_duration(reset_requests, wall_now) if reset_requests else None,
                   remaining_tokens, parse_duration(reset_tokens, wall_now) if reset_tokens else None)


def is_throttle(status: int, failure: Failure) -> bool:
    """Whether an error answer asks the whole batch to slow down: a 429, or a 503/529 (overloaded), that
    the protocol core would retry (so not an unknown model's 503, nor an `x-should-retry: false`)."""
    return status in THROTTLE_STATUSES and failure.retryable


@dataclass(frozen=True)
class Ticket:
    """A request that started: when, in which throttle episode, and the tokens reserved for it."""

    started: float
    epoch: int
    tokens: float = 0.0


class Limiter:
    """When the next request of a batch may start; one for all the workers of a batch.

    A worker asks `delay(now, tokens)`: 0 means start now (then `start(now, tokens)` gives its Ticket),
    a positive number means look again after that many seconds, None means wait until a request in
    flight ends. When the answer is there, `finish(now, ticket, outcome, ...)` with outcome "ok" (an
    answer), "failed" (the item failed for good), "retry" (an error the normal retry policy retries) or
    "throttled" (see `is_throttle`). `stalled(now)`: give up on the items still to send.
    """

    def __init__(self, concurrency: int, *, rpm: float | None = None, tpm: float | None = None,
                 patience: float = 600.0, now: float = 0.0) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.concurrency = concurrency
        self.limit = concurrency  # the concurrency allowed now (halved on throttles, grown back on successes)
        self.rpm = rpm
        self.tpm = tpm
        self.patience = patience
        self.in_flight = 0
        self.throttled = 0  # throttle answers (429, 503/529 overloaded) so far
        self.paused_until = 0.0  # no request starts before this (retry-after, or a backoff)
        self.epoch = 0  # +1 at each cut of the concurrency: throttles of requests sent before it are the same episode
        self.cuts = 0  # cuts since the last success: the backoff's exponent when the server gives no retry-after
        self.probing = False  # after a cut, one request at a time until one succeeds
        self.successes = 0  # since the concurrency last changed
        self.last_progress = now  # when an item last finished (an answer or a final failure)
        self.throttled_since_progress = False
        self.output_guess = float(DEFAULT_OUTPUT_GUESS)
        self._outputs_seen = 0
        self.spacing = 0.0  # learned from sub-second retry-afters: seconds between starts (shrinks on successes)
        self._next_request_at = 0.0  # rpm pacing and the learned spacing
        self._last_ok_start: float | None = None
        self._tokens_free_at = 0.0  # tpm pacing
        self._requests_left: float | None = None  # x-ratelimit-remaining-requests, counted down by each start
        self._requests_reset_at = 0.0
        self._tokens_left: float | None = None
        self._tokens_reset_at = 0.0
        self.lock = threading.Lock()  # held by whoever calls in, when batches on several threads share it

    def join(self, concurrency: int, *, rpm: float | None = None, tpm: float | None = None) -> None:
        """Another batch (on another thread) shares this limiter from now on: the concurrencies add up, and
        the stricter `rpm` / `tpm` holds for all."""
        self.concurrency += concurrency
        self.limit += concurrency
        if rpm:
            self.rpm = min(self.rpm, rpm) if self.rpm else rpm
        if tpm:
            self.tpm = min(self.tpm, tpm) if self.tpm else tpm

    def leave(self, concurrency: int) -> None:
        """A batch that shared this limiter ended: its concurrency is given back."""
        self.concurrency = max(1, self.concurrency - concurrency)
        self.limit = max(1, min(self.limit, self.concurrency))

    def __repr__(self) -> str:
        return (f"<Limiter limit={self.limit}/{self.concurrency} in_flight={self.in_flight} "
                f"paused_until={self.paused_until:.2f} throttled={self.throttled}>")

    # -- estimates ---------------------------------------------------------------------------------------
    def estimate(self, input_tokens: float, max_tokens: int | None) -> float:
        """The tokens a request is guessed to use, for tpm: its input, plus `max_tokens` or the mean output
        of the answers so far (256 before the first)."""
        return input_tokens + (max_tokens if max_tokens is not None else self.output_guess)

    # -- before a request ------------------------------------------------------------------------------
    def delay(self, now: float, tokens: float = 0.0) -> float | None:
        """0.0: a request may start now; a positive number: look again in that many seconds; None: wait for
        a request in flight to end."""
        wait = self.paused_until - now
        if self.rpm or self.spacing:
            wait = max(wait, self._next_request_at - now)
        if self.tpm:
            wait = max(wait, self._tokens_free_at - now)
        if self._requests_left is not None:
            if now >= self._requests_reset_at:
                self._requests_left = None
            elif self._requests_left < 1:
                wait = max(wait, self._requests_reset_at - now)
        if self._tokens_left is not None:
            if now >= self._tokens_reset_at:
                self._tokens_left = None
            elif self._tokens_left < tokens:
                wait = max(wait, self._tokens_reset_at - now)
        if wait > 0:
            if self.throttled_since_progress:  # wake up in time to give up
                wait = min(wait, max(self.last_progress + self.patience - now, 0.0) + 1e-3)
            return wait
        if self.in_flight >= self.allowed:
            return None
        return 0.0

    @property
    def allowed(self) -> int:
        """Requests that may be in flight now."""
        return 1 if self.probing else self.limit

    def start(self, now: float, tokens: float = 0.0) -> Ticket:
        """A request starts now (after `delay` said 0)."""
        self.in_flight += 1
        if self.rpm or self.spacing:
            self._next_request_at = max(self._next_request_at, now) + max(60.0 / self.rpm if self.rpm else 0.0,
                                                                          self.spacing)
        if self.tpm:
            self._tokens_free_at = max(self._tokens_free_at, now) + tokens * 60.0 / self.tpm
        if self._requests_left is not None:
            self._requests_left -= 1
        if self._tokens_left is not None:
            self._tokens_left -= tokens
        return Ticket(now, self.epoch, tokens)

    # -- after it --------------------------------------------------------------------------------------
    def finish(self, now: float, ticket: Ticket, outcome: str, *, headers: RateHeaders | None = None,
               retry_after: float | None = None, usage: tuple[int, int] | None = None) -> None:
        """The request of `ticket` ended. `outcome`: "ok", "failed", "retry" or "throttled"; `headers`: its
        rate-limit headers; `retry_after`: the server's wish (seconds); `usage`: (input, output) tokens."""
        if outcome not in ("ok", "failed", "retry", "throttled"):
            raise ValueError(f"unknown outcome {outcome!r}")
        self.in_flight = max(0, self.in_flight - 1)
        if headers is not None:
            self._read_headers(now, headers)
        if usage is not None:
            self._settle(ticket, usage)
        if outcome == "ok":
            self._progress(now)
            self._last_ok_start = ticket.started
            if ticket.epoch == self.epoch:  # sent since the last cut: it says the pace is right now
                self.cuts = 0
                self.probing = False
                self.spacing = self.spacing * SPACING_DECAY if self.spacing > 0.001 else 0.0
                self.successes += 1
                if self.successes >= self.limit and self.limit < self.concurrency:
                    self.limit += 1
                    self.successes = 0
        elif outcome == "failed":
            self._progress(now)
        elif outcome == "throttled":
            self.throttled += 1
            self.throttled_since_progress = True
            if ticket.epoch == self.epoch:  # the first throttle of this episode: slow down once
                self.epoch += 1
                self.cuts += 1
                self.limit = max(1, self.limit // 2)
                self.successes = 0
                self.probing = True
                wait = retry_after if retry_after is not None else min(0.5 * 2 ** (self.cuts - 1), MAX_BACKOFF)
                if retry_after is not None and retry_after != int(retry_after):
                    # a precise wish (retry-after-ms): the server's next slot comes at now + retry_after, so
                    # its pace is about one request from the last successful start to then
                    since_ok = now - self._last_ok_start if self._last_ok_start is not None else 0.0
                    self.spacing = max(self.spacing, retry_after + max(0.0, since_ok))
            else:  # sent before the cut: it only says the pause must be long enough
                wait = retry_after if retry_after is not None else 0.0
            self.paused_until = max(self.paused_until, now + wait)
            if not self.rpm:  # the server refused it: its slot of the learned spacing is not used up
                self._next_request_at = min(self._next_request_at, self.paused_until)

    def _progress(self, now: float) -> None:
        self.last_progress = now
        self.throttled_since_progress = False

    def _read_headers(self, now: float, headers: RateHeaders) -> None:
        if headers.remaining_requests is not None and headers.reset_requests is not None:
            self._requests_left = headers.remaining_requests
            self._requests_reset_at = now + headers.reset_requests
        if headers.remaining_tokens is not None and headers.reset_tokens is not None:
            self._tokens_left = headers.remaining_tokens
            self._tokens_reset_at = now + headers.reset_tokens

    def _settle(self, ticket: Ticket, usage: tuple[int, int]) -> None:
        input_tokens, output_tokens = usage
        self._outputs_seen += 1
        self.output_guess += (output_tokens - self.output_guess) / self._outputs_seen
        if self.tpm:  # the estimate is replaced by what the answer used
            self._tokens_free_at += (input_tokens + output_tokens - ticket.tokens) * 60.0 / self.tpm

    # -- the state, for the progress line and for giving up ----------------------------------------------
    def stalled(self, now: float) -> bool:
        """Throttled, and no item finished for `patience` seconds: give up on the items still to send."""
        return self.throttled_since_progress and now - self.last_progress >= self.patience

    def status(self, now: float) -> str | None:
        """A few words on why requests wait, or None: "rate limited: resuming in 4 s"."""
        waits: list[tuple[float, str]] = [(self.paused_until - now, "rate limited")]
        if self._requests_left is not None and self._requests_left < 1:
            waits.append((self._requests_reset_at - now, "rate limit reached"))
        if self._tokens_left is not None and self._tokens_left <= 0:
            waits.append((self._tokens_reset_at - now, "token limit reached"))
        wait, reason = max(waits)
        if wait > 0.5:
            return f"{reason}: resuming in {math.ceil(wait)} s"
        pacing = max(self._next_request_at - now if self.rpm else 0.0, self._tokens_free_at - now if self.tpm else 0.0)
        if pacing > 1.0:
            return f"paced ({self._pace()}): next request in {math.ceil(pacing)} s"
        return None

    def _pace(self) -> str:
        parts = []
        if self.rpm:
            parts.append(f"{self.rpm:g} requests/min")
        if self.tpm:
            parts.append(f"{self.tpm:g} tokens/min")
        return ", ".join(parts)
