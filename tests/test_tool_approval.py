"""Approving tool calls with the buttons, in a real kernel (jupyter_client, ipykernel): the cell waits while
the click, sent as the frontend sends it (a `comm_msg` on the shell channel), is handled; Run, Skip and
"Always for this cell". A frontend that does not allow stdin (nbclient, papermill) cannot answer: no prompt
is shown and the call is skipped."""

from __future__ import annotations

import pytest

from tests.test_interrupt import iter_iopub, kernel, messages_until_idle  # noqa: F401 - the kernel fixture

DEFINE = (
    "def get_weather(city: str) -> str:\n"
    "    '''The weather in a city.'''\n"
    "    return f'sunny in {city}, 21C'\n"
    "def get_time(city: str) -> str:\n"
    "    '''The time in a city.'''\n"
    "    return f'12:00 in {city}'\n"
)
REPORT = ("r = last_response()\n"
          "print([(c.name, c.approved, c.output) for s in r.steps for c in s.calls], r.status)")


def buttons(messages: list[dict]) -> dict[str, str]:
    """The comm ids of the prompt's buttons, by their label."""
    found = {}
    for msg in messages:
        if msg["msg_type"] != "comm_open":
            continue
        state = msg["content"].get("data", {}).get("state", {})
        if state.get("_model_name") == "ButtonModel":
            found[state["description"]] = msg["content"]["comm_id"]
    return found


def click(kc, comm_id: str) -> None:
    """What the frontend sends when a button is clicked."""
    content = {"comm_id": comm_id, "data": {"method": "custom", "content": {"event": "click"}}}
    kc.shell_channel.send(kc.session.msg("comm_msg", content))


def wait_for_prompt(kc, msg_id: str, seen: list[dict]) -> dict[str, str]:
    for msg in iter_iopub(kc, msg_id, 60, "the approval prompt never appeared"):
        seen.append(msg)
        found = buttons(seen)
        if len(found) == 3 and msg["msg_type"] == "display_data":
            return found
    raise AssertionError("unreachable")


def report(kc) -> str:
    printed: list[str] = []

    def hook(msg):
        if msg["msg_type"] == "stream":
            printed.append(msg["content"]["text"])

    reply = kc.execute_interactive(REPORT, timeout=30, output_hook=hook)
    assert reply["content"]["status"] == "ok"
    return "".join(printed).strip()


@pytest.mark.kernel
@pytest.mark.parametrize(("label", "approved"), [("Run", True), ("Skip", False)])
def test_the_cell_waits_for_a_click(kernel, sim, label, approved):  # noqa: F811
    km, kc = kernel
    assert kc.execute_interactive(DEFINE, timeout=30)["content"]["status"] == "ok"
    sim.reset()
    msg_id = kc.execute("%%aihubmix --tools get_weather -m sim-tool-call\nWhat is the weather in Paris?",
                        allow_stdin=True)
    seen: list[dict] = []
    found = wait_for_prompt(kc, msg_id, seen)
    assert set(found) == {"Run", "Skip", "Always for this cell"}
    assert sim.request_count == 1  # the second request waits for the click
    labels = [m["content"]["data"]["state"].get("value", "") for m in seen if m["msg_type"] == "comm_open"
              and m["content"]["data"]["state"].get("_model_name") == "HTMLModel"]
    assert labels == ["<b>Run this tool?</b> <code>get_weather(city=&#x27;Paris&#x27;)</code>"]
    click(kc, found[label])
    rest = messages_until_idle(kc, msg_id)
    reply = kc.get_shell_msg(timeout=30)
    assert reply["parent_header"]["msg_id"] == msg_id and reply["content"]["status"] == "ok"
    closed = {m["content"]["comm_id"] for m in rest if m["msg_type"] == "comm_close"}
    assert set(found.values()) <= closed  # the prompt goes away
    output = "sunny in Paris, 21C" if approved else "The user declined to run this tool."
    assert report(kc) == f"[('get_weather', {approved}, {output!r})] completed"
    assert sim.request_count == 2


@pytest.mark.kernel
def test_always_for_this_cell_asks_once(kernel, sim):  # noqa: F811
    km, kc = kernel
    assert kc.execute_interactive(DEFINE, timeout=30)["content"]["status"] == "ok"
    msg_id = kc.execute("%%aihubmix --tools get_weather,get_time -m sim-parallel-tools\nWeather and time in Paris?",
                        allow_stdin=True)
    seen: list[dict] = []
    found = wait_for_prompt(kc, msg_id, seen)
    click(kc, found["Always for this cell"])
    rest = messages_until_idle(kc, msg_id)
    assert kc.get_shell_msg(timeout=30)["content"]["status"] == "ok"
    assert buttons(rest) == {}  # no second prompt
    assert report(kc) == ("[('get_weather', True, 'sunny in Paris, 21C'), ('get_time', True, '12:00 in Paris')] "
                          "completed")


@pytest.mark.kernel
def test_a_frontend_without_stdin_gets_no_prompt_and_the_call_is_skipped(kernel, sim):  # noqa: F811
    km, kc = kernel
    assert kc.execute_interactive(DEFINE, timeout=30)["content"]["status"] == "ok"
    msg_id = kc.execute("%%aihubmix --tools get_weather -m sim-tool-call\nweather?", allow_stdin=False)
    messages = messages_until_idle(kc, msg_id)
    assert kc.get_shell_msg(timeout=30)["content"]["status"] == "ok"
    assert buttons(messages) == {}
    assert report(kc) == "[('get_weather', False, 'The user declined to run this tool.')] completed"


@pytest.mark.kernel
def test_an_interrupt_during_a_tool_stops_at_once_and_keeps_the_steps(kernel, sim):  # noqa: F811
    km, kc = kernel
    slow = ("import time\n"
            "def get_time(city: str) -> str:\n"
            "    '''Takes a long time.'''\n"
            "    print('tool started', flush=True)\n"
            "    time.sleep(120)\n"
            "    return 'never'\n")
    assert kc.execute_interactive(DEFINE + slow, timeout=30)["content"]["status"] == "ok"
    sim.reset()
    msg_id = kc.execute("%%aihubmix --tools get_weather,get_time --yes -m sim-parallel-tools\nweather and time?")
    for msg in iter_iopub(kc, msg_id, 60, "the tool never started"):
        if msg["msg_type"] == "stream" and "tool started" in msg["content"]["text"]:
            break
    km.interrupt_kernel()
    messages_until_idle(kc, msg_id)
    reply = kc.get_shell_msg(timeout=30)
    assert reply["content"]["status"] == "error" and reply["content"]["ename"] == "StreamInterruptedError"
    assert "stopped after 1 step" in reply["content"]["evalue"]
    assert report(kc) == "[('get_weather', True, 'sunny in Paris, 21C')] cancelled"
    assert sim.request_count == 1  # nothing was sent after the interrupt


@pytest.mark.kernel
def test_an_unanswered_prompt_says_what_to_do_then_times_out(kernel, sim):  # noqa: F811
    """Nobody clicks (a frontend that loses widget messages): a line under the buttons says what to do (after
    20 s; shortened here), and `settings.approval_timeout` skips the call; the step says why."""
    km, kc = kernel
    setup = DEFINE + "import aihubmix_magic.notebook.approval as a\na.HINT_AFTER = 0.5\nsettings.approval_timeout = 3\n"
    assert kc.execute_interactive(setup, timeout=30)["content"]["status"] == "ok"
    sim.reset()
    msg_id = kc.execute("%%aihubmix --tools get_weather -m sim-tool-call\nWhat is the weather in Paris?",
                        allow_stdin=True)
    seen: list[dict] = []
    found = wait_for_prompt(kc, msg_id, seen)
    assert len(found) == 3
    rest = messages_until_idle(kc, msg_id)
    assert kc.get_shell_msg(timeout=30)["content"]["status"] == "ok"
    hints = [m["content"]["data"] for m in rest if m["msg_type"] == "display_data"
             and "aihubmix-approval-hint" in m["content"]["data"].get("text/html", "")]
    assert len(hints) == 1, "one hint line"
    text = hints[0]["text/plain"]
    assert "interrupt the kernel (■) and run the cell again with --yes" in text and "reload the page" in text
    assert "skipped after 3 s (settings.approval_timeout)" in text
    printed: list[str] = []
    kc.execute_interactive("r = last_response()\nprint([(c.approved, c.note) for s in r.steps for c in s.calls])",
                           timeout=30, output_hook=lambda m: printed.append(m["content"].get("text", "")))
    assert "".join(printed).strip() == "[(False, 'no answer within the approval timeout')]"
    assert sim.request_count == 2  # the model was told the call did not run, and answered


def test_approval_timeout_is_checked():
    from aihubmix_magic import settings
    from aihubmix_magic.session.settings import InvalidSettingError

    for bad in (0, -1, float("inf")):
        with pytest.raises(InvalidSettingError, match="approval_timeout must be a positive number"):
            settings.approval_timeout = bad
    assert settings.approval_timeout is None  # off by default; nothing changed
