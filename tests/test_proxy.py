"""The proxy rule (`_proxy.proxy_for`) against the route httpx itself takes, for every NO_PROXY form; and
both drivers (a cell's Client and batch()) follow it."""

from __future__ import annotations

import httpx
import pytest
from httpx._utils import URLPattern, get_environment_proxies

from aihubmix_magic import Client, settings
from aihubmix_magic.net.async_driver import AsyncDriver, _HttpxLane
from aihubmix_magic.net.lane import Lane
from aihubmix_magic.net.proxy import proxy_for

VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "all_proxy",
             "no_proxy", "REQUEST_METHOD")
URLS = ["https://aihubmix.com/v1", "https://api.aihubmix.com/v1", "https://notaihubmix.com/v1",
        "http://aihubmix.com/v1", "https://aihubmix.com:8443/v1", "http://api.example.test/v1",
        "https://api.example.test/v1", "http://127.0.0.1:8000/v1", "http://127.0.0.2/v1",
        "http://[::1]:8000/v1", "http://localhost:8000/v1", "http://LOCALHOST/v1",
        "https://192.168.1.5/v1", "https://192.168.0.0/v1", "https://example.com:443/v1",
        "https://Sub.Example.COM/v1"]
ENVIRONMENTS = [
    {},
    {"HTTPS_PROXY": "http://proxy.corp:3128"},
    {"HTTPS_PROXY": "proxy.corp:3128", "HTTP_PROXY": "http://web.corp:80"},
    {"ALL_PROXY": "socks5://socks.corp:1080"},
    {"ALL_PROXY": "http://all.corp:1", "HTTPS_PROXY": "http://tls.corp:2"},
    {"https_proxy": "http://lower.corp:1", "HTTPS_PROXY": "http://upper.corp:2"},
    {"HTTPS_PROXY": "http://p:1", "HTTP_PROXY": "http://p:1", "NO_PROXY": "*"},
    {"HTTPS_PROXY": "http://p:1", "HTTP_PROXY": "http://p:1", "NO_PROXY": "localhost,*"},
    {"HTTPS_PROXY": "http://p:1", "HTTP_PROXY": "http://p:1", "NO_PROXY": "aihubmix.com"},
    {"HTTPS_PROXY": "http://p:1", "HTTP_PROXY": "http://p:1", "no_proxy": ".aihubmix.com"},
    {"HTTPS_PROXY": "http://p:1", "HTTP_PROXY": "http://p:1", "NO_PROXY": "aihubmix.com:8443"},
    {"HTTPS_PROXY": "http://p:1", "HTTP_PROXY": "http://p:1", "NO_PROXY": "example.com:443"},
    {"HTTPS_PROXY": "http://p:1", "HTTP_PROXY": "http://p:1", "NO_PROXY": "http://api.example.test"},
    {"HTTPS_PROXY": "http://p:1", "HTTP_PROXY": "http://p:1", "NO_PROXY": "https://api.example.test:443"},
    {"HTTPS_PROXY": "http://p:1", "HTTP_PROXY": "http://p:1", "NO_PROXY": "127.0.0.1, ::1 ,localhost"},
    {"HTTPS_PROXY": "http://p:1", "HTTP_PROXY": "http://p:1", "NO_PROXY": "192.168.0.0/16"},
    {"HTTPS_PROXY": "http://p:1", "HTTP_PROXY": "http://p:1", "NO_PROXY": "*.example.com,EXAMPLE.com"},
    {"HTTPS_PROXY": "http://p:1", "HTTP_PROXY": "http://p:1", "NO_PROXY": ",, ,"},
    {"HTTPS_PROXY": "http://p:1", "HTTP_PROXY": "http://p:1", "REQUEST_METHOD": "GET"},  # CGI: http_proxy dropped
]


def _httpx_route(url: str) -> str | None:
    """The proxy httpx's client (trust_env) uses for `url`: its own environment reading and mount matching."""
    mounts = sorted((URLPattern(key), proxy) for key, proxy in get_environment_proxies().items())
    for pattern, proxy in mounts:
        if pattern.matches(httpx.URL(url)):
            return proxy
    return None


def _httpx_client_route(url: str) -> str | None:
    """The same, observed: which transport an httpx.Client(trust_env=True) picks for `url`."""
    with httpx.Client(trust_env=True) as client:
        transport = client._transport_for_url(httpx.URL(url))
        if transport is client._transport:
            return None
        proxy = transport._pool._proxy_url  # type: ignore[attr-defined]
        port = f":{proxy.port}" if proxy.port is not None else ""
        return f"{proxy.scheme.decode()}://{proxy.host.decode()}{port}"


@pytest.fixture
def environment(monkeypatch):
    def use(values: dict[str, str]) -> None:
        for name in VARIABLES:
            monkeypatch.delenv(name, raising=False)
        for name, value in values.items():
            monkeypatch.setenv(name, value)
    return use


@pytest.mark.parametrize("values", ENVIRONMENTS, ids=lambda v: ",".join(f"{k}={x}" for k, x in v.items()) or "none")
def test_the_rule_takes_the_route_httpx_takes(environment, values):
    environment(values)
    for url in URLS:
        assert proxy_for(url) == _httpx_route(url), url


@pytest.mark.parametrize("values", [env for env in ENVIRONMENTS if "ALL_PROXY" not in env],
                         ids=lambda v: ",".join(f"{k}={x}" for k, x in v.items()) or "none")
def test_the_rule_matches_the_transport_an_httpx_client_picks(environment, values):
    environment(values)
    for url in URLS:
        expected = _httpx_client_route(url)
        ours = proxy_for(url)
        assert (ours is None) == (expected is None), url
        if ours is not None:
            assert httpx.URL(ours).host == httpx.URL(expected).host, url


def test_the_table_covers_the_cases_the_issue_names(environment):
    environment({"HTTPS_PROXY": "http://p:1", "HTTP_PROXY": "http://p:1", "NO_PROXY": "localhost,*"})
    assert proxy_for("https://aihubmix.com/v1") is None
    environment({"HTTPS_PROXY": "http://p:1", "HTTP_PROXY": "http://p:1", "NO_PROXY": "http://api.example.test"})
    assert proxy_for("http://api.example.test/v1") is None
    assert proxy_for("https://api.example.test/v1") == "http://p:1"


def test_both_drivers_follow_the_rule(sim, environment):
    """NO_PROXY=localhost,* with a proxy named: a cell's Client and a batch go direct (the urllib rule the
    lanes used before sent the batch through the proxy)."""
    environment({"HTTP_PROXY": "http://127.0.0.1:9", "NO_PROXY": "localhost,*"})
    with Client(settings.api_key, sim.base_url, max_retries=0) as client:
        assert client.chat("hi", model="sim-echo").text
        assert isinstance(AsyncDriver(client).lane(), Lane)
    environment({"HTTP_PROXY": "http://127.0.0.1:9", "NO_PROXY": "localhost"})
    with Client(settings.api_key, sim.base_url, max_retries=0) as client:
        assert isinstance(AsyncDriver(client).lane(), _HttpxLane)  # 127.0.0.1 is not "localhost"
        assert client._proxy == "http://127.0.0.1:9"


def test_a_client_follows_the_environment_as_a_batch_does(sim, environment):
    """The route is decided for each request (a batch decides it for each run): a proxy named after the
    Client was made is used, and one removed is no longer used."""
    from aihubmix_magic import APIConnectionError

    environment({})
    with Client(settings.api_key, sim.base_url, max_retries=0) as client:
        assert client.chat("hi", model="sim-echo").text
        environment({"HTTP_PROXY": "http://127.0.0.1:9"})  # nothing listens there
        with pytest.raises(APIConnectionError):
            client.chat("hi", model="sim-echo")
        environment({})
        assert client.chat("hi", model="sim-echo").text
