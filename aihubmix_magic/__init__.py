"""aihubmix-magic: prompt any model on AiHubMix from a Jupyter cell.

    %load_ext aihubmix_magic
    %aihubmix key                      # or AIHUBMIX_API_KEY in the environment; `%aihubmix demo` needs none

    %%aihubmix -m gpt-4o-mini
    Explain what a p-value is, in three bullet points.

    from aihubmix_magic import last_response
    last_response().text

Importing the package is light: httpx, asyncio, ipywidgets, nbformat and IPython's magic machinery load only
when a cell (or a name exported here) first needs them: the names are loaded by the module `__getattr__`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what `__getattr__` loads on first use, for type checkers and readers
    from ._batch import BatchResults, BatchSummary, batch
    from ._batchjob import BatchJob
    from ._catalog import ModelInfo
    from ._client import Client
    from ._compare import Comparison
    from ._cost import CostEstimate
    from ._exceptions import (
        AihubmixError,
        APIConnectionError,
        APIResponseError,
        APIStatusError,
        APITimeoutError,
        AuthenticationError,
        BadRequestError,
        BatchInputError,
        BudgetExceededError,
        ConfigurationError,
        InternalServerError,
        InvalidRequestError,
        MissingKeyError,
        ModelNotFoundError,
        NotFoundError,
        PermissionDeniedError,
        RateLimitError,
        StreamInterruptedError,
        ToolDefinitionError,
    )
    from ._request import Request
    from ._response import Response
    from ._session import history, last_response
    from ._settings import Settings, settings
    from ._tools import Tool
    from ._types import Citation, Step, ToolCall, ToolRun, Usage

__version__ = "0.1.0"

__all__ = [
    "APIConnectionError",
    "APIResponseError",
    "APIStatusError",
    "APITimeoutError",
    "AihubmixError",
    "AuthenticationError",
    "BadRequestError",
    "BatchInputError",
    "BatchJob",
    "BatchResults",
    "BatchSummary",
    "BudgetExceededError",
    "Citation",
    "Client",
    "Comparison",
    "ConfigurationError",
    "CostEstimate",
    "InternalServerError",
    "InvalidRequestError",
    "MissingKeyError",
    "ModelInfo",
    "ModelNotFoundError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "Request",
    "Response",
    "Settings",
    "Step",
    "StreamInterruptedError",
    "Tool",
    "ToolCall",
    "ToolDefinitionError",
    "ToolRun",
    "Usage",
    "__version__",
    "batch",
    "export_notebook",
    "history",
    "last_response",
    "load_ipython_extension",
    "model_info",
    "panel",
    "settings",
    "unload_ipython_extension",
]


# name -> the private module that defines it (loaded on first access)
_EXPORTS = {
    **dict.fromkeys(("BatchResults", "BatchSummary", "batch"), "_batch"),
    "BatchJob": "_batchjob",
    "Client": "_client",
    "Comparison": "_compare",
    "CostEstimate": "_cost",
    "ModelInfo": "_catalog",
    **dict.fromkeys((
        "APIConnectionError", "APIResponseError", "APIStatusError", "APITimeoutError", "AihubmixError",
        "AuthenticationError", "BadRequestError", "BatchInputError", "BudgetExceededError", "ConfigurationError",
        "InternalServerError",
        "InvalidRequestError", "MissingKeyError", "ModelNotFoundError", "NotFoundError", "PermissionDeniedError",
        "RateLimitError", "StreamInterruptedError", "ToolDefinitionError"), "_exceptions"),
    "Request": "_request",
    "Response": "_response",
    **dict.fromkeys(("history", "last_response"), "_session"),
    **dict.fromkeys(("Settings", "settings"), "_settings"),
    "Tool": "_tools",
    **dict.fromkeys(("Citation", "Step", "ToolCall", "ToolRun", "Usage"), "_types"),
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is not None:
        value = getattr(importlib.import_module(f".{module}", __name__), name)
        globals()[name] = value  # once loaded, an ordinary attribute
        return value
    if name.startswith("_") and not name.startswith("__"):  # a private module, e.g. aihubmix_magic._session
        try:
            return importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError:
            pass
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({name for name in globals() if name.startswith("_")} | set(__all__))


def export_notebook(responses: Any, path: Any) -> Any:
    """Write `responses` (e.g. `history()`) to `path` as a notebook (nbformat v4) that reproduces them:
    per answer a `%%aihubmix` cell with its prompt, the answer as Markdown output, model, usage and
    timings in the cell metadata, never the key. Returns the path written."""
    from ._notebook import export_notebook as export

    return export(responses, path)


def model_info(model: str, wait: float = 10.0) -> ModelInfo | None:
    """What AiHubMix's public model catalog says about `model` (prices per 1M tokens, context, max output,
    features, input modalities), or None if the catalog is unavailable or does not list it. The catalog
    is fetched on first use (waiting at most `wait` seconds) and kept on disk for a day."""
    from ._catalog import lookup

    return lookup(model, wait)


_loaded: Any = None


def panel() -> Any:
    """The control panel (an ipywidgets VBox) tied to `settings`: display it, or use `%aihubmix panel`."""
    from ._widgets import Panel

    return Panel()


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext aihubmix_magic`: register the magics and the one-line display of our errors."""
    global _loaded
    from ._exceptions import AihubmixError
    from ._magics import AihubmixMagics, show_error
    from ._session import last_response

    if _loaded is not None:
        _loaded.unlink()
    _loaded = AihubmixMagics(shell=ipython)
    ipython.register_magics(_loaded)
    ipython.user_ns.setdefault("last_response", last_response)
    if not ipython.custom_exceptions or ipython.custom_exceptions == (AihubmixError,):
        ipython.set_custom_exc((AihubmixError,), show_error)


def unload_ipython_extension(ipython: Any) -> None:
    global _loaded
    from ._exceptions import AihubmixError

    if ipython.custom_exceptions == (AihubmixError,):
        ipython.set_custom_exc((), None)
    if _loaded is not None:
        _loaded.unlink()
        _loaded = None
