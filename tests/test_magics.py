"""%%aihubmix and %aihubmix in a real IPython shell, against the simulator over a real socket."""

from __future__ import annotations

import re

import pytest
from IPython.core.error import UsageError

import aihubmix_magic
from aihubmix_magic import (
    APIConnectionError,
    AuthenticationError,
    ModelNotFoundError,
    history,
    last_response,
    settings,
)
from tests.conftest import TEST_KEY

PROMPT = "Explain what a p-value is, with a heading, bold text and a code example."


def markdown_outputs(ip) -> list[str]:
    return [o["text/markdown"] for o in ip.display_pub.outputs() if "text/markdown" in o]


@pytest.mark.parametrize("endpoint", ["chat", "responses"])
@pytest.mark.parametrize("stream", [True, False])
def test_prompt_cell_both_endpoints(ip, sim, endpoint, stream):
    line = f"-m gpt-4o-mini -e {endpoint}" + ("" if stream else " --no-stream")
    assert ip.run_cell_magic("aihubmix", line, PROMPT) is None
    r = last_response()
    assert r.endpoint == endpoint and r.stream == stream and r.status == "completed"
    assert r.text.startswith("## ") and "**" in r.text and "```python" in r.text
    assert r.usage.input_tokens > 0 and r.usage.output_tokens > 0
    assert r.model == "gpt-4o-mini" and r.id
    assert r.elapsed >= r.time_to_first_token >= 0
    assert r.raw and r.request == sim.requests[-1].body
    outputs = ip.display_pub.outputs()
    # exactly one rendering of the whole answer, then the footer
    assert markdown_outputs(ip)[0] == r.text
    footer = outputs[-1]["text/plain"]
    assert footer.startswith(f"gpt-4o-mini · {endpoint} · ") and "tokens" in footer and footer.endswith(" s")
    assert len(outputs) == 2


def test_options_reach_the_request_body(ip, sim):
    ip.run_cell_magic("aihubmix", '-m claude-haiku-4-5 -s "You are terse." -t 0.2 --top-p 0.5 --max-tokens 500 -r low',
                      "hello")
    body = sim.requests[-1].body
    assert body["model"] == "claude-haiku-4-5"
    assert body["messages"] == [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "hello"}]
    assert (body["temperature"], body["top_p"], body["max_tokens"], body["reasoning_effort"]) == (0.2, 0.5, 500, "low")
    assert body["stream"] is True
    ip.run_cell_magic("aihubmix", '-e responses -s "You are terse." --max-tokens 500 -r high', "hello")
    body = sim.requests[-1].body
    assert (body["instructions"], body["max_output_tokens"], body["reasoning"]) == ("You are terse.", 500, {"effort": "high"})
    assert body["input"] == "hello" and body["model"] == settings.model


def test_out_stores_the_response(ip):
    ip.run_cell_magic("aihubmix", "-o answer", "hi")
    assert ip.user_ns["answer"] is last_response()
    assert history()[-1] is last_response()


def test_line_options_override_settings_for_one_cell(ip, sim):
    settings.model = "gpt-4o"
    ip.run_cell_magic("aihubmix", "-m deepseek-chat", "hi")
    assert sim.requests[-1].body["model"] == "deepseek-chat"
    ip.run_cell_magic("aihubmix", "", "hi")
    assert sim.requests[-1].body["model"] == "gpt-4o"


def test_config_and_use_change_the_next_cell(ip, sim):
    ip.run_line_magic("config", 'AihubmixMagics.model = "gemini-2.5-flash"')
    assert settings.model == "gemini-2.5-flash"
    ip.run_cell_magic("aihubmix", "", "hi")
    assert sim.requests[-1].body["model"] == "gemini-2.5-flash"
    ip.run_line_magic("aihubmix", "use qwen3-coder")
    ip.run_cell_magic("aihubmix", "", "hi")
    assert sim.requests[-1].body["model"] == "qwen3-coder"
    ip.run_line_magic("config", "AihubmixMagics.endpoint = 'responses'")
    ip.run_cell_magic("aihubmix", "", "hi")
    assert sim.requests[-1].path.endswith("/responses")


@pytest.mark.parametrize(("line", "cell", "words"), [
    ("--bogus", "hi", "unrecognized arguments"),
    ("-t 2.5", "hi", "between 0 and 2"),
    ("-t hot", "hi", "invalid float value"),
    ("--top-p 1.5", "hi", "between 0 and 1"),
    ("--max-tokens 0", "hi", "positive"),
    ("--max-tokens ten", "hi", "invalid int value"),
    ("-e completions", "hi", "invalid choice"),
    ("-r extreme", "hi", "invalid choice"),
    ("", "  \n\t ", "empty"),
])
def test_bad_input_is_one_line_and_sends_nothing(ip, sim, line, cell, words):
    with pytest.raises(UsageError, match=words) as info:
        ip.run_cell_magic("aihubmix", line, cell)
    assert "\n" not in str(info.value).strip()
    assert sim.request_count == 0


def test_unknown_subcommand(ip, sim):
    with pytest.raises(UsageError, match="Unknown subcommand 'fly'"):
        ip.run_line_magic("aihubmix", "fly")
    assert sim.request_count == 0


def test_errors_show_one_line_and_are_recorded(ip, sim, capsys):
    ip.run_cell("%%aihubmix -m sim-401\nhi")
    err = capsys.readouterr()
    shown = re.sub(r"\x1b\[[0-9;]*m", "", err.out + err.err)
    assert "AuthenticationError: 401 Unauthorized" in shown and "Traceback" not in shown
    assert TEST_KEY not in shown
    assert last_response().status == "failed" and isinstance(last_response().error, AuthenticationError)
    with pytest.raises(ModelNotFoundError, match="Did you mean: gpt-4o-mini"):
        ip.run_cell_magic("aihubmix", "-m gpt-4o-mnii", "hi")


def test_mid_stream_error_keeps_the_partial_answer_visible(ip):
    with pytest.raises(APIConnectionError):
        ip.run_cell_magic("aihubmix", "-m sim-drop-8", "words=100")
    r = last_response()
    assert r.status == "failed" and len(r.text.split()) >= 5
    assert markdown_outputs(ip)[0] == r.text
    assert "failed: APIConnectionError" in ip.display_pub.outputs()[-1]["text/plain"]


def test_incomplete_answer_footer_says_so(ip):
    ip.run_cell_magic("aihubmix", "--max-tokens 5", "words=100")
    assert last_response().status == "incomplete"
    assert "stopped early: length" in ip.display_pub.outputs()[-1]["text/plain"]


def test_no_key(ip, sim):
    settings.set_key(None)
    with pytest.raises(aihubmix_magic.MissingKeyError, match="%aihubmix key"):
        ip.run_cell_magic("aihubmix", "", "hi")
    assert sim.request_count == 0


def test_key_subcommand_uses_getpass_and_masks(ip, monkeypatch, capsys):
    import getpass

    monkeypatch.setattr(getpass, "getpass", lambda prompt="": "sk-new-key-abcdefghijklmnopqrstuvwxyz1234")
    ip.run_line_magic("aihubmix", "key")
    assert settings.api_key == "sk-new-key-abcdefghijklmnopqrstuvwxyz1234"
    ip.run_line_magic("aihubmix", "config")
    out = capsys.readouterr().out
    assert "sk-…1234" in out and "abcdefghij" not in out
    with pytest.raises(UsageError, match="saved in the notebook"):
        ip.run_line_magic("aihubmix", "key sk-typed")


def test_models_table(ip):
    ip.run_line_magic("aihubmix", "models claude")
    table = markdown_outputs(ip)[-1]
    assert ">claude-sonnet-4-5</code>" in table and "gpt-4o-mini" not in table


def test_demo_mode(ip, capsys):
    ip.run_line_magic("aihubmix", "demo")
    out = capsys.readouterr().out
    assert "simulated" in out and settings.demo and settings.base_url.startswith("http://127.0.0.1:")
    ip.run_cell_magic("aihubmix", "", "hello")
    assert "simulated" in ip.display_pub.outputs()[-1]["text/plain"]
    ip.run_line_magic("aihubmix", "demo off")
    assert not settings.demo and settings.api_key == TEST_KEY


def test_terminal_path_prints_plain_text(shell, capsys):
    settings.display = "terminal"
    shell.run_cell_magic("aihubmix", "-m gpt-4o-mini", "hello with a list")
    out = capsys.readouterr().out
    r = last_response()
    assert out.startswith(r.text) and "\ngpt-4o-mini · chat · " in out


def test_help_lists_options(shell, capsys):
    shell.run_cell("%%aihubmix?")
    out = capsys.readouterr().out
    for option in ("--model", "--endpoint", "--system", "--temperature", "--top-p", "--max-tokens",
                   "--no-stream", "--out", "stands alone"):
        assert option in out


def test_a_key_entered_in_demo_mode_waits_for_demo_off(ip, sim, monkeypatch, capsys):
    import getpass

    from aihubmix_magic.notebook.demo import DEMO_KEY

    new_key = "sk-entered-during-demo-abcdefghijklmnop"
    ip.run_line_magic("aihubmix", "demo")
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": new_key)
    ip.run_line_magic("aihubmix", "key")
    assert "answers stay simulated" in capsys.readouterr().out
    assert settings.api_key == DEMO_KEY  # the real key is not sent to the simulator
    ip.run_cell_magic("aihubmix", "", "hello")
    from aihubmix_magic.session import state as _session

    assert _session.current().demo_server.requests[-1].headers["authorization"] == f"Bearer {DEMO_KEY}"
    ip.run_line_magic("aihubmix", "demo off")
    assert settings.api_key == new_key and settings.base_url == sim.base_url
