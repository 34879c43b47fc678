"""The control panel: one composite widget whose controls are tied to `aihubmix_magic.settings`.

    %aihubmix panel                    # or: aihubmix_magic.panel()

`settings` stays the single source of truth: every control writes into it, and every change of it (from
`%aihubmix use`, `%config AihubmixMagics.…`, `settings.x = …` or another panel) moves the controls. So two
displayed panels always agree, and options on a `%%aihubmix` line still win for their cell.

Optional numbers (temperature, top-p, max tokens) have a checkbox: unticked means None, "leave the model's
default". Reasoning effort has an `off` entry for None.

The API key is never a widget value for longer than one callback: what is typed into the key field is
moved into `settings.set_key(...)` and the field is cleared at once, and the field's value is not echoed
to other frontends, so the key never ends up in widget state or in a saved notebook.

The model picker lists each model with its price (USD per 1M tokens in / out) and badges (reasoning,
vision, tools, free) from AiHubMix's model catalog, e.g. `gpt-4o-mini · $0.15 / $0.60 · vision tools`;
picking one sets the model to its id. Three toggles show only the models with a badge. Without a catalog
the list holds the bare ids. The status line adds this session's spend (and budget) and, once
`%aihubmix balance` has fetched it, the account's remaining credit.

ipywidgets is imported here, and this module is imported only when a panel is made.
"""

from __future__ import annotations

import html
import threading

import ipywidgets as widgets
from traitlets import TraitError, Unicode

from ..services import catalog as _catalog
from ..services import cost as _cost
from ..session import state as _session
from ..session.settings import ENDPOINTS, REASONING_EFFORTS, Settings, settings

__all__ = ["Panel"]

_OFF = "off"  # the reasoning-effort entry that stands for None
_WATCHED = ("model", "endpoint", "temperature", "top_p", "max_tokens", "reasoning_effort", "stream", "system",
            "base_url", "has_key", "demo", "last_call", "budget", "balance")
_SEPARATOR = " · "  # between a model id and its price and badges in the picker
_BADGES = ("reasoning", "vision", "tools")  # the picker's filters
_WIDE = {"description_width": "initial"}


class _KeyField(widgets.Password):
    """A password field whose value is never echoed back to the frontends (it is cleared at once anyway)."""

    value = Unicode("", help="The key being entered; moved into the settings and cleared at once.").tag(
        sync=True, echo_update=False)


class _OptionalNumber:
    """A checkbox and a number control for a setting where None means "the model's default"."""

    def __init__(self, panel: Panel, name: str, label: str, control: widgets.ValueWidget) -> None:
        self.panel = panel
        self.name = name
        self.enabled = widgets.Checkbox(value=False, description=label, indent=False,
                                        tooltip=f"untick to leave {label} at the model's default",
                                        layout=widgets.Layout(width="9.5em"))
        self.control = control
        self.box = widgets.HBox([self.enabled, self.control])
        self.enabled.observe(self._on_widget, names="value")
        self.control.observe(self._on_widget, names="value")

    def show(self, value) -> None:
        """Move the controls to the setting's value (None: unticked, the number stays where it was)."""
        self.enabled.value = value is not None
        self.control.disabled = value is None
        if value is not None:
            self.control.value = value

    def _on_widget(self, change) -> None:
        if self.panel._updating:
            return
        value = self.control.value if self.enabled.value else None
        self.control.disabled = value is None
        self.panel._write(self.name, value)


class Panel(widgets.VBox):
    """Model, endpoint, sampling, reasoning, stream, system prompt, key entry, and a status line.

    `refresh()` fetches the model list again (in a background thread); `close()` unlinks the panel from
    the settings and closes its widgets.
    """

    def __init__(self, source: Settings | None = None, **kwargs) -> None:
        self.settings = source if source is not None else settings
        self._own_session: _session.Session | None = None
        self._updating = False
        self._fetch_lock = threading.Lock()
        self._fetcher: threading.Thread | None = None
        self._closed = False
        wide = widgets.Layout(width="auto")

        self.model = widgets.Combobox(
            value=self.settings.model, options=(), ensure_option=False, continuous_update=False,
            description="model", placeholder="type to search the models", style=_WIDE,
            layout=widgets.Layout(width="24em"))
        self.model.add_class("aihubmix-model")
        self.refresh_button = widgets.Button(description="", icon="refresh", tooltip="fetch the model list again",
                                             layout=widgets.Layout(width="2.6em"))
        self.refresh_button.add_class("aihubmix-refresh")
        self.endpoint = widgets.ToggleButtons(options=ENDPOINTS, value=self.settings.endpoint,
                                              tooltips=["/v1/chat/completions", "/v1/responses"],
                                              style={"button_width": "7.5em"})
        self.models_note = widgets.HTML("")
        self.models_note.add_class("aihubmix-models-note")
        self.filters = {badge: widgets.ToggleButton(value=False, description=badge, tooltip=f"list only {badge} models"
                                                    " (from the model catalog)", layout=widgets.Layout(width="6.5em"))
                        for badge in _BADGES}
        for badge, toggle in self.filters.items():
            toggle.add_class(f"aihubmix-filter-{badge}")
            toggle.observe(lambda _change: self._show_options(), names="value")
        self._models: list[tuple[str, str, tuple[str, ...]]] = []  # (id, label, badges), as last fetched
        self._aliases: list[tuple[str, str]] = []  # (alias, model) offered first in the picker

        self.temperature = _OptionalNumber(self, "temperature", "temperature", widgets.FloatSlider(
            value=1.0, min=0.0, max=2.0, step=0.05, readout_format=".2f", continuous_update=False))
        self.top_p = _OptionalNumber(self, "top_p", "top-p", widgets.FloatSlider(
            value=1.0, min=0.0, max=1.0, step=0.01, readout_format=".2f", continuous_update=False))
        self.max_tokens = _OptionalNumber(self, "max_tokens", "max tokens", widgets.BoundedIntText(
            value=1024, min=1, max=10_000_000, layout=widgets.Layout(width="8em")))
        self.reasoning_effort = widgets.Dropdown(options=(_OFF, *REASONING_EFFORTS), description="reasoning effort",
                                                 style=_WIDE, layout=widgets.Layout(width="14em"))
        self.stream = widgets.Checkbox(value=self.settings.stream, description="stream", indent=False,
                                       layout=widgets.Layout(width="6em"))
        self.system = widgets.Textarea(value=self.settings.system, description="system",
                                       placeholder="system prompt (empty: none)", continuous_update=False,
                                       rows=2, style=_WIDE, layout=wide)
        self.key = _KeyField(description="API key", placeholder="paste a key and press Enter; it is not kept here",
                             continuous_update=False, style=_WIDE, layout=widgets.Layout(width="32em"))
        self.key.add_class("aihubmix-key")
        self.status = widgets.HTML("")
        self.status.add_class("aihubmix-status")

        rows = [
            widgets.HBox([self.model, self.refresh_button, self.endpoint]),
            widgets.HBox([*self.filters.values(), self.models_note]),
            widgets.HBox([self.temperature.box, self.top_p.box]),
            widgets.HBox([self.max_tokens.box, self.reasoning_effort, self.stream]),
            self.system,
            self.key,
            self.status,
        ]
        super().__init__(**kwargs)
        self.add_class("aihubmix-panel")
        self.children = rows

        self.model.observe(self._on_model, names="value")
        self.refresh_button.on_click(lambda _button: self.refresh())
        self.endpoint.observe(lambda change: self._write("endpoint", change["new"]), names="value")
        self.reasoning_effort.observe(self._on_reasoning, names="value")
        self.stream.observe(lambda change: self._write("stream", change["new"]), names="value")
        self.system.observe(lambda change: self._write("system", change["new"]), names="value")
        self.key.observe(self._on_key, names="value")
        self.settings.observe(self._on_settings, names=list(_WATCHED))
        self._show_settings()
        self.refresh()

    # -- settings -> widgets -----------------------------------------------------------------------------
    def _on_settings(self, change) -> None:
        self._show_settings()
        if change["name"] in ("base_url", "has_key") and not self._closed:
            self.refresh()  # another server or key (e.g. `%aihubmix demo`) may offer other models

    def _show_settings(self) -> None:
        current = self.settings
        self._updating = True
        try:
            self.model.value = current.model
            self.endpoint.value = current.endpoint
            self.temperature.show(current.temperature)
            self.top_p.show(current.top_p)
            self.max_tokens.show(current.max_tokens)
            self.reasoning_effort.value = current.reasoning_effort or _OFF
            self.stream.value = current.stream
            self.system.value = current.system
        finally:
            self._updating = False
        self.status.value = self._status_html()

    def _status_html(self) -> str:
        current = self.settings
        parts = [f"<code>{html.escape(current.base_url)}</code>", "key set" if current.has_key else "no key"]
        if current.demo:
            parts.append("demo mode (simulated answers)")
        parts.append("last call: " + html.escape(current.last_call) if current.last_call else "no call yet")
        parts.append(html.escape(_cost.budget_summary().rstrip(".")))  # this session's spend, and the budget
        if current.balance:
            parts.append(f"balance {html.escape(current.balance)}")
        return f"<small>{_cost.markdown_dollars(' · '.join(parts))}</small>"  # dollars as text, not math

    # -- widgets -> settings -----------------------------------------------------------------------------
    def _write(self, name: str, value) -> None:
        if self._updating:
            return
        try:
            setattr(self.settings, name, value)
        except TraitError as exc:  # shown, and the controls go back to what the settings hold
            self.models_note.value = f"<small>{html.escape(str(exc))}</small>"
            self._show_settings()

    def _on_model(self, change) -> None:
        name = change["new"].split(_SEPARATOR)[0].strip()  # a picked entry is "id · price · badges"
        if name:
            self._write("model", name)
            if name != change["new"] and not self._updating:  # show the id alone, even if the model is unchanged
                self._show_settings()
        elif not self._updating:  # an emptied field shows the current model again
            self._show_settings()

    def _on_reasoning(self, change) -> None:
        self._write("reasoning_effort", None if change["new"] == _OFF else change["new"])

    def _on_key(self, change) -> None:
        typed = change["new"]
        if not typed:
            return
        self.key.value = ""  # first: the key must not stay in the widget's state
        if typed.strip():
            from ..core.exceptions import ConfigurationError
            from . import demo as _demo

            try:
                _demo.set_user_key(self._session(), typed)
            except ConfigurationError as exc:  # a key with a control character: refused, shown masked
                self.models_note.value = f"<small>{html.escape(str(exc))}</small>"

    def _session(self) -> _session.Session:
        """The kernel's session, or one of the panel's own when it was given other settings."""
        current = _session.current()
        if current.settings is self.settings:
            return current
        if self._own_session is None:
            self._own_session = _session.Session(self.settings)
        return self._own_session

    # -- the model list ----------------------------------------------------------------------------------
    def refresh(self) -> threading.Thread:
        """Fetch the model ids from /v1/models in a background thread, which is returned."""
        self.models_note.value = "<small>fetching the model list…</small>"
        thread = threading.Thread(target=self._fetch, name="aihubmix-models", daemon=True)
        with self._fetch_lock:
            self._fetcher = thread
        thread.start()
        return thread

    def _fetch(self) -> None:
        try:
            ids = self._session().client().model_ids(refresh=True)
            error = None
        except Exception as exc:  # any failure is one line in the panel; the current model stays
            ids, error = None, exc
        catalog = _catalog.catalog()
        infos = catalog.ensure() if ids else None
        if self._list(ids, error, infos) and ids and infos is None and catalog.loading:
            infos = catalog.ensure(_catalog.COMMAND_WAIT)  # the bare ids are listed; add prices when they come
            if infos is not None:
                self._list(ids, None, infos)

    def _list(self, ids, error, infos) -> bool:
        """Show the fetched list (or why there is none); False if a newer fetch or close superseded it."""
        with self._fetch_lock:
            if self._closed or self._fetcher is not threading.current_thread():
                return False  # a newer fetch (or close) superseded this one
            if error is not None or ids is None:
                reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
                self.models_note.value = (f"<small>Cannot fetch the model list ({html.escape(reason)}); "
                                          "type a model id.</small>")
                return True
            from ..store.prompts import (
                alias_rows,  # `%aihubmix alias fast gpt-4o-mini`: "fast" is offered too
            )

            self._aliases = alias_rows()
            self._models = [(name, name, ()) for name, _ in self._aliases] + [_entry(model_id, infos)
                                                                              for model_id in ids]
            self._show_options()
            return True

    def _show_options(self) -> None:
        """The picker's list: every model fetched, or only those with the badges toggled on."""
        wanted = [badge for badge, toggle in self.filters.items() if toggle.value]
        shown = [label for _, label, badges in self._models if all(b in badges for b in wanted)]
        self.model.options = tuple(shown)
        priced = any(_SEPARATOR in label for _, label, _ in self._models)
        what = f"{len(shown)} of {len(self._models)} models" if wanted else f"{len(self._models)} models"
        unit = " (price: USD per 1M tokens in / out, an estimate's basis)" if priced else ""
        listed = "".join(f", {html.escape(name)} → {html.escape(model)}" for name, model in self._aliases)
        self.models_note.value = f"<small>{what}: type to search{unit}{listed}</small>"

    def close(self) -> None:
        """Stop following the settings and close every widget of the panel."""
        with self._fetch_lock:
            self._closed = True
            fetcher = self._fetcher
        try:
            self.settings.unobserve(self._on_settings, names=list(_WATCHED))
        except ValueError:
            pass
        for widget in _descendants(self):
            widget.close()
        super().close()
        if fetcher is not None and fetcher is not threading.current_thread():
            fetcher.join(timeout=30)


def _entry(model_id: str, infos: dict | None) -> tuple[str, str, tuple[str, ...]]:
    """(id, the picker's label, badges): `gpt-4o-mini · $0.15 / $0.60 · vision tools`, or the bare id."""
    info = _catalog.find_model(infos, model_id) if infos else None
    if info is None:
        return model_id, model_id, ()
    pieces = [model_id]
    if info.priced:
        pieces.append("free" if info.free else
                      f"{_cost.format_price(info.input_price)} / {_cost.format_price(info.output_price)}")
    badges = tuple(b for b in info.badges if b != "free")
    if badges:
        pieces.append(" ".join(badges))
    return model_id, _SEPARATOR.join(pieces), info.badges


def _descendants(box: widgets.Box):
    for child in box.children:
        if isinstance(child, widgets.Box):
            yield from _descendants(child)
        yield child
