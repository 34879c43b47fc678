"""A long batch does not hold the notebook: no silent body fields, prompts from any iterable or file, answers
written to a file as they finish, and batches in the background (`wait=False`): real requests to the
simulator over a real socket, real files under tmp_path."""

from __future__ import annotations

import csv
import importlib.util
import json
import time

import pandas as pd
import pytest

from aihubmix_magic import BatchInputError, BatchJob, BatchResults, BatchSummary, Client, batch

from .conftest import TEST_KEY

HAS_PYARROW = importlib.util.find_spec("pyarrow") is not None
needs_pyarrow = pytest.mark.skipif(not HAS_PYARROW, reason="Parquet needs pyarrow")


def _prompt_of(response) -> str:
    return response.request["messages"][-1]["content"]


def _read_out(path) -> list[dict]:
    if str(path).endswith(".jsonl"):
        return [json.loads(line) for line in path.read_text().splitlines()]
    if str(path).endswith(".csv"):
        with path.open(newline="") as stream:
            return list(csv.DictReader(stream))
    return pd.read_parquet(path).to_dict("records")


# -- no silent body fields -----------------------------------------------------------------------------------
@pytest.mark.parametrize("call", [
    lambda: batch(["a"], model="sim-echo", progress=False, seed=7),
    lambda: Client(TEST_KEY, "http://127.0.0.1:9/v1").chat("hi", model="sim-echo", seed=7),
    lambda: Client(TEST_KEY, "http://127.0.0.1:9/v1").respond("hi", model="sim-echo", seed=7),
])
def test_an_unknown_keyword_is_one_error_and_nothing_is_sent(sim, call):
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'seed'.*extra_body=\{'seed': \.\.\.\}"):
        call()
    assert sim.request_count == 0


def test_extra_body_fields_are_sent_as_given(sim):
    batch(["a", "b"], model="sim-echo", extra_body={"seed": 7, "response_format": {"type": "json_object"}},
          progress=False)
    with Client(TEST_KEY, sim.base_url) as client:
        client.chat("c", model="sim-echo", extra_body={"seed": 8})
        client.respond("d", model="sim-echo", extra_body={"seed": 9}, previous_response_id=None)
    seeds = [request.body["seed"] for request in sim.requests]
    assert sorted(seeds) == [7, 7, 8, 9]
    assert all(r.body["response_format"] == {"type": "json_object"} for r in sim.requests[:2])
    with pytest.raises(TypeError, match="extra_body must be a dict"):
        batch(["a"], model="sim-echo", extra_body="seed=7", progress=False)


# -- prompts from anything -----------------------------------------------------------------------------------
def test_a_generator_is_read_lazily_and_answered_in_order(sim):
    read = []

    def prompts():
        for n in range(600):
            read.append(n)
            yield f"question {n}"

    results = batch(prompts(), model="sim-echo", concurrency=4, progress=False)
    assert isinstance(results, BatchResults)
    assert [_prompt_of(r) for r in results] == [f"question {n}" for n in range(600)]
    assert results.summary.total == results.summary.ok == 600 and not results.partial
    assert read == list(range(600))
    assert sim.request_count == 600


def test_a_generator_is_not_read_ahead_of_the_workers(sim):
    read = []

    def prompts():
        for n in range(5000):
            read.append(n)
            yield f"question {n}"

    job = batch(prompts(), model="sim-latency-100", concurrency=2, progress=False, wait=False)
    try:
        time.sleep(0.5)
        assert len(read) < 1000  # a chunk and the queue, not the 5,000 prompts
    finally:
        job.cancel()
        job.wait(timeout=30)


def test_a_generator_that_raises_halfway_keeps_what_finished_and_says_why(sim, tmp_path):
    def prompts():
        for n in range(30):
            yield f"question {n}"
        raise ValueError("row 30 is broken")

    results = batch(prompts(), model="sim-echo", concurrency=4, progress=False)
    assert len(results) == 30 and all(r.status == "completed" for r in results)
    assert results.partial and results.summary.input_error == "ValueError: row 30 is broken"
    assert "the prompts raised ValueError: row 30 is broken" in str(results.summary)
    out = tmp_path / "answers.jsonl"
    summary = batch(prompts(), model="sim-echo", concurrency=4, progress=False, out=out)
    assert summary.partial and summary.ok == 30 and "row 30 is broken" in summary.input_error
    assert sorted(row["position"] for row in _read_out(out)) == list(range(30))


def test_a_bad_first_prompt_is_an_error_before_anything_is_sent(sim):
    with pytest.raises(BatchInputError, match="Item 0 is a int"):
        batch(iter([1, 2]), model="sim-echo", progress=False)
    with pytest.raises(BatchInputError, match="column= goes with a DataFrame or a prompts file"):
        batch(["a"], model="sim-echo", column="x", progress=False)
    assert sim.request_count == 0


def _write_prompts(path, rows: list[dict]) -> None:
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    elif path.suffix == ".csv":
        pd.DataFrame(rows).to_csv(path, index=False)
    else:
        pd.DataFrame(rows).to_parquet(path)


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", pytest.param(".parquet", marks=needs_pyarrow)])
def test_prompts_from_a_file_with_column_or_template(sim, tmp_path, suffix):
    path = tmp_path / f"reviews{suffix}"
    _write_prompts(path, [{"id": n, "review": f"review {n}"} for n in range(7)])
    results = batch(path, column="review", model="sim-echo", concurrency=3, progress=False)
    assert [_prompt_of(r) for r in results] == [f"review {n}" for n in range(7)]
    results = batch(str(path), template="Label {review} ({id})", model="sim-echo", progress=False)
    assert [_prompt_of(r) for r in results] == [f"Label review {n} ({n})" for n in range(7)]
    with pytest.raises(BatchInputError, match="no (column|field) 'text'"):
        batch(path, column="text", model="sim-echo", progress=False)


def test_a_jsonl_of_bare_strings_and_a_dataframe_column(sim, tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text('"first"\n\n"second"\n')
    assert [_prompt_of(r) for r in batch(path, model="sim-echo", progress=False)] == ["first", "second"]
    df = pd.DataFrame({"review": ["good", "bad"]}, index=["a", "b"])
    answers = batch(df, column="review", model="sim-echo", progress=False)
    assert list(answers.index) == ["a", "b"] and answers.notna().all()


def test_parquet_without_pyarrow_is_a_one_line_hint(sim, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    (tmp_path / "p.parquet").write_bytes(b"PAR1")
    with pytest.raises(BatchInputError, match="need pyarrow: pip install pyarrow"):
        batch(tmp_path / "p.parquet", column="x", model="sim-echo", progress=False)
    with pytest.raises(BatchInputError, match="need pyarrow"):
        batch(["a"], model="sim-echo", out=tmp_path / "out.parquet", progress=False)
    assert sim.request_count == 0


# -- answers to a file ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".jsonl", ".csv", pytest.param(".parquet", marks=needs_pyarrow)])
def test_out_writes_every_answer_and_returns_the_summary(sim, tmp_path, suffix):
    from aihubmix_magic import settings

    settings.max_retries = 0
    out = tmp_path / f"answers{suffix}"
    prompts = [f"question {n}" for n in range(21)]
    summary = batch(iter(prompts), model="sim-flaky-500-1", concurrency=1, progress=False, out=out)
    assert isinstance(summary, BatchSummary)
    assert (summary.total, summary.ok, summary.failed) == (21, 20, 1) and summary.out == str(out)
    rows = sorted(_read_out(out), key=lambda row: int(row["position"]))
    assert [int(row["position"]) for row in rows] == list(range(21))
    assert rows[0]["status"] == "failed" and "InternalServerError" in rows[0]["error"]
    assert all(f'You asked: "question {n}"' in rows[n]["text"] for n in range(1, 21))
    assert all(len(row["id"]) == 16 for row in rows)
    assert all(int(row["output_tokens"]) > 0 for row in rows[1:])
    assert TEST_KEY not in out.read_bytes().decode("utf-8", "replace")


def test_a_rerun_into_the_same_file_appends_only_what_is_missing(sim, tmp_path):
    out = tmp_path / "answers.jsonl"
    prompts = [f"question {n}" for n in range(40)]
    job = batch(iter(prompts), model="sim-latency-100", concurrency=2, progress=False, out=out, wait=False)
    deadline = time.monotonic() + 30
    while job.summary.ok < 6:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    job.cancel()
    first = job.wait(timeout=30)
    assert first.partial and first.ok >= 6
    written = len(out.read_text().splitlines())
    assert written == first.ok
    sim.reset()
    second = batch(iter(prompts), model="sim-latency-100", concurrency=8, progress=False, out=out)
    assert second.ok == 40 and not second.partial and second.resumed == written
    assert sim.request_count == 40 - written
    rows = _read_out(out)
    assert sorted(row["position"] for row in rows) == list(range(40))  # each item once
    sim.reset()
    third = batch(iter(prompts), model="sim-latency-100", progress=False, out=out)
    assert third.ok == 40 and sim.request_count == 0 and len(_read_out(out)) == 40


def test_out_file_of_another_kind_is_refused(sim, tmp_path):
    with pytest.raises(BatchInputError, match=r"\.jsonl, \.csv or \.parquet"):
        batch(["a"], model="sim-echo", out=tmp_path / "answers.txt", progress=False)
    other = tmp_path / "answers.jsonl"
    other.write_text('{"name": "not a result"}\n')
    with pytest.raises(BatchInputError, match="not a batch's result file"):
        batch(["a"], model="sim-echo", out=other, progress=False)
    assert sim.request_count == 0


# -- in the background ---------------------------------------------------------------------------------------
def test_wait_false_returns_a_job_at_once(sim):
    prompts = [f"question {n}" for n in range(12)]
    started = time.perf_counter()
    job = batch(prompts, model="sim-latency-300", concurrency=2, progress=False, wait=False)
    assert time.perf_counter() - started < 0.3  # the first answer alone takes 0.3 s
    assert isinstance(job, BatchJob) and not job.done()
    assert "running" in repr(job)
    with pytest.raises(TimeoutError, match="still running"):
        job.wait(timeout=0.05)
    results = job.wait(timeout=60)
    assert job.done() and [_prompt_of(r) for r in results] == prompts
    assert job.results is results and job.summary is results.summary and job.summary.ok == 12


def test_cancel_keeps_what_finished(sim):
    job = batch([f"q{n}" for n in range(40)], model="sim-latency-100", concurrency=2, progress=False, wait=False)
    deadline = time.monotonic() + 30
    while len(job.results) < 4:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    so_far = job.results
    assert all(r.status == "completed" for r in so_far) and so_far.summary.partial
    job.cancel()
    results = job.wait(timeout=30)
    assert results.partial and 4 <= results.summary.ok < 40
    assert results.summary.cancelled == 40 - results.summary.ok
    assert [r.status for r in results].count("cancelled") == results.summary.cancelled


def test_a_series_job_gives_a_series(sim):
    df = pd.DataFrame({"review": ["good", "bad", "fine"]})
    job = batch(df, template="Label: {review}", model="sim-echo", progress=False, wait=False)
    answers = job.wait(timeout=30)
    assert isinstance(answers, pd.Series) and list(answers.index) == [0, 1, 2] and answers.notna().all()


def test_jobs_at_once_share_the_rate_limiter_of_their_model(sim):
    from aihubmix_magic.services import batch as _batch

    first = batch([f"a{n}" for n in range(20)], model="sim-latency-100", concurrency=2, progress=False,
                  wait=False)
    second = batch([f"b{n}" for n in range(20)], model="sim-latency-100", concurrency=3, progress=False,
                   wait=False)
    deadline = time.monotonic() + 10
    while not any(limiter.concurrency == 5 for limiter, _ in _batch._limiters.values()):
        assert time.monotonic() < deadline, "the two jobs never shared one limiter"
        time.sleep(0.01)
    first.wait(timeout=60)
    second.wait(timeout=60)
    assert _batch._limiters == {}
    assert sim.request_count == 40


def test_a_cancelled_job_resumes_from_the_journal_and_the_journal_forgets_it_once_complete(sim):
    from .test_resume import journal_entries

    prompts = [f"question {n}" for n in range(30)]
    job = batch(prompts, model="sim-latency-100", concurrency=2, progress=False, wait=False)
    deadline = time.monotonic() + 30
    while journal_entries() < 4:
        assert time.monotonic() < deadline, "nothing was journaled"
        time.sleep(0.02)
    job.cancel()
    first = job.wait(timeout=30)
    journaled = journal_entries()
    assert first.partial and journaled == first.summary.ok
    sim.reset()
    results = batch(iter(prompts), model="sim-latency-100", concurrency=8, progress=False)
    assert [_prompt_of(r) for r in results] == prompts and results.summary.ok == 30
    assert results.summary.resumed == journaled and sim.request_count == 30 - journaled
    assert journal_entries() == 0


def test_over_a_prompts_file_in_the_background(sim, ip, tmp_path):
    path = tmp_path / "reviews.csv"
    _write_prompts(path, [{"review": f"review {n}", "stars": n} for n in range(5)])
    ip.user_ns["reviews_path"] = str(path)
    ip.run_cell_magic("aihubmix", "-m sim-echo --over reviews_path --background -o job", "Label {review} ({stars})")
    job = ip.user_ns["job"]
    assert isinstance(job, BatchJob)
    results = job.wait(timeout=30)
    assert [_prompt_of(r) for r in results] == [f"Label review {n} ({n})" for n in range(5)]
    with pytest.raises(Exception, match="--background goes with --over"):
        ip.run_cell_magic("aihubmix", "-m sim-echo --background", "hello")


@pytest.mark.parametrize("pause", [0.0, 0.3])
def test_cancel_does_not_wait_for_answers_in_flight(sim, pause):
    job = batch((f"q{n}" for n in range(100)), model="sim-latency-60000", concurrency=8, progress=False,
                wait=False)
    time.sleep(pause)  # 0: before the connections are made; 0.3: eight requests waiting for their answer
    started = time.monotonic()
    job.cancel()
    results = job.wait(timeout=10)
    assert time.monotonic() - started < 5
    assert results.partial and results.summary.ok == 0 and job.done()
