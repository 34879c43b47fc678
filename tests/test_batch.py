"""batch(): real requests to the simulator over a real socket, through the real async client."""

from __future__ import annotations

import _thread
import asyncio
import threading

import pandas as pd
import pytest

from aihubmix_magic import (
    BatchInputError,
    BatchResults,
    InternalServerError,
    MissingKeyError,
    RateLimitError,
    batch,
    settings,
)
from aihubmix_magic.services import cost as _cost


def _prompt_of(response) -> str:
    return response.request["messages"][-1]["content"]


def test_list_gives_responses_in_input_order(sim):
    prompts = [f"question number {n}" for n in range(12)]
    results = batch(prompts, model="sim-echo", concurrency=4, progress=False)
    assert isinstance(results, BatchResults) and isinstance(results, list)
    assert [_prompt_of(r) for r in results] == prompts
    assert all(r.status == "completed" for r in results)
    assert all(f'You asked: "{p}"' in r.text for p, r in zip(prompts, results, strict=True))
    assert sim.request_count == 12
    summary = results.summary
    assert (summary.total, summary.ok, summary.failed, summary.cancelled) == (12, 12, 0, 0)
    assert not results.partial
    assert summary.output_tokens == sum(r.usage.output_tokens for r in results) > 0
    assert summary.input_tokens == sum(r.usage.input_tokens for r in results) > 0
    assert "12 ok" in str(summary) and "0 failed" in str(summary)


def test_one_pooled_client_at_most_concurrency_connections(sim):
    batch([f"p{n}" for n in range(10)], model="sim-latency-50", concurrency=2, progress=False)
    assert sim.request_count == 10
    assert sim.connections_opened == 2  # two workers, each reusing its keep-alive connection
    sim.reset()
    batch([f"p{n}" for n in range(6)], model="sim-latency-300", concurrency=6, progress=False)
    assert sim.connections_opened == 6  # all six in flight at once


def test_request_parameters_and_settings_defaults(sim):
    settings.system = "Be brief."
    settings.temperature = 0.5
    batch(["a", "b"], model="sim-echo", max_tokens=50, extra_body={"seed": 7}, progress=False)
    bodies = [request.body for request in sim.requests]
    assert all(body["messages"][0] == {"role": "system", "content": "Be brief."} for body in bodies)
    assert all(body["temperature"] == 0.5 and body["max_tokens"] == 50 and body["seed"] == 7 for body in bodies)
    assert all("stream" not in body for body in bodies)
    assert all({k.lower(): v for k, v in request.headers.items()}["authorization"] == f"Bearer {settings.api_key}"
               for request in sim.requests)


def test_responses_endpoint(sim):
    results = batch(["one", "two"], model="sim-echo", endpoint="responses", max_tokens=500, progress=False)
    assert [r.endpoint for r in results] == ["responses", "responses"]
    assert [r.request["input"] for r in results] == ["one", "two"]
    assert sim.requests[0].path.endswith("/responses")
    assert sim.requests[0].body["max_output_tokens"] == 500
    assert all(r.status == "completed" and r.text for r in results)


def test_a_failed_item_records_its_error_and_the_rest_go_on(sim):
    settings.max_retries = 0
    results = batch(["a", "b", "c", "d"], model="sim-flaky-500-2", concurrency=1, progress=False)
    assert [r.status for r in results] == ["failed", "failed", "completed", "completed"]
    assert isinstance(results[0].error, InternalServerError)
    assert results[0].error.response is results[0]
    assert results[2].error is None and results[2].text
    assert (results.summary.ok, results.summary.failed) == (2, 2)
    assert not results.partial


def test_retries_follow_the_clients_policy(sim):
    settings.max_retries = 2
    results = batch(["a", "b", "c"], model="sim-flaky-500-2", concurrency=1, progress=False)
    assert [r.status for r in results] == ["completed"] * 3
    assert results.summary.retries == 2 and results.summary.rate_limited == 0
    assert sim.request_count == 5
    retried = [r for r in sim.requests if "x-stainless-retry-count" in r.headers]
    assert [r.headers["x-stainless-retry-count"] for r in retried] == ["1", "2"]


def test_a_429_is_retried_past_max_retries_and_counted(sim):
    """Issue 11: in a batch a 429 slows everything down and is retried until the item succeeds; the
    normal retry policy (max_retries) is for other failures."""
    settings.max_retries = 0
    results = batch(["a", "b", "c", "d"], model="sim-flaky-429-3", concurrency=1, progress=False)
    assert [r.status for r in results] == ["completed"] * 4
    assert sim.request_count == 7
    assert (results.summary.rate_limited, results.summary.retries) == (3, 3)
    assert "3 rate-limited (429)" in str(results.summary)
    retried = [r.headers["x-stainless-retry-count"] for r in sim.requests if "x-stainless-retry-count" in r.headers]
    assert retried == ["1", "2", "3"]


def test_a_batch_that_stays_rate_limited_gives_up_after_the_patience(sim):
    settings.rate_limit_patience = 0.3
    results = batch(["a", "b", "c"], model="sim-429", concurrency=2, progress=False)
    assert [r.status for r in results] == ["failed"] * 3
    assert all(isinstance(r.error, RateLimitError) for r in results)
    assert results.summary.rate_limited >= 2 and results.summary.failed == 3
    sent = sim.request_count
    assert sent == results.summary.rate_limited  # every request sent was answered 429, none is lost
    assert any("Not sent" in str(r.error) for r in results) or sent >= 3


def test_patience_zero_gives_up_at_the_first_429(sim):
    settings.rate_limit_patience = 0
    results = batch(["a", "b"], model="sim-429", concurrency=1, progress=False)
    assert [r.status for r in results] == ["failed", "failed"]
    assert sim.request_count == 1  # the second item is not sent: the batch has stalled
    assert "429" in str(results[0].error) and "Not sent" in str(results[1].error)


def test_no_retry_on_a_client_error(sim):
    results = batch(["a", "b"], model="sim-401", progress=False)
    assert [r.status for r in results] == ["failed", "failed"]
    assert sim.request_count == 2
    assert all(settings.api_key not in str(r.error) for r in results)


def test_pandas_series_keeps_its_index(sim):
    reviews = pd.Series(["great", "awful", "fine"], index=["r1", "r2", "r3"])
    answers = batch(reviews, model="sim-echo", template="Review: {}", progress=False)
    assert isinstance(answers, pd.Series)
    assert list(answers.index) == ["r1", "r2", "r3"]
    assert 'You asked: "Review: awful"' in answers["r2"]
    responses = answers.attrs["responses"]
    assert isinstance(responses, BatchResults) and len(responses) == 3
    assert answers.attrs["summary"].ok == 3
    assert answers.str.len().gt(0).all()  # attrs survive pandas operations (no deep copy of Responses)


def test_dataframe_with_template_and_failed_items_missing(sim):
    settings.max_retries = 0
    frame = pd.DataFrame({"product": ["lamp", "desk", "chair"], "stars": [5, 1, 3]}, index=[10, 20, 30])
    answers = batch(frame, model="sim-flaky-500-1", template="Rate {product}: {stars} stars", concurrency=1,
                    progress=False)
    assert list(answers.index) == [10, 20, 30]
    assert answers.isna().tolist() == [True, False, False]
    assert 'Rate desk: 1 stars' in answers[20]
    responses = answers.attrs["responses"]
    assert responses[0].status == "failed" and responses[0].error is not None
    assert answers.attrs["summary"].failed == 1


@pytest.mark.parametrize(
    ("prompts", "template", "message"),
    [
        ("one prompt", None, "not one string"),
        ([], "  ", "template is empty"),
        (["fine", 3], None, "Item 1 is a int"),
        (["fine", "   "], None, "Item 1 is an empty prompt"),
        (["x"], "{} and {}", "more than one {}"),
        (["x"], "{name}", "{name}"),
        ({"a": 1}, None, "not dict"),
    ],
)
def test_bad_input_sends_nothing(sim, prompts, template, message):
    with pytest.raises(BatchInputError, match=message):
        batch(prompts, model="sim-echo", template=template, progress=False)
    assert sim.request_count == 0


def test_bad_dataframe_input_sends_nothing(sim):
    frame = pd.DataFrame({"review": ["ok"]})
    with pytest.raises(BatchInputError, match="needs a template"):
        batch(frame, model="sim-echo", progress=False)
    with pytest.raises(BatchInputError, match=r"\{text\}.*columns: review"):
        batch(frame, model="sim-echo", template="Classify: {text}", progress=False)
    with pytest.raises(BatchInputError, match="write \\{column\\}"):
        batch(frame, model="sim-echo", template="Classify: {}", progress=False)
    with pytest.raises(BatchInputError, match="temperature"):
        batch(["a"], model="sim-echo", temperature=3, progress=False)
    with pytest.raises(BatchInputError, match="concurrency"):
        batch(["a"], model="sim-echo", concurrency=0, progress=False)
    with pytest.raises(BatchInputError, match="endpoint"):
        batch(["a"], model="sim-echo", endpoint="completions", progress=False)
    assert sim.request_count == 0


def test_missing_key_sends_nothing(sim):
    settings.set_key(None)
    with pytest.raises(MissingKeyError):
        batch(["a"], model="sim-echo", progress=False)
    assert sim.request_count == 0


def test_empty_input(sim):
    assert batch([], model="sim-echo", progress=False) == []
    empty = batch(pd.Series([], dtype=object), model="sim-echo", progress=False)
    assert isinstance(empty, pd.Series) and empty.empty
    assert sim.request_count == 0


def test_works_inside_a_running_event_loop(sim):
    """As in a kernel: the caller's loop is running; batch must neither reuse nor block on it."""

    async def notebook_cell():
        assert asyncio.get_running_loop().is_running()
        return batch(["a", "b", "c"], model="sim-echo", concurrency=3, progress=False)

    results = asyncio.run(notebook_cell())
    assert [r.status for r in results] == ["completed"] * 3


def test_interrupt_keeps_finished_results_marked_partial(sim):
    """Ctrl-C in the kernel thread: the answered items stay, the rest are cancelled."""
    fired = threading.Event()

    def interrupt_when_second_request_arrives():
        while not fired.is_set():
            if sim.request_count >= 2:  # concurrency 1: the first item is answered
                fired.set()
                _thread.interrupt_main()
                return
            fired.wait(0.005)

    watcher = threading.Thread(target=interrupt_when_second_request_arrives)
    watcher.start()
    try:
        results = batch([f"p{n}" for n in range(6)], model="sim-latency-400", concurrency=1, progress=False)
    finally:
        fired.set()
        watcher.join()
    assert results[0].status == "completed" and results[0].text
    assert results[-1].status == "cancelled"
    assert results.partial and results.summary.partial
    assert results.summary.cancelled >= 4
    assert results.summary.ok + results.summary.cancelled == 6
    assert "partial" in str(results.summary)
    assert sim.request_count < 6


def test_text_progress_in_a_terminal(sim, capsys):
    batch(["a", "b", "c"], model="sim-echo", progress="terminal")
    out = capsys.readouterr().out
    assert "\r[" in out and "3/3" in out and "tokens" in out
    assert out.rstrip().splitlines()[-1].startswith("Batch: 3 ok · 0 failed")


def test_widget_progress_in_a_notebook(sim, ip):
    results = batch(["a", "b"], model="sim-echo")  # settings.display is "notebook" in the ip fixture
    outputs = ip.display_pub.outputs()
    assert any("application/vnd.jupyter.widget-view+json" in data for data in outputs)
    assert outputs[-1]["text/plain"] == str(results.summary)


# -- %%aihubmix --over ------------------------------------------------------------------------------------
def _markdown_outputs(ip) -> list[str]:
    return [data["text/markdown"] for data in ip.display_pub.outputs() if "text/markdown" in data]


def test_over_a_list_with_out(sim, ip):
    ip.user_ns["words"] = ["apple", "pear", "plum"]
    ip.run_cell_magic("aihubmix", "--over words -m sim-echo -o answers --concurrency 2", "Define: {}\n")
    answers = ip.user_ns["answers"]
    assert isinstance(answers, BatchResults) and len(answers) == 3
    assert [_prompt_of(r) for r in answers] == ["Define: apple", "Define: pear", "Define: plum"]
    table = _markdown_outputs(ip)[-1]
    assert table.startswith("| | item | answer | status |")  # what varies, beside the answer
    assert "| 1 | pear | <span title=" in table and table.count("| completed |") == 3
    assert any(data.get("text/plain") == str(answers.summary) for data in ip.display_pub.outputs())
    assert sim.request_count == 3


def test_over_a_dataframe_column_keeps_the_index(sim, ip):
    ip.user_ns["df"] = pd.DataFrame({"review": ["great", "awful"]}, index=["a", "b"])
    ip.run_cell_magic("aihubmix", "--over df.review -m sim-echo -o labels", "Positive or negative? {}")
    labels = ip.user_ns["labels"]
    assert isinstance(labels, pd.Series) and list(labels.index) == ["a", "b"]
    # each item got its own prompt (on the wire), and the simulator's label follows the item
    sent = sorted(r.body["messages"][-1]["content"] for r in sim.requests)
    assert sent == ["Positive or negative? awful", "Positive or negative? great"]
    assert labels["a"].startswith("Positive") and labels["b"].startswith("Negative")
    table = _markdown_outputs(ip)[-1]  # the review beside its label, not the instruction all rows share
    assert table.startswith("| | review | answer | status |") and "| a | great | Positive" in table


def test_results_table_shows_the_item_whole_or_cut_with_the_whole_on_hover(sim, ip):
    review = "crisp, sweet | perfectly ripe, $2 a pound and $5 a box " + "and more words " * 20
    ip.user_ns["df"] = pd.DataFrame({"review": [review, "fine"], "stars": [5, 3], "id": ["x", "y"]})
    ip.run_cell_magic("aihubmix", "--over df -m sim-echo -o out",
                      "Is this review positive, neutral or negative? Answer with one word. {review} ({stars} stars)")
    table = _markdown_outputs(ip)[-1]
    lines = table.splitlines()
    assert lines[0] == "| | review | stars | answer | status |"  # the columns the template names, not `id`
    whole = " ".join(review.split())
    title = whole.replace("|", "&#124;").replace("$", "&#36;")
    cell = lines[2].split(" | ")[1]
    assert cell.startswith(f'<span title="{title}">crisp, sweet &#124; perfectly ripe, {_cost.MARKDOWN_DOLLAR}2')
    assert cell.endswith("…</span>") and len(cell) < len(title) + 400
    assert lines[3].startswith("| 1 | fine | 3 | ") and "$" not in table


def test_results_table_without_the_items_shows_the_prompt(sim):
    from aihubmix_magic.notebook.batch import results_table

    results = batch(["a", "b"], model="sim-echo", template="Say {}", progress=False)
    assert results_table(results)["text/markdown"].splitlines()[2].startswith("| 0 | Say a | ")
    assert results_table(results, items=["a", "b"])["text/markdown"].splitlines()[2].startswith("| 0 | a | ")


def test_over_a_dataframe_with_row_fields(sim, ip):
    ip.user_ns["df"] = pd.DataFrame({"product": ["lamp", "desk"], "stars": [5, 2]})
    ip.run_cell_magic("aihubmix", "--over df -m sim-echo -o out -e responses", "{product} got {stars} stars")
    assert [r.request["input"] for r in ip.user_ns["out"].attrs["responses"]] == ["lamp got 5 stars", "desk got 2 stars"]


@pytest.mark.parametrize(
    ("line", "cell", "message"),
    [
        ("--over nothing_here -m sim-echo", "Say {}", "nothing_here"),
        ("--over words -m sim-echo", "No placeholder", r"put \{\} where each item goes"),
        ("--over df -m sim-echo", "No placeholder", r"put \{column\}"),
        ("--over df -m sim-echo", "Rate {price}", r"\{price\}"),
        ("--over words -m sim-echo -c", "Say {}", "cannot be combined with -c"),
        ("--over words -m sim-echo --concurrency 0", "Say {}", "concurrency"),
        ("--over words -m sim-echo -t 5", "Say {}", "temperature"),
    ],
)
def test_over_bad_input_is_a_usage_error(sim, ip, line, cell, message):
    from IPython.core.error import UsageError

    ip.user_ns["words"] = ["a"]
    ip.user_ns["df"] = pd.DataFrame({"product": ["lamp"]})
    with pytest.raises(UsageError, match=message):
        ip.run_cell_magic("aihubmix", line, cell)
    assert sim.request_count == 0


def test_results_table_rows_and_limit(sim):
    from aihubmix_magic.notebook.batch import results_table

    settings.max_retries = 0
    results = batch(["a|b", "c", "d"], model="sim-flaky-500-1", concurrency=1, progress=False)
    data = results_table(results, out="answers", limit=2)
    lines = data["text/markdown"].splitlines()
    assert lines[2].startswith("| 0 | a&#124;b | InternalServerError: ") and lines[2].endswith("| failed |")
    assert lines[3].startswith("| 1 | c |") and lines[3].endswith("| completed |")
    assert "… 1 more (all in `answers`)" in data["text/markdown"]
    assert settings.api_key not in data["text/markdown"] + data["text/plain"]


def test_answers_keep_their_final_json_as_bytes_until_read(sim):
    results = batch(["a", "b"], model="sim-echo", progress=False)
    first = results[0]
    assert isinstance(vars(first)["_raw"], bytes)  # 100,000 answers held at once: a third of the memory
    text = first.raw_json()
    assert isinstance(vars(first)["_raw"], bytes) and '"choices"' in text
    raw = first.raw
    assert isinstance(raw, dict) and raw["choices"][0]["message"]["content"] == first.text
    assert first.raw is raw  # decoded once, then kept
    first.raw = {"replaced": True}
    assert first.raw == {"replaced": True} and first.raw_json() == '{"replaced": true}'


def test_environment_proxies_are_honoured_as_httpx_reads_them(monkeypatch):
    from aihubmix_magic.net.proxy import proxy_for

    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy",
                 "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert proxy_for("https://aihubmix.com/v1") is None
    monkeypatch.setenv("HTTPS_PROXY", "proxy.corp:3128")
    assert proxy_for("https://aihubmix.com/v1") == "http://proxy.corp:3128"
    assert proxy_for("http://127.0.0.1:8000/v1") is None  # no http proxy named
    monkeypatch.setenv("NO_PROXY", "aihubmix.com")
    assert proxy_for("https://aihubmix.com/v1") is None
