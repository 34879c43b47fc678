"""The kernel session's state, in one object: the answers so far, the conversation threads, demo mode,
and the shared client (one connection pool, kept across cells).

The extension owns it (`AihubmixMagics.session`; `%load_ext` creates it, `%reload_ext` keeps it). Code that
runs without the extension (a script calling `batch()`, `last_response()` before `%load_ext`) gets the
same object from `current()`, made on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .settings import Settings, settings

if TYPE_CHECKING:
    from ..net.client import Client
    from ..services.threads import Threads
    from ..simulator import Simulator
    from ..store.cache import ResponseCache
    from ..store.journal import Journal

__all__ = ["Session", "client", "current", "history", "last_response", "response_cache"]


class Session:
    """What lives as long as a kernel: history, threads, demo mode, the shared Client."""

    def __init__(self, current_settings: Settings = settings) -> None:
        self.settings = current_settings
        self.history: list[Any] = []  # Response and Comparison objects, oldest first
        self._threads: Threads | None = None
        self.demo_server: Simulator | None = None  # the simulator demo mode answers from (one per kernel)
        self.demo_saved: tuple[str, str | None] | None = None  # (base URL, key) to go back to after demo mode
        self.demo_saved_source: str | None = None  # where that key came from
        self._client: Client | None = None
        # the MCP servers started by --mcp (`session.mcp.McpServers`, which reads this Session: typed Any so
        # that the state imports nothing of it), one session each, kept for the kernel's life
        self.mcp: Any = None

    @property
    def threads(self) -> Threads:
        """The conversation threads by name (made when a cell first needs them)."""
        if self._threads is None:
            from ..services.threads import Threads
            from .threadlog import end_thread, thread_turns

            self._threads = Threads(history=thread_turns, end=end_thread)
        return self._threads

    def client(self, *, cache: bool = False) -> Client:
        """The shared Client, synced with the settings. `cache`: use the response cache for this call even
        if the settings have it off (`--cache`)."""
        current = self.settings
        current.usable()
        if self._client is None:
            from ..net.client import Client

            self._client = Client(current.api_key, current.base_url, timeout=current.timeout,
                                  connect_timeout=current.connect_timeout, max_retries=current.max_retries)
        client = self._client
        client.api_key = current.api_key
        if client.base_url != current.base_url:
            client.base_url = current.base_url
        if (client.timeout.read, client.timeout.connect) != (current.timeout, current.connect_timeout):
            client.set_timeout(current.timeout, current.connect_timeout)
        client.max_retries = current.max_retries
        client.max_answer_bytes = current.max_answer_bytes
        client.app_code = current.app_code or None
        client.cache = self.response_cache(force=cache)
        return client

    def response_cache(self, *, force: bool = False) -> ResponseCache | None:
        """The ResponseCache the settings name, or None while the cache is off (unless `force`)."""
        if not (self.settings.cache or force):
            return None
        from ..store.cache import cache_for

        return cache_for(self.settings.cache_path or None)

    def journal(self) -> Journal:
        """The batch journal, next to the response cache's file (whether the cache is on or not)."""
        from ..store.journal import journal_for

        return journal_for(self.settings.cache_path or None)

    def keys(self) -> list[str]:
        """Every API key this session holds: the one in use, and a real one kept aside in demo mode (what
        context blocks and saved prompts must never contain)."""
        saved = self.demo_saved[1] if self.demo_saved is not None else None
        return [key for key in (self.settings.api_key, saved) if key]

    def record(self, answer: Any) -> Any:
        self.history.append(answer)
        return answer

    def last_response(self) -> Any:
        return self.history[-1] if self.history else None


_current: Session | None = None


def current() -> Session:
    """The session of this kernel (the extension's, or one made on first use)."""
    global _current
    if _current is None:
        _current = Session()
    return _current


def client(*, cache: bool = False) -> Client:
    """The current session's shared Client."""
    return current().client(cache=cache)


def response_cache(*, force: bool = False) -> ResponseCache | None:
    return current().response_cache(force=force)


def history() -> list[Any]:
    """Every answer of this session, oldest first."""
    return list(current().history)


def last_response() -> Any:
    """The newest answer (a Response, or a Comparison after `--compare`), or None before the first one."""
    return current().last_response()
