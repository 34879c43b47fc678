"""Demo mode: point the session at the built-in simulator, and back."""

from __future__ import annotations

from ._settings import Settings

__all__ = ["set_user_key", "start", "stop"]

DEMO_KEY = "sk-demo-simulated-answers"
DEMO_DELAY = 0.02  # seconds between tokens: slow enough to see the answer stream, as with a real model
_server = None
_saved: tuple[str, str | None] | None = None


def start(settings: Settings) -> str:
    """Start the simulator (once per kernel) on a free loopback port and use it."""
    global _server, _saved
    from .simulator import Simulator

    if _server is None:
        _server = Simulator(delay=DEMO_DELAY).start()
    if not settings.demo:
        _saved = (settings.base_url, settings.api_key)
    settings.base_url = _server.base_url
    settings.set_key(DEMO_KEY)
    settings.demo = True
    return (f"Demo mode: answers come from the built-in simulator at {_server.base_url}; they are simulated, "
            "not real model output. `%aihubmix demo off` goes back.")


def stop(settings: Settings) -> str:
    global _saved
    if not settings.demo:
        return "Demo mode is not on."
    if _saved is not None:
        settings.base_url, key = _saved
        settings.set_key(key)
        _saved = None
    settings.demo = False
    return f"Demo mode off: using {settings.base_url}."


def set_user_key(settings: Settings, key: str) -> str:
    """Take a key the user entered. In demo mode it waits for `demo off` (answers stay simulated and the
    real key is not sent to the simulator); otherwise it is used at once."""
    global _saved
    if settings.demo and _saved is not None:
        _saved = (_saved[0], key.strip())
        return ("Key kept for when demo mode is off; answers stay simulated until `%aihubmix demo off`.")
    settings.set_key(key)
    return f"Key set ({settings.masked_key()}); it stays in this kernel's memory only."
