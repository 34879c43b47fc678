"""`%%aihubmix --tools`, `--yes`, `--max-steps`, `--web` in a real IPython shell against the simulator: the
steps shown above the answer, the footer, approval (callables, `--yes`, nobody to ask), bad input that sends
nothing, an interrupt in a tool, export of the steps, and the terminal display."""

from __future__ import annotations

import json
from typing import Literal

import nbformat
import pytest
from IPython.core.error import UsageError

from aihubmix_magic import StreamInterruptedError, export_notebook, last_response, settings
from aihubmix_magic.core.tools import DECLINED
from tests.conftest import TEST_KEY


def get_weather(city: str) -> str:
    """The weather in a city now."""
    return f"sunny in {city}, 21C"


def get_time(city: str) -> str:
    """The local time in a city."""
    return f"12:00 in {city}"


@pytest.fixture
def tools(ip):
    ip.user_ns.update(get_weather=get_weather, get_time=get_time)
    yield ip
    for name in ("get_weather", "get_time", "stop_here", "with_args", "not_a_function", "leaky"):
        ip.user_ns.pop(name, None)


def markdown(ip) -> list[str]:
    return [o["text/markdown"] for o in ip.display_pub.outputs() if "text/markdown" in o]


@pytest.mark.parametrize("endpoint", ["chat", "responses"])
@pytest.mark.parametrize("stream", [True, False])
def test_tools_yes_runs_the_loop_and_shows_each_step_above_the_answer(tools, sim, endpoint, stream):
    line = f"--tools get_weather,get_time --yes -m sim-parallel-tools -e {endpoint}" + ("" if stream else " --no-stream")
    tools.run_cell_magic("aihubmix", line, "What is the weather in Paris?")
    r = last_response()
    assert r.status == "completed" and r.stream == stream and len(r.steps) == 1
    assert [(c.name, c.result) for c in r.steps[0].calls] == [("get_weather", "sunny in Paris, 21C"),
                                                              ("get_time", "12:00 in Paris")]
    shown = markdown(tools)
    block_weather, block_time, answer, footer = shown
    assert block_weather.startswith("<details><summary>Step 1 · <code>get_weather(city=&#x27;Paris&#x27;)</code> → "
                                    "sunny in Paris, 21C · ")
    assert block_time.startswith("<details><summary>Step 1 · <code>get_time(city=&#x27;Paris&#x27;)</code>")
    assert "Result (sent to the model)" in block_weather and block_weather.endswith("</details>")
    assert answer == r.text and r.text.endswith("sunny in Paris, 21C; 12:00 in Paris")
    assert f"{r.usage.input_tokens:,} → {r.usage.output_tokens:,} tokens" in footer
    assert "1 step · 2 tool calls" in footer
    assert sim.request_count == 2


def test_repeated_tools_options_and_a_callable_approval_in_code(tools, sim):
    tools.run_cell_magic("aihubmix", "--tools get_weather --tools get_time --yes -m sim-parallel-tools", "weather?")
    assert [c.name for c in last_response().steps[0].calls] == ["get_weather", "get_time"]
    tools.run_cell(
        "from aihubmix_magic import Client\n"
        "asked = []\n"
        "with Client() as client:\n"
        "    r = client.chat('weather?', model='sim-parallel-tools', tools=[get_weather, get_time],\n"
        "                    approve=lambda call: asked.append(call.name) or call.name == 'get_time')\n",
        store_history=False)
    r = tools.user_ns["r"]
    assert tools.user_ns["asked"] == ["get_weather", "get_time"]
    assert [(c.name, c.approved, c.output) for c in r.steps[0].calls] == [
        ("get_weather", False, DECLINED), ("get_time", True, "12:00 in Paris")]


@pytest.mark.parametrize("endpoint", ["chat", "responses"])
@pytest.mark.parametrize("stream", [True, False])
def test_without_yes_and_nobody_to_ask_the_call_is_skipped(tools, sim, endpoint, stream):
    line = f"--tools get_weather -m sim-tool-call -e {endpoint}" + ("" if stream else " --no-stream")
    tools.run_cell_magic("aihubmix", line, "weather?")
    r = last_response()
    (run,) = r.steps[0].calls
    assert not run.approved and run.result == DECLINED and r.text.endswith(DECLINED)
    assert "skipped (nobody could be asked" in markdown(tools)[0]
    last = sim.requests[-1].body
    sent = last["messages"][-1]["content"] if endpoint == "chat" else last["input"][-1]["output"]
    assert sent == DECLINED


@pytest.mark.parametrize("endpoint", ["chat", "responses"])
def test_max_steps_stops_the_loop_with_one_line(tools, sim, endpoint):
    tools.run_cell_magic("aihubmix", f"--tools get_weather --yes --max-steps 2 -m sim-tools-forever -e {endpoint}", "go")
    r = last_response()
    assert len(r.steps) == 2 and r.status == "incomplete" and r.finish_reason == "max_steps"
    shown = markdown(tools)
    assert shown[-2] == ("*Stopped after 2 steps (--max-steps 2): the model still wanted to call get_weather.*")
    assert "stopped early: max_steps" in shown[-1] and "2 steps · 2 tool calls" in shown[-1]
    assert sim.request_count == 3


@pytest.mark.parametrize("endpoint", ["chat", "responses"])
def test_an_exception_in_a_tool_shows_in_the_cell_and_goes_to_the_model(tools, sim, endpoint):
    def with_args(city: str) -> str:
        """Fails."""
        return {"a": 1}[city]

    tools.user_ns["with_args"] = with_args
    tools.run_cell_magic("aihubmix", f"--tools with_args --yes -m sim-tool-call -e {endpoint}", "go")
    (run,) = last_response().steps[0].calls
    assert run.error == "KeyError: 'Paris'"
    assert "error: KeyError: &#x27;Paris&#x27;" in markdown(tools)[0]
    assert last_response().text.endswith("Error: KeyError: 'Paris'")


def test_an_interrupt_in_a_tool_stops_at_once_and_keeps_the_steps(tools, sim):
    calls = []

    def stop_here(city: str) -> str:
        """Pretends the user pressed stop while it ran."""
        calls.append(city)
        raise KeyboardInterrupt

    tools.user_ns["stop_here"] = stop_here
    with pytest.raises(StreamInterruptedError, match="stopped after 1 step"):
        tools.run_cell_magic("aihubmix", "--tools get_weather,stop_here --yes -m sim-parallel-tools", "go")
    r = last_response()
    assert calls == ["Paris"] and r.status == "cancelled" and len(r.steps) == 1
    assert [c.name for c in r.steps[0].calls] == ["get_weather"]  # the interrupted call is not kept as run
    assert sim.request_count == 1  # nothing more was sent
    assert "interrupted" in markdown(tools)[-1]


class Thing:
    pass


@pytest.mark.parametrize(("line", "words"), [
    ("--tools no_such_function", "there is no no_such_function in the notebook"),
    ("--tools get_weather,no_such_function", "no_such_function"),
    ("--tools not_a_function", "is a int, not a function"),
    ("--tools ','", "needs the names of functions"),
    ("--tools 'a b'", "not a name"),
    ("--tools get_weather --compare gpt-4o,gpt-4o-mini", "does not go with --compare"),
    ("--tools get_weather --over '[1]'", "needs --yes"),
    ("--yes", "--yes goes with --tools"),
    ("--max-steps 3", "--max-steps goes with --tools"),
    ("--tools get_weather --max-steps 0", "1 or more"),
    ("--tools get_weather --max-steps x", "invalid int value"),
    ("--tools untyped_lambda", "cannot describe"),
    ("--tools opaque_hint", "opaque_hint: parameter 'thing' has the type"),
])
def test_bad_tools_input_is_one_usage_error_and_nothing_is_sent(tools, sim, line, words):
    def opaque_hint(thing: Thing) -> str:
        return ""

    tools.user_ns.update(not_a_function=3, untyped_lambda=lambda city: city, opaque_hint=opaque_hint)
    with pytest.raises(UsageError, match=words):
        tools.run_cell_magic("aihubmix", line, "weather?")
    assert sim.request_count == 0
    for name in ("untyped_lambda", "opaque_hint"):
        tools.user_ns.pop(name)


@pytest.mark.parametrize("endpoint", ["chat", "responses"])
def test_web_lists_the_citations_under_the_answer(ip, sim, endpoint):
    ip.run_cell_magic("aihubmix", f"--web -e {endpoint}", "Tell me about sea otters")
    r = last_response()
    assert len(r.citations) == 2
    answer, sources, footer = markdown(ip)
    assert answer == r.text
    assert sources == ("**Sources**\n\n1. [Example article on tell me about sea](https://example.org/articles/tell-me-about-sea)"
                       "\n2. [Example facts page](https://example.com/tell-me-about-sea/facts)")
    body = sim.requests[-1].body
    assert body.get("web_search_options") == {} if endpoint == "chat" else {"type": "web_search"} in body["tools"]


def test_web_refused_is_one_line(ip, sim):
    from aihubmix_magic import BadRequestError

    with pytest.raises(BadRequestError, match="refused web search"):
        ip.run_cell_magic("aihubmix", "--web -m sim-no-web", "news?")


def test_export_writes_the_steps(tools, sim, tmp_path):
    tools.run_cell_magic("aihubmix", "--tools get_weather --yes -m sim-tool-call -e responses", "weather?")
    r = last_response()
    path = export_notebook([r], tmp_path / "tools.ipynb")
    nb = nbformat.read(path, as_version=4)
    cell = nb.cells[-1]
    assert cell.source.startswith("%%aihubmix -m sim-tool-call -e responses --tools get_weather")
    texts = [o["data"]["text/markdown"] for o in cell.outputs]
    assert texts[0].startswith("<details><summary>Step 1 · <code>get_weather(city=&#x27;Paris&#x27;)</code>")
    assert texts[1] == r.text and "1 step · 1 tool call" in texts[-1]
    (step,) = cell.metadata["aihubmix"]["steps"]
    assert step["calls"][0] | {"elapsed": 0} == {"id": r.steps[0].calls[0].id, "name": "get_weather",
                                                  "arguments": {"city": "Paris"}, "approved": True,
                                                  "result": "sunny in Paris, 21C", "error": None, "elapsed": 0}
    assert TEST_KEY not in nbformat.writes(nb)


def test_export_keeps_the_step_limit(tools, sim, tmp_path):
    tools.run_cell_magic("aihubmix", "--tools get_weather --yes --max-steps 3 -m sim-tool-call", "weather?")
    r = last_response()
    assert r.spec.max_steps == 3 and "max_steps" not in r.request  # kept for export, never sent
    nb = nbformat.read(export_notebook([r], tmp_path / "steps.ipynb"), as_version=4)
    assert nb.cells[-1].source.startswith("%%aihubmix -m sim-tool-call -e chat --tools get_weather --max-steps 3")


def test_the_key_is_never_shown_in_a_step(tools, sim):
    def leaky(city: str) -> str:
        """Returns the key it should never see."""
        return f"key={TEST_KEY}"

    tools.user_ns["leaky"] = leaky
    tools.run_cell_magic("aihubmix", "--tools leaky --yes -m sim-tool-call", "weather?")
    everything = json.dumps(tools.display_pub.messages, ensure_ascii=False) + json.dumps(
        [s.to_dict() for s in last_response().steps], ensure_ascii=False)
    assert TEST_KEY not in everything and "sk-…mnop" in everything


def test_terminal_prints_one_line_per_step(tools, sim, capsys):
    settings.display = "terminal"
    tools.run_cell_magic("aihubmix", "--tools get_weather --yes -m sim-tool-call", "weather?")
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("Step 1 · get_weather(city='Paris') → sunny in Paris, 21C · ")
    assert "The tool returned: sunny in Paris, 21C" in out and "1 step · 1 tool call" in lines[-1]


def test_over_with_tools_and_yes(tools, sim):
    tools.user_ns["cities"] = ["Paris", "Rome"]
    tools.run_cell_magic("aihubmix", "--over cities --tools get_weather --yes -m sim-tool-call -o results",
                         "Weather in {}?")
    results = tools.user_ns["results"]
    assert [len(r.steps) for r in results] == [1, 1] and all(r.status == "completed" for r in results)


def test_loading_the_extension_does_not_load_the_tool_modules():
    import subprocess
    import sys

    code = ("import sys; from IPython.testing.globalipapp import start_ipython; ip = start_ipython(); "
            "ip.run_line_magic('load_ext', 'aihubmix_magic'); "
            "print(sorted(m for m in ('aihubmix_magic.core.tools', 'aihubmix_magic.core.toolloop', 'aihubmix_magic.notebook.approval',"
            " 'aihubmix_magic.notebook.toolcell', 'aihubmix_magic.session.mcp', 'mcp', 'anyio', 'ipywidgets', 'httpx')"
            " if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"





def test_what_the_model_said_before_its_calls_is_in_the_step(tools, sim):
    from aihubmix_magic.core.types import Step, ToolRun
    from aihubmix_magic.notebook.toolcell import step_block

    class Said:
        text = "Let me look that up."

    run = ToolRun(id="c1", name="get_weather", arguments={"city": "Paris"}, approved=True, result="sunny")
    block = step_block(Step(1, Said(), [run]), run)["text/markdown"]
    assert "The model said: Let me look that up." in block
    other = ToolRun(id="c2", name="get_time", arguments={"city": "Paris"}, approved=True, result="12:00")
    assert "The model said" not in step_block(Step(1, Said(), [run, other]), other)["text/markdown"]


def prices(category: str) -> str:
    """Today's prices of a category: 'fruit' or 'vegetable'."""
    return f"prices of {category}"


def find(category: str, market: str = "central") -> str:
    """Find what a market sells.

    Args:
        category: fruit, vegetable or herb.
        market: the market's name.
    """
    return f"{category} at {market}"


def stock(kind: Literal["apple", "pear"], note: str = "") -> str:
    """Stock of a kind: 'banana' or 'cherry' would be wrong here, the Literal says what is allowed."""
    return kind


@pytest.mark.parametrize(("function", "allowed"), [
    (prices, {"category": {"fruit", "vegetable"}}),  # named in the description
    (find, {"category": {"fruit", "vegetable", "herb"}}),  # named under Args:
    (stock, {"kind": {"apple", "pear"}}),  # the Literal first, whatever the docstring says
])
def test_demo_tool_arguments_come_from_the_schema_then_the_docstring(tools, sim, function, allowed):
    tools.user_ns[function.__name__] = function
    tools.run_cell_magic("aihubmix", f"--tools {function.__name__} --yes -m sim-tool-call", "What is on offer?")
    (run,) = last_response().steps[0].calls
    for name, values in allowed.items():
        assert run.arguments[name] in values, run.arguments
    tools.user_ns.pop(function.__name__)
