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

from .core import hooks as _hooks
from .core.version import __version__  # one place for it; pyproject.toml reads it there

if TYPE_CHECKING:  # what `__getattr__` loads on first use, for type checkers and readers
    from .core.exceptions import (
        AihubmixError,
        AnswerTooLargeError,
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
        McpError,
        MissingKeyError,
        ModelNotFoundError,
        NotFoundError,
        PermissionDeniedError,
        RateLimitError,
        StreamInterruptedError,
        ToolDefinitionError,
    )
    from .core.request import Request
    from .core.response import Response
    from .core.tools import Tool
    from .core.types import Citation, Step, ToolCall, ToolRun, Usage
    from .net.client import Client
    from .notebook.batch import batch
    from .notebook.compare import Comparison
    from .services.batch import BatchResults, BatchSummary
    from .services.batchjob import BatchJob
    from .services.catalog import ModelInfo
    from .services.cost import CostEstimate
    from .session.log import logs
    from .session.mcp import mcp_tools
    from .session.settings import Settings, settings
    from .session.state import history, last_response


__all__ = [
    "APIConnectionError",
    "APIResponseError",
    "APIStatusError",
    "APITimeoutError",
    "AihubmixError",
    "AnswerTooLargeError",
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
    "McpError",
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
    "logs",
    "mcp_tools",
    "model_info",
    "panel",
    "settings",
    "unload_ipython_extension",
]


def _services() -> None:
    """Load the settings, which pass the services what they need of them (the catalog's URL and cache, the
    budgets: `session.settings._configure_services`) before a service is used from here."""
    from .session import settings  # noqa: F401


def _answer_cost(response: Any) -> float | None:
    _services()
    from .services.catalog import PROMPT_WAIT
    from .services.cost import response_cost

    return response_cost(response, PROMPT_WAIT)


def _default_asker() -> Any:
    from .notebook.approval import default_asker

    return default_asker()


# the composition root: what the core asks of the layers above it (see core/hooks.py)
_hooks.install(cost=_answer_cost, asker=_default_asker)

_LAYERS = ("core", "net", "store", "services", "session", "notebook", "simulator")

# name -> the module that defines it (loaded on first access)
_EXPORTS = {
    **dict.fromkeys(("BatchResults", "BatchSummary"), "services.batch"),
    "BatchJob": "services.batchjob",
    "batch": "notebook.batch",
    "Client": "net.client",
    "Comparison": "notebook.compare",
    "CostEstimate": "services.cost",
    "ModelInfo": "services.catalog",
    **dict.fromkeys((
        "APIConnectionError", "APIResponseError", "APIStatusError", "APITimeoutError", "AihubmixError",
        "AnswerTooLargeError", "AuthenticationError", "BadRequestError", "BatchInputError", "BudgetExceededError", "ConfigurationError",
        "InternalServerError",
        "InvalidRequestError", "McpError", "MissingKeyError", "ModelNotFoundError", "NotFoundError", "PermissionDeniedError",
        "RateLimitError", "StreamInterruptedError", "ToolDefinitionError"), "core.exceptions"),
    "logs": "session.log",
    "mcp_tools": "session.mcp",
    "Request": "core.request",
    "Response": "core.response",
    **dict.fromkeys(("history", "last_response"), "session.state"),
    **dict.fromkeys(("Settings", "settings"), "session.settings"),
    "Tool": "core.tools",
    **dict.fromkeys(("Citation", "Step", "ToolCall", "ToolRun", "Usage"), "core.types"),
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is not None:
        value = getattr(importlib.import_module(f".{module}", __name__), name)
        globals()[name] = value  # once loaded, an ordinary attribute
        return value
    if name in _LAYERS:  # a subpackage, e.g. aihubmix_magic.session (its modules are imported by name)
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({name for name in globals() if name.startswith("_")} | set(__all__))


def export_notebook(responses: Any, path: Any) -> Any:
    """Write `responses` (e.g. `history()`) to `path` as a notebook (nbformat v4) that reproduces them:
    per answer a `%%aihubmix` cell with its prompt, the answer as Markdown output, model, usage and
    timings in the cell metadata, never the key. Returns the path written."""
    from .notebook.export import export_notebook as export

    return export(responses, path)


def model_info(model: str, wait: float = 10.0) -> ModelInfo | None:
    """What AiHubMix's public model catalog says about `model` (prices per 1M tokens, context, max output,
    features, input modalities), or None if the catalog is unavailable or does not list it. The catalog
    is fetched on first use (waiting at most `wait` seconds) and kept on disk for a day."""
    _services()
    from .services.catalog import lookup

    return lookup(model, wait)


_loaded: Any = None


def panel() -> Any:
    """The control panel (an ipywidgets VBox) tied to `settings`: display it, or use `%aihubmix panel`."""
    from .notebook.widgets import Panel

    return Panel()


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext aihubmix_magic`: register the magics and the one-line display of our errors."""
    global _loaded
    from .core.exceptions import AihubmixError
    from .notebook.magics import AihubmixMagics, show_error
    from .session.state import last_response

    if _loaded is not None:
        _loaded.unlink()
    _loaded = AihubmixMagics(shell=ipython)
    ipython.register_magics(_loaded)
    ipython.user_ns.setdefault("last_response", last_response)
    if not ipython.custom_exceptions or ipython.custom_exceptions == (AihubmixError,):
        ipython.set_custom_exc((AihubmixError,), show_error)


def unload_ipython_extension(ipython: Any) -> None:
    global _loaded
    from .core.exceptions import AihubmixError

    if ipython.custom_exceptions == (AihubmixError,):
        ipython.set_custom_exc((), None)
    if _loaded is not None:
        _loaded.unlink()
        _loaded = None
