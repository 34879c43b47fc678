"""Saved prompts (save, -p, prompts) and model aliases, in a real shell; files on disk, requests on the wire."""

from __future__ import annotations

import json
import re

import pytest
from IPython.core.error import UsageError

from aihubmix_magic import last_response, settings
from tests.conftest import TEST_KEY

CELL = "Summarise {topic} in one sentence."


@pytest.fixture
def folders(tmp_path, monkeypatch):
    """The kernel's working directory (the notebook's folder) and the personal folder, both empty."""
    notebook = tmp_path / "course"
    personal = tmp_path / "config"
    notebook.mkdir()
    monkeypatch.chdir(notebook)
    monkeypatch.setenv("AIHUBMIX_CONFIG_DIR", str(personal))
    return notebook / ".aihubmix", personal


def user_message(sim) -> str:
    body = sim.requests[-1].body
    return body["messages"][-1]["content"] if "messages" in body else body["input"]


def system_message(sim) -> str:
    body = sim.requests[-1].body
    return body["messages"][0]["content"] if "messages" in body else body["instructions"]


def test_save_writes_the_previous_cell_next_to_the_notebook(ip, sim, folders, capsys):
    project, _ = folders
    ip.user_ns["topic"] = "photosynthesis"
    ip.run_cell_magic("aihubmix", '-m claude-haiku-4-5 -t 0.2 -s "You are terse: one line." --max-tokens 80 -c', CELL)
    ip.run_line_magic("aihubmix", "save summary")
    path = project / "prompts" / "summary.md"
    assert path.read_text() == ("---\nmodel: claude-haiku-4-5\nsystem: \"You are terse: one line.\"\n"
                                "temperature: 0.2\nmax-tokens: 80\n---\nSummarise {topic} in one sentence.\n")
    out = capsys.readouterr().out
    assert out.startswith("Saved prompt 'summary' (--model claude-haiku-4-5 ") and "%%aihubmix -p summary" in out
    ip.run_line_magic("aihubmix", "save summary")
    assert capsys.readouterr().out.startswith("Replaced prompt 'summary'")


def test_run_a_saved_prompt_with_extra_text_and_line_options_winning(ip, sim, folders):
    ip.user_ns["topic"] = "photosynthesis"
    ip.run_cell_magic("aihubmix", '-m claude-haiku-4-5 -t 0.2 -s "Be terse."', CELL)
    ip.run_line_magic("aihubmix", "save summary")
    sim.reset()
    ip.user_ns["topic"] = "osmosis"
    ip.run_cell_magic("aihubmix", "-p summary", "Mention water.")
    body = sim.requests[-1].body
    assert (body["model"], body["temperature"]) == ("claude-haiku-4-5", 0.2)
    assert system_message(sim) == "Be terse."
    assert user_message(sim) == "Summarise osmosis in one sentence.\n\nMention water."
    ip.run_line_magic("aihubmix", "-p summary -m gpt-4o -t 0.9 -e responses")  # the line form: no extra text
    body = sim.requests[-1].body
    assert (body["model"], body["temperature"], body["instructions"]) == ("gpt-4o", 0.9, "Be terse.")
    assert body["input"] == "Summarise osmosis in one sentence."
    assert last_response().status == "completed"


def test_prompts_lists_both_folders_and_the_notebook_folder_wins(ip, sim, folders):
    ip.run_cell_magic("aihubmix", "-m gpt-4o", "Personal version.")
    ip.run_line_magic("aihubmix", "save greet --user")
    ip.run_cell_magic("aihubmix", "-m gpt-4o-mini", "Course version.")
    ip.run_line_magic("aihubmix", "save greet")
    ip.run_cell_magic("aihubmix", "-f json", "Mine only.")
    ip.run_line_magic("aihubmix", "save mine --user")
    _, personal = folders
    assert (personal / "prompts" / "greet.md").is_file() and (personal / "prompts" / "mine.md").is_file()
    ip.run_line_magic("aihubmix", "-p greet")
    assert user_message(sim) == "Course version." and sim.requests[-1].body["model"] == "gpt-4o-mini"
    ip.run_line_magic("aihubmix", "-p mine")
    assert sim.requests[-1].body["response_format"] == {"type": "json_object"}
    ip.run_line_magic("aihubmix", "prompts")
    table = ip.display_pub.outputs()[-1]["text/markdown"]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    assert rows == [
        "| `greet` | notebook folder | model=gpt-4o-mini | Course version. |",
        "| `greet` | personal (hidden by the notebook folder's) | model=gpt-4o | Personal version. |",
        "| `mine` | personal | format=json | Mine only. |",
    ]


def test_a_prompt_pack_written_by_hand(ip, sim, folders):
    project, _ = folders
    (project / "prompts").mkdir(parents=True)
    (project / "prompts" / "label.md").write_text(
        "---\n# shipped with the course\ndescription: Label a review\nmodel: gpt-4o-mini\nno-stream: true\n"
        "context:\n  - df\n---\nIs this review positive, neutral or negative? One word.\n\nReview: {review}\n")
    import pandas as pd

    ip.user_ns.update(df=pd.DataFrame({"rating": [5, 1]}), review="Broken on arrival, a nightmare.")
    ip.run_line_magic("aihubmix", "-p label")
    body = sim.requests[-1].body
    assert body.get("stream", False) is False
    assert user_message(sim).startswith("Is this review positive, neutral or negative? One word.\n\nReview: Broken")
    assert "`df` — pandas DataFrame" in user_message(sim)
    assert last_response().text == "negative"
    ip.run_line_magic("aihubmix", "prompts")
    assert "| `label` | notebook folder | model=gpt-4o-mini, no-stream=True, context=['df'] | Label a review |" in \
        ip.display_pub.outputs()[-1]["text/markdown"]


@pytest.mark.parametrize(("front_matter", "words"), [
    ("colour: blue", "'colour' is not an option"),
    ("thread: t1", "'thread' is not an option"),
    ("temperature: hot", "invalid float value"),
    ("no-stream: sometimes", "is a flag"),
    ("just a line", "not 'option: value'"),
])
def test_a_broken_prompt_file_is_one_line_and_sends_nothing(ip, sim, folders, front_matter, words):
    project, _ = folders
    (project / "prompts").mkdir(parents=True)
    path = project / "prompts" / "broken.md"
    path.write_text(f"---\n{front_matter}\n---\nHello.\n")
    with pytest.raises(UsageError, match=re.escape(words)) as info:
        ip.run_line_magic("aihubmix", "-p broken")
    assert "broken" in str(info.value) and "\n" not in str(info.value)
    assert sim.request_count == 0


def test_missing_names_and_nothing_to_save(ip, sim, folders):
    with pytest.raises(UsageError, match="No saved prompt named 'nope'. None is saved yet"):
        ip.run_cell_magic("aihubmix", "-p nope", "hi")
    with pytest.raises(UsageError, match="Prompt name '../x'"):
        ip.run_cell_magic("aihubmix", "-p ../x", "hi")
    with pytest.raises(UsageError, match="Usage: %aihubmix save NAME"):
        ip.run_line_magic("aihubmix", "save")
    ip.magics_manager.registry["AihubmixMagics"]._extras.last_cell = None
    with pytest.raises(UsageError, match="Nothing to save"):
        ip.run_line_magic("aihubmix", "save x")
    assert sim.request_count == 0


def test_a_prompt_holding_the_key_is_not_saved(ip, sim, folders):
    project, _ = folders
    ip.run_cell_magic("aihubmix", f"-s 'my key is {TEST_KEY}'", "hi")
    with pytest.raises(UsageError, match="would contain the API key"):
        ip.run_line_magic("aihubmix", "save leaky")
    assert not (project / "prompts" / "leaky.md").exists()


def test_aliases(ip, sim, folders, capsys):
    project, personal = folders
    ip.run_line_magic("aihubmix", "alias fast gpt-4o-mini")
    assert json.loads((project / "aliases.json").read_text()) == {"fast": "gpt-4o-mini"}
    ip.run_cell_magic("aihubmix", "-m fast", "hi")
    assert sim.requests[-1].body["model"] == "gpt-4o-mini"
    ip.run_line_magic("aihubmix", "alias smart claude-sonnet-4-5 --user")
    ip.run_line_magic("aihubmix", "alias fast deepseek-chat --user")  # hidden by the notebook folder's
    assert json.loads((personal / "aliases.json").read_text()) == {"fast": "deepseek-chat",
                                                                  "smart": "claude-sonnet-4-5"}
    ip.run_line_magic("aihubmix", "use smart")
    ip.run_cell_magic("aihubmix", "", "hi")
    assert sim.requests[-1].body["model"] == "claude-sonnet-4-5"
    ip.run_cell_magic("aihubmix", "--compare fast,smart", "hi")
    assert sorted(r.body["model"] for r in sim.requests[-2:]) == ["claude-sonnet-4-5", "gpt-4o-mini"]
    capsys.readouterr()
    ip.run_line_magic("aihubmix", "alias")
    listing = capsys.readouterr().out.splitlines()
    assert [line.split() for line in listing] == [
        ["fast", "→", "gpt-4o-mini", "notebook", "folder"],
        ["fast", "→", "deepseek-chat", "personal", "(hidden", "by", "the", "notebook", "folder’s)"],
        ["smart", "→", "claude-sonnet-4-5", "personal"],
    ]
    ip.run_line_magic("aihubmix", "models")
    table = ip.display_pub.outputs()[-1]["text/markdown"]
    assert "| `fast` | alias for `gpt-4o-mini` |" in table and "| `smart` | alias for `claude-sonnet-4-5` |" in table
    ip.run_line_magic("aihubmix", "alias fast --remove")
    ip.run_cell_magic("aihubmix", "-m fast", "hi")  # now the personal alias
    assert sim.requests[-1].body["model"] == "deepseek-chat"


def test_the_panel_offers_aliases(ip, sim, folders):
    pytest.importorskip("ipywidgets")
    from aihubmix_magic.notebook.widgets import Panel

    ip.run_line_magic("aihubmix", "alias fast gpt-4o-mini")
    panel = Panel()
    try:
        panel._fetcher.join(30)
        ids = [option.split(" · ")[0] for option in panel.model.options]  # "id · price · badges"
        assert ids[0] == "fast" and "gpt-4o-mini" in ids
        assert "fast → gpt-4o-mini" in panel.models_note.value
        panel.model.value = "fast"
        assert settings.model == "fast"
        ip.run_cell_magic("aihubmix", "", "hi")
        assert sim.requests[-1].body["model"] == "gpt-4o-mini"
    finally:
        panel.close()


@pytest.mark.parametrize(("line", "words"), [
    ("alias fast", None),
    ("alias a b c", "Usage"),
    ("alias bad/name gpt-4o", "Alias name"),
    ("alias x a,b", "not a model id"),
    ("alias ghost --remove", "no alias 'ghost'"),
])
def test_bad_alias_commands(ip, folders, capsys, line, words):
    if words is None:
        ip.run_line_magic("aihubmix", line)
        assert capsys.readouterr().out == "No alias named 'fast'.\n"
        return
    with pytest.raises(UsageError, match=re.escape(words)):
        ip.run_line_magic("aihubmix", line)
