"""The settings the magic uses: one traitlets object, `aihubmix_magic.settings`.

Precedence, highest first: options on a `%%aihubmix` line (that cell only) > `%config AihubmixMagics.x`,
`%aihubmix use …`, the control panel or `settings.x = …` > the environment (AIHUBMIX_API_KEY,
AIHUBMIX_BASE_URL, AIHUBMIX_MODEL) > built-in defaults.

The API key is deliberately not a trait: traits are shown by `%config`, synced to widgets and saved in
widget state. It lives in a private attribute, and only `has_key` is public.
"""

from __future__ import annotations

import os

from traitlets import Bool, Enum, Float, HasTraits, Int, TraitError, Unicode, validate

from ..core.exceptions import ConfigurationError
from ..core.protocol import (
    DEFAULT_BASE_URL,
    ENDPOINTS,
    REASONING_EFFORTS,
    mask_key,
    validate_base_url,
    validate_header_value,
    validate_key,
)
from ..net.bodies import DEFAULT_MAX_ANSWER_BYTES

__all__ = ["ENDPOINTS", "InvalidSettingError", "REASONING_EFFORTS", "SETTING_NAMES", "Settings", "settings"]

DEFAULT_MODEL = "gpt-4o-mini"


class InvalidSettingError(ConfigurationError, TraitError):
    """A setting was given a value it cannot take; nothing changed. One line in a notebook (it is an
    AihubmixError) and a TraitError for traitlets, `%config` and the widgets."""


class SettingTraits(HasTraits):
    """The traits shared by Settings and the magics class (which makes them configurable)."""

    model = Unicode(DEFAULT_MODEL, help="Model id, e.g. gpt-4o-mini (see `%aihubmix models`).").tag(config=True)
    endpoint = Enum(ENDPOINTS, default_value="chat", help="chat (/v1/chat/completions) or responses (/v1/responses).").tag(config=True)
    temperature = Float(None, allow_none=True, help="Sampling temperature, 0–2; None leaves the model's default.").tag(config=True)
    top_p = Float(None, allow_none=True, help="Nucleus sampling, 0–1; None leaves the model's default.").tag(config=True)
    max_tokens = Int(None, allow_none=True, help="Longest answer in tokens (max_output_tokens on responses).").tag(config=True)
    reasoning_effort = Enum(REASONING_EFFORTS, default_value=None, allow_none=True,
                            help="Reasoning effort: none, minimal, low, medium, high, xhigh; None leaves it off.").tag(config=True)
    stream = Bool(True, help="Stream the answer as it is generated.").tag(config=True)
    system = Unicode("", help="System prompt (instructions on the responses endpoint).").tag(config=True)
    base_url = Unicode(DEFAULT_BASE_URL, help="Base URL of the OpenAI-compatible API.").tag(config=True)
    timeout = Float(300.0, help="Read timeout in seconds.").tag(config=True)
    connect_timeout = Float(10.0, help="Connect timeout in seconds.").tag(config=True)
    max_retries = Int(2, help="Retries for connect errors, timeouts, 408/409/429/5xx (0 disables).").tag(config=True)
    app_code = Unicode("", help="Optional AiHubMix APP-Code header; off when empty.").tag(config=True)
    display = Enum(("auto", "notebook", "terminal"), default_value="auto",
                   help="How answers are shown: auto-detect, Markdown in a notebook, or plain text.").tag(config=True)
    cache = Bool(False, help="Answer identical requests from the local response cache (`%aihubmix cache on`).").tag(config=True)
    cache_path = Unicode("", help="The cache's SQLite file; empty: $AIHUBMIX_CACHE_PATH or "
                             "~/.cache/aihubmix-magic/responses.sqlite.").tag(config=True)
    rate_limit_patience = Float(600.0, help="Seconds a batch keeps retrying rate-limited requests (429, 503/529 "
                                "overloaded) while no item finishes; then the items left fail (0: give up at once)."
                                ).tag(config=True)
    template_max_rows = Int(20, help="Rows of a DataFrame put into a prompt by a {template} field.").tag(config=True)
    context_max_tokens = Int(4000, help="Token budget (estimated, 4 characters a token) of what --context adds "
                                        "to a prompt; more is cut, and the cell says what.").tag(config=True)
    fix_style = Enum(("fix", "hint"), default_value="fix",
                     help="%aihubmix fix: 'fix' explains and puts the corrected code into a new cell; 'hint' "
                          "(for teaching) asks for a hint, never the solution.").tag(config=True)
    budget = Float(None, allow_none=True, help="This session's spending limit in USD, estimated from the model "
                   "catalog's prices (`%aihubmix budget`); once reached, calls are refused. None: no limit.").tag(config=True)
    tool_timeout = Float(60.0, help="Seconds an MCP tool call may take (`--mcp`); then the call is cancelled and "
                         "the model is told it got no answer.").tag(config=True)
    mcp_start_timeout = Float(30.0, help="Seconds an MCP server may take to start and answer initialize and "
                              "tools/list; then it is stopped and the cell says so (nothing is sent).").tag(config=True)
    approval_timeout = Float(None, allow_none=True, help="Seconds the Run / Skip buttons of a tool call wait for "
                             "a click; then the call is skipped. None (the default): wait until answered or "
                             "interrupted.").tag(config=True)
    log = Bool(True, help="Write every exchange to the log in the data directory (`%aihubmix log`, `logs()`; "
               "$AIHUBMIX_DATA_DIR or ~/.local/share/aihubmix-magic/log.sqlite); False: `%aihubmix log off`."
               ).tag(config=True)
    budget_day = Float(None, allow_none=True, help="Spending limit in USD per calendar day, over every kernel, "
                       "from the log (`%aihubmix budget 5/day`); None: no limit.").tag(config=True)
    budget_month = Float(None, allow_none=True, help="Spending limit in USD per calendar month, over every "
                         "kernel, from the log (`%aihubmix budget 20/month`); None: no limit.").tag(config=True)
    max_answer_bytes = Int(DEFAULT_MAX_ANSWER_BYTES, help="The longest answer kept, in bytes once decoded (64 MiB; "
                           "for a stream: its text, and any one event): a longer one fails with "
                           "AnswerTooLargeError, is never retried, and is dropped as it comes, so memory stays "
                           "bounded.").tag(config=True)
    catalog_url = Unicode("", help="URL of the model catalog (prices, capabilities); empty: the base URL with its "
                          "trailing /v1 replaced by /api/v1/models.").tag(config=True)

    @validate("temperature")
    def _check_temperature(self, proposal):
        return _in_range("temperature", proposal["value"], 0.0, 2.0)

    @validate("top_p")
    def _check_top_p(self, proposal):
        return _in_range("top_p", proposal["value"], 0.0, 1.0)

    @validate("max_tokens")
    def _check_max_tokens(self, proposal):
        value = proposal["value"]
        if value is not None and value < 1:
            raise InvalidSettingError(f"max_tokens must be a positive whole number, not {value}")
        return value

    @validate("timeout", "connect_timeout", "tool_timeout", "mcp_start_timeout")
    def _check_timeout(self, proposal):
        if proposal["value"] <= 0:
            raise InvalidSettingError(f"{proposal['trait'].name} must be a positive number of seconds")
        return proposal["value"]

    @validate("rate_limit_patience")
    def _check_patience(self, proposal):
        value = proposal["value"]
        if value is None or value < 0 or value != value:
            raise InvalidSettingError(f"rate_limit_patience must be 0 or more seconds, not {value}")
        return value

    @validate("template_max_rows")
    def _check_template_max_rows(self, proposal):
        if proposal["value"] < 1:
            raise InvalidSettingError("template_max_rows must be 1 or more")
        return proposal["value"]

    @validate("max_answer_bytes")
    def _check_max_answer_bytes(self, proposal):
        value = proposal["value"]
        if value < 1024:
            raise InvalidSettingError(f"max_answer_bytes must be at least 1024 bytes, not {value}")
        return value

    @validate("app_code")
    def _check_app_code(self, proposal):
        try:
            return validate_header_value("app_code", proposal["value"])
        except Exception as exc:
            raise InvalidSettingError(str(exc)) from None

    @validate("max_retries")
    def _check_retries(self, proposal):
        if proposal["value"] < 0:
            raise InvalidSettingError("max_retries must be 0 or more")
        return proposal["value"]

    @validate("base_url")
    def _check_base_url(self, proposal):
        try:
            return validate_base_url(proposal["value"])
        except Exception as exc:
            raise InvalidSettingError(str(exc)) from None

    @validate("context_max_tokens")
    def _check_context_max_tokens(self, proposal):
        if proposal["value"] < 100:
            raise InvalidSettingError("context_max_tokens must be 100 or more")
        return proposal["value"]

    @validate("budget", "budget_day", "budget_month")
    def _check_budget(self, proposal):
        value = proposal["value"]
        if value is not None and not (0 < value < float("inf")):
            raise InvalidSettingError(f"{proposal['trait'].name} must be a positive number of US dollars (or None for "
                                      f"no budget), not {value:g}")
        return value

    @validate("approval_timeout")
    def _check_approval_timeout(self, proposal):
        value = proposal["value"]
        if value is not None and not (0 < value < float("inf")):
            raise InvalidSettingError(f"approval_timeout must be a positive number of seconds (or None to wait "
                                      f"for an answer), not {value:g}")
        return value

    @validate("catalog_url")
    def _check_catalog_url(self, proposal):
        value = proposal["value"].strip()
        if not value:
            return ""
        try:
            return validate_base_url(value)
        except Exception:
            raise InvalidSettingError(f"catalog_url {value!r} is not an http(s) URL, e.g. "
                                      "https://aihubmix.com/api/v1/models") from None


def _in_range(name: str, value: float | None, low: float, high: float) -> float | None:
    if value is not None and not low <= value <= high:
        raise InvalidSettingError(f"{name} must be between {low:g} and {high:g}, not {value:g}")
    return value


SETTING_NAMES = tuple(SettingTraits.class_trait_names())


class Settings(SettingTraits):
    """The single source of truth the magic, the panel and `%config` share."""

    has_key = Bool(False, read_only=True, help="Whether an API key is set (the key itself is never a trait).")
    demo = Bool(False, help="True while the session talks to the built-in simulator.")
    last_call = Unicode("", help="The footer of the last finished %%aihubmix call (model · endpoint · tokens · "
                                 "time); the control panel's status line shows it.")
    balance = Unicode("", help="The account's remaining credit as `%aihubmix balance` last found it (empty: "
                               "unknown); the control panel's status line shows it.")

    def __init__(self, **kwargs) -> None:
        env_model = os.environ.get("AIHUBMIX_MODEL")
        env_url = os.environ.get("AIHUBMIX_BASE_URL")
        if env_model:
            kwargs.setdefault("model", env_model)
        if env_url:
            try:
                kwargs.setdefault("base_url", validate_base_url(env_url))
            except ConfigurationError as exc:  # importing the package must not fail on it, but no
                # request may go anywhere else either: the first call says what is wrong (see usable())
                self._env_url_error: str | None = f"AIHUBMIX_BASE_URL is unusable: {exc}"
        super().__init__(**kwargs)
        self.observe(self._base_url_set, names="base_url")
        self._api_key: str | None = None
        self.key_source: str | None = None  # where the key came from, for `%aihubmix config`
        self._searched = False  # Colab's Secrets and the keyring are looked in once per kernel
        try:
            self.set_key(validate_key(os.environ.get("AIHUBMIX_API_KEY"), source="AIHUBMIX_API_KEY"),
                         source="the environment (AIHUBMIX_API_KEY)")
        except ConfigurationError as exc:  # as for the base URL: importing must not fail, nothing is sent
            self._env_key_error = str(exc)

    _env_url_error: str | None = None
    _env_key_error: str | None = None

    def _base_url_set(self, change) -> None:
        self._env_url_error = None  # the user chose a base URL: the broken environment value is gone

    def usable(self) -> None:
        """Raise ConfigurationError if a request must not be sent with these settings. Without a key, look
        for one in Colab's Secrets and the system keyring first (once per kernel; see `session/keys.py`)."""
        if self._env_key_error:
            raise ConfigurationError(self._env_key_error)
        self.find_stored_key()
        if self._env_url_error:
            raise ConfigurationError(
                f"{self._env_url_error} Fix it and restart, or set one with "
                "`%config AihubmixMagics.base_url = \"https://aihubmix.com/v1\"`."
            )

    @property
    def api_key(self) -> str | None:
        return self._api_key

    def set_key(self, key: str | None, *, source: str = "set in this kernel") -> None:
        """Use `key` (None or empty: none). ConfigurationError, and nothing changed, for a key with a
        control character (CR, LF, NUL…) or a character that is not ASCII."""
        self._api_key = validate_key(key, source="settings.set_key")
        self._env_key_error = None  # a key was chosen: the broken environment value is gone
        self.key_source = source if self._api_key is not None else None
        self.set_trait("has_key", self._api_key is not None)

    def find_stored_key(self) -> None:
        """No key yet: take the one Colab's Secrets or the system keyring holds, if any (looked up once)."""
        if self._api_key is not None or self._searched:
            return
        self._searched = True
        from .keys import stored_key

        key, source = stored_key()
        if key:
            self.set_key(key, source=source or "a stored key")

    def masked_key(self) -> str:
        return mask_key(self._api_key)

    def values(self) -> dict:
        """Every setting but the key, for display."""
        return {name: getattr(self, name) for name in SETTING_NAMES}

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.values().items())
        return f"<Settings {shown}, key={self.masked_key()}>"


settings = Settings()


def _configure_services(current: Settings) -> None:
    """Pass what the services need of the settings to them, as functions read at each use: the catalog's
    URL and cache directory, and the budget. The services never import the settings themselves."""
    from pathlib import Path

    from ..services import catalog, cost

    def cache_path() -> Path:
        from ..store.cache import default_cache_path  # when the catalog is first kept: not at %load_ext

        return Path(current.cache_path).expanduser() if current.cache_path else default_cache_path()

    catalog.configure(url=lambda: catalog.catalog_url(current.base_url, current.catalog_url), cache_path=cache_path)
    cost.configure(budget=lambda: current.budget,
                   period_budgets=lambda: {"day": current.budget_day, "month": current.budget_month})


_configure_services(settings)
