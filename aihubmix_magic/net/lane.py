"""A batch worker's connection: one keep-alive HTTP/1.1 connection on asyncio's own transport.

Each worker of a batch sends its requests one after another on its own connection (`Lane.post`), so a
lane needs no pool, no locks and no per-request bookkeeping: the request's bytes are written in one call
(a head built once per driver, the JSON body) and the answer is read by h11 (the RFC-strict HTTP/1.1
state machine httpx uses) in the protocol's `data_received`, its body decoded and capped as it comes
(`_bodies.BodyDecoder`, `settings.max_answer_bytes`). That is what keeps a batch at the server's speed
at high concurrency: on 2 cores, the client and a local server share the CPU, and httpx's stack
(httpcore's pool, anyio, h11) took about 1 ms of CPU an answer, this a fraction of it
(`benchmarks/bench_batch.py`): the saving is the design (no pool, one write a request), not the parser.

What httpx would do and a lane does too: TLS with the same certificates (certifi, or `SSL_CERT_FILE` /
`SSL_CERT_DIR`), every address of the host tried (Happy Eyeballs, RFC 8305: the next address after
`HAPPY_EYEBALLS_DELAY` seconds, families interleaved), a connect timeout, a read timeout between two
pieces of the answer, a new connection when the server closed the last one or it was idle for
`KEEPALIVE_EXPIRY` seconds, gzip/deflate bodies. What it refuses: anything h11 refuses (a malformed
status line, header or chunk, a bad Content-Length), an answer with both Content-Length and
Transfer-Encoding, bytes after the end of an answer (a stale or pipelined answer is never taken for the
next request's), an answer longer than the cap. Its failures are httpx's exception classes (and
`AnswerTooLargeError`), so the protocol core maps them as it maps the sync client's: one raised before
the answer's head arrived is a send failure; one after it (the body broke off) comes back in
`Answer.error`, with the status. Behind a proxy, the driver uses an httpx transport instead
(`_async.AsyncDriver.lane`): proxies are rare for an API gateway and httpx already speaks them all.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from typing import NamedTuple

import h11
import httpx

from ..core.exceptions import AnswerTooLargeError
from .bodies import DEFAULT_MAX_ANSWER_BYTES, BodyDecoder, ContentDecodingError, framing_problem

__all__ = ["HAPPY_EYEBALLS_DELAY", "KEEPALIVE_EXPIRY", "Answer", "Lane", "Origin"]

KEEPALIVE_EXPIRY = 30.0  # seconds an idle connection is trusted; older ones are replaced before a request
HAPPY_EYEBALLS_DELAY = 0.25  # seconds before the next address is tried (RFC 8305's recommendation, as anyio)


class Answer(NamedTuple):
    """What came back: the status and headers (lower-case names), the body (decoded), and, if the body
    broke off after the head arrived, the error (then `body` is empty): an httpx.TransportError, or an
    AnswerTooLargeError."""

    status: int
    headers: dict[str, str]
    body: bytes
    error: Exception | None = None


class Origin:
    """Where a driver's lanes connect, their timeouts, the answers' size cap, and the head every request
    shares (the key is in it: the repr shows only the address). `path`s are sent as given: the driver
    passes them percent-encoded (`httpx.URL.raw_path`), never decoded."""

    __slots__ = ("_addresses", "_headers", "_lines", "_lookup", "connect_timeout", "host", "limit", "port",
                 "read_timeout", "ssl")

    def __init__(self, url: httpx.URL, headers: dict[str, str], *, context: ssl.SSLContext | None,
                 timeout: httpx.Timeout, limit: int = DEFAULT_MAX_ANSWER_BYTES) -> None:
        secure = url.scheme == "https"
        self.host = url.host
        self.port = url.port or (443 if secure else 80)
        self.ssl = context if secure else None
        self.connect_timeout = timeout.connect
        self.read_timeout = timeout.read
        self.limit = limit
        self._addresses: int | None = None  # how many addresses the host has (learned on the first connect)
        self._lookup: asyncio.Future[list] | None = None  # that lookup, shared by the lanes connecting at once
        host = f"[{self.host}]" if ":" in self.host else self.host
        fields = {"Host": host if url.port is None else f"{host}:{url.port}", **headers}
        for name, value in fields.items():  # the key and the base URL were checked where they entered
            if not value.isprintable():
                raise ValueError(f"the {name} header holds a control character")
        # header values are checked as httpx checks them: text that fits in one byte a character
        self._headers = "".join(f"{name}: {value}\r\n" for name, value in fields.items()).encode("latin-1")
        self._lines: dict[str, bytes] = {}

    def __repr__(self) -> str:
        return f"<Origin {self.host}:{self.port}>"

    def request(self, path: str, content: bytes, retries: int = 0) -> bytes:
        """The bytes of one POST of `content` (JSON) to `path` (a URL path, as /v1/chat/completions)."""
        line = self._lines.get(path)
        if line is None:
            if not path.isprintable() or " " in path:
                raise ValueError(f"the path {path!r} holds a space or a control character")
            line = self._lines[path] = f"POST {path} HTTP/1.1\r\n".encode("ascii")
        retry = b"x-stainless-retry-count: %d\r\n" % retries if retries else b""
        return b"".join((line, self._headers, retry, b"Content-Length: %d\r\n\r\n" % len(content), content))

    async def addresses(self, loop: asyncio.AbstractEventLoop) -> int:
        """How many addresses the host has (1 for an IP address), looked up once per origin."""
        if self._addresses is None:
            try:
                ipaddress.ip_address(self.host)
                self._addresses = 1
                return 1
            except ValueError:
                pass
            lookup = self._lookup
            if lookup is None or lookup.get_loop() is not loop:
                lookup = self._lookup = asyncio.ensure_future(
                    loop.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM))
            try:
                infos = await asyncio.shield(lookup)  # one lane timing out does not cancel it for the others
            except OSError:
                self._lookup = None  # the next connect asks again
                raise
            self._addresses = max(1, len({info[4] for info in infos}))
        return self._addresses


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
        """A new connection. Every address of the host is tried (Happy Eyeballs), each with the whole
        connect timeout: an address that does not answer costs HAPPY_EYEBALLS_DELAY, not the timeout."""
        origin = self.origin
        timeout = origin.connect_timeout

        async def connect() -> _Connection:
            _, connection = await loop.create_connection(
                lambda: _Connection(loop, origin.read_timeout, origin.limit), origin.host, origin.port,
                ssl=origin.ssl, server_hostname=origin.host if origin.ssl else None,
                happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY, interleave=1)
            return connection

        try:
            count = await asyncio.wait_for(origin.addresses(loop), timeout)
            if timeout is not None:  # the last address starts at the latest (count - 1) delays in
                timeout += HAPPY_EYEBALLS_DELAY * (count - 1)
            connection = await asyncio.wait_for(connect(), timeout)
        except asyncio.TimeoutError:
            raise httpx.ConnectTimeout(f"no connection to {origin.host}:{origin.port} within "
                                       f"{timeout:g} s") from None
        except (OSError, ssl.SSLError) as exc:  # refused, unreachable, DNS, a failed TLS handshake
            raise httpx.ConnectError(str(exc) or type(exc).__name__) from None
        return connection


class _Connection(asyncio.Protocol):
    """The protocol of one connection: one exchange at a time, read by h11.

    h11 is told of each request by a stand-in (`_REQUEST`: a POST without a body, so that it expects one
    answer and frames it as the answer to a POST), while the real bytes go out in one `transport.write`."""

    def __init__(self, loop: asyncio.AbstractEventLoop, read_timeout: float | None, limit: int) -> None:
        self._loop = loop
        self._read_timeout = read_timeout
        self._limit = limit
        self._transport: asyncio.Transport | None = None
        self._h11 = h11.Connection(h11.CLIENT)
        self._waiter: asyncio.Future[Answer] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._last = 0.0
        self._status = 0
        self._headers: dict[str, str] | None = None  # the answer's head, once it came
        self._decoder: BodyDecoder | None = None
        self._body: list[bytes] = []
        self.closed = False
        self.reusable = True

    # -- asyncio's callbacks ---------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:  # nothing was asked: a server speaking out of turn; this connection is done
            self.close()
            return
        self._last = self._loop.time()
        self._h11.receive_data(data)
        self._read_events()

    def eof_received(self) -> bool:
        if self._waiter is not None:
            if self._headers is None and not self._h11.trailing_data[0]:
                self._fail(httpx.RemoteProtocolError("Server disconnected without sending a response."))
            else:
                self._h11.receive_data(b"")
                self._read_events()
        self.closed = True
        return False  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is not None:
            if exc is None:
                self._fail(httpx.RemoteProtocolError("Server disconnected without sending a response."
                                                     if self._headers is None else
                                                     "peer closed connection without sending complete message body"))
            else:
                self._fail(httpx.ReadError(str(exc) or type(exc).__name__))

    def _read_events(self) -> None:
        connection = self._h11
        try:
            while True:
                event = connection.next_event()
                kind = type(event)
                if kind is h11.Data:
                    assert self._decoder is not None
                    piece = self._decoder.feed(event.data)  # type: ignore[union-attr]
                    if piece:
                        self._body.append(piece)
                elif kind is h11.Response:
                    self._read_head(event)  # type: ignore[arg-type]
                elif kind is h11.EndOfMessage:
                    self._finish()
                    return
                elif event is h11.NEED_DATA:
                    return
                elif kind is h11.ConnectionClosed:  # closed before any answer: h11 saw nothing to read
                    self._fail(httpx.RemoteProtocolError("Server disconnected without sending a response."))
                    return
                # InformationalResponse (1xx): the real answer follows
        except h11.RemoteProtocolError as exc:
            self._fail(httpx.RemoteProtocolError(str(exc)))
        except ContentDecodingError as exc:
            self._fail(httpx.RemoteProtocolError(str(exc)))
        except AnswerTooLargeError as exc:
            self._fail(exc)

    def _read_head(self, event: h11.Response) -> None:
        headers: dict[str, str] = {}
        for name, value in event.headers.raw_items():  # a list: cheaper than the Sequence's own iteration
            key = name.decode("latin-1").lower()
            text = value.decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        self._status = event.status_code
        self._headers = headers
        problem = framing_problem(headers)
        if problem is not None:
            raise h11.RemoteProtocolError(problem)
        self._decoder = BodyDecoder(headers.get("content-encoding"), self._limit)

    # -- one exchange ----------------------------------------------------------------------------------
    async def exchange(self, data: bytes) -> Answer:
        transport = self._transport
        if self.closed or transport is None or transport.is_closing():
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
        connection = self._h11
        if connection.our_state is h11.DONE:
            connection.start_next_cycle()
        connection.send(_REQUEST)
        connection.send(_END)
        waiter = self._waiter = self._loop.create_future()
        self._headers = None
        self._body = []
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
        if self._waiter is None:  # idle: the next request starts a timer again
            return
        waited = self._loop.time() - self._last
        if waited < self._read_timeout:  # bytes came since: look again when the rest of the time is up
            self._timer = self._loop.call_later(self._read_timeout - waited, self._check_timeout)
            return
        self._fail(httpx.ReadTimeout(f"no data for {self._read_timeout:g} s"))

    def _finish(self) -> None:
        """The answer is complete. Bytes already behind it (a pipelined or stale answer: we never pipeline)
        make it an error, never the next request's answer."""
        assert self._headers is not None and self._decoder is not None
        connection = self._h11
        if connection.trailing_data[0]:
            raise h11.RemoteProtocolError("the server sent bytes after its answer")
        tail = self._decoder.flush()
        if tail:
            self._body.append(tail)
        if connection.their_state is not h11.DONE or connection.our_state is not h11.DONE:
            self.reusable = False  # Connection: close, HTTP/1.0, or a body framed by the close
        waiter, headers, body = self._waiter, self._headers, self._body
        self._waiter = None
        self._body = []
        if waiter is not None and not waiter.done():
            waiter.set_result(Answer(self._status, headers, b"".join(body)))  # bytes, whatever h11 gave

    def _fail(self, exc: Exception) -> None:
        """The exchange failed: before the answer's head, raise `exc`; after it, return the head with it."""
        waiter, headers = self._waiter, self._headers
        self._waiter = None
        self._body = []
        self.reusable = False
        if waiter is not None and not waiter.done():
            if headers is not None:
                waiter.set_result(Answer(self._status, headers, b"", exc))
            else:
                waiter.set_exception(exc)
        self.close()


_REQUEST = h11.Request(method="POST", target="/", headers=[("Host", "lane"), ("Content-Length", "0")])
_END = h11.EndOfMessage()
