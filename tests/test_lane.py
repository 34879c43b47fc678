"""A batch worker's connection (`_lane.Lane`) on real sockets: keep-alive, a connection the server closed,
the idle expiry, timeouts, TLS (a simulator behind a certificate from a test CA), and the httpx lane used
behind a proxy (a forwarding proxy on loopback that counts what passes through it)."""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from aihubmix_magic import APIConnectionError, APITimeoutError, batch, settings
from aihubmix_magic.net import lane as _lane
from aihubmix_magic.net.async_driver import AsyncDriver, _HttpxLane
from aihubmix_magic.net.lane import Lane, Origin
from aihubmix_magic.simulator import Simulator

BODY = json.dumps({"model": "sim-echo", "messages": [{"role": "user", "content": "hello"}]}).encode()


def _origin(base_url: str, timeout: httpx.Timeout | None = None, context=None) -> Origin:
    headers = {"Authorization": f"Bearer {settings.api_key}", "Content-Type": "application/json"}
    return Origin(httpx.URL(base_url), headers, context=context, timeout=timeout or httpx.Timeout(10.0))


def _post(lane: Lane, body: bytes = BODY, retries: int = 0) -> _lane.Answer:
    async def main():
        try:
            return await lane.post("/v1/chat/completions", body, retries)
        finally:
            await lane.aclose()

    return asyncio.run(main())


def _post_twice(lane: Lane, between=None) -> list[_lane.Answer]:
    async def main():
        answers = [await lane.post("/v1/chat/completions", BODY)]
        if between is not None:
            between()
            await asyncio.sleep(0.2)  # the loop sees the server's close
        answers.append(await lane.post("/v1/chat/completions", BODY))
        await lane.aclose()
        return answers

    return asyncio.run(main())


def test_a_lane_keeps_its_connection_and_reads_the_answer(sim):
    sim.reset()
    first, second = _post_twice(Lane(_origin(sim.base_url)))
    assert sim.connections_opened == 1
    for answer in (first, second):
        assert answer.status == 200 and answer.error is None
        assert answer.headers["content-type"].startswith("application/json")
        assert 'You asked: "hello"' in json.loads(answer.body)["choices"][0]["message"]["content"]
    sent = sim.requests[0]
    headers = {name.lower(): value for name, value in sent.headers.items()}
    assert headers["authorization"] == f"Bearer {settings.api_key}" and sent.body["model"] == "sim-echo"
    assert headers["host"] == f"127.0.0.1:{sim.port}" and headers["content-length"] == str(len(BODY))


def test_a_connection_the_server_closed_is_replaced(sim):
    sim.reset()
    first, second = _post_twice(Lane(_origin(sim.base_url)), between=sim._server.close_connections)
    sim._server.stopping.clear()
    assert first.status == second.status == 200
    assert sim.connections_opened == 2


def test_an_idle_connection_older_than_the_expiry_is_replaced(sim, monkeypatch):
    sim.reset()
    monkeypatch.setattr(_lane, "KEEPALIVE_EXPIRY", 0.05)
    _post_twice(Lane(_origin(sim.base_url)), between=lambda: time.sleep(0.1))
    assert sim.connections_opened == 2


def test_the_retry_count_is_sent_on_retries(sim):
    sim.reset()
    _post(Lane(_origin(sim.base_url)), retries=2)
    headers = {name.lower(): value for name, value in sim.requests[0].headers.items()}
    assert headers["x-stainless-retry-count"] == "2"


def test_nothing_listening_is_a_connect_error():
    origin = _origin("http://127.0.0.1:9/v1")
    with pytest.raises(httpx.ConnectError):
        _post(Lane(origin))


def test_a_silent_server_is_a_read_timeout_not_a_hang(sim):
    origin = _origin(sim.base_url, httpx.Timeout(0.3, connect=5))
    body = json.dumps({"model": "sim-stall-2", "messages": [{"role": "user", "content": "hi"}]}).encode()
    started = time.perf_counter()
    with pytest.raises(httpx.ReadTimeout):
        _post(Lane(origin), body)
    assert time.perf_counter() - started < 5


def test_a_body_cut_off_comes_back_with_its_status_and_the_error():
    """The head arrived, the body did not: the answer carries the error (the driver does not resend it)."""
    listener = __import__("socket").create_server(("127.0.0.1", 0))

    def serve():
        connection, _ = listener.accept()
        connection.recv(65536)
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"id")
        connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        answer = _post(Lane(_origin(f"http://127.0.0.1:{listener.getsockname()[1]}/v1")))
    finally:
        thread.join(5)
        listener.close()
    assert answer.status == 200 and answer.body == b""
    assert isinstance(answer.error, httpx.RemoteProtocolError)
    assert "complete message body" in str(answer.error)


def test_the_origin_repr_does_not_show_the_key(sim):
    origin = _origin(sim.base_url)
    assert settings.api_key not in repr(origin) and repr(origin) == f"<Origin 127.0.0.1:{sim.port}>"


# -- TLS ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tls():
    """A simulator over TLS with a certificate for 127.0.0.1 from a test CA; yields (simulator, CA file)."""
    trustme = pytest.importorskip("trustme")
    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1", "localhost")
    context = __import__("ssl").create_default_context(__import__("ssl").Purpose.CLIENT_AUTH)
    certificate.configure_cert(context)
    with authority.cert_pem.tempfile() as ca_file, Simulator(ssl_context=context) as server:
        yield server, ca_file


def test_a_batch_over_tls_trusts_the_certificates_httpx_trusts(tls, monkeypatch):
    server, ca_file = tls
    server.reset()
    monkeypatch.setenv("SSL_CERT_FILE", ca_file)
    settings.base_url = server.base_url
    assert server.base_url.startswith("https://")
    results = batch([f"item {n}" for n in range(6)], model="sim-echo", concurrency=2, progress=False,
                    resume=False)
    assert all(f'You asked: "item {n}"' in r.text for n, r in enumerate(results))
    assert server.connections_opened == 2


def test_a_certificate_from_an_unknown_authority_is_refused(tls, monkeypatch):
    server, _ = tls
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)  # certifi's authorities: not the test CA
    settings.base_url = server.base_url
    settings.max_retries = 0
    results = batch(["x"], model="sim-echo", progress=False, resume=False)
    assert results[0].status == "failed" and isinstance(results[0].error, APIConnectionError)
    assert "CERTIFICATE_VERIFY_FAILED" in str(results[0].error)


# -- behind a proxy -------------------------------------------------------------------------------------
class _Forwarder(BaseHTTPRequestHandler):
    """A plain HTTP proxy for http:// targets (absolute-form requests), counting what it forwards."""

    protocol_version = "HTTP/1.1"
    seen: list[str] = []

    def do_POST(self):  # noqa: N802 - http.server's naming
        target = httpx.URL(self.path)
        type(self).seen.append(self.path)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        upstream = http.client.HTTPConnection(target.host, target.port, timeout=10)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("proxy-connection", "connection")}
        upstream.request("POST", target.raw_path.decode(), body=body, headers=headers)
        answer = upstream.getresponse()
        data = answer.read()
        self.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        upstream.close()

    def log_message(self, *args):
        pass


def test_behind_a_proxy_a_batch_goes_through_it_on_httpx(sim, monkeypatch):
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), _Forwarder)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    _Forwarder.seen = []
    try:
        for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "http_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.server_address[1]}")
        from aihubmix_magic import Client

        with Client(settings.api_key, sim.base_url) as client:
            assert isinstance(AsyncDriver(client).lane(), _HttpxLane)
        results = batch(["a", "b", "c"], model="sim-echo", concurrency=2, progress=False, resume=False)
        assert all(f'You asked: "{p}"' in r.text for p, r in zip("abc", results, strict=True))
        assert len(_Forwarder.seen) == 3 and all(p == f"{sim.base_url}/chat/completions" for p in _Forwarder.seen)
    finally:
        proxy.shutdown()
        proxy.server_close()


def test_without_a_proxy_a_batch_uses_lanes(sim):
    from aihubmix_magic import Client

    with Client(settings.api_key, sim.base_url) as client:
        assert isinstance(AsyncDriver(client).lane(), Lane)


def test_a_batch_item_that_times_out_is_an_api_timeout(sim):
    settings.timeout = 0.3
    settings.max_retries = 0
    results = batch(["x"], model="sim-stall-2", progress=False, resume=False)
    assert results[0].status == "failed" and isinstance(results[0].error, APITimeoutError)
