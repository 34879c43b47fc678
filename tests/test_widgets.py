"""The control panel without a browser: widgets <-> settings both ways, through a recording test comm.

As in ipywidgets' own tests (`ipywidgets/widgets/tests/utils.py`), the comm is replaced by one that
records what would go to the frontend; edits "from the frontend" are the real `update` / `custom` comm
messages a browser sends, fed to the widget's message handler.
"""

from __future__ import annotations

import json
import re
import socket

import comm
import pytest
from comm.base_comm import BaseComm

from aihubmix_magic import panel, settings
from aihubmix_magic.simulator import MODELS

ipywidgets = pytest.importorskip("ipywidgets")
from ipywidgets.widgets.widget import _instances  # noqa: E402  (the live widget registry)

from aihubmix_magic.notebook.widgets import Panel  # noqa: E402

CANARY = "sk-canary-Zq9Xw8Vu7Ts6Rr5Qp4Oo3"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


class RecordingComm(BaseComm):
    """A comm that keeps every message a widget sends to the frontend."""

    sent: list = []

    def publish_msg(self, msg_type, data=None, metadata=None, buffers=None, **keys):
        RecordingComm.sent.append((self.comm_id, msg_type, data))


@pytest.fixture(autouse=True)
def test_comm(monkeypatch):
    RecordingComm.sent = []
    monkeypatch.setattr(comm, "create_comm", lambda *args, **kwargs: RecordingComm(*args, **kwargs))
    before = set(_instances)
    yield RecordingComm.sent
    for model_id in set(_instances) - before:  # panels displayed by the magic, and anything left open
        widget = _instances.get(model_id)
        if isinstance(widget, Panel):
            widget.close()
    for model_id in set(_instances) - before:
        widget = _instances.get(model_id)
        if widget is not None:
            widget.close()


@pytest.fixture
def make_panel():
    made = []

    def make():
        made.append(Panel())
        made[-1]._fetcher.join(30)
        return made[-1]

    yield make
    for item in made:
        item.close()


def from_frontend(widget, **state):
    """What a browser sends when the user changes a control."""
    widget._handle_msg({"content": {"data": {"method": "update", "state": state}}, "buffers": []})


def click(button):
    button._handle_msg({"content": {"data": {"method": "custom", "content": {"event": "click"}}}, "buffers": []})


def model_ids(panel) -> set[str]:
    """The ids in the model picker, whose entries read `id · price · badges` when the catalog is known."""
    return {option.split(" · ")[0] for option in panel.model.options}


def index_of(selection, value):
    return list(selection.options).index(value)


def test_controls_follow_the_settings(make_panel):
    p = make_panel()
    settings.model = "claude-haiku-4-5"
    settings.endpoint = "responses"
    settings.temperature = 0.7
    settings.top_p = None
    settings.max_tokens = 321
    settings.reasoning_effort = "high"
    settings.stream = False
    settings.system = "Be brief."
    assert p.model.value == "claude-haiku-4-5"
    assert p.endpoint.value == "responses"
    assert (p.temperature.enabled.value, p.temperature.control.value, p.temperature.control.disabled) == (True, 0.7, False)
    assert (p.top_p.enabled.value, p.top_p.control.disabled) == (False, True)
    assert (p.max_tokens.enabled.value, p.max_tokens.control.value) == (True, 321)
    assert p.reasoning_effort.value == "high"
    assert p.stream.value is False
    assert p.system.value == "Be brief."

    settings.temperature = None
    settings.reasoning_effort = None
    assert (p.temperature.enabled.value, p.temperature.control.disabled) == (False, True)
    assert p.reasoning_effort.value == "off"
    # the panel wrote nothing back while it followed
    assert (settings.temperature, settings.reasoning_effort, settings.max_tokens) == (None, None, 321)


def test_frontend_edits_change_the_settings(make_panel):
    p = make_panel()
    from_frontend(p.model, value="deepseek-chat")
    from_frontend(p.endpoint, index=index_of(p.endpoint, "responses"))
    from_frontend(p.temperature.enabled, value=True)
    from_frontend(p.temperature.control, value=1.25)
    from_frontend(p.max_tokens.enabled, value=True)
    from_frontend(p.max_tokens.control, value=77)
    from_frontend(p.reasoning_effort, index=index_of(p.reasoning_effort, "minimal"))
    from_frontend(p.stream, value=False)
    from_frontend(p.system, value="Answer in French.")
    assert settings.model == "deepseek-chat"
    assert settings.endpoint == "responses"
    assert settings.temperature == 1.25
    assert settings.max_tokens == 77
    assert settings.reasoning_effort == "minimal"
    assert settings.stream is False
    assert settings.system == "Answer in French."

    from_frontend(p.temperature.enabled, value=False)
    from_frontend(p.reasoning_effort, index=index_of(p.reasoning_effort, "off"))
    from_frontend(p.max_tokens.enabled, value=False)
    assert (settings.temperature, settings.reasoning_effort, settings.max_tokens) == (None, None, None)
    assert p.temperature.control.disabled


def test_an_emptied_model_field_keeps_the_model(make_panel):
    p = make_panel()
    settings.model = "gpt-4o"
    from_frontend(p.model, value="  ")
    assert settings.model == "gpt-4o"
    assert p.model.value == "gpt-4o"


def test_the_next_cell_sends_what_the_panel_says_and_line_options_win_for_one_cell(ip, sim, make_panel):
    p = make_panel()
    from_frontend(p.model, value="claude-haiku-4-5")
    from_frontend(p.temperature.enabled, value=True)
    from_frontend(p.temperature.control, value=0.4)
    from_frontend(p.stream, value=False)
    ip.run_cell_magic("aihubmix", "", "Say hi")
    body = sim.requests[-1].body
    assert (body["model"], body["temperature"], body.get("stream", False)) == ("claude-haiku-4-5", 0.4, False)

    ip.run_cell_magic("aihubmix", "-m gpt-4o -t 1.5", "Say hi")
    body = sim.requests[-1].body
    assert (body["model"], body["temperature"]) == ("gpt-4o", 1.5)
    assert (settings.model, settings.temperature) == ("claude-haiku-4-5", 0.4)
    assert (p.model.value, p.temperature.control.value) == ("claude-haiku-4-5", 0.4)


def test_use_and_config_move_the_controls(ip, make_panel):
    p = make_panel()
    ip.run_line_magic("aihubmix", "use qwen3-coder")
    assert p.model.value == "qwen3-coder"
    ip.run_line_magic("config", 'AihubmixMagics.model = "gemini-2.5-flash"')
    ip.run_line_magic("config", "AihubmixMagics.top_p = 0.3")
    assert p.model.value == "gemini-2.5-flash"
    assert (p.top_p.enabled.value, p.top_p.control.value) == (True, 0.3)


def test_two_panels_stay_in_sync(make_panel):
    first, second = make_panel(), make_panel()
    from_frontend(first.model, value="Kimi-K2-0905")
    from_frontend(first.reasoning_effort, index=index_of(first.reasoning_effort, "xhigh"))
    from_frontend(second.top_p.enabled, value=True)
    from_frontend(second.top_p.control, value=0.5)
    for p in (first, second):
        assert p.model.value == "Kimi-K2-0905"
        assert p.reasoning_effort.value == "xhigh"
        assert (p.top_p.enabled.value, p.top_p.control.value) == (True, 0.5)


def test_a_key_typed_in_the_panel_goes_to_the_settings_and_nowhere_else(make_panel, test_comm):
    first, second = make_panel(), make_panel()
    settings.set_key(None)
    assert "no key" in first.status.value
    from_frontend(first.key, value=CANARY)
    assert settings.api_key == CANARY
    assert first.key.value == "" and second.key.value == ""
    assert "key set" in first.status.value and "key set" in second.status.value
    # what the kernel told the frontend: the field was cleared; the key itself was never sent
    cleared = [data for comm_id, kind, data in test_comm if comm_id == first.key.comm.comm_id
               and kind == "comm_msg" and data["method"] == "update" and data["state"].get("value") == ""]
    assert cleared
    assert CANARY not in json.dumps([data for _, _, data in test_comm], default=str)
    for widget in list(_instances.values()):
        assert CANARY not in json.dumps(widget.get_state(), default=str)
        assert CANARY not in repr(widget)


def test_a_key_with_a_control_character_typed_in_the_panel_is_refused_and_shown_masked(make_panel, test_comm):
    panel = make_panel()
    before = settings.api_key
    bad = CANARY + "\r\nX-Injected: yes"
    from_frontend(panel.key, value=bad)
    assert settings.api_key == before and panel.key.value == ""
    assert "carriage return" in panel.models_note.value and CANARY not in panel.models_note.value
    assert CANARY not in json.dumps([data for _, _, data in test_comm], default=str)


def test_status_line_shows_the_last_call_and_never_the_key(ip, sim, make_panel):
    p = make_panel()
    assert sim.base_url in p.status.value and "key set" in p.status.value
    assert "no call yet" in p.status.value or "last call" in p.status.value
    ip.run_cell_magic("aihubmix", "-m gpt-4.1-mini", "Say hi")
    status = p.status.value
    assert "last call: gpt-4.1-mini · chat · " in status
    assert "tokens" in status and re.search(r"\d\.\d\d s", status)
    assert settings.api_key not in status


def test_the_model_list_is_fetched_in_the_background_and_refreshed(sim, make_panel):
    p = make_panel()
    assert set(MODELS) <= model_ids(p)
    assert "models" in p.models_note.value
    before = sum(1 for r in sim.requests if r.path.endswith("/models"))
    click(p.refresh_button)
    p._fetcher.join(30)
    assert sum(1 for r in sim.requests if r.path.endswith("/models")) == before + 1


def test_a_failing_model_list_keeps_the_model_and_says_why_in_one_line(make_panel):
    with socket.socket() as probe:  # a loopback port with nobody listening
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    settings.model = "my-own-model"
    settings.max_retries = 0
    settings.base_url = f"http://127.0.0.1:{closed}/v1"
    p = make_panel()
    assert p.model.value == "my-own-model" and settings.model == "my-own-model"
    assert p.model.options == ()
    note = p.models_note.value
    assert "Cannot fetch the model list" in note
    assert "\n" not in note


def test_another_server_or_key_fetches_the_model_list_again(sim, make_panel):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    settings.max_retries = 0
    settings.base_url = f"http://127.0.0.1:{closed}/v1"
    p = make_panel()
    assert p.model.options == ()
    settings.base_url = sim.base_url  # as `%aihubmix demo` does
    p._fetcher.join(30)
    assert set(MODELS) <= model_ids(p)
    assert "Cannot fetch" not in p.models_note.value


def test_panel_subcommand_displays_the_widget(ip):
    ip.run_line_magic("aihubmix", "panel")
    views = [data[WIDGET_VIEW] for data in ip.display_pub.outputs() if WIDGET_VIEW in data]
    assert len(views) == 1
    shown = _instances[views[0]["model_id"]]
    assert isinstance(shown, Panel)
    settings.model = "o4-mini"
    assert shown.model.value == "o4-mini"


def test_panel_in_a_terminal_prints_the_settings(shell, capsys):
    settings.display = "terminal"
    settings.model = "deepseek-reasoner"
    shell.run_line_magic("aihubmix", "panel")
    out = capsys.readouterr().out
    assert re.search(r"^model\s+'deepseek-reasoner'$", out, re.M)
    assert settings.api_key not in out
    assert not [w for w in _instances.values() if isinstance(w, Panel)]


def test_panel_function_returns_a_new_panel_each_time():
    a, b = panel(), panel()
    try:
        assert isinstance(a, Panel) and isinstance(b, Panel) and a is not b
        assert a.children and a.children[0].children[0] is a.model
    finally:
        a.close()
        b.close()
