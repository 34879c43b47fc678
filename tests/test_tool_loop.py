"""The tool loop over a real socket: Client.chat/respond(tools=[...]) and batch(tools=[...]) against the
simulator's tool-calling models, both endpoints, streamed and not. The official openai SDK accumulates the
same tool-call streams as the reference; web search and its citations."""

from __future__ import annotations

import json

import pytest

from aihubmix_magic import BadRequestError, BatchInputError, ToolCall, Usage, batch
from aihubmix_magic.core.tools import DECLINED
from tests.conftest import TEST_KEY

ENDPOINTS = ["chat", "responses"]
STREAMS = [False, True]


def get_weather(city: str, days: int = 1) -> str:
    """The weather in a city.

    Args:
        city: the city's name
        days: how many days ahead
    """
    return f"sunny in {city}, 21C"


def get_time(city: str) -> dict:
    """The local time in a city."""
    return {"city": city, "time": "12:00"}


def broken(city: str) -> str:
    """Always fails."""
    raise RuntimeError(f"no data\nfor {city}")


def ask(client, endpoint, prompt="What is the weather in Paris?", **kwargs):
    call = client.chat if endpoint == "chat" else client.respond
    return call(prompt, **kwargs)


def bodies(sim, since=0):
    return [r.body for r in sim.requests[since:] if r.path.endswith(("/chat/completions", "/responses"))]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("stream", STREAMS)
def test_the_model_calls_the_first_tool_then_answers_with_its_result(client, sim, endpoint, stream):
    seen = []

    def approve(call):
        seen.append(call)
        return True

    r = ask(client, endpoint, model="sim-tool-call", stream=stream, tools=[get_weather, get_time], approve=approve)
    assert r.status == "completed" and r.finish_reason == "stop"
    assert r.text.endswith("The tool returned: sunny in Paris, 21C")
    (step,) = r.steps
    (run,) = step.calls
    assert (run.name, run.arguments, run.approved, run.result, run.error) == (
        "get_weather", {"city": "Paris", "days": 3}, True, "sunny in Paris, 21C", None)
    assert run.elapsed >= 0 and step.response.tool_calls[0].id == run.id
    assert [isinstance(c, ToolCall) and c.name for c in seen] == ["get_weather"]
    first, second = bodies(sim)
    assert second["model"] == first["model"] and second["tools"] == first["tools"]
    if endpoint == "chat":
        assert second["messages"][-2]["tool_calls"][0]["id"] == run.id
        assert second["messages"][-1] == {"role": "tool", "tool_call_id": run.id, "content": "sunny in Paris, 21C"}
    else:
        echoed, output = second["input"][-2:]
        assert echoed["type"] == "function_call" and echoed["call_id"] == run.id
        assert output == {"type": "function_call_output", "call_id": run.id, "output": "sunny in Paris, 21C"}
    # usage sums every step: the step's answer and the final one (its own usage is in its raw JSON)
    assert r.usage == step.response.usage + Usage.from_json(r.raw["usage"])
    assert step.response.usage.output_tokens > 0 and Usage.from_json(r.raw["usage"]).output_tokens > 0


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("stream", STREAMS)
def test_parallel_calls_run_in_order_and_go_back_by_id(client, sim, endpoint, stream):
    r = ask(client, endpoint, model="sim-parallel-tools", stream=stream, tools=[get_weather], approve=True)
    (step,) = r.steps
    assert [(c.name, c.arguments["city"]) for c in step.calls] == [("get_weather", "Paris"), ("get_weather", "London")]
    assert len({c.id for c in step.calls}) == 2
    assert r.text.endswith("sunny in Paris, 21C; sunny in London, 21C")
    last = bodies(sim)[-1]
    if endpoint == "chat":
        assert [m["tool_call_id"] for m in last["messages"] if m["role"] == "tool"] == [c.id for c in step.calls]
    else:
        assert [i["call_id"] for i in last["input"] if i.get("type") == "function_call_output"] == \
            [c.id for c in step.calls]
    two = ask(client, endpoint, model="sim-parallel-tools", stream=stream, tools=[get_weather, get_time], approve=True)
    assert [c.name for c in two.steps[0].calls] == ["get_weather", "get_time"]
    assert '"time": "12:00"' in two.text


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_our_accumulated_tool_calls_match_the_sdks(client, sdk, endpoint):
    """The same streamed tool calls (arguments split across chunks, two calls by index), accumulated by us
    and by the openai SDK, agree with each other and with the non-streamed answer."""
    tools = [get_weather, get_time]
    ours = ask(client, endpoint, model="sim-parallel-tools", stream=True, tools=tools, approve=False)
    first = ours.steps[0].response
    whole = ask(client, endpoint, model="sim-parallel-tools", stream=False, tools=tools, approve=False)
    definitions = first.request["tools"]
    if endpoint == "chat":
        with sdk.chat.completions.stream(model="sim-parallel-tools", tools=definitions,
                                         messages=[{"role": "user", "content": "What is the weather in Paris?"}]) as s:
            message = s.get_final_completion().choices[0].message
        reference = [(c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls]
    else:
        with sdk.responses.stream(model="sim-parallel-tools", tools=definitions,
                                  input="What is the weather in Paris?") as s:
            final = s.get_final_response()
        reference = [(item.name, json.loads(item.arguments)) for item in final.output if item.type == "function_call"]
    assert [(c.name, c.parsed_arguments()) for c in first.tool_calls] == reference
    assert [(c.name, c.parsed_arguments()) for c in whole.steps[0].response.tool_calls] == reference
    assert len(reference) == 2


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("stream", STREAMS)
def test_declined_and_failing_calls_tell_the_model_and_it_goes_on(client, sim, endpoint, stream):
    r = ask(client, endpoint, model="sim-tool-call", stream=stream, tools=[get_weather], approve=False)
    (run,) = r.steps[0].calls
    assert not run.approved and run.result == DECLINED and r.status == "completed"
    assert r.text.endswith("The tool returned: " + DECLINED)
    r = ask(client, endpoint, model="sim-tool-call", stream=stream, tools=[broken], approve=True)
    (run,) = r.steps[0].calls
    assert run.approved and run.result is None and run.error == "RuntimeError: no data for Paris"
    assert r.text.endswith("The tool returned: Error: RuntimeError: no data for Paris")


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("stream", STREAMS)
def test_the_step_limit_stops_a_model_that_never_answers(client, sim, endpoint, stream):
    r = ask(client, endpoint, model="sim-tools-forever", stream=stream, tools=[get_weather], approve=True, max_steps=3)
    assert len(r.steps) == 3 and sim.request_count == 4
    assert r.status == "incomplete" and r.finish_reason == "max_steps" and r.tool_calls
    total = Usage()
    for step in r.steps:
        total += step.response.usage
    assert r.usage == total + Usage.from_json(r.raw["usage"])


def test_json_tool_definitions_alone_are_not_run(client):
    definition = {"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
    r = client.chat("weather?", model="sim-tool-call", tools=[definition])
    assert r.finish_reason == "tool_calls" and r.steps == [] and r.tool_calls[0].name == "get_weather"


def test_where_nobody_can_answer_the_call_is_skipped(client):
    r = client.chat("weather?", model="sim-tool-call", tools=[get_weather])  # pytest's stdin is not a terminal
    (run,) = r.steps[0].calls
    assert not run.approved and run.result == DECLINED and "nobody could be asked" in run.note


def test_the_key_never_reaches_a_tool_or_a_step(client, sim):
    def leaky(city: str) -> str:
        """Returns a secret."""
        return f"{city}: the key is {TEST_KEY}"

    r = client.chat("weather?", model="sim-tool-call", tools=[leaky], approve=True)
    assert TEST_KEY not in json.dumps([s.to_dict() for s in r.steps])
    assert TEST_KEY not in json.dumps(bodies(sim)) and TEST_KEY not in r.text
    assert "sk-…mnop" in r.steps[0].calls[0].result


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("stream", STREAMS)
def test_web_search_citations(client, sim, endpoint, stream):
    r = ask(client, endpoint, "Tell me about sea otters", model="gpt-4o-mini", stream=stream, web_search=True)
    assert r.text.endswith("Sources: [1] [2].")
    assert [c.url for c in r.citations] == ["https://example.org/articles/tell-me-about-sea",
                                            "https://example.com/tell-me-about-sea/facts"]
    assert r.citations[1].title == "Example facts page"
    body = bodies(sim)[-1]
    assert body.get("web_search_options") == {} if endpoint == "chat" else body["tools"] == [{"type": "web_search"}]
    with pytest.raises(BadRequestError, match=r"refused web search \(--web\).*-search variant"):
        ask(client, endpoint, model="sim-no-web", stream=stream, web_search=True)


def test_citations_from_links_in_the_text():
    from aihubmix_magic import Request, Response
    from aihubmix_magic.core.protocol import request_body, response_from_json

    text = "See [the docs](https://docs.example.org/a) and https://example.net/b, or [the docs](https://docs.example.org/a)."
    raw = {"id": "x", "model": "m", "choices": [{"index": 0, "finish_reason": "stop",
                                                 "message": {"role": "assistant", "content": text}}]}
    for web in (True, False):
        spec = Request(model="m", prompt="hi", web_search=web)
        r: Response = response_from_json(spec, request_body(spec), raw)
        expected = [("https://docs.example.org/a", "the docs"), ("https://example.net/b", "")] if web else []
        assert [(c.url, c.title) for c in r.citations] == expected


def test_batch_with_tools(sim):
    results = batch(["What is the weather in Paris?", "And in Rome?"], model="sim-tool-call", tools=[get_weather],
                    approve=True, progress=False)
    assert [r.status for r in results] == ["completed", "completed"]
    assert all(len(r.steps) == 1 and r.steps[0].calls[0].result == "sunny in Paris, 21C" for r in results)
    assert results.summary.input_tokens == sum(r.usage.input_tokens for r in results)
    chosen = []
    results = batch(["weather?"], model="sim-parallel-tools", endpoint="responses", tools=[get_weather, get_time],
                    approve=lambda call: chosen.append(call.name) or call.name == "get_time", progress=False)
    (r,) = results
    assert chosen == ["get_weather", "get_time"]
    assert [(c.name, c.approved) for c in r.steps[0].calls] == [("get_weather", False), ("get_time", True)]
    forever = batch(["weather?"], model="sim-tools-forever", tools=[get_weather], approve=True, max_steps=2,
                    progress=False)
    assert forever[0].status == "incomplete" and len(forever[0].steps) == 2


def test_batch_with_tools_needs_approval_up_front(sim):
    for approve in (None, False, "yes"):
        with pytest.raises(BatchInputError, match="needs approve=True"):
            batch(["weather?"], model="sim-tool-call", tools=[get_weather], approve=approve, progress=False)
    with pytest.raises(BatchInputError, match="go with tools"):
        batch(["weather?"], approve=True, progress=False)
    assert sim.request_count == 0


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_an_interrupt_between_steps_keeps_what_ran(client, sim, endpoint):
    from aihubmix_magic.core.toolloop import ToolLoopInterrupted

    asked = []

    def approve(call):
        asked.append(call.name)
        if len(asked) == 3:  # the user presses stop while the second step waits for approval
            raise KeyboardInterrupt
        return True

    with pytest.raises(ToolLoopInterrupted) as caught:
        ask(client, endpoint, model="sim-tools-forever", stream=True, tools=[get_weather], approve=approve)
    r = caught.value.response
    assert isinstance(caught.value, KeyboardInterrupt)
    assert r.status == "cancelled" and [len(s.calls) for s in r.steps] == [1, 1, 0]
    assert sim.request_count == 3


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_the_simulators_tool_call_streams_split_the_arguments(sim, endpoint):
    """Several calls by index (chat) / output index (responses), each one's arguments in several pieces."""
    import httpx

    from aihubmix_magic.core.protocol import request_body
    from aihubmix_magic.core.request import Request

    body = request_body(Request(model="sim-parallel-tools", prompt="weather?", endpoint=endpoint, stream=True,
                                tools=(get_weather, get_time)))
    path = "/chat/completions" if endpoint == "chat" else "/responses"
    with httpx.Client(base_url=sim.base_url, headers={"Authorization": f"Bearer {TEST_KEY}"}) as http:
        text = http.post(path, json=body).text
    events = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]
    pieces: dict[int, list[str]] = {}
    if endpoint == "chat":
        for event in events:
            for fragment in (event["choices"] or [{}])[0].get("delta", {}).get("tool_calls") or ():
                pieces.setdefault(fragment["index"], []).append(fragment["function"].get("arguments", ""))
    else:
        for event in events:
            if event["type"] == "response.function_call_arguments.delta":
                pieces.setdefault(event["output_index"], []).append(event["delta"])
    assert sorted(pieces) == [0, 1]
    assert all(len([p for p in parts if p]) >= 3 for parts in pieces.values())
    assert [json.loads("".join(parts)) for _, parts in sorted(pieces.items())] == [{"city": "Paris", "days": 3},
                                                                                     {"city": "Paris"}]
