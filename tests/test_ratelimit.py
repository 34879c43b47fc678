"""Rate limits: the pure policy (`_ratelimit.py`, no sleeping: time is an argument) and batches against the
simulator's token bucket over real sockets."""

from __future__ import annotations

import email.utils
import re

import pytest

from aihubmix_magic import RateLimitError, batch, settings
from aihubmix_magic.core import protocol as protocol
from aihubmix_magic.core.ratelimit import Limiter, RateHeaders, is_throttle, parse_duration, retry_after
from aihubmix_magic.simulator import Simulator

NOW = 1_700_000_000.0  # a wall clock time for HTTP dates and Unix-time resets


# -- reading the headers ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("headers", "seconds"), [
    ({"retry-after-ms": "250"}, 0.25),
    ({"retry-after": "3"}, 3.0),
    ({"retry-after": "1.5"}, 1.5),
    ({"retry-after": "600"}, 600.0),  # no 60 s cap in a batch
    ({"retry-after-ms": "bad", "retry-after": "2"}, 2.0),
    ({"retry-after-ms": "0", "retry-after": "2"}, 2.0),
    ({"retry-after": email.utils.formatdate(NOW + 30, usegmt=True)}, 30.0),
    ({"retry-after": email.utils.formatdate(NOW - 30, usegmt=True)}, None),
    ({"retry-after": "soon"}, None),
    ({"retry-after": "-1"}, None),
    ({}, None),
])
def test_retry_after(headers, seconds):
    assert retry_after(headers, NOW) == seconds


def test_a_single_cell_keeps_the_60_second_cap():
    failure = protocol.status_failure(429, {"retry-after": "600"}, b"{}", base_url="b", path="/p", model="m",
                                      redactor=protocol.Redactor(None))
    assert failure.retry_after is None


@pytest.mark.parametrize(("text", "seconds"), [
    ("1s", 1.0), ("6m0s", 360.0), ("1h2m3.5s", 3723.5), ("20ms", 0.02), ("0.5", 0.5), ("17", 17.0),
    (str(NOW + 12), 12.0), ("1m30", None), ("soon", None), ("", None), ("-3", None),
])
def test_reset_durations(text, seconds):
    assert parse_duration(text, NOW) == (pytest.approx(seconds) if seconds is not None else None)


def test_rate_headers():
    parsed = RateHeaders.parse({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1.5s",
                                "x-ratelimit-remaining-tokens": "9000", "x-ratelimit-reset-tokens": "6m0s"}, NOW)
    assert parsed == RateHeaders(0.0, 1.5, 9000.0, 360.0)
    assert RateHeaders.parse({"content-type": "application/json"}, NOW) is None
    assert RateHeaders.parse({"x-ratelimit-remaining-requests": "x"}, NOW) is None


@pytest.mark.parametrize(("status", "headers", "body", "throttle"), [
    (429, {}, b"{}", True),
    (529, {}, b'{"error":{"message":"Overloaded"}}', True),
    (503, {}, b'{"error":{"message":"upstream overloaded"}}', True),
    (503, {}, b'{"error":{"message":"Incorrect model ID"}}', False),  # an unknown model stays unknown
    (429, {"x-should-retry": "false"}, b"{}", False),
    (500, {}, b"{}", False),
    (502, {}, b"{}", False),
])
def test_what_slows_the_whole_batch(status, headers, body, throttle):
    failure = protocol.status_failure(status, headers, body, base_url="b", path="/p", model="m",
                                      redactor=protocol.Redactor(None))
    assert is_throttle(status, failure) is throttle


# -- the limiter ---------------------------------------------------------------------------------------
def test_a_free_limiter_lets_concurrency_requests_start():
    limiter = Limiter(3)
    tickets = [limiter.start(0.0) for _ in range(3) if limiter.delay(0.0) == 0]
    assert len(tickets) == 3 and limiter.delay(0.0) is None  # a fourth waits for one to end
    limiter.finish(0.1, tickets[0], "ok")
    assert limiter.delay(0.1) == 0.0


def test_a_throttle_pauses_everyone_halves_the_concurrency_once_and_probes():
    limiter = Limiter(16)
    tickets = [limiter.start(0.0) for _ in range(16)]
    limiter.finish(0.01, tickets[0], "throttled", retry_after=2.0)
    assert limiter.limit == 8 and limiter.probing and limiter.throttled == 1
    for ticket in tickets[1:6]:  # the same burst: the same episode, no second cut
        limiter.finish(0.02, ticket, "throttled", retry_after=2.0)
    assert limiter.limit == 8 and limiter.throttled == 6
    assert limiter.delay(1.0) == pytest.approx(1.02)  # the later ones extend the pause to their wish
    assert limiter.status(1.0) == "rate limited: resuming in 2 s"
    for ticket in tickets[6:]:
        limiter.finish(0.5, ticket, "ok")
    probe = limiter.start(2.1)
    assert limiter.delay(2.1) is None  # one request probes after a pause
    limiter.finish(2.2, probe, "ok")
    assert not limiter.probing and limiter.delay(2.2) == 0.0


def test_the_concurrency_grows_back_one_per_round_of_successes():
    limiter = Limiter(8)
    limiter.finish(0.0, limiter.start(0.0), "throttled", retry_after=0.0)
    assert limiter.limit == 4
    for _ in range(4):
        limiter.finish(1.0, limiter.start(1.0), "ok")
    assert limiter.limit == 5
    for _ in range(5 + 6 + 7 + 8):
        limiter.finish(2.0, limiter.start(2.0), "ok")
    assert limiter.limit == 8  # never above the batch's concurrency


def test_without_retry_after_the_pause_doubles_while_nothing_succeeds():
    limiter = Limiter(4)
    pauses = []
    now = 0.0
    for _ in range(8):
        limiter.finish(now, limiter.start(now), "throttled")
        pauses.append(limiter.paused_until - now)
        now = limiter.paused_until
    assert pauses == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    limiter.finish(now, limiter.start(now), "ok")
    limiter.finish(now, limiter.start(now), "throttled")
    assert limiter.paused_until - now == 0.5


def test_stalled_after_the_patience_without_progress():
    limiter = Limiter(2, patience=10.0, now=0.0)
    limiter.finish(1.0, limiter.start(1.0), "throttled", retry_after=60.0)
    assert not limiter.stalled(9.9) and limiter.stalled(10.0)
    assert limiter.delay(5.0) == pytest.approx(5.001)  # wakes up in time to give up, not after 60 s
    limiter.finish(9.0, limiter.start(1.0), "failed")  # an item finished: that is progress
    assert not limiter.stalled(12.0)


def test_pacing_to_requests_per_minute():
    limiter = Limiter(8, rpm=120)
    limiter.start(0.0)
    assert limiter.delay(0.0) == pytest.approx(0.5)
    assert limiter.delay(0.5) == 0.0
    limiter.start(0.5)
    assert limiter.delay(0.6) == pytest.approx(0.4)


def test_pacing_to_tokens_per_minute_corrects_the_estimate():
    limiter = Limiter(8, tpm=6000)  # 100 tokens a second
    assert limiter.estimate(50, 150) == 200 and limiter.estimate(50, None) == 50 + 256
    ticket = limiter.start(0.0, 200)
    assert limiter.delay(0.0, 200) == pytest.approx(2.0)
    limiter.finish(0.3, ticket, "ok", usage=(50, 50))  # used 100, not 200: a second back
    assert limiter.delay(0.3, 200) == pytest.approx(0.7)
    assert limiter.output_guess == 50


def test_x_ratelimit_headers_hold_requests_until_the_reset():
    limiter = Limiter(4)
    ticket = limiter.start(0.0)
    limiter.finish(0.1, ticket, "ok", headers=RateHeaders(remaining_requests=1, reset_requests=3.0))
    assert limiter.delay(0.1) == 0.0
    limiter.start(0.1)  # the last one left
    assert limiter.delay(0.2) == pytest.approx(2.9)
    assert limiter.status(0.2) == "rate limit reached: resuming in 3 s"
    assert limiter.delay(3.2) == 0.0  # reset: the count is the server's again
    tokens = Limiter(4)
    tokens.finish(0.0, tokens.start(0.0), "ok", headers=RateHeaders(remaining_tokens=100, reset_tokens=5.0))
    assert tokens.delay(1.0, 50) == 0.0 and tokens.delay(1.0, 500) == pytest.approx(4.0)


def test_a_precise_retry_after_teaches_the_servers_pace():
    limiter = Limiter(4)
    limiter.finish(0.01, limiter.start(0.0), "ok")
    limiter.finish(0.02, limiter.start(0.02), "throttled", retry_after=0.08)
    assert limiter.spacing == pytest.approx(0.1)  # from the last successful start to the next free slot
    assert limiter.delay(0.05) == pytest.approx(0.05)  # the refused request's slot is given back
    limiter.start(0.1)
    assert limiter.delay(0.1) is None or limiter.delay(0.1) == pytest.approx(0.1)
    whole = Limiter(4)
    whole.finish(0.0, whole.start(0.0), "throttled", retry_after=1.0)  # whole seconds: too coarse to learn from
    assert whole.spacing == 0.0


def test_unknown_outcomes_are_refused():
    limiter = Limiter(1)
    with pytest.raises(ValueError):
        limiter.finish(0.0, limiter.start(0.0), "maybe")
    with pytest.raises(ValueError):
        Limiter(0)


# -- batches against the simulator's token bucket ----------------------------------------------------------
@pytest.fixture
def limited():
    """A simulator of its own with a token bucket; the settings point at it."""
    servers: list[Simulator] = []

    def start(rate: float, **options: object) -> Simulator:
        server = Simulator(rate_limit=rate, **options).start()
        servers.append(server)
        settings.base_url = server.base_url
        return server

    yield start
    for server in servers:
        server.stop()


def test_the_simulators_bucket_answers_429_with_retry_after(limited):
    import httpx

    server = limited(1.0, rate_limit_headers=True)
    body = {"model": "sim-echo", "messages": [{"role": "user", "content": "hi"}]}
    headers = {"Authorization": "Bearer sk-test"}
    with httpx.Client() as http:
        first = http.post(server.base_url + "/chat/completions", json=body, headers=headers)
        second = http.post(server.base_url + "/chat/completions", json=body, headers=headers)
        models = http.get(server.base_url + "/models", headers=headers)  # only the generation endpoints count
    assert first.status_code == 200 and first.headers["x-ratelimit-remaining-requests"] == "0"
    assert second.status_code == 429 and models.status_code == 200
    assert 0 < int(second.headers["retry-after-ms"]) <= 1000 and second.headers["retry-after"] == "1"
    assert second.headers["x-ratelimit-reset-requests"].endswith("s")
    assert server.rate_limited == 1 and server.request_count == 3


def test_ten_a_second_200_prompts_at_concurrency_16_all_answered(limited):
    server = limited(10.0)
    results = batch([f"label item {n}" for n in range(200)], model="sim-echo", concurrency=16, progress=False)
    assert [r.status for r in results] == ["completed"] * 200
    assert results.summary.ok == 200 and results.summary.failed == 0
    assert results.summary.rate_limited == server.rate_limited > 0  # the summary counts every 429
    assert server.request_count == 200 + server.rate_limited  # every refused request was sent again, once


def test_one_a_second_12_prompts_all_answered(limited):
    server = limited(1.0)
    results = batch([f"prompt {n}" for n in range(12)], model="sim-echo", progress=False)
    assert [r.status for r in results] == ["completed"] * 12
    assert server.request_count == 12 + server.rate_limited


def test_x_ratelimit_headers_keep_the_429s_down(limited):
    server = limited(1.0, rate_limit_headers=True)
    results = batch([f"prompt {n}" for n in range(5)], model="sim-echo", concurrency=2, progress=False)
    assert results.summary.ok == 5
    assert server.rate_limited <= 2  # the first burst only: then the batch waits for the reset it is told


def test_rpm_paces_the_requests_below_the_servers_limit(limited):
    server = limited(1.0)  # one a second, no burst: three at once would get two 429s
    results = batch(["a", "b", "c"], model="sim-echo", concurrency=3, rpm=50, progress=False)
    assert results.summary.ok == 3
    assert server.rate_limited == 0 and server.request_count == 3  # 1.2 s apart: never over the limit


def test_the_progress_line_says_when_it_waits(limited, capsys):
    limited(0.5, rate_limit_burst=1)
    batch(["a", "b"], model="sim-echo", concurrency=2, progress="terminal")
    out = capsys.readouterr().out
    assert "rate limited: resuming in" in out and "rate-limited" in out
    assert re.search(r"· \d+ rate-limited \(429\)", out.splitlines()[-1])


@pytest.mark.parametrize("value", [0, -1, "fast", True, float("inf")])
def test_bad_pacing_sends_nothing(sim, value):
    from aihubmix_magic import BatchInputError

    with pytest.raises(BatchInputError, match="rpm"):
        batch(["a"], model="sim-echo", rpm=value, progress=False)
    assert sim.request_count == 0


def test_a_rate_limited_item_that_gives_up_is_a_rate_limit_error(sim):
    settings.rate_limit_patience = 0
    (result,) = batch(["a"], model="sim-retry-after-ms-5", progress=False)
    assert isinstance(result.error, RateLimitError) and sim.request_count == 1
