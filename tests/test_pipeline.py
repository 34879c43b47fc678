"""One request pipeline: the typed Request, the protocol core (no I/O), and the two drivers over it.

The parity table sends every fault model of the simulator through the sync driver (what a cell and
`--compare` use) and the async driver (what `batch()` uses), on both endpoints, with the same
`max_retries`, and asserts the same number of requests and the same outcome: an answer, or the same error
class. One deliberate difference (issue 11): in a batch an answer that asks to slow down (429, 503/529
overloaded) is not retried `max_retries` times but until the item succeeds or no item has finished for
`settings.rate_limit_patience` seconds, so for the faults that always answer 429 (`RATE_LIMITED`) only the
outcome is compared (the same RateLimitError): how many requests a batch sends depends on the patience.
"""

from __future__ import annotations

import dataclasses
import re

import httpx
import pytest

from aihubmix_magic import (
    APIConnectionError,
    APITimeoutError,
    BatchInputError,
    Client,
    InternalServerError,
    InvalidRequestError,
    ModelNotFoundError,
    RateLimitError,
    Request,
    batch,
    settings,
)
from aihubmix_magic.core import protocol as protocol
from aihubmix_magic.session import state as _session
from aihubmix_magic.simulator import FAULT_MODELS
from tests.conftest import TEST_KEY

OK = ("completed", "incomplete")


def fault_name(pattern: str) -> str:
    """`sim-flaky-429-N` -> `sim-flaky-429` (the simulator's default N)."""
    return re.sub(r"-(N|K|S|MS)$", "", pattern)


# sim-latency waits 100 ms (its default, 500 ms, would race the short read timeout the table uses)
FAULTS = sorted({fault_name(name) for name in FAULT_MODELS} - {"sim-latency"} | {"sim-latency-100"})


EXPECTED = {  # outcome and POSTs with one retry allowed
    "sim-echo": ("answer", 1),
    "sim-flaky-429": ("answer", 2),
    "sim-429": (RateLimitError.__name__, 2),
    "sim-500": (InternalServerError.__name__, 2),
    "sim-503": (ModelNotFoundError.__name__, 1),
    "sim-drop": (APIConnectionError.__name__, 2),
    "sim-stall": (APITimeoutError.__name__, 2),
}


# always 429: a cell gives up after max_retries, a batch after the patience (at least as many requests)
RATE_LIMITED = {"sim-429", "sim-retry-after", "sim-retry-after-ms", "sim-retry-after-date"}


def posts(sim) -> int:
    return sum(r.method == "POST" for r in sim.requests)


def outcome_of_sync(endpoint: str, model: str) -> str:
    client = _session.current().client()
    try:
        response = client.send(Request(model=model, prompt="Say hi in three words", endpoint=endpoint))
    except Exception as exc:  # noqa: BLE001 - the class is the outcome
        return type(exc).__name__
    return "answer" if response.status in OK else f"status {response.status}"


def outcome_of_batch(endpoint: str, model: str) -> str:
    (response,) = batch(["Say hi in three words"], model=model, endpoint=endpoint, progress=False, cache=False)
    if response.status in OK:
        return "answer"
    return type(response.error).__name__ if response.error is not None else f"status {response.status}"


@pytest.mark.parametrize("endpoint", ["chat", "responses"])
@pytest.mark.parametrize("model", FAULTS)
def test_both_drivers_send_as_often_and_end_alike(sim, endpoint, model):
    settings.max_retries = 1  # one retry shows the rule; the delays stay short
    settings.timeout = 0.5  # a stall ends quickly
    settings.rate_limit_patience = 0.2  # a batch gives up on a server that always says 429 after 0.2 s
    sync = outcome_of_sync(endpoint, model)
    sync_posts = posts(sim)
    sim.reset()  # the flaky counters start again for the other driver
    async_ = outcome_of_batch(endpoint, model)
    async_posts = posts(sim)
    if model in RATE_LIMITED:
        assert async_ == sync == RateLimitError.__name__, f"{model} on {endpoint}"
        # the server's retry-after (1-2 s for some) is longer than this patience: a batch may stop waiting
        # before its second request; with the default patience (10 minutes) it waits as long as it is told
        assert async_posts >= 1 and sync_posts == 2, f"{model} on {endpoint}"
    else:
        assert (async_, async_posts) == (sync, sync_posts), f"{model} on {endpoint}"
    if model in EXPECTED:  # the table is not trivially equal: answers and several error classes
        assert (sync, sync_posts) == EXPECTED[model]


def test_an_unknown_model_is_asked_once_by_a_cell_and_by_a_batch(sim):
    """Issue 10: a 503 "Incorrect model ID" was retried by batch() three times, not by a cell."""
    with pytest.raises(ModelNotFoundError):
        _session.current().client().chat("hi", model="sim-503")
    assert posts(sim) == 1
    sim.reset()
    results = batch(["a", "b"], model="sim-503", progress=False)
    assert [type(r.error) for r in results] == [ModelNotFoundError] * 2 and posts(sim) == 2


# -- the typed request ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("fields", "name"), [
    ({"model": ""}, "model"),
    ({"model": "  "}, "model"),
    ({"endpoint": "completions"}, "endpoint"),
    ({"prompt": "   "}, "prompt"),
    ({"prompt": ()}, "prompt"),
    ({"temperature": 2.5}, "temperature"),
    ({"temperature": float("nan")}, "temperature"),
    ({"temperature": "hot"}, "temperature"),
    ({"top_p": -0.1}, "top_p"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"max_tokens": 2.5}, "max_tokens"),
    ({"max_tokens": True}, "max_tokens"),
    ({"reasoning_effort": "HIGH"}, "reasoning_effort"),
    ({"format": "yaml"}, "format"),
    ({"schema": {"type": "object"}}, "schema"),
    ({"format": "json", "schema": {"type": "array"}}, "schema"),
    ({"store": True}, "store"),
    ({"images": ("https://x/y.png",), "prompt": ({"role": "user", "content": "hi"},)}, "images"),
    ({"stream": "yes"}, "stream"),
])
def test_a_bad_request_is_refused_before_anything_is_sent(sim, fields, name):
    values = {"model": "gpt-4o-mini", "prompt": "hi", **fields}
    with pytest.raises(InvalidRequestError) as info:
        Request(**values)
    assert info.value.field == name and "\n" not in str(info.value)
    assert sim.request_count == 0


def test_client_and_batch_validate_through_the_request(sim):
    with Client(TEST_KEY, sim.base_url) as client:
        with pytest.raises(InvalidRequestError, match="temperature"):
            client.chat("hi", model="gpt-4o-mini", temperature=3)
        with pytest.raises(InvalidRequestError, match="max_tokens"):
            client.respond("hi", model="gpt-4o-mini", max_output_tokens=-1)
    with pytest.raises(BatchInputError, match="top_p"):
        batch(["a", "b"], model="gpt-4o-mini", top_p=7, progress=False)
    assert sim.request_count == 0


def test_a_request_is_frozen_and_replace_validates_again():
    request = Request(model="gpt-4o-mini", prompt="hi")
    with pytest.raises(AttributeError):
        request.model = "other"  # type: ignore[misc]
    with pytest.raises(InvalidRequestError):
        request.replace(temperature=9)
    assert request.replace(model="gpt-4o").model == "gpt-4o" and request.model == "gpt-4o-mini"


def test_with_prompt_copies_every_field_and_checks_the_prompt():
    request = Request(model="gpt-4o-mini", prompt="hi", system="Be brief.", temperature=0.2, max_tokens=50,
                      endpoint="responses", extra={"seed": 7}, images=("https://example.invalid/a.png",))
    copy = request.with_prompt("another")
    assert copy.prompt == "another" and request.prompt == "hi"
    fields = [f.name for f in dataclasses.fields(Request) if f.name != "prompt"]
    assert all(getattr(copy, name) == getattr(request, name) for name in fields)
    assert protocol.request_body(copy) == protocol.request_body(request.replace(prompt="another"))
    with pytest.raises(InvalidRequestError, match="empty"):
        request.with_prompt("  ")
    with pytest.raises(AttributeError):
        copy.prompt = "x"  # type: ignore[misc]


def test_from_settings_takes_defaults_and_options_win():
    settings.model, settings.temperature, settings.system = "deepseek-chat", 0.3, "Be brief."
    request = Request.from_settings(settings, prompt="hi", temperature=0.9)
    assert (request.model, request.temperature, request.system) == ("deepseek-chat", 0.9, "Be brief.")


def test_every_response_keeps_its_request_and_the_body_sent(sim):
    with Client(TEST_KEY, sim.base_url) as client:
        for stream in (False, True):
            response = client.chat("hi", model="gpt-4o-mini", temperature=0.5, stream=stream)
            response.text
            assert isinstance(response.spec, Request) and response.spec.temperature == 0.5
            assert response.request == sim.requests[-1].body  # `request` stays the JSON body sent
            assert TEST_KEY not in repr(response.spec) and TEST_KEY not in str({f.name: getattr(response.spec, f.name) for f in dataclasses.fields(response.spec)})


# -- the protocol core, without a network ------------------------------------------------------------
def test_bodies_of_both_endpoints():
    request = Request(model="m", prompt="hi", system="Be brief.", temperature=0.2, max_tokens=50,
                      reasoning_effort="low", format="json", stream=True, images=("https://x/a.png",))
    assert protocol.request_body(request) == {
        "model": "m",
        "messages": [
            {"role": "system", "content": "Be brief.\n\nAnswer with a single JSON object only."},
            {"role": "user", "content": [{"type": "text", "text": "hi"},
                                         {"type": "image_url", "image_url": {"url": "https://x/a.png"}}]},
        ],
        "temperature": 0.2, "max_tokens": 50, "reasoning_effort": "low",
        "response_format": {"type": "json_object"}, "stream": True, "stream_options": {"include_usage": True},
    }
    responses = request.replace(endpoint="responses", stream=False, images=(), store=True,
                                previous_response_id="resp_1")
    assert protocol.request_body(responses) == {
        "model": "m", "input": [{"role": "user", "content": "hi"}],
        "instructions": "Be brief.\n\nAnswer with a single JSON object only.", "temperature": 0.2,
        "max_output_tokens": 50, "reasoning": {"effort": "low"}, "store": True, "previous_response_id": "resp_1",
        "text": {"format": {"type": "json_object"}},
    }
    # the Empty Tools Fix: tools: [] goes, and tool_choice with it
    assert "tools" not in protocol.request_body(Request(model="m", prompt="hi", extra={"tools": [],
                                                                                     "tool_choice": "auto"}))


@pytest.mark.parametrize(("status", "headers", "body", "error", "retry"), [
    (429, {}, b'{"error":{"message":"slow down"}}', RateLimitError, True),
    (503, {}, b'{"error":{"message":"Incorrect model ID (tid: 1)"}}', ModelNotFoundError, False),
    (503, {"x-should-retry": "true"}, b'{"error":{"message":"Incorrect model ID"}}', ModelNotFoundError, True),
    (500, {"x-should-retry": "false"}, b"{}", InternalServerError, False),
    (400, {"x-should-retry": "true"}, b'{"error":{"message":"busy"}}', Exception, True),
    (401, {}, b"", Exception, False),
    (502, {}, b"<html>bad gateway</html>", InternalServerError, True),
])
def test_status_failures_and_the_retry_rule(status, headers, body, error, retry):
    failure = protocol.status_failure(status, headers, body, base_url="https://h/v1", path="/v1/chat/completions",
                                      model="m", redactor=protocol.Redactor(TEST_KEY))
    assert isinstance(failure.error, error) and failure.retryable is retry
    delay = protocol.retry_delay(failure, 0, 2)
    assert (delay is not None) is retry
    assert protocol.retry_delay(failure, 2, 2) is None  # the retries are used up


def test_retry_after_is_honoured_within_60_seconds():
    def delay(headers):
        failure = protocol.status_failure(429, headers, b"{}", base_url="b", path="/p", model="m",
                                          redactor=protocol.Redactor(None))
        return protocol.retry_delay(failure, 0, 2)

    assert delay({"retry-after-ms": "250"}) == 0.25
    assert delay({"retry-after": "3"}) == 3.0
    assert 0.375 <= delay({"retry-after": "600"}) <= 0.5  # out of range: backoff instead


def test_transport_failures_by_phase():
    redactor = protocol.Redactor(TEST_KEY)
    timeout, broken = httpx.ReadTimeout("slow"), httpx.RemoteProtocolError(f"peer closed {TEST_KEY}")
    send = protocol.transport_failure(broken, timeout=False, phase="send", base_url="b", redactor=redactor)
    assert isinstance(send.error, APIConnectionError) and send.retryable and TEST_KEY not in str(send.error)
    assert isinstance(protocol.transport_failure(timeout, timeout=True, phase="send", base_url="b",
                                                 redactor=redactor).error, APITimeoutError)
    for phase in ("read", "stream", "models"):
        failure = protocol.transport_failure(timeout, timeout=True, phase=phase, base_url="b", redactor=redactor,
                                             read_timeout=5)
        assert isinstance(failure.error, APITimeoutError) and not failure.retryable


def test_the_key_is_masked_in_whatever_is_read_back():
    redactor = protocol.Redactor(TEST_KEY)
    assert TEST_KEY.encode() not in redactor.redact(f"echo {TEST_KEY}".encode())
    assert redactor.scrub(f"a\n{TEST_KEY}") == f"a {protocol.mask_key(TEST_KEY)}"
