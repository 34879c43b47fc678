"""%aihubmix fix: the failing cell, its plain traceback and its names go out; the corrected code comes back
into a new cell. A real shell, the simulator over a real socket, requests checked on the wire."""

from __future__ import annotations

import re
import sys

import pandas as pd
import pytest
from IPython.core.error import UsageError

from aihubmix_magic import last_response, settings
from aihubmix_magic.notebook.context import HEADING
from aihubmix_magic.notebook.fix import FIX_HEADING, SYSTEMS

BUGGY = "def mean(values):\n    return sum(values) / len(value)\n\nmean([3, 4, 5])"


@pytest.fixture(autouse=True)
def _fresh(ip, monkeypatch):
    """No failure left over from other tests; a frontend that can insert cells."""
    for name in ("VSCODE_PID", "VSCODE_CWD", "COLAB_RELEASE_TAG"):
        monkeypatch.delenv(name, raising=False)
    recorder = ip.magics_manager.registry["AihubmixMagics"]._extras.failures
    recorder.cell = recorder.number = recorder.exception = None
    for name in ("last_value", "last_type", "last_traceback", "last_exc"):
        setattr(sys, name, None)  # IPython's record of the last error, as after a fresh start
    ip.rl_next_input = None
    yield


def fail(ip, code: str) -> int:
    result = ip.run_cell(code, store_history=True)
    assert result.error_in_exec is not None or result.error_before_exec is not None
    return result.execution_count


def messages(sim) -> tuple[str, str]:
    body = sim.requests[-1].body
    return body["messages"][0]["content"], body["messages"][-1]["content"]


def test_fix_sends_the_cell_and_its_plain_traceback_and_inserts_the_corrected_code(ip, sim):
    number = fail(ip, BUGGY)
    ip.run_line_magic("aihubmix", "fix")
    system, user = messages(sim)
    assert system == SYSTEMS["fix"]
    assert user.startswith(f"{FIX_HEADING} (In [{number}]).\n\nThe cell:\n```python\n{BUGGY}\n```\n\nThe error:\n```text\n")
    traceback_text = user.split("The error:\n```text\n")[1]
    assert traceback_text.startswith("Traceback (most recent call last):\n")
    assert f"Cell In[{number}], line 4" in traceback_text and f"Cell In[{number}], line 2, in mean" in traceback_text
    assert "NameError: name 'value' is not defined" in traceback_text
    assert "\x1b[" not in user and "interactiveshell.py" not in user  # no colours, none of IPython's frames
    assert HEADING not in user  # the cell uses no notebook names (mean is its own)
    answer = last_response().text
    assert "NameError" in answer and "`values`" in answer
    corrected = ip.rl_next_input
    assert corrected == BUGGY.replace("len(value)", "len(values)")
    namespace: dict = {}
    exec(corrected, namespace)
    assert namespace["mean"]([3, 4, 5]) == 4
    outputs = ip.display_pub.outputs()
    assert outputs[0] == {"text/markdown": answer, "text/plain": answer}
    assert outputs[1]["text/plain"] == "The corrected code is at the next prompt."
    assert "tokens" in outputs[2]["text/plain"]


def test_fix_sends_the_names_the_cell_uses(ip, sim):
    ip.user_ns["df"] = pd.DataFrame({"product": ["Kettle", "Lamp"], "rating": [5, 2]})
    ip.user_ns["threshold"] = 3
    number = fail(ip, 'low = df[df["raiting"] < threshold]\nlow')
    ip.run_line_magic("aihubmix", "fix")
    _, user = messages(sim)
    context = user.split(f"\n\n{HEADING}:\n\n")[1]
    assert re.findall(r"^`([^`]+)` — ", context, re.MULTILINE) == ["df", "threshold"]  # not `low`: the cell's own
    assert "  rating: int64, 0 nulls" in context and "KeyError: 'raiting'" in user
    answer = last_response().text
    assert "`product`, `rating`" in answer and "typo for `rating`" in answer
    assert ip.rl_next_input == 'low = df[df["rating"] < threshold]\nlow'
    assert f"In [{number}]" in user
    assert ip.display_pub.outputs()[0]["text/plain"].startswith("Context sent (≈ ")


def test_explain_only_explains(ip, sim):
    fail(ip, BUGGY)
    ip.run_line_magic("aihubmix", "fix --explain")
    system, _ = messages(sim)
    assert system == SYSTEMS["explain"] and "Do not write the corrected code" in system
    answer = last_response().text
    assert "NameError" in answer and "```" not in answer
    assert ip.rl_next_input is None
    assert len(ip.display_pub.outputs()) == 2  # the answer and the footer


def test_hint_style_for_teaching_never_gives_the_solution(ip, sim):
    settings.fix_style = "hint"
    fail(ip, BUGGY)
    ip.run_line_magic("aihubmix", "fix")
    system, _ = messages(sim)
    assert system == SYSTEMS["hint"] and "Never give the corrected code" in system
    answer = last_response().text
    assert answer.startswith("**Hint:**") and "```" not in answer and "len(values)" not in answer
    assert ip.rl_next_input is None


def test_options_and_the_system_prompt_go_along(ip, sim):
    settings.system = "Answer in French."
    fail(ip, "1 / 0")
    ip.run_line_magic("aihubmix", "fix -m claude-haiku-4-5 -t 0.1 --no-stream -o fixed")
    body = sim.requests[-1].body
    assert (body["model"], body["temperature"], body.get("stream", False)) == ("claude-haiku-4-5", 0.1, False)
    assert body["messages"][0]["content"] == SYSTEMS["fix"] + "\n\nAnswer in French."
    assert ip.user_ns["fixed"] is last_response() and "ZeroDivisionError" in last_response().text
    assert ip.rl_next_input == "(1 / 0 if 0 else 0)"  # a corrected cell that runs


def test_a_syntax_error_is_fixed_too(ip, sim):
    number = fail(ip, "x = (1,\nprint(x)")
    ip.run_line_magic("aihubmix", "fix")
    _, user = messages(sim)
    assert "SyntaxError" in user and f"Cell In[{number}], line " in user
    assert "SyntaxError" in last_response().text and ip.rl_next_input is not None


def test_no_failed_cell_is_one_line_and_sends_nothing(ip, sim, capsys):
    ip.run_line_magic("aihubmix", "fix")
    assert capsys.readouterr().out == ("No cell has failed in this session yet: run the cell that fails, then "
                                       "`%aihubmix fix`.\n")
    assert sim.request_count == 0


def test_a_failing_prompt_cell_does_not_replace_the_failed_cell(ip, sim):
    fail(ip, BUGGY)
    ip.run_cell("%%aihubmix -m sim-401\nhi", store_history=True)  # fails with AuthenticationError
    ip.run_cell("%aihubmix fix --bogus", store_history=True)  # a UsageError in a prompt cell
    ip.run_line_magic("aihubmix", "fix")
    assert "NameError" in messages(sim)[1]


def test_the_same_code_running_fine_clears_the_failure(ip, sim, capsys):
    ip.user_ns.pop("later", None)
    fail(ip, "later + 1")
    ip.user_ns["later"] = 1
    ip.run_cell("later + 1", store_history=True)
    capsys.readouterr()
    ip.run_line_magic("aihubmix", "fix")
    assert capsys.readouterr().out.startswith("No cell has failed")
    assert sim.request_count == 0


def test_without_a_record_the_last_exception_is_used(ip, sim):
    fail(ip, BUGGY)
    ip.magics_manager.registry["AihubmixMagics"]._extras.failures.exception = None  # loaded after the failure
    ip.run_line_magic("aihubmix", "fix")
    _, user = messages(sim)
    assert "len(value)" in user and "NameError" in user


def test_where_cells_cannot_be_inserted_the_output_says_so(ip, monkeypatch):
    monkeypatch.setenv("VSCODE_PID", "1")
    fail(ip, BUGGY)
    ip.run_line_magic("aihubmix", "fix")
    assert ip.rl_next_input is None
    assert ip.display_pub.outputs()[1]["text/plain"] == "VS Code cannot insert a cell from the kernel: copy the code above."


@pytest.mark.parametrize(("line", "words"), [
    ("fix -f json", "does not take -f"),
    ("fix --compare a,b", "does not take --compare"),
    ("fix -c", "does not take -c"),
    ("fix --bogus", "unrecognized arguments"),
    ("fix -t 9", "between 0 and 2"),
    ("fix --context nothing_here", "'nothing_here' is not defined"),
])
def test_bad_options_are_one_line_and_send_nothing(ip, sim, line, words):
    fail(ip, BUGGY)
    ip.user_ns.pop("nothing_here", None)
    with pytest.raises(UsageError, match=words):
        ip.run_line_magic("aihubmix", line)
    assert sim.request_count == 0


@pytest.mark.parametrize(("setup", "cell", "check"), [
    ("", "1/0", "(1/0 if 0 else 0)"),
    ("values = []", "mean = sum(values) / len(values)\nprint(mean)", "sum(values) / len(values) if len(values)"),
    ("", "def mean(values):\n    return sum(values) / len(value)\n\nprint(mean([3, 4, 5]))", "len(values)"),
    ("", "total = 0\nfor x in [1, 2]:\n    total += x\nprint(totl)", "print(total)"),
    ("", "prnt('hello')", "print('hello')"),
    ("prices = {'apple': 1.2, 'pear': 0.8}", "prices['aple'] * 2", "prices['apple']"),
    ("df = pd.DataFrame({'review': ['good', 'bad'], 'stars': [5, 1]})", "df['starz'].mean()", "df['stars']"),
    ("df = pd.DataFrame({'review': ['good', 'bad'], 'stars': [5, 1]})", "df.revew.str.upper()", "df.review"),
    ("", "name = 'ada'\nname.uper()", "name.upper()"),
    ("", "import math\nmath.sqroot(16)", "math.sqrt(16)"),
    ("", "fruits = ['apple', 'pear', 'plum']\nfruits[3]", "fruits[-1]"),
    ("fruits = ['apple', 'pear', 'plum']", "for i in range(4):\n    print(fruits[i])", "len(fruits)"),
    ("", "age = 30\nprint('Age: ' + age)", "'Age: ' + str(age)"),
    ("", "count = 3\ncount + '4'", "count + 4"),
    ("", "label = 'items: '\nlabel += 5", "label += str(5)"),
    ("globals().pop('math', None)", "print(math.sqrt(16))", "import math\n"),
    ("globals().pop('datetime', None)", "now = datetime.datetime.now()\nnow.year", "import datetime\n"),
])
def test_the_inserted_fix_runs(ip, sim, setup, cell, check):
    """The demo's corrected cell runs for the common errors: a division by zero, a misspelt name, key,
    column or attribute (the closest existing one), an index out of range, a string added to a number, a
    standard module used without its import."""
    ip.run_cell("import pandas as pd\n" + setup, store_history=True)
    fail(ip, cell)
    ip.run_line_magic("aihubmix", "fix")
    corrected = ip.rl_next_input
    assert corrected and corrected != cell and check in corrected, corrected
    assert any(data.get("text/plain") == "The corrected code is at the next prompt."
               for data in ip.display_pub.outputs())
    result = ip.run_cell(corrected, store_history=True)  # the inserted cell, run as the user would
    assert result.error_before_exec is None and result.error_in_exec is None, (corrected, result.error_in_exec)
