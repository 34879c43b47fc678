"""Prompt templates: {name} fields filled from the user namespace, in a real shell against the simulator."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError

from aihubmix_magic import settings
from aihubmix_magic.notebook.templates import dataframe_markdown, render_template
from tests.conftest import TEST_KEY


def sent_prompt(sim) -> str:
    body = sim.requests[-1].body
    return body["messages"][-1]["content"] if "messages" in body else body["input"]


class Box:
    def __init__(self, inner):
        self.inner = inner


@pytest.mark.parametrize(("template", "expected"), [
    ("{x}", "5"),
    ("{box.inner}", "deep"),
    ("{rows[0]} {rows[-1]}", "a c"),
    ("{d['k']} {d[\"k\"]} {d[k]}", "v v v"),
    ("{nested[list][1][z]}", "{braces}"),           # one pass: the value's braces stay
    ("{{x}}", "{x}"),                                 # the escape
    ('{"a": {"b": 1}}', '{"a": {"b": 1}}'),           # JSON survives, nested closing braces included
    ("def f(): return {}", "def f(): return {}"),
    ("{x: 1} {a, b} { x } {{ jinja }}", "{x: 1} {a, b} { x } {{ jinja }}"),
    ("```python\nprint(f'{undefined_name}')\n```\n{x}", "```python\nprint(f'{undefined_name}')\n```\n5"),
    ("use `{undefined_name}` with {x}", "use `{undefined_name}` with 5"),
    ("```\n{x}\n```", "```\n5\n```"),                # defined names are filled in code too
])
def test_render_rules(template, expected):
    namespace = {"x": 5, "box": Box("deep"), "rows": ["a", "b", "c"], "d": {"k": "v"},
                 "nested": {"list": [0, {"z": "{braces}"}]}}
    assert render_template(template, namespace) == expected


@pytest.mark.parametrize(("template", "words"), [
    ("{missing}", ["'missing'", "not defined"]),
    ("{rows[7]}", ["rows[7]", "does not exist"]),
    ("{box.nope}", ["box has no attribute 'nope'"]),
    ("{box.__class__}", ["private"]),
    ("{d['missing']}", ["d['missing']", "KeyError"]),
])
def test_bad_fields_are_usage_errors(template, words):
    with pytest.raises(UsageError) as info:
        render_template(template, {"rows": [1], "box": Box(1), "d": {}})
    assert all(word in str(info.value) for word in words)
    assert "\n" not in str(info.value)


def test_cell_is_filled_in_and_sent(ip, sim):
    ip.user_ns.update(city="Paris", scores=[3, 4], info={"lang": "fr"})
    ip.run_cell_magic("aihubmix", "", "Tell me about {city} ({scores[1]}, {info['lang']}) as {{city}}.")
    assert sent_prompt(sim) == "Tell me about Paris (4, fr) as {city}."


def test_no_template_sends_the_cell_as_it_is(ip, sim):
    ip.run_cell_magic("aihubmix", "--no-template -e responses", "Keep {undefined_name} and {{x}}.")
    assert sent_prompt(sim) == "Keep {undefined_name} and {{x}}."


def test_unknown_name_sends_nothing(ip, sim):
    ip.user_ns.pop("nowhere_to_be_found", None)
    before = sim.request_count
    with pytest.raises(UsageError, match="'nowhere_to_be_found' is not defined"):
        ip.run_cell_magic("aihubmix", "", "Summarise {nowhere_to_be_found}.")
    assert sim.request_count == before


def test_in_out_and_err(ip, sim):
    ip.run_cell("40 + 2", store_history=True)
    number = ip.execution_count - 1
    assert ip.user_ns["Out"][number] == 42
    ip.run_cell("raise ValueError('the \\x1b[31mcolourful\\x1b[0m failure')", store_history=True)
    ip.run_cell_magic("aihubmix", "", f"In: {{In[{number}]}} Out: {{Out[{number}]}}\nErr: {{Err}}")
    prompt = sent_prompt(sim)
    assert prompt.startswith("In: 40 + 2 Out: 42\nErr: Traceback (most recent call last):")
    assert "ValueError: the colourful failure" in prompt and "\x1b" not in prompt
    before = sim.request_count
    with pytest.raises(UsageError, match=r"Out\[999999\] does not exist"):
        ip.run_cell_magic("aihubmix", "", "{Out[999999]}")
    assert sim.request_count == before


def test_dataframe_becomes_a_capped_markdown_table(ip, sim):
    pd = pytest.importorskip("pandas")
    ip.user_ns["df"] = pd.DataFrame({"name": [f"n{i}" for i in range(30)], "value": range(30)})
    settings.template_max_rows = 3
    ip.run_cell_magic("aihubmix", "", "Data:\n{df}\nShape: {df.shape}")
    prompt = sent_prompt(sim)
    assert prompt == ("Data:\n|  | name | value |\n|---|---|---|\n| 0 | n0 | 0 |\n| 1 | n1 | 1 |\n| 2 | n2 | 2 |\n"
                      "\n… 27 more rows (30 in all)\nShape: (30, 2)")


def test_dataframe_markdown_escapes_pipes_and_shows_small_frames_whole():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"a|b": ["x|y", "z"]}, index=pd.Index(["r1", "r2"], name="row"))
    assert dataframe_markdown(frame) == "| row | a\\|b |\n|---|---|\n| r1 | x\\|y |\n| r2 | z |"


def test_template_max_rows_is_validated():
    from traitlets import TraitError

    with pytest.raises(TraitError, match="1 or more"):
        settings.template_max_rows = 0


def test_the_key_never_goes_into_a_prompt(ip, sim):
    from aihubmix_magic.session import state as _session

    ip.user_ns["hub"] = {"client": _session.client(), "settings": settings}
    before = sim.request_count
    for field in ("{hub[settings].api_key}", "{hub[client].api_key}"):
        with pytest.raises(UsageError, match="API key"):
            ip.run_cell_magic("aihubmix", "", f"my key is {field}")
    assert sim.request_count == before
    ip.run_cell_magic("aihubmix", "", "Settings: {hub[settings]}")
    assert TEST_KEY not in str(sim.requests[-1].body) and "sk-…mnop" in sent_prompt(sim)
