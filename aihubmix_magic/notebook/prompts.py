"""`%aihubmix save NAME`, `%aihubmix prompts` and `%aihubmix alias`: the subcommands over the saved prompts
and model aliases that `store.prompts` keeps on disk."""

from __future__ import annotations

import shlex

from IPython.core.error import UsageError

from ..session.state import current
from ..store.prompts import (
    alias_table,
    check_name,
    list_prompts,
    load_aliases,
    project_dir,
    read_aliases,
    save_prompt,
    user_dir,
    write_aliases,
)

__all__ = ["cmd_alias", "cmd_prompts", "cmd_save"]


def _words(rest: list[str], usage: str) -> list[str]:
    try:
        return shlex.split(" ".join(rest))
    except ValueError as exc:
        raise UsageError(f"{usage} ({exc})") from None


def cmd_save(magics, rest: list[str]) -> None:
    """`%aihubmix save NAME [--user]`: save the previous %%aihubmix cell (options and template)."""
    usage = "Usage: %aihubmix save NAME [--user]"
    words = _words(rest, usage)
    user = "--user" in words
    words = [word for word in words if word != "--user"]
    if len(words) != 1 or words[0].startswith("-"):
        raise UsageError(usage)
    name = check_name(words[0])
    last = magics._extras.last_cell
    if last is None:
        raise UsageError("Nothing to save: no %%aihubmix cell has run in this session yet.")
    options, template = last
    if not template.strip():
        raise UsageError("The previous %%aihubmix cell is empty: there is no prompt to save.")
    replaced = ((user_dir() if user else project_dir()) / "prompts" / f"{name}.md").exists()
    path = save_prompt(name, options, template, user=user, keys=current().keys())
    shown = " ".join(f"--{k}" if v is True else f"--{k} {shlex.quote(str(v))}" for k, v in options.items()
                     if not isinstance(v, list)) or "no options"
    print(f"{'Replaced' if replaced else 'Saved'} prompt {name!r} ({shown}) in {path}; "
          f"run it with `%%aihubmix -p {name}`.")


def cmd_prompts(magics, rest: list[str]) -> None:
    """`%aihubmix prompts`: the saved prompts, the notebook folder's first."""
    if rest:
        raise UsageError("Usage: %aihubmix prompts")
    prompts = list_prompts()
    if not prompts:
        print(f"No saved prompts: `%aihubmix save NAME` saves the previous %%aihubmix cell in "
              f"{project_dir() / 'prompts'} (--user: {user_dir() / 'prompts'}).")
        return
    from IPython.display import display

    table = ["| prompt | where | options | template |", "|---|---|---|---|"]
    plain = []
    for prompt, hidden in prompts:
        options = ", ".join(f"{k}={v}" for k, v in prompt.options.items() if k != "description")
        where = prompt.where + (" (hidden by the notebook folder's)" if hidden else "")
        table.append(f"| `{prompt.name}` | {where} | {_cell(options)} | {_cell(prompt.description)} |")
        plain.append(f"{prompt.name:<20} {where:<16} {options}  {prompt.description}")
    display({"text/markdown": "\n".join(table), "text/plain": "\n".join(plain)}, raw=True)


def cmd_alias(magics, rest: list[str]) -> None:
    """`%aihubmix alias [NAME [MODEL | --remove]] [--user]`."""
    usage = "Usage: %aihubmix alias NAME MODEL [--user] | alias NAME --remove [--user] | alias"
    words = _words(rest, usage)
    user = "--user" in words
    remove = "--remove" in words
    words = [word for word in words if word not in ("--user", "--remove")]
    if any(word.startswith("-") for word in words) or len(words) > 2 or (remove and len(words) != 1):
        raise UsageError(usage)
    folder = user_dir() if user else project_dir()
    if not words:
        rows = alias_table()
        if not rows:
            print("No model aliases: `%aihubmix alias fast gpt-4o-mini` makes one (then `-m fast`).")
            return
        for name, model, where, hidden in rows:
            print(f"{name:<16} → {model:<32} {where}{' (hidden by the notebook folder’s)' if hidden else ''}")
        return
    name = check_name(words[0], "alias")
    aliases = read_aliases(folder)
    if remove:
        if name not in aliases:
            raise UsageError(f"There is no alias {name!r} in {folder / 'aliases.json'}.")
        del aliases[name]
        path = write_aliases(folder, aliases, current().keys())
        print(f"Alias {name!r} removed from {path}.")
        return
    if len(words) == 1:
        known = load_aliases().get(name)
        print(f"{name} → {known}" if known else f"No alias named {name!r}.")
        return
    model = words[1]
    if "," in model or not model.strip():
        raise UsageError(f"Alias {name}: {model!r} is not a model id.")
    aliases[name] = model
    path = write_aliases(folder, aliases, current().keys())
    print(f"Alias: `-m {name}` now means {model} (kept in {path}).")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
