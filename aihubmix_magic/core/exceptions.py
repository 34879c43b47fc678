"""The errors aihubmix_magic raises. Every message is one line a notebook user can act on.

    AihubmixError
    ├── ConfigurationError           a setting is unusable (a base URL that is not a URL, …)
    │   ├── MissingKeyError          no API key is set
    │   ├── InvalidRequestError      a request field that cannot work (a temperature of 3, …; also a ValueError)
    │   ├── InvalidSettingError      `settings.x = value` refused (also a TraitError; in _settings.py)
    │   └── McpError                 an MCP server that cannot be used: unknown name, a bad mcp.json, no `mcp`
    │                                SDK, a server that does not start or answer in time
    ├── BatchInputError              batch() input it cannot use (also a ValueError); nothing was sent
    ├── BudgetExceededError          this session's estimated spend reached `settings.budget`; nothing was sent
    ├── ToolDefinitionError          a tool that cannot be described as a JSON schema (also a ValueError)
    ├── APIConnectionError           the server could not be reached, or the connection broke
    │   └── APITimeoutError          connect or read timed out
    ├── APIStatusError               the server answered with an HTTP error status
    │   ├── BadRequestError          400
    │   ├── AuthenticationError      401: the key was rejected
    │   ├── PermissionDeniedError    403: quota used up, or the key may not use this model
    │   ├── NotFoundError            404
    │   ├── ModelNotFoundError       400/404/503 that names an unknown model (with close ids)
    │   ├── RateLimitError           429
    │   └── InternalServerError      5xx
    ├── APIResponseError             a 2xx answer that is not an answer: an error body, `choices: null`,
    │   │                            a body that is not JSON (an HTML page from a proxy), JSON of the wrong
    │   │                            shape, an error event or `response.failed` in the middle of a stream
    │   └── AnswerTooLargeError      an answer longer than `settings.max_answer_bytes` once decoded (never retried)
    └── StreamInterruptedError       the user interrupted the kernel while an answer streamed

Errors raised by a request carry `.response`: the Response as far as it got (its partial text, status
"failed" or "cancelled"), which the magic also records in `history()`.

A key never appears in any of these messages: the client scrubs it from every text it quotes, and masks
it in every body it reads (a server that echoes it back cannot make us keep it).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AihubmixError",
    "AnswerTooLargeError",
    "BatchInputError",
    "BudgetExceededError",
    "APIConnectionError",
    "APIResponseError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ConfigurationError",
    "InternalServerError",
    "InvalidRequestError",
    "McpError",
    "MissingKeyError",
    "ModelNotFoundError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "StreamInterruptedError",
    "ToolDefinitionError",
]


class AihubmixError(Exception):
    """Base class: every error of this package is one of these."""

    # the Response (core.response) as far as it got, when a request was made; typed Any here so that the
    # errors, which the Response itself raises, import nothing of it
    response: Any = None


class BatchInputError(AihubmixError, ValueError):
    """batch() was given input it cannot use (no prompts, a template naming a missing column, …);
    nothing was sent."""


class BudgetExceededError(AihubmixError):
    """This session's estimated spend has reached `settings.budget` (`%aihubmix budget`); nothing was sent.
    `budget` and `spent` are in USD (the spend is an estimate from the model catalog's prices)."""

    def __init__(self, message: str, *, budget: float, spent: float) -> None:
        super().__init__(message)
        self.budget = budget
        self.spent = spent


class ToolDefinitionError(AihubmixError, ValueError):
    """A function given as a tool cannot be described (no name, `*args`, a type with no JSON schema, …);
    the message names it. Nothing was sent."""


class ConfigurationError(AihubmixError):
    """A setting cannot work; nothing was sent."""


class MissingKeyError(ConfigurationError):
    def __init__(self, message: str | None = None) -> None:
        super().__init__(
            message
            or "No AiHubMix API key: run `%aihubmix key` (or set AIHUBMIX_API_KEY before starting Jupyter), "
            "or `%aihubmix demo` to try the built-in simulator."
        )


class InvalidRequestError(ConfigurationError, ValueError):
    """A request field has a value it cannot take (checked before anything is sent); `field` names it."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.reason = message


class McpError(ConfigurationError):
    """An MCP server (`--mcp NAME`, `batch(mcp=[...])`) cannot be used: no server of that name in mcp.json,
    an mcp.json that cannot be read, the `mcp` SDK not installed, or a server that does not start or does
    not answer `initialize` / `tools/list` in time (the message quotes the end of its stderr). Nothing was
    sent to the model."""


class APIConnectionError(AihubmixError):
    """The request did not get an answer: connection refused, DNS, TLS, or the stream broke."""


class APITimeoutError(APIConnectionError):
    """Connecting or reading took longer than the configured timeout."""


class APIStatusError(AihubmixError):
    """The server answered with an HTTP error status.

    `status_code`, `body` (parsed JSON or text, at most 2,000 characters) and `server_message`
    (the message the server gave, trace id included) are kept for inspection.
    """

    def __init__(self, message: str, *, status_code: int, body: object = None, server_message: str = "") -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body = body
        self.server_message = server_message


class BadRequestError(APIStatusError):
    pass


class AuthenticationError(APIStatusError):
    pass


class PermissionDeniedError(APIStatusError):
    pass


class NotFoundError(APIStatusError):
    pass


class ModelNotFoundError(APIStatusError):
    """The server does not know the model (or the key may not use it); `suggestions` holds close ids."""

    def __init__(self, message: str, *, model: str, suggestions: list[str], **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.model = model
        self.suggestions = suggestions


class RateLimitError(APIStatusError):
    pass


class InternalServerError(APIStatusError):
    pass


class APIResponseError(AihubmixError):
    """A successful HTTP status whose body is not a usable answer."""

    def __init__(self, message: str, *, body: object = None) -> None:
        super().__init__(message)
        self.body = body


class AnswerTooLargeError(APIResponseError):
    """An answer (its body once decoded, or a whole stream) is longer than `settings.max_answer_bytes`: it
    was dropped as it came, so memory stays bounded; it is never retried. `limit` is the cap in bytes."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"The answer is longer than settings.max_answer_bytes ({limit:,} bytes) once decoded: "
                         "it was dropped and not retried. Raise the setting if answers this long are expected.")
        self.limit = limit


class StreamInterruptedError(AihubmixError):
    """The kernel was interrupted during a stream; what had arrived is kept."""
