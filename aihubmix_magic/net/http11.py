"""An HTTP/1.1 response, read from bytes fed in any pieces: no socket in it (as h11, at a tenth of the cost).

`ResponseParser` is what a batch's connections (`_lane.py`) read each answer with. It knows what a client
of an API gateway meets: a status line and headers, then a body framed by `Content-Length`, by
`Transfer-Encoding: chunked`, or by the server closing the connection; informational (1xx) answers before
the real one are skipped; 204 and 304 have no body. `keep_alive` says whether the connection may carry
the next request. Anything else (a head too long, a malformed status line or chunk, bytes after the
answer, an upgrade) is an `HTTPProtocolError`, and the connection is not used again.

Why not h11, which httpx uses: for one short JSON answer, h11's events and header validation take about
65 µs, this about 5 µs; at a thousand answers a second, on the core the server also needs, that is the
difference between keeping up and not (see `_lane.py`).
"""

from __future__ import annotations

import zlib

__all__ = ["HTTPProtocolError", "ResponseParser", "decoded_body"]

MAX_HEAD = 64 * 1024  # bytes of status line and headers
MAX_CHUNK_LINE = 1024

_HEAD, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _TRAILER, _UNTIL_CLOSE, _DONE = range(7)


class HTTPProtocolError(ValueError):
    """The server's bytes are not an HTTP/1.1 answer we can read."""


class ResponseParser:
    """One response. Feed it bytes with `feed` (True once the response is complete) and `feed_eof` when
    the server closes; then read `status`, `headers` (names lower-case, repeated ones joined by ", "),
    `body` and `keep_alive`. `head_done` turns True as soon as the status and headers are in."""

    __slots__ = ("_buffer", "_chunks", "_remaining", "_state", "body", "head_done", "headers", "keep_alive",
                 "status")

    def __init__(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body = b""
        self.keep_alive = True
        self.head_done = False
        self._buffer = bytearray()
        self._state = _HEAD
        self._remaining = 0
        self._chunks: list[bytes] = []

    @property
    def complete(self) -> bool:
        return self._state == _DONE

    def feed(self, data: bytes) -> bool:
        """Take the next bytes from the connection; True when the response is complete."""
        if self._state == _DONE:
            if data:
                raise HTTPProtocolError("the server sent bytes after its answer")
            return True
        buffer = self._buffer
        buffer += data
        while True:
            state = self._state
            if state == _HEAD:
                end = buffer.find(b"\r\n\r\n")
                if end < 0:
                    if len(buffer) > MAX_HEAD:
                        raise HTTPProtocolError(f"the answer's head is longer than {MAX_HEAD} bytes")
                    return False
                head = bytes(buffer[:end])
                del buffer[:end + 4]
                self._read_head(head)
            elif state == _LENGTH:
                if len(buffer) < self._remaining:
                    return False
                self.body = bytes(buffer[:self._remaining])
                del buffer[:self._remaining]
                return self._done()
            elif state == _CHUNK_SIZE:
                end = buffer.find(b"\r\n")
                if end < 0:
                    if len(buffer) > MAX_CHUNK_LINE:
                        raise HTTPProtocolError("a chunk size line is too long")
                    return False
                line = bytes(buffer[:end]).split(b";", 1)[0].strip()
                del buffer[:end + 2]
                try:
                    size = int(line, 16)
                except ValueError:
                    raise HTTPProtocolError(f"a bad chunk size: {line[:20]!r}") from None
                if size < 0 or not line.isalnum():
                    raise HTTPProtocolError(f"a bad chunk size: {line[:20]!r}")
                self._remaining = size
                self._state = _CHUNK_DATA if size else _TRAILER
            elif state == _CHUNK_DATA:
                if len(buffer) < self._remaining + 2:
                    return False
                if buffer[self._remaining:self._remaining + 2] != b"\r\n":
                    raise HTTPProtocolError("a chunk does not end with CRLF")
                self._chunks.append(bytes(buffer[:self._remaining]))
                del buffer[:self._remaining + 2]
                self._state = _CHUNK_SIZE
            elif state == _TRAILER:
                if buffer[:2] == b"\r\n":  # no trailer fields: the usual end
                    del buffer[:2]
                else:
                    end = buffer.find(b"\r\n\r\n")
                    if end < 0:
                        if len(buffer) > MAX_HEAD:
                            raise HTTPProtocolError("the answer's trailer is too long")
                        return False
                    del buffer[:end + 4]  # trailer fields: not used
                self.body = b"".join(self._chunks)
                self._chunks = []
                return self._done()
            elif state == _UNTIL_CLOSE:
                return False
            else:  # pragma: no cover - _DONE returns above
                return True

    def feed_eof(self) -> bool:
        """The server closed the connection: True if that completes the response (a body framed by the
        close); HTTPProtocolError if the response was cut short."""
        if self._state == _DONE:
            return True
        if self._state == _UNTIL_CLOSE:
            self.body = bytes(self._buffer)
            self._buffer.clear()
            self._state = _DONE
            self.keep_alive = False
            return True
        if self._state == _HEAD and not self._buffer and not self.head_done:
            raise HTTPProtocolError("Server disconnected without sending a response.")
        raise HTTPProtocolError("peer closed connection without sending complete message body")

    def _done(self) -> bool:
        self._state = _DONE
        if self._buffer:  # pipelining is never used: bytes after the answer mean a confused server
            self.keep_alive = False
            raise HTTPProtocolError("the server sent bytes after its answer")
        return True

    def _read_head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or parts[0] not in (b"HTTP/1.1", b"HTTP/1.0") or len(parts[1]) != 3 \
                or not parts[1].isdigit():
            raise HTTPProtocolError(f"not an HTTP/1.1 status line: {lines[0][:40]!r}")
        status = int(parts[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon or not name or name[-1:] in b" \t" or line[:1] in b" \t":
                raise HTTPProtocolError(f"a malformed header line: {line[:40]!r}")
            key = name.decode("latin-1").lower()
            text = value.strip(b" \t").decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        if 100 <= status < 200:
            if status == 101:
                raise HTTPProtocolError("the server switched protocols (101), which a request never asks")
            return  # informational: the real answer follows
        self.status = status
        self.headers = headers
        self.head_done = True
        connection = headers.get("connection", "").lower()
        if parts[0] == b"HTTP/1.0":
            self.keep_alive = "keep-alive" in connection
        else:
            self.keep_alive = "close" not in connection
        encoding = headers.get("transfer-encoding")
        if status in (204, 304):
            self._state = _LENGTH
            self._remaining = 0
        elif encoding is not None:
            if encoding.lower().rsplit(",", 1)[-1].strip() == "chunked":
                self._state = _CHUNK_SIZE
            else:  # another coding last: the body ends when the connection does
                self._state = _UNTIL_CLOSE
                self.keep_alive = False
        elif "content-length" in headers:
            lengths = {length.strip() for length in headers["content-length"].split(",")}
            length = lengths.pop()
            if lengths or not length.isdigit():
                raise HTTPProtocolError(f"a bad Content-Length: {headers['content-length'][:40]!r}")
            self._state = _LENGTH
            self._remaining = int(length)
        else:
            self._state = _UNTIL_CLOSE
            self.keep_alive = False


def decoded_body(headers: dict[str, str], body: bytes) -> bytes:
    """The body without its Content-Encoding (gzip, deflate or identity; a batch asks for none, but a
    proxy may add one). HTTPProtocolError for a coding it cannot undo."""
    coding = headers.get("content-encoding", "").strip().lower()
    if not coding or coding == "identity":
        return body
    try:
        if coding in ("gzip", "x-gzip"):
            return zlib.decompress(body, 16 + zlib.MAX_WBITS)
        if coding == "deflate":
            try:
                return zlib.decompress(body)
            except zlib.error:
                return zlib.decompress(body, -zlib.MAX_WBITS)  # raw deflate, as some servers send it
    except zlib.error as exc:
        raise HTTPProtocolError(f"the {coding} body cannot be decoded: {exc}") from None
    raise HTTPProtocolError(f"the answer is encoded with {coding!r}, which was not asked for")
