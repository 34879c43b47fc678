"""What answers cost, this session's spend and budget, batch estimates and the account's balance: real
requests to the simulator (which serves a catalog with prices) over a real socket, magics in a real shell."""

from __future__ import annotations

import re

import nbformat
import pytest
from IPython.core.error import UsageError

from aihubmix_magic import (
    BudgetExceededError,
    CostEstimate,
    MissingKeyError,
    Usage,
    batch,
    history,
    last_response,
    settings,
)
from aihubmix_magic.services import catalog as _catalog
from aihubmix_magic.services import cost as _cost
from aihubmix_magic.services.catalog import ModelInfo
from aihubmix_magic.services.cost import PRICE_UNIT_TOKENS, cost_of, format_cost
from aihubmix_magic.session.settings import InvalidSettingError
from aihubmix_magic.simulator import Simulator
from tests.conftest import TEST_KEY

PRICES = {"gpt-4o-mini": (0.15, 0.6), "claude-sonnet-4-5": (3.0, 15.0), "deepseek-chat": (0.28, 0.42)}
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture(autouse=True)
def fresh(tmp_path):
    """No catalog in memory, a disk cache of the test's own, no spend, no balance."""
    settings.cache_path = str(tmp_path / "cache" / "responses.sqlite")
    _catalog.forget()
    _cost.ledger.reset()
    settings.balance = ""
    yield
    _catalog.forget()
    _cost.ledger.reset()
    settings.balance = ""


def expected_cost(response) -> float:
    price_in, price_out = PRICES[response.request["model"]]
    return (response.usage.input_tokens * price_in + response.usage.output_tokens * price_out) / 1_000_000


def plain_outputs(ip) -> list[str]:
    return [o.get("text/plain", "") for o in ip.display_pub.outputs()]


def footer(ip) -> str:
    return next(text for text in reversed(plain_outputs(ip)) if " · " in text and "tokens" in text)


# -- the arithmetic ---------------------------------------------------------------------------------------
def test_the_price_unit_is_one_million_tokens():
    assert PRICE_UNIT_TOKENS == 1_000_000
    flash = ModelInfo("gemini-3.6-flash", input_price=1.5, output_price=7.5, cache_read_price=0.15)
    assert cost_of(Usage(input_tokens=1_000_000, output_tokens=0), flash) == pytest.approx(1.5)
    assert cost_of(Usage(input_tokens=0, output_tokens=1_000_000), flash) == pytest.approx(7.5)


@pytest.mark.parametrize(("usage", "info", "expected"), [
    (Usage(input_tokens=1000, output_tokens=500), ModelInfo("m", input_price=2, output_price=8),
     (1000 * 2 + 500 * 8) / 1e6),
    # cached input tokens at cache_read when the model has one
    (Usage(input_tokens=1000, output_tokens=500, cached_tokens=800),
     ModelInfo("m", input_price=2, output_price=8, cache_read_price=0.5), (200 * 2 + 800 * 0.5 + 500 * 8) / 1e6),
    # ... and at the input price when it has none
    (Usage(input_tokens=1000, output_tokens=500, cached_tokens=800), ModelInfo("m", input_price=2, output_price=8),
     (1000 * 2 + 500 * 8) / 1e6),
    # reasoning tokens are part of the output tokens, as the API counts them
    (Usage(input_tokens=10, output_tokens=100, reasoning_tokens=60), ModelInfo("m", input_price=1, output_price=4),
     (10 + 400) / 1e6),
    (Usage(input_tokens=10, output_tokens=10), ModelInfo("m", input_price=0, output_price=0), 0.0),
    (Usage(input_tokens=10, output_tokens=10), ModelInfo("m", input_price=1), None),
    (Usage(input_tokens=10, output_tokens=10), None, None),
    (None, ModelInfo("m", input_price=1, output_price=1), None),
])
def test_cost_of(usage, info, expected):
    result = cost_of(usage, info)
    assert result == (pytest.approx(expected) if expected is not None else None)


@pytest.mark.parametrize(("usd", "text"), [
    (0.0012, "≈ $0.0012"), (0.00123456, "≈ $0.0012"), (0.00009, "< $0.0001"), (0.0000001, "< $0.0001"),
    (0.0, "≈ $0"), (1.234, "≈ $1.23"), (1234.5, "≈ $1,234.50"), (None, ""),
])
def test_every_cost_is_labelled_an_estimate(usd, text):
    assert format_cost(usd) == text


# -- Response.cost and the footer ------------------------------------------------------------------------
@pytest.mark.parametrize("endpoint", ["chat", "responses"])
@pytest.mark.parametrize("stream", [True, False])
def test_a_cell_shows_what_it_cost(ip, sim, endpoint, stream):
    line = f"-m claude-sonnet-4-5 -e {endpoint}" + ("" if stream else " --no-stream")
    ip.run_cell_magic("aihubmix", line, "Tell me a story, words=80")
    r = last_response()
    assert r.cost == pytest.approx(expected_cost(r)) and r.cost > 0.0001
    shown = footer(ip)
    tokens = f"{r.usage.input_tokens:,} → {r.usage.output_tokens:,} tokens"
    assert f"{tokens} · {format_cost(r.cost)} · " in shown
    assert re.search(r" · ≈ \$0\.\d{4} · ", shown)
    assert len(plain_outputs(ip)) == 2
    assert history()[-1] is r and history()[-1].cost == r.cost  # history() carries it


@pytest.mark.parametrize("endpoint", ["chat", "responses"])
def test_cached_input_tokens_are_priced_at_cache_read(ip, sim, endpoint):
    """sim-cached reports half of the input as cached; the catalog prices it 2 in, 8 out, 0.5 cache read."""
    ip.run_cell_magic("aihubmix", f"-m sim-cached -e {endpoint}", "a question of several words " * 5)
    usage = last_response().usage
    assert usage.cached_tokens == usage.input_tokens // 2 > 0
    expected = ((usage.input_tokens - usage.cached_tokens) * 2 + usage.cached_tokens * 0.5
                + usage.output_tokens * 8) / 1_000_000
    assert last_response().cost == pytest.approx(expected)
    assert format_cost(expected) in footer(ip)


def test_small_free_and_unknown_costs(ip, sim):
    ip.run_cell_magic("aihubmix", "-m gpt-4o-mini", "hi")
    assert 0 < last_response().cost < 0.0001 and " · < $0.0001 · " in footer(ip)
    ip.run_cell_magic("aihubmix", "-m sim-free", "hi")
    assert last_response().cost == 0.0 and " · ≈ $0 · " in footer(ip)
    ip.run_cell_magic("aihubmix", "-m sim-unpriced", "hi")  # listed without prices
    assert last_response().cost is None and "$" not in footer(ip)
    ip.run_cell_magic("aihubmix", "-m sim-echo", "hi")  # not in the catalog
    assert last_response().cost is None and "$" not in footer(ip)
    ip.run_cell_magic("aihubmix", "-m sim-no-usage", "hi")  # no usage, no cost
    assert last_response().usage is None and last_response().cost is None


def test_an_answer_from_the_local_cache_costs_nothing(ip, sim):
    ip.run_cell_magic("aihubmix", "-m gpt-4o-mini --cache", "cache me")
    first = last_response()
    ip.run_cell_magic("aihubmix", "-m gpt-4o-mini --cache", "cache me")
    again = last_response()
    assert again.cached and again.cost == 0.0 and "$" not in footer(ip) and "cached" in footer(ip)
    assert first.cost > 0
    rows = _cost.ledger.by_model()
    assert [(row["model"], row["calls"]) for row in rows] == [("gpt-4o-mini", 1)]


def test_demo_mode_shows_costs_too(ip):
    ip.run_line_magic("aihubmix", "demo")
    try:
        ip.run_cell_magic("aihubmix", "-m claude-sonnet-4-5", "words=30")
        shown = footer(ip)
        assert re.search(r" · ≈ \$0\.\d{4} · ", shown) and "simulated" in shown
    finally:
        ip.run_line_magic("aihubmix", "demo off")


def test_each_compare_column_has_its_cost(ip, sim):
    ip.run_cell_magic("aihubmix", "--compare gpt-4o-mini,claude-sonnet-4-5,sim-echo", "words=40 on recursion")
    comparison = last_response()
    grid = ip.display_pub.outputs()[-1]["text/plain"]
    for response in comparison.responses[:2]:
        assert response.cost == pytest.approx(expected_cost(response))
        assert f"{response.model} · chat · {response.usage.input_tokens:,} → {response.usage.output_tokens:,} " \
               f"tokens · {format_cost(response.cost)} · " in grid
    assert comparison["sim-echo"].cost is None
    # two dollar signs in one Markdown table are LaTeX math to Jupyter: each of the footers' is alone in a span
    markdown = ip.display_pub.outputs()[-1]["text/markdown"]
    assert "$" not in markdown and markdown.count(_cost.MARKDOWN_DOLLAR) == 2
    frame = comparison.to_dataframe()
    assert frame.loc["claude-sonnet-4-5", "cost"] == pytest.approx(comparison["claude-sonnet-4-5"].cost)
    assert {row["model"] for row in _cost.ledger.by_model()} == {"gpt-4o-mini", "claude-sonnet-4-5", "sim-echo"}


def test_export_carries_the_cost(ip, sim, tmp_path):
    ip.run_cell_magic("aihubmix", "-m claude-sonnet-4-5", "words=30")
    r = last_response()
    path = tmp_path / "session.ipynb"
    ip.run_line_magic("aihubmix", f"export {path}")
    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "code" and c.metadata.get("aihubmix", {}).get("id") == r.id)
    assert cell.metadata["aihubmix"]["cost_usd_estimate"] == pytest.approx(r.cost)
    assert format_cost(r.cost) in cell.outputs[-1]["data"]["text/plain"]


# -- the session's spend ----------------------------------------------------------------------------------
def test_cost_subcommand_shows_the_spend_by_model(ip, sim):
    ip.run_line_magic("aihubmix", "cost")
    assert plain_outputs(ip)[-1].startswith("No calls yet this session")
    for _ in range(2):
        ip.run_cell_magic("aihubmix", "-m claude-sonnet-4-5", "words=30")
    ip.run_cell_magic("aihubmix", "-m gpt-4o-mini --no-stream", "hi")
    ip.run_cell_magic("aihubmix", "-m sim-echo", "hi")
    batch(["one", "two", "three"], model="deepseek-chat", progress=False)
    responses = [r for r in history()[-4:]]
    ip.run_line_magic("aihubmix", "cost")
    markdown = ip.display_pub.outputs()[-1]["text/markdown"]
    assert "$" not in markdown  # each dollar sign alone in a span: Jupyter would read pairs of them as LaTeX math
    markdown = markdown.replace(_cost.MARKDOWN_DOLLAR, "$")
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| `([^`]+)` \|.*$", markdown, re.M)}
    assert list(rows) == ["claude-sonnet-4-5", "gpt-4o-mini", "sim-echo", "deepseek-chat"]
    sonnet = [r for r in responses if r.request["model"] == "claude-sonnet-4-5"]
    tokens_in = sum(r.usage.input_tokens for r in sonnet)
    tokens_out = sum(r.usage.output_tokens for r in sonnet)
    usd = sum(r.cost for r in sonnet)
    assert rows["claude-sonnet-4-5"] == f"| `claude-sonnet-4-5` | 2 | {tokens_in:,} | {tokens_out:,} | {format_cost(usd)} |"
    assert rows["deepseek-chat"].startswith("| `deepseek-chat` | 3 |")
    assert rows["sim-echo"].endswith("| — |")  # no price known
    total = _cost.ledger.spent()
    assert f"| **{format_cost(total)} +?** |" in markdown and "| **total** | 7 |" in markdown
    assert "1 call had no usage or no known price" in markdown


# -- estimates --------------------------------------------------------------------------------------------
def test_batch_estimate_sends_nothing(sim):
    settings.set_key(None)  # no key is needed to estimate
    prompts = ["What is a p-value?", "What is a z-score?", "What is a t-test?"]
    estimate = batch(prompts, model="gpt-4o-mini", max_tokens=100, estimate=True)
    assert isinstance(estimate, CostEstimate)
    assert sim.requests == []
    expected_in = sum(_catalog.estimate_tokens([{"role": "user", "content": p}]) for p in prompts)
    assert (estimate.items, estimate.input_tokens, estimate.output_tokens) == (3, expected_in, 300)
    assert estimate.cost == pytest.approx((expected_in * 0.15 + 300 * 0.6) / 1e6)
    text = str(estimate)
    assert text.startswith("Estimate for 3 items on gpt-4o-mini: about ")
    assert "max_tokens 100 per item, an upper bound" in text and text.endswith("Nothing was sent.")
    assert format_cost(estimate.cost) in text and "\n" not in text


def test_batch_estimate_without_max_tokens_states_its_assumption(sim):
    estimate = batch([f"question {n}" for n in range(10)], model="claude-sonnet-4-5", estimate=True, progress=False)
    assert estimate.output_tokens == 10 * _cost.ASSUMED_OUTPUT_TOKENS
    assert "500 per item assumed, as no max_tokens is set" in str(estimate)
    assert sim.requests == []
    unpriced = batch(["a"], model="sim-unpriced", estimate=True)
    assert unpriced.cost is None and "no price known for sim-unpriced" in str(unpriced)


def test_estimate_compares_with_the_budget_left(sim):
    settings.budget = 0.001
    estimate = batch(["x " * 50] * 20, model="claude-sonnet-4-5", max_tokens=200, estimate=True)
    assert estimate.cost > 0.001 and "more than the ≈ $0.0010 left in the session budget" in str(estimate)
    small = batch(["x"], model="gpt-4o-mini", max_tokens=10, estimate=True)
    assert "The session budget has ≈ $0.0010 left." in str(small)


def test_over_estimate_shows_the_projection_and_sends_nothing(ip, sim):
    ip.user_ns["words"] = ["alpha", "beta", "gamma", "delta"]
    ip.run_cell_magic("aihubmix", "--over words --estimate -m gpt-4o-mini --max-tokens 50 -o est", "Define: {}")
    shown = plain_outputs(ip)[-1]
    assert shown.startswith("Estimate for 4 items on gpt-4o-mini") and shown.endswith("Nothing was sent.")
    assert isinstance(ip.user_ns["est"], CostEstimate) and ip.user_ns["est"].output_tokens == 200
    assert "$" not in ip.display_pub.outputs()[-1]["text/markdown"]
    assert sim.requests == []
    with pytest.raises(UsageError, match="--estimate goes with --over"):
        ip.run_cell_magic("aihubmix", "--estimate", "hi")
    assert sim.requests == []


def test_batch_and_over_summaries_show_the_total(ip, sim, capsys):
    results = batch(["one", "two", "three"], model="claude-sonnet-4-5", progress=False)
    total = sum(r.cost for r in results)
    assert results.summary.cost == pytest.approx(total)
    assert f" tokens · {format_cost(total)} · " in str(results.summary)
    settings.display = "terminal"
    ip.user_ns["words"] = ["alpha", "beta"]
    ip.run_cell_magic("aihubmix", "--over words -m claude-sonnet-4-5 -o out", "Define: {}")
    summary = ip.user_ns["out"].summary
    assert summary.cost == pytest.approx(sum(r.cost for r in ip.user_ns["out"]))
    assert f"{format_cost(summary.cost)}" in capsys.readouterr().out
    assert batch(["a"], model="sim-echo", progress=False).summary.cost is None


# -- the budget ---------------------------------------------------------------------------------------------
def test_budget_subcommand(ip, sim, capsys):
    ip.run_line_magic("aihubmix", "budget")
    assert capsys.readouterr().out.startswith("No budget")
    ip.run_line_magic("aihubmix", "budget 2.50")
    assert settings.budget == 2.5 and "Budget $2.50 · spent $0 · ≈ $2.50 left." in capsys.readouterr().out
    ip.run_line_magic("aihubmix", "budget $1,000")
    assert settings.budget == 1000
    ip.run_line_magic("config", "AihubmixMagics.budget = 3.0")
    assert settings.budget == 3.0
    ip.run_line_magic("aihubmix", "budget off")
    assert settings.budget is None and "Budget off" in capsys.readouterr().out


@pytest.mark.parametrize(("line", "message"), [
    ("budget -1", "positive"), ("budget 0", "positive"), ("budget lots", "not an amount"),
    ("budget 1 2", "Usage"), ("budget nan", "positive"), ("cost now", "Usage"), ("balance me", "Usage"),
])
def test_bad_budget_input_is_one_line(ip, sim, line, message):
    with pytest.raises(UsageError, match=message) as info:
        ip.run_line_magic("aihubmix", line)
    assert "\n" not in str(info.value) and settings.budget is None
    assert sim.requests == [] and sim.account_requests == []


def test_budget_setting_is_validated():
    for bad in (0, -0.5, float("inf")):
        with pytest.raises(InvalidSettingError, match="positive number of US dollars"):
            settings.budget = bad
    settings.budget = 0.25
    assert settings.budget == 0.25


def test_once_the_budget_is_reached_the_next_call_is_refused(ip, sim, capsys):
    ip.run_line_magic("aihubmix", "budget 0.001")
    ip.run_cell_magic("aihubmix", "-m claude-sonnet-4-5", "words=120")  # about $0.002: over the budget
    spent = last_response().cost
    assert spent > 0.001 and len(sim.requests) == 1
    capsys.readouterr()
    ip.run_cell("%%aihubmix -m gpt-4o-mini\nOne more?")
    shown = ANSI.sub("", "".join(capsys.readouterr()))
    lines = [line for line in shown.splitlines() if "BudgetExceededError" in line]
    assert len(lines) == 1 and "Traceback" not in shown
    assert lines[0] == (f"BudgetExceededError: The session budget of $0.0010 is used up (spent {format_cost(spent)}, an "
                        "estimate), so nothing was sent. Raise it with `%aihubmix budget "
                        f"{_cost._suggest(0.001, spent)}` (or `settings.budget = …`; `%aihubmix budget off` removes it).")
    assert len(sim.requests) == 1  # nothing was sent
    with pytest.raises(BudgetExceededError) as info:
        ip.run_cell_magic("aihubmix", "--compare gpt-4o-mini,deepseek-chat", "hi")
    assert info.value.budget == 0.001 and info.value.spent == pytest.approx(spent)
    with pytest.raises(BudgetExceededError):
        batch(["a", "b"], model="gpt-4o-mini", progress=False)
    ip.user_ns["words"] = ["a"]
    with pytest.raises(BudgetExceededError):
        ip.run_cell_magic("aihubmix", "--over words -m gpt-4o-mini", "{}")
    assert len(sim.requests) == 1
    ip.run_line_magic("aihubmix", "budget 1")  # raised: calls go again
    ip.run_cell_magic("aihubmix", "-m gpt-4o-mini", "One more?")
    assert len(sim.requests) == 2 and last_response().status == "completed"


def test_a_batch_stops_starting_items_when_the_budget_runs_out(sim):
    settings.budget = 0.0015
    results = batch([f"words=40 item {n}" for n in range(8)], model="claude-sonnet-4-5", concurrency=1,
                    progress=False)
    statuses = [r.status for r in results]
    done = statuses.count("completed")
    assert 1 <= done < 8 and statuses == ["completed"] * done + ["cancelled"] * (8 - done)
    assert len(sim.requests) == done  # the rest were never sent
    spent_before_last = sum(r.cost for r in results[: done - 1])
    assert spent_before_last < 0.0015 <= sum(r.cost for r in results[:done])  # it went on while there was room
    summary = results.summary
    assert summary.budget_reached and summary.partial and summary.cancelled == 8 - done
    assert str(summary).endswith("· budget reached: the rest were not sent")
    with pytest.raises(BudgetExceededError):  # and the next one is refused outright
        batch(["more"], model="claude-sonnet-4-5", progress=False)
    assert len(sim.requests) == done


def test_a_concurrent_batch_counts_the_items_in_flight(sim):
    per_item = batch(["words=20 question"], model="claude-sonnet-4-5", max_tokens=60, estimate=True).cost
    settings.budget = 2.5 * per_item
    results = batch(["words=20 question"] * 10, model="claude-sonnet-4-5", max_tokens=60, concurrency=8,
                    progress=False)
    # three start (spent + reserved: 0, 1, 2 estimates, below 2.5); the fourth would pass the budget
    assert len(sim.requests) == 3
    assert [r.status for r in results].count("cancelled") == 7 and results.summary.budget_reached


def test_a_model_without_a_price_is_flagged_when_a_budget_is_set(ip, sim):
    settings.budget = 5
    ip.run_cell_magic("aihubmix", "-m sim-echo", "hi")
    warnings = [text for text in plain_outputs(ip) if text.startswith("⚠")]
    assert warnings == ["⚠ sim-echo is not in the model catalog: this call's cost cannot be counted against the "
                        "budget."]
    settings.budget = None
    ip.run_cell_magic("aihubmix", "-m sim-echo", "hi")
    assert not [text for text in plain_outputs(ip) if text.startswith("⚠")]


def test_a_batch_flags_a_model_without_a_price_once_before_sending(ip, sim, capsys):
    settings.budget = 5
    settings.display = "terminal"
    batch(["a", "b", "c"], model="sim-echo", progress=False)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("⚠")]
    assert lines == ["⚠ sim-echo is not in the model catalog: this call's cost cannot be counted against the budget."]
    settings.display = "notebook"
    ip.user_ns["words"] = ["alpha", "beta"]
    ip.run_cell_magic("aihubmix", "--over words -m sim-echo", "Define: {}")  # --over: the same line, once
    assert [text for text in plain_outputs(ip) if text.startswith("⚠")] == [lines[0]]
    settings.budget = None
    batch(["a"], model="sim-echo", progress=False)
    assert "⚠" not in capsys.readouterr().out


def test_an_estimate_leaves_out_the_items_already_answered(sim):
    prompts = [f"question {n}" for n in range(4)]
    batch(prompts[:2], model="gpt-4o-mini", cache=True, progress=False)  # complete answers: cached
    estimate = batch(prompts, model="gpt-4o-mini", cache=True, estimate=True)
    assert (estimate.items, estimate.answered) == (2, 2)
    assert estimate.output_tokens == 2 * _cost.ASSUMED_OUTPUT_TOKENS
    assert str(estimate).startswith("Estimate for 2 items (2 more already answered, by the cache or an earlier "
                                    "run of this batch: not counted) on gpt-4o-mini")
    assert batch(prompts, model="gpt-4o-mini", cache=False, estimate=True).items == 4
    # an earlier run that did not finish: its answers are in the batch journal
    settings.max_retries = 0
    first = batch(["x", "y", "z"], model="sim-flaky-500-1", concurrency=1, progress=False)
    assert [r.status for r in first] == ["failed", "completed", "completed"]
    again = batch(["x", "y", "z"], model="sim-flaky-500-1", estimate=True)
    assert (again.items, again.answered, again.model) == (1, 2, "sim-flaky-500-1")


def test_the_panel_shows_spend_budget_and_balance(ip, sim):
    pytest.importorskip("ipywidgets")
    from aihubmix_magic.notebook.widgets import Panel

    panel = Panel()

    def status() -> str:  # each dollar sign alone in a span: two would be LaTeX math in some frontends
        assert "$" not in panel.status.value
        return panel.status.value.replace(_cost.MARKDOWN_DOLLAR, "$")

    try:
        panel._fetcher.join(30)
        assert "No budget (spent $0 this session)" in status()
        ip.run_cell_magic("aihubmix", "-m claude-sonnet-4-5", "words=30")
        assert f"spent {format_cost(last_response().cost)} this session" in status()
        settings.budget = 2
        assert "Budget $2.00 · spent ≈ $0.0" in status()
        ip.run_line_magic("aihubmix", "balance")
        assert "balance $14.77" in status()
        assert TEST_KEY not in panel.status.value
    finally:
        panel.close()


# -- the account's balance ----------------------------------------------------------------------------------
def test_balance(ip, sim, capsys):
    ip.run_line_magic("aihubmix", "balance")
    out = capsys.readouterr().out.strip()
    assert out == ("Remaining credit: $14.77 · used $5.23 · limit $20.00 (as the account's billing endpoints "
                   "report it).")
    assert settings.balance == "$14.77"
    paths = {r.path: r.headers.get("authorization") for r in sim.account_requests}
    assert paths == {"/api/status": None, "/v1/dashboard/billing/subscription": f"Bearer {TEST_KEY}",
                     "/dashboard/billing/usage": f"Bearer {TEST_KEY}", "/dashboard/billing/remain": f"Bearer {TEST_KEY}"}
    assert sim.requests == []


@pytest.mark.parametrize(("billing", "expected"), [
    ("down", "Remaining credit: unknown (as the account's billing endpoints report it). Not available: "
             "subscription (HTTP 500); usage (HTTP 500); remain (HTTP 500)."),
    ("partial", "Remaining credit: unknown · used $5.23 (as the account's billing endpoints report it). Not "
                "available: remain (HTTP 500); subscription (no soft_limit_usd in the answer)."),
    ("quota-units", "Remaining credit: $14.77 · used $5.23 · limit $20.00 (as the account's billing endpoints "
                    "report it)."),
])
def test_balance_tolerates_failing_endpoints(ip, capsys, billing, expected):
    with Simulator(billing=billing) as server:
        settings.base_url = server.base_url
        ip.run_line_magic("aihubmix", "balance")
    assert capsys.readouterr().out.strip() == expected


def test_balance_with_a_wrong_key_or_no_key_or_no_server(ip, capsys):
    with Simulator(api_key="sk-the-right-one-0123456789") as server:
        settings.base_url = server.base_url
        ip.run_line_magic("aihubmix", "balance")
        out = capsys.readouterr().out
        assert out.startswith("Remaining credit: unknown") and "subscription (HTTP 401)" in out
        assert TEST_KEY not in out
    settings.set_key(None)
    with pytest.raises(MissingKeyError):
        ip.run_line_magic("aihubmix", "balance")
    import socket

    settings.set_key(TEST_KEY)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    settings.base_url = f"http://127.0.0.1:{closed}/v1"
    ip.run_line_magic("aihubmix", "balance")
    out = capsys.readouterr().out.strip()
    assert out.startswith("Remaining credit: unknown") and "cannot connect" in out and "\n" not in out


def test_balance_in_demo_mode_is_marked_simulated(ip, capsys):
    ip.run_line_magic("aihubmix", "demo")
    try:
        capsys.readouterr()
        ip.run_line_magic("aihubmix", "balance")
        assert capsys.readouterr().out.strip().endswith("Simulated: demo mode.")
    finally:
        ip.run_line_magic("aihubmix", "demo off")


def test_help_lists_the_new_subcommands(ip, capsys):
    ip.run_line_magic("aihubmix", "help")
    out = capsys.readouterr().out
    for name in ("%aihubmix cost", "%aihubmix budget [USD|off]", "%aihubmix balance", "--features"):
        assert name in out
