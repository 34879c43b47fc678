"""SSE framing: table tests for each rule, and hypothesis for 'any chunking gives the same events'."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aihubmix_magic.core.sse import SSEDecoder, iter_events


def decode(*chunks: bytes) -> list[tuple]:
    return [(e.event, e.data, e.id, e.retry) for e in iter_events(chunks)]


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        (b"data: {}\n\n", [(None, b"{}", None, None)]),
        (b"data:{}\n\n", [(None, b"{}", None, None)]),  # no space after the colon
        (b"data:  two spaces\n\n", [(None, b" two spaces", None, None)]),  # only one space is stripped
        (b"data: a\r\n\r\n", [(None, b"a", None, None)]),
        (b"data: a\r\rdata: b\r\r", [(None, b"a", None, None), (None, b"b", None, None)]),
        (b": keep-alive\n\ndata: x\n\n", [(None, b"x", None, None)]),
        (b"data: line1\ndata: line2\n\n", [(None, b"line1\nline2", None, None)]),
        (b"event: response.created\ndata: {}\n\n", [("response.created", b"{}", None, None)]),
        (b"id: 7\nretry: 1000\ndata: x\n\n", [(None, b"x", "7", 1000)]),
        (b"retry: soon\ndata: x\n\n", [(None, b"x", None, None)]),  # a non-numeric retry is ignored
        (b"garbage line without colon\ndata: x\n\n", [(None, b"x", None, None)]),
        (b"\n\n\ndata: x\n\n", [(None, b"x", None, None)]),  # blank lines with nothing pending dispatch nothing
        (b"data: [DONE]\n\n", [(None, b"[DONE]", None, None)]),
        (b"data: last without blank line", [(None, b"last without blank line", None, None)]),
        (b"data\n\n", [(None, b"", None, None)]),  # a field name alone is an empty value
        ("data: \u2028 caf\u00e9 \u4f60\u597d\n\n".encode(), [(None, "\u2028 caf\u00e9 \u4f60\u597d".encode(), None, None)]),
    ],
)
def test_rules(wire, expected):
    assert decode(wire) == expected


def test_crlf_split_between_cr_and_lf_is_one_line_end():
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    events = decoder.feed(b"\n\r\n")
    assert [(e.data) for e in events] == [b"a"]
    assert decoder.feed(b"data: b\r\n\r\n")[0].data == b"b"


def test_split_inside_a_utf8_character():
    wire = "data: 😀 héllo\n\n".encode()
    cut = wire.index(b"\xf0") + 2
    assert decode(wire[:cut], wire[cut:]) == [(None, "😀 héllo".encode(), None, None)]


EVENT = st.builds(
    lambda name, lines: (name, lines),
    st.one_of(st.none(), st.sampled_from(["response.created", "response.output_text.delta", "error"])),
    st.lists(st.text(alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=["Cs"]), max_size=20),
             min_size=1, max_size=3),
)


def render(events, newline: bytes, comments: bool) -> bytes:
    out = b""
    for name, lines in events:
        if comments:
            out += b": ping" + newline
        if name:
            out += b"event: " + name.encode() + newline
        for line in lines:
            out += b"data: " + line.encode() + newline
        out += newline
    return out


@settings(max_examples=300, deadline=None)
@given(
    events=st.lists(EVENT, max_size=8),
    newline=st.sampled_from([b"\n", b"\r\n", b"\r"]),
    comments=st.booleans(),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=12),
)
def test_any_chunking_gives_the_same_events(events, newline, comments, cuts):
    wire = render(events, newline, comments)
    positions = sorted({c % (len(wire) + 1) for c in cuts})
    chunks = [wire[a:b] for a, b in zip([0, *positions], [*positions, len(wire)], strict=True)]
    whole = decode(wire)
    assert decode(*chunks) == whole
    expected = [(name, "\n".join(lines).encode(), None, None) for name, lines in events]
    assert whole == expected
