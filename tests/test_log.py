"""The log (issue 22): every exchange in SQLite in the data directory, searched with `%aihubmix log` and
`logs()`, threads continued from it, two writers at once, a broken file that never fails a cell."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from IPython.core.error import UsageError

from aihubmix_magic import batch, last_response, logs, settings
from aihubmix_magic.session import state as _session
from aihubmix_magic.store import log as _log
from tests.conftest import TEST_KEY


@pytest.fixture(autouse=True)
def _no_threads():
    _session.current().threads.clear()
    yield
    _session.current().threads.clear()


def rows(kind=None):
    with sqlite3.connect(_log.default_log_path()) as db:
        db.row_factory = sqlite3.Row
        found = [dict(r) for r in db.execute("SELECT * FROM exchanges ORDER BY rowid")]
    return [r for r in found if kind is None or r["kind"] == kind]


def shown(ip) -> str:
    return "\n".join(str(d.get("text/markdown", d.get("text/plain", ""))) for d in ip.display_pub.outputs())


def test_the_data_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("AIHUBMIX_DATA_DIR", str(tmp_path / "d"))
    assert _log.default_log_path() == tmp_path / "d" / "log.sqlite"
    monkeypatch.delenv("AIHUBMIX_DATA_DIR")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert _log.default_log_path() == tmp_path / "xdg" / "aihubmix-magic" / "log.sqlite"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert _log.default_log_path() == tmp_path / "home" / ".local" / "share" / "aihubmix-magic" / "log.sqlite"


def test_a_cell_is_logged_privately_without_the_key(ip, sim):
    ip.run_cell_magic("aihubmix", "-m gpt-4o-mini", "What is a p-value?")
    [row] = rows()
    answer = last_response()
    assert (row["kind"], row["model"], row["endpoint"], row["prompt"]) == ("cell", "gpt-4o-mini", "chat",
                                                                          "What is a p-value?")
    assert row["answer"] == answer.text and row["status"] == "completed" and row["response_id"] == answer.id
    assert row["input_tokens"] == answer.usage.input_tokens and row["output_tokens"] == answer.usage.output_tokens
    path = _log.default_log_path()
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    for file in path.parent.iterdir():
        assert stat.S_IMODE(file.stat().st_mode) == 0o600, file
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == _log.SCHEMA_VERSION
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    for file in path.parent.iterdir():
        assert TEST_KEY.encode() not in file.read_bytes()


def test_a_prompt_that_quotes_the_key_is_logged_masked(ip, sim):
    key = "sk-quoted-in-a-prompt-0123456789abcdef"  # not the session's usual key: history keeps this prompt
    settings.set_key(key)
    ip.run_cell_magic("aihubmix", "--no-template", f"is {key} a key?")
    [row] = rows()
    assert key not in row["prompt"] and key not in row["answer"] and key[-4:] in row["prompt"]
    assert sim.requests[-1].headers["authorization"] == f"Bearer {key}"


def test_log_off_and_on(ip, sim):
    ip.run_line_magic("aihubmix", "log off")
    assert settings.log is False
    ip.run_cell_magic("aihubmix", "", "not logged")
    assert not _log.default_log_path().exists() or rows() == []
    ip.run_line_magic("aihubmix", "log on")
    ip.run_cell_magic("aihubmix", "", "logged")
    assert [r["prompt"] for r in rows()] == ["logged"]


def test_compare_fix_and_tool_steps_are_logged(ip, sim):
    ip.run_cell_magic("aihubmix", "--compare gpt-4o-mini,gpt-4o", "Name a colour.")
    assert sorted(r["model"] for r in rows("compare")) == ["gpt-4o", "gpt-4o-mini"]

    def get_weather(city: str) -> str:
        """The weather in a city."""
        return f"sunny in {city}"

    ip.user_ns["get_weather"] = get_weather
    ip.run_cell_magic("aihubmix", "--tools get_weather --yes", "What's the weather in Paris? Use the tool.")
    assert len(rows("tool_step")) >= 1
    assert rows("cell")[-1]["answer"] == last_response().text
    ip.run_cell("1/0")
    ip.run_line_magic("aihubmix", "fix")
    assert len(rows("fix")) == 1


def test_a_batch_is_one_row_and_its_items_only_when_asked(sim):
    results = batch(["a", "b", "c"], model="gpt-4o-mini", progress=False)
    [row] = rows("batch")
    assert (row["items"], row["failed"], row["model"]) == (3, 0, "gpt-4o-mini")
    assert row["input_tokens"] == results.summary.input_tokens and "(and 2 more prompts)" in row["prompt"]
    assert rows("batch_item") == []
    batch(["d", "e"], model="gpt-4o-mini", template="Say {}", progress=False, log_items=True)
    assert sorted(r["prompt"] for r in rows("batch_item")) == ["Say d", "Say e"]  # in the order they finished
    assert rows("batch")[-1]["prompt"] == "Say {}"


def test_search_with_the_magic_and_logs(ip, sim):
    ip.run_cell_magic("aihubmix", "-m gpt-4o-mini", "Tell me about penguins")
    ip.run_cell_magic("aihubmix", "-m gpt-4o", "Tell me about giraffes")
    ip.run_cell_magic("aihubmix", "-m gpt-4o --thread zoo", "And zebras?")
    ip.display_pub.messages.clear()
    ip.run_line_magic("aihubmix", "log penguins")
    text = shown(ip)
    assert "penguins" in text and "giraffes" not in text
    ip.display_pub.messages.clear()
    ip.run_line_magic("aihubmix", "log -n 1")
    assert "zebras" in shown(ip) and "giraffes" not in shown(ip)
    ip.display_pub.messages.clear()
    ip.run_line_magic("aihubmix", "log --model gpt-4o")
    assert "giraffes" in shown(ip) and "penguins" not in shown(ip)
    ip.display_pub.messages.clear()
    ip.run_line_magic("aihubmix", "log --thread zoo")
    assert "zebras" in shown(ip) and "giraffes" not in shown(ip)
    frame = logs()
    assert list(frame.columns) == list(_log.COLUMNS)
    assert list(frame["prompt"]) == ["And zebras?", "Tell me about giraffes", "Tell me about penguins"]
    assert list(logs("giraffes")["model"]) == ["gpt-4o"]
    assert list(logs("giraf")["model"]) == ["gpt-4o"] and list(logs('NEAR "AND')["model"]) == []
    assert list(logs(thread="zoo")["prompt"]) == ["And zebras?"] and logs(thread="zoo")["thread"][0] == "zoo"
    assert len(logs(n=2)) == 2 and len(logs(model="gpt-4o-mini")) == 1
    assert len(logs(since="2999-01-01")) == 0 and len(logs(since="2000-01-01")) == 3
    assert str(frame["time"].dtype).startswith("datetime64")


def test_logs_without_pandas_is_a_list_of_dicts(ip, sim, monkeypatch):
    ip.run_cell_magic("aihubmix", "", "hello there")
    monkeypatch.setitem(sys.modules, "pandas", None)
    found = logs()
    assert isinstance(found, list) and list(found[0]) == list(_log.COLUMNS) and found[0]["prompt"] == "hello there"


def test_the_like_fallback_finds_the_same(ip, sim):
    ip.run_cell_magic("aihubmix", "", "100% sure about under_scores?")
    ip.run_cell_magic("aihubmix", "", "something else")
    log = _log.log_for()
    assert log.fts  # this SQLite has FTS5
    assert [r["prompt"] for r in log.search("under_scores", kinds=["cell"])] == ["100% sure about under_scores?"]
    log.fts = False  # as on an SQLite without FTS5
    try:
        assert [r["prompt"] for r in log.search("100% under_scores", kinds=["cell"])] == [
            "100% sure about under_scores?"]
        assert log.search("under%scores", kinds=["cell"]) == []
    finally:
        log.fts = True


@pytest.mark.parametrize("line", ["log -n", "log -n zero", "log --bogus", "log clear --before yesterday",
                                  "log clear now", 'log "unclosed'])
def test_bad_log_commands_are_one_line_errors(ip, line):
    with pytest.raises(UsageError):
        ip.run_line_magic("aihubmix", line)


def test_path_and_clear(ip, sim, capsys):
    ip.run_cell_magic("aihubmix", "", "one")
    ip.run_cell_magic("aihubmix", "", "two")
    capsys.readouterr()
    ip.run_line_magic("aihubmix", "log path")
    assert capsys.readouterr().out.strip() == str(_log.default_log_path())
    ip.run_line_magic("aihubmix", "log clear --before 2000-01-01")
    assert "0 exchanges deleted" in capsys.readouterr().out and len(rows()) == 2
    ip.run_line_magic("aihubmix", "log clear")
    assert "2 exchanges deleted" in capsys.readouterr().out and rows() == []
    assert logs("one").empty


def test_a_corrupt_log_warns_once_and_the_cell_answers(ip, sim, tmp_path, monkeypatch):
    data = tmp_path / "broken"
    data.mkdir()
    (data / "log.sqlite").write_bytes(b"this is not a database at all" * 100)
    monkeypatch.setenv("AIHUBMIX_DATA_DIR", str(data))
    with pytest.warns(RuntimeWarning, match="cannot be written") as record:
        ip.run_cell_magic("aihubmix", "", "still answered?")
        ip.run_cell_magic("aihubmix", "", "and again?")
    assert len([w for w in record if "aihubmix log" in str(w.message)]) == 1
    assert 'You asked: "and again?"' in last_response().text


def test_a_read_only_log_directory_warns_and_the_cell_answers(ip, sim, tmp_path, monkeypatch):
    data = tmp_path / "ro"
    if os.geteuid() == 0:  # root writes anywhere: a directory that cannot be made at all instead
        data.write_text("a file where the directory should be")
    else:
        data.mkdir(mode=0o500)
    monkeypatch.setenv("AIHUBMIX_DATA_DIR", str(data / "sub"))
    with pytest.warns(RuntimeWarning, match="cannot be written"):
        ip.run_cell_magic("aihubmix", "", "read-only?")
    assert last_response().status == "completed"


def test_a_locked_log_warns_and_the_cell_answers(ip, sim, monkeypatch):
    monkeypatch.setattr(_log, "BUSY_TIMEOUT_MS", 200)  # how long a write waits for another kernel's
    ip.run_cell_magic("aihubmix", "", "first")
    holder = sqlite3.connect(_log.default_log_path(), isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.warns(RuntimeWarning, match="locked"):
            ip.run_cell_magic("aihubmix", "", "while locked")
        assert last_response().status == "completed"
    finally:
        holder.execute("ROLLBACK")
        holder.close()


WRITER = textwrap.dedent("""
    import sys, time
    from aihubmix_magic.store.log import log_for
    log = log_for(sys.argv[1])
    start = float(sys.argv[3])
    while time.time() < start:
        time.sleep(0.001)
    for number in range(200):
        log.write([{"time": time.time(), "kind": "cell", "model": "m", "endpoint": "chat",
                    "prompt": f"{sys.argv[2]} {number}", "answer": "a", "status": "completed", "starts": 1}])
""")


def test_two_processes_write_at_once(tmp_path):
    import time

    path = tmp_path / "shared" / "log.sqlite"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    start = str(time.time() + 1.5)  # both start writing at the same moment (and migrate the new file together)
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), name, start], env=env,
                                stderr=subprocess.PIPE, text=True) for name in ("left", "right")]
    for writer in writers:
        _, errors = writer.communicate(timeout=120)
        assert writer.returncode == 0, errors
    log = _log.Log(path)
    found = log.search(n=None)
    assert len(found) == 400
    assert {r["prompt"] for r in found} == {f"{side} {n}" for side in ("left", "right") for n in range(200)}
    assert len(log.search("left", kinds=("cell",))) == 200  # the full-text index saw every row too


def test_a_file_of_an_older_schema_is_migrated(tmp_path, monkeypatch):
    path = tmp_path / "old" / "log.sqlite"
    path.parent.mkdir()
    with sqlite3.connect(path) as db:  # version 0: a file with nothing in it yet
        db.execute("CREATE TABLE unrelated (x)")
    monkeypatch.setitem(_log.MIGRATIONS, 2, ("ALTER TABLE exchanges ADD COLUMN note TEXT",))
    monkeypatch.setattr(_log, "SCHEMA_VERSION", 2)
    log = _log.Log(path)
    log.write([{"time": 1.0, "kind": "cell", "prompt": "p", "answer": "a", "status": "completed", "starts": 1}])
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 2
        assert "note" in [c[1] for c in db.execute("PRAGMA table_info(exchanges)")]


# -- spend over time ------------------------------------------------------------------------------------------
def test_a_day_budget_counts_every_kernel_from_the_log(ip, sim, capsys):
    import time

    from aihubmix_magic import BudgetExceededError

    ip.run_line_magic("aihubmix", "budget 0.001/day")
    assert settings.budget_day == 0.001 and "Budget $0.0010/day · spent $0 today" in capsys.readouterr().out
    ip.run_cell_magic("aihubmix", "-m claude-sonnet-4-5", "words=120")  # about $0.002: over the budget
    spent = last_response().cost
    assert rows()[-1]["cost"] == pytest.approx(spent)
    with pytest.raises(BudgetExceededError, match=r"budget of \$0\.0010/day is used up") as info:
        ip.run_cell_magic("aihubmix", "-m gpt-4o-mini", "one more?")
    assert info.value.spent == pytest.approx(spent) and len(sim.requests) == 1
    with pytest.raises(BudgetExceededError):
        batch(["a"], model="gpt-4o-mini", progress=False)
    assert len(sim.requests) == 1
    ip.run_line_magic("aihubmix", "budget off/day")
    assert settings.budget_day is None
    # another kernel spent $3 this month; yesterday's rows count for the month but not today
    _log.log_for().write([{"time": time.time(), "kind": "cell", "model": "gpt-4o", "cost": 3.0, "status": "completed"},
                          {"time": _cost_period_start("day") - 1, "kind": "batch", "model": "x", "cost": 100.0,
                           "status": "completed"}])
    ip.run_line_magic("aihubmix", "budget 2/month")
    with pytest.raises(BudgetExceededError, match=r"\$2\.00/month"):
        ip.run_cell_magic("aihubmix", "", "refused")
    assert len(sim.requests) == 1


def _cost_period_start(period):
    from aihubmix_magic.services import cost as _cost

    return _cost.period_start(period)


def test_cost_today_and_month(ip, sim):
    import time

    ip.run_cell_magic("aihubmix", "-m claude-sonnet-4-5", "words=120")
    batch(["a", "b"], model="gpt-4o-mini", progress=False)
    _log.log_for().write([{"time": time.time() - 40 * 86400, "kind": "cell", "model": "old-model", "cost": 9.0,
                           "status": "completed"}])
    ip.display_pub.messages.clear()
    ip.run_line_magic("aihubmix", "cost --today")
    text = shown(ip)
    assert "claude-sonnet-4-5" in text and "gpt-4o-mini" in text and "old-model" not in text
    assert "| `gpt-4o-mini` | 2 |" in text  # the batch run counts its items as calls
    ip.display_pub.messages.clear()
    ip.run_line_magic("aihubmix", "cost --month")
    assert "this month" in shown(ip) and "old-model" not in shown(ip)


@pytest.mark.parametrize("line", ["budget 5/week", "budget lots/day", "budget -1/day", "budget 0/month",
                                  "budget 5/", "budget /day", "cost --week", "cost --today --month"])
def test_bad_period_budgets_are_one_line(ip, sim, line):
    with pytest.raises(UsageError) as info:
        ip.run_line_magic("aihubmix", line)
    assert "\n" not in str(info.value)
    assert settings.budget_day is None and settings.budget_month is None and sim.requests == []


# -- threads from the log (in one process: the session's threads forgotten, as by a restart) --------------------
def restart():
    _session.current().threads.clear()


def test_a_named_thread_continues_from_the_log(ip, sim):
    ip.run_cell_magic("aihubmix", "--thread t", "first question")
    first = last_response().text
    ip.run_cell_magic("aihubmix", "", "an unrelated cell")
    restart()
    ip.run_cell_magic("aihubmix", "--thread t", "second question")
    assert [(m["role"], m["content"]) for m in sim.requests[-1].body["messages"]] == [
        ("user", "first question"), ("assistant", first), ("user", "second question")]
    restart()
    ip.display_pub.messages.clear()
    ip.run_line_magic("aihubmix", "history t")
    assert "first question" in shown(ip) and "second question" in shown(ip) and "2 exchanges" in shown(ip)
    ip.run_line_magic("aihubmix", "reset t")
    ip.run_cell_magic("aihubmix", "--thread t", "anew")
    assert [m["content"] for m in sim.requests[-1].body["messages"]] == ["anew"]


def test_c_continues_the_last_standalone_cell_from_the_log(ip, sim):
    ip.run_cell_magic("aihubmix", "", "old start")
    ip.run_cell_magic("aihubmix", "", "new start")
    answer = last_response().text
    ip.run_cell_magic("aihubmix", "--thread other", "elsewhere")
    ip.run_cell("%%aihubmix -m no-such-model\nfailed standalone cells do not start over")
    restart()
    ip.run_cell_magic("aihubmix", "-c", "go on")
    assert [(m["role"], m["content"]) for m in sim.requests[-1].body["messages"]] == [
        ("user", "new start"), ("assistant", answer), ("user", "go on")]


def test_a_stored_responses_thread_continues_with_the_previous_id(ip, sim):
    ip.run_cell_magic("aihubmix", "-e responses --store --thread s", "remember 42")
    first_id = last_response().id
    restart()
    ip.run_cell_magic("aihubmix", "-e responses --store --thread s", "what number?")
    body = sim.requests[-1].body
    assert body["previous_response_id"] == first_id and body["store"] is True


def test_with_the_log_off_a_thread_is_not_read_from_it(ip, sim):
    ip.run_cell_magic("aihubmix", "--thread t", "first question")
    restart()
    settings.log = False
    ip.run_cell_magic("aihubmix", "--thread t", "second question")
    assert [m["content"] for m in sim.requests[-1].body["messages"]] == ["second question"]


def test_a_failed_exchange_is_logged_with_its_error(ip, sim):
    ip.run_cell("%%aihubmix -m no-such-model\nwill fail")
    [row] = rows()
    assert row["status"] == "failed" and row["prompt"] == "will fail" and "no-such-model" in row["error"]
    assert list(logs()["status"]) == ["failed"]


@pytest.mark.parametrize(("kwargs", "message"), [({"n": 0}, "at least 1"), ({"n": True}, "at least 1"),
                                                 ({"since": "last tuesday"}, "not a date"),
                                                 ({"since": [2026]}, "not a date")])
def test_bad_logs_arguments_are_one_line_errors(kwargs, message):
    with pytest.raises(ValueError, match=message) as info:
        logs(**kwargs)
    assert "\n" not in str(info.value)


def test_logs_since_accepts_dates_and_durations(ip, sim):
    from datetime import date, datetime, timedelta

    ip.run_cell_magic("aihubmix", "", "just now")
    assert len(logs(since=timedelta(minutes=5))) == 1
    assert len(logs(since=date.today())) == 1
    assert len(logs(since=datetime.now() + timedelta(minutes=5))) == 0


def test_a_thread_from_the_log_can_be_exported(ip, sim, tmp_path, capsys):
    import nbformat

    ip.run_cell_magic("aihubmix", "--thread t", "first question")
    ip.run_cell_magic("aihubmix", "--thread t", "second question")
    restart()
    path = tmp_path / "t.ipynb"
    ip.run_line_magic("aihubmix", f"export {path} --thread t")
    assert "Exported 2 answers" in capsys.readouterr().out
    nb = nbformat.read(path, as_version=4)
    sources = [cell.source for cell in nb.cells if cell.cell_type == "code"][1:]
    assert sources[0].endswith("\nfirst question") and "--thread t" in sources[1].splitlines()[0]
    answers = [o for cell in nb.cells for o in cell.get("outputs", []) if "aihubmix" in o.get("metadata", {})]
    assert len(answers) == 2 and answers[0]["metadata"]["aihubmix"]["model"] == "gpt-4o-mini"
