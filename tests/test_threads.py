"""Conversations: -c, --thread NAME, --store, %aihubmix reset / history, in a real shell against the simulator."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError

from aihubmix_magic import APIResponseError, last_response
from aihubmix_magic.services import threads as _threads
from aihubmix_magic.session import state as _session


@pytest.fixture(autouse=True)
def _no_threads():
    _session.current().threads.clear()
    yield
    _session.current().threads.clear()


def roles(messages):
    return [(m["role"], m["content"]) for m in messages]


def test_cells_stand_alone_without_c(ip, sim):
    ip.run_cell_magic("aihubmix", "", "first question")
    ip.run_cell_magic("aihubmix", "", "second question")
    assert sim.requests[-1].body["messages"] == [{"role": "user", "content": "second question"}]


@pytest.mark.parametrize("endpoint", ["chat", "responses"])
def test_continue_sends_the_whole_conversation(ip, sim, endpoint):
    ip.run_cell_magic("aihubmix", f"-e {endpoint}", "first question")
    first = last_response().text
    ip.run_cell_magic("aihubmix", f"-e {endpoint} -c", "second question")
    second = last_response().text
    ip.run_cell_magic("aihubmix", f"-e {endpoint} --continue", "third question")
    body = sim.requests[-1].body
    sent = body["messages"] if endpoint == "chat" else body["input"]
    assert roles(sent) == [("user", "first question"), ("assistant", first), ("user", "second question"),
                           ("assistant", second), ("user", "third question")]
    if endpoint == "responses":
        assert body["store"] is False and "previous_response_id" not in body
    # the simulator answers the last user message
    assert 'You asked: "third question"' in last_response().text


def test_a_cell_without_c_starts_over(ip, sim):
    ip.run_cell_magic("aihubmix", "", "one")
    ip.run_cell_magic("aihubmix", "-c", "two")
    ip.run_cell_magic("aihubmix", "", "fresh start")
    answer = last_response().text
    ip.run_cell_magic("aihubmix", "-c", "follow-up")
    assert roles(sim.requests[-1].body["messages"]) == [("user", "fresh start"), ("assistant", answer),
                                                        ("user", "follow-up")]


def test_system_prompt_comes_first_in_a_thread(ip, sim):
    ip.run_cell_magic("aihubmix", '-s "Be brief."', "one")
    ip.run_cell_magic("aihubmix", '-s "Be brief." -c', "two")
    messages = sim.requests[-1].body["messages"]
    assert messages[0] == {"role": "system", "content": "Be brief."}
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]


def test_named_threads_are_separate_from_each_other_and_from_c(ip, sim):
    ip.run_cell_magic("aihubmix", "--thread cooking", "soup?")
    soup = last_response().text
    ip.run_cell_magic("aihubmix", "", "standalone")
    ip.run_cell_magic("aihubmix", "--thread travel", "trains?")
    ip.run_cell_magic("aihubmix", "--thread cooking", "bread?")
    assert roles(sim.requests[-1].body["messages"]) == [("user", "soup?"), ("assistant", soup), ("user", "bread?")]
    ip.run_cell_magic("aihubmix", "-c", "more")
    assert [m["content"] for m in sim.requests[-1].body["messages"] if m["role"] == "user"] == ["standalone", "more"]
    assert [len(_session.current().threads.responses(name)) for name in ("cooking", "travel", "default")] == [2, 1, 2]


def test_failed_exchanges_do_not_join_the_thread(ip, sim):
    ip.run_cell_magic("aihubmix", "", "one")
    with pytest.raises(APIResponseError):
        ip.run_cell_magic("aihubmix", "-c -m sim-error-event", "broken")
    assert last_response().status == "failed"
    ip.run_cell_magic("aihubmix", "-c", "two")
    assert [m["content"] for m in sim.requests[-1].body["messages"] if m["role"] == "user"] == ["one", "two"]


def test_store_uses_previous_response_id(ip, sim):
    ip.run_cell_magic("aihubmix", "-e responses --store", "one")
    first = last_response()
    assert sim.requests[-1].body["store"] is True
    ip.run_cell_magic("aihubmix", "-e responses --store -c", "two")
    body = sim.requests[-1].body
    assert body["previous_response_id"] == first.id and body["store"] is True
    assert body["input"] == [{"role": "user", "content": "two"}]


def test_store_needs_the_responses_endpoint(ip, sim):
    before = sim.request_count
    with pytest.raises(UsageError, match="responses endpoint"):
        ip.run_cell_magic("aihubmix", "--store", "hi")
    assert sim.request_count == before


def test_history_and_reset(ip, sim, capsys):
    ip.run_cell_magic("aihubmix", "--thread notes", "remember this")
    answer = last_response().text
    ip.display_pub.messages.clear()
    ip.run_line_magic("aihubmix", "history notes")
    shown = ip.display_pub.outputs()[-1]["text/markdown"]
    assert "Thread `notes` · 1 exchange" in shown and "remember this" in shown and answer in shown
    ip.run_line_magic("aihubmix", "reset notes")
    assert "forgotten (1 exchange)" in capsys.readouterr().out
    with pytest.raises(UsageError, match="'notes' is empty"):
        ip.run_line_magic("aihubmix", "history notes")
    ip.run_cell_magic("aihubmix", "--thread notes", "new start")
    assert sim.requests[-1].body["messages"] == [{"role": "user", "content": "new start"}]


def test_history_of_the_default_thread(ip, sim):
    ip.run_cell_magic("aihubmix", "-m deepseek-chat", "hello there")
    ip.display_pub.messages.clear()
    ip.run_line_magic("aihubmix", "history")
    shown = ip.display_pub.outputs()[-1]["text/markdown"]
    assert "**1. You**\n\nhello there" in shown and "**1. deepseek-chat**" in shown


def test_reasoning_details_go_back_unchanged_on_chat():
    from aihubmix_magic import Response

    details = [{"type": "reasoning.text", "text": "hmm", "signature": "sig"}]
    raw = {"choices": [{"message": {"role": "assistant", "content": "hi", "reasoning_details": details}}]}
    thread = _threads.Thread("t")
    assert thread.add("q", Response(endpoint="chat", request={}, status="completed", raw=raw, _text="hi"))
    assert thread.messages("chat")[1] == {"role": "assistant", "content": "hi", "reasoning_details": details}
    assert thread.messages("responses")[1] == {"role": "assistant", "content": "hi"}
