"""A hostile server (`tests/hostile.py`, a raw socket on loopback) against both drivers, through the public
API: `batch()` (the lanes, h11) and the sync `Client` (httpx). Every malformed answer is an error, never an
answer; the odd but valid framings are read right; a gzip bomb ends in AnswerTooLargeError with bounded
memory; nothing the user typed reaches the wire as protocol; a dead first address costs only the Happy
Eyeballs delay."""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import subprocess
import sys
import time
import zlib
from pathlib import Path

import httpx
import pytest

from aihubmix_magic import (
    AihubmixError,
    AnswerTooLargeError,
    APIResponseError,
    Client,
    ConfigurationError,
    Settings,
    batch,
    settings,
)
from aihubmix_magic.net.lane import HAPPY_EYEBALLS_DELAY, Lane, Origin
from tests.conftest import TEST_KEY
from tests.hostile import HostileServer, json_answer

ROOT = Path(__file__).resolve().parent.parent
ANSWER = b'{"id":"c","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"fine"},"finish_reason":"stop"}]}'
GOOD = json_answer(ANSWER)
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"


def _chunked(body: bytes, extension: bytes = b"") -> bytes:
    half = len(body) // 2
    return (b"%x%s\r\n%s\r\n%x\r\n%s\r\n0\r\n" % (half, extension, body[:half], len(body) - half, body[half:]))


MALFORMED = {
    "Content-Length: ² (a superscript two)": HEAD + "Content-Length: ²\r\n\r\n".encode() + ANSWER,
    "Content-Length: \\xa0NN\\x85": HEAD + b"Content-Length: \xa0%d\x85\r\n\r\n" % len(ANSWER) + ANSWER,
    "status 099": b"HTTP/1.1 099 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(ANSWER)
                  + ANSWER,
    "a NUL in a header value": HEAD + b"X-Note: a\x00b\r\nContent-Length: %d\r\n\r\n" % len(ANSWER) + ANSWER,
    "a space in a header name": HEAD + b"X Note: a\r\nContent-Length: %d\r\n\r\n" % len(ANSWER) + ANSWER,
    "both Content-Length and Transfer-Encoding": HEAD + b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n"
                                                 % len(ANSWER) + _chunked(ANSWER) + b"\r\n",
    "Transfer-Encoding: gzip, chunked": HEAD + b"Transfer-Encoding: gzip, chunked\r\n\r\n"
                                        + _chunked(gzip.compress(ANSWER)) + b"\r\n",
    "a pipelined extra answer behind it": GOOD + GOOD,
    "101 Switching Protocols": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n",
    "a chunk size that is not hex": HEAD + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n" + ANSWER + b"\r\n0\r\n\r\n",
    "an HTTP/2 status line on HTTP/1.1": b"HTTP/2 200 OK\r\nContent-Length: %d\r\n\r\n" % len(ANSWER) + ANSWER,
    "a gzip body that is not gzip": HEAD + b"Content-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(ANSWER)
                                    + ANSWER,
    "a coding not asked for (br)": HEAD + b"Content-Encoding: br\r\nContent-Length: %d\r\n\r\n" % len(ANSWER) + ANSWER,
}
VALID = {
    "chunked with extensions and trailers": HEAD + b"Transfer-Encoding: chunked\r\nTrailer: X-Check\r\n\r\n"
                                            + _chunked(ANSWER, b";name=value;x") + b"X-Check: 1\r\n\r\n",
    "a 100 Continue and a 103 before the answer": b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\n"
                                                  b"Link: </a>\r\n\r\n" + GOOD,
    "gzip": HEAD + b"Content-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(gzip.compress(ANSWER))
            + gzip.compress(ANSWER),
    "raw deflate": HEAD + b"Content-Encoding: deflate\r\nContent-Length: %d\r\n\r\n"
                   % len(zlib.compress(ANSWER)[2:-4]) + zlib.compress(ANSWER)[2:-4],
    "HTTP/1.0, framed by the close": b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n" + ANSWER,
}


@pytest.fixture(autouse=True)
def _no_retries():
    settings.max_retries = 0


def _batch(server: HostileServer, prompts: list[str]) -> list:
    settings.base_url = server.base_url
    return list(batch(prompts, model="m", concurrency=1, progress=False, resume=False))


def _client_call(server: HostileServer, **options) -> object:
    with Client(TEST_KEY, server.base_url, max_retries=0) as client:
        return client.chat("x", model="m", **options).text


@pytest.mark.parametrize("answer", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_answer_is_an_error_in_a_batch(answer):
    with HostileServer(lambda n, request: answer if n == 0 else GOOD, close=answer.startswith(b"HTTP/1.1 101")) \
            as server:
        first, second = _batch(server, ["a", "b"])
    assert first.status == "failed" and isinstance(first.error, AihubmixError), first.text
    assert first.text == "" and "\n" not in str(first.error)
    assert second.status == "completed" and second.text == "fine"  # the next one is not the stale answer


@pytest.mark.parametrize("answer", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_answer_is_an_error_in_the_sync_client(answer):
    with HostileServer(lambda n, request: answer if n == 0 else GOOD, close=answer.startswith(b"HTTP/1.1 101")) \
            as server, Client(TEST_KEY, server.base_url, max_retries=0) as client:
        with pytest.raises(AihubmixError) as info:
            client.chat("a", model="m")
        assert "\n" not in str(info.value)
        assert client.chat("b", model="m").text == "fine"  # never the first one's stale answer


@pytest.mark.parametrize("answer", VALID.values(), ids=VALID.keys())
def test_valid_framings_are_read_by_both_drivers(answer):
    with HostileServer(lambda n, request: answer, close=answer.startswith(b"HTTP/1.0")) as server:
        results = _batch(server, ["a", "b"])
        assert [r.text for r in results] == ["fine", "fine"], [r.error for r in results]
        assert _client_call(server) == "fine"


@pytest.mark.parametrize("status", [b"204 No Content", b"304 Not Modified"])
def test_answers_without_a_body_end_at_their_head_and_the_connection_goes_on(status):
    """204 and 304 have no body whatever their headers say: the request fails (no JSON), and the next
    answer on the same connection is read whole."""
    empty = b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n"
    with HostileServer(lambda n, request: empty if n % 2 == 0 else GOOD) as server:
        first, second = _batch(server, ["a", "b"])
        assert first.status == "failed" and isinstance(first.error, APIResponseError)
        assert second.text == "fine" and len(set(server.request_connections)) == 1
        with Client(TEST_KEY, server.base_url, max_retries=0) as client:
            with pytest.raises(APIResponseError):
                client.chat("c", model="m")
            assert client.chat("d", model="m").text == "fine"


# -- the size cap --------------------------------------------------------------------------------------
def test_an_answer_over_the_cap_is_refused_and_not_retried():
    big = json.dumps({"choices": [{"message": {"role": "assistant", "content": "x" * 5000}}]}).encode()
    packed = gzip.compress(big)
    answer = HEAD + b"Content-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(packed) + packed
    settings.max_answer_bytes = 4096
    settings.max_retries = 2
    with HostileServer(lambda n, request: answer) as server:
        (result,) = _batch(server, ["a"])
        assert isinstance(result.error, AnswerTooLargeError) and len(server.requests) == 1
        assert "settings.max_answer_bytes (4,096 bytes)" in str(result.error)
        with Client(TEST_KEY, server.base_url, max_retries=2, max_answer_bytes=4096) as client:
            for stream in (False, True):
                with pytest.raises(AnswerTooLargeError):
                    client.chat("b", model="m", stream=stream).text  # noqa: B018
        assert len(server.requests) == 3  # one each: never retried
    settings.max_answer_bytes = 5200
    with HostileServer(lambda n, request: answer) as server:
        assert _batch(server, ["a"])[0].text == "x" * 5000  # under the cap: read whole


def test_a_stream_is_capped_on_its_text_not_on_its_framing():
    events = b"".join(b'data: {"choices":[{"index":0,"delta":{"content":"%s"}}]}\n\n' % (b"y" * 100)
                      for _ in range(60))
    answer = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: %d\r\n\r\n"
              % len(events + b"data: [DONE]\n\n") + events + b"data: [DONE]\n\n")
    with HostileServer(lambda n, request: answer) as server:
        with Client(TEST_KEY, server.base_url, max_retries=0, max_answer_bytes=7000) as client:
            assert client.chat("a", model="m", stream=True).text == "y" * 6000  # 6,000 characters, 9 KB of SSE
        with Client(TEST_KEY, server.base_url, max_retries=0, max_answer_bytes=5000) as client:
            response = client.chat("b", model="m", stream=True)
            with pytest.raises(AnswerTooLargeError):
                response.text  # noqa: B018
            assert response.status == "failed" and len(response.text) <= 5000 + 100  # the cap, and one event


@pytest.mark.parametrize("scenario", ["batch", "client", "stream", "cell"])
def test_a_1_gib_gzip_bomb_ends_in_the_error_with_bounded_memory(scenario):
    """1 GiB of zeros as 1 MB of gzip, in a fresh process (benchmarks/_answer_bomb.py): the error, and a peak
    resident set far below the 1 GiB (before the cap: 4.6 GB in batch(), 2.4 GB in the Client)."""
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "_answer_bomb.py"), scenario],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["error"] == "AnswerTooLargeError", result
    assert result["peak_mb"] < 400, result


# -- nothing the user typed reaches the wire as protocol --------------------------------------------------
INJECTED_KEYS = ["sk-abcdefghijklmnop\r\nX-Injected: yes", "sk-abcdefghijklmnop\nX-Injected: yes",
                 "sk-abcdefghij\x00klmnop", "sk-abcdefghij\x7fklmnop", "sk-abcdefghij\x85klmnop",
                 "sk-abcdef ghij\tklmnop", "sk-abcdéfghijklmnop"]


@pytest.mark.parametrize("key", INJECTED_KEYS, ids=repr)
def test_a_key_with_a_control_character_is_refused_where_it_enters(key, monkeypatch, ip, capsys):
    with HostileServer(lambda n, request: GOOD) as server:
        with pytest.raises(ConfigurationError) as info:
            settings.set_key(key)
        message = str(info.value)
        assert "\n" not in message and "\r" not in message and key not in message and "sk-…" in message
        assert settings.api_key == TEST_KEY  # unchanged
        with pytest.raises(ConfigurationError):
            Client(api_key=key, base_url=server.base_url)
        if "\x00" not in key:  # an environment variable cannot hold a NUL
            monkeypatch.setenv("AIHUBMIX_API_KEY", key)
            with pytest.raises(ConfigurationError, match="AIHUBMIX_API_KEY"):
                Client(base_url=server.base_url)
            fresh = Settings()  # importing the package with such a key in the environment does not fail…
            assert not fresh.has_key
            with pytest.raises(ConfigurationError, match="AIHUBMIX_API_KEY"):  # …but nothing is sent with it
                fresh.usable()
        monkeypatch.setattr("getpass.getpass", lambda prompt="": key)
        capsys.readouterr()
        ip.run_cell("%aihubmix key")  # as a user runs it: errors go through the shell's handler
        shown = capsys.readouterr()
        assert "ConfigurationError" in shown.out + shown.err and key not in shown.out + shown.err
        assert settings.api_key == TEST_KEY
        assert server.requests == []  # nothing was sent


def test_a_base_url_with_a_control_character_is_refused():
    for url in ("http://127.0.0.1:9/v1\r\nX-Evil: 1", "http://127.0.0.1:9/v1\x00", "http://127.0.0.1:9/v\x1b1"):
        with pytest.raises(ConfigurationError, match="is not an http"):
            settings.base_url = url
        with pytest.raises(ConfigurationError):
            Client(TEST_KEY, url)


def test_percent_encoding_in_the_base_url_is_sent_as_written():
    """`%0D%0A` in the base URL stays three characters each on the wire, in a batch and in a cell's
    Client: no request carries an injected header."""
    with HostileServer(lambda n, request: GOOD) as server:
        base = server.base_url + "%0D%0AX-Evil:%201"
        settings.base_url = base
        assert [r.text for r in batch(["a", "b"], model="m", concurrency=2, progress=False, resume=False)] \
            == ["fine", "fine"]
        with Client(TEST_KEY, base, max_retries=0) as client:
            assert client.chat("c", model="m").text == "fine"
        assert len(server.requests) == 3
        for request in server.requests:
            head = request.split(b"\r\n\r\n")[0].split(b"\r\n")
            assert head[0] == b"POST /v1%0D%0AX-Evil:%201/chat/completions HTTP/1.1", head[0]
            assert not any(line.lower().startswith(b"x-evil") for line in head)


def test_an_app_code_with_a_control_character_is_refused():
    with pytest.raises(ConfigurationError):
        settings.app_code = "abc\r\nX-Injected: yes"
    assert settings.app_code == ""


# -- every address is tried -------------------------------------------------------------------------------
def test_a_dead_first_address_costs_the_happy_eyeballs_delay_not_the_timeout(monkeypatch):
    """dual.test resolves to 127.0.0.2 (a listener whose backlog is full: SYNs are dropped, the connect
    hangs) then 127.0.0.1 (the server): the lane connects after about the delay, not the 5 s timeout."""
    with HostileServer(lambda n, request: GOOD) as server:
        dead = socket.socket()
        dead.bind(("127.0.0.2", server.port))
        dead.listen(0)
        fillers = []
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            try:
                filler.connect(("127.0.0.2", server.port))
            except BlockingIOError:
                pass
            fillers.append(filler)
        time.sleep(0.1)
        real = socket.getaddrinfo

        def resolve(host, port, *args, **kwargs):
            if host == "dual.test":
                return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))
                        for address in ("127.0.0.2", "127.0.0.1")]
            return real(host, port, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", resolve)
        origin = Origin(httpx.URL(f"http://dual.test:{server.port}/v1"), {"Authorization": f"Bearer {TEST_KEY}"},
                        context=None, timeout=httpx.Timeout(10.0, connect=5.0))

        async def post():
            lane = Lane(origin)
            try:
                return await lane.post("/v1/chat/completions", b"{}")
            finally:
                await lane.aclose()

        started = time.perf_counter()
        answer = asyncio.run(post())
        elapsed = time.perf_counter() - started
        for filler in fillers:
            filler.close()
        dead.close()
    assert answer.status == 200 and json.loads(answer.body)["choices"][0]["message"]["content"] == "fine"
    assert HAPPY_EYEBALLS_DELAY <= elapsed < 2.0, elapsed


# -- the decoder itself ---------------------------------------------------------------------------------
@pytest.mark.parametrize("coding", ["identity", "gzip", "deflate", "raw deflate"])
def test_the_body_decoder_gives_the_same_bytes_however_the_body_is_cut(coding):
    from aihubmix_magic.net.bodies import BodyDecoder

    body = json.dumps({"text": "é" * 3000 + "".join(str(n) for n in range(3000))}).encode()
    encoded = {"identity": body, "gzip": gzip.compress(body), "deflate": zlib.compress(body),
               "raw deflate": zlib.compress(body)[2:-4]}[coding]
    header = "deflate" if coding == "raw deflate" else coding
    for step in (1, 7, 1000, len(encoded)):
        decoder = BodyDecoder(header, len(body))
        whole = b"".join(decoder.feed(encoded[i:i + step]) for i in range(0, len(encoded), step)) + decoder.flush()
        assert whole == body and decoder.size == len(body)
        streamed = BodyDecoder(header, len(body))  # a stream: pieces of at most a MiB
        pieces = [p for i in range(0, len(encoded), step) for p in streamed.iter_feed(encoded[i:i + step])]
        assert b"".join(pieces) + streamed.flush() == body
    with pytest.raises(AnswerTooLargeError):
        decoder = BodyDecoder(header, len(body) - 1)
        decoder.feed(encoded)
        decoder.flush()


def test_a_stream_decodes_in_bounded_pieces_and_a_bomb_piece_is_refused():
    from aihubmix_magic.net.bodies import BodyDecoder

    packed = gzip.compress(bytes(5 << 20))
    pieces = list(BodyDecoder("gzip", 6 << 20).iter_feed(packed))  # one socket read: 5 MiB once decoded
    assert sum(map(len, pieces)) == 5 << 20 and max(map(len, pieces)) <= BodyDecoder.STREAM_PIECE
    with pytest.raises(AnswerTooLargeError):
        list(BodyDecoder("gzip", 4 << 20).iter_feed(packed))


# -- the lane's reader, without a socket: any cut of the same bytes reads the same -------------------------
class _Transport:
    """Stands in for asyncio's transport: each write is answered with `pieces`, one per loop turn."""

    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = pieces
        self.protocol = None
        self.aborted = False

    def write(self, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        for piece in self.pieces:
            loop.call_soon(self.protocol.data_received, piece)

    def is_closing(self) -> bool:
        return self.aborted

    def abort(self) -> None:
        self.aborted = True


def _exchange(pieces: list[bytes]):
    from aihubmix_magic.net.lane import _Connection

    async def main():
        loop = asyncio.get_running_loop()
        connection = _Connection(loop, None, 1 << 20)
        transport = _Transport(pieces)
        transport.protocol = connection
        connection.connection_made(transport)
        return await connection.exchange(b"POST / HTTP/1.1\r\n\r\n"), connection

    return asyncio.run(main())


@pytest.mark.parametrize("answer", [GOOD, VALID["chunked with extensions and trailers"],
                                    VALID["a 100 Continue and a 103 before the answer"], VALID["gzip"]],
                         ids=["content-length", "chunked", "1xx", "gzip"])
def test_an_answer_reads_the_same_however_it_is_cut(answer):
    whole, connection = _exchange([answer])
    assert whole.status == 200 and whole.body == ANSWER and whole.error is None and connection.reusable
    for cut in range(1, len(answer)):
        parsed, _ = _exchange([answer[:cut], answer[cut:]])
        assert (parsed.status, parsed.headers, parsed.body) == (whole.status, whole.headers, whole.body), cut
    parsed, _ = _exchange([answer[i:i + 1] for i in range(len(answer))])  # a byte at a time
    assert parsed.body == ANSWER


def test_bytes_after_an_answer_are_an_error_even_in_the_same_piece():
    answer, connection = _exchange([GOOD + b"HTTP/1.1 200 OK\r\n"])
    assert answer.status == 200 and answer.body == b"" and "after its answer" in str(answer.error)
    assert not connection.reusable
