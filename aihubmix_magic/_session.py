"""The kernel session's state: the shared Client and the answers received so far, in order."""

from __future__ import annotations

from ._client import Client
from ._response import Response
from ._settings import Settings, settings

__all__ = ["ask", "client", "history", "last_response", "record", "response_cache"]

_history: list = []
_client: Client | None = None


def client(current: Settings = settings, *, cache: bool = False) -> Client:
    """The session's Client, kept across cells (one connection pool), synced with the settings.
    `cache`: use the response cache for this call even if the settings have it off (`--cache`)."""
    global _client
    current.usable()
    if _client is None:
        _client = Client(current.api_key, current.base_url, timeout=current.timeout,
                         connect_timeout=current.connect_timeout, max_retries=current.max_retries)
    _client.api_key = current.api_key
    if _client.base_url != current.base_url:
        _client.base_url = current.base_url
    if (_client.timeout.read, _client.timeout.connect) != (current.timeout, current.connect_timeout):
        _client.set_timeout(current.timeout, current.connect_timeout)
    _client.max_retries = current.max_retries
    _client.app_code = current.app_code or None
    _client.cache = response_cache(current, force=cache)
    return _client


def response_cache(current: Settings = settings, *, force: bool = False):
    """The ResponseCache the settings name, or None while the cache is off (unless `force`)."""
    if not (current.cache or force):
        return None
    from ._cache import cache_for

    return cache_for(current.cache_path or None)


def ask(client: Client, prompt, params: dict, *, model: str | None = None, on_retry=None, **extra) -> Response:
    """Send a cell's prompt with its resolved settings (`params`) to the endpoint they name."""
    kwargs = dict(model=model or params["model"], stream=params["stream"], temperature=params["temperature"],
                  top_p=params["top_p"], reasoning_effort=params["reasoning_effort"], on_retry=on_retry, **extra)
    if params["endpoint"] == "chat":
        return client.chat(prompt, system=params["system"] or None, max_tokens=params["max_tokens"], **kwargs)
    return client.respond(prompt, instructions=params["system"] or None, max_output_tokens=params["max_tokens"],
                          **kwargs)


def record(response: Response) -> Response:
    _history.append(response)
    return response


def history() -> list:
    """Every answer of this session, oldest first."""
    return list(_history)


def last_response():
    """The newest answer (a Response), or None before the first one."""
    return _history[-1] if _history else None
