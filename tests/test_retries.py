"""Retries as the official SDK does them (PROTOCOL.md §4), against the simulator over a real socket.

The delay the client chose is read from the `on_retry` callback, never from the wall clock. Where the
chosen delay is long, the callback raises to stop before the client sleeps it.
"""

from __future__ import annotations

import pytest

from aihubmix_magic import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    Client,
    InternalServerError,
    InvalidRequestError,
    ModelNotFoundError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    last_response,
    settings,
)
from aihubmix_magic.core.exceptions import APIStatusError
from tests.conftest import TEST_KEY


class Stop(Exception):
    """Raised by a callback to end the request before the client sleeps."""


class Retries:
    """An on_retry callback that records (number, delay, reason), optionally stopping at the first."""

    def __init__(self, stop: bool = False) -> None:
        self.calls: list[tuple[int, float, str]] = []
        self.stop = stop

    def __call__(self, number: int, delay: float, reason: str) -> None:
        self.calls.append((number, delay, reason))
        if self.stop:
            raise Stop

    @property
    def delays(self) -> list[float]:
        return [delay for _, delay, _ in self.calls]


@pytest.fixture
def client(sim):
    with Client(TEST_KEY, sim.base_url) as c:  # the default: 2 retries
        yield c


def markdown_outputs(ip) -> list[str]:
    return [o["text/markdown"] for o in ip.display_pub.outputs() if "text/markdown" in o]


# -- which failures are retried ------------------------------------------------------------------------
@pytest.mark.parametrize("model", ["sim-flaky-429-1", "sim-flaky-500-2", "sim-flaky-408-1", "sim-flaky-409-1",
                                   "sim-should-retry-1"])
@pytest.mark.parametrize("stream", [False, True])
def test_retried_failures_end_in_the_answer(client, sim, model, stream):
    failures = int(model.rsplit("-", 1)[1])
    retries = Retries()
    for call in (client.chat, client.respond):
        sim.reset()
        retries.calls.clear()
        response = call("hi", model=model, stream=stream, on_retry=retries)
        assert response.text and response.status == "completed"
        assert [number for number, _, _ in retries.calls] == list(range(1, failures + 1))
        assert sim.request_count == failures + 1
        # the SDK's header: how many retries this request is
        counts = [r.headers.get("x-stainless-retry-count") for r in sim.requests]
        assert counts == [None, *[str(n) for n in range(1, failures + 1)]]


def test_the_retry_reason_names_the_status(client):
    retries = Retries()
    client.chat("hi", model="sim-flaky-429-1", on_retry=retries)
    assert retries.calls[0][2].startswith("429 ") and "Too many requests" in retries.calls[0][2]


@pytest.mark.parametrize(("model", "error"), [
    ("sim-401", AuthenticationError),
    ("sim-403", PermissionDeniedError),
    ("sim-404", ModelNotFoundError),
    ("sim-unknown-model", ModelNotFoundError),
    ("sim-500-no-retry", InternalServerError),  # x-should-retry: false wins over the 5xx rule
])
def test_never_retried(client, sim, model, error):
    retries = Retries()
    with pytest.raises(error):
        client.chat("hi", model=model, on_retry=retries)
    assert retries.calls == []
    # sim-404/unknown-model fetch /v1/models once for the suggestions; the POST is sent once
    assert sum(r.method == "POST" for r in sim.requests) == 1


def test_400_and_404_without_model_words_are_not_retried(client, sim):
    retries = Retries()
    with pytest.raises(InvalidRequestError, match="model"):  # no model at all: refused before sending
        client.chat("hi", model="", on_retry=retries)
    assert sim.request_count == 0
    with pytest.raises(BadRequestError, match="bad channel id"):
        client.chat("hi", model="sim-400", on_retry=retries)
    with Client(TEST_KEY, sim.base_url.replace("/v1", "/v0")) as wrong_path, pytest.raises(NotFoundError):
        wrong_path.chat("hi", model="gpt-4o-mini", on_retry=retries)
    assert retries.calls == [] and sim.request_count == 2


@pytest.mark.parametrize("endpoint", ["chat", "responses"])
def test_never_retried_once_a_streamed_answer_started(client, sim, endpoint):
    retries = Retries()
    call = client.chat if endpoint == "chat" else client.respond
    response = call("words=40", model="sim-drop-5", stream=True, on_retry=retries)
    with pytest.raises(APIConnectionError):
        response.text
    assert response.status == "failed" and response.text
    assert sim.request_count == 1 and retries.calls == []


def test_a_stall_mid_stream_is_not_retried(sim):
    retries = Retries()
    # 1 s: the stall must be the only slow part (under load, 0.3 s was sometimes too short for the headers)
    with Client(TEST_KEY, sim.base_url, timeout=1.0) as client:
        response = client.chat("hi", model="sim-stall-2", stream=True, on_retry=retries)
        with pytest.raises(APITimeoutError):
            response.text
    assert sim.request_count == 1 and retries.calls == []


def test_a_timeout_before_any_answer_is_retried(sim):
    retries = Retries()
    with Client(TEST_KEY, sim.base_url, timeout=0.2, max_retries=1) as client:
        with pytest.raises(APITimeoutError):
            client.chat("hi", model="sim-latency-1000", on_retry=retries)
    assert sim.request_count == 2 and [n for n, _, _ in retries.calls] == [1]
    assert retries.calls[0][2] == "timed out"


def test_connection_refused_is_retried_then_names_the_base_url():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    retries = Retries()
    with Client(TEST_KEY, url) as client, pytest.raises(APIConnectionError) as info:
        client.chat("hi", model="gpt-4o-mini", on_retry=retries)
    assert [(n, reason) for n, _, reason in retries.calls] == [(1, "cannot connect"), (2, "cannot connect")]
    assert url in str(info.value)


# -- how long to wait ----------------------------------------------------------------------------------
def test_backoff_without_a_server_delay_is_exponential_with_jitter(client, sim):
    retries = Retries()
    with pytest.raises(InternalServerError):
        client.chat("hi", model="sim-500", on_retry=retries)
    first, second = retries.delays
    assert 0.375 <= first <= 0.5 and 0.75 <= second <= 1.0
    assert sim.request_count == 3


@pytest.mark.parametrize(("model", "low", "high"), [
    ("sim-retry-after-ms-1500", 1.5, 1.5),    # retry-after-ms, milliseconds
    ("sim-retry-after-7", 7.0, 7.0),          # retry-after, seconds
    ("sim-retry-after-date-30", 28.0, 30.0),  # retry-after, an HTTP date (whole seconds)
    ("sim-retry-after-60", 60.0, 60.0),       # the limit is honoured
    ("sim-retry-after-61", 0.375, 0.5),       # beyond 60 s: ignored, backoff instead
    ("sim-retry-after-120", 0.375, 0.5),
    ("sim-retry-after-0", 0.375, 0.5),        # 0 is out of range too
])
def test_the_servers_delay_is_honoured_up_to_60_s(client, model, low, high):
    retries = Retries(stop=True)
    with pytest.raises(Stop):
        client.chat("hi", model=model, on_retry=retries)
    (delay,) = retries.delays
    assert low <= delay <= high


def test_sim_429_asks_for_20_ms(client, sim):
    retries = Retries()
    with pytest.raises(RateLimitError):
        client.chat("hi", model="sim-429", on_retry=retries)
    assert retries.delays == [0.02, 0.02] and sim.request_count == 3


# -- how many times ------------------------------------------------------------------------------------
@pytest.mark.parametrize("max_retries", [0, 1, 3])
def test_max_retries_is_the_number_of_retries(sim, max_retries):
    retries = Retries()
    with Client(TEST_KEY, sim.base_url, max_retries=max_retries) as client, pytest.raises(RateLimitError):
        client.chat("hi", model="sim-429", on_retry=retries)
    assert sim.request_count == max_retries + 1 and len(retries.calls) == max_retries


# -- in the cell ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("model", "count", "footer"), [
    ("sim-flaky-429-1", 1, "1 retry"), ("sim-flaky-500-2", 2, "2 retries")])
def test_the_cell_shows_retries_then_the_answer(ip, sim, model, count, footer):
    ip.run_cell_magic("aihubmix", f"-m {model}", "hello")
    r = last_response()
    assert r.status == "completed" and r.text
    notes = [m["data"]["text/markdown"] for m in ip.display_pub.messages
             if "data" in m and m["data"].get("text/markdown", "").startswith("*retrying in ")]
    assert len(notes) == count
    reason = "429" if "429" in model else "500"
    assert all(f"({reason} " in note for note in notes)
    # the notes were shown while waiting, then the cell holds only the answer and its footer
    outputs = ip.display_pub.outputs()
    assert markdown_outputs(ip)[0] == r.text and len(outputs) == 2
    assert outputs[-1]["text/plain"].endswith(footer)
    assert sim.request_count == count + 1


def test_settings_max_retries_reaches_the_client(ip, sim):
    settings.max_retries = 0
    with pytest.raises(InternalServerError):
        ip.run_cell_magic("aihubmix", "-m sim-flaky-500-1", "hello")
    assert sim.request_count == 1
    sim.reset()
    settings.max_retries = 1
    ip.run_cell_magic("aihubmix", "-m sim-flaky-500-1", "hello")
    assert sim.request_count == 2 and last_response().status == "completed"
    ip.run_line_magic("config", "AihubmixMagics.max_retries = 0")
    assert settings.max_retries == 0
    sim.reset()
    with pytest.raises(APIStatusError):
        ip.run_cell_magic("aihubmix", "-m sim-flaky-409-1", "hello")
    assert sim.request_count == 1
