"""Resume: the batch journal, over real sockets to the simulator and a real SQLite file under tmp_path;
a real subprocess killed with SIGKILL part-way; and the cache directory private to the user."""

from __future__ import annotations

import _thread
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
import time
from contextlib import closing
from pathlib import Path

import pytest

from aihubmix_magic import batch, settings
from aihubmix_magic.store.cache import ResponseCache
from aihubmix_magic.store.journal import journal_for, journal_path

from .conftest import TEST_KEY


def journal_entries() -> int:
    path = journal_path(os.environ["AIHUBMIX_CACHE_PATH"])
    if not path.exists():
        return 0
    with closing(sqlite3.connect(path, timeout=10)) as db:
        try:
            return db.execute("SELECT COUNT(*) FROM answers").fetchone()[0]
        except sqlite3.OperationalError:  # the table is not there yet
            return 0


def test_a_batch_killed_with_sigkill_resumes_where_it_stopped(sim, tmp_path):
    prompts = [f"row {n}: label it" for n in range(60)]
    script = tmp_path / "label.py"
    script.write_text(textwrap.dedent(f"""
        from aihubmix_magic import batch, settings
        settings.base_url = {sim.base_url!r}
        settings.set_key({TEST_KEY!r})
        batch({prompts!r}, model="sim-latency-100", concurrency=2, progress=False)
        print("finished")
    """))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    child = subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while journal_entries() < 10:  # about a sixth of the batch is answered and journaled
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline, "the batch journaled nothing"
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)  # a kernel crash: no finally, no atexit
    finally:
        out, _ = child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL and b"finished" not in out
    journaled = journal_entries()
    assert 10 <= journaled < 60

    sim.reset()
    results = batch(prompts, model="sim-latency-100", concurrency=2, progress=False)
    assert [r.status for r in results] == ["completed"] * 60
    assert [r.request["messages"][-1]["content"] for r in results] == prompts  # complete, in input order
    assert results.summary.resumed == journaled
    assert sim.request_count == 60 - journaled  # only the items that had not finished
    assert "resumed" in str(results.summary)
    assert journal_entries() == 0  # complete: the journal forgets the batch
    sim.reset()
    batch(prompts[:3], model="sim-echo", progress=False)
    assert sim.request_count == 3


def test_an_interrupted_batch_sends_only_the_rest_when_run_again(sim):
    prompts = [f"p{n}" for n in range(6)]
    fired = threading.Event()

    def interrupt_after_two_answers():
        while not fired.is_set():
            if sim.request_count >= 3:  # concurrency 1: two answered, the third in flight
                fired.set()
                _thread.interrupt_main()
                return
            fired.wait(0.005)

    watcher = threading.Thread(target=interrupt_after_two_answers)
    watcher.start()
    try:
        first = batch(prompts, model="sim-latency-300", concurrency=1, progress=False)
    finally:
        fired.set()
        watcher.join()
    answered = first.summary.ok
    assert first.partial and answered >= 2
    sim.reset()
    second = batch(prompts, model="sim-latency-300", concurrency=1, progress=False)
    assert second.summary.ok == 6 and second.summary.resumed == answered and not second.partial
    assert sim.request_count == 6 - answered
    assert [r.text for r in second[:answered]] == [r.text for r in first[:answered]]


def test_failed_items_are_sent_again_and_a_complete_batch_is_forgotten(sim):
    settings.max_retries = 0
    prompts = ["a", "b", "c", "d"]
    first = batch(prompts, model="sim-flaky-500-2", concurrency=1, progress=False)
    assert [r.status for r in first] == ["failed", "failed", "completed", "completed"]
    assert journal_entries() == 2
    sim.reset()
    second = batch(prompts, model="sim-flaky-500-2", concurrency=1, progress=False)
    assert [r.status for r in second] == ["failed", "failed", "completed", "completed"]  # the flaky counter restarted
    assert second.summary.resumed == 2 and sim.request_count == 2
    third = batch(prompts, model="sim-flaky-500-2", concurrency=1, progress=False)
    assert third.summary.ok == 4 and third.summary.resumed == 2 and sim.request_count == 4
    assert journal_entries() == 0
    sim.reset()
    fourth = batch(prompts, model="sim-flaky-500-2", concurrency=1, progress=False)
    assert fourth.summary.resumed == 0 and sim.request_count == 4  # forgotten: asked again


def test_resume_false_keeps_no_journal(sim):
    settings.max_retries = 0
    batch(["a", "b"], model="sim-flaky-500-1", concurrency=1, progress=False, resume=False)
    assert journal_entries() == 0
    sim.reset()
    again = batch(["a", "b"], model="sim-echo", concurrency=1, progress=False, resume=False)
    assert again.summary.resumed == 0 and sim.request_count == 2


def test_resumed_answers_are_whole_and_not_counted_as_spent(sim):
    settings.max_retries = 0
    first = batch(["x", "y"], model="sim-flaky-500-1", concurrency=1, progress=False)
    second = batch(["x", "y"], model="sim-flaky-500-1", concurrency=1, progress=False)  # x answers now
    resumed = second[1]
    assert resumed.status == "completed" and resumed.text == first[1].text and resumed.usage == first[1].usage
    assert not resumed.cached and resumed.spec is not None and resumed.request == first[1].request
    assert second.summary.output_tokens == second[0].usage.output_tokens  # only what this run spent


def test_single_cells_never_use_the_journal(sim, ip):
    ip.run_cell_magic("aihubmix", "-m sim-echo --no-stream", "Hello")
    ip.run_cell_magic("aihubmix", "-m sim-echo", "Hello")
    assert journal_entries() == 0 and sim.request_count == 2


def test_the_key_is_never_in_the_journal(sim):
    settings.max_retries = 0
    batch(["keep", "the key out"], model="sim-flaky-500-1", concurrency=1, progress=False)
    path = journal_path(os.environ["AIHUBMIX_CACHE_PATH"])
    assert journal_entries() == 1 and TEST_KEY.encode() not in path.read_bytes()


def test_over_resumes_and_no_resume(sim, ip, capsys):
    settings.max_retries = 0
    ip.user_ns["words"] = ["one", "two", "three"]
    ip.run_cell_magic("aihubmix", "--over words -m sim-flaky-500-1 -o out --concurrency 1", "Say {}")
    assert ip.user_ns["out"].summary.failed == 1
    sim.reset()
    ip.run_cell_magic("aihubmix", "--over words -m sim-flaky-500-1 -o out --concurrency 1", "Say {}")
    assert ip.user_ns["out"].summary.resumed == 2 and sim.request_count == 1
    assert ip.user_ns["out"].summary.failed == 1  # the flaky counter was reset with the simulator
    ip.run_line_magic("aihubmix", "cache info")
    assert "Batch journal: 2 answers of 1 unfinished batch" in capsys.readouterr().out
    ip.run_line_magic("aihubmix", "cache clear")
    assert "2 answers of unfinished batches deleted" in capsys.readouterr().out
    assert journal_entries() == 0
    sim.reset()
    ip.run_cell_magic("aihubmix", "--over words -m sim-echo -o out --no-resume --rpm 6000 --tpm 1000000", "Say {}")
    assert ip.user_ns["out"].summary.ok == 3 and journal_entries() == 0


@pytest.mark.parametrize(("line", "message"), [
    ("-m sim-echo --rpm 10", "--rpm goes with --over"),
    ("-m sim-echo --no-resume", "--no-resume goes with --over"),
    ("--over words -m sim-echo --tpm 0", "--tpm must be a positive number"),
    ("--over words -m sim-echo --rpm -5", "--rpm must be a positive number"),
])
def test_batch_options_are_checked_before_anything_is_sent(sim, ip, line, message):
    from IPython.core.error import UsageError

    ip.user_ns["words"] = ["a"]
    with pytest.raises(UsageError, match=message):
        ip.run_cell_magic("aihubmix", line, "Say {}")
    assert sim.request_count == 0


# -- private files ----------------------------------------------------------------------------------------
def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def loose_umask():
    saved = os.umask(0o022)
    yield
    os.umask(saved)


def test_cache_and_journal_are_private_whatever_the_umask(sim, tmp_path, monkeypatch, loose_umask):
    monkeypatch.delenv("AIHUBMIX_CACHE_PATH")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    settings.cache = True
    settings.max_retries = 0
    batch(["a", "b"], model="sim-flaky-500-1", concurrency=1, progress=False)  # leaves a journal entry
    directory = tmp_path / "xdg" / "aihubmix-magic"
    files = sorted(path.name for path in directory.iterdir())
    assert files == ["journal.sqlite", "responses.sqlite"]
    assert _mode(directory) == 0o700
    assert all(_mode(directory / name) == 0o600 for name in files)


def test_an_existing_open_cache_is_tightened_on_first_use(sim, tmp_path, monkeypatch, loose_umask):
    monkeypatch.delenv("AIHUBMIX_CACHE_PATH")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    directory = tmp_path / "xdg" / "aihubmix-magic"
    directory.mkdir(parents=True)
    os.chmod(directory, 0o755)
    old = directory / "responses.sqlite"
    ResponseCache(old).info()  # nothing there yet: info creates nothing
    with closing(sqlite3.connect(old)) as db:  # a cache written by an older version, world-readable
        db.execute("CREATE TABLE t (x)")
    os.chmod(old, 0o644)
    (directory / "journal.sqlite").touch(mode=0o644)
    assert _mode(old) == 0o644
    ResponseCache(old).info()
    journal_for(None).info()
    assert _mode(directory) == 0o700 and _mode(old) == 0o600 and _mode(directory / "journal.sqlite") == 0o600


def test_a_directory_the_user_chose_is_left_alone_but_the_files_are_private(sim, tmp_path, loose_umask):
    chosen = tmp_path / "project"
    chosen.mkdir(mode=0o755)
    os.chmod(chosen, 0o755)
    cache = ResponseCache(chosen / "answers.sqlite")
    cache.clear()
    assert _mode(chosen) == 0o755 and _mode(chosen / "answers.sqlite") == 0o600
    fresh = ResponseCache(tmp_path / "new-dir" / "answers.sqlite")
    fresh.clear()
    assert _mode(tmp_path / "new-dir") == 0o700


def test_a_journal_that_cannot_be_written_does_not_stop_the_batch(sim, tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the cache directory should be")
    monkeypatch.setenv("AIHUBMIX_CACHE_PATH", str(blocker / "responses.sqlite"))
    with pytest.warns(RuntimeWarning, match="cannot be resumed"):
        results = batch(["a", "b"], model="sim-echo", progress=False)
    assert results.summary.ok == 2 and sim.request_count == 2
