"""Streamed reasoning: shown above the answer while it streams, kept in Response.reasoning (both endpoints)."""

from __future__ import annotations

import pytest

from aihubmix_magic import last_response


@pytest.mark.parametrize(("line", "field"), [
    ("-m deepseek-reasoner", None),
    ("-m gpt-4o-mini -r high", ("reasoning_effort", "high")),
    ("-m o4-mini -e responses", None),
    ("-m gpt-4o-mini -e responses -r medium", ("reasoning", {"effort": "medium"})),
])
def test_reasoning_streams_above_the_answer(ip, sim, line, field):
    ip.run_cell_magic("aihubmix", line, "Why is the sky blue?")
    r = last_response()
    body = sim.requests[-1].body
    if field:
        assert body[field[0]] == field[1]
    assert r.status == "completed" and r.reasoning.startswith('Let me think about "Why is the sky blue?"')
    assert r.usage.reasoning_tokens > 0
    # while streaming: the first thing displayed is the reasoning, open, before any answer text
    shown = [m for m in ip.display_pub.messages if "data" in m and not m["update"]]
    first = shown[0]["data"]["text/markdown"]
    assert first.startswith("<details open><summary>Reasoning</summary>\n\n> Let")
    assert "Simulated answer" not in first
    # at the end: the reasoning collapsed, then the answer, then the footer
    outputs = ip.display_pub.outputs()
    assert outputs[0]["text/markdown"].startswith("<details><summary>Reasoning</summary>")
    assert all("> " + line in outputs[0]["text/markdown"] for line in r.reasoning.splitlines())
    assert outputs[1]["text/markdown"] == r.text and len(outputs) == 3


def test_no_reasoning_without_asking(ip):
    ip.run_cell_magic("aihubmix", "-m gpt-4o-mini", "Why is the sky blue?")
    assert last_response().reasoning == ""
    assert not any("Reasoning" in o.get("text/markdown", "") for o in ip.display_pub.outputs())


@pytest.mark.parametrize("endpoint", ["chat", "responses"])
def test_reasoning_without_streaming(ip, endpoint):
    ip.run_cell_magic("aihubmix", f"-m claude-sonnet-4-5-think -e {endpoint} --no-stream", "Think first.")
    r = last_response()
    assert r.reasoning.startswith("Let me think") and not r.stream
    assert ip.display_pub.outputs()[0]["text/markdown"].startswith("<details><summary>Reasoning</summary>")
