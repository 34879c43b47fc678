"""Accumulators: chat chunks and responses events -> deltas and the final JSON, whatever the chunking."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aihubmix_magic.core.exceptions import APIConnectionError, APIResponseError
from aihubmix_magic.core.sse import iter_events
from aihubmix_magic.core.streams import DONE, ChatAccumulator, ResponsesAccumulator
from aihubmix_magic.core.types import check_body, fields_from_raw


def chat_chunk(delta=None, finish=None, usage=None, choices=True):
    return {
        "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
        "choices": [{"index": 0, "delta": delta or {}, "logprobs": None, "finish_reason": finish}] if choices else [],
        "usage": usage,
    }


def feed_all(accumulator, events):
    deltas = []
    for event in events:
        deltas += accumulator.feed(event)
    accumulator.end()
    return deltas


USAGE = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5,
         "completion_tokens_details": {"reasoning_tokens": 1}}


def test_chat_usage_chunk_with_empty_choices():
    acc = ChatAccumulator()
    deltas = feed_all(acc, [
        chat_chunk({"role": "assistant", "content": ""}),
        chat_chunk({"reasoning_content": "think"}),
        chat_chunk({"content": "Hi"}),
        chat_chunk({"content": " there"}),
        chat_chunk({}, finish="stop"),
        chat_chunk(usage=USAGE, choices=False),
        DONE,
    ])
    assert deltas == [("reasoning", "think"), ("text", "Hi"), ("text", " there")]
    fields = fields_from_raw("chat", acc.raw())
    assert fields["text"] == "Hi there"
    assert fields["reasoning"] == "think"
    assert fields["finish_reason"] == "stop"
    assert fields["usage"].input_tokens == 3 and fields["usage"].output_tokens == 2
    assert fields["usage"].reasoning_tokens == 1


@pytest.mark.parametrize("where", ["finish", "none"])
def test_chat_usage_on_finish_chunk_or_absent(where):
    acc = ChatAccumulator()
    feed_all(acc, [chat_chunk({"content": "x"}), chat_chunk({}, finish="length", usage=USAGE if where == "finish" else None)])
    fields = fields_from_raw("chat", acc.raw())
    assert (fields["usage"] is not None) == (where == "finish")
    assert fields["status"] == "incomplete"


def test_chat_tool_call_fragments_merge_by_index():
    acc = ChatAccumulator()
    feed_all(acc, [
        chat_chunk({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                    "function": {"name": "get_weather", "arguments": ""}}]}),
        chat_chunk({"tool_calls": [{"index": 1, "id": "call_2", "type": "function",
                                    "function": {"name": "get_time", "arguments": "{}"}}]}),
        chat_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]}),
        chat_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]}),
        chat_chunk({}, finish="tool_calls"),
    ])
    calls = fields_from_raw("chat", acc.raw())["tool_calls"]
    assert [(c.id, c.name, c.parsed_arguments()) for c in calls] == [
        ("call_1", "get_weather", {"city": "Paris"}), ("call_2", "get_time", {})]


def test_chat_error_chunk_raises_and_keeps_text():
    acc = ChatAccumulator()
    acc.feed(chat_chunk({"content": "partial"}))
    with pytest.raises(APIResponseError, match="mid-stream: boom"):
        acc.feed({"error": {"message": "boom", "type": "upstream_error"}})
    assert acc.text() == "partial"


def test_chat_stream_that_stops_without_end_is_an_error():
    acc = ChatAccumulator()
    acc.feed(chat_chunk({"content": "partial"}))
    with pytest.raises(APIConnectionError, match="7 characters"):
        acc.end()


def responses_events(text_parts, *, status="completed", output_in_final=True):
    seq = iter(range(1000))
    item = {"id": "msg_1", "type": "message", "role": "assistant", "status": "in_progress", "content": []}
    done_item = dict(item, status="completed",
                     content=[{"type": "output_text", "text": "".join(text_parts), "annotations": []}])
    events = [
        {"type": "response.created", "response": {"id": "resp_1", "status": "in_progress", "model": "m", "output": []}},
        {"type": "response.output_item.added", "output_index": 0, "item": item},
        *({"type": "response.output_text.delta", "output_index": 0, "content_index": 0, "delta": p} for p in text_parts),
        {"type": "response.output_item.done", "output_index": 0, "item": done_item},
        {"type": f"response.{status}", "response": {
            "id": "resp_1", "status": status, "model": "m", "output": [done_item] if output_in_final else [],
            "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
            "usage": {"input_tokens": 4, "output_tokens": 2, "total_tokens": 6}}},
    ]
    for event in events:
        event["sequence_number"] = next(seq)
    return events


def test_responses_text_and_rebuilt_output():
    acc = ResponsesAccumulator()
    deltas = feed_all(acc, responses_events(["Hel", "lo"], output_in_final=False))
    assert deltas == [("text", "Hel"), ("text", "lo")]
    fields = fields_from_raw("responses", acc.raw())
    assert fields["text"] == "Hello"  # rebuilt from output_item.done
    assert fields["status"] == "completed" and fields["finish_reason"] == "stop"
    assert fields["usage"].total_tokens == 6


def test_responses_incomplete():
    acc = ResponsesAccumulator()
    feed_all(acc, responses_events(["a"], status="incomplete"))
    fields = fields_from_raw("responses", acc.raw())
    assert fields["status"] == "incomplete" and fields["finish_reason"] == "length"


def test_responses_failed_raises_with_partial_text():
    acc = ResponsesAccumulator()
    events = responses_events(["par", "tial"])
    events[-1] = {"type": "response.failed", "sequence_number": 9, "response": {
        "id": "resp_1", "status": "failed", "output": [], "error": {"code": "server_error", "message": "The model failed"}}}
    with pytest.raises(APIResponseError, match="The model failed"):
        feed_all(acc, events)
    assert acc.text() == "partial"


@pytest.mark.parametrize("event", [
    {"type": "error", "sequence_number": 3, "code": "server_error", "message": "flat boom", "param": None},
    {"type": "error", "sequence_number": 3, "error": {"type": "server_error", "code": "server_error",
                                                      "message": "nested boom", "param": None}},
])
def test_responses_error_event_flat_and_nested(event):
    acc = ResponsesAccumulator()
    acc.feed({"type": "response.output_text.delta", "delta": "x", "sequence_number": 2})
    with pytest.raises(APIResponseError, match="boom"):
        acc.feed(event)


def test_responses_reasoning_and_function_call():
    acc = ResponsesAccumulator()
    events = [
        {"type": "response.reasoning_summary_text.delta", "output_index": 0, "summary_index": 0, "delta": "Think"},
        {"type": "response.reasoning_summary_text.delta", "output_index": 0, "summary_index": 1, "delta": "More"},
        {"type": "response.output_item.added", "output_index": 1,
         "item": {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": ""}},
        {"type": "response.function_call_arguments.delta", "output_index": 1, "delta": '{"a":'},
        {"type": "response.function_call_arguments.delta", "output_index": 1, "delta": " 1}"},
        {"type": "response.unknown_future_event", "whatever": 1},
        {"type": "response.completed", "response": {"status": "completed", "output": []}},
    ]
    deltas = feed_all(acc, events)
    assert deltas == [("reasoning", "Think"), ("reasoning", "\n\nMore")]
    fields = fields_from_raw("responses", acc.raw())
    assert fields["tool_calls"][0].parsed_arguments() == {"a": 1}
    assert fields["finish_reason"] == "tool_calls"


@pytest.mark.parametrize(("endpoint", "body", "match"), [
    ("chat", {"error": {"message": "get_adaptor_failed (tid: 123)", "type": "Aihubmix_api_error"}, "type": "error"},
     "get_adaptor_failed \\(tid: 123\\)"),
    ("chat", {"id": "x", "choices": None, "usage": {"prompt_tokens": 0}}, "no choices"),
    ("responses", {"id": "x", "output": None}, "no output"),
    ("chat", ["not", "an", "object"], "not a JSON object"),
])
def test_check_body_rejects_non_answers(endpoint, body, match):
    with pytest.raises(APIResponseError, match=match):
        check_body(endpoint, body)


# -- property: any chunking of the same bytes gives the same Response ---------------------------------
def chat_wire(tokens: list[str], newline: bytes) -> bytes:
    chunks = [chat_chunk({"role": "assistant", "content": ""})]
    chunks += [chat_chunk({"content": t}) for t in tokens]
    chunks += [chat_chunk({}, finish="stop"), chat_chunk(usage=USAGE, choices=False)]
    body = b"".join(b"data: " + json.dumps(c, ensure_ascii=False).encode() + newline * 2 for c in chunks)
    return body + b"data: [DONE]" + newline * 2


def run_chat(chunks: list[bytes]):
    acc = ChatAccumulator()
    for event in iter_events(chunks):
        acc.feed(DONE if event.data == b"[DONE]" else json.loads(event.data))
    acc.end()
    return fields_from_raw("chat", acc.raw()), acc.text()


TOKENS = st.lists(st.text(min_size=1, max_size=6).filter(lambda t: "\x00" not in t), min_size=1, max_size=15)


@settings(max_examples=200, deadline=None)
@given(tokens=TOKENS, newline=st.sampled_from([b"\n", b"\r\n", b"\r"]),
       cuts=st.lists(st.integers(min_value=0, max_value=100_000), max_size=20))
def test_chat_any_chunking_same_response(tokens, newline, cuts):
    wire = chat_wire(tokens, newline)
    positions = sorted({c % (len(wire) + 1) for c in cuts})
    pieces = [wire[a:b] for a, b in zip([0, *positions], [*positions, len(wire)], strict=True)]
    fields, text = run_chat(pieces)
    assert text == "".join(tokens) == fields["text"]
    assert (fields["finish_reason"], fields["usage"].output_tokens) == ("stop", 2)
    assert run_chat([wire]) == (fields, text)
