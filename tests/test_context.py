"""--context NAME,…: kernel objects described in the prompt, in a real shell, checked on the wire."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest
from IPython.core.error import UsageError

from aihubmix_magic import last_response, settings
from aihubmix_magic.notebook.context import HEADING, describe
from aihubmix_magic.notebook.fix import FIX_HEADING
from tests.conftest import TEST_KEY


def sent(sim) -> str:
    """The user message of the last request, as it went over the wire."""
    body = sim.requests[-1].body
    return body["messages"][-1]["content"] if "messages" in body else body["input"]


def added(sim, prompt: str) -> str:
    text = sent(sim)
    assert text.startswith(prompt + "\n\n" + HEADING + ":\n\n")
    return text[len(prompt) + 2:]


@pytest.fixture
def reviews():
    frame = pd.DataFrame({
        "product": ["Kettle", "Lamp", "Kettle", "Pot", "Lamp", "Pot", "Kettle"],
        "rating": [5, 2, 4, 1, 3, 5, 4],
        "price": [30.0, None, 28.5, 12.0, 19.9, None, 31.0],
        "review": ["Boils fast", "Flickers", "Quiet", "Broken on arrival", "Fine", "Lovely", "ROW-SEVEN-TEXT"],
    })
    return frame


def test_the_simulator_knows_the_headings():
    from aihubmix_magic.simulator import reading

    assert reading._CONTEXT_HEADING == HEADING and reading._FIX_HEADING == FIX_HEADING


def test_a_dataframe_is_described_not_sent_whole(ip, sim, reviews):
    ip.user_ns["df"] = reviews
    prompt = "Which columns could explain a low rating?"
    ip.run_cell_magic("aihubmix", "--context df", prompt)
    context = added(sim, prompt)
    assert context.startswith(f"{HEADING}:\n\n`df` — pandas DataFrame: 7 rows × 4 columns\n```text\n")
    for line in ("  product: ", "  rating: int64, 0 nulls", "  price: float64, 2 nulls", "describe() of the numeric "
                 "columns:", "first 5 rows:"):
        assert line in context
    describe_block = context.split("describe() of the numeric columns:")[1].split("first 5 rows:")[0]
    assert "rating" in describe_block and "price" in describe_block and "product" not in describe_block
    assert "Boils fast" in context and "ROW-SEVEN-TEXT" not in context  # the first 5 rows only
    # above the answer: a collapsed block with exactly what was added, and its size
    outputs = ip.display_pub.outputs()
    block = outputs[0]["text/markdown"]
    tokens = math.ceil(len(context) / 4)
    assert block.startswith(f"<details><summary>Context sent (≈ {tokens:,} tokens): <code>df</code></summary>\n\n")
    assert block.endswith("\n\n</details>") and context in block
    assert outputs[0]["text/plain"] == f"Context sent (≈ {tokens:,} tokens): df"
    assert outputs[1]["text/markdown"] == last_response().text and "tokens" in outputs[-1]["text/plain"]
    # the demo answer names the columns that were sent
    answer = last_response().text
    assert all(f"`{column}`" in answer for column in reviews.columns) and "7 rows" in answer


@pytest.mark.parametrize("endpoint", ["chat", "responses"])
def test_context_stays_above_a_streamed_answer_and_a_formatted_one(ip, sim, reviews, endpoint):
    ip.user_ns["df"] = reviews
    ip.rl_next_input = None
    ip.run_cell_magic("aihubmix", f"--context df -f code -e {endpoint}", "Plot the mean rating per product.")
    outputs = ip.display_pub.outputs()
    assert outputs[0]["text/plain"].startswith("Context sent (≈ ")
    assert outputs[1]["text/plain"] == ip.rl_next_input
    code = ip.rl_next_input
    compile(code, "<answer>", "exec")
    assert 'df.groupby("product")["rating"].mean()' in code  # the columns that were sent


def test_series_array_function_class_module_repr_llm_and_plain_values(ip, sim):
    ip.run_cell('''
def clean(text, *, lower=True):
    """Strip and lower-case a review."""
    return text.strip().lower() if lower else text.strip()

class Scorer:
    """Scores reviews."""
    def __init__(self, weights): self.weights = weights
    def score(self, text): return 0

class Described:
    def _repr_llm_(self):
        return "A custom description for language models."

class Opaque:
    pass
''', store_history=True)
    ip.user_ns.update(
        ratings=pd.Series([5, 2, None], name="rating"),
        matrix=np.arange(1000, dtype=np.float64).reshape(100, 10),
        described=ip.user_ns["Described"](),
        opaque=ip.user_ns["Opaque"](),
        numbers=list(range(5000)),
        read_csv=pd.read_csv,
        np=np,
    )
    settings.context_max_tokens = 100_000
    ip.run_cell_magic("aihubmix", "--context ratings,matrix --context clean,Scorer,np,described,opaque,numbers,read_csv",
                      "Describe these.")
    context = added(sim, "Describe these.")
    assert "`ratings` — pandas Series 'rating': 3 values, dtype float64\n```text\nnulls: 1\n" in context
    assert "`matrix` — numpy array: shape (100, 10), dtype float64" in context and "..." in context
    assert "999." in context and "500." not in context  # a few values, not all of them
    assert "`clean` — function clean(text, *, lower=True), defined in this notebook\n```python\ndef clean(" in context
    assert '"""Strip and lower-case a review."""' in context
    assert "`Scorer` — class Scorer, defined in this notebook" in context
    assert re.search(r"`np` — module numpy \(version [\d.]+\)", context)
    assert "`described` — Described (described by its _repr_llm_())\n```text\nA custom description" in context
    assert "`opaque` — Opaque\n```text\n<__main__.Opaque object>\n```" in context  # no memory address
    assert "`numbers` — list of 5,000 items" in context and "characters in all)" in context
    assert re.search(r"`read_csv` — function read_csv\(filepath_or_buffer.*from pandas", context)
    assert "Read a comma-separated values" in context
    names = re.findall(r"^`([^`]+)` — ", context, re.MULTILINE)
    assert names == ["ratings", "matrix", "clean", "Scorer", "np", "described", "opaque", "numbers", "read_csv"]


def test_descriptions_are_deterministic_so_the_cache_hits(ip, sim, reviews):
    ip.user_ns.update(df=reviews, opaque=object())
    for _ in range(2):
        ip.run_cell_magic("aihubmix", "--cache --context df,opaque", "Summarise the data.")
    assert sim.request_count == 1 and last_response().cached
    assert describe(object())[1] == "<object object>"


def test_last_code_cells_and_the_last_error(ip, sim):
    for source in ("a = 1", "%%aihubmix\nnot code", "b = a + 1", "import math\nc = math.sqrt(b)"):
        ip.run_cell(source, store_history=True)
    ip.run_cell("1 / 0", store_history=True)
    number = ip.execution_count - 1
    ip.run_cell_magic("aihubmix", "--context cells:3,error", "What happened?")
    context = added(sim, "What happened?")
    cells = context.split("`cells:3` — ")[1].split("`error` — ")[0]
    assert cells.startswith(f"the last 3 code cells (In [{number - 2}] to In [{number}])\n```python\n")
    assert "b = a + 1" in cells and "math.sqrt" in cells and "1 / 0" in cells
    assert "a = 1" not in cells and "not code" not in cells  # prompt cells are not code cells
    error = context.split("`error` — ")[1]
    assert error.startswith(f"the last error in In [{number}]: ZeroDivisionError: division by zero\n```text\n")
    assert f"Cell In[{number}], line 1" in error and "\x1b" not in error and "interactiveshell" not in error
    answer = last_response().text
    assert "the last error was ZeroDivisionError: division by zero" in answer and "I read the last 3 code cells" in answer


def test_a_token_budget_cuts_and_says_what(ip, sim):
    big = pd.DataFrame({f"column_{i}": range(50) for i in range(60)})
    ip.user_ns.update(big=big, small={"unit": "mm"}, huge="x" * 50_000)
    settings.context_max_tokens = 1200
    ip.run_cell_magic("aihubmix", "--context small,big,huge", "Go.")
    context = added(sim, "Go.")
    assert math.ceil(len(context) / 4) <= 1200
    assert "`small` — dict of 1 item\n```text\n{'unit': 'mm'}\n```" in context  # a small item stays whole
    assert "… cut here to fit the context budget (" in context
    header = ip.display_pub.outputs()[0]
    assert "cut to the budget of 1,200 tokens: big: " in header["text/plain"]
    assert "lines cut" in header["text/plain"] and "cut to the budget of 1,200 tokens" in header["text/markdown"]
    settings.context_max_tokens = 100
    ip.run_cell_magic("aihubmix", "--context big,huge", "Go.")
    assert "(Left out to fit the context budget: big, huge.)" in sent(sim)
    assert math.ceil(len(added(sim, "Go.")) / 4) <= 100
    assert "big: left out; huge: left out" in ip.display_pub.outputs()[0]["text/plain"]


@pytest.mark.parametrize(("line", "words"), [
    ("--context nothing_here", "'nothing_here' is not defined"),
    ("--context df,nothing_here", "'nothing_here' is not defined"),
    ("--context df.no_such_column", "df has no attribute 'no_such_column'"),
    ("--context df._mgr", "private attributes"),
    ("--context cells:0", "cells:N"),
    ("--context cells:x", "cells:N"),
    ("--context 'a b'", "give variable names"),
    ("--context df --over df.review", "does not go with --over"),
])
def test_bad_context_is_one_line_and_sends_nothing(ip, sim, reviews, line, words):
    ip.user_ns["df"] = reviews
    ip.user_ns.pop("nothing_here", None)
    with pytest.raises(UsageError, match=re.escape(words)) as info:
        ip.run_cell_magic("aihubmix", line, "hi {}")
    assert "\n" not in str(info.value)
    assert sim.request_count == 0


def test_no_error_yet_is_one_line(ip, sim, monkeypatch):
    extras = ip.magics_manager.registry["AihubmixMagics"]._extras
    monkeypatch.setattr(extras.failures, "exception", None)
    monkeypatch.setattr("sys.last_value", None, raising=False)
    ip.user_ns.pop("error", None)
    with pytest.raises(UsageError, match="no cell has failed"):
        ip.run_cell_magic("aihubmix", "--context error", "Why?")
    assert sim.request_count == 0


def test_the_key_never_goes_into_the_context(ip, sim):
    ip.user_ns.update(secret=TEST_KEY, config={"api_key": TEST_KEY, "model": "gpt-4o"}, settings=settings)
    ip.run_cell_magic("aihubmix", "--context secret,config,settings", "Check my setup.")
    for request in sim.requests:
        assert TEST_KEY not in str(request.body)
    context = added(sim, "Check my setup.")
    assert "sk-…mnop" in context and "'model': 'gpt-4o'" in context
    assert TEST_KEY not in str(ip.display_pub.outputs()) and TEST_KEY not in last_response().text


def test_compare_gets_the_context_and_shows_it_once(ip, sim, reviews):
    ip.user_ns["df"] = reviews
    ip.run_cell_magic("aihubmix", "--compare gpt-4o-mini,claude-haiku-4-5 --context df", "Which column is numeric?")
    bodies = [r.body for r in sim.requests]
    assert sorted(b["model"] for b in bodies) == ["claude-haiku-4-5", "gpt-4o-mini"]
    assert all(HEADING in b["messages"][-1]["content"] for b in bodies)
    headers = [o for o in ip.display_pub.outputs() if o.get("text/plain", "").startswith("Context sent")]
    assert len(headers) == 1


def test_terminal_prints_the_summary_line(shell, sim, reviews, capsys):
    settings.display = "terminal"
    shell.user_ns["df"] = reviews
    shell.run_cell_magic("aihubmix", "--context df", "Columns?")
    out = capsys.readouterr().out
    assert out.startswith("Context sent (≈ ") and ": df\n\n" in out
    assert last_response().text in out
