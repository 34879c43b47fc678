"""A batch worker's connection: one keep-alive HTTP/1.1 connection on asyncio's own transport.

Each worker of a batch sends its requests one after another on its own connection (`Lane.post`), so a
lane needs no pool, no locks and no per-request bookkeeping: the request's bytes are written in one call
(a head built once per driver, the JSON body) and the answer is read by `_http11.ResponseParser` in the
protocol's `data_received`. That is what keeps a batch at the server's speed at high concurrency: on 2
cores, the client and a local server share the CPU, and httpx's stack (httpcore's pool, anyio, h11) took
about 1 ms of CPU an answer, this about 0.2 ms (`benchmarks/bench_batch.py`).

What httpx would do and a lane does too: TLS with the same certificates (certifi, or `SSL_CERT_FILE` /
`SSL_CERT_DIR`), a connect timeout, a read timeout between two pieces of the answer, a new connection
when the server closed the last one or it was idle for `KEEPALIVE_EXPIRY` seconds, gzip/deflate bodies.
Its failures are httpx's exception classes, so the protocol core maps them as it maps the sync client's:
one raised before the answer's head arrived is a send failure; one after it (the body broke off) comes
back in `Answer.error`, with the status. Behind a proxy, the driver uses an httpx transport instead
(`_async.AsyncDriver.lane`): proxies are rare for an API gateway and httpx already speaks them all.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import NamedTuple

import httpx

from .http11 import HTTPProtocolError, ResponseParser, decoded_body

__all__ = ["KEEPALIVE_EXPIRY", "Answer", "Lane", "Origin"]

KEEPALIVE_EXPIRY = 30.0  # seconds an idle connection is trusted; older ones are replaced before a request


class Answer(NamedTuple):
    """What came back: the status and headers (lower-case names), the body (decoded), and, if the body
    broke off after the head arrived, the error (then `body` is empty)."""

    status: int
    headers: dict[str, str]
    body: bytes
    error: httpx.TransportError | None = None


class Origin:
    """Where a driver's lanes connect, their timeouts, and the head every request shares (the key is in
    it: the repr shows only the address)."""

    __slots__ = ("_headers", "_lines", "connect_timeout", "host", "port", "read_timeout", "ssl")

    def __init__(self, url: httpx.URL, headers: dict[str, str], *, context: ssl.SSLContext | None,
                 timeout: httpx.Timeout) -> None:
        secure = url.scheme == "https"
        self.host = url.host
        self.port = url.port or (443 if secure else 80)
        self.ssl = context if secure else None
        self.connect_timeout = timeout.connect
        self.read_timeout = timeout.read
        host = f"[{self.host}]" if ":" in self.host else self.host
        fields = {"Host": host if url.port is None else f"{host}:{url.port}", **headers}
        # header values are checked as httpx checks them: text that fits in one byte a character
        self._headers = "".join(f"{name}: {value}\r\n" for name, value in fields.items()).encode("latin-1")
        self._lines: dict[str, bytes] = {}

    def __repr__(self) -> str:
        return f"<Origin {self.host}:{self.port}>"

    def request(self, path: str, content: bytes, retries: int = 0) -> bytes:
        """The bytes of one POST of `content` (JSON) to `path` (a URL path, as /v1/chat/completions)."""
        line = self._lines.get(path)
        if line is None:
            line = self._lines[path] = f"POST {path} HTTP/1.1\r\n".encode("ascii")
        retry = b"x-stainless-retry-count: %d\r\n" % retries if retries else b""
        return b"".join((line, self._headers, retry, b"Content-Length: %d\r\n\r\n" % len(content), content))


class Lane:
    """One worker's connection to `origin`, opened on first use and reopened when needed."""

    __slots__ = ("_connection", "_idle_since", "origin")

    def __init__(self, origin: Origin) -> None:
        self.origin = origin
        self._connection: _Connection | None = None
        self._idle_since = 0.0

    async def post(self, path: str, content: bytes, retries: int = 0) -> Answer:
        """POST `content` (JSON) to `path` and read the answer; `retries`: how many attempts came before
        (sent as `x-stainless-retry-count`, as the SDK does). httpx.TransportError if no answer's head
        came back (nothing was read: the request may be sent again)."""
        loop = asyncio.get_running_loop()
        connection = self._connection
        if connection is None or connection.closed or loop.time() - self._idle_since > KEEPALIVE_EXPIRY:
            if connection is not None:
                connection.close()
            connection = self._connection = await self._connect(loop)
        try:
            answer = await connection.exchange(self.origin.request(path, content, retries))
        except BaseException:  # failed, timed out or cancelled mid-answer: the connection is spent
            connection.close()
            self._connection = None
            raise
        if not connection.reusable:
            connection.close()
            self._connection = None
        self._idle_since = loop.time()
        return answer

    async def aclose(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
            await asyncio.sleep(0)  # the transport closes its socket on the loop's next turn

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> _Connection:
        origin = self.origin
        try:
            _, connection = await asyncio.wait_for(
                loop.create_connection(lambda: _Connection(loop, origin.read_timeout), origin.host, origin.port,
                                       ssl=origin.ssl, server_hostname=origin.host if origin.ssl else None),
                origin.connect_timeout)
        except asyncio.TimeoutError:
            raise httpx.ConnectTimeout(f"no connection to {origin.host}:{origin.port} within "
                                       f"{origin.connect_timeout:g} s") from None
        except (OSError, ssl.SSLError) as exc:  # refused, unreachable, DNS, a failed TLS handshake
            raise httpx.ConnectError(str(exc) or type(exc).__name__) from None
        return connection


class _Connection(asyncio.Protocol):
    """The protocol of one connection: one exchange at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop, read_timeout: float | None) -> None:
        self._loop = loop
        self._read_timeout = read_timeout
        self._transport: asyncio.Transport | None = None
        self._parser: ResponseParser | None = None
        self._waiter: asyncio.Future[Answer] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._last = 0.0
        self.closed = False
        self.reusable = True

    # -- asyncio's callbacks ---------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        parser = self._parser
        if parser is None:  # nothing was asked: a server speaking out of turn; this connection is done
            self.close()
            return
        self._last = self._loop.time()
        try:
            if parser.feed(data):
                self._finish(parser)
        except HTTPProtocolError as exc:
            self._fail(httpx.RemoteProtocolError(str(exc)))

    def eof_received(self) -> bool:
        parser = self._parser
        if parser is not None:
            try:
                parser.feed_eof()
                self._finish(parser)
            except HTTPProtocolError as exc:
                self._fail(httpx.RemoteProtocolError(str(exc)))
        self.closed = True
        return False  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._parser is not None:
            if exc is None:
                self._fail(httpx.RemoteProtocolError("Server disconnected without sending a response."
                                                     if not self._parser.head_done else
                                                     "peer closed connection without sending complete message body"))
            else:
                self._fail(httpx.ReadError(str(exc) or type(exc).__name__))

    # -- one exchange ----------------------------------------------------------------------------------
    async def exchange(self, data: bytes) -> Answer:
        transport = self._transport
        if self.closed or transport is None or transport.is_closing():
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
        waiter = self._waiter = self._loop.create_future()
        self._parser = ResponseParser()
        transport.write(data)
        if self._read_timeout is not None:
            self._last = self._loop.time()
            if self._timer is None:  # one timer per connection, not per request (see _check_timeout)
                self._timer = self._loop.call_later(self._read_timeout, self._check_timeout)
        return await waiter

    def close(self) -> None:
        self.closed = True
        self.reusable = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._transport is not None:
            self._transport.abort()  # nothing of ours is left to write; an unread answer is dropped

    def _check_timeout(self) -> None:
        """The read timeout's timer. It is not cancelled when an answer completes: it fires at most once a
        timeout's length, and then looks at the time of the last bytes (or of the request) to decide."""
        assert self._read_timeout is not None
        self._timer = None
        if self._parser is None:  # idle: the next request starts a timer again
            return
        waited = self._loop.time() - self._last
        if waited < self._read_timeout:  # bytes came since: look again when the rest of the time is up
            self._timer = self._loop.call_later(self._read_timeout - waited, self._check_timeout)
            return
        self._fail(httpx.ReadTimeout(f"no data for {self._read_timeout:g} s"))

    def _finish(self, parser: ResponseParser) -> None:
        self._parser = None
        if not parser.keep_alive:
            self.reusable = False
        waiter = self._waiter
        self._waiter = None
        if waiter is None or waiter.done():
            return
        try:
            body = decoded_body(parser.headers, parser.body)
        except HTTPProtocolError as exc:
            self.reusable = False
            waiter.set_result(Answer(parser.status, parser.headers, b"", httpx.RemoteProtocolError(str(exc))))
            return
        waiter.set_result(Answer(parser.status, parser.headers, body))

    def _fail(self, exc: httpx.TransportError) -> None:
        """The exchange failed: before the answer's head, raise `exc`; after it, return the head with it."""
        parser, waiter = self._parser, self._waiter
        self._parser = self._waiter = None
        self.reusable = False
        if waiter is not None and not waiter.done():
            if parser is not None and parser.head_done:
                waiter.set_result(Answer(parser.status, parser.headers, b"", exc))
            else:
                waiter.set_exception(exc)
        self.close()
