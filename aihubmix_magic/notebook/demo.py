"""Demo mode: point the session at the built-in simulator, and back. The simulator and the settings to go
back to are the session's (`Session.demo_server`, `Session.demo_saved`)."""

from __future__ import annotations

from ..session.state import Session

__all__ = ["DEMO_KEY", "set_user_key", "start", "stop"]

DEMO_KEY = "sk-demo-simulated-answers"
DEMO_DELAY = 0.02  # seconds between tokens: slow enough to see the answer stream, as with a real model


def start(session: Session) -> str:
    """Start the simulator (once per kernel) on a free loopback port and use it."""
    from ..simulator import Simulator

    settings = session.settings
    if session.demo_server is None:
        session.demo_server = Simulator(delay=DEMO_DELAY).start()
    if not settings.demo:
        session.demo_saved = (settings.base_url, settings.api_key)
        session.demo_saved_source = settings.key_source
    settings.base_url = session.demo_server.base_url
    settings.set_key(DEMO_KEY, source="demo mode (the built-in simulator)")
    settings.demo = True
    return (f"Demo mode: answers come from the built-in simulator at {session.demo_server.base_url}; they are "
            "simulated, not real model output. `%aihubmix demo off` goes back.")


def stop(session: Session) -> str:
    settings = session.settings
    if not settings.demo:
        return "Demo mode is not on."
    if session.demo_saved is not None:
        settings.base_url, key = session.demo_saved
        settings.set_key(key, source=session.demo_saved_source or "set in this kernel")
        session.demo_saved = None
    settings.demo = False
    return f"Demo mode off: using {settings.base_url}."


def set_user_key(session: Session, key: str, source: str = "entered in this kernel (`%aihubmix key`)") -> str:
    """Take a key the user entered. In demo mode it waits for `demo off` (answers stay simulated and the
    real key is not sent to the simulator); otherwise it is used at once."""
    from ..core.protocol import validate_key

    settings = session.settings
    checked = validate_key(key, source="%aihubmix key")  # refused before it is kept anywhere
    if settings.demo and session.demo_saved is not None:
        session.demo_saved = (session.demo_saved[0], checked)
        session.demo_saved_source = source
        return "Key kept for when demo mode is off; answers stay simulated until `%aihubmix demo off`."
    settings.set_key(checked, source=source)
    return f"Key set ({settings.masked_key()}); it stays in this kernel's memory only."
