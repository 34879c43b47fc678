"""The simulator over a real loopback socket, read with httpx, raw sockets and the official openai SDK."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from aihubmix_magic.simulator import FAULT_MODELS, MODELS, RecordedRequest, Simulator, main

PROMPT = "Explain what a p-value is to a curious student in plain words please"
TID = r"\(tid: \d{31}\)"


@pytest.fixture(scope="module")
def sim():
    with Simulator() as simulator:
        yield simulator


@pytest.fixture(autouse=True)
def _fresh_statistics(sim):
    sim.reset()


@pytest.fixture
def http(sim):
    with httpx.Client(
        base_url=sim.base_url, headers={"Authorization": "Bearer sk-test"}, timeout=10
    ) as client:
        yield client


@pytest.fixture
def sdk(sim):
    with openai.OpenAI(base_url=sim.base_url, api_key="sk-test", max_retries=0) as client:
        yield client


def chat(http, model="gpt-4o-mini", prompt=PROMPT, **fields):
    return http.post(
        "/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": prompt}], **fields},
    )


def respond(http, model="gpt-4o-mini", prompt=PROMPT, **fields):
    return http.post("/responses", json={"model": model, "input": prompt, **fields})


def parse_sse(text):
    """A small, conforming SSE reader: (event, data) pairs; comments, ids and unknown fields ignored."""
    events, event, data = [], None, []
    for line in re.split(r"\r\n|\r|\n", text):
        if not line:
            if data:
                events.append((event, "\n".join(data)))
            event, data = None, []
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
    return events


def payloads(text):
    """The JSON payloads of an SSE body, without the [DONE] sentinel."""
    return [json.loads(data) for _, data in parse_sse(text) if data != "[DONE]"]


def events_of(response):
    return payloads(response.text)


def chat_text(chunks):
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


def output_text(events):
    return "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")


def raw_exchange(sim, body, path="/v1/chat/completions"):
    """POST over a plain socket; return the header block and the raw HTTP chunks of the body."""
    payload = json.dumps(body).encode()
    request = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
    ).encode() + payload
    with socket.create_connection(("127.0.0.1", sim.port)) as connection:
        connection.sendall(request)
        received = b""
        while block := connection.recv(65536):
            received += block
    head, _, rest = received.partition(b"\r\n\r\n")
    chunks = []
    while True:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return head.decode(), chunks
        chunks.append(rest[:size])
        assert rest[size : size + 2] == b"\r\n"
        rest = rest[size + 2 :]


# --- endpoints and validation ----------------------------------------------------------------------


def test_models_lists_every_model(http):
    response = http.get("/models")
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "list"
    assert [model["id"] for model in body["data"]] == MODELS
    assert {model["owned_by"] for model in body["data"]} == {
        "OpenAI",
        "Anthropic",
        "Google",
        "DeepSeek",
        "Alibaba",
        "Moonshot",
    }
    assert all(m["object"] == "model" and m["created"] == 1626777600 for m in body["data"])


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer"}, {"Authorization": "Basic sk-test"}])
def test_v1_requests_need_a_bearer_token(sim, headers):
    response = httpx.post(f"{sim.base_url}/chat/completions", headers=headers, json={"model": "gpt-4o-mini"})
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["type"] == "Aihubmix_api_error"
    assert re.fullmatch(r"Invalid token \(request id: sim-\d+\)", error["message"])


def test_the_api_key_must_match_when_set():
    with Simulator(api_key="sk-right") as strict:
        url = f"{strict.base_url}/models"
        assert httpx.get(url, headers={"Authorization": "Bearer sk-wrong"}).status_code == 401
        assert httpx.get(url, headers={"Authorization": "Bearer sk-right"}).status_code == 200


def test_bad_requests_get_error_bodies_and_are_recorded(sim, http):
    unknown_path = http.post("/nowhere", json={})
    assert unknown_path.status_code == 404
    assert unknown_path.json()["error"] == {
        "message": "Invalid URL (POST /v1/nowhere)",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
    bad_json = http.post(
        "/chat/completions", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert bad_json.status_code == 400
    assert bad_json.json()["error"]["type"] == "invalid_request_error"
    no_model = http.post("/responses", json={"input": "hi"})
    assert no_model.status_code == 400
    assert "model" in no_model.json()["error"]["message"]
    unknown_model = chat(http, model="gpt-9000")
    assert unknown_model.status_code == 400
    assert re.fullmatch(
        r"Incorrect model ID\. Please request to view the model page or you do not have permission to "
        rf"use this model  {TID}",
        unknown_model.json()["error"]["message"],
    )
    assert sim.request_count == 4
    assert sim.requests[1].body is None
    assert sim.requests[2].body == {"input": "hi"}


def test_requests_are_recorded_before_validation(sim, http):
    before = time.monotonic()
    chat(http, model="sim-401", temperature=0.5)
    recorded = sim.requests[-1]
    assert isinstance(recorded, RecordedRequest)
    assert (recorded.method, recorded.path) == ("POST", "/v1/chat/completions")
    assert recorded.body["temperature"] == 0.5
    assert recorded.headers["authorization"] == "Bearer sk-test"
    assert recorded.headers["content-type"] == "application/json"
    assert before <= recorded.time <= time.monotonic()
    sim.reset()
    assert sim.request_count == 0 and sim.requests == []


# --- chat completions ------------------------------------------------------------------------------


def test_chat_non_stream(http):
    body = chat(http).json()
    assert body["object"] == "chat.completion" and body["model"] == "gpt-4o-mini"
    (choice,) = body["choices"]
    assert choice["finish_reason"] == "stop"
    assert choice["message"]["role"] == "assistant" and choice["message"]["refusal"] is None
    content = choice["message"]["content"]
    usage = body["usage"]
    assert usage["prompt_tokens"] == len(PROMPT.split())
    assert usage["completion_tokens"] == len(re.findall(r"\S+\s*|\s+", content))
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["prompt_tokens_details"]["cached_tokens"] == 0
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 0


def test_default_answer_is_small_deterministic_markdown(http):
    content = chat(http).json()["choices"][0]["message"]["content"]
    first_line, blank, *_ = content.split("\n")
    assert (first_line, blank) == ("*Simulated answer from gpt-4o-mini.*", "")
    paragraphs = content.split("\n\n")[1:]
    assert 1 <= len(paragraphs) <= 2
    assert all(25 <= len(paragraph.split()) <= 45 for paragraph in paragraphs)
    assert " ".join(PROMPT.split()[:8]) in paragraphs[0]
    assert chat(http).json()["choices"][0]["message"]["content"] == content
    other = chat(http, model="claude-haiku-4-5").json()["choices"][0]["message"]["content"]
    assert other.split("\n\n")[1:] != paragraphs


def test_input_tokens_count_every_message(http):
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "one two three"},
        {"role": "assistant", "content": "four"},
        {"role": "user", "content": [{"type": "text", "text": "five six"}]},
    ]
    body = http.post("/chat/completions", json={"model": "gpt-4o", "messages": messages}).json()
    assert body["usage"]["prompt_tokens"] == 8
    assert '"five six"' in body["choices"][0]["message"]["content"]
    instructions = respond(http, instructions="Answer in one line.", prompt="hello").json()
    assert instructions["usage"]["input_tokens"] == 5


def test_chat_stream_framing(http):
    response = chat(http, stream=True)
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["transfer-encoding"] == "chunked"
    assert re.fullmatch(r"(data: [^\n]+\n\n)+", response.text)
    assert response.text.endswith("data: [DONE]\n\n")
    chunks = events_of(response)
    assert all(
        set(chunk) == {"id", "object", "created", "model", "system_fingerprint", "choices", "usage"}
        for chunk in chunks
    )
    assert len({chunk["id"] for chunk in chunks}) == 1
    assert all(chunk["object"] == "chat.completion.chunk" and chunk["usage"] is None for chunk in chunks)
    first, *tokens, last = chunks
    assert first["choices"] == [
        {
            "index": 0,
            "delta": {"role": "assistant", "content": "", "refusal": None},
            "logprobs": None,
            "finish_reason": None,
        }
    ]
    assert last["choices"] == [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]
    assert all(set(t["choices"][0]["delta"]) == {"content"} for t in tokens)
    assert chat_text(chunks) == chat(http).json()["choices"][0]["message"]["content"]


def test_chat_stream_usage_only_when_asked(http):
    chunks = events_of(chat(http, stream=True, stream_options={"include_usage": True}))
    *_, finish, usage = chunks
    assert finish["choices"][0]["finish_reason"] == "stop" and finish["usage"] is None
    assert usage["choices"] == [] and usage["usage"] == chat(http).json()["usage"]
    not_asked = events_of(chat(http, stream=True, stream_options={"include_usage": False}))
    assert not_asked[-1]["choices"][0]["finish_reason"] == "stop"
    assert all(chunk["usage"] is None for chunk in not_asked)


# --- responses -------------------------------------------------------------------------------------


def test_responses_non_stream(http):
    body = respond(http, model="gemini-3.1-pro-preview").json()
    assert body["object"] == "response" and body["status"] == "completed"
    assert body["error"] is None and body["incomplete_details"] is None
    (message,) = body["output"]
    assert (
        message["type"] == "message" and message["role"] == "assistant" and message["status"] == "completed"
    )
    (part,) = message["content"]
    assert part["type"] == "output_text"
    assert part["text"].startswith("*Simulated answer from gemini-3.1-pro-preview.*\n\n")
    usage = body["usage"]
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert usage["output_tokens"] == len(re.findall(r"\S+\s*|\s+", part["text"]))
    assert usage["input_tokens_details"] == {"cached_tokens": 0}
    assert usage["output_tokens_details"] == {"reasoning_tokens": 0}


def test_responses_stream_event_order(http):
    response = respond(http, stream=True)
    raw = parse_sse(response.text)
    events = [json.loads(data) for _, data in raw]
    assert all(name == event["type"] for (name, _), event in zip(raw, events, strict=True))
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    types = [event["type"] for event in events]
    deltas = types.count("response.output_text.delta")
    assert deltas > 10
    assert types == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * deltas,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    final = events[-1]["response"]
    non_stream = respond(http).json()
    assert output_text(events) == events[-4]["text"] == non_stream["output"][0]["content"][0]["text"]
    assert final["output"][0]["content"] == non_stream["output"][0]["content"]
    assert final["usage"] == non_stream["usage"]
    assert "[DONE]" not in response.text


# --- the openai SDK as a reference client ----------------------------------------------------------


def test_openai_sdk_chat(sdk):
    messages = [{"role": "user", "content": PROMPT}]
    completion = sdk.chat.completions.create(model="deepseek-chat", messages=messages)
    assert completion.choices[0].finish_reason == "stop"
    stream = sdk.chat.completions.create(
        model="deepseek-chat", messages=messages, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert (
        "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        == completion.choices[0].message.content
    )
    assert chunks[-1].usage.completion_tokens == completion.usage.completion_tokens


def test_openai_sdk_responses(sdk):
    response = sdk.responses.create(model="gpt-5.4", input=PROMPT)
    assert response.status == "completed"
    assert response.output_text.startswith("*Simulated answer from gpt-5.4.*")
    events = list(sdk.responses.create(model="gpt-5.4", input=PROMPT, stream=True))
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == response.output_text
    assert events[-1].type == "response.completed"
    assert events[-1].response.output_text == response.output_text


def test_openai_sdk_retries_a_flaky_model(sim):
    with openai.OpenAI(base_url=sim.base_url, api_key="sk-test", max_retries=2) as client:
        started = time.monotonic()
        response = client.responses.create(model="sim-flaky-429-2", input="hi")
    assert response.status == "completed"
    assert sim.request_count == 3
    assert time.monotonic() - started < 1  # retry-after-ms: 20 was honoured


# --- what the answer contains ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "pattern"),
    [
        ("Give it a heading", r"\A## \w+( \w+)+\n\n\*Simulated answer from gpt-4o-mini\.\*"),
        ("Make it bold", r"\*\*bold text\*\*"),
        ("Show me some code", r"\n```python\n(.+\n){3,5}```"),
        ("A list please", r"\n\n(- [^\n]+\n){2}- [^\n]+"),
        ("Three bullet points", r"\n\n(- [^\n]+\n){2}- [^\n]+"),
        ("A table please", r"\| --- \| --- \|\n(\| \w+ \| \d+ \|\n?){3}"),
    ],
)
def test_directives(http, prompt, pattern):
    content = chat(http, prompt=prompt).json()["choices"][0]["message"]["content"]
    assert re.search(pattern, content), content


def test_words_directive_makes_long_answers(http):
    content = chat(http, model="qwen3-coder", prompt="words=5000").json()["choices"][0]["message"]["content"]
    first, *paragraphs = content.split("\n\n")
    assert first == "*Simulated answer from qwen3-coder.*"
    sizes = [len(paragraph.split()) for paragraph in paragraphs]
    assert sum(sizes) == 5000
    assert all(40 <= size <= 80 for size in sizes[:-1]) and sizes[-1] <= 80


def test_json_answers(http):
    for answer in (
        chat(http, prompt="Reply in json").json()["choices"][0]["message"]["content"],
        chat(http, response_format={"type": "json_object"}).json()["choices"][0]["message"]["content"],
        respond(http, text={"format": {"type": "json_object"}}).json()["output"][0]["content"][0]["text"],
    ):
        value = json.loads(answer)
        assert value["model"] == "gpt-4o-mini" and isinstance(value["answer"], str)


def test_json_schema_answers_have_every_required_property(http):
    schema = {
        "type": "object",
        "required": ["name", "age", "score", "ok", "tags", "extra"],
        "properties": {
            "name": {"type": "string"},
            "age": {"type": "integer"},
            "score": {"type": "number"},
            "ok": {"type": "boolean"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "extra": {"type": "object", "properties": {}},
        },
    }
    chat_format = {"type": "json_schema", "json_schema": {"name": "person", "schema": schema, "strict": True}}
    text_format = {"format": {"type": "json_schema", "name": "person", "schema": schema, "strict": True}}
    for answer in (
        chat(http, response_format=chat_format).json()["choices"][0]["message"]["content"],
        respond(http, text=text_format).json()["output"][0]["content"][0]["text"],
    ):
        value = json.loads(answer)
        assert set(value) == set(schema["required"])
        assert (
            isinstance(value["name"], str) and type(value["age"]) is int and isinstance(value["score"], float)
        )
        assert value["ok"] is True and isinstance(value["tags"], list) and value["extra"] == {}


def test_images_are_counted(http):
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    content = [{"type": "text", "text": "What is this?"}, image, image]
    body = http.post(
        "/chat/completions", json={"model": "gpt-4o", "messages": [{"role": "user", "content": content}]}
    )
    assert "I see 2 image(s)." in body.json()["choices"][0]["message"]["content"].split("\n\n")[1]
    items = [
        {
            "role": "user",
            "content": [
                {"type": "input_text", "text": "What is this?"},
                {"type": "input_image", "image_url": "https://example.com/a.png"},
            ],
        }
    ]
    response = respond(http, model="gpt-4o", prompt=items).json()
    assert "I see 1 image(s)." in response["output"][0]["content"][0]["text"]


def test_max_tokens_truncates(http):
    body = chat(http, max_tokens=5).json()
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 5
    assert body["choices"][0]["message"]["content"] == "".join(
        re.findall(r"\S+\s*|\s+", chat(http).json()["choices"][0]["message"]["content"])[:5]
    )
    chunks = events_of(chat(http, max_tokens=5, stream=True))
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert chat_text(chunks) == body["choices"][0]["message"]["content"]

    response = respond(http, max_output_tokens=5).json()
    assert response["status"] == "incomplete"
    assert response["incomplete_details"] == {"reason": "max_output_tokens"}
    assert response["usage"]["output_tokens"] == 5
    events = events_of(respond(http, max_output_tokens=5, stream=True))
    assert events[-1]["type"] == "response.incomplete"
    assert events[-1]["response"]["status"] == "incomplete"
    assert output_text(events) == response["output"][0]["content"][0]["text"]


def test_reasoning_chat(http):
    body = chat(http, model="claude-sonnet-4-5-think").json()
    reasoning = body["choices"][0]["message"]["reasoning_content"]
    assert reasoning.startswith("Let me think about") and 10 <= len(reasoning.split()) <= 20
    usage = body["usage"]
    assert usage["completion_tokens_details"]["reasoning_tokens"] == len(reasoning.split())
    assert usage["completion_tokens"] == len(reasoning.split()) + len(
        re.findall(r"\S+\s*|\s+", body["choices"][0]["message"]["content"])
    )
    deltas = [
        chunk["choices"][0]["delta"]
        for chunk in events_of(chat(http, model="claude-sonnet-4-5-think", stream=True))
    ]
    kinds = [next(iter(delta), None) for delta in deltas]
    first_content = kinds.index("content")
    assert set(kinds[1:first_content]) == {"reasoning_content"}
    assert "".join(d["reasoning_content"] for d in deltas[1:first_content]) == reasoning
    assert (
        "reasoning_content"
        not in chat(http, reasoning_effort="none", model="deepseek-reasoner").json()["choices"][0]["message"]
    )
    assert "reasoning_content" in chat(http, reasoning_effort="low").json()["choices"][0]["message"]


def test_reasoning_responses(http):
    body = respond(http, reasoning={"effort": "medium"}).json()
    reasoning, message = body["output"]
    assert reasoning["type"] == "reasoning" and message["type"] == "message"
    summary = reasoning["summary"][0]["text"]
    assert body["usage"]["output_tokens_details"]["reasoning_tokens"] == len(summary.split())
    events = events_of(respond(http, reasoning={"effort": "medium"}, stream=True))
    types = [event["type"] for event in events]
    assert types[2:4] == ["response.output_item.added", "response.reasoning_summary_part.added"]
    first_text = types.index("response.output_text.delta")
    assert types.index("response.reasoning_summary_part.done") < first_text
    assert (
        "".join(e["delta"] for e in events if e["type"] == "response.reasoning_summary_text.delta") == summary
    )
    added = [event for event in events if event["type"] == "response.output_item.added"]
    assert [(e["output_index"], e["item"]["type"]) for e in added] == [(0, "reasoning"), (1, "message")]


# --- faults ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "status", "error"),
    [
        ("sim-401", 401, {"message": r"Invalid token \(request id: sim-\d+\)", "type": "Aihubmix_api_error"}),
        (
            "sim-403",
            403,
            {
                "message": rf"insufficient_user_quota {TID}",
                "type": "Aihubmix_api_error",
                "code": "insufficient_user_quota",
            },
        ),
        (
            "sim-404",
            404,
            {
                "message": r"The model `sim-404` does not exist or you do not have access to it\.",
                "type": "invalid_request_error",
                "param": None,
                "code": "model_not_found",
            },
        ),
        (
            "sim-unknown-model",
            400,
            {"message": rf"Incorrect model ID\..*{TID}", "type": "Aihubmix_api_error"},
        ),
        ("sim-503", 503, {"message": rf"Incorrect model ID\..*{TID}", "type": "Aihubmix_api_error"}),
        (
            "sim-429",
            429,
            {
                "message": r"The sim-429 model Too many requests; please try again later\.",
                "type": "Aihubmix_api_error",
            },
        ),
        ("sim-500", 500, {"message": rf"upstream error {TID}", "type": "upstream_error"}),
        (
            "sim-retry-after-3",
            429,
            {"message": r"The sim-retry-after-3 model Too many requests.*", "type": "Aihubmix_api_error"},
        ),
    ],
)
@pytest.mark.parametrize("send", [chat, respond])
@pytest.mark.parametrize("stream", [False, True])
def test_http_error_faults(http, send, stream, model, status, error):
    response = send(http, model=model, stream=stream)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == set(error)
    for key, expected in error.items():
        if key == "message":
            assert re.fullmatch(expected, body["error"]["message"])
        else:
            assert body["error"][key] == expected
    assert response.headers.get("retry-after-ms") == ("20" if model == "sim-429" else None)
    assert response.headers.get("retry-after") == ("3" if model == "sim-retry-after-3" else None)


@pytest.mark.parametrize("kind", ["429", "500"])
def test_flaky_models_fail_n_times_then_answer(sim, http, kind):
    model = f"sim-flaky-{kind}-2"
    assert [chat(http, model=model).status_code for _ in range(3)] == [int(kind), int(kind), 200]
    assert chat(http, model=f"sim-flaky-{kind}-1").status_code == int(kind)  # counted per model name
    sim.reset()
    failed = chat(http, model=model)
    assert failed.status_code == int(kind)
    assert failed.headers.get("retry-after-ms") == ("20" if kind == "429" else None)


@pytest.mark.parametrize("stream", [False, True])
def test_200_error_and_null_choices(http, stream):
    error = chat(http, model="sim-200-error", stream=stream)
    assert error.status_code == 200 and error.headers["content-type"] == "application/json"
    assert error.json()["type"] == "error"
    assert re.fullmatch(rf"get_adaptor_failed {TID}", error.json()["error"]["message"])
    null_chat = chat(http, model="sim-null-choices", stream=stream).json()
    assert null_chat["choices"] is None and null_chat["usage"]["total_tokens"] == 0
    null_response = respond(http, model="sim-null-choices", stream=stream).json()
    assert null_response["output"] is None and null_response["usage"]["total_tokens"] == 0


def test_html_garbage_and_bad_json_bodies(http):
    html = chat(http, model="sim-html")
    assert html.status_code == 502 and html.headers["content-type"] == "text/html"
    assert "<title>502 Bad Gateway</title>" in html.text
    garbage = respond(http, model="sim-garbage")
    assert (garbage.status_code, garbage.headers["content-type"], garbage.text) == (
        200,
        "text/plain",
        "this is not json <<<",
    )
    bad_json = chat(http, model="sim-bad-json")
    assert bad_json.status_code == 200 and bad_json.headers["content-type"] == "application/json"
    with pytest.raises(json.JSONDecodeError):
        bad_json.json()


def test_bad_json_in_a_stream(http):
    lines = chat(http, model="sim-bad-json", stream=True).text.split("\n\n")
    assert lines[4] == 'data: {"choices": ['
    assert sum('"delta":{"content"' in line for line in lines[:4]) == 3
    assert lines[-2] == "data: [DONE]"


@pytest.mark.parametrize(("model", "tokens"), [("sim-drop", 5), ("sim-drop-2", 2)])
def test_drop_cuts_the_stream(http, model, tokens):
    received = []
    with (
        pytest.raises(httpx.RemoteProtocolError),
        http.stream(
            "POST", "/chat/completions", json={"model": model, "messages": [], "stream": True}
        ) as response,
    ):
        received.extend(response.iter_lines())
    assert sum('"content":"' in line and '"content":""' not in line for line in received) == tokens
    with pytest.raises(httpx.RemoteProtocolError):
        respond(http, model=model)


@pytest.mark.parametrize("stream", [True, False])
def test_stall_until_the_client_leaves(sim, stream):
    timeout = httpx.Timeout(5, read=0.5)
    with httpx.Client(
        base_url=sim.base_url, headers={"Authorization": "Bearer k"}, timeout=timeout
    ) as client:
        received = []
        started = time.monotonic()
        with (
            pytest.raises(httpx.ReadTimeout),
            client.stream(
                "POST", "/chat/completions", json={"model": "sim-stall", "messages": [], "stream": stream}
            ) as response,
        ):
            received.extend(response.iter_lines())
    assert sim.wait_for_disconnect(2)
    assert time.monotonic() - started < 2.5
    ((when, path),) = sim.disconnects
    assert path == "/v1/chat/completions" and started < when
    if stream:
        assert sum('"content":"' in line and '"content":""' not in line for line in received) == 2


def test_chat_error_event(http):
    for model in ("sim-error-event", "sim-error-event-flat", "sim-failed"):
        chunks = events_of(chat(http, model=model, stream=True))
        assert len(chunks) == 5 and chat_text(chunks[:-1])
        assert re.fullmatch(rf"upstream stream error {TID}", chunks[-1]["error"]["message"])
        assert chat(http, model=model).status_code == 500


def test_responses_error_events(http, sdk):
    nested = events_of(respond(http, model="sim-error-event", stream=True))[-1]
    assert nested == {
        "type": "error",
        "sequence_number": nested["sequence_number"],
        "error": {
            "type": "server_error",
            "code": "server_error",
            "message": "upstream stream error",
            "param": None,
        },
    }
    flat = events_of(respond(http, model="sim-error-event-flat", stream=True))[-1]
    assert flat == {
        "type": "error",
        "sequence_number": flat["sequence_number"],
        "code": "server_error",
        "message": "upstream stream error",
        "param": None,
    }
    with pytest.raises(openai.APIError, match="upstream stream error"):
        list(sdk.responses.create(model="sim-error-event", input="hi", stream=True))


def test_responses_failed(http):
    events = events_of(respond(http, model="sim-failed", stream=True))
    assert [e["type"] for e in events].count("response.output_text.delta") == 3
    assert events[-1]["type"] == "response.failed"
    assert events[-1]["response"]["status"] == "failed"
    assert events[-1]["response"]["error"] == {"code": "server_error", "message": "The model failed"}
    body = respond(http, model="sim-failed").json()
    assert body["status"] == "failed" and body["error"]["code"] == "server_error"


def test_incomplete(http):
    body = chat(http, model="sim-incomplete").json()
    assert body["choices"][0]["finish_reason"] == "length" and body["usage"]["completion_tokens"] == 4
    response = respond(http, model="sim-incomplete").json()
    assert response["status"] == "incomplete" and response["usage"]["output_tokens"] == 4
    assert events_of(respond(http, model="sim-incomplete", stream=True))[-1]["type"] == "response.incomplete"


def test_timing_faults(sim, http):
    started = time.monotonic()
    assert chat(http, model="sim-latency-200").status_code == 200
    assert 0.2 <= time.monotonic() - started < 1
    started = time.monotonic()
    chunks = events_of(chat(http, model="sim-tps-50", max_tokens=10, stream=True))
    assert len(chunks) == 12 and 0.2 <= time.monotonic() - started < 1
    started = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        statuses = list(
            pool.map(
                lambda _: (
                    httpx.post(
                        f"{sim.base_url}/chat/completions",
                        headers={"Authorization": "Bearer k"},
                        json={"model": "sim-latency-300", "messages": []},
                    ).status_code
                ),
                range(4),
            )
        )
    assert statuses == [200] * 4 and time.monotonic() - started < 0.9  # served concurrently


def test_delay_and_latency_settings():
    with Simulator(delay=0.05, latency=0.2) as slow:
        started = time.monotonic()
        response = httpx.post(
            f"{slow.base_url}/chat/completions",
            headers={"Authorization": "Bearer k"},
            json={"model": "gpt-4o", "messages": [], "stream": True, "max_tokens": 4},
        )
        assert response.status_code == 200
        assert 0.2 + 4 * 0.05 <= time.monotonic() - started < 1.5


# --- framing variants ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model",
    [
        "sim-crlf",
        "sim-cr",
        "sim-comments",
        "sim-multiline",
        "sim-garbage",
        "sim-chunked-utf8",
        "sim-unknown-events",
    ],
)
def test_stream_variants_read_the_same_with_the_sdk(http, sdk, model):
    messages = [{"role": "user", "content": PROMPT}]
    expected = chat_text(events_of(chat(http, model=model, stream=True)))
    if model != "sim-garbage":  # whose non-stream answer is not JSON
        assert (
            sdk.chat.completions.create(model=model, messages=messages).choices[0].message.content == expected
        )
    stream = sdk.chat.completions.create(model=model, messages=messages, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == expected
    events = list(sdk.responses.create(model=model, input=PROMPT, stream=True))
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == expected


def test_line_ending_variants(http):
    crlf = chat(http, model="sim-crlf", stream=True).text
    assert crlf.endswith("data: [DONE]\r\n\r\n") and "\n" not in crlf.replace("\r\n", "")
    cr = respond(http, model="sim-cr", stream=True).text
    assert "\n" not in cr and cr.startswith("event: response.created\rdata: ")
    events = parse_sse(cr)
    assert [json.loads(data)["sequence_number"] for _, data in events] == list(range(len(events)))


def test_comment_garbage_and_multiline_variants(http):
    comments = chat(http, model="sim-comments", stream=True).text.split("\n\n")[:-1]
    assert all(block.startswith(": keep-alive\ndata: ") for block in comments)
    garbage = respond(http, model="sim-garbage", stream=True).text
    assert (
        "\ngarbage line without colon\n: keep-alive\nid: 7\nretry: 1000\nevent: response.in_progress\n"
        in garbage
    )
    multiline = chat(http, model="sim-multiline", stream=True).text.split("\n\n")[:-1]
    assert all(re.fullmatch(r"data: \{[^\n]*,\ndata: [^\n]+", block) for block in multiline[:-1])
    assert multiline[-1] == "data: [DONE]"
    assert (
        chat_text(events_of(chat(http, model="sim-multiline", stream=True)))
        == chat(http, model="sim-multiline").json()["choices"][0]["message"]["content"]
    )


def test_chat_usage_and_done_variants(http):
    usage_request = {"stream": True, "stream_options": {"include_usage": True}}
    no_done = chat(http, model="sim-no-done", **usage_request).text
    assert "[DONE]" not in no_done and payloads(no_done)[-1]["choices"] == []
    no_usage = events_of(chat(http, model="sim-no-usage", **usage_request))
    assert (
        all(chunk["usage"] is None for chunk in no_usage)
        and no_usage[-1]["choices"][0]["finish_reason"] == "stop"
    )
    in_finish = events_of(chat(http, model="sim-usage-in-finish", stream=True))
    assert (
        in_finish[-1]["choices"][0]["finish_reason"] == "stop" and in_finish[-1]["usage"]["total_tokens"] > 0
    )


def test_responses_framing_variants(http):
    assert respond(http, model="sim-with-done", stream=True).text.endswith("\n\ndata: [DONE]\n\n")
    no_event_lines = respond(http, model="sim-no-event-lines", stream=True).text
    assert "event:" not in no_event_lines and no_event_lines.startswith('data: {"type":"response.created"')
    events = events_of(respond(http, model="sim-empty-output", stream=True))
    assert events[-1]["type"] == "response.completed" and events[-1]["response"]["output"] == []
    (done,) = [e["item"] for e in events if e["type"] == "response.output_item.done"]
    (expected,) = respond(http, model="sim-empty-output").json()["output"]
    assert done["content"] == expected["content"] and done["type"] == "message"


def test_unknown_events_variant(http):
    types = [e["type"] for e in events_of(respond(http, model="sim-unknown-events", stream=True))]
    assert "response.future_thing" in types and types[-1] == "response.completed"
    chunks = events_of(chat(http, model="sim-unknown-events", stream=True))
    assert all("obfuscation" in chunk and "sim_future_field" in chunk for chunk in chunks)


def test_chunked_utf8_splits_characters_and_lines(sim):
    head, chunks = raw_exchange(sim, {"model": "sim-chunked-utf8", "messages": [], "stream": True})
    assert "Transfer-Encoding: chunked" in head
    assert all(len(chunk) <= 7 for chunk in chunks)
    with pytest.raises(UnicodeDecodeError):
        for chunk in chunks:
            chunk.decode()
    text = b"".join(chunks).decode()
    assert "héllo — 你好 😀" in chat_text(payloads(text))


# --- tool calls ------------------------------------------------------------------------------------


def test_tool_calls_chat(http, sdk):
    body = chat(http, model="sim-tools").json()
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    assert choice["message"]["tool_calls"] == [
        {
            "id": "call_sim1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        }
    ]
    chunks = events_of(chat(http, model="sim-tools", stream=True))
    fragments = [
        c["choices"][0]["delta"]["tool_calls"][0] for c in chunks if "tool_calls" in c["choices"][0]["delta"]
    ]
    assert fragments[0] == {
        "index": 0,
        "id": "call_sim1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    assert all(set(f) == {"index", "function"} and set(f["function"]) == {"arguments"} for f in fragments[1:])
    assert "".join(f["function"]["arguments"] for f in fragments) == '{"city": "Paris"}'
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    with sdk.chat.completions.stream(
        model="sim-tools", messages=[{"role": "user", "content": "weather?"}]
    ) as stream:
        (call,) = stream.get_final_completion().choices[0].message.tool_calls
    assert (call.function.name, json.loads(call.function.arguments)) == ("get_weather", {"city": "Paris"})
    messages = [
        {"role": "user", "content": "weather?"},
        choice["message"],
        {"role": "tool", "tool_call_id": "call_sim1", "content": "sunny"},
    ]
    after = http.post("/chat/completions", json={"model": "sim-tools", "messages": messages}).json()
    assert after["choices"][0]["finish_reason"] == "stop"


def test_tool_calls_responses(http):
    (item,) = respond(http, model="sim-tools").json()["output"]
    assert item == {
        "id": item["id"],
        "type": "function_call",
        "status": "completed",
        "arguments": '{"city": "Paris"}',
        "call_id": "call_sim1",
        "name": "get_weather",
    }
    events = events_of(respond(http, model="sim-tools", stream=True))
    types = [event["type"] for event in events]
    assert types[2] == "response.output_item.added" and events[2]["item"]["arguments"] == ""
    assert (
        "".join(e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta")
        == item["arguments"]
    )
    assert types[-3:] == [
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    history = [
        {"role": "user", "content": "weather?"},
        {k: v for k, v in item.items() if k != "status"},
        {"type": "function_call_output", "call_id": "call_sim1", "output": "sunny"},
    ]
    after = respond(http, model="sim-tools", prompt=history).json()
    assert after["output"][0]["type"] == "message"


# --- connections -----------------------------------------------------------------------------------


def test_keep_alive_reuses_one_connection(sim, http):
    assert chat(http).status_code == 200
    assert chat(http, stream=True).text.endswith("data: [DONE]\n\n")
    assert respond(http, stream=True).status_code == 200
    assert sim.connections_opened == 1


def test_stop_closes_idle_connections():
    simulator = Simulator().start()
    with httpx.Client(headers={"Authorization": "Bearer k"}) as client:
        assert client.get(f"{simulator.base_url}/models").status_code == 200
        simulator.stop()
        with pytest.raises(httpx.TransportError):
            client.get(f"{simulator.base_url}/models")
    simulator.stop()  # stopping twice is harmless


# --- command line ----------------------------------------------------------------------------------


def test_help_lists_every_fault_model(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for name, description in FAULT_MODELS.items():
        assert re.search(rf"^  {re.escape(name)} +{re.escape(description)}$", out, re.MULTILINE)


def test_command_line_serves_until_interrupted():
    with subprocess.Popen(
        [sys.executable, "-m", "aihubmix_magic.simulator", "--api-key", "sk-cli"],
        stdout=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            line = process.stdout.readline()
            match = re.fullmatch(
                r"AiHubMix simulator on (http://127\.0\.0\.1:\d+/v1) \(answers are simulated\)\n", line
            )
            assert match
            models = httpx.get(f"{match.group(1)}/models", headers={"Authorization": "Bearer sk-cli"})
            assert models.status_code == 200
        finally:
            process.send_signal(signal.SIGINT)
            assert process.wait(10) == 0


# --- faults added for the reliability work (issue 4) ----------------------------------------------


@pytest.mark.parametrize("send", [chat, respond])
def test_retry_header_faults(http, send):
    ms = send(http, model="sim-retry-after-ms-1500")
    assert (ms.status_code, ms.headers["retry-after-ms"]) == (429, "1500")
    dated = send(http, model="sim-retry-after-date-30")
    assert dated.status_code == 429
    import email.utils

    ahead = email.utils.parsedate_to_datetime(dated.headers["retry-after"]).timestamp() - time.time()
    assert 28 < ahead <= 30
    no_retry = send(http, model="sim-500-no-retry")
    assert (no_retry.status_code, no_retry.headers["x-should-retry"]) == (500, "false")
    for status in (408, 409):
        assert send(http, model=f"sim-{status}").status_code == status


@pytest.mark.parametrize("kind", ["408", "409", "should-retry"])
def test_more_flaky_models(sim, http, kind):
    model = f"sim-flaky-{kind}-2" if kind != "should-retry" else "sim-should-retry-2"
    statuses = [chat(http, model=model) for _ in range(3)]
    expected = 400 if kind == "should-retry" else int(kind)
    assert [r.status_code for r in statuses] == [expected, expected, 200]
    if kind == "should-retry":
        assert statuses[0].headers["x-should-retry"] == "true"
        assert statuses[2].json()["choices"][0]["message"]["content"]


@pytest.mark.parametrize("stream", [False, True])
def test_html_200_from_a_proxy(http, stream):
    response = chat(http, model="sim-html-200", stream=stream)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert response.text.startswith("<!DOCTYPE html>") and len(response.text) > 200


@pytest.mark.parametrize("status", [404, 503])
def test_unknown_model_status_is_configurable(status):
    with Simulator(unknown_model_status=status) as server, httpx.Client(base_url=server.base_url) as client:
        response = client.post("/chat/completions", json={"model": "gpt-4o-mnii", "messages": []},
                               headers={"Authorization": "Bearer sk-test"})
        assert response.status_code == status and "Incorrect model ID" in response.json()["error"]["message"]


@pytest.mark.parametrize("stream", [False, True])
def test_echo_headers_faults_quote_the_authorization_header(sim, http, stream):
    answer = chat(http, model="sim-echo-headers", stream=stream)
    assert answer.status_code == 200
    text = chat_text(events_of(answer)) if stream else answer.json()["choices"][0]["message"]["content"]
    assert "Authorization: Bearer " in text
    error = chat(http, model="sim-400-echo-headers", stream=stream)
    assert error.status_code == 400 and "Authorization: Bearer " in error.json()["error"]["message"]
