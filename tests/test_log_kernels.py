"""Issue 22 in real kernels: three kernels in turn (a restart between each) share one data directory.
The first asks, the second continues its threads from the log, searches it and reads it with `logs()`,
then resets a thread, which the third then starts afresh. The saved notebook records, in each answer
output's metadata, what made it (model, endpoint, id, created, usage, cost, finish reason)."""

from __future__ import annotations

import os
import re

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import TEST_KEY

ANSI = re.compile(r"\x1b\[[0-9;]*m")

FIRST = [
    "%load_ext aihubmix_magic",
    "%%aihubmix --thread trip\nPlan a trip to Lisbon",
    "%%aihubmix --thread trip\nWhat about food?",
    "%%aihubmix -m gpt-4o\nA standalone question",
    "%%aihubmix -c\nA follow-up",
    "%%aihubmix --compare gpt-4o-mini,gpt-4o\nName a colour.",
]
SECOND = [
    "%load_ext aihubmix_magic",
    "%%aihubmix --thread trip\nAnd museums?",
    "%%aihubmix -c\nAnother follow-up",
    "%aihubmix history trip",
    "%aihubmix log Lisbon",
    "from aihubmix_magic import logs\nframe = logs()\nprint('ROWS', len(frame), list(frame.columns))\n"
    "print('THREADS', sorted(set(frame['thread'].dropna())))",
    "%aihubmix reset trip",
]
THIRD = [
    "%load_ext aihubmix_magic",
    "%%aihubmix --thread trip\nStarting over",
]


def run(cells: list[str], env: dict[str, str], workdir) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(workdir)}}).execute(env=env)
    return nb


def text_of(cell) -> str:
    parts = []
    for output in cell.get("outputs", []):
        parts.append(output.get("text", ""))
        parts += [str(v) for v in output.get("data", {}).values()]
    return ANSI.sub("", "\n".join(parts))


def roles(messages):
    return [(m["role"], m["content"]) for m in messages]


@pytest.fixture(scope="module")
def kernels(tmp_path_factory, sim):
    home = tmp_path_factory.mktemp("log-home")
    data = home / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIHUBMIX_")}
    env.update({"AIHUBMIX_API_KEY": TEST_KEY, "AIHUBMIX_BASE_URL": sim.base_url, "AIHUBMIX_DATA_DIR": str(data),
                "AIHUBMIX_CACHE_PATH": str(home / "cache" / "responses.sqlite"),
                "AIHUBMIX_CONFIG_DIR": str(home / "config")})
    sim.reset()
    first = run(FIRST, env, home)
    saved = home / "first.ipynb"
    nbformat.write(first, saved)
    first_requests = list(sim.requests)
    sim.reset()
    second = run(SECOND, env, home)
    second_requests = list(sim.requests)
    sim.reset()
    third = run(THIRD, env, home)
    third_requests = list(sim.requests)
    return {"first": first, "saved": saved, "second": second, "third": third, "data": data,
            "requests": (first_requests, second_requests, third_requests)}


def chat_requests(requests):
    return [r for r in requests if r.path.endswith("/chat/completions")]


@pytest.mark.kernel
def test_a_new_kernel_continues_a_named_thread_from_the_log(kernels):
    first = kernels["first"]
    answers = [text_of(first.cells[n]) for n in (1, 2)]
    assert all('You asked: "' in answer for answer in answers)
    sent = chat_requests(kernels["requests"][1])[0].body["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user", "assistant", "user"]
    assert [m["content"] for m in sent if m["role"] == "user"] == ["Plan a trip to Lisbon", "What about food?",
                                                                    "And museums?"]
    assert 'You asked: "Plan a trip to Lisbon"' in sent[1]["content"]


@pytest.mark.kernel
def test_a_new_kernel_continues_the_default_thread_from_the_log(kernels):
    sent = chat_requests(kernels["requests"][1])[1].body["messages"]
    assert [m["content"] for m in sent if m["role"] == "user"] == ["A standalone question", "A follow-up",
                                                                    "Another follow-up"]


@pytest.mark.kernel
def test_history_search_and_logs_in_the_new_kernel(kernels):
    second = kernels["second"]
    history = text_of(second.cells[3])
    assert "Plan a trip to Lisbon" in history and "And museums?" in history and "3 exchanges" in history
    found = text_of(second.cells[4])
    assert "Plan a trip to Lisbon" in found and "standalone" not in found
    printed = re.sub(r"\s+", " ", text_of(second.cells[5]))
    assert "ROWS 8 ['time', 'model', 'endpoint', 'prompt', 'answer', 'status', 'error', 'input_tokens', " \
           "'output_tokens', 'cost', 'thread', 'id']" in printed
    assert "THREADS ['default', 'trip']" in printed
    assert "forgotten" in text_of(second.cells[6])


@pytest.mark.kernel
def test_reset_ends_the_thread_for_later_kernels(kernels):
    sent = chat_requests(kernels["requests"][2])[0].body["messages"]
    assert roles(sent) == [("user", "Starting over")]


@pytest.mark.kernel
def test_the_saved_notebook_records_what_made_each_answer(kernels):
    nb = nbformat.read(kernels["saved"], as_version=4)
    requests = chat_requests(kernels["requests"][0])
    for number, model in ((1, "gpt-4o-mini"), (3, "gpt-4o")):
        answers = [o for o in nb.cells[number].outputs if "aihubmix" in o.get("metadata", {})]
        assert len(answers) == 1, nb.cells[number].outputs
        meta = answers[0]["metadata"]["aihubmix"]
        assert set(meta) == {"model", "endpoint", "id", "created", "usage", "cost", "finish_reason"}
        assert meta["model"] == model and meta["endpoint"] == "chat" and meta["finish_reason"] == "stop"
        assert meta["id"].startswith("chatcmpl-") and isinstance(meta["created"], int)
        assert meta["usage"]["input_tokens"] > 0 and meta["usage"]["output_tokens"] > 0
        assert meta["cost"] is None or meta["cost"] > 0
        assert 'You asked: "' in answers[0]["data"]["text/markdown"]  # the answer itself, not the footer
    assert len(requests) == 6
    grid = [o for o in nb.cells[5].outputs if "aihubmix" in o.get("metadata", {})]
    assert len(grid) == 1, nb.cells[5].outputs
    columns = grid[0]["metadata"]["aihubmix"]["compare"]
    assert [c["model"] for c in columns] == ["gpt-4o-mini", "gpt-4o"]
    assert all(c["id"].startswith("chatcmpl-") and c["usage"]["output_tokens"] > 0 for c in columns)
    assert TEST_KEY not in kernels["saved"].read_text()


@pytest.mark.kernel
def test_the_key_is_not_in_the_log(kernels):
    files = list(kernels["data"].iterdir())
    assert any(f.name == "log.sqlite" for f in files)
    for file in files:
        assert TEST_KEY.encode() not in file.read_bytes()
