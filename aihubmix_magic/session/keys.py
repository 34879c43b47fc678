"""Keys where people keep them: the system keyring (`%aihubmix key --save`) and Colab's Secrets.

Where the key comes from, first found wins:

1. `AIHUBMIX_API_KEY` in the environment (read when the package is imported);
2. `%aihubmix key` (or the panel) in this kernel;
3. Colab's Secrets (`google.colab.userdata.get("AIHUBMIX_API_KEY")`), when running in Colab;
4. the system keyring (the `keyring` library, the optional extra `aihubmix-magic[keyring]`), under the
   service `aihubmix-magic` and the name `AIHUBMIX_API_KEY`: `%aihubmix key --save` puts it there.

3 and 4 are looked up once per kernel, when a call first needs a key (`Settings.usable`), `%aihubmix
config` or `%aihubmix demo auto` asks, never at import or `%load_ext`. `%aihubmix config` says where the
key came from (`Settings.key_source`), masked as always. A keyring that fails (no backend, a locked
store) is the same as no stored key; the key is never written anywhere else.
"""

from __future__ import annotations

from typing import Any

__all__ = ["KEY_NAME", "SERVICE", "forget_key", "keyring_backend", "save_key", "stored_key"]

SERVICE = "aihubmix-magic"
KEY_NAME = "AIHUBMIX_API_KEY"
MISSING_HINT = ("`%aihubmix key --save` needs the keyring library: pip install 'aihubmix-magic[keyring]' "
                "(or set AIHUBMIX_API_KEY in the environment).")


class KeyringUnavailableError(RuntimeError):
    """The keyring library is not installed, or has no usable backend; the message says what to do."""


def _keyring() -> Any:
    try:
        import keyring
    except ImportError:
        raise KeyringUnavailableError(MISSING_HINT) from None
    return keyring


def keyring_backend() -> str:
    """The keyring backend's name, e.g. "PlaintextKeyring" (for messages)."""
    return type(_keyring().get_keyring()).__name__


def save_key(key: str) -> str:
    """Store `key` in the system keyring; returns the backend's name. KeyringUnavailableError otherwise."""
    keyring = _keyring()
    try:
        keyring.set_password(SERVICE, KEY_NAME, key)
    except Exception as exc:  # keyring.errors.* (no backend, a locked store) and whatever a backend raises
        raise KeyringUnavailableError(f"The system keyring did not take the key ({type(exc).__name__}: "
                                      f"{_without(str(exc), key)}).") from None
    return keyring_backend()


def forget_key() -> bool:
    """Delete the stored key from the keyring; True if there was one."""
    keyring = _keyring()
    try:
        if keyring.get_password(SERVICE, KEY_NAME) is None:
            return False
        keyring.delete_password(SERVICE, KEY_NAME)
    except Exception as exc:
        raise KeyringUnavailableError(f"The system keyring failed ({type(exc).__name__}).") from None
    return True


def stored_key() -> tuple[str | None, str | None]:
    """(key, where it came from) from Colab's Secrets or the system keyring; (None, None) if neither has
    one. Never raises."""
    key = _from_colab()
    if key:
        return key, "Colab Secrets (AIHUBMIX_API_KEY)"
    try:
        import keyring
    except ImportError:
        return None, None
    try:
        key = keyring.get_password(SERVICE, KEY_NAME)
    except Exception:  # no usable backend, a locked store: as if nothing were stored
        return None, None
    if key and key.strip():
        return key.strip(), f"the system keyring ({type(keyring.get_keyring()).__name__})"
    return None, None


def _from_colab() -> str | None:
    import importlib.util

    try:
        if importlib.util.find_spec("google.colab") is None:
            return None
        from google.colab import userdata  # type: ignore[import-not-found]

        key = userdata.get(KEY_NAME)
    except Exception:  # not in Colab, no such secret, or the notebook was not given access to it
        return None
    return key.strip() if isinstance(key, str) and key.strip() else None


def _without(text: str, key: str) -> str:
    return text.replace(key, "…") if key else text
