"""Server-sent events framing: bytes in, events out. Nothing here knows about OpenAI.

The decoder follows the WHATWG rules the official SDK follows: lines end at CR, LF or CRLF (a CRLF may
be split across two chunks), lines starting with `:` are comments, `field: value` loses one leading
space, several `data:` lines join with a newline, and a blank line dispatches the event. Lines are
assembled as bytes and decoded only once whole, so a chunk boundary inside a UTF-8 character is
harmless. `bytes.splitlines` breaks only at ASCII line ends (never at U+2028), which is what SSE wants.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

__all__ = ["SSEDecoder", "ServerSentEvent", "iter_events"]


@dataclass(slots=True)
class ServerSentEvent:
    """One dispatched event. `data` stays bytes: `json.loads` takes bytes directly."""

    data: bytes
    event: str | None = None
    id: str | None = None
    retry: int | None = None


class SSEDecoder:
    """Incremental decoder: `feed(chunk)` returns the events completed by that chunk."""

    __slots__ = ("_tail", "_after_cr", "_data", "_event", "_id", "_retry")

    def __init__(self) -> None:
        self._tail = b""  # an unterminated line carried over to the next chunk
        self._after_cr = False  # the previous chunk ended with CR: a leading LF is part of that line end
        self._data: list[bytes] = []
        self._event: str | None = None
        self._id: str | None = None
        self._retry: int | None = None

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        if not chunk:
            return []
        if self._after_cr and chunk[:1] == b"\n":
            chunk = chunk[1:]
        if self._tail:
            chunk = self._tail + chunk
        if not chunk:
            self._after_cr = False
            return []
        last = chunk[-1]
        self._after_cr = last == 13  # "\r"
        lines = chunk.splitlines()
        if last == 10 or last == 13:
            self._tail = b""
        else:
            self._tail = lines.pop()
        events: list[ServerSentEvent] = []
        for line in lines:
            if line[:5] == b"data:":
                self._data.append(line[6:] if line[5:6] == b" " else line[5:])
            elif not line:
                if self._data or self._event is not None:
                    events.append(self._dispatch())
            else:
                self._field(line)
        return events

    @property
    def pending(self) -> int:
        """Bytes held for the event not dispatched yet (its data lines and an unterminated line): what a
        stream's size cap bounds."""
        return len(self._tail) + sum(map(len, self._data))

    def flush(self) -> list[ServerSentEvent]:
        """End of stream: a last event without its blank line still counts, as in the SDK."""
        if self._tail:
            tail, self._tail = self._tail, b""
            events = self.feed(tail + b"\n")
        else:
            events = []
        if self._data:
            events.append(self._dispatch())
        return events

    def _field(self, line: bytes) -> None:
        if line[:1] == b":":
            return  # comment, e.g. ": keep-alive"
        name, sep, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if name == b"event":
            self._event = value.decode("utf-8", "replace")
        elif name == b"id":
            if b"\0" not in value:
                self._id = value.decode("utf-8", "replace")
        elif name == b"retry":
            if value.isdigit():
                self._retry = int(value)
        elif name == b"data":  # "data" with no colon: an empty data line
            self._data.append(b"")
        # any other field is ignored, as the spec says

    def _dispatch(self) -> ServerSentEvent:
        data = self._data[0] if len(self._data) == 1 else b"\n".join(self._data)
        event = ServerSentEvent(data, self._event, self._id, self._retry)
        self._data = []
        self._event = None
        return event


def iter_events(chunks: Iterable[bytes]) -> Iterator[ServerSentEvent]:
    """Decode a whole byte stream, however it is chunked."""
    decoder = SSEDecoder()
    for chunk in chunks:
        yield from decoder.feed(chunk)
    yield from decoder.flush()
