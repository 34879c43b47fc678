"""-f/--format and --schema, in a real shell against the simulator."""

from __future__ import annotations

import json

import pytest
from IPython.core.error import UsageError

from aihubmix_magic import last_response
from aihubmix_magic.notebook.formats import first_code_block, math_markdown


@pytest.fixture(autouse=True)
def _plain_frontend(monkeypatch):
    for name in ("VSCODE_PID", "VSCODE_CWD", "COLAB_RELEASE_TAG"):
        monkeypatch.delenv(name, raising=False)


def system_of(body) -> str:
    return body["messages"][0]["content"] if "messages" in body else body["instructions"]


def test_code_goes_into_the_next_cell(ip, sim):
    ip.rl_next_input = None
    ip.run_cell_magic("aihubmix", "-f code", "Write code that sums values.")
    answer = last_response().text
    language, code = first_code_block(answer)
    assert language == "python" and code.startswith("def ") and "```" not in code
    assert ip.rl_next_input == code
    outputs = ip.display_pub.outputs()
    assert outputs[0] == {"text/markdown": f"```python\n{code}\n```", "text/plain": code}
    assert "next prompt" in outputs[1]["text/plain"]
    assert "single fenced code block" in system_of(sim.requests[-1].body)


def test_code_without_a_block_is_the_whole_answer(ip):
    ip.rl_next_input = None
    ip.run_cell_magic("aihubmix", "-f code -e responses", "Say something as JSON.")  # raw JSON: no fence
    assert "```" not in last_response().text
    assert ip.rl_next_input == last_response().text.strip()


@pytest.mark.parametrize(("variable", "name"), [("VSCODE_PID", "VS Code"), ("COLAB_RELEASE_TAG", "Colab")])
def test_code_where_cells_cannot_be_inserted(ip, monkeypatch, variable, name):
    monkeypatch.setenv(variable, "1")
    ip.rl_next_input = None
    ip.run_cell_magic("aihubmix", "-f code", "Write code.")
    assert ip.rl_next_input is None
    note = ip.display_pub.outputs()[1]["text/plain"]
    assert note == f"{name} cannot insert a cell from the kernel: copy the code above."


@pytest.mark.parametrize("endpoint", ["chat", "responses"])
def test_json_object(ip, sim, endpoint):
    ip.run_cell_magic("aihubmix", f"-f json -e {endpoint}", "Describe a river.")
    body = sim.requests[-1].body
    if endpoint == "chat":
        assert body["response_format"] == {"type": "json_object"}
    else:
        assert body["text"] == {"format": {"type": "json_object"}}
    assert "JSON" in system_of(body)
    r = last_response()
    assert r.parsed == json.loads(r.text) and set(r.parsed) == {"answer", "model", "words"}
    shown = ip.display_pub.outputs()[0]
    assert shown["application/json"] == r.parsed and shown["text/markdown"].startswith("```json\n{")


@pytest.mark.parametrize("endpoint", ["chat", "responses"])
def test_schema_dict(ip, sim, endpoint):
    ip.user_ns["city_schema"] = {"title": "City", "type": "object",
                                 "properties": {"name": {"type": "string"}, "population": {"type": "integer"}}}
    ip.run_cell_magic("aihubmix", f"--schema city_schema -e {endpoint}", "A city, please.")
    body = sim.requests[-1].body
    strict_schema = {"title": "City", "type": "object", "additionalProperties": False,
                     "required": ["name", "population"],
                     "properties": {"name": {"type": "string"}, "population": {"type": "integer"}}}
    if endpoint == "chat":
        assert body["response_format"] == {"type": "json_schema", "json_schema": {
            "name": "City", "schema": strict_schema, "strict": True}}
    else:
        assert body["text"]["format"] == {"type": "json_schema", "name": "City", "schema": strict_schema,
                                          "strict": True}
    parsed = last_response().parsed
    assert set(parsed) == {"name", "population"} and isinstance(parsed["population"], int)


@pytest.mark.parametrize("endpoint", ["chat", "responses"])
def test_schema_pydantic_model(ip, sim, endpoint):
    pydantic = pytest.importorskip("pydantic")

    class Person(pydantic.BaseModel):
        name: str
        age: int
        tags: list[str]

    ip.user_ns["Person"] = Person
    ip.run_cell_magic("aihubmix", f"-f json --schema Person -e {endpoint}", "Invent a person.")
    parsed = last_response().parsed
    assert isinstance(parsed, Person) and isinstance(parsed.age, int) and isinstance(parsed.tags, list)
    body = sim.requests[-1].body
    schema = body["response_format"]["json_schema"] if endpoint == "chat" else body["text"]["format"]
    assert schema["name"] == "Person" and schema["schema"]["required"] == ["name", "age", "tags"]


@pytest.mark.parametrize(("line", "words"), [
    ("--schema nothing_here", "no variable named 'nothing_here'"),
    ("--schema not_a_schema", "not a JSON Schema dict or a pydantic model class"),
    ("--schema list_schema", "must describe an object"),
    ("-f text --schema city", "--schema goes with --format json"),
    ("-f yaml", "invalid choice"),
])
def test_bad_format_options_send_nothing(ip, sim, line, words):
    ip.user_ns.update(not_a_schema=42, list_schema={"type": "array"}, city={"type": "object"})
    ip.user_ns.pop("nothing_here", None)
    before = sim.request_count
    with pytest.raises(UsageError) as info:
        ip.run_cell_magic("aihubmix", line, "hi")
    assert words in str(info.value)
    assert sim.request_count == before


def test_text_html_and_math(ip, sim):
    ip.run_cell_magic("aihubmix", "-f text", "Plain please.")
    text = last_response().text
    assert ip.display_pub.outputs()[0] == {"text/plain": text}
    assert "without Markdown" in system_of(sim.requests[-1].body)
    ip.display_pub.messages.clear()
    ip.run_cell_magic("aihubmix", "-f html", "Some html.")
    assert ip.display_pub.outputs()[0]["text/html"] == last_response().text
    ip.display_pub.messages.clear()
    ip.run_cell_magic("aihubmix", "-f math", "Euler.")
    assert ip.display_pub.outputs()[0]["text/markdown"] == math_markdown(last_response().text)
    assert "LaTeX" in system_of(sim.requests[-1].body)


def test_math_markdown():
    assert math_markdown(r"\[ e^{i\pi} + 1 = 0 \] and \(x\)") == r"$$ e^{i\pi} + 1 = 0 $$ and $x$"
    assert math_markdown("x^2") == "$$\nx^2\n$$"
    assert math_markdown("$a$ stays") == "$a$ stays"


def test_invalid_json_is_shown_as_it_came(ip, sim):
    ip.run_cell_magic("aihubmix", "-f json -m sim-incomplete", "Cut short.")
    r = last_response()
    assert r.parsed is None
    assert "not valid JSON" in ip.display_pub.outputs()[1]["text/plain"]
