"""What answers cost (an estimate from the model catalog's prices), this session's spend, and its budget.

**Prices** are per `PRICE_UNIT_TOKENS` (1M) tokens and every cost is an estimate; the unit, and what a
cost counts (`cost_of`), are explained in `core/prices.py`. An answer from the local response cache cost
nothing.

**The ledger**: every answer this session received (cells, `--compare` columns, batch items), by model:
calls, tokens, USD. An answer whose price was unknown when it arrived (the catalog still loading) is
priced again when the spend is next read.

**The budget** (`settings.budget`, `%aihubmix budget USD|off`): once the session's spend reaches it, the
next call is refused with `BudgetExceededError` before anything is sent. A batch checks before starting
each item and also counts the items in flight at their estimated cost, so concurrency does not carry it
far past the budget; once it stops starting items it stays stopped (the rest are cancelled).

No httpx (nor anything that imports it) at import time.
"""

from __future__ import annotations

import math
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..core.exceptions import BudgetExceededError
from ..core.prices import (
    ASSUMED_OUTPUT_TOKENS,
    MARKDOWN_DOLLAR,
    PRICE_UNIT_TOKENS,
    ModelInfo,
    cost_of,
    estimate_tokens,
    find_model,
    format_budget,
    format_cost,
    format_price,
    format_usd,
    markdown_dollars,
)
from ..core.types import Usage
from .catalog import COMMAND_WAIT, PROMPT_WAIT, catalog, lookup

__all__ = [
    "ASSUMED_OUTPUT_TOKENS",
    "BudgetGate",
    "CostEstimate",
    "Ledger",
    "MARKDOWN_DOLLAR",
    "PRICE_UNIT_TOKENS",
    "budget_summary",
    "check_budget",
    "check_period_budgets",
    "cost_of",
    "estimate_batch",
    "footer_cost",
    "format_budget",
    "format_cost",
    "format_price",
    "format_usd",
    "ledger",
    "markdown_dollars",
    "period_spent",
    "period_start",
    "period_summary",
    "period_table",
    "record",
    "response_cost",
    "spend_table",
    "total_cost",
]


def _model_of(response) -> str:
    """The model id the request named (what the catalog lists), else the one the answer names."""
    request = getattr(response, "request", None) or {}
    return str(request.get("model") or getattr(response, "model", "") or "")


def _info_for(response: Any, wait: float, infos: dict | None = None) -> ModelInfo | None:
    """The catalog entry for the answer's model; `infos` keeps the ones found, for many answers."""
    requested = _model_of(response)
    model = str(getattr(response, "model", "") or "")
    if infos is not None and (requested, model) in infos:
        return infos[requested, model]
    info = lookup(requested, wait)
    if info is None and model and model != requested:
        info = lookup(model, 0.0)
    if infos is not None:
        infos[requested, model] = info
    return info


def response_cost(response, wait: float = 0.0, infos: dict | None = None) -> float | None:
    """`Response.cost`: 0.0 for an answer from the local cache, else `cost_of` its usage and model
    (`infos`: catalog entries already looked up, shared by the answers of a batch)."""
    if getattr(response, "cached", False):
        return 0.0
    if getattr(response, "usage", None) is None:
        return None
    return cost_of(response.usage, _info_for(response, wait, infos))


def footer_cost(response) -> str | None:
    """The footer's part: `≈ $0.0012` / `< $0.0001`; None when unknown or the answer came from the cache.
    It never waits for the catalog (a footer is painted often)."""
    if getattr(response, "cached", False):
        return None
    return format_cost(response_cost(response)) or None


def total_cost(responses: Iterable, wait: float = PROMPT_WAIT) -> float | None:
    """The summed cost of the answers that have one (cached ones cost nothing); None if none has one.
    Waits at most `wait` seconds (once) for a catalog being fetched. Each model is looked up once."""
    catalog().ensure(wait)
    infos: dict = {}  # each model looked up once
    costs = [response_cost(r, infos=infos) for r in responses if r is not None]
    known = [c for c in costs if c is not None]
    return sum(known) if known else None


# -- the session's spend --------------------------------------------------------------------------------------
@dataclass(slots=True)
class _Row:
    """One model's answers this session, summed: a batch of 100,000 answers adds to a row, not a list."""

    model: str
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    usd: float = 0.0
    unpriced: int = 0  # answers without a cost: no usage, or no price known (yet)
    # the usage of answers with no price yet, priced together once the catalog knows one (cost is linear)
    pending: int = 0
    pending_input: int = 0
    pending_cached: int = 0
    pending_output: int = 0


class Ledger:
    """This session's answers and what they cost, by model. Thread-safe (batch items are recorded from
    the batch's thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[str, _Row] = {}  # in the order first used
        self._spent = 0.0
        self._priced_with: object = None  # the catalog the pending usage was last tried with
        self._seen: weakref.WeakSet = weakref.WeakSet()

    def record(self, response, *, fresh: bool = False) -> None:
        """Count an answer once (cached answers cost nothing and are not counted). `fresh`: the caller
        knows it was never counted (a batch's item), so it is not remembered for that."""
        if response is None or getattr(response, "cached", False):
            return
        if not fresh:
            with self._lock:
                if response in self._seen:
                    return
                self._seen.add(response)
        model = _model_of(response)
        usage = getattr(response, "usage", None)
        cost = response_cost(response)
        with self._lock:
            row = self._rows.get(model)
            if row is None:
                row = self._rows[model] = _Row(model)
            row.calls += 1
            if usage is not None:
                row.input_tokens += usage.input_tokens
                row.output_tokens += usage.output_tokens
            if cost is not None:
                row.usd += cost
                self._spent += cost
                return
            row.unpriced += 1
            if usage is not None:
                row.pending += 1
                row.pending_input += usage.input_tokens
                row.pending_cached += max(0, min(usage.cached_tokens, usage.input_tokens))
                row.pending_output += usage.output_tokens

    def _price_late(self, wait: float) -> None:
        """Answers recorded before the catalog arrived get their cost now, if it has (tried once per catalog)."""
        if not any(row.pending for row in self._rows.values()):
            return
        try:
            models = catalog().ensure(wait)
        except Exception:  # no usable catalog URL: nothing to price with
            return
        with self._lock:
            if models is None or models is self._priced_with:
                return
            self._priced_with = models
            for row in self._rows.values():
                if not row.pending:
                    continue
                usage = Usage(input_tokens=row.pending_input, output_tokens=row.pending_output,
                              cached_tokens=row.pending_cached)
                cost = cost_of(usage, find_model(models, row.model))
                if cost is None:
                    continue
                row.usd += cost
                self._spent += cost
                row.unpriced -= row.pending
                row.pending = row.pending_input = row.pending_cached = row.pending_output = 0

    def spent(self, wait: float = 0.0) -> float:
        """USD spent this session (an estimate; answers without a known price count 0)."""
        self._price_late(wait)
        with self._lock:
            return self._spent

    def by_model(self, wait: float = 0.0) -> list[dict]:
        """One row per model, in the order first used: model, calls, input/output tokens, usd, unpriced."""
        self._price_late(wait)
        with self._lock:
            return [{"model": row.model, "calls": row.calls, "input_tokens": row.input_tokens,
                     "output_tokens": row.output_tokens, "usd": row.usd, "unpriced": row.unpriced}
                    for row in self._rows.values()]

    def reset(self) -> None:
        with self._lock:
            self._rows.clear()
            self._spent = 0.0
            self._priced_with = None
            self._seen = weakref.WeakSet()


ledger = Ledger()


def record(response) -> None:
    """Count an answer (or each answer of a Comparison) in this session's spend."""
    inner = getattr(response, "responses", None)
    if inner is not None and not hasattr(response, "usage"):
        for item in inner:
            ledger.record(item)
    else:
        ledger.record(response)


def spend_table() -> dict:
    """Display data for `%aihubmix cost`: this session's spend by model, and the budget."""
    rows = ledger.by_model(PROMPT_WAIT)
    if not rows:
        text = "No calls yet this session: nothing spent." + _budget_note(0.0)
        return {"text/markdown": markdown_dollars(text), "text/plain": text}
    table, plain, total = _spend_rows(rows, "model")
    notes = ["Estimates from the model catalog's prices (USD per 1M tokens); answers from the local cache "
             "are free and not counted."]
    if total["unpriced"]:
        count = total["unpriced"]
        notes.append(f"{count} call{'s' * (count != 1)} had no usage or no known price and count $0 (marked +?).")
    note = " ".join(notes) + _budget_note(total["usd"])
    return {"text/markdown": markdown_dollars("\n".join(table) + f"\n\n<sub>{note}</sub>"),
            "text/plain": "\n".join(plain + [note])}


def _spend_rows(rows: list[dict], heading: str) -> tuple[list[str], list[str], dict]:
    """The spend by model as Markdown table lines and plain-text lines, a total row last, and that total (`%aihubmix cost`,
    for the session and for a day or month of the log)."""
    table = [f"| {heading} | calls | input tokens | output tokens | USD (estimate) |", "|---|--:|--:|--:|--:|"]
    plain = [f"{heading:<32} {'calls':>6} {'input':>10} {'output':>10}  USD (estimate)"]
    total = {"calls": 0, "input_tokens": 0, "output_tokens": 0, "usd": 0.0, "unpriced": 0}
    for row in rows:
        for name in total:
            total[name] += row[name]
        usd = _usd_cell(row)
        table.append(f"| `{row['model']}` | {row['calls']:,} | {row['input_tokens']:,} | {row['output_tokens']:,} "
                     f"| {usd} |")
        plain.append(f"{row['model']:<32} {row['calls']:>6,} {row['input_tokens']:>10,} {row['output_tokens']:>10,}"
                     f"  {usd}")
    usd = _usd_cell(total)
    table.append(f"| **total** | {total['calls']:,} | {total['input_tokens']:,} | {total['output_tokens']:,} "
                 f"| **{usd}** |")
    plain.append(f"{'total':<32} {total['calls']:>6,} {total['input_tokens']:>10,} {total['output_tokens']:>10,}  {usd}")
    return table, plain, total


def _usd_cell(row: dict) -> str:
    text = format_cost(row["usd"]) if row["usd"] or not row["unpriced"] else "—"
    return text + (" +?" if row["unpriced"] and row["usd"] else "")


def _budget_note(spent: float) -> str:
    budget = _budget()
    if budget is None:
        return ""
    left = max(0.0, budget - spent)
    return f" Budget {format_budget(budget)}: ≈ {format_usd(left)} left."


# The session's budget in USD (None: no budget), as the session layer passes it (`configure`, called by
# `session.settings`); without a session there is none.
def _no_budget() -> float | None:
    return None


_budget: Callable[[], float | None] = _no_budget


def _no_period_budgets() -> dict[str, float | None]:
    return {"day": None, "month": None}


# the budgets per calendar day and month (USD or None), over every kernel that logs
_period_budgets: Callable[[], dict[str, float | None]] = _no_period_budgets


def configure(*, budget: Callable[[], float | None],
              period_budgets: Callable[[], dict[str, float | None]] = _no_period_budgets) -> None:
    """Where the budgets come from: functions of the session's settings (the session's budget; the
    budgets per "day" and "month")."""
    global _budget, _period_budgets
    _budget, _period_budgets = budget, period_budgets


# -- the budget -----------------------------------------------------------------------------------------------
def check_budget(wait: float = PROMPT_WAIT) -> None:
    """Raise BudgetExceededError (one line: the budget, the spend, how to raise it) if this session's
    spend has reached `settings.budget`. Call it before anything is sent. It also starts fetching the
    model catalog in the background (the answer's cost will need it); with a budget set it waits for it
    at most `wait` seconds, so that the spend so far is priced."""
    budget = _budget()
    try:
        catalog().ensure(wait if budget is not None else 0.0)
    except Exception:  # an unusable base URL: the request itself will say so
        pass
    check_period_budgets()
    if budget is None:
        return
    spent = ledger.spent(wait)
    if spent >= budget:
        raise BudgetExceededError(
            f"The session budget of {format_budget(budget)} is used up (spent {format_cost(spent)}, an estimate), "
            f"so nothing was sent. Raise it with `%aihubmix budget {_suggest(budget, spent)}` "
            "(or `settings.budget = …`; `%aihubmix budget off` removes it).",
            budget=budget, spent=spent)


PERIODS = {"day": "today", "month": "this month"}


def period_start(period: str, now: float | None = None) -> float:
    """The Unix time the current local calendar day or month began."""
    from datetime import datetime

    moment = datetime.fromtimestamp(time.time() if now is None else now)
    start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "month":
        start = start.replace(day=1)
    return start.timestamp()


def period_spent(period: str) -> float:
    """USD spent (estimated) in the current local day or month, over every kernel, from the log."""
    from ..store.log import log_for

    return log_for().spent(period_start(period))


def check_period_budgets() -> None:
    """BudgetExceededError if the spend of today or this month (from the log) has reached
    `settings.budget_day` / `settings.budget_month`. A log that cannot be read warns once and does not
    refuse (it is read again at the next call)."""
    for period, budget in _period_budgets().items():
        if budget is None:
            continue
        import sqlite3

        from ..store.log import log_for

        try:
            spent = period_spent(period)
        except (sqlite3.Error, OSError) as exc:
            log_for().failed(exc)
            continue
        if spent >= budget:
            raise BudgetExceededError(
                f"The budget of {format_budget(budget)}/{period} is used up ({PERIODS[period]}: spent "
                f"{format_cost(spent)}, an estimate, over every kernel that logged), so nothing was sent. Raise it "
                f"with `%aihubmix budget {_suggest(budget, spent)}/{period}` (`%aihubmix budget off/{period}` "
                "removes it).", budget=budget, spent=spent)


def period_summary() -> str:
    """`%aihubmix budget`'s lines for the day and month budgets (empty when none is set)."""
    lines = []
    for period, budget in _period_budgets().items():
        if budget is None:
            continue
        try:
            spent = period_spent(period)
        except Exception as exc:  # a broken log: say so, do not fail the command
            lines.append(f"Budget {format_budget(budget)}/{period} · the log cannot be read ({type(exc).__name__}).")
            continue
        left = budget - spent
        state = f"≈ {format_usd(left)} left" if left > 0 else "used up: the next call will be refused"
        lines.append(f"Budget {format_budget(budget)}/{period} · spent {format_cost(spent) if spent else '$0'} "
                     f"{PERIODS[period]} · {state}.")
    return "\n".join(lines)


def period_table(period: str) -> dict:
    """Display data for `%aihubmix cost --today` / `--month`: the spend by model from the log."""
    from ..store.log import log_for

    log = log_for()
    rows = log.spend_by_model(period_start(period))
    when = PERIODS[period]
    if not rows:
        text = f"No logged calls {when}: nothing spent (the log: {log.path})."
        return {"text/markdown": markdown_dollars(text), "text/plain": text}
    table, plain, total = _spend_rows(rows, f"model ({when})")
    note = (f"From the log ({log.path}), every kernel that logged: cells, compare columns, fix and batch runs. "
            "Estimates from the model catalog's prices.")
    summary = period_summary()
    if summary:
        note += " " + summary.replace("\n", " ")
    return {"text/markdown": markdown_dollars("\n".join(table) + f"\n\n<sub>{note}</sub>"),
            "text/plain": "\n".join(plain + [note])}


def _suggest(budget: float, spent: float) -> str:
    target = max(budget * 2, spent + budget)
    return f"{math.ceil(target * 100) / 100:.2f}"


def budget_summary() -> str:
    """One line for `%aihubmix budget` and the panel: the budget, the spend, what is left."""
    budget = _budget()
    spent = ledger.spent(0.0)
    spent_text = format_cost(spent) if spent else "$0"
    if budget is None:
        return f"No budget (spent {spent_text} this session)."
    left = budget - spent
    state = f"≈ {format_usd(left)} left" if left > 0 else "used up: the next call will be refused"
    return f"Budget {format_budget(budget)} · spent {spent_text} · {state}."


class BudgetGate:
    """A batch's check before each item: with a budget, start an item only while the spend plus the
    estimated cost of the items in flight is below it; once it says no, it stays no."""

    def __init__(self, endpoint: str) -> None:
        self.budget = _budget()
        self.endpoint = endpoint
        self.stopped = False
        self._reserved = 0.0
        self._lock = threading.Lock()

    def start(self, body: dict) -> float | None:
        """The reservation (USD) for the item about to be sent, or None: do not send it."""
        if self.budget is None:
            return 0.0
        with self._lock:
            if self.stopped or ledger.spent(0.0) + self._reserved >= self.budget:
                self.stopped = True
                return None
            reservation = _estimate_body(body, self.endpoint)[2] or 0.0
            self._reserved += reservation
            return reservation

    def finish(self, reservation: float, response) -> None:
        """The item is done: count its real cost, release its reservation."""
        ledger.record(response, fresh=True)  # a batch's answer, counted here only
        with self._lock:
            self._reserved = max(0.0, self._reserved - reservation)


# -- estimates ------------------------------------------------------------------------------------------------
def _request_content(body: dict) -> tuple[object, str]:
    if "messages" in body:
        return body.get("messages"), ""
    instructions = body.get("instructions")
    return body.get("input"), instructions if isinstance(instructions, str) else ""


def _estimate_body(body: dict, endpoint: str, info: ModelInfo | None = None) -> tuple[int, int, float | None]:
    """(input tokens, output tokens, USD) estimated for one request body."""
    content, instructions = _request_content(body)
    input_tokens = estimate_tokens(content) + (estimate_tokens(instructions) if instructions else 0)
    limit = body.get("max_tokens", body.get("max_output_tokens"))
    output_tokens = limit if isinstance(limit, int) and not isinstance(limit, bool) else ASSUMED_OUTPUT_TOKENS
    info = info if info is not None else lookup(str(body.get("model", "")))
    if info is not None and info.max_output:
        output_tokens = min(output_tokens, info.max_output)
    if info is None or not info.priced or info.input_price is None or info.output_price is None:
        return input_tokens, output_tokens, None
    usd = (input_tokens * info.input_price + output_tokens * info.output_price) / PRICE_UNIT_TOKENS
    return input_tokens, output_tokens, usd


@dataclass(frozen=True)
class CostEstimate:
    """What a batch would cost, estimated before anything is sent (`batch(..., estimate=True)`,
    `%%aihubmix --over … --estimate`). `cost` is None when the model has no known price."""

    model: str
    items: int
    input_tokens: int
    output_tokens: int
    output_basis: str
    cost: float | None
    budget_left: float | None = None
    note: str = ""
    answered: int = 0  # items left out: the response cache or an earlier run of the batch has their answer

    def __str__(self) -> str:
        items = f"{self.items:,} item{'s' * (self.items != 1)}"
        if self.answered:
            items += (f" ({self.answered:,} more already answered, by the cache or an earlier run of this batch: "
                      "not counted)")
        head = (f"Estimate for {items} on {self.model}: about {self.input_tokens:,} input tokens (from the text, "
                f"~4 characters a token) + {self.output_tokens:,} output tokens ({self.output_basis})")
        if self.cost is None:
            text = f"{head}; no price known for {self.model}, so no cost. {self.note}".rstrip()
        else:
            text = f"{head} → {format_cost(self.cost)}."
            if self.budget_left is not None:
                if self.cost > self.budget_left:
                    text += (f" That is more than the ≈ {format_usd(max(0.0, self.budget_left))} left in the "
                             "session budget: the batch would stop early.")
                else:
                    text += f" The session budget has ≈ {format_usd(self.budget_left)} left."
        return text + " Nothing was sent."

    def __repr__(self) -> str:
        return f"<CostEstimate {self}>"

    def _repr_markdown_(self) -> str:
        return markdown_dollars(str(self))


def estimate_batch(bodies: list[dict], endpoint: str, *, model: str | None = None, answered: int = 0) -> CostEstimate:
    """A CostEstimate for the request bodies of a batch (all for one model) still to send; `answered` items
    already have an answer. Waits for the catalog."""
    model = model or (str(bodies[0].get("model", "")) if bodies else "")
    info = lookup(model, COMMAND_WAIT)
    total_input = total_output = 0
    total_usd = 0.0
    priced = info is not None and info.priced
    for body in bodies:
        input_tokens, output_tokens, usd = _estimate_body(body, endpoint, info)
        total_input += input_tokens
        total_output += output_tokens
        total_usd += usd or 0.0
    limits = {body.get("max_tokens", body.get("max_output_tokens")) for body in bodies}
    limit = next(iter(limits)) if len(limits) == 1 else None
    if isinstance(limit, int):
        basis = f"max_tokens {limit:,} per item, an upper bound"
    else:
        basis = f"{ASSUMED_OUTPUT_TOKENS:,} per item assumed, as no max_tokens is set"
    if info is not None and info.max_output and (not isinstance(limit, int) or limit > info.max_output):
        basis += f"; at most the model's {info.max_output:,}"
    note = "" if info is not None else catalog().describe()
    budget = _budget()
    left = None if budget is None else budget - ledger.spent(PROMPT_WAIT)
    return CostEstimate(model=model, items=len(bodies), input_tokens=total_input, output_tokens=total_output,
                        output_basis=basis, cost=total_usd if priced else None, budget_left=left, note=note,
                        answered=answered)
