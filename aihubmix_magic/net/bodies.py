"""An answer's body, decoded piece by piece under a size cap: no I/O in it.

Both drivers read bodies through `BodyDecoder`: the batch lanes (`_lane.py`) with each piece h11 gives,
the sync `Client` with each piece of the raw stream httpx gives. It undoes the `Content-Encoding` (gzip,
deflate, identity) and counts what comes out: an answer longer than `limit` bytes once decoded
(`settings.max_answer_bytes`) raises `AnswerTooLargeError` as soon as the limit is passed. zlib is asked
for at most the room left (`decompressobj().decompress(data, max_length)`), so a small compressed body
that decodes to gigabytes (a "gzip bomb") never holds more than the cap in memory.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

from ..core.exceptions import AnswerTooLargeError

__all__ = ["DEFAULT_MAX_ANSWER_BYTES", "ACCEPT_ENCODING", "BodyDecoder", "ContentDecodingError", "framing_problem"]

DEFAULT_MAX_ANSWER_BYTES = 64 * 1024 * 1024
ACCEPT_ENCODING = "gzip, deflate"  # what a driver may ask for: the codings BodyDecoder undoes


class ContentDecodingError(ValueError):
    """The body's Content-Encoding is one we did not ask for, or its bytes do not decode."""


class BodyDecoder:
    """Feed the body's bytes as they come, then `flush`; each returns the decoded bytes so far. `size`:
    decoded bytes given out. AnswerTooLargeError once more than `limit` would be; a ContentDecodingError
    for a coding it cannot undo.

    A whole body: `feed(data)`, the sum capped. A stream of events, read as it comes and not kept
    (`iter_feed(data)`): pieces of at most `STREAM_PIECE` bytes, and what one piece of the socket decodes
    to capped (the caller caps what it keeps of the stream)."""

    __slots__ = ("_coding", "_head", "_limit", "_stream", "_zlib", "size")

    STREAM_PIECE = 1 << 20

    def __init__(self, content_encoding: str | None, limit: int) -> None:
        coding = (content_encoding or "").strip().lower()
        self._coding = coding
        self._limit = limit
        self._stream = False
        self._head: bytes | None = b""  # deflate: the first bytes, until there are two to tell zlib-wrapped from raw
        self.size = 0
        if not coding or coding == "identity":
            self._zlib = None
        elif coding in ("gzip", "x-gzip"):
            self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif coding == "deflate":
            self._zlib = zlib.decompressobj()  # zlib-wrapped, or raw (see _decompress)
        else:
            raise ContentDecodingError(f"the answer is encoded with {coding!r}, which was not asked for")

    def feed(self, data: bytes) -> bytes:
        if self._zlib is None:
            out = data
        else:
            room = self._limit - self.size + 1  # one byte more than the limit allows: enough to know
            out = self._decompress(data, room)
            if self._zlib.unconsumed_tail:  # zlib stopped at `room` bytes with input left: past the limit
                raise AnswerTooLargeError(self._limit)
        self.size += len(out)
        if self.size > self._limit:
            raise AnswerTooLargeError(self._limit)
        return out

    def iter_feed(self, data: bytes) -> Iterator[bytes]:
        self._stream = True
        if self._zlib is None:
            self.size += len(data)
            yield data  # as read from the socket: bounded by the read's size already
            return
        made = 0
        out = self._decompress(data, self.STREAM_PIECE)
        while True:
            made += len(out)
            self.size += len(out)
            if made > self._limit:  # a few KB of the socket that decode past the cap: a bomb
                raise AnswerTooLargeError(self._limit)
            if out:
                yield out
            tail = self._zlib.unconsumed_tail
            if not tail:
                return
            out = self._decompress(tail, self.STREAM_PIECE)

    def flush(self) -> bytes:
        if self._zlib is None:
            return b""
        try:
            out = self._zlib.flush()
        except zlib.error as exc:
            raise ContentDecodingError(f"the {self._coding} body cannot be decoded: {exc}") from None
        self.size += len(out)
        if (len(out) if self._stream else self.size) > self._limit:
            raise AnswerTooLargeError(self._limit)
        return out

    def _decompress(self, data: bytes, most: int) -> bytes:
        if self._coding == "deflate" and self._head is not None:  # which deflate: zlib-wrapped or raw
            data = self._head + data
            if len(data) < 2:
                self._head = data
                return b""
            self._head = None
            if data[0] & 0x0F != 8 or (data[0] << 8 | data[1]) % 31:  # not a zlib header (RFC 1950)
                self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)  # raw deflate, as some servers send it
        decoder = self._zlib
        assert decoder is not None
        try:
            return decoder.decompress(data, most)
        except zlib.error as exc:
            raise ContentDecodingError(f"the {self._coding} body cannot be decoded: {exc}") from None


def framing_problem(headers: dict[str, str]) -> str | None:
    """What is wrong with an answer's framing that the HTTP/1.1 reader lets through, or None: both
    `Content-Length` and `Transfer-Encoding` (RFC 9112 §6.3: "ought to be handled as an error", the mark
    of a request-smuggling or response-splitting attempt). `headers`: lower-case names."""
    if "transfer-encoding" in headers and "content-length" in headers:
        return "the answer has both Content-Length and Transfer-Encoding (its length is ambiguous)"
    return None
