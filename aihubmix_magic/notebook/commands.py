"""`%aihubmix SUBCOMMAND`: key, config, models, use, demo, history, reset, cost, budget, balance, panel, cache,
log, fix, save, prompts, alias, mcp, export, help. `Subcommands` is a part of `AihubmixMagics` (it uses the
magic's session, settings and shell); `%aihubmix` with no cell dispatches to its `_cmd_NAME` methods."""

from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError
from traitlets import TraitError

from ..session.settings import settings

__all__ = ["SUBCOMMANDS", "Subcommands"]

SUBCOMMANDS = {
    "key [--save|--forget]": "ask for the API key (hidden input); it stays in this kernel's memory only; --save "
                             "also stores it in the system keyring (pip install 'aihubmix-magic[keyring]'), where "
                             "new kernels find it; --forget deletes it from there",
    "config": "show the settings (the key masked)",
    "models [FILTER]": "list the models this key may use (/v1/models), optionally filtered, with context, max "
                       "output, prices per 1M tokens and features from AiHubMix's catalog; --features thinking,tools, "
                       "--modality image, --refresh",
    "use MODEL": "make MODEL the default for the next cells",
    "demo [auto|off]": "answer from the built-in simulator (no key, no network); `auto`: only when no key is "
                       "set; `off` goes back",
    "export FILE.ipynb [--thread NAME]": "write this session's prompts and answers as a notebook (never the key)",
    "reset [NAME]": "forget the conversation thread NAME (default: the one -c continues)",
    "history [NAME]": "show the conversation thread NAME as Markdown (default: the one -c continues)",
    "panel": "show the control panel (model, parameters, key entry, status), linked to the settings",
    "cache on|off|clear|info": "answer identical requests from a local SQLite cache, without the network; "
                               "empty it (and the batch journal); show its size and path, and the journal's",
    "fix [--explain]": "explain the cell that failed last and put the corrected code into a new cell below "
                       "(settings.fix_style = 'hint': a hint only)",
    "save NAME [--user]": "save the previous %%aihubmix cell (options and template) as a prompt; run it with "
                          "%%aihubmix -p NAME",
    "prompts": "list the saved prompts (./.aihubmix/prompts next to the notebook, then your personal ones)",
    "alias [NAME MODEL]": "make NAME stand for MODEL in -m, --compare and `use` (`alias NAME --remove`; "
                          "no arguments: list them)",
    "cost [--today|--month]": "this session's spend by model: calls, tokens, USD (estimates from the catalog's "
                              "prices); --today / --month: every kernel's, from the log",
    "budget [USD|off]": "refuse calls once this session's spend reaches USD (USD/day, USD/month: today's or this "
                        "month's spend over every kernel, from the log); no argument: the budgets and the spend",
    "balance": "the account's remaining credit and usage (AiHubMix's billing endpoints)",
    "mcp": "the MCP servers of mcp.json (./.aihubmix, then your personal folder): where each was found, whether "
           "it starts, its tools; use them with %%aihubmix --mcp NAME",
    "log [TEXT] [-n N] [--model M] [--thread NAME]": "the newest logged exchanges (every kernel's) matching TEXT; "
                                                     "`log path`, `log on|off`, `log clear [--before DATE]`",
    "help": "this help",
}


class Subcommands:
    """The `%aihubmix` subcommands, as methods of the magics object (`_cmd_NAME(rest)`)."""

    session: Any
    shell: Any

    def _subcommand(self, line: str):
        words = line.split()
        if not words:
            return self._help()
        command, rest = words[0], words[1:]
        handler = getattr(self, f"_cmd_{command}", None)
        if handler is None:
            raise UsageError(f"Unknown subcommand {command!r}: use one of {', '.join(_names())} (`%aihubmix help`).")
        return handler(rest)

    def _cmd_help(self, rest):
        return self._help()

    def _help(self):
        lines = ["%%aihubmix [options]  — the cell is the prompt; `%%aihubmix?` lists the options", ""]
        lines += [f"%aihubmix {name:<16} {text}" for name, text in SUBCOMMANDS.items()]
        print("\n".join(lines))

    def _cmd_reset(self, rest):
        if len(rest) > 1:
            raise UsageError("Usage: %aihubmix reset [NAME]")
        print(self.session.threads.reset(rest[0] if rest else None))

    def _cmd_history(self, rest):
        if len(rest) > 1:
            raise UsageError("Usage: %aihubmix history [NAME]")
        text = self.session.threads.history_markdown(rest[0] if rest else None)
        from IPython.display import display

        display({"text/markdown": text, "text/plain": text}, raw=True)

    def _cmd_key(self, rest):
        if rest == ["--forget"]:
            return self._forget_key()
        if rest not in ([], ["--save"]):
            raise UsageError("Usage: %aihubmix key [--save|--forget]  (it asks for the key with hidden input: a key "
                             "typed in a cell would be saved in the notebook; --save also keeps it in the system "
                             "keyring for the next kernels, --forget deletes it from there)")
        save = rest == ["--save"]
        from ..session import keys as _keys

        if save:
            try:
                _keys.keyring_backend()  # the hint before asking, when keyring is missing
            except _keys.KeyringUnavailableError as exc:
                raise UsageError(str(exc)) from None
        import getpass

        prompt = "AiHubMix API key" + (" (empty: save the key in use)" if save and settings.has_key and not settings.demo else "") + ": "
        key = getpass.getpass(prompt).strip()
        if not key and save and settings.has_key and not settings.demo:
            key = settings.api_key or ""
        if not key:
            raise UsageError("No key entered; nothing changed.")
        from . import demo as _demo

        if not save:
            print(_demo.set_user_key(self.session, key))
            return
        try:
            backend = _keys.save_key(key)
        except _keys.KeyringUnavailableError as exc:
            raise UsageError(str(exc)) from None
        from ..core.protocol import mask_key

        source = f"the system keyring ({backend})"
        note = _demo.set_user_key(self.session, key, source=source) if key != settings.api_key else ""
        print(f"Key {mask_key(key)} saved in {source}: a new kernel finds it there when AIHUBMIX_API_KEY is not "
              f"set. {note}".rstrip())

    def _forget_key(self):
        from ..session import keys as _keys

        try:
            found = _keys.forget_key()
        except _keys.KeyringUnavailableError as exc:
            raise UsageError(str(exc)) from None
        print("Key deleted from the system keyring (this kernel keeps using it until it ends)." if found else
              "No key was stored in the system keyring.")

    def _cmd_config(self, rest):
        settings.find_stored_key()
        rows = [(name, repr(value)) for name, value in settings.values().items()]
        rows.append(("key", settings.masked_key() + (f" (from {settings.key_source})" if settings.key_source else "")))
        if settings.demo:
            rows.append(("demo", "on (answers are simulated)"))
        width = max(len(name) for name, _ in rows)
        print("\n".join(f"{name:<{width}}  {value}" for name, value in rows))

    def _cmd_models(self, rest):
        from ..services import catalog as _catalog

        options = _catalog.parse_models_options(rest)  # UsageError for a bad option, before any request
        models = self.session.client().models()
        from IPython.display import display

        listing = _catalog.models_listing(models, options)
        from ..store.prompts import alias_rows  # aliases (`%aihubmix alias`) under the models they stand for

        aliases = alias_rows(options["needle"])
        if aliases:
            listing["text/markdown"] += "\n\n" + "\n".join(
                ["| alias | stands for |", "|---|---|"] + [f"| `{name}` | alias for `{model}` |" for name, model in aliases])
            listing["text/plain"] += "".join(f"\n{name:<40} alias for {model}" for name, model in aliases)
        display(listing, raw=True)

    def _cmd_cost(self, rest):
        from ..services import cost as _cost

        if rest in (["--today"], ["--month"]):  # from the log: every kernel's
            from IPython.display import display

            display(_cost.period_table("day" if rest == ["--today"] else "month"), raw=True)
            return
        if rest:
            raise UsageError("Usage: %aihubmix cost [--today|--month]  (this session's spend by model; --today, "
                             "--month: from the log, every kernel's)")
        from IPython.display import display

        display(_cost.spend_table(), raw=True)

    def _cmd_budget(self, rest):
        from ..services import cost as _cost

        usage = ("Usage: %aihubmix budget USD|USD/day|USD/month|off  (e.g. %aihubmix budget 2.50 for this session, "
                 "5/day, 20/month; off, off/day, off/month; no argument shows them)")
        if not rest:
            print("\n".join(line for line in (_cost.budget_summary(), _cost.period_summary()) if line))
            return
        if len(rest) != 1:
            raise UsageError(usage)
        word = rest[0].strip().lower()
        if "/" in word:  # a budget per calendar day or month, over every kernel (from the log)
            amount, _, period = word.partition("/")
            if period not in ("day", "month"):
                raise UsageError(f"{usage}; {rest[0]!r}: the period is day or month.")
            name = f"budget_{period}"
            if amount in ("off", "none"):
                setattr(settings, name, None)
                print(f"Budget per {period} off. " + (_cost.period_summary() or _cost.budget_summary()))
                return
            try:
                value = float(amount.removeprefix("$").replace(",", ""))
            except ValueError:
                raise UsageError(f"{usage}; {amount!r} is not an amount.") from None
            try:
                setattr(settings, name, value)
            except TraitError as exc:
                raise UsageError(f"{exc}. {usage}") from None
            note = "" if settings.log else " The log is off (`%aihubmix log on`): calls from now on are not counted."
            print(f"{_cost.period_summary()} Counted from the log, over every kernel; costs are estimates from the "
                  f"model catalog's prices.{note}")
            return
        if word in ("off", "none"):
            settings.budget = None
            print(f"Budget off: calls are no longer limited. {_cost.budget_summary()}")
            return
        try:
            value = float(word.removeprefix("$").replace(",", ""))
        except ValueError:
            raise UsageError(f"{usage}; {rest[0]!r} is not an amount.") from None
        try:
            settings.budget = value
        except TraitError as exc:
            raise UsageError(f"{exc}. {usage}") from None
        print(f"{_cost.budget_summary()} Costs are estimates from the model catalog's prices.")

    def _cmd_balance(self, rest):
        from ..services import catalog as _catalog

        if rest:
            raise UsageError("Usage: %aihubmix balance")
        from ..core.protocol import mask_key
        from ..services.billing import fetch_balance

        settings.usable()
        if not settings.api_key:
            from ..core.exceptions import MissingKeyError

            raise MissingKeyError()
        key = settings.api_key
        balance = fetch_balance(_catalog.root_url(settings.base_url), key,
                                scrub=lambda text: text.replace(key, mask_key(key)))
        settings.balance = balance.remaining_text
        print(balance.line() + (" Simulated: demo mode." if settings.demo else ""))

    def _cmd_panel(self, rest):
        if rest:
            raise UsageError("Usage: %aihubmix panel")
        from .live import display_mode

        if display_mode() == "terminal":  # no widget frontend: the settings as text
            return self._cmd_config([])
        from IPython.display import display

        from .widgets import Panel

        display(Panel())

    def _cmd_cache(self, rest):
        action = rest[0] if rest else "info"
        if len(rest) > 1 or action not in ("on", "off", "clear", "info"):
            raise UsageError("Usage: %aihubmix cache on|off|clear|info")
        cache = self.session.response_cache(force=True)
        assert cache is not None
        if action == "on":
            settings.cache = True
            print(f"Cache on: a request made before is answered from {cache.path}, without a network call.")
        elif action == "off":
            settings.cache = False
            print("Cache off: every request goes to the server (the entries are kept; "
                  "`%aihubmix cache clear` deletes them).")
        elif action == "clear":
            count = cache.clear()
            print(f"Cache cleared: {count} entr{'y' if count == 1 else 'ies'} deleted from {cache.path}.")
            journal = self.session.journal()
            count = journal.clear()
            print(f"Batch journal cleared: {count} answer{'' if count == 1 else 's'} of unfinished batches deleted "
                  f"from {journal.path}.")
        else:
            info = cache.info()
            print(f"Cache {'on' if settings.cache else 'off'}: {info['entries']} entr"
                  f"{'y' if info['entries'] == 1 else 'ies'}, {_size(info['size'])}, {info['path']}")
            journal = self.session.journal().info()
            print(f"Batch journal: {journal['entries']} answer{'' if journal['entries'] == 1 else 's'} of "
                  f"{journal['batches']} unfinished batch{'' if journal['batches'] == 1 else 'es'}, "
                  f"{_size(journal['size'])}, {journal['path']}")

    def _cmd_log(self, rest):
        from .log import cmd_log

        return cmd_log(rest)

    def _cmd_fix(self, rest):
        from .fix import run_fix

        return run_fix(self, rest)

    def _cmd_save(self, rest):
        from .prompts import cmd_save

        return cmd_save(self, rest)

    def _cmd_prompts(self, rest):
        from .prompts import cmd_prompts

        return cmd_prompts(self, rest)

    def _cmd_alias(self, rest):
        from .prompts import cmd_alias

        return cmd_alias(self, rest)

    def _cmd_mcp(self, rest):
        if rest:
            raise UsageError("Usage: %aihubmix mcp  (the MCP servers of mcp.json, whether they start, their tools)")
        from IPython.display import display

        from ..session.mcp import servers_listing

        display(servers_listing(), raw=True)  # this session's keys masked, env and header values never shown

    def _cmd_use(self, rest):
        if len(rest) != 1:
            raise UsageError("Usage: %aihubmix use MODEL")
        settings.model = rest[0]
        print(f"Model: {settings.model}")

    def _cmd_demo(self, rest):
        from . import demo as _demo

        if rest == ["off"]:
            print(_demo.stop(self.session))
        elif rest == ["auto"] and (settings.find_stored_key() or settings.has_key) and not settings.demo:
            print(f"Using {settings.base_url} with the key {settings.masked_key()} (no demo: a key is set).")
        elif not rest or rest == ["auto"]:
            print(_demo.start(self.session))
        else:
            raise UsageError("Usage: %aihubmix demo [auto|off]  (auto: only if no key is set)")

    def _cmd_export(self, rest):
        import shlex

        usage = "Usage: %aihubmix export FILE.ipynb [--thread NAME]"
        try:
            words = shlex.split(" ".join(rest))
        except ValueError as exc:
            raise UsageError(f"{usage} ({exc})") from None
        thread = None
        if "--thread" in words:
            at = words.index("--thread")
            if at + 1 >= len(words):
                raise UsageError(usage)
            thread = words[at + 1]
            del words[at:at + 2]
        if len(words) != 1:
            raise UsageError(usage)
        responses = self._thread_responses(thread) if thread is not None else list(self.session.history)
        from .export import export_notebook

        try:
            path = export_notebook(responses, words[0], thread=thread)
        except (ValueError, OSError) as exc:
            raise UsageError(f"Cannot export: {exc}") from None
        count = len(responses)
        print(f"Exported {count} answer{'s' * (count != 1)} to {path}")

    def _thread_responses(self, name: str) -> list[Any]:
        """The answers of conversation thread NAME, oldest first (threads come with `--thread`)."""
        responses = self.session.threads.responses(name)
        if responses is None:
            raise UsageError(f"--thread: there is no thread named {name!r}.")
        return responses


def _size(size: float) -> str:
    for unit in ("bytes", "KB", "MB"):
        if size < 1024 or unit == "MB":
            return f"{size:,} {unit}" if unit == "bytes" else f"{size:,.1f} {unit}"
        size /= 1024
    return f"{size:,.1f} GB"


def _names() -> list[str]:
    return [name.split()[0] for name in SUBCOMMANDS]
