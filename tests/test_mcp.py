"""Tools from MCP servers (`--mcp`, `batch(mcp=…)`, `%aihubmix mcp`) against a real MCP server written with
the official SDK (tests/mcp_server.py), over stdio and over streamable HTTP on loopback, and the simulator
as the model: calls that return text, fail, hang, crash the server; servers that cannot start; names,
schemas and results; what never reaches a server or the screen."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from IPython.core.error import UsageError

from aihubmix_magic import McpError, last_response, settings
from aihubmix_magic.core.tools import DECLINED
from tests.conftest import TEST_KEY
from tests.test_interrupt import kernel, messages_until_idle  # noqa: F401 - the kernel fixture
from tests.test_tool_approval import buttons, click, report, wait_for_prompt

pytest.importorskip("mcp")

SERVER = str(Path(__file__).with_name("mcp_server.py"))


def stdio(*args: str, **entry) -> dict:
    return {"command": sys.executable, "args": [SERVER, *args], **entry}


SERVERS = {
    "weather": stdio("--tools", "get_forecast,picture,station"),
    "weather2": stdio("--tools", "get_forecast", "--name", "second"),
    "failing": stdio("--tools", "fail"),
    "hanging": stdio("--tools", "hang"),
    "crashing": stdio("--tools", "crash"),
    "env": stdio("--tools", "environment", env={"MCP_TEST_TOKEN": "${MCP_TEST_TOKEN}"}),
    "keyed": stdio("--tools", "environment", "--name", "keyed", env={"AIHUBMIX_API_KEY": "${AIHUBMIX_API_KEY}"}),
    "broken": stdio("--exit-at-start"),
    "mute": stdio("--mute"),
    "missing": {"command": "no-such-mcp-server-xyz"},
}


@pytest.fixture(scope="module")
def http_server():
    """The same server over streamable HTTP on a loopback port, for the module."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([sys.executable, SERVER, "--http", str(port), "--tools", "get_forecast,fail,hang"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            assert time.monotonic() < deadline and process.poll() is None, "the HTTP MCP server did not start"
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}/mcp"
    process.terminate()
    process.wait(10)


@pytest.fixture(scope="module", autouse=True)
def _close_servers(http_server):
    yield
    from aihubmix_magic.session.mcp import servers

    servers().close()  # the kernel's atexit does it; the test process closes them here


@pytest.fixture
def config(tmp_path, monkeypatch, http_server):
    """`.aihubmix/mcp.json` in the notebook folder (the working directory); returns its path."""
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / ".aihubmix"
    folder.mkdir()
    path = folder / "mcp.json"
    servers = {**SERVERS, "remote": {"url": http_server, "headers": {"Authorization": "Bearer header-secret-1"}}}
    path.write_text(json.dumps({"mcpServers": servers}, indent=2))
    monkeypatch.setenv("MCP_TEST_TOKEN", "token-secret-2")
    return path


def markdown(ip) -> list[str]:
    return [o["text/markdown"] for o in ip.display_pub.outputs() if "text/markdown" in o]


def sent_result(sim, endpoint: str) -> str:
    last = sim.requests[-1].body
    return last["messages"][-1]["content"] if endpoint == "chat" else last["input"][-1]["output"]


# -- the loop ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("endpoint", ["chat", "responses"])
@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize("server", ["weather", "remote"])
def test_an_mcp_tool_runs_in_the_loop_on_both_endpoints_and_transports(ip, sim, config, endpoint, stream, server):
    line = f"--mcp {server} --yes -m sim-tool-call -e {endpoint}" + ("" if stream else " --no-stream")
    ip.run_cell_magic("aihubmix", line, "What is the weather in Paris?")
    r = last_response()
    assert r.status == "completed" and r.stream == stream and len(r.steps) == 1
    (run,) = r.steps[0].calls
    assert (run.name, run.arguments, run.result) == ("get_forecast", {"city": "Paris"}, "rain in Paris tomorrow, 14C")
    block, answer, footer = markdown(ip)
    assert block.startswith("<details><summary>Step 1 · <code>get_forecast(city=&#x27;Paris&#x27;)</code> → rain in")
    assert answer == r.text and r.text.endswith("rain in Paris tomorrow, 14C")
    assert "1 step · 1 tool call" in footer
    assert sent_result(sim, endpoint) == "rain in Paris tomorrow, 14C"
    first = sim.requests[0].body["tools"][0]
    definition = first["function"] if endpoint == "chat" else first
    assert definition["name"] == "get_forecast"
    assert definition["description"].startswith("The weather forecast for a city, tomorrow.")
    assert definition["parameters"] == {  # the server's inputSchema, as it is
        "properties": {"city": {"title": "City", "type": "string"}}, "required": ["city"], "type": "object",
        "title": "get_forecastArguments"}


def test_the_session_is_kept_between_cells(ip, sim, config):
    from aihubmix_magic.session.mcp import servers

    ip.run_cell_magic("aihubmix", "--mcp weather --yes -m sim-tool-call", "Weather in Paris?")
    first = servers()._connections["weather"]
    ip.run_cell_magic("aihubmix", "--mcp weather --yes -m sim-tool-call", "Weather in Rome?")
    assert servers()._connections["weather"] is first and not first.dead
    assert last_response().steps[0].calls[0].result == "rain in Paris tomorrow, 14C"


def run_with_client(ip, tool) -> object:
    """One `Client.chat` with `tool` (an McpTool) and approve=True; the call that ran."""
    ip.user_ns["the_tool"] = tool
    ip.run_cell("from aihubmix_magic import Client\n"
                "with Client() as client:\n"
                "    r = client.chat('Weather in Paris?', model='sim-tool-call', tools=[the_tool], approve=True)\n",
                store_history=False)
    ip.user_ns.pop("the_tool")
    return ip.user_ns.pop("r").steps[0].calls[0]


@pytest.mark.parametrize("server", ["failing", "remote"])
def test_a_tool_error_goes_to_the_model(ip, sim, config, server):
    if server == "remote":  # the HTTP server offers get_forecast first: the fail tool is given alone
        from aihubmix_magic.session.mcp import mcp_tools

        run = run_with_client(ip, next(tool for tool in mcp_tools(server) if tool.name == "fail"))
    else:
        ip.run_cell_magic("aihubmix", f"--mcp {server} --yes -m sim-tool-call", "Weather in Paris?")
        run = last_response().steps[0].calls[0]
    assert run.approved and run.result is None
    assert run.error == "McpToolError: Error executing tool fail: no weather station in Paris"
    assert sent_result(sim, "chat") == f"Error: {run.error}"


@pytest.mark.parametrize("server", ["hanging", "remote"])
def test_a_call_that_does_not_answer_in_time_is_cancelled_and_told_to_the_model(ip, sim, config, server):
    settings.tool_timeout = 1.0
    from aihubmix_magic.session.mcp import mcp_tools

    hang = next(tool for tool in mcp_tools(server) if tool.name == "hang")
    started = time.perf_counter()
    run = run_with_client(ip, hang)
    elapsed = time.perf_counter() - started
    assert run.error == (f"McpToolError: no answer from the MCP server {server!r} within 1 s "
                         "(settings.tool_timeout); the call was cancelled")
    assert 1.0 <= run.elapsed < 3 and elapsed < 10
    (again,) = [tool for tool in mcp_tools(server) if tool.name == "hang"]  # the session still answers
    assert again.server == server


def test_a_server_that_crashes_mid_call_is_an_error_for_the_model_and_starts_again_next_cell(ip, sim, config):
    from aihubmix_magic.session.mcp import servers

    ip.run_cell_magic("aihubmix", "--mcp crashing --yes -m sim-tool-call", "Weather in Paris?")
    run = last_response().steps[0].calls[0]
    assert run.error == ("McpToolError: the MCP server 'crashing' stopped during the call; its stderr ends: "
                         "crash: segfault while looking up Paris")
    assert last_response().status == "completed" and sim.request_count == 2
    first = servers()._connections["crashing"]
    assert first.dead
    ip.run_cell_magic("aihubmix", "--mcp crashing --yes -m sim-tool-call", "Weather in Rome?")
    assert servers()._connections["crashing"] is not first  # started again
    assert "stopped during the call" in last_response().steps[0].calls[0].error


def test_the_servers_are_closed_when_the_kernel_exits(tmp_path):
    (tmp_path / ".aihubmix").mkdir()
    (tmp_path / ".aihubmix" / "mcp.json").write_text(json.dumps({"mcpServers": {
        "a": stdio("--tools", "pid"), "b": stdio("--tools", "pid", "--name", "b")}}))
    code = ("from aihubmix_magic import mcp_tools\n"
            "print(*[tool.function() for tool in mcp_tools('a', 'b')])\n")
    done = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    pids = [int(word) for word in done.stdout.split()]
    assert len(pids) == 2
    for pid in pids:  # the servers ended with the process (atexit closed their sessions)
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


# -- nothing is sent ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("server", "message"), [
    ("broken", "McpError: MCP server 'broken' exited before it answered initialize; its stderr ends: "
               "fatal: DATABASE_URL is not set"),
    ("missing", "McpError: MCP server 'missing': the command 'no-such-mcp-server-xyz' is not found (is it "
                "installed and on PATH?)"),
    ("mute", "McpError: MCP server 'mute' did not answer initialize and tools/list within 1 s "
             "(settings.mcp_start_timeout); its stderr ends: loading a very large index…"),
    ("nowhere", "McpError: No MCP server named 'nowhere' in mcp.json (configured: broken, crashing, env, failing, "
                "hanging, keyed, missing, mute, remote, weather, weather2)."),
])
def test_a_server_that_cannot_be_used_is_one_line_and_nothing_is_sent(ip, sim, config, server, message, capsys):
    from aihubmix_magic.session.mcp import mcp_tools

    mcp_tools("weather")  # started (at the default timeout): the short one below is for the mute server
    settings.mcp_start_timeout = 1.0
    with pytest.raises(McpError) as raised:
        ip.run_cell_magic("aihubmix", f"--mcp weather,{server} --yes -m sim-tool-call", "Weather in Paris?")
    assert f"{type(raised.value).__name__}: {raised.value}" == message
    assert sim.request_count == 0
    ip.run_cell(f"%%aihubmix --mcp {server} -m sim-tool-call\nWeather?", store_history=False)
    shown = capsys.readouterr()
    assert "Traceback" not in shown.out + shown.err and "McpError" in shown.out + shown.err
    assert sim.request_count == 0


def test_an_invalid_mcp_json_names_its_path_and_line(ip, sim, config):
    config.write_text('{"mcpServers": {\n  "weather": {"command": "python"},\n  "x": {"command": "y",}\n}}')
    with pytest.raises(McpError, match=rf"^{config} is not valid JSON: line 3, column 24: Expecting property name"):
        ip.run_cell_magic("aihubmix", "--mcp weather -m sim-tool-call", "hi")
    config.write_text('{"mcpServers": {\n  "weather": {"command": "python"},\n  "both": {"command": "a", "url": "b"}}}')
    with pytest.raises(McpError, match=rf"^{config}, line 3: server 'both': give either \"command\""):
        ip.run_cell_magic("aihubmix", "--mcp weather -m sim-tool-call", "hi")
    config.write_text('{"servers": {"weather": {"command": "python"}}}')
    with pytest.raises(McpError, match=r"expected \{\"mcpServers\".*VS Code's \"servers\" key is spelled"):
        ip.run_cell_magic("aihubmix", "--mcp weather -m sim-tool-call", "hi")
    assert sim.request_count == 0


@pytest.mark.parametrize(("line", "message"), [
    ("--mcp weather --compare gpt-4o,gpt-4o-mini", "--mcp does not go with --compare"),
    ("--mcp ,", "--mcp needs the names of MCP servers"),
    ("--mcp weather --max-steps 0", "max_steps must be 1 or more"),
    ("--mcp weather --over items", "--over with --mcp needs --yes"),
])
def test_bad_mcp_options_are_usage_errors(ip, sim, config, line, message):
    ip.user_ns["items"] = ["a"]
    with pytest.raises(UsageError, match=message):
        ip.run_cell_magic("aihubmix", f"{line} -m sim-tool-call", "hi {}")
    assert sim.request_count == 0


def test_without_the_sdk_mcp_is_one_line_saying_how_to_install_it(tmp_path):
    (tmp_path / ".aihubmix").mkdir()
    (tmp_path / ".aihubmix" / "mcp.json").write_text(json.dumps({"mcpServers": {"w": stdio()}}))
    code = ("import sys; sys.modules['mcp'] = None\n"
            "from IPython.testing.globalipapp import start_ipython; ip = start_ipython()\n"
            "ip.run_line_magic('load_ext', 'aihubmix_magic')\n"
            "from aihubmix_magic import McpError\n"
            "try:\n"
            "    ip.run_cell_magic('aihubmix', '--mcp w --yes', 'hi')\n"
            "except McpError as exc:\n"
            "    print('error:', exc)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path).stdout
    assert out.strip().splitlines()[-1] == "error: MCP servers need the MCP SDK: pip install 'aihubmix-magic[mcp]'"


# -- names, schemas, results -------------------------------------------------------------------------------
def test_two_servers_with_one_tool_name_are_told_apart_and_mix_with_python_tools(ip, sim, config):
    def get_weather(city: str) -> str:
        """The weather in a city now."""
        return f"sunny in {city}"

    ip.user_ns["get_weather"] = get_weather
    try:
        ip.run_cell_magic("aihubmix", "--tools get_weather --mcp weather,weather2 --yes -m sim-parallel-tools",
                          "Weather in Paris?")
    finally:
        ip.user_ns.pop("get_weather")
    offered = [tool["function"]["name"] for tool in sim.requests[0].body["tools"]]
    assert offered == ["get_weather", "weather__get_forecast", "picture", "station", "weather2__get_forecast"]
    calls = last_response().steps[0].calls
    assert [(c.name, c.result) for c in calls] == [
        ("get_weather", "sunny in Paris"), ("weather__get_forecast", "rain in Paris tomorrow, 14C"),
        ("picture", "map of Paris\n\n[image: image/png, 48 bytes, not shown to the model]"),
        ("station", '{\n  "city": "Paris",\n  "temperature": 14,\n  "wind": "W 20 km/h"\n}'),
        ("weather2__get_forecast", "rain in Paris tomorrow, 14C")]


def test_names_keep_to_the_api_rule():
    from aihubmix_magic.session.mcp import _offered_names

    names = _offered_names([("fs", "read.file"), ("db", "read.file"), ("x", "a" * 80), ("y", "tool/ü")], ["b"])
    assert names[:2] == ["fs__read_file", "db__read_file"] and names[3] == "tool__"
    assert len(names[2]) == 64 and names[2].startswith("a" * 55 + "_")
    assert _offered_names([("s", "b")], ["b"]) == ["s__b"]
    assert all(__import__("re").fullmatch(r"[a-zA-Z0-9_-]{1,64}", name) for name in names)


def test_results_of_every_kind_become_text():
    from aihubmix_magic.session.mcp import McpToolError, call_result_text

    assert call_result_text({"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}) == "a\n\nb"
    assert call_result_text({"content": [], "structuredContent": {"n": 1}}) == '{"n": 1}'
    assert call_result_text({"content": [{"type": "text", "text": "two"}], "structuredContent": {"result": "two"}}) \
        == "two"  # the SDK's wrapping of a plain value: said once
    assert call_result_text({"content": [{"type": "text", "text": "7"}], "structuredContent": {"result": 7}}) == "7"
    assert call_result_text({"content": [{"type": "text", "text": "see"}], "structuredContent": {"n": 2}}) == \
        'see\n\n{"n": 2}'
    assert call_result_text({"content": [{"type": "text", "text": '{"n": 1}'}], "structuredContent": {"n": 1}}) == \
        '{"n": 1}'
    assert call_result_text({"content": [{"type": "audio", "data": "AAAA", "mimeType": "audio/wav"},
                                         {"type": "resource_link", "name": "r", "uri": "file:///r.txt"},
                                         {"type": "resource", "resource": {"uri": "file:///a", "text": "inside"}},
                                         {"type": "resource", "resource": {"uri": "file:///b", "blob": "AA"}}]}) == (
        "[audio: audio/wav, 3 bytes, not shown to the model]\n\n[resource link: r file:///r.txt]\n\ninside\n\n"
        "[resource: file:///b (binary), not shown]")
    with pytest.raises(McpToolError, match="^disk full$"):
        call_result_text({"content": [{"type": "text", "text": "disk full"}], "isError": True})


# -- secrets -----------------------------------------------------------------------------------------------
def test_the_key_reaches_a_server_only_when_the_config_names_it(ip, sim, config):
    ip.run_cell_magic("aihubmix", "--mcp env --yes -m sim-tool-call", "Weather in Paris?")
    assert last_response().steps[0].calls[0].result == "AIHUBMIX_API_KEY=absent, MCP_TEST_TOKEN=set"
    ip.run_cell_magic("aihubmix", "--mcp keyed --yes -m sim-tool-call", "Weather in Paris?")
    assert last_response().steps[0].calls[0].result == "AIHUBMIX_API_KEY=set, MCP_TEST_TOKEN=absent"


def test_percent_aihubmix_mcp_lists_servers_tools_and_failures_without_secrets(ip, sim, config, capsys):
    servers = json.loads(config.read_text())["mcpServers"]
    listed = ("weather", "remote", "env", "broken", "missing")
    config.write_text(json.dumps({"mcpServers": {name: servers[name] for name in listed}}))
    ip.run_line_magic("aihubmix", "mcp")
    (listing,) = markdown(ip)
    plain = ip.display_pub.outputs()[0]["text/plain"]
    assert f"**weather** (stdio, notebook folder: `{config}`) — running, 3 tools" in listing
    assert "- `get_forecast` — The weather forecast for a city, tomorrow.\n" in listing
    assert "A second line" not in listing
    assert "**remote** (http, notebook folder" in listing and "(headers: Authorization)" in listing
    assert "(env: MCP_TEST_TOKEN)" in listing
    assert "**broken** (stdio" in listing and "cannot start: MCP server 'broken' exited before it answered" in listing
    assert "cannot start: MCP server 'missing': the command 'no-such-mcp-server-xyz' is not found" in listing
    for secret in ("header-secret-1", "token-secret-2", TEST_KEY):
        assert secret not in listing and secret not in plain and secret not in capsys.readouterr().out
    assert plain.startswith(f"weather  (stdio, notebook folder: {config}) — running, 3 tools")
    assert sim.request_count == 0


def test_a_key_quoted_by_a_server_is_masked_in_the_error(ip, sim, config):
    servers = json.loads(config.read_text())["mcpServers"]
    servers["leaky"] = stdio("--exit-at-start", env={"AIHUBMIX_API_KEY": "${AIHUBMIX_API_KEY}"})
    config.write_text(json.dumps({"mcpServers": servers}))
    with pytest.raises(McpError) as raised:
        ip.run_cell_magic("aihubmix", "--mcp leaky -m sim-tool-call", "hi")
    assert TEST_KEY not in str(raised.value) and "using the key sk-…mnop" in str(raised.value)
    assert str(raised.value).endswith("fatal: DATABASE_URL is not set")


def test_percent_aihubmix_mcp_without_a_config_says_where_to_put_one(ip, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ip.run_line_magic("aihubmix", "mcp")
    (listing,) = markdown(ip)
    assert listing.startswith('No MCP servers configured: add {"mcpServers"') and str(tmp_path / ".aihubmix") in listing


def test_the_personal_config_is_read_after_the_notebook_folders(ip, sim, config, _config_dir):
    personal = _config_dir / "mcp.json"
    personal.write_text(json.dumps({"mcpServers": {"mine": stdio("--tools", "get_forecast", "--name", "mine"),
                                                   "weather": {"command": "shadowed"}}}))
    try:
        from aihubmix_magic.session.mcp import load_servers

        found = load_servers()
        assert found["weather"].where == "notebook folder" and found["mine"].where == "personal"
        ip.run_cell_magic("aihubmix", "--mcp mine --yes -m sim-tool-call", "Weather in Paris?")
        assert last_response().steps[0].calls[0].result == "rain in Paris tomorrow, 14C"
    finally:
        personal.unlink()


# -- batch and export --------------------------------------------------------------------------------------
def test_batch_with_mcp_and_approve(ip, sim, config):
    from aihubmix_magic import BatchInputError, batch

    with pytest.raises(BatchInputError, match="mcp= needs approve=True"):
        batch(["Weather in Paris?"], model="sim-tool-call", mcp=["weather"], progress=False)
    assert sim.request_count == 0
    results = batch(["Weather in Paris?", "Weather in Rome?"], model="sim-tool-call", mcp="weather", approve=True,
                    progress=False, resume=False)
    assert [r.steps[0].calls[0].result for r in results] == ["rain in Paris tomorrow, 14C"] * 2
    assert all(r.status == "completed" and r.text.endswith("14C") for r in results)


def test_over_with_mcp_and_yes(ip, sim, config):
    ip.user_ns["cities"] = ["Paris", "Rome"]
    ip.run_cell_magic("aihubmix", "--over cities --mcp weather --yes -m sim-tool-call -o results --no-resume",
                      "Weather in {}?")
    results = ip.user_ns.pop("results")
    assert [r.steps[0].calls[0].result for r in results] == ["rain in Paris tomorrow, 14C"] * 2


def test_export_writes_mcp(ip, sim, config):
    from aihubmix_magic.notebook.export import magic_line

    ip.run_cell_magic("aihubmix", "--mcp weather --yes --max-steps 3 -m sim-tool-call", "Weather in Paris?")
    assert "--mcp weather --max-steps 3" in magic_line(last_response())
    assert "--tools" not in magic_line(last_response())


def test_nobody_to_ask_skips_the_mcp_call(ip, sim, config):
    ip.run_cell_magic("aihubmix", "--mcp weather -m sim-tool-call", "Weather in Paris?")
    (run,) = last_response().steps[0].calls
    assert not run.approved and run.result == DECLINED and sent_result(sim, "chat") == DECLINED


# -- approval and interrupts in a real kernel --------------------------------------------------------------
def _kernel_config(tmp_path) -> None:
    (tmp_path / ".aihubmix").mkdir(exist_ok=True)
    (tmp_path / ".aihubmix" / "mcp.json").write_text(json.dumps({"mcpServers": SERVERS}))


@pytest.mark.kernel
@pytest.mark.parametrize(("label", "approved"), [("Run", True), ("Skip", False)])
def test_the_cell_waits_for_a_click_on_an_mcp_call(kernel, sim, tmp_path, label, approved):  # noqa: F811
    km, kc = kernel
    _kernel_config(tmp_path)
    sim.reset()
    msg_id = kc.execute("%%aihubmix --mcp weather -m sim-tool-call\nWhat is the weather in Paris?", allow_stdin=True)
    seen: list[dict] = []
    found = wait_for_prompt(kc, msg_id, seen)
    assert sim.request_count == 1
    labels = [m["content"]["data"]["state"].get("value", "") for m in seen if m["msg_type"] == "comm_open"
              and m["content"]["data"]["state"].get("_model_name") == "HTMLModel"]
    assert labels == ["<b>Run this tool?</b> <code>get_forecast(city=&#x27;Paris&#x27;)</code>"]
    click(kc, found[label])
    messages_until_idle(kc, msg_id)
    assert kc.get_shell_msg(timeout=30)["content"]["status"] == "ok"
    output = "rain in Paris tomorrow, 14C" if approved else DECLINED
    assert report(kc) == f"[('get_forecast', {approved}, {output!r})] completed"


@pytest.mark.kernel
def test_a_frontend_without_stdin_skips_the_mcp_call(kernel, sim, tmp_path):  # noqa: F811
    km, kc = kernel
    _kernel_config(tmp_path)
    msg_id = kc.execute("%%aihubmix --mcp weather -m sim-tool-call\nweather?", allow_stdin=False)
    messages = messages_until_idle(kc, msg_id, timeout=60)
    assert kc.get_shell_msg(timeout=30)["content"]["status"] == "ok"
    assert buttons(messages) == {}
    assert report(kc) == f"[('get_forecast', False, {DECLINED!r})] completed"


@pytest.mark.kernel
def test_an_interrupt_during_an_mcp_call_stops_at_once(kernel, sim, tmp_path):  # noqa: F811
    km, kc = kernel
    _kernel_config(tmp_path)
    assert kc.execute_interactive("from aihubmix_magic.session.mcp import mcp_tools; _ = mcp_tools('hanging')",
                                  timeout=60)["content"]["status"] == "ok"
    sim.reset()
    msg_id = kc.execute("%%aihubmix --mcp hanging --yes -m sim-tool-call\nweather?")
    deadline = time.monotonic() + 60
    while sim.request_count < 1:
        assert time.monotonic() < deadline, "the request was never sent"
        time.sleep(0.05)
    time.sleep(0.5)  # the call is waiting on the server
    interrupted = time.perf_counter()
    km.interrupt_kernel()
    messages_until_idle(kc, msg_id)
    reply = kc.get_shell_msg(timeout=30)
    assert time.perf_counter() - interrupted < 5
    assert reply["content"]["status"] == "error" and reply["content"]["ename"] == "StreamInterruptedError"
    assert "stopped after 1 step" in reply["content"]["evalue"]
    assert sim.request_count == 1
    ok = kc.execute_interactive("_ = mcp_tools('hanging')", timeout=30)  # the server is still usable
    assert ok["content"]["status"] == "ok"
