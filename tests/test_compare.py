"""--compare: several models at once, side by side, in a real shell against the simulator."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError

from aihubmix_magic import Comparison, InternalServerError, history, last_response, settings


def test_each_column_gets_its_answer(ip, sim):
    ip.run_cell_magic("aihubmix", "--compare gpt-4o-mini,claude-sonnet-4-5,gemini-2.5-flash -o cmp",
                      "Name a colour.")
    comparison = last_response()
    assert isinstance(comparison, Comparison) and ip.user_ns["cmp"] is comparison and history()[-1] is comparison
    assert comparison.models == ["gpt-4o-mini", "claude-sonnet-4-5", "gemini-2.5-flash"]
    for model, response in zip(comparison.models, comparison.responses, strict=True):
        assert response.status == "completed" and response.model == model
        assert response.text.startswith(f"*Simulated answer from {model}.*")
        assert 'You asked: "Name a colour."' in response.text
    assert comparison["claude-sonnet-4-5"] is comparison.responses[1] and comparison[2] is comparison.responses[2]
    assert sorted(r.body["model"] for r in sim.requests[-3:]) == sorted(comparison.models)
    assert all(r.body["messages"] == [{"role": "user", "content": "Name a colour."}] for r in sim.requests[-3:])
    # one display at the end: a table with a column per model, each with its answer and footer
    outputs = ip.display_pub.outputs()
    assert len(outputs) == 1
    grid = outputs[0]["text/markdown"]
    assert grid.startswith("<table>") and grid.count('<td valign="top">\n\n') == 3
    for response in comparison.responses:
        assert f"\n\n{response.text}\n\n</td>" in grid
        assert f"{response.model} · chat · " in grid and "first token" in grid and "tok/s" in grid
    assert grid.index("gpt-4o-mini</th>") < grid.index("claude-sonnet-4-5</th>") < grid.index("gemini-2.5-flash</th>")


def test_an_error_in_one_column_leaves_the_others_running(ip, sim):
    settings.max_retries = 0
    ip.run_cell_magic("aihubmix", "--compare gpt-4o-mini,sim-500,deepseek-chat -e responses", "Hello.")
    comparison = last_response()
    ok, failed, other = comparison.responses
    assert ok.status == other.status == "completed" and ok.text and other.text
    assert failed.status == "failed" and isinstance(comparison.errors[1], InternalServerError)
    assert comparison.errors[0] is None and comparison.errors[2] is None
    grid = ip.display_pub.outputs()[0]["text/markdown"]
    assert "**InternalServerError**: HTTP 500" in grid and ok.text in grid and other.text in grid


def test_columns_stream_at_the_same_time(ip, sim):
    ip.run_cell_magic("aihubmix", "--compare sim-tps-40,sim-tps-50,sim-tps-60", "Overlap.")
    timings = last_response().timings
    first_tokens = [first for _, first, _ in timings]
    finished = [end for _, _, end in timings]
    # every column had its first token before any column finished
    assert max(first_tokens) < min(finished)
    # and the live display grew while they streamed: several paints of the same display
    updates = [m for m in ip.display_pub.messages if m.get("update")]
    assert len(updates) >= 2
    assert any("streaming… " in m["data"]["text/markdown"] for m in updates)


def test_reasoning_and_no_stream_columns(ip, sim):
    ip.run_cell_magic("aihubmix", "--compare deepseek-reasoner,gpt-4o-mini --no-stream", "Think.")
    reasoner, plain = last_response().responses
    assert reasoner.reasoning and not plain.reasoning and not reasoner.stream
    assert all(r.status == "completed" for r in (reasoner, plain))


def test_to_dataframe(ip, sim):
    pytest.importorskip("pandas")
    settings.max_retries = 0
    ip.run_cell_magic("aihubmix", "--compare gpt-4o-mini,sim-500", "Table.")
    frame = last_response().to_dataframe()
    assert list(frame.index) == ["gpt-4o-mini", "sim-500"]
    assert frame.loc["gpt-4o-mini", "status"] == "completed" and frame.loc["gpt-4o-mini", "output_tokens"] > 0
    assert frame.loc["sim-500", "status"] == "failed" and "500" in frame.loc["sim-500", "error"]


def test_terminal_prints_each_answer(shell, sim, capsys):
    settings.display = "terminal"
    shell.run_cell_magic("aihubmix", "--compare gpt-4o-mini,deepseek-chat", "Terminal.")
    out = capsys.readouterr().out
    for response in last_response().responses:
        assert f"── {response.model} ──\n{response.text}\n" in out


@pytest.mark.parametrize(("line", "words"), [
    ("--compare gpt-4o-mini", "two or more models"),
    ("--compare gpt-4o-mini,gpt-4o-mini", "listed twice"),
    ("--compare a,b -m gpt-4o", "does not go with -m"),
    ("--compare a,b -c", "does not go with -c"),
    ("--compare a,b -f json", "does not go with -f"),
])
def test_bad_compare_options_send_nothing(ip, sim, line, words):
    before = sim.request_count
    with pytest.raises(UsageError, match=words):
        ip.run_cell_magic("aihubmix", line, "hi")
    assert sim.request_count == before
