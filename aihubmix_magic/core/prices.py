"""Price arithmetic and the catalog's value types, with no I/O: what a model costs and can do
(`ModelInfo`, parsed tolerantly from the catalog's JSON), what an answer's usage costs at those prices,
and how amounts are written. The fetching and caching of the catalog is `services.catalog`; the session's
spend and budget are `services.cost`.

**The price unit.** AiHubMix's documentation says the catalog's prices are USD per 1K tokens, but its own
MCP server computes `tokens × price / 1e6`, another client reads them per 1M, and the published example (a
flash model at 1.5 in / 7.5 out) only makes sense per 1M. So prices are taken per `PRICE_UNIT_TOKENS`
(1M) tokens, in this one constant, shown "per 1M tokens" in `%aihubmix models` (a user can compare them
with the website), and every cost is labelled an estimate: `≈ $0.0012`, `< $0.0001`.

**A cost** (`cost_of`): input tokens at the input price, cached input tokens at `cache_read` when the
model has one, output tokens (reasoning included, as the API counts them) at the output price. None when
the model has no price or the answer no usage. `cache_write` is not used: the usage the API returns does
not say how many tokens were written to a cache.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ASSUMED_OUTPUT_TOKENS",
    "CatalogError",
    "FEATURES",
    "MARKDOWN_DOLLAR",
    "MODALITIES",
    "ModelInfo",
    "PRICE_UNIT_TOKENS",
    "SMALLEST_SHOWN",
    "cost_of",
    "estimate_tokens",
    "find_model",
    "format_budget",
    "format_cost",
    "format_price",
    "format_usd",
    "markdown_dollars",
    "parse_catalog",
    "parse_model",
    "shorten",
]

FEATURES = ("thinking", "tools", "function_calling", "web", "deepsearch", "long_context", "structured_outputs")

MODALITIES = ("text", "image", "audio", "video", "pdf")

_TOOLS = frozenset({"tools", "function_calling"})  # uneven metadata: either one means tool calls work

_SUFFIXES = ("-nothink", "-think", "-search")  # routing suffixes that AiHubMix adds to a model id

class CatalogError(Exception):
    """The catalog could not be fetched or read; the message is one line, without the body."""

# -- one model ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelInfo:
    """What the catalog says about one model. Prices are USD per `_cost.PRICE_UNIT_TOKENS` tokens (1M),
    None when the catalog gives none; empty `features` / `input_modalities` mean "not listed"."""

    model_id: str
    description: str = ""
    types: tuple[str, ...] = ()
    features: frozenset[str] = frozenset()
    input_modalities: frozenset[str] = frozenset()
    max_output: int | None = None
    context_length: int | None = None
    input_price: float | None = None
    output_price: float | None = None
    cache_read_price: float | None = None
    cache_write_price: float | None = None

    @property
    def priced(self) -> bool:
        """Both the input and the output price are known (so a cost can be computed)."""
        return self.input_price is not None and self.output_price is not None

    @property
    def free(self) -> bool:
        return self.priced and self.input_price == 0 and self.output_price == 0

    @property
    def reasoning(self) -> bool:
        return "thinking" in self.features

    @property
    def vision(self) -> bool:
        return "image" in self.input_modalities

    @property
    def tools(self) -> bool:
        return bool(self.features & _TOOLS)

    def has_feature(self, name: str) -> bool:
        """`tools` and `function_calling` stand for each other."""
        return bool(self.features & _TOOLS) if name in _TOOLS else name in self.features

    @property
    def badges(self) -> tuple[str, ...]:
        """Short labels for a model picker: reasoning, vision, tools, free."""
        return tuple(name for name, present in (("reasoning", self.reasoning), ("vision", self.vision),
                                                 ("tools", self.tools), ("free", self.free)) if present)

def parse_model(item: object) -> ModelInfo | None:
    """One catalog entry, or None if it has no usable `model_id` (anything else may be missing)."""
    if not isinstance(item, Mapping):
        return None
    model_id = item.get("model_id", item.get("id"))
    if not isinstance(model_id, str) or not model_id.strip():
        return None
    pricing = item.get("pricing")
    pricing = pricing if isinstance(pricing, Mapping) else {}
    description = item.get("desc", item.get("description"))
    return ModelInfo(
        model_id=model_id.strip(),
        description=description.strip() if isinstance(description, str) else "",
        types=tuple(sorted(_names(item.get("types", item.get("type"))))),
        features=_names(item.get("features")),
        input_modalities=_names(item.get("input_modalities", item.get("modalities"))),
        max_output=_count(item.get("max_output")),
        context_length=_count(item.get("context_length")),
        input_price=_number(pricing.get("input")),
        output_price=_number(pricing.get("output")),
        cache_read_price=_number(pricing.get("cache_read")),
        cache_write_price=_number(pricing.get("cache_write")),
    )

def parse_catalog(body: object) -> dict[str, ModelInfo]:
    """`{model_id: ModelInfo}` from the catalog's JSON; CatalogError if it is not a catalog."""
    if isinstance(body, Mapping):
        if body.get("success") is False or (body.get("error") and "data" not in body):
            message = body.get("message") or body.get("error") or "no reason given"
            if isinstance(message, Mapping):
                message = message.get("message") or "no reason given"
            raise CatalogError(f"the catalog answered success: false ({shorten(str(message))})")
        data = body.get("data")
    else:
        data = body  # a bare list of entries is clear enough
    if not isinstance(data, list):
        raise CatalogError(f"unexpected shape: no `data` list (got {type(data).__name__})")
    models: dict[str, ModelInfo] = {}
    for item in data:
        info = parse_model(item)
        if info is not None and info.model_id not in models:
            models[info.model_id] = info
    if data and not models:
        raise CatalogError("unexpected shape: no entry has a model_id")
    return models

def _number(value: object) -> float | None:
    """A non-negative finite number from a number or a numeric string; None otherwise."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        text = value.strip().replace(",", "").replace("_", "").lstrip("$").strip()
        scale = 1.0
        if text[-1:] in ("k", "K", "m", "M"):
            scale = 1_000.0 if text[-1] in "kK" else 1_000_000.0
            text = text[:-1]
        try:
            number = float(text) * scale
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) and number >= 0 else None

def _count(value: object) -> int | None:
    number = _number(value)
    return int(number) if number is not None and number >= 1 else None

def _names(value: object) -> frozenset[str]:
    """Lower-case names from "a,b, c", ["a", "b"] or None."""
    if isinstance(value, str):
        pieces: Iterable = re.split(r"[,;|]", value)
    elif isinstance(value, (list, tuple, set, frozenset)):
        pieces = (piece for piece in value if isinstance(piece, str))
    else:
        return frozenset()
    return frozenset(piece.strip().lower() for piece in pieces if piece.strip())

def shorten(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text[:limit] + ("…" if len(text) > limit else "")

def find_model(models: Mapping[str, ModelInfo], model: str) -> ModelInfo | None:
    """The entry for `model`: exact id, else case-insensitive, else without a -think/-nothink/-search
    suffix (AiHubMix routes those to the same model, priced the same)."""
    if not model:
        return None
    info = models.get(model)
    if info is not None:
        return info
    lowered = model.lower()
    for candidate in (lowered, *(lowered[: -len(s)] for s in _SUFFIXES if lowered.endswith(s))):
        for model_id, info in models.items():
            if model_id.lower() == candidate:
                return info
    return None

# -- what a cell asks for -----------------------------------------------------------------------------------
_NON_ASCII = re.compile(r"[^\x00-\x7f]")

def estimate_tokens(value: object) -> int:
    """Tokens in the text of a prompt, messages or input items, estimated without a tokenizer: about
    4 characters a token for ASCII text and 1 per other character (CJK), plus 4 per message. Images are
    not counted."""
    texts: list[str] = []
    messages = _collect(value, texts)
    characters = sum(len(text) for text in texts)
    others = sum(len(_NON_ASCII.findall(text)) for text in texts)
    return math.ceil((characters - others) / 4) + others + 4 * messages

def _collect(value: object, texts: list[str]) -> int:
    """Append the strings a request's content holds; return how many messages there were."""
    if isinstance(value, str):
        texts.append(value)
        return 1
    count = 0
    if isinstance(value, list):
        for item in value:
            if isinstance(item, Mapping):
                if item.get("type") in ("image_url", "input_image"):
                    continue
                for key in ("content", "text", "output", "arguments"):
                    if key in item:
                        _collect(item[key], texts)
                count += 1 if "role" in item or item.get("type") in ("message", "function_call_output") else 0
            elif isinstance(item, str):
                texts.append(item)
    return count


PRICE_UNIT_TOKENS = 1_000_000  # the catalog's prices are USD per this many tokens (see the module docstring)


ASSUMED_OUTPUT_TOKENS = 500  # an estimate's answer length per item when no max_tokens says otherwise


SMALLEST_SHOWN = 0.0001  # USD; anything above zero and below this is shown as "< $0.0001"


# -- one answer -----------------------------------------------------------------------------------------------
def cost_of(usage: Any, info: ModelInfo | None) -> float | None:
    """USD for `usage` (a Usage) at `info`'s prices, or None when either is missing."""
    if usage is None or info is None or not info.priced:
        return None
    cached = max(0, min(usage.cached_tokens, usage.input_tokens))
    if info.cache_read_price is not None:
        input_cost = (usage.input_tokens - cached) * info.input_price + cached * info.cache_read_price
    else:
        input_cost = usage.input_tokens * info.input_price
    return (input_cost + usage.output_tokens * info.output_price) / PRICE_UNIT_TOKENS


def format_usd(usd: float) -> str:
    """A dollar amount without the estimate sign: $0.0012, $1.23, $0."""
    if usd == 0:
        return "$0"
    if usd < SMALLEST_SHOWN:
        return f"${usd:.6f}".rstrip("0")
    if usd < 1:
        return f"${usd:.4f}"
    return f"${usd:,.2f}"


def format_budget(usd: float) -> str:
    """A budget, an amount the user chose: $0.50, $5.00 (more digits only below a cent)."""
    return f"${usd:,.2f}" if usd >= 0.01 else format_usd(usd)


def format_cost(usd: float | None) -> str:
    """A cost labelled as an estimate: `≈ $0.0012`, `< $0.0001`, `≈ $0`; "" when unknown."""
    if usd is None:
        return ""
    if 0 < usd < SMALLEST_SHOWN:
        return "< $0.0001"
    return f"≈ {format_usd(usd)}"


def format_price(price: float | None) -> str:
    """A catalog price for a table: `$0.15`, `free`, `—` when unknown."""
    if price is None:
        return "—"
    if price == 0:
        return "free"
    return f"${price:,.4f}".rstrip("0").rstrip(".") if price < 0.01 else f"${price:,.2f}"


MARKDOWN_DOLLAR = "<span>&#36;</span>"


def markdown_dollars(text: str) -> str:
    """Every `$` as `<span>&#36;</span>`, for Markdown and HTML output (the one place money is made safe).

    Jupyter reads two dollar signs in one output (a table, a footer with a budget) as LaTeX math. An entity
    (`&#36;`) or a backslash (`\\$`) alone does not stop it: JupyterLab and Notebook 7 hand the rendered
    HTML to MathJax, which finds the decoded `$` pairs in the page's text. MathJax only pairs delimiters
    within one run of text, so a `$` alone in its own element is plain text; the entity keeps it from a
    Markdown viewer that looks for math in the source (GitHub). Not for text inside a code span."""
    return text.replace("$", MARKDOWN_DOLLAR)
