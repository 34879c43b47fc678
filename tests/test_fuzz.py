"""Property tests (hypothesis): random SSE byte streams through the real transport path.

The bytes go through `Client._iter_events` (the SSE decoder and JSON decoding the client uses on a
socket), then the Response and its accumulator, exactly as `Client._answer` wires them; only the
socket is replaced by an in-memory httpx byte stream, for speed. Properties:

- valid events, in any chunking, with junk lines (comments, unknown fields, `id:`, `retry:`, lines
  without a colon) and unknown events/fields mixed in, give the same Response however the bytes are cut,
  and the text is exactly the tokens that were sent;
- any byte stream at all (valid events, junk, random bytes, JSON of the wrong shape, truncation) either
  completes or raises one of our own errors (`AihubmixError`), never anything else, and never hangs:
  every example must finish within the deadline.

The number of examples is fixed (EXAMPLES per test) and printed at the end of the session.
"""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aihubmix_magic import AihubmixError, Client, Response
from aihubmix_magic.core.streams import accumulator_for

EXAMPLES = int(__import__("os").environ.get("FUZZ_EXAMPLES", "300"))
RUN_COUNT: dict[str, int] = {}
FUZZ = settings(max_examples=EXAMPLES, deadline=timedelta(seconds=5), derandomize=not __import__("os").environ.get("FUZZ_RANDOM"), database=None,
                suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def client():
    with Client("sk-fuzz", "http://127.0.0.1:9/v1") as c:  # never connects: the bytes are given
        yield c


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    total = sum(RUN_COUNT.values())
    print(f"\nhypothesis examples run: {total} ({', '.join(f'{k}: {v}' for k, v in sorted(RUN_COUNT.items()))})")


def count(name: str) -> None:
    RUN_COUNT[name] = RUN_COUNT.get(name, 0) + 1


def stream_response(client: Client, endpoint: str, chunks: list[bytes]) -> Response:
    """A Response reading `chunks` through the client's own event path, as Client._answer sets it up."""
    http_response = httpx.Response(200, headers={"content-type": "text/event-stream"}, content=iter(chunks),
                                   request=httpx.Request("POST", "http://127.0.0.1:9/v1/x"))
    response = Response(endpoint=endpoint, request={"model": "fuzz"}, stream=True)
    response._accumulator = accumulator_for(endpoint)
    response._source = client._iter_events(http_response)
    response._close = http_response.close
    return response


def read(client: Client, endpoint: str, chunks: list[bytes]):
    """(outcome, fields): outcome is "ok" or the name of our error; any other exception fails the test."""
    response = stream_response(client, endpoint, chunks)
    deltas: list[tuple[str, str]] = []
    try:
        for delta in response.iter_deltas():
            deltas.append(delta)
        outcome = "ok"
    except AihubmixError as exc:
        assert response.status in ("failed", "cancelled") and response.error is exc
        assert "\n" not in str(exc)  # one line, as the notebook shows it
        outcome = type(exc).__name__
    assert response.status != "in_progress"
    text = response.text  # the partial text is always readable
    assert "".join(t for kind, t in deltas if kind == "text") == text
    fields = (text, response.reasoning, response.status, response.finish_reason, response.usage,
              [(c.id, c.name, c.arguments) for c in response.tool_calls],
              json.dumps(response.raw, sort_keys=True, default=repr), repr(response.error))
    return outcome, fields


def cut(wire: bytes, positions: list[int]) -> list[bytes]:
    points = sorted({p % (len(wire) + 1) for p in positions})
    return [wire[a:b] for a, b in zip([0, *points], [*points, len(wire)], strict=True)]


# -- wire builders -------------------------------------------------------------------------------------
def chat_events(tokens: list[str], reasoning: list[str]) -> list[dict | str]:
    base = {"id": "chatcmpl-f", "object": "chat.completion.chunk", "created": 1, "model": "fuzz"}
    events: list[dict | str] = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}]
    events += [{**base, "choices": [{"index": 0, "delta": {"reasoning_content": r}}]} for r in reasoning]
    events += [{**base, "choices": [{"index": 0, "delta": {"content": t}, "finish_reason": None}]} for t in tokens]
    events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    events.append({**base, "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": len(tokens),
                                                    "total_tokens": 3 + len(tokens)}})
    events.append("[DONE]")
    return events


def responses_events(tokens: list[str], reasoning: list[str]) -> list[dict | str]:
    seq = iter(range(10_000))
    response = {"id": "resp_f", "object": "response", "status": "in_progress", "model": "fuzz", "output": []}
    events: list[dict | str] = [{"type": "response.created", "sequence_number": next(seq), "response": response}]
    index = 0
    if reasoning:
        events += [{"type": "response.reasoning_summary_text.delta", "sequence_number": next(seq),
                    "output_index": 0, "summary_index": 0, "delta": r} for r in reasoning]
        index = 1
    events.append({"type": "response.output_item.added", "sequence_number": next(seq), "output_index": index,
                   "item": {"id": "msg_f", "type": "message", "role": "assistant", "content": []}})
    events += [{"type": "response.output_text.delta", "sequence_number": next(seq), "item_id": "msg_f",
                "output_index": index, "content_index": 0, "delta": t} for t in tokens]
    text = "".join(tokens)
    output = [{"id": "msg_f", "type": "message", "role": "assistant", "status": "completed",
               "content": [{"type": "output_text", "text": text, "annotations": []}]}]
    if reasoning:
        output.insert(0, {"id": "rs_f", "type": "reasoning",
                          "summary": [{"type": "summary_text", "text": "".join(reasoning)}]})
    events.append({"type": "response.completed", "sequence_number": next(seq),
                   "response": {**response, "status": "completed", "output": output,
                                "usage": {"input_tokens": 3, "output_tokens": len(tokens), "total_tokens": 3}}})
    return events


JUNK_LINES = st.sampled_from([
    b": keep-alive", b":", b": " + "ü".encode(), b"id: 42", b"id", b"retry: 1000", b"retry: soon", b"foo: bar",
    b"garbage line without colon", b"x-unknown-field: {\"a\": 1}", b"event: ping\ndata: {\"type\": \"ping\"}\n",
    b"event: response.future_thing\ndata: {\"type\": \"response.future_thing\", \"x\": [1, 2]}\n",
    b"data: {\"object\": \"chat.completion.chunk\", \"choices\": [], \"sim_future\": {\"k\": null}}\n",
])
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=8)


def render(events: list[dict | str], newline: bytes, event_lines: bool, junk: dict[int, list[bytes]]) -> bytes:
    out = b""
    for i, event in enumerate(events):
        for line in junk.get(i, []):
            out += line.replace(b"\n", newline) + newline  # between events: a junk line (or junk event)
        data = event if isinstance(event, str) else json.dumps(event, ensure_ascii=bool(i % 2))
        if event_lines and isinstance(event, dict) and "type" in event:
            out += b"event: " + event["type"].encode() + newline
        out += b"data: " + data.encode() + newline + newline
    return out


@st.composite
def valid_wires(draw):
    endpoint = draw(st.sampled_from(["chat", "responses"]))
    tokens = draw(st.lists(TEXT, min_size=1, max_size=12))
    reasoning = draw(st.lists(TEXT, max_size=3))
    events = (chat_events if endpoint == "chat" else responses_events)(tokens, reasoning)
    junk = draw(st.dictionaries(st.integers(0, len(events)), st.lists(JUNK_LINES, min_size=1, max_size=3),
                                max_size=4))
    newline = draw(st.sampled_from([b"\n", b"\r\n", b"\r"]))
    wire = render(events, newline, draw(st.booleans()), junk)
    if newline == b"\r":  # a lone CR at the very end may wait for an LF: end with a blank line anyway
        wire += b"\r"
    return endpoint, tokens, reasoning, wire


@FUZZ
@given(case=valid_wires(), cuts=st.lists(st.integers(min_value=0), max_size=25),
       other_cuts=st.lists(st.integers(min_value=0), max_size=25))
def test_valid_events_with_junk_give_the_same_answer_however_chunked(client, case, cuts, other_cuts):
    count("valid+junk")
    endpoint, tokens, reasoning, wire = case
    whole = read(client, endpoint, [wire])
    assert whole == read(client, endpoint, cut(wire, cuts)) == read(client, endpoint, cut(wire, other_cuts))
    outcome, (text, reasoning_text, status, finish_reason, usage, *_rest) = whole
    assert outcome == "ok" and status == "completed" and finish_reason == "stop"
    assert text == "".join(tokens)
    assert reasoning_text == "".join(reasoning)
    assert usage.output_tokens == len(tokens)
    one_byte = read(client, endpoint, [wire[i:i + 1] for i in range(len(wire))])
    assert one_byte == whole


ODD_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(
        st.sampled_from(["type", "choices", "delta", "content", "error", "response", "output", "usage",
                         "finish_reason", "index", "output_index", "item", "tool_calls", "function", "arguments",
                         "reasoning_content", "refusal", "status", "message", "code", "sequence_number", "x"]),
        children, max_size=4),
    max_leaves=12,
)
ODD_TYPES = st.sampled_from(["response.output_text.delta", "response.completed", "response.failed",
                             "response.incomplete", "response.output_item.added", "response.output_item.done",
                             "response.function_call_arguments.delta", "response.reasoning_summary_text.delta",
                             "response.refusal.delta", "response.created", "error", "nonsense"])


@st.composite
def odd_events(draw):
    """JSON of the right or the wrong shape: what a broken gateway might send."""
    value = draw(ODD_JSON)
    if isinstance(value, dict) and draw(st.booleans()):
        value["type"] = draw(ODD_TYPES)
    return b"data: " + json.dumps(value).encode() + b"\n\n"


@st.composite
def any_wires(draw):
    endpoint = draw(st.sampled_from(["chat", "responses"]))
    tokens = draw(st.lists(TEXT, max_size=6))
    events = (chat_events if endpoint == "chat" else responses_events)(tokens, [])
    pieces = [render([e], b"\n", True, {}) for e in events]
    for _ in range(draw(st.integers(0, 6))):  # junk of every kind, anywhere between events
        junk = draw(st.one_of(JUNK_LINES.map(lambda b: b + b"\n"), odd_events(), st.binary(max_size=40),
                              st.just(b"data: {\"choices\": [\n\n"), st.just(b"data: [DONE]\n\n")))
        pieces.insert(draw(st.integers(0, len(pieces))), junk)
    wire = b"".join(pieces)
    if draw(st.booleans()):  # the connection may also end anywhere
        wire = wire[: draw(st.integers(0, len(wire)))]
    return endpoint, wire


@FUZZ
@given(case=any_wires(), cuts=st.lists(st.integers(min_value=0), max_size=15))
def test_any_byte_stream_ends_in_an_answer_or_our_own_error(client, case, cuts):
    count("any bytes")
    endpoint, wire = case
    whole = read(client, endpoint, [wire])
    assert read(client, endpoint, cut(wire, cuts)) == whole  # chunking never changes the outcome


@FUZZ
@given(endpoint=st.sampled_from(["chat", "responses"]), event=odd_events(),
       before=st.lists(TEXT, max_size=3))
def test_events_of_the_wrong_shape_are_our_error_and_keep_the_text(client, endpoint, event, before):
    count("wrong shape")
    events = (chat_events if endpoint == "chat" else responses_events)(before, [])
    valid = [render([e], b"\n", True, {}) for e in events]
    head = 1 + len(before) + (endpoint == "responses")  # after the text deltas, before the end
    wire = b"".join(valid[:head]) + event + b"".join(valid[head:])
    outcome, fields = read(client, endpoint, [wire])
    assert fields[0].startswith("".join(before)) or outcome != "ok"


@FUZZ
@given(endpoint=st.sampled_from(["chat", "responses"]), body=ODD_JSON,
       shape=st.sampled_from(["as is", "chat", "responses"]))
def test_any_non_streamed_body_is_an_answer_or_our_own_error(endpoint, body, shape):
    count("non-streamed body")
    from aihubmix_magic.core.protocol import complete as complete_from_json

    if shape == "chat":  # close to a real answer, so the deeper fields get exercised
        body = {"id": "x", "object": "chat.completion", "choices": [{"index": 0, "message": body,
                                                                     "finish_reason": body}], "usage": body}
    elif shape == "responses":
        body = {"id": "x", "object": "response", "status": "completed", "output": [body], "usage": body}
    response = Response(endpoint=endpoint, request={"model": "fuzz"})
    try:
        complete_from_json(response, body)
    except AihubmixError as exc:
        assert "\n" not in str(exc)
        return
    assert isinstance(response.text, str) and response.status in ("completed", "incomplete", "failed", "cancelled")
    repr(response)


# -- what the fuzzing found, pinned as plain tests -------------------------------------------------------
CHUNK = b'data: {"choices": [{"index": 0, "delta": {"content": "Hi"}}]}\n\n'
FINISH = b'data: {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}\n\ndata: [DONE]\n\n'


@pytest.mark.parametrize(("endpoint", "wire", "outcome", "words"), [
    ("chat", CHUNK + b"data: null\n\n" + FINISH, "APIResponseError", "an event of an unexpected shape"),
    ("chat", CHUNK + b"data: [1, 2]\n\n" + FINISH, "APIResponseError", "unexpected shape"),
    ("chat", CHUNK + b'data: {"choices": [{"delta": {"content": 5}}]}\n\n' + FINISH, "APIResponseError",
     "expected text, got int"),
    ("chat", CHUNK + b'data: {"choices": ["x"]}\n\n' + FINISH, "APIResponseError", "unexpected shape"),
    ("chat", CHUNK + b'data: {"error": "line one\\nline two"}\n\n', "APIResponseError", "line one line two"),
    ("chat", CHUNK + b'data: {"error": {"message": "m", "code": 42}}\n\n', "APIResponseError", "m (42)"),
    ("responses", b"data: [DONE]\n\n", "ok", ""),
    ("responses", b'data: {"type": "response.output_text.delta", "delta": "Hi"}\n\ndata: [DONE]\n\n', "ok", ""),
    ("responses", b'data: {"type": "response.output_text.delta", "delta": ["Hi"]}\n\n', "APIResponseError",
     "expected text, got list"),
    ("responses", b'data: {"type": "response.completed", "response": {"output": [7]}}\n\n', "APIResponseError",
     "an answer of an unexpected shape"),
    ("responses", b'data: {"type": "response.output_text.delta", "delta": "Hi"}\n\n', "APIConnectionError",
     "closed before the answer was complete"),
])
def test_malformed_streams_are_our_one_line_errors(client, endpoint, wire, outcome, words):
    result, fields = read(client, endpoint, [wire])
    assert result == outcome
    assert words in fields[-1]
    if wire.startswith(CHUNK):
        assert fields[0] == "Hi"  # what arrived before the fault is kept
    if b'"delta": "Hi"' in wire and outcome == "ok":
        assert fields[0] == "Hi" and fields[2] == "completed"
