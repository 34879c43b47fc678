"""aihubmix-magic: prompt any model on AiHubMix from a Jupyter cell.

    %load_ext aihubmix_magic
    %aihubmix key                      # or AIHUBMIX_API_KEY in the environment; `%aihubmix demo` needs none

    %%aihubmix -m gpt-4o-mini
    Explain what a p-value is, in three bullet points.

    from aihubmix_magic import last_response
    last_response().text

Importing the package is light: IPython's magic machinery, ipywidgets and nbformat load only when used.
"""

from ._batch import BatchResults, BatchSummary, batch
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
    MissingKeyError,
    ModelNotFoundError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    StreamInterruptedError,
)
from ._response import Response, ToolCall, Usage
from ._session import history, last_response
from ._settings import Settings, settings

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
    "BatchResults",
    "BatchSummary",
    "BudgetExceededError",
    "Client",
    "Comparison",
    "ConfigurationError",
    "CostEstimate",
    "InternalServerError",
    "MissingKeyError",
    "ModelInfo",
    "ModelNotFoundError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "Response",
    "Settings",
    "StreamInterruptedError",
    "ToolCall",
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


def export_notebook(responses, path):
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


_loaded = None


def panel():
    """The control panel (an ipywidgets VBox) tied to `settings`: display it, or use `%aihubmix panel`."""
    from ._widgets import Panel

    return Panel()


def load_ipython_extension(ipython) -> None:
    """`%load_ext aihubmix_magic`: register the magics and the one-line display of our errors."""
    global _loaded
    from ._magics import AihubmixMagics, show_error

    if _loaded is not None:
        _loaded.unlink()
    _loaded = AihubmixMagics(shell=ipython)
    ipython.register_magics(_loaded)
    ipython.user_ns.setdefault("last_response", last_response)
    if not ipython.custom_exceptions or ipython.custom_exceptions == (AihubmixError,):
        ipython.set_custom_exc((AihubmixError,), show_error)


def unload_ipython_extension(ipython) -> None:
    global _loaded
    if ipython.custom_exceptions == (AihubmixError,):
        ipython.set_custom_exc((), None)
    if _loaded is not None:
        _loaded.unlink()
        _loaded = None
