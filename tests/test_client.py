"""The Client against the simulator over a real socket, cross-checked with the official openai SDK."""

from __future__ import annotations

import pytest

from aihubmix_magic import (
    APIConnectionError,
    APIResponseError,
    AuthenticationError,
    Client,
    InternalServerError,
    MissingKeyError,
    ModelNotFoundError,
    PermissionDeniedError,
    RateLimitError,
)
from tests.conftest import TEST_KEY

PROMPT = "Explain sampling with a heading, bold text, a list and code"


@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-sonnet-4-5-think", "sim-crlf", "sim-comments",
                                   "sim-multiline", "sim-no-done", "sim-usage-in-finish", "sim-chunked-utf8",
                                   "sim-garbage", "sim-unknown-events"])
def test_chat_stream_matches_the_sdk(client, sdk, model):
    ours = client.chat(PROMPT, model=model, stream=True)
    deltas = list(ours)
    text, usage, finish = "", None, None
    for chunk in sdk.chat.completions.create(model=model, messages=[{"role": "user", "content": PROMPT}],
                                             stream=True, stream_options={"include_usage": True}):
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
    assert "".join(deltas) == ours.text == text
    assert ours.finish_reason == finish == "stop"
    assert ours.status == "completed"
    if usage is not None:
        assert (ours.usage.input_tokens, ours.usage.output_tokens) == (usage.prompt_tokens, usage.completion_tokens)


@pytest.mark.parametrize("model", ["gpt-4o-mini", "o4-mini", "sim-crlf", "sim-no-event-lines",
                                   "sim-with-done", "sim-empty-output", "sim-unknown-events", "sim-chunked-utf8"])
def test_responses_stream_matches_the_sdk(client, sdk, model):
    ours = client.respond(PROMPT, model=model, stream=True)
    deltas = list(ours)
    text, final = "", None
    for event in sdk.responses.create(model=model, input=PROMPT, stream=True):
        if event.type == "response.output_text.delta":
            text += event.delta
        elif event.type == "response.completed":
            final = event.response
    assert "".join(deltas) == ours.text == text
    assert ours.status == "completed" and ours.finish_reason == "stop"
    assert (ours.usage.input_tokens, ours.usage.output_tokens) == (final.usage.input_tokens, final.usage.output_tokens)
    assert ours.raw["output"], "the final output is rebuilt when the server sends it empty"


def test_non_streamed_equals_streamed_and_the_sdk(client, sdk):
    for endpoint in ("chat", "responses"):
        call = client.chat if endpoint == "chat" else client.respond
        whole, streamed = call(PROMPT, model="gpt-4o-mini"), call(PROMPT, model="gpt-4o-mini", stream=True)
        assert whole.text == streamed.text and whole.text
        assert whole.usage == streamed.usage
        assert whole.finish_reason == streamed.finish_reason == "stop"
        assert streamed.raw["usage"] and whole.raw["usage"]
    sdk_text = sdk.chat.completions.create(model="gpt-4o-mini",
                                           messages=[{"role": "user", "content": PROMPT}]).choices[0].message.content
    assert client.chat(PROMPT, model="gpt-4o-mini").text == sdk_text
    assert client.respond(PROMPT, model="gpt-4o-mini").text == sdk.responses.create(model="gpt-4o-mini",
                                                                                     input=PROMPT).output_text


def test_streamed_raw_looks_like_the_non_streamed_body(client):
    response = client.chat("hi", model="gpt-4o-mini", stream=True)
    response.text  # reads the stream to the end
    raw = response.raw
    assert raw["object"] == "chat.completion"
    assert raw["choices"][0]["message"]["content"] == response.text
    assert raw["choices"][0]["finish_reason"] == "stop"


def test_reasoning_is_kept_apart_from_the_text(client):
    for call in (client.chat, client.respond):
        response = call("hi", model="claude-sonnet-4-5-think", stream=True)
        kinds = {kind for kind, _ in response.iter_deltas()}
        assert kinds == {"reasoning", "text"}
        assert response.reasoning and response.reasoning not in response.text
        assert response.usage.reasoning_tokens > 0


def test_tool_calls_both_endpoints(client):
    for call in (client.chat, client.respond):
        for stream in (False, True):
            response = call("weather?", model="sim-tools", stream=stream)
            response.text
            assert [(c.name, c.parsed_arguments()) for c in response.tool_calls] == [("get_weather", {"city": "Paris"})]
            assert response.finish_reason == "tool_calls"


@pytest.mark.parametrize("endpoint", ["chat", "responses"])
def test_max_tokens_gives_an_incomplete_answer(client, endpoint):
    call = client.chat if endpoint == "chat" else client.respond
    limit = {"max_tokens": 3} if endpoint == "chat" else {"max_output_tokens": 3}
    for stream in (False, True):
        response = call("words=50", model="gpt-4o-mini", stream=stream, **limit)
        response.text
        assert response.status == "incomplete" and response.finish_reason == "length"
        assert response.usage.output_tokens == 3


def test_request_is_recorded_without_the_key(client, sim):
    response = client.chat("hi", model="gpt-4o-mini", stream=True, temperature=0.5, top_p=0.9, max_tokens=7,
                           system="Be brief.")
    response.text
    body = sim.requests[-1].body
    assert body == response.request
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert (body["temperature"], body["top_p"], body["max_tokens"]) == (0.5, 0.9, 7)
    assert body["stream_options"] == {"include_usage": True}
    assert TEST_KEY not in repr(response) + str(response.request) + str(response.raw) + repr(client)
    assert sim.requests[-1].headers["authorization"] == f"Bearer {TEST_KEY}"


def test_responses_request_shape(client, sim):
    client.respond("hi", model="gpt-4o-mini", instructions="Be brief.", max_output_tokens=9,
                   reasoning_effort="low").text
    body = sim.requests[-1].body
    assert body["instructions"] == "Be brief."
    assert body["max_output_tokens"] == 9
    assert body["reasoning"] == {"effort": "low"}
    assert body["store"] is False


def test_connection_is_reused(client, sim):
    for _ in range(5):
        client.chat("hi", model="gpt-4o-mini", stream=True).text
        client.respond("hi", model="gpt-4o-mini").text
    assert sim.connections_opened == 1


def test_models(client):
    ids = client.model_ids()
    assert "gpt-4o-mini" in ids and ids == sorted(ids)


@pytest.mark.parametrize(("model", "error", "words"), [
    ("sim-401", AuthenticationError, "%aihubmix key"),
    ("sim-403", PermissionDeniedError, "quota"),
    ("sim-429", RateLimitError, "429"),
    ("sim-500", InternalServerError, "500"),
    ("sim-200-error", APIResponseError, "get_adaptor_failed"),
    ("sim-null-choices", APIResponseError, "no choices"),
    ("sim-html", InternalServerError, "502 Bad Gateway"),
])
def test_errors_are_one_clear_line(client, model, error, words):
    with pytest.raises(error) as info:
        client.chat("hi", model=model)
    message = str(info.value)
    assert words in message and "\n" not in message and TEST_KEY not in message
    assert info.value.response.status == "failed"


def test_unknown_model_suggests_close_ids(client):
    for model in ("gpt-4o-mnii", "sim-unknown-model"):
        with pytest.raises(ModelNotFoundError) as info:
            client.chat("hi", model=model)
    with pytest.raises(ModelNotFoundError) as info:
        client.chat("hi", model="claude-sonet-4-5")
    assert info.value.suggestions[0] == "claude-sonnet-4-5"
    assert "Did you mean: claude-sonnet-4-5" in str(info.value)


def test_missing_key_sends_nothing(sim):
    with Client("", sim.base_url) as client, pytest.raises(MissingKeyError, match="%aihubmix key"):
        client.chat("hi", model="gpt-4o-mini")
    assert sim.request_count == 0


def test_connection_refused_names_the_base_url():
    with socket_closed_port() as url, Client(TEST_KEY, url, max_retries=0) as client:
        with pytest.raises(APIConnectionError, match=url.replace(".", r"\.")):
            client.chat("hi", model="gpt-4o-mini")


def test_mid_stream_drop_keeps_the_partial_text(client):
    for call in (client.chat, client.respond):
        response = call("words=40", model="sim-drop-5", stream=True)
        received = []
        with pytest.raises(APIConnectionError):
            for delta in response:
                received.append(delta)
        assert response.status == "failed" and isinstance(response.error, APIConnectionError)
        assert response.text == "".join(received) and len(received) == 5


def test_a_2xx_json_body_to_a_stream_request_is_read_as_an_answer_or_error(client):
    with pytest.raises(APIResponseError, match="get_adaptor_failed"):
        client.chat("hi", model="sim-200-error", stream=True)


class socket_closed_port:
    """A loopback URL on which nothing listens."""

    def __enter__(self) -> str:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        return f"http://127.0.0.1:{port}/v1"

    def __exit__(self, *exc):
        return False


def test_timeout_is_configurable(sim):
    with Client(TEST_KEY, sim.base_url, timeout=0.3, max_retries=0) as client:
        assert client.timeout.read == 0.3
        response = client.chat("hi", model="sim-stall-2", stream=True)
        with pytest.raises(APIConnectionError, match="stalled"):
            response.text
        assert response.status == "failed" and response.text
