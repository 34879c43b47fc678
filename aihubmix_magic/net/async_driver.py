"""The async driver: sends typed requests for `batch()`, one keep-alive connection per worker.

It only sends, waits and reads, as the sync `Client` does, and takes every decision from pure code: the
body, the retry rule and the error mapping from the protocol core (`_protocol.py`), so an unknown model
is asked once here as in a cell; when to send and how long a rate limit holds the whole batch back from
the shared `Limiter` (`_ratelimit.py`). Answers are not streamed. A failed request becomes a Response
with status "failed" and `.error` set, so one bad item does not stop the others.

Why a connection per worker (`AsyncDriver.lane()`) and not one pool for all: httpcore 1.0's
`AsyncConnectionPool` re-examines every connection on each request and each release, and for each idle
one probes its socket (`getpeername`, `poll`), so its cost per request grows with the square of the
connections: at 64 in flight it took about 11 ms of CPU a request. A worker that owns its connection needs
no pool at all. And why not httpx's transport for that connection: at a thousand answers a second on 2
cores, httpx's stack (httpcore, anyio, h11) at about 1 ms of CPU an answer was the ceiling, so a lane is
one asyncio protocol that writes each request in one call and reads the answer with h11 (`_lane.py`), a
fraction of that. Behind a proxy (`_proxy.proxy_for`, the same rule as the sync client's), a lane is an
httpx transport limited to one connection (`_HttpxLane`). Either way an answer longer than
`settings.max_answer_bytes` once decoded fails with AnswerTooLargeError, and is not retried.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import math
import os
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx

from ..core import protocol, ratelimit
from ..core.exceptions import AihubmixError, AnswerTooLargeError, RateLimitError
from ..core.protocol import ENDPOINT_PATHS, Failure, has_runnable_tools
from ..core.response import Response
from ..core.toolloop import Approve, Approver, arun_tool_loop
from ..core.types import ToolRun
from .bodies import BodyDecoder, ContentDecodingError, framing_problem
from .client import ssl_context
from .lane import KEEPALIVE_EXPIRY, Answer, Lane, Origin
from .proxy import proxy_for

if TYPE_CHECKING:
    from ..core.request import Request
    from .client import Client

__all__ = ["AsyncDriver", "Gate", "ToolDriver"]

HTTP2 = importlib.util.find_spec("h2") is not None
_ENCODER = json.JSONEncoder(ensure_ascii=False)  # what json.dumps(body, ensure_ascii=False) builds per call


class Gate:
    """The shared `Limiter` for the workers of one event loop: `enter` waits until a request may start.
    `shared`: other batches, on other threads and loops, use the same limiter (their ends do not wake
    this loop, so a worker waiting for a free slot looks again every 50 ms)."""

    def __init__(self, limiter: ratelimit.Limiter, *, shared: bool = False) -> None:
        self.limiter = limiter
        self._changed = asyncio.Event()
        self._poll = 0.05 if shared else None

    async def enter(self, tokens: float = 0.0) -> ratelimit.Ticket:
        """Wait until the limiter lets a request start; RateLimitError once the batch has stalled."""
        limiter = self.limiter
        while True:
            now = time.monotonic()
            with limiter.lock:
                if limiter.stalled(now):
                    raise RateLimitError(
                        f"Not sent: the batch was rate limited and no item finished for {limiter.patience:g} s "
                        "(settings.rate_limit_patience). Run the same batch again later: the answers so far are "
                        "kept and only the rest is sent.", status_code=429)
                wait = limiter.delay(now, tokens)
                if wait == 0:
                    return limiter.start(now, tokens)
            if self._poll is not None and wait is None:  # a slot another loop's request frees wakes no one here
                wait = self._poll
            changed = self._changed
            try:
                await asyncio.wait_for(changed.wait(), wait)
            except asyncio.TimeoutError:
                pass

    def leave(self, ticket: ratelimit.Ticket, outcome: str, **details: Any) -> None:
        """The request of `ticket` ended (see `Limiter.finish`); the waiting workers look again."""
        with self.limiter.lock:
            self.limiter.finish(time.monotonic(), ticket, outcome, **details)
        self._changed.set()
        self._changed = asyncio.Event()


class AsyncDriver:
    """Sends requests with the settings (key, base URL, timeouts, retries) of a sync `Client`, through a
    `Gate` when given one (a batch), each on the worker's own connection (`lane()`)."""

    def __init__(self, client: Client, *, gate: Gate | None = None) -> None:
        self.client = client
        self.gate = gate
        self.retries = 0  # retries taken over all requests (rate-limited ones included)
        self.throttled = 0  # answers that asked the batch to slow down (429, 503/529 overloaded)
        self._lanes: list[Lane | _HttpxLane] = []
        headers = client._headers()
        headers["Content-Type"] = "application/json"
        headers["User-Agent"] = f"python-httpx/{httpx.__version__}"  # what the sync Client sends
        self._redactor = client._redactor()
        self._base_url = client.base_url
        url = httpx.URL(client.base_url)
        # each endpoint's path as the sync client sends it: percent-encoding kept (`%0D%0A` stays three
        # characters each), never decoded onto the wire
        self._paths = {endpoint: httpx.URL(client.base_url + path).raw_path.decode("ascii")
                       for endpoint, path in ENDPOINT_PATHS.items()}
        proxy = proxy_for(client.base_url)
        limit = client.max_answer_bytes
        self._origin: Origin | None = None
        self._httpx: tuple[Any, ...] | None = None
        if proxy is None:
            context = ssl_context(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"), ("http/1.1",))
            self._origin = Origin(url, headers, context=context, timeout=client.timeout, limit=limit)
        else:  # a proxy: httpx's transport, which speaks them all (see `_lane`)
            self._httpx = (url, headers, {"timeout": client.timeout.as_dict()}, proxy, limit)

    async def __aenter__(self) -> AsyncDriver:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        lanes, self._lanes = self._lanes, []
        await asyncio.gather(*(lane.aclose() for lane in lanes), return_exceptions=True)

    def lane(self) -> Lane | _HttpxLane:
        """A connection for one worker (`_lane.Lane`), reused for each of its requests; through a proxy
        from the environment (HTTPS_PROXY, ALL_PROXY… as httpx reads them), an httpx transport limited to
        one connection."""
        lane: Lane | _HttpxLane
        if self._origin is not None:
            lane = Lane(self._origin)
        else:
            assert self._httpx is not None
            lane = _HttpxLane(*self._httpx)
        self._lanes.append(lane)
        return lane

    async def send(self, request: Request, body: dict[str, Any] | None = None,
                   lane: Lane | _HttpxLane | None = None) -> Response:
        """One request, not streamed; a failure is recorded in the Response, never raised."""
        body = body if body is not None else protocol.request_body(request)
        body.pop("stream", None)
        body.pop("stream_options", None)
        response = Response(endpoint=request.endpoint, request=body, stream=False, spec=request)
        if lane is None:
            lane = self._lanes[0] if self._lanes else self.lane()
        try:
            content, content_type = await self._send(lane, self._paths[request.endpoint], body, request)
            content = self._redactor.redact(content)
            final = protocol.parse_json(content, content_type, base_url=self._base_url, redactor=self._redactor)
            protocol.complete(response, final)
            # a batch holds thousands of answers: the final JSON as bytes (decoded when read), and one copy
            # of the strings every answer repeats (json.loads makes new ones per document)
            response.keep_raw_json(content)
            if response.model:
                response.model = sys.intern(response.model)
            if response.finish_reason:
                response.finish_reason = sys.intern(response.finish_reason)
        except AihubmixError as exc:
            response.status = "failed"
            response.error = exc
            response.elapsed = time.perf_counter() - response._started
            exc.response = response
        return response

    async def _send(self, lane: Lane | _HttpxLane, path: str, body: dict[str, Any],
                    request: Request) -> tuple[bytes, str]:
        """POST with the core's retry rule and the gate's pace; return the 2xx body and its content type."""
        client = self.client
        content = _ENCODER.encode(body).encode()
        model = str(body.get("model", ""))
        gate = self.gate
        tokens = 0.0
        if gate is not None and gate.limiter.tpm:  # about 4 bytes a token; the answer's usage corrects it
            tokens = gate.limiter.estimate(math.ceil(len(content) / 4), request.max_tokens)
        retries = 0
        throttled: Failure | None = None  # this item's last rate-limit answer
        while True:
            try:
                ticket = await gate.enter(tokens) if gate is not None else None
            except RateLimitError:
                if throttled is not None:  # it was sent: the server's own answer says more than "not sent"
                    raise throttled.error from None
                raise
            failure: Failure
            outcome = "retry"
            details: dict[str, Any] = {}
            try:
                try:
                    answer = await lane.post(path, content, retries)
                except httpx.TransportError as exc:  # no answer came back: a send failure
                    failure = client._transport(exc, "send")
                else:
                    status, headers, data, broken = answer
                    if isinstance(broken, AnswerTooLargeError):  # never retried, whatever the status
                        outcome = "failed"
                        raise broken
                    if broken is not None and status < 400:  # the body of an answer broke off
                        outcome = "failed"
                        raise client._transport(broken, "read").error from broken
                    if gate is not None:
                        details["headers"] = ratelimit.RateHeaders.parse(headers, time.time())
                    if status < 400:
                        outcome = "ok"
                        if gate is not None and gate.limiter.tpm:
                            details["usage"] = _usage(data)
                        return data, headers.get("content-type", "")
                    failure = protocol.status_failure(
                        status, headers, data, base_url=self._base_url, path=path,
                        model=model, redactor=self._redactor,
                        suggest=client.suggest)  # an unknown model: the id list is fetched once, then cached
                    if gate is not None and ratelimit.is_throttle(status, failure):
                        outcome = "throttled"
                        details["retry_after"] = ratelimit.retry_after(headers, time.time())
                if outcome == "throttled":  # retried until the batch stalls (the gate raises then)
                    self.throttled += 1
                    throttled = failure
                    delay: float | None = 0.0
                else:
                    delay = protocol.retry_delay(failure, retries, client.max_retries)
                    if delay is None:
                        outcome = "failed"
                        raise failure.error
            finally:
                if gate is not None and ticket is not None:
                    gate.leave(ticket, outcome, **details)
            if outcome == "throttled" and gate is not None and gate.limiter.stalled(time.monotonic()):
                raise failure.error  # the server's own 429: no item finished for `patience` seconds
            retries += 1
            self.retries += 1
            if delay:
                await asyncio.sleep(delay)


class _HttpxLane:
    """A worker's connection through a proxy: an httpx transport limited to one connection, with the
    `Lane.post` interface. A transport, not an `httpx.AsyncClient`: a batch needs none of what a client
    adds per request (URL and header merging, auth and redirect flows, cookies)."""

    def __init__(self, url: httpx.URL, headers: dict[str, str], extensions: dict[str, Any], proxy: str,
                 limit: int) -> None:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1, keepalive_expiry=KEEPALIVE_EXPIRY)
        context = ssl_context(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"), None)
        self._transport = httpx.AsyncHTTPTransport(verify=context, http2=HTTP2, limits=limits, proxy=proxy)
        self._url = url
        self._headers = headers
        self._extensions = extensions
        self._limit = limit

    async def post(self, path: str, content: bytes, retries: int = 0) -> Answer:
        headers = self._headers
        if retries:
            headers = {**headers, "x-stainless-retry-count": str(retries)}
        url = self._url.copy_with(raw_path=path.encode("ascii"))
        response = await self._transport.handle_async_request(httpx.Request(
            "POST", url, headers=headers, content=content, extensions=self._extensions))
        fields = dict(response.headers.items())
        pieces = []
        try:  # a transport's answer is raw: decoded here, under the cap, as a lane does
            problem = framing_problem(fields)
            if problem is not None:
                raise httpx.RemoteProtocolError(problem)
            decoder = BodyDecoder(fields.get("content-encoding"), self._limit)
            async for piece in response.aiter_raw():
                pieces.append(decoder.feed(piece))
            pieces.append(decoder.flush())
        except ContentDecodingError as exc:
            return Answer(response.status_code, fields, b"", httpx.RemoteProtocolError(str(exc)))
        except (httpx.TransportError, AnswerTooLargeError) as exc:
            return Answer(response.status_code, fields, b"", exc)
        finally:
            await response.aclose()
        return Answer(response.status_code, fields, b"".join(pieces))

    async def aclose(self) -> None:
        await self._transport.aclose()


def _usage(data: bytes) -> tuple[int, int] | None:
    """(input, output) tokens of a final JSON body, for tpm pacing (None if it has no usage)."""
    try:
        usage = json.loads(data).get("usage") or {}
        return (int(usage.get("prompt_tokens", usage.get("input_tokens", 0)) or 0),
                int(usage.get("completion_tokens", usage.get("output_tokens", 0)) or 0))
    except (ValueError, AttributeError, TypeError):
        return None


class ToolDriver:
    """The async driver of `batch()`, with the tool loop around each request that offers Python functions:
    the same `send(request, body)` and `retries`. Tools run on a helper thread, one call at a time (user
    functions need not be thread-safe), so the event loop keeps the other requests going."""

    def __init__(self, driver: Any, *, approve: Approve, max_steps: int, scrub: Callable[[str], str]) -> None:
        import asyncio

        self.driver = driver
        self.approve = approve
        self.max_steps = max_steps
        self.scrub = scrub
        self._lock = asyncio.Lock()

    @property
    def retries(self) -> int:
        return int(self.driver.retries)

    async def send(self, request: Request, body: dict[str, Any] | None = None, lane: Any = None) -> Response:
        """`lane`: the batch worker's own connection, passed on to the async driver at every step."""

        if not has_runnable_tools(request):
            return await self.driver.send(request, body, lane)
        bodies = [body]

        async def send_step(step_request: Request) -> Response:
            first = bodies.pop() if bodies else None
            response: Response = await self.driver.send(step_request, first, lane)
            return response

        return await arun_tool_loop(request, send_step, approver=Approver(approve=self.approve),
                                    max_steps=self.max_steps, scrub=self.scrub, run_in_thread=self._run)

    async def _run(self, job: Callable[[], ToolRun]) -> ToolRun:
        import asyncio

        async with self._lock:
            return await asyncio.to_thread(job)
