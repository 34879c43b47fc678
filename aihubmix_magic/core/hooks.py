"""Where the layers above plug into the core, so that the core imports nothing above it.

The core knows what an answer is but not where prices come from (the model catalog, fetched over the
network by `services.catalog`), nor how to ask a person whether a tool may run (a widget or a terminal
question, `notebook.approval`). Those are functions that the composition root, `aihubmix_magic/__init__.py`,
installs here when the package is imported; each one imports its layer only when first called, so nothing
heavy loads with the package. Code that uses the core without the package root (a test of the core alone)
gets the defaults below: no price, and nobody to ask.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["answer_cost", "default_asker", "install"]


def _no_price(response: Any) -> float | None:
    return None


def _nobody() -> Callable[[Any, str], str] | None:
    return None


# `Response.cost`: response -> USD, or None when its price is unknown
answer_cost: Callable[[Any], float | None] = _no_price
# who answers "may this tool call run?" where a caller gave no `approve`: a function (call, signature) ->
# "run" | "skip" | "always", or None when nobody can answer (the call is skipped)
default_asker: Callable[[], Callable[[Any, str], str] | None] = _nobody


def install(*, cost: Callable[[Any], float | None], asker: Callable[[], Any]) -> None:
    global answer_cost, default_asker
    answer_cost = cost
    default_asker = asker
