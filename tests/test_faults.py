"""What the user sees when things go wrong: every fault of the issue's table, through `%%aihubmix` in a
real shell, against the simulator (or a closed port / unresolvable host / plain-HTTP port) over a real
socket. Each row checks the one-line error, what stays in the cell, `last_response()` and the footer."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import tracemalloc

import pytest

from aihubmix_magic import (
    APIConnectionError,
    APIResponseError,
    APITimeoutError,
    AuthenticationError,
    Client,
    InternalServerError,
    ModelNotFoundError,
    PermissionDeniedError,
    history,
    last_response,
    settings,
)
from aihubmix_magic.simulator import Simulator
from tests.conftest import TEST_KEY

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def markdown_outputs(ip) -> list[str]:
    return [o["text/markdown"] for o in ip.display_pub.outputs() if "text/markdown" in o]


def run(ip, capsys, line: str, cell: str = "words=30") -> str:
    """Run a %%aihubmix cell as a user does (errors go through the shell's handler); return what it printed."""
    capsys.readouterr()
    ip.run_cell(f"%%aihubmix {line}\n{cell}")
    captured = capsys.readouterr()
    return ANSI.sub("", captured.out + captured.err)


def error_lines(shown: str) -> list[str]:
    return [line for line in shown.splitlines() if re.match(r"^\w+Error: ", line)]


def assert_one_line(shown: str, error: type, *words: str) -> str:
    """Exactly one error line, of this type, with these words; no traceback and no key."""
    lines = error_lines(shown)
    assert len(lines) == 1, shown
    assert lines[0].startswith(f"{error.__name__}: ")
    assert "Traceback" not in shown and "File " not in shown and TEST_KEY not in shown
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/v1"


# -- the request never got an answer ----------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["refused", "dns", "tls"])
def test_unreachable_server_is_one_line_naming_the_base_url(ip, sim, capsys, kind):
    url = {
        "refused": closed_port_url(),
        "dns": "https://aihubmix-test.invalid/v1",  # RFC 6761: never resolves, no traffic
        "tls": f"https://127.0.0.1:{sim.port}/v1",  # TLS to a plain-HTTP port: the handshake fails
    }[kind]
    settings.base_url = url
    settings.max_retries = 0
    shown = run(ip, capsys, "-m gpt-4o-mini")
    assert_one_line(shown, APIConnectionError, url)
    r = last_response()
    assert r.status == "failed" and isinstance(r.error, APIConnectionError) and r.text == ""
    if kind == "tls":
        assert sim.request_count == 0  # the plain-HTTP server never saw a request it could read


def test_unreachable_server_is_retried_with_visible_notes(ip, capsys):
    settings.base_url = url = closed_port_url()
    settings.max_retries = 1
    shown = run(ip, capsys, "-m gpt-4o-mini")
    assert_one_line(shown, APIConnectionError, url)
    notes = [m["data"]["text/markdown"] for m in ip.display_pub.messages
             if "data" in m and m["data"].get("text/markdown", "").startswith("*retrying in ")]
    assert notes == [notes[0]] and notes[0].endswith("(cannot connect)*")


# -- HTTP errors -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("model", "error", "words"), [
    ("sim-401", AuthenticationError, ["401 Unauthorized", "%aihubmix key", "Invalid token"]),
    ("sim-403", PermissionDeniedError, ["403 Forbidden", "quota", "insufficient_user_quota"]),
    ("sim-500-no-retry", InternalServerError, ["HTTP 500", "upstream error"]),
    ("sim-html", InternalServerError, ["HTTP 502", "502 Bad Gateway", "nginx"]),
])
@pytest.mark.parametrize("endpoint", ["chat", "responses"])
def test_http_errors_are_one_line(ip, sim, capsys, model, error, words, endpoint):
    shown = run(ip, capsys, f"-m {model} -e {endpoint}")
    assert_one_line(shown, error, *words)
    r = last_response()
    assert r.status == "failed" and isinstance(r.error, error)
    retried = model == "sim-html"  # a 502 is retried (twice by default), the others never
    assert sum(req.method == "POST" for req in sim.requests) == (3 if retried else 1)
    notes = [m["data"]["text/markdown"] for m in ip.display_pub.messages
             if "data" in m and m["data"].get("text/markdown", "").startswith("*retrying in ")]
    assert len(notes) == (2 if retried else 0)
    assert all(note.endswith("(502 Bad Gateway)*") for note in notes), notes  # no HTML tags in the note
    assert markdown_outputs(ip) == []  # and the notes went away with the call  # nothing half-drawn in the cell


@pytest.mark.parametrize("status", [400, 404, 503])
@pytest.mark.parametrize("endpoint", ["chat", "responses"])
def test_unknown_model_lists_close_ids(ip, capsys, status, endpoint):
    with Simulator(unknown_model_status=status) as server:
        settings.base_url = server.base_url
        shown = run(ip, capsys, f"-m claude-sonet-4-5 -e {endpoint}")
        assert server.request_count == 2  # the POST once (never retried, even the 503), then /v1/models
    line = assert_one_line(shown, ModelNotFoundError, f"HTTP {status}", "Did you mean: claude-sonnet-4-5",
                           "%aihubmix models")
    assert "Incorrect model ID" in line
    assert last_response().error.suggestions[0] == "claude-sonnet-4-5"


# -- a 200 that is not an answer ---------------------------------------------------------------------------
@pytest.mark.parametrize(("model", "stream", "words"), [
    ("sim-200-error", True, ["The server returned an error", "get_adaptor_failed"]),
    ("sim-200-error", False, ["The server returned an error", "get_adaptor_failed"]),
    ("sim-null-choices", True, ["has no"]),
    ("sim-null-choices", False, ["has no"]),
    ("sim-garbage", False, ["not JSON", "text/plain", "this is not json <<<"]),
    ("sim-bad-json", False, ["not JSON", '{"id": "chatcmpl-sim", "choices": [{']),
    ("sim-html-200", True, ["HTML page", "proxy", "<!DOCTYPE html><html><head><title>Sign in to continue"]),
    ("sim-html-200", False, ["HTML page", "proxy"]),
])
@pytest.mark.parametrize("endpoint", ["chat", "responses"])
def test_a_200_that_is_not_an_answer(ip, sim, capsys, model, stream, words, endpoint):
    shown = run(ip, capsys, f"-m {model} -e {endpoint}" + ("" if stream else " --no-stream"))
    line = assert_one_line(shown, APIResponseError, *words)
    if model == "sim-null-choices":
        assert ("choices" if endpoint == "chat" else "output") in line
    r = last_response()
    assert r.status == "failed" and isinstance(r.error, APIResponseError)
    assert sim.request_count == 1


def test_an_html_page_is_quoted_to_200_characters(ip, capsys):
    line = assert_one_line(run(ip, capsys, "-m sim-html-200"), APIResponseError)
    quoted = line.split("in the way?): ", 1)[1]
    assert quoted.endswith("…") and len(quoted) == 201
    assert quoted.startswith("<!DOCTYPE html>")


# -- the stream breaks: what arrived stays --------------------------------------------------------------
MID_STREAM = [
    # (model, endpoint, error, words in the error line, status, words in the footer)
    ("sim-drop-5", "chat", APIConnectionError, ["broke mid-stream"], "failed", "failed: APIConnectionError"),
    ("sim-drop-5", "responses", APIConnectionError, ["broke mid-stream"], "failed", "failed: APIConnectionError"),
    ("sim-stall-2", "chat", APITimeoutError, ["stalled", "read timeout"], "failed", "failed: APITimeoutError"),
    ("sim-stall-2", "responses", APITimeoutError, ["stalled"], "failed", "failed: APITimeoutError"),
    ("sim-bad-json", "chat", APIResponseError, ["not JSON", '{"choices": ['], "failed", "failed: APIResponseError"),
    ("sim-bad-json", "responses", APIResponseError, ["not JSON"], "failed", "failed: APIResponseError"),
    ("sim-error-event", "chat", APIResponseError, ["error mid-stream", "upstream stream error"], "failed",
     "failed: APIResponseError"),
    ("sim-error-event", "responses", APIResponseError, ["error mid-stream", "server_error"], "failed",
     "failed: APIResponseError"),
    ("sim-error-event-flat", "responses", APIResponseError, ["error mid-stream", "server_error"], "failed",
     "failed: APIResponseError"),
    ("sim-failed", "responses", APIResponseError, ["The response failed", "The model failed"], "failed",
     "failed: APIResponseError"),
    ("sim-failed", "chat", APIResponseError, ["error mid-stream"], "failed", "failed: APIResponseError"),
    ("sim-incomplete", "chat", None, [], "incomplete", "stopped early: length"),
    ("sim-incomplete", "responses", None, [], "incomplete", "stopped early: length"),
]


@pytest.mark.parametrize(("model", "endpoint", "error", "words", "status", "footer_words"), MID_STREAM)
def test_mid_stream_faults_keep_the_partial_answer(ip, sim, capsys, model, endpoint, error, words, status,
                                                   footer_words):
    settings.timeout = 1.0  # the stall outlasts it
    shown = run(ip, capsys, f"-m {model} -e {endpoint}")
    r = last_response()
    assert r.status == status
    if error is None:
        assert error_lines(shown) == [] and r.error is None and r.finish_reason == "length"
    else:
        assert_one_line(shown, error, *words)
        assert isinstance(r.error, error)
        assert str(r.error) in shown
    # what arrived before the fault is in last_response() and drawn once in the cell, footer last
    assert r.text.startswith("*Simulated answer")
    assert markdown_outputs(ip)[0] == r.text
    footer = ip.display_pub.outputs()[-1]["text/plain"]
    assert footer.startswith(f"{model} · {endpoint}") and footer_words in footer
    if status == "failed":
        assert f"({len(r.text):,} characters kept)" in footer
    assert history()[-1] is r
    assert sim.request_count == 1  # never retried once the answer started


@pytest.mark.parametrize("endpoint", ["chat", "responses"])
def test_a_drop_keeps_exactly_the_tokens_sent(ip, capsys, endpoint):
    run(ip, capsys, f"-m sim-drop-7 -e {endpoint}", "words=100")
    assert len(re.findall(r"\S+\s*|\s+", last_response().text)) == 7


@pytest.mark.parametrize("endpoint", ["chat", "responses"])
@pytest.mark.parametrize("model", ["sim-garbage", "sim-unknown-events", "sim-comments"])
def test_junk_lines_unknown_events_and_fields_are_ignored(ip, capsys, model, endpoint):
    shown = run(ip, capsys, f"-m {model} -e {endpoint}", "hello there")
    assert error_lines(shown) == []
    r = last_response()
    assert r.status == "completed" and r.error is None and r.finish_reason == "stop"
    assert r.text.startswith(f"*Simulated answer from {model}.*") and markdown_outputs(ip)[0] == r.text
    # every token the server counted arrived, none was lost to (or made of) the junk around it
    assert r.usage.output_tokens == len(re.findall(r"\S+\s*|\s+", r.text))
    if model != "sim-garbage":  # whose non-streamed answer is junk on purpose
        with Client(TEST_KEY, settings.base_url) as client:
            call = client.chat if endpoint == "chat" else client.respond
            assert call("hello there", model=model).text == r.text


# -- size: a 2 MB answer, a 1 MB cell -------------------------------------------------------------------
# The simulator runs in its own process here, so tracemalloc sees only this process: the client, the
# accumulator, the live view, the shell and the recorded display messages.
@pytest.fixture(scope="module")
def remote_sim():
    process = subprocess.Popen([sys.executable, "-m", "aihubmix_magic.simulator"], stdout=subprocess.PIPE,
                               text=True)
    try:
        line = process.stdout.readline()
        yield re.search(r"http://\S+/v1", line).group(0)
    finally:
        process.terminate()
        process.wait(10)
        process.stdout.close()


def test_a_2_mb_answer_streams_with_memory_linear_in_its_size(ip, remote_sim):
    settings.base_url = remote_sim
    tracemalloc.start()
    try:
        ip.run_cell_magic("aihubmix", "-m gpt-4o-mini", "words=310000")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    r = last_response()
    size = len(r.text)
    assert r.status == "completed" and size > 2_000_000 and r.usage.output_tokens > 300_000
    assert markdown_outputs(ip)[0] == r.text
    print(f"2 MB answer: peak {peak / size:.1f} x the answer's size")
    assert peak < 8 * size, f"peak {peak:,} bytes for a {size:,}-character answer"


def test_a_1_mb_cell_is_sent_whole_with_memory_linear_in_its_size(ip, remote_sim):
    settings.base_url = remote_sim
    cell = " ".join(f"word{i % 1000}" for i in range(128_000)) + "\nSay hello."  # about 1 MB, no braces
    assert len(cell) > 1_000_000
    tracemalloc.start()
    try:
        ip.run_cell_magic("aihubmix", "-m gpt-4o-mini", cell)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    r = last_response()
    assert r.status == "completed" and r.text
    assert r.request["messages"][-1]["content"] == cell
    assert r.usage.input_tokens == 128_002  # the server read every word of it
    print(f"1 MB cell: peak {peak / len(cell):.1f} x the cell's size")
    assert peak < 8 * len(cell), f"peak {peak:,} bytes for a {len(cell):,}-character cell"


@pytest.mark.parametrize("stream", [True, False])
def test_a_failed_responses_answer_is_an_error_streamed_or_not(ip, sim, capsys, stream):
    shown = run(ip, capsys, "-m sim-failed -e responses" + ("" if stream else " --no-stream"))
    assert_one_line(shown, APIResponseError, "The response failed", "The model failed (server_error)")
    r = last_response()
    assert r.status == "failed" and isinstance(r.error, APIResponseError) and r.raw["status"] == "failed"
    with Client(TEST_KEY, sim.base_url) as client, pytest.raises(APIResponseError) as info:
        client.respond("hi", model="sim-failed", stream=stream).text
    assert info.value.response.status == "failed"


def test_the_model_list_unreachable_is_one_line(ip, capsys):
    settings.base_url = url = closed_port_url()
    settings.max_retries = 0
    capsys.readouterr()
    ip.run_cell("%aihubmix models")
    assert_one_line(ANSI.sub("", "".join(capsys.readouterr())), APIConnectionError, url)
