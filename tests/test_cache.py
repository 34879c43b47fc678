"""The response cache: real requests to the simulator, a real SQLite file under tmp_path."""

from __future__ import annotations

import sqlite3
from contextlib import closing

import pytest

from aihubmix_magic import AihubmixError, Client, batch, settings
from aihubmix_magic.simulator import Simulator
from aihubmix_magic.store.cache import ResponseCache, request_key

from .conftest import TEST_KEY


@pytest.fixture(autouse=True)
def cache_file(tmp_path, monkeypatch):
    """Never the user's cache: the default path and the setting both point into tmp_path."""
    path = tmp_path / "cache" / "responses.sqlite"
    monkeypatch.setenv("AIHUBMIX_CACHE_PATH", str(path))
    settings.cache_path = str(path)
    return path


@pytest.fixture
def client(sim, cache_file):
    with Client(TEST_KEY, sim.base_url) as client:
        client.cache = ResponseCache(cache_file)
        yield client


def test_an_identical_request_is_answered_without_the_network(sim, client):
    first = client.chat("Explain caching", model="sim-echo", temperature=0.2)
    assert not first.cached and sim.request_count == 1
    second = client.chat("Explain caching", model="sim-echo", temperature=0.2)
    assert sim.request_count == 1
    assert second.cached and second.status == "completed" and second.done
    assert second.text == first.text and second.usage == first.usage and second.raw == first.raw
    assert second.request == first.request
    assert "cached" in repr(second)


def test_a_different_request_is_a_miss(sim, client):
    client.chat("Explain caching", model="sim-echo")
    client.chat("Explain caching", model="sim-echo", temperature=1.0)
    client.chat("Explain caching!", model="sim-echo")
    client.respond("Explain caching", model="sim-echo")
    client.chat("Explain caching", model="sim-echo", system="Be brief.")
    assert sim.request_count == 5
    assert ResponseCache(client.cache.path).info()["entries"] == 5


def test_the_key_is_neither_in_the_cache_key_nor_in_the_file(sim, client, cache_file):
    client.chat("Keep my key out", model="sim-echo")
    with Client("sk-another-key-9999999999999999", sim.base_url) as other:
        other.cache = client.cache
        assert other.chat("Keep my key out", model="sim-echo").cached  # the entry does not depend on the key
    assert sim.request_count == 1
    data = cache_file.read_bytes()
    assert TEST_KEY.encode() not in data and TEST_KEY[-8:].encode() not in data
    body = {"model": "m", "messages": []}
    assert request_key("chat", sim.base_url, body) == request_key("chat", sim.base_url + "/", body)
    assert request_key("chat", sim.base_url, body) != request_key("responses", sim.base_url, body)


def test_another_server_is_a_miss(sim, client):
    client.chat("Same prompt", model="sim-echo")
    with Simulator() as other_server, Client(TEST_KEY, other_server.base_url) as other:
        other.cache = client.cache
        assert not other.chat("Same prompt", model="sim-echo").cached
        assert other_server.request_count == 1


def test_streamed_requests_hit_and_fill_the_cache(sim, client):
    streamed = client.chat("Stream me", model="sim-echo", stream=True)
    text = "".join(streamed)
    assert streamed.status == "completed" and sim.request_count == 1
    again = client.chat("Stream me", model="sim-echo", stream=True)
    assert again.cached and again.done and again.stream
    assert "".join(again) == text == again.text
    assert client.chat("Stream me", model="sim-echo").cached  # non-streamed: the same entry
    assert sim.request_count == 1


def test_only_completed_answers_are_stored(sim, client):
    client.max_retries = 0
    with pytest.raises(AihubmixError):
        client.chat("x", model="sim-500")
    incomplete = client.chat("x", model="sim-incomplete")
    assert incomplete.status == "incomplete"
    stream = client.chat("x", model="sim-tps-50", stream=True)
    next(iter(stream))
    stream.close()
    assert stream.status == "cancelled"
    with pytest.raises(AihubmixError):
        "".join(client.chat("x", model="sim-drop-3", stream=True))
    assert client.cache.info()["entries"] == 0
    client.chat("x", model="sim-incomplete")
    assert sim.request_count == 5


def test_clear_and_info(sim, client, cache_file):
    assert client.cache.info() == {"entries": 0, "size": 0, "path": str(cache_file)}
    client.chat("one", model="sim-echo")
    client.chat("two", model="sim-echo")
    info = client.cache.info()
    assert info["entries"] == 2 and info["size"] > 0
    assert client.cache.clear() == 2
    assert client.cache.info()["entries"] == 0
    assert not client.chat("one", model="sim-echo").cached
    with closing(sqlite3.connect(cache_file)) as db:
        assert db.execute("SELECT COUNT(*) FROM responses").fetchone()[0] == 1


def test_batch_uses_the_cache(sim):
    settings.cache = True
    first = batch(["a", "b", "c"], model="sim-echo", progress=False)
    assert sim.request_count == 3 and first.summary.cached == 0
    second = batch(["a", "b", "c", "d"], model="sim-echo", progress=False)
    assert sim.request_count == 4  # only "d" was sent
    assert [r.cached for r in second] == [True, True, True, False]
    assert [r.text for r in second[:3]] == [r.text for r in first]
    assert second.summary.cached == 3 and second.summary.ok == 4
    settings.cache = False
    batch(["a"], model="sim-echo", progress=False)
    assert sim.request_count == 5
    assert batch(["a"], model="sim-echo", progress=False, cache=True)[0].cached
    assert sim.request_count == 5


# -- the magic ------------------------------------------------------------------------------------------
def _footer(ip) -> str:
    return ip.display_pub.outputs()[-1]["text/plain"]


def test_cache_on_answers_a_cell_from_the_cache(sim, ip, capsys, cache_file):
    ip.run_line_magic("aihubmix", "cache on")
    assert settings.cache and str(cache_file) in capsys.readouterr().out
    ip.run_cell_magic("aihubmix", "-m sim-echo", "What is a cache?")
    first = ip.user_ns["last_response"]()
    assert "cached" not in _footer(ip) and sim.request_count == 1
    ip.display_pub.messages.clear()
    ip.run_cell_magic("aihubmix", "-m sim-echo", "What is a cache?")  # streamed: replayed at once
    assert sim.request_count == 1
    outputs = ip.display_pub.outputs()
    assert "cached" in _footer(ip)
    assert any(data.get("text/markdown") == first.text for data in outputs)
    assert ip.user_ns["last_response"]().cached


def test_cache_flag_on_one_cell(sim, ip):
    assert not settings.cache
    ip.run_cell_magic("aihubmix", "-m sim-echo --cache --no-stream", "Hello cache")
    ip.run_cell_magic("aihubmix", "-m sim-echo --cache --no-stream", "Hello cache")
    assert sim.request_count == 1 and "cached" in _footer(ip)
    ip.run_cell_magic("aihubmix", "-m sim-echo --no-stream", "Hello cache")  # without --cache: the network
    assert sim.request_count == 2


def test_cache_subcommands(sim, ip, capsys, cache_file):
    ip.run_line_magic("aihubmix", "cache info")
    assert f"Cache off: 0 entries, 0 bytes, {cache_file}" in capsys.readouterr().out
    ip.run_cell_magic("aihubmix", "-m sim-echo --cache", "Hello")
    ip.run_line_magic("aihubmix", "cache info")
    assert "1 entry" in capsys.readouterr().out
    ip.run_line_magic("aihubmix", "cache clear")
    assert "1 entry deleted" in capsys.readouterr().out
    ip.run_line_magic("aihubmix", "cache off")
    assert not settings.cache


def test_over_uses_the_cache_flag(sim, ip):
    ip.user_ns["items"] = ["x", "y"]
    ip.run_cell_magic("aihubmix", "--over items -m sim-echo --cache -o out", "Say {}")
    ip.run_cell_magic("aihubmix", "--over items -m sim-echo --cache -o out", "Say {}")
    assert sim.request_count == 2
    assert ip.user_ns["out"].summary.cached == 2


def test_bad_cache_subcommand(ip):
    from IPython.core.error import UsageError

    with pytest.raises(UsageError, match="cache on\\|off\\|clear\\|info"):
        ip.run_line_magic("aihubmix", "cache maybe")
