"""The model catalog (GET /api/v1/models): fetched from the simulator over a real socket, parsed tolerantly,
kept on disk for a day, never an error in a prompt cell when it is down, slow or malformed; capability
warnings; `%aihubmix models`; the panel's model picker."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from IPython.core.error import UsageError

from aihubmix_magic import ModelInfo, last_response, model_info, settings
from aihubmix_magic.services import catalog as _catalog
from aihubmix_magic.services import cost as _cost
from aihubmix_magic.services.catalog import CatalogError, catalog_url, parse_catalog, parse_model
from aihubmix_magic.simulator import CATALOG_FAULTS, CATALOG_MODELS, MODELS, Simulator
from tests.conftest import TEST_KEY

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def fresh_catalog(tmp_path):
    """Each test starts with no catalog in memory, an empty disk cache of its own and no spend."""
    settings.cache_path = str(tmp_path / "cache" / "responses.sqlite")
    _catalog.forget()
    _cost.ledger.reset()
    yield tmp_path / "cache" / "catalog"
    _catalog.forget()
    _cost.ledger.reset()


def plain_outputs(ip) -> list[str]:
    return [o.get("text/plain", "") for o in ip.display_pub.outputs()]


def footer(ip) -> str:
    return next(text for text in reversed(plain_outputs(ip)) if " · " in text and "tokens" in text)


# -- parsing ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("pricing", "expected"), [
    ({"input": 1.5, "output": 7.5, "cache_read": 0.15}, (1.5, 7.5, 0.15, None)),
    ({"input": "1.5", "output": "$7.50", "cache_read": None}, (1.5, 7.5, None, None)),
    ({"input": 0, "output": 0}, (0.0, 0.0, None, None)),
    ({"input": 2, "output": 8, "cache_write": "2.5"}, (2.0, 8.0, None, 2.5)),
    ({"input": -1, "output": True, "cache_read": "n/a"}, (None, None, None, None)),
    ({"input": float("nan"), "output": [1], "cache_read": {"x": 1}}, (None, None, None, None)),
    ({}, (None, None, None, None)),
    (None, (None, None, None, None)),
    ("1.5", (None, None, None, None)),
])
def test_prices_are_read_tolerantly(pricing, expected):
    info = parse_model({"model_id": "m", "pricing": pricing})
    assert (info.input_price, info.output_price, info.cache_read_price, info.cache_write_price) == expected
    assert info.priced == (expected[0] is not None and expected[1] is not None)


@pytest.mark.parametrize(("value", "expected"), [
    ("thinking,tools, Function_Calling ,", {"thinking", "tools", "function_calling"}),
    (["thinking", "tools", 7, None], {"thinking", "tools"}),
    ("", set()), (None, set()), (12, set()),
])
def test_features_are_lists_or_comma_strings(value, expected):
    info = parse_model({"model_id": "m", "features": value, "input_modalities": value})
    assert info.features == expected == info.input_modalities


@pytest.mark.parametrize(("value", "expected"), [
    (128000, 128000), ("128000", 128000), ("1,048,576", 1048576), ("128K", 128000), ("1M", 1000000),
    (None, None), ("lots", None), (0, None), (-5, None), (True, None),
])
def test_sizes_are_numbers_or_numeric_strings(value, expected):
    info = parse_model({"model_id": "m", "context_length": value, "max_output": value})
    assert info.context_length == expected == info.max_output


def test_uneven_tool_metadata_counts_either_name():
    only_tools = parse_model({"model_id": "a", "features": "tools"})
    only_calls = parse_model({"model_id": "b", "features": "function_calling"})
    assert only_tools.tools and only_calls.tools
    assert only_tools.has_feature("function_calling") and only_calls.has_feature("tools")
    assert parse_model({"model_id": "c", "features": "thinking"}).badges == ("reasoning",)
    assert parse_model({"model_id": "d", "input_modalities": "text,image", "features": "tools",
                        "pricing": {"input": 0, "output": 0}}).badges == ("vision", "tools", "free")


def test_the_published_example_entry():
    """The entry PROTOCOL §1 quotes (models.dev PR #7430), read as it is."""
    entry = json.loads('{"model_id":"gemini-3.6-flash","desc":"…","types":"llm","features":"thinking,tools,'
                       'function_calling,structured_outputs,web,long_context","input_modalities":"text,image,'
                       'audio,video,pdf","max_output":65536,"context_length":1048576,"pricing":{"input":1.5,'
                       '"output":7.5,"cache_read":0.15}}')
    info = parse_catalog({"success": True, "data": [entry]})["gemini-3.6-flash"]
    assert info == ModelInfo(model_id="gemini-3.6-flash", description="…", types=("llm",),
                             features=frozenset({"thinking", "tools", "function_calling", "structured_outputs",
                                                 "web", "long_context"}),
                             input_modalities=frozenset({"text", "image", "audio", "video", "pdf"}),
                             max_output=65536, context_length=1048576, input_price=1.5, output_price=7.5,
                             cache_read_price=0.15)
    assert info.reasoning and info.vision and info.tools and not info.free


@pytest.mark.parametrize("body", [
    {"success": False, "message": "busy"},
    {"success": True, "data": {"models": []}},
    {"success": True},
    {"error": {"message": "bad"}},
    "a string",
    42,
    None,
    {"data": [{"name": "no model_id"}, 3, None]},
])
def test_what_is_not_a_catalog_is_a_catalog_error(body):
    with pytest.raises(CatalogError) as info:
        parse_catalog(body)
    assert "\n" not in str(info.value)


def test_entries_without_an_id_are_skipped_and_a_bare_list_is_accepted():
    models = parse_catalog([{"model_id": "a"}, {"model_id": ""}, "junk", {"id": "b"}, {"model_id": "a", "desc": "2nd"}])
    assert sorted(models) == ["a", "b"] and models["a"].description == ""
    assert parse_catalog({"success": True, "data": []}) == {}


def test_find_model_exact_case_insensitive_or_without_a_routing_suffix():
    models = parse_catalog([{"model_id": "claude-sonnet-4-5"}, {"model_id": "Kimi-K2-0905"}])
    assert _catalog.find_model(models, "claude-sonnet-4-5").model_id == "claude-sonnet-4-5"
    assert _catalog.find_model(models, "kimi-k2-0905").model_id == "Kimi-K2-0905"
    assert _catalog.find_model(models, "claude-sonnet-4-5-think").model_id == "claude-sonnet-4-5"
    assert _catalog.find_model(models, "claude-sonnet-4-5-search").model_id == "claude-sonnet-4-5"
    assert _catalog.find_model(models, "claude") is None


@pytest.mark.parametrize(("base", "expected"), [
    ("https://aihubmix.com/v1", "https://aihubmix.com/api/v1/models"),
    ("https://aihubmix.com/v1/", "https://aihubmix.com/api/v1/models"),
    ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/api/v1/models"),
    ("https://proxy.example/aihubmix/v1", "https://proxy.example/aihubmix/api/v1/models"),
    ("https://gateway.example/openai", "https://gateway.example/api/v1/models"),
])
def test_catalog_url_from_the_base_url(base, expected):
    assert catalog_url(base) == expected
    assert catalog_url(base, "https://mirror.example/models.json") == "https://mirror.example/models.json"


def test_catalog_url_setting_is_validated():
    from aihubmix_magic.session.settings import InvalidSettingError

    with pytest.raises(InvalidSettingError, match="not an http"):
        settings.catalog_url = "ftp://x"
    settings.catalog_url = " https://mirror.example/api/v1/models "
    assert settings.catalog_url == "https://mirror.example/api/v1/models"
    assert _catalog.catalog().url == "https://mirror.example/api/v1/models"


# -- the simulator's catalog ------------------------------------------------------------------------------
def test_the_simulator_prices_every_model(sim):
    import httpx

    body = httpx.get(catalog_url(sim.base_url)).json()
    assert body["success"] is True
    models = parse_catalog(body)
    assert set(MODELS) <= set(models) and set(models) == set(CATALOG_MODELS)
    assert all(models[m].priced for m in MODELS)
    assert models["sim-free"].free and not models["sim-unpriced"].priced
    assert sim.requests == [] and len(sim.account_requests) == 1  # not counted as an API request
    assert "authorization" not in sim.account_requests[0].headers  # the catalog is public


@pytest.mark.parametrize(("query", "expected"), [
    ({"features": "thinking", "modalities": "image"}, {"gpt-4o-mini", "gpt-5.4", "o4-mini", "claude-sonnet-4-5",
                                                       "claude-sonnet-4-5-think", "gemini-2.5-flash",
                                                       "gemini-3.1-pro-preview"}),
    ({"model": "DEEPSEEK"}, {"deepseek-chat", "deepseek-reasoner"}),
    ({"type": "llm", "modalities": "audio"}, {"gemini-2.5-flash", "gemini-2.5-flash-nothink", "gemini-3.1-pro-preview"}),
    ({"types": "llm", "features": "structured_outputs,web"}, {"gemini-2.5-flash", "gemini-2.5-flash-nothink",
                                                              "gemini-3.1-pro-preview"}),
    ({"type": "image_generation"}, set()),
])
def test_the_simulator_catalog_filters(sim, query, expected):
    import httpx

    data = httpx.get(catalog_url(sim.base_url), params=query).json()["data"]
    assert {entry["model_id"] for entry in data} == expected


def test_the_simulator_catalog_sorts(sim):
    import httpx

    url = catalog_url(sim.base_url)
    by_context = [e["context_length"] for e in httpx.get(url, params={"sort_by": "context_length",
                                                                       "sort_order": "desc"}).json()["data"]]
    assert [int(c) for c in by_context] == sorted((int(c) for c in by_context), reverse=True)
    by_price = httpx.get(url, params={"sort_by": "model_ratio", "sort_order": "asc"}).json()["data"]
    prices = [float((e.get("pricing") or {}).get("input") or 0) for e in by_price]
    assert prices == sorted(prices)


@pytest.mark.parametrize("fault", [f for f in CATALOG_FAULTS if f not in ("ok", "slow")])
def test_every_catalog_fault_is_a_catalog_error(sim, fault):
    with pytest.raises(CatalogError) as info:
        parse_catalog(_catalog._download(catalog_url(sim.base_url) + f"?fault={fault}"))
    assert "\n" not in str(info.value)


# -- fetching and the disk cache ----------------------------------------------------------------------------
def test_fetched_in_the_background_once_and_cached_on_disk(sim, fresh_catalog):
    current = _catalog.catalog()
    assert current.url == catalog_url(sim.base_url)
    assert current.ensure(wait=10)["gpt-4o-mini"].input_price == 0.15
    assert len(sim.account_requests) == 1
    assert model_info("gpt-4o-mini").output_price == 0.6
    assert len(sim.account_requests) == 1  # kept in memory
    files = list(fresh_catalog.iterdir())
    assert len(files) == 1
    assert stat.S_IMODE(fresh_catalog.stat().st_mode) == 0o700
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    stored = json.loads(files[0].read_text())
    assert stored["url"] == current.url and stored["body"]["success"] is True
    assert TEST_KEY not in files[0].read_text() and TEST_KEY[-8:] not in files[0].read_text()
    # a new session (nothing in memory) reads the disk: no request
    _catalog.forget()
    again = _catalog.catalog()
    assert again.ensure()["gpt-4o-mini"].input_price == 0.15
    assert again.source == "disk" and "cached on disk" in again.describe()
    assert len(sim.account_requests) == 1


def test_a_catalog_older_than_a_day_is_fetched_again(sim, fresh_catalog):
    _catalog.catalog().ensure(wait=10)
    path = next(fresh_catalog.iterdir())
    stored = json.loads(path.read_text())
    stored["fetched_at"] = time.time() - _catalog.CACHE_TTL - 60
    stored["body"]["data"][0]["pricing"]["input"] = 99  # so the test can tell which copy is used
    path.write_text(json.dumps(stored))
    _catalog.forget()
    current = _catalog.catalog()
    assert current.ensure(wait=10)["gpt-4o-mini"].input_price == 0.15  # fetched again
    assert current.source == "network" and len(sim.account_requests) == 2
    assert json.loads(path.read_text())["fetched_at"] > time.time() - 60


def test_a_stale_disk_copy_is_used_when_the_catalog_is_down(fresh_catalog):
    with Simulator() as good:
        _catalog.catalog(catalog_url(good.base_url)).ensure(wait=10)
        path = next(fresh_catalog.iterdir())
        stored = json.loads(path.read_text())
        stored["fetched_at"] = time.time() - 3 * 86400
        path.write_text(json.dumps(stored))
        _catalog.forget()
        good.catalog = "down"
        current = _catalog.catalog(catalog_url(good.base_url))
        current.ensure(wait=10)
        assert current.models["gpt-4o-mini"].input_price == 0.15
        assert current.source == "disk, stale"
        assert "3 days ago" in current.describe() and "HTTP 500" in current.describe()


def test_refresh_fetches_again_even_when_fresh(sim, ip):
    _catalog.catalog().ensure(wait=10)
    assert len(sim.account_requests) == 1
    ip.run_line_magic("aihubmix", "models --refresh")
    assert len(sim.account_requests) == 2
    assert "fetched just now" in plain_outputs(ip)[-1]


def test_a_corrupt_disk_cache_is_ignored(sim, fresh_catalog):
    fresh_catalog.mkdir(parents=True)
    (fresh_catalog / _catalog._cache_file(_catalog.catalog().url).name).write_text("{not json")
    assert _catalog.catalog().ensure(wait=10)["gpt-4o-mini"].priced
    assert len(sim.account_requests) == 1


def test_the_key_is_never_sent_to_the_catalog(sim):
    settings.catalog_url = catalog_url(sim.base_url) + "?fault=ok"
    _catalog.catalog().ensure(wait=10)
    assert sim.account_requests and all("authorization" not in r.headers for r in sim.account_requests)


def test_importing_the_catalog_and_cost_modules_does_not_import_httpx():
    code = (
        "import sys, types\n"
        "sys.modules['httpx'] = None  # any import of httpx fails\n"
        "package = types.ModuleType('aihubmix_magic')\n"
        f"package.__path__ = [{str(ROOT / 'aihubmix_magic')!r}]\n"
        "sys.modules['aihubmix_magic'] = package  # its __init__ (which loads the client) is not run\n"
        "import aihubmix_magic.services.catalog, aihubmix_magic.services.cost, aihubmix_magic.services.billing\n"
        "print(sorted(m for m in sys.modules if m.startswith(('httpx', 'aihubmix_magic.net.client', "
        "'aihubmix_magic.session.settings', 'IPython')) and sys.modules[m] is not None))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# -- a catalog that is down, slow or malformed: never an error in a prompt cell ---------------------------
@pytest.mark.parametrize("fault", ["down", "not-json", "wrong-shape", "unsuccessful"])
@pytest.mark.parametrize("stream", [True, False])
def test_a_broken_catalog_costs_nothing_but_the_prices(ip, capsys, fault, stream):
    with Simulator(catalog=fault) as server:
        settings.base_url = server.base_url
        ip.run_cell_magic("aihubmix", "-m gpt-4o-mini" + ("" if stream else " --no-stream"), "hello there")
        r = last_response()
        assert r.status == "completed" and r.text
        assert r.cost is None and "$" not in footer(ip)
        assert len(plain_outputs(ip)) == 2  # the answer and its footer: no warning, no error
        assert len(server.account_requests) == 1
        ip.run_cell_magic("aihubmix", "-m gpt-4o-mini", "again")  # a failure is not fetched again at once
        assert len(server.account_requests) == 1
        ip.run_line_magic("aihubmix", "models gpt-4o")
        listing = plain_outputs(ip)[-1]
        assert "gpt-4o-mini" in listing and "Model catalog unavailable (" in listing
        note = listing.splitlines()[-1]
        assert note.startswith("Model catalog unavailable (") and "no prices or capabilities" in note
        ip.run_line_magic("aihubmix", "models --features thinking")
        assert plain_outputs(ip)[-1].startswith("Model catalog unavailable (")
        assert "Cannot filter by features" in plain_outputs(ip)[-1]
    assert "Traceback" not in capsys.readouterr().err


def test_an_unreachable_catalog(ip):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    settings.catalog_url = f"http://127.0.0.1:{closed}/api/v1/models"
    ip.run_cell_magic("aihubmix", "-m gpt-4o-mini", "hello")
    assert last_response().status == "completed" and last_response().cost is None
    ip.run_line_magic("aihubmix", "models")
    assert "cannot reach" in plain_outputs(ip)[-1]


def test_a_slow_catalog_never_holds_a_cell_up(ip):
    with Simulator(catalog="slow", catalog_delay=4) as server:
        settings.base_url = server.base_url
        ip.run_cell_magic("aihubmix", "-m claude-sonnet-4-5 --no-stream", "words=50")
        r = last_response()
        assert r.status == "completed" and r.error is None and r.text
        assert len(plain_outputs(ip)) == 2  # answer and footer, no error line
        current = _catalog.catalog()
        assert current.wait(15) and current.models is not None  # it arrived in the background
        expected = (r.usage.input_tokens * 3 + r.usage.output_tokens * 15) / 1_000_000
        assert r.cost == pytest.approx(expected)
        assert _cost.ledger.spent() == pytest.approx(expected)  # the ledger priced the call once it knew


# -- capability warnings ----------------------------------------------------------------------------------
def warnings_shown(ip) -> list[str]:
    return [text for text in plain_outputs(ip) if text.startswith("⚠")]


def test_no_warning_for_what_the_model_can_do(ip, sim):
    ip.run_cell_magic("aihubmix", "-m gpt-4o-mini -r low", "hi")
    ip.run_cell_magic("aihubmix", "-m sim-echo", "a model the catalog does not list")
    assert warnings_shown(ip) == []


def test_an_image_to_a_text_only_model(ip, sim, tmp_path):
    image = tmp_path / "dot.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 32)
    ip.run_cell_magic("aihubmix", f"-m deepseek-chat --image {image}", "What is in it?")
    shown = warnings_shown(ip)
    assert len(shown) == 1 and "deepseek-chat takes text input, not images" in shown[0]
    assert "\n" not in shown[0]
    assert any(part.get("type") == "image_url" for part in sim.requests[-1].body["messages"][-1]["content"])
    outputs = plain_outputs(ip)
    assert outputs[-1] == shown[0] and " · " in outputs[-2]  # under the footer once the answer is drawn
    assert sum(m.get("data", {}).get("text/plain", "").startswith("⚠") for m in ip.display_pub.messages) == 2


def test_a_reasoning_effort_to_a_model_without_thinking(ip, sim):
    ip.run_cell_magic("aihubmix", "-m claude-haiku-4-5 -r high", "hi")
    assert len(sim.requests) == 1 and sim.requests[-1].body["reasoning_effort"] == "high"
    assert [w for w in warnings_shown(ip) if "no `thinking` feature" in w and "'high'" in w]
    ip.run_cell_magic("aihubmix", "-m claude-haiku-4-5 -r none", "hi")  # turning it off is fine
    assert not [w for w in warnings_shown(ip) if "thinking" in w]


def test_a_schema_to_a_model_without_structured_outputs(ip, sim):
    ip.user_ns["Answer"] = {"type": "object", "properties": {"answer": {"type": "string"}}}
    ip.run_cell_magic("aihubmix", "-m claude-haiku-4-5 --schema Answer", "Say hi as JSON.")
    assert [w for w in warnings_shown(ip) if "no `structured_outputs` feature" in w]
    assert sim.requests[-1].body["response_format"]["type"] == "json_schema"
    ip.run_cell_magic("aihubmix", "-m gpt-4o-mini --schema Answer", "Say hi as JSON.")
    assert warnings_shown(ip) == []


def test_a_prompt_longer_than_the_context(ip, sim):
    ip.run_cell_magic("aihubmix", "-m sim-free", "a long question " * 300)  # sim-free: a context of 1,000
    shown = warnings_shown(ip)
    assert len(shown) == 1 and re.search(r"about [\d,]+ tokens \(estimated\), more than sim-free's context of 1,000",
                                         shown[0])
    assert last_response().status == "completed"  # sent all the same
    ip.run_cell_magic("aihubmix", "-m sim-free", "a short question")
    assert warnings_shown(ip) == []


def test_warnings_in_a_terminal_are_printed_once(shell, sim, capsys):
    settings.display = "terminal"
    shell.user_ns["S"] = {"type": "object", "properties": {"a": {"type": "string"}}}
    shell.run_cell_magic("aihubmix", "-m claude-haiku-4-5 -r low --schema S", "hi")
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("⚠")]
    assert len(lines) == 2 and out.index(lines[0]) < out.index("claude-haiku-4-5 · chat")


def test_compare_warns_per_model(ip, sim):
    ip.run_cell_magic("aihubmix", "--compare gpt-4o-mini,claude-haiku-4-5 -r low", "hi")
    shown = warnings_shown(ip)
    assert len(shown) == 1 and shown[0].startswith("⚠ claude-haiku-4-5 has no `thinking`")


def test_estimate_tokens():
    assert _catalog.estimate_tokens("abcd" * 10) == 10 + 4
    assert _catalog.estimate_tokens("你好世界") == 4 + 4  # one per non-ASCII character
    messages = [{"role": "system", "content": "x" * 40},
                {"role": "user", "content": [{"type": "text", "text": "y" * 40},
                                             {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 9999}}]}]
    assert _catalog.estimate_tokens(messages) == 20 + 8  # the image's data URL is not text


# -- %aihubmix models -------------------------------------------------------------------------------------
def test_models_lists_context_prices_and_features(ip, sim):
    ip.run_line_magic("aihubmix", "models claude")
    markdown = ip.display_pub.outputs()[-1]["text/markdown"]
    assert "$" not in markdown  # Jupyter would read two dollar signs as LaTeX math and mangle the table
    markdown = markdown.replace(_cost.MARKDOWN_DOLLAR, "$")
    assert "| model | context | max output | input $ / 1M | output $ / 1M | input | features |" in markdown
    # the id on one line (it would wrap at a hyphen in a narrow table)
    assert ('| <code style="white-space: nowrap">claude-sonnet-4-5</code> | 200,000 | 64,000 | $3.00 | $15.00 | '
            "image, pdf, text | ") in markdown
    assert re.search(r"^claude-sonnet-4-5 +200,000 +64,000 +\$3\.00 +\$15\.00 ", plain_outputs(ip)[-1], re.M)
    assert "gpt-4o-mini" not in markdown and "USD per 1M tokens" in markdown
    assert len(sim.requests) == 1 and sim.requests[0].path == "/v1/models"  # the key's list, with the key


def test_models_filters_by_features_and_modality(ip, sim):
    ip.run_line_magic("aihubmix", "models --features tools")
    listed = set(re.findall(r"\| <code[^>]*>([^<]+)</code> \|", ip.display_pub.outputs()[-1]["text/markdown"]))
    assert {"deepseek-chat", "deepseek-reasoner"} <= listed  # only `tools`, only `function_calling`
    ip.run_line_magic("aihubmix", "models --features thinking,tools --modality image")
    listed = set(re.findall(r"\| <code[^>]*>([^<]+)</code> \|", ip.display_pub.outputs()[-1]["text/markdown"]))
    assert listed == {"gpt-4o-mini", "gpt-5.4", "o4-mini", "claude-sonnet-4-5", "claude-sonnet-4-5-think",
                      "gemini-2.5-flash", "gemini-3.1-pro-preview"}
    ip.run_line_magic("aihubmix", "models gemini --modality=audio,video --features web")
    listed = set(re.findall(r"\| <code[^>]*>([^<]+)</code> \|", ip.display_pub.outputs()[-1]["text/markdown"]))
    assert listed == {"gemini-2.5-flash", "gemini-2.5-flash-nothink", "gemini-3.1-pro-preview"}
    ip.run_line_magic("aihubmix", "models deepseek --modality image")
    assert plain_outputs(ip)[-1].startswith("No model matches 'deepseek', image")


@pytest.mark.parametrize(("line", "message"), [
    ("models --features flying", "unknown flying"),
    ("models --modality smell", "unknown smell"),
    ("models --features", "needs a value"),
    ("models --cheap", "Unknown option '--cheap'"),
])
def test_models_bad_options_are_one_line_and_send_nothing(ip, sim, line, message):
    with pytest.raises(UsageError, match=message) as info:
        ip.run_line_magic("aihubmix", line)
    assert "\n" not in str(info.value)
    assert sim.requests == [] and sim.account_requests == []


# -- the panel's model picker -------------------------------------------------------------------------------
def test_the_picker_shows_prices_and_badges_and_filters(sim):
    pytest.importorskip("ipywidgets")
    from aihubmix_magic.notebook.widgets import Panel

    panel = Panel()
    try:
        panel._fetcher.join(30)
        options = panel.model.options
        assert "gpt-4o-mini · $0.15 / $0.60 · reasoning vision tools" in options
        assert "deepseek-chat · $0.28 / $0.42 · tools" in options
        assert "USD per 1M tokens" in panel.models_note.value
        panel.filters["vision"].value = True
        panel.filters["reasoning"].value = True
        ids = {option.split(" · ")[0] for option in panel.model.options}
        assert ids == {"gpt-4o-mini", "gpt-5.4", "o4-mini", "claude-sonnet-4-5", "claude-sonnet-4-5-think",
                       "gemini-2.5-flash", "gemini-3.1-pro-preview"}
        assert f"{len(ids)} of {len(MODELS)} models" in panel.models_note.value
        panel.filters["vision"].value = panel.filters["reasoning"].value = False
        assert len(panel.model.options) == len(MODELS)
        panel.model.value = "deepseek-chat · $0.28 / $0.42 · tools"  # picked from the list
        assert settings.model == "deepseek-chat" and panel.model.value == "deepseek-chat"
        panel.model.value = "deepseek-chat · $0.28 / $0.42 · tools"  # the same model again
        assert panel.model.value == "deepseek-chat"
    finally:
        panel.close()


def test_the_picker_without_a_catalog_lists_bare_ids():
    pytest.importorskip("ipywidgets")
    from aihubmix_magic.notebook.widgets import Panel

    with Simulator(catalog="down") as server:
        settings.base_url = server.base_url
        panel = Panel()
        try:
            panel._fetcher.join(30)
            assert sorted(panel.model.options) == sorted(MODELS)
            assert "USD" not in panel.models_note.value
        finally:
            panel.close()


def test_catalog_state_is_per_url(sim):
    with Simulator(catalog="down") as down:
        assert _catalog.catalog(catalog_url(down.base_url)).ensure(wait=10) is None
        assert _catalog.catalog(catalog_url(sim.base_url)).ensure(wait=10) is not None
        assert os.path.basename(_catalog._cache_file(catalog_url(sim.base_url))) != os.path.basename(
            _catalog._cache_file(catalog_url(down.base_url)))
