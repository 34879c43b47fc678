"""Tools without a network: the JSON schema of a Python function, running a call, the text of a result, and
the messages that go back (the protocol core's `follow_up`) and the request bodies of both endpoints."""

from __future__ import annotations

import enum
import json
from typing import Annotated, Literal, Optional

import pandas as pd
import pydantic
import pytest

from aihubmix_magic import Request, Response, Tool, ToolCall, ToolDefinitionError
from aihubmix_magic.core import protocol as protocol
from aihubmix_magic.core.tools import DECLINED, MAX_RESULT_CHARS, describe_tools, result_text, run_call


class Unit(enum.Enum):
    CELSIUS = "C"
    FAHRENHEIT = "F"


class Address(pydantic.BaseModel):
    street: str
    city: str
    zip_code: Optional[str] = None  # noqa: UP045 - the Optional spelling is part of what is tested


class Order(pydantic.BaseModel):
    address: Address
    items: list[str]


def get_weather(city: str, unit: Unit = Unit.CELSIUS, days: int | None = None, detailed: bool = False,
                hours: list[int] | None = None, mode: Literal["now", "forecast"] = "now",
                extra: dict[str, float] | None = None, ratio: float = 1.0) -> str:
    """The weather in a city.

    Looks it up in a table (this paragraph is not part of the description).

    Args:
        city: the city's name,
            e.g. Paris
        unit (Unit): Celsius or Fahrenheit
        days: how many days ahead

    Returns:
        a sentence
    """
    return f"sunny in {city}, 21{unit.value}"


def numpy_style(frame_name: str, limit: int = 5):
    """Rows of a table.

    Parameters
    ----------
    frame_name : str
        Which table.
    limit : int, optional
        How many rows
        at most.

    Returns
    -------
    str
    """
    return frame_name * limit


def test_schema_from_hints_defaults_and_google_docstring():
    tool = Tool.from_function(get_weather)
    assert tool.name == "get_weather" and tool.description == "The weather in a city."
    properties = tool.parameters["properties"]
    assert tool.parameters["required"] == ["city"]
    assert properties["city"] == {"type": "string", "description": "the city's name, e.g. Paris"}
    assert properties["unit"] == {"type": "string", "enum": ["C", "F"], "description": "Celsius or Fahrenheit",
                                  "default": "C"}
    assert properties["days"] == {"type": ["integer", "null"], "description": "how many days ahead", "default": None}
    assert properties["detailed"] == {"type": "boolean", "default": False}
    assert properties["hours"] == {"type": ["array", "null"], "items": {"type": "integer"}, "default": None}
    assert properties["mode"] == {"type": "string", "enum": ["now", "forecast"], "default": "now"}
    assert properties["extra"] == {"type": ["object", "null"], "additionalProperties": {"type": "number"},
                                   "default": None}
    assert properties["ratio"] == {"type": "number", "default": 1.0}


def test_numpy_docstring_and_unannotated_parameters():
    tool = Tool.from_function(numpy_style)
    assert tool.description == "Rows of a table."
    assert tool.parameters["properties"] == {
        "frame_name": {"type": "string", "description": "Which table."},
        "limit": {"type": "integer", "description": "How many rows at most.", "default": 5},
    }

    def untyped(name, count=3):
        return name

    assert Tool.from_function(untyped).parameters["properties"] == {
        "name": {"type": "string"}, "count": {"type": "integer", "default": 3}}


def test_pydantic_model_parameter_is_its_schema_with_definitions_hoisted():
    def place_order(order: Order, note: Annotated[str, "for the courier"] = "") -> str:
        """Place an order."""
        return order.address.city

    tool = Tool.from_function(place_order)
    order = tool.parameters["properties"]["order"]
    assert order["properties"]["address"] == {"$ref": "#/$defs/Address"}
    assert tool.parameters["$defs"]["Address"]["required"] == ["street", "city"]
    assert tool.parameters["properties"]["note"]["description"] == "for the courier"
    # the arguments are turned into the model (and the Enum) before the call
    call = ToolCall("c1", "place_order", json.dumps({"order": {"address": {"street": "1 Main", "city": "Lyon"},
                                                               "items": ["tea"]}}))
    run = run_call(call, tool, approved=True, scrub=str)
    assert run.result == "Lyon" and run.error is None
    run = run_call(ToolCall("c2", "get_weather", '{"city": "Oslo", "unit": "F"}'), Tool.from_function(get_weather),
                   approved=True, scrub=str)
    assert run.result == "sunny in Oslo, 21F"


@pytest.mark.parametrize(("function", "words"), [
    (lambda city: city, "lambda"),
    (lambda: None, "lambda"),
])
def test_lambdas_cannot_be_described(function, words):
    with pytest.raises(ToolDefinitionError, match=words):
        Tool.from_function(function)


class Opaque:
    pass


def test_functions_that_cannot_be_described_name_themselves():
    def takes_opaque(thing: Opaque) -> str:
        return ""

    def variadic(*values: int) -> int:
        return 0

    def positional(a: int, /) -> int:
        return a

    with pytest.raises(ToolDefinitionError, match=r"takes_opaque: parameter 'thing' has the type Opaque"):
        Tool.from_function(takes_opaque)
    with pytest.raises(ToolDefinitionError, match=r"variadic: \*values"):
        Tool.from_function(variadic)
    with pytest.raises(ToolDefinitionError, match=r"positional: a is positional-only"):
        Tool.from_function(positional)
    with pytest.raises(ToolDefinitionError, match="is a class"):
        Tool.from_function(Opaque)
    def undefined_hint(thing: NoSuchType) -> str:  # noqa: F821 - a hint naming nothing
        return ""

    with pytest.raises(ToolDefinitionError, match=r"undefined_hint: its type hints cannot be read"):
        Tool.from_function(undefined_hint)
    with pytest.raises(ToolDefinitionError, match="two tools are named get_weather"):
        describe_tools([get_weather, get_weather])
    with pytest.raises(ToolDefinitionError, match="not a function"):
        describe_tools(["get_weather"])


def test_result_text():
    assert result_text("sunny") == "sunny"
    assert result_text({"t": 21, "sky": "clear"}) == '{"t": 21, "sky": "clear"}'
    assert result_text([1, 2.5]) == "[1, 2.5]" and result_text(3) == "3" and result_text(None) == "null"
    assert result_text(Unit.CELSIUS) == '"C"'
    assert result_text(Address(street="1 Main", city="Lyon")) == '{"street":"1 Main","city":"Lyon","zip_code":null}'
    frame = pd.DataFrame({"product": [f"p{i}" for i in range(80)], "rating": range(80)})
    table = result_text(frame)
    assert table.startswith("|  | product | rating |") and "| 49 | p49 | 49 |" in table
    assert "p50" not in table and "… 30 more rows (80 in all)" in table
    long = result_text("x" * (MAX_RESULT_CHARS + 500))
    assert len(long) < MAX_RESULT_CHARS + 100 and long.endswith("(500 more characters cut)")


def test_run_call_errors_go_back_as_one_line():
    def divide(a: int, b: int) -> float:
        """Divide."""
        return a / b

    tool = Tool.from_function(divide)
    assert run_call(ToolCall("1", "divide", '{"a": 1, "b": 0}'), tool, approved=True, scrub=str).error \
        == "ZeroDivisionError: division by zero"
    assert "not valid JSON" in run_call(ToolCall("1", "divide", '{"a": 1,'), tool, approved=True, scrub=str).error
    assert run_call(ToolCall("1", "divide", '{"a": 1, "c": 2}'), tool, approved=True, scrub=str).error \
        == "divide has no parameter c (it takes a, b)"
    assert run_call(ToolCall("1", "divide", '{"a": 1}'), tool, approved=True, scrub=str).error == "divide needs b"
    assert run_call(ToolCall("1", "nope", "{}"), None, approved=True, scrub=str).error == "There is no tool named 'nope' here"
    declined = run_call(ToolCall("1", "divide", '{"a": 1, "b": 2}'), tool, approved=False, scrub=str)
    assert declined.result == DECLINED and declined.output == "The user declined to run this tool."
    assert declined.signature() == "divide(a=1, b=2)"


def test_the_key_is_masked_in_what_a_tool_gets_and_returns():
    key = "sk-secret-0123456789abcdef"
    seen = []

    def echo(text: str) -> str:
        """Echo."""
        seen.append(text)
        return f"I saw {text} and {key}"

    redactor = protocol.Redactor(key)
    run = run_call(ToolCall("1", "echo", json.dumps({"text": key})), Tool.from_function(echo), approved=True,
                   scrub=redactor.mask)
    assert seen == ["sk-…cdef"] and key not in run.result and key not in run.arguments_text
    assert key not in json.dumps(run.to_dict())


def test_tool_definitions_in_each_endpoints_shape():
    tool = Tool.from_function(get_weather)
    chat = protocol.request_body(Request(model="m", prompt="hi", tools=(get_weather,)))
    responses = protocol.request_body(Request(model="m", prompt="hi", endpoint="responses", tools=(tool,)))
    assert chat["tools"] == [{"type": "function", "function": {"name": "get_weather", "description": tool.description,
                                                               "parameters": dict(tool.parameters)}}]
    assert responses["tools"] == [{"type": "function", "name": "get_weather", "description": tool.description,
                                   "parameters": dict(tool.parameters)}]
    # a JSON definition in the other endpoint's shape is converted; a hosted tool passes as it is
    flat = {"type": "function", "name": "f", "parameters": {"type": "object", "properties": {}}}
    assert protocol.tool_definition(flat, "chat") == {"type": "function", "function": {
        "name": "f", "parameters": {"type": "object", "properties": {}}}}
    assert protocol.tool_definition(protocol.tool_definition(flat, "chat"), "responses") == flat
    assert protocol.tool_definition({"type": "web_search"}, "chat") == {"type": "web_search"}


@pytest.mark.parametrize("endpoint", ["chat", "responses"])
def test_web_search_in_each_endpoints_shape(endpoint):
    body = protocol.request_body(Request(model="m", prompt="hi", endpoint=endpoint, web_search=True))
    if endpoint == "chat":
        assert body["web_search_options"] == {} and "tools" not in body
    else:
        assert body["tools"] == [{"type": "web_search"}]
    with_tools = protocol.request_body(Request(model="m", prompt="hi", endpoint=endpoint, web_search=True,
                                               tools=(get_weather,)))
    names = [t.get("name") or t.get("function", {}).get("name") or t["type"] for t in with_tools["tools"]]
    assert names == (["get_weather"] if endpoint == "chat" else ["get_weather", "web_search"])


def _answer(endpoint: str, request: Request, raw: dict) -> Response:
    return protocol.response_from_json(request, protocol.request_body(request), raw)


def test_follow_up_chat_echoes_the_calls_and_sends_tool_messages():
    request = Request(model="m", prompt="weather?", system="Be brief.", tools=(get_weather,))
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    raw = {"id": "x", "model": "m", "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": None, "tool_calls": [call], "reasoning_details": [{"r": 1}]}}]}
    response = _answer("chat", request, raw)
    run = run_call(response.tool_calls[0], request.tools[0], approved=True, scrub=str)
    nxt = protocol.follow_up(request, response, [run])
    body = protocol.request_body(nxt)
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "tool_calls": [call], "reasoning_details": [{"r": 1}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny in Paris, 21C"},
    ]
    assert body["tools"] == protocol.request_body(request)["tools"]


def test_follow_up_responses_stateless_and_stored():
    request = Request(model="m", prompt="weather?", endpoint="responses", tools=(get_weather,))
    item = {"id": "fc_1", "type": "function_call", "status": "completed", "call_id": "call_1",
            "name": "get_weather", "arguments": '{"city": "Paris"}'}
    raw = {"id": "resp_1", "model": "m", "status": "completed", "output": [item]}
    response = _answer("responses", request, raw)
    runs = [run_call(response.tool_calls[0], request.tools[0], approved=False, scrub=str)]
    body = protocol.request_body(protocol.follow_up(request, response, runs))
    assert body["input"] == [
        {"role": "user", "content": "weather?"},
        {k: v for k, v in item.items() if k != "status"},
        {"type": "function_call_output", "call_id": "call_1", "output": DECLINED},
    ]
    stored = request.replace(store=True)
    body = protocol.request_body(protocol.follow_up(stored, _answer("responses", stored, raw), runs))
    assert body["previous_response_id"] == "resp_1"
    assert body["input"] == [{"type": "function_call_output", "call_id": "call_1", "output": DECLINED}]
