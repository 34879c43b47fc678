"""The HTTP/1.1 response reader of a batch's connections (`_http11.py`), without a socket: every framing
(Content-Length, chunked, until close), awkward piece boundaries, and what it must refuse. A property test
checks it against h11 (what httpx reads with) on answers that h11 itself writes."""

from __future__ import annotations

import gzip
import zlib

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aihubmix_magic.net.http11 import HTTPProtocolError, ResponseParser, decoded_body

JSON = b'{"id":"chatcmpl-1","choices":[{"message":{"role":"assistant","content":"Hi \\u00e9"}}]}'
PLAIN = (b"HTTP/1.1 200 OK\r\nServer: sim\r\nContent-Type: application/json\r\nContent-Length: "
         + str(len(JSON)).encode() + b"\r\nX-Request-Id: a\r\nx-request-id: b\r\n\r\n" + JSON)
CHUNKED = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n"
           b"10;name=value\r\n" + JSON[:16] + b"\r\n" + f"{len(JSON) - 16:x}".encode() + b"\r\n" + JSON[16:]
           + b"\r\n0\r\nX-Trailer: t\r\n\r\n")


def parse(data: bytes, cuts: list[int] = (), eof: bool = False) -> ResponseParser:
    """Feed `data` cut at `cuts`; feed_eof at the end when `eof`."""
    parser = ResponseParser()
    start = 0
    done = False
    for cut in [*sorted(cuts), len(data)]:
        assert not done, "complete before its last byte"
        done = parser.feed(data[start:cut])
        start = cut
    if eof:
        done = parser.feed_eof()
    assert done
    return parser


@pytest.mark.parametrize("answer", [PLAIN, CHUNKED], ids=["content-length", "chunked"])
def test_an_answer_reads_the_same_however_it_is_cut(answer):
    whole = parse(answer)
    assert whole.status == 200 and whole.body == JSON and whole.keep_alive
    assert whole.headers["content-type"] == "application/json"
    for cut in range(1, len(answer)):
        parsed = parse(answer, [cut])
        assert (parsed.status, parsed.headers, parsed.body) == (whole.status, whole.headers, whole.body), cut
    parsed = parse(answer, list(range(1, len(answer))))  # a byte at a time
    assert parsed.body == JSON


def test_header_names_are_lower_case_and_repeats_are_joined():
    parsed = parse(PLAIN)
    assert parsed.headers["x-request-id"] == "a, b"
    assert set(parsed.headers) == {"server", "content-type", "content-length", "x-request-id"}


def test_a_body_framed_by_the_close_ends_at_eof_and_the_connection_is_not_reused():
    parser = ResponseParser()
    assert not parser.feed(b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\n\r\nsorry")
    assert parser.head_done and parser.status == 500
    assert not parser.feed(b", down")
    assert parser.feed_eof()
    assert parser.body == b"sorry, down" and not parser.keep_alive


@pytest.mark.parametrize(("head", "keep_alive"), [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n", True),
    (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n", False),
    (b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n", False),
    (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n", True),
    (b"HTTP/1.1 204 No Content\r\n", True),
    (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 12\r\n", True),  # no body, whatever the length says
])
def test_keep_alive_and_answers_without_a_body(head, keep_alive):
    parsed = parse(head + b"\r\n")
    assert parsed.body == b"" and parsed.keep_alive is keep_alive


def test_informational_answers_before_the_real_one_are_skipped():
    parsed = parse(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + PLAIN, [10, 40])
    assert parsed.status == 200 and parsed.body == JSON and "link" not in parsed.headers


def test_a_transfer_coding_other_than_chunked_last_is_read_until_the_close():
    parser = ResponseParser()
    parser.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 3\r\n\r\nabcdef")
    assert parser.feed_eof() and parser.body == b"abcdef" and not parser.keep_alive


@pytest.mark.parametrize(("data", "message"), [
    (b"HTTP/2 200\r\n\r\n", "not an HTTP/1.1 status line"),
    (b"ICY 200 OK\r\n\r\n", "not an HTTP/1.1 status line"),
    (b"HTTP/1.1 2000 OK\r\n\r\n", "not an HTTP/1.1 status line"),
    (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "malformed header"),
    (b"HTTP/1.1 200 OK\r\nName : value\r\n\r\n", "malformed header"),
    (b"HTTP/1.1 200 OK\r\nA: b\r\n folded\r\n\r\n", "malformed header"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n", "bad Content-Length"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n", "bad Content-Length"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad chunk size"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n", "bad chunk size"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n", "does not end with CRLF"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nabc", "bytes after its answer"),
    (b"HTTP/1.1 101 Switching Protocols\r\n\r\n", "switched protocols"),
    (b"HTTP/1.1 200 OK\r\nX: " + b"x" * 70_000, "longer than"),
])
def test_what_is_not_an_answer_is_refused(data, message):
    with pytest.raises(HTTPProtocolError, match=message):
        ResponseParser().feed(data)


def test_a_repeated_identical_content_length_is_accepted():
    assert parse(b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok").body == b"ok"


@pytest.mark.parametrize(("data", "message"), [
    (b"", "Server disconnected without sending a response"),
    (b"HTTP/1.1 200 OK\r\nContent-Le", "without sending complete message body"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", "without sending complete message body"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", "without sending complete message body"),
])
def test_a_close_before_the_end_is_an_error(data, message):
    parser = ResponseParser()
    assert not parser.feed(data)
    with pytest.raises(HTTPProtocolError, match=message):
        parser.feed_eof()


def test_bytes_after_a_complete_answer_are_refused():
    parser = parse(PLAIN)
    assert parser.feed(b"") and parser.feed_eof()
    with pytest.raises(HTTPProtocolError, match="after its answer"):
        parser.feed(b"HTTP/1.1 200 OK\r\n")


def test_bodies_are_decoded_from_gzip_and_deflate():
    assert decoded_body({}, JSON) == JSON
    assert decoded_body({"content-encoding": "identity"}, JSON) == JSON
    assert decoded_body({"content-encoding": "gzip"}, gzip.compress(JSON)) == JSON
    assert decoded_body({"content-encoding": "deflate"}, zlib.compress(JSON)) == JSON
    raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    assert decoded_body({"content-encoding": "deflate"}, raw.compress(JSON) + raw.flush()) == JSON
    with pytest.raises(HTTPProtocolError, match="gzip body cannot be decoded"):
        decoded_body({"content-encoding": "gzip"}, JSON)
    with pytest.raises(HTTPProtocolError, match="'br', which was not asked for"):
        decoded_body({"content-encoding": "br"}, JSON)


# -- against h11 ------------------------------------------------------------------------------------------
_NAMES = st.sampled_from(["Content-Type", "X-Request-Id", "x-ratelimit-remaining-requests", "Retry-After",
                          "Server", "Date", "Set-Cookie", "Via"])
_VALUES = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=0, max_size=30)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(status=st.sampled_from([200, 201, 400, 401, 404, 429, 500, 503]),
       headers=st.lists(st.tuples(_NAMES, _VALUES), max_size=6),
       pieces=st.lists(st.binary(max_size=300), max_size=4),
       framing=st.sampled_from(["length", "chunked", "close"]),
       cuts=st.lists(st.integers(min_value=1, max_value=2000), max_size=5))
def test_it_reads_what_h11_writes_as_h11_reads_it(status, headers, pieces, framing, cuts):
    server = h11.Connection(h11.SERVER)
    version = b"1.0" if framing == "close" else b"1.1"  # an HTTP/1.0 peer: h11 frames the body by the close
    server.receive_data(b"POST /v1/chat/completions HTTP/" + version + b"\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    assert type(server.next_event()) is h11.Request
    server.next_event()  # EndOfMessage
    body = b"".join(pieces)
    fields = list(headers)
    if framing == "length":
        fields.append(("Content-Length", str(len(body))))
    elif framing == "chunked":
        fields.append(("Transfer-Encoding", "chunked"))
    wire = server.send(h11.Response(status_code=status, headers=fields))
    for piece in pieces if framing == "chunked" else [body]:
        if piece:
            wire += server.send(h11.Data(data=piece))
    wire += server.send(h11.EndOfMessage())

    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method="POST", target="/", headers=[("Host", "x"), ("Content-Length", "0")]))
    client.send(h11.EndOfMessage())
    client.receive_data(wire)
    if framing == "close":
        client.receive_data(b"")
    expected_body = b""
    while True:
        event = client.next_event()
        if type(event) is h11.Response:
            expected = event
        elif type(event) is h11.Data:
            expected_body += event.data
        elif type(event) is h11.EndOfMessage:
            break

    parsed = parse(wire, [cut for cut in cuts if cut < len(wire)], eof=framing == "close")
    assert parsed.status == expected.status_code
    assert parsed.body == expected_body == body
    joined: dict[str, str] = {}
    for name, value in expected.headers:
        key = name.decode().lower()
        joined[key] = f"{joined[key]}, {value.decode()}" if key in joined else value.decode()
    assert parsed.headers == joined
    assert parsed.keep_alive is (framing != "close")
