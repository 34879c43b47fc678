"""Saved prompts (`%aihubmix save NAME`, `%%aihubmix -p NAME`, `%aihubmix prompts`) and model aliases
(`%aihubmix alias fast gpt-4o-mini`, then `-m fast`).

Where they live (the notebook's folder wins over the personal folder):

- next to the notebook: `./.aihubmix/prompts/NAME.md` and `./.aihubmix/aliases.json`, where `.` is the
  kernel's working directory, which Jupyter sets to the notebook's folder; so a teacher can ship a prompt
  pack inside a course repository;
- personal: `$AIHUBMIX_CONFIG_DIR`, else `$XDG_CONFIG_HOME/aihubmix-magic` (`~/.config/aihubmix-magic`;
  `%APPDATA%\\aihubmix-magic` on Windows), with the same layout. `save … --user` and `alias … --user` write
  there.

A prompt file is Markdown with front matter: one `option: value` line per option of the `%%aihubmix` line
that differs from its default, under the option's long name (`model: gpt-4o-mini`, `temperature: 0.2`,
`no-stream: true`, `image: [a.png, b.png]`, `context: df`), and an optional `description:` shown by
`%aihubmix prompts`; the body is the cell's template, `{fields}` unfilled. The front matter is the YAML
subset that needs no YAML library: scalars, "quoted strings" and [lists]. `-c`, `--thread`, `--store` and
`-p` are never saved: a saved prompt starts no conversation of its own.

`%%aihubmix -p NAME` runs it: the cell's own text (if any) is appended to the template after a blank line,
and options on the line win over the saved ones (a saved flag such as `no-stream: true` stays on).

Aliases are JSON, `{"fast": "gpt-4o-mini"}`. An alias resolves in `-m`, `--compare`, `%aihubmix use`d
defaults and the panel's model field, one step (an alias of an alias is not followed). Nothing here ever
writes the API key: a prompt or an alias that would contain it is refused.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError

__all__ = ["SavedPrompt", "alias_rows", "alias_table", "argv_from_options", "check_name", "config_places",
           "list_prompts", "load_aliases", "load_prompt", "options_from_args", "project_dir", "read_aliases",
           "save_prompt", "user_dir", "write_aliases"]

NOT_SAVED = {"continue", "thread", "store", "prompt"}  # long option names that a saved prompt never holds
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_PLAIN = re.compile(r"[A-Za-z0-9_./@+()-][A-Za-z0-9_ ./@+(),-]*")


def project_dir() -> Path:
    """`./.aihubmix` in the kernel's working directory (the notebook's folder in Jupyter)."""
    return Path.cwd() / ".aihubmix"


def user_dir() -> Path:
    """The personal folder: $AIHUBMIX_CONFIG_DIR, else the platform's config directory + aihubmix-magic."""
    configured = os.environ.get("AIHUBMIX_CONFIG_DIR")
    if configured:
        return Path(configured).expanduser()
    if sys.platform == "win32" and os.environ.get("APPDATA"):
        return Path(os.environ["APPDATA"]) / "aihubmix-magic"
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "aihubmix-magic"


def config_places() -> list[tuple[str, Path]]:
    """Where configuration is looked up, first wins: ("notebook folder", ./.aihubmix), ("personal", user_dir()).
    Saved prompts, aliases and MCP servers (mcp.json) share it."""
    try:
        places = [("notebook folder", project_dir())]
    except OSError:  # the working directory was deleted: only the personal folder is left
        places = []
    return places + [("personal", user_dir())]


_places = config_places


# -- prompt files --------------------------------------------------------------------------------------


@dataclass
class SavedPrompt:
    name: str
    options: dict
    template: str
    path: Path
    where: str  # "notebook folder" or "personal"

    @property
    def description(self) -> str:
        text = self.options.get("description")
        if isinstance(text, str) and text.strip():
            return text.strip()
        first = next((line.strip() for line in self.template.splitlines() if line.strip()), "")
        return first if len(first) <= 70 else first[:69] + "…"


def check_name(name: str, what: str = "prompt") -> str:
    if not _NAME.fullmatch(name):
        raise UsageError(f"{what.capitalize()} name {name!r}: use letters, digits, '_', '-' or '.' (at most 64), "
                         "starting with a letter or digit.")
    return name


def load_prompt(name: str) -> SavedPrompt:
    """The saved prompt NAME, the notebook folder's first; UsageError if there is none or it is unreadable."""
    check_name(name)
    for where, folder in _places():
        path = folder / "prompts" / f"{name}.md"
        if path.is_file():
            try:
                options, template = parse_file(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, ValueError) as exc:
                raise UsageError(f"Saved prompt {name!r} ({path}) cannot be read: {exc}") from None
            return SavedPrompt(name, options, template, path, where)
    known = sorted({p.name for p, _ in list_prompts()})
    hint = f" Saved prompts: {', '.join(known)}." if known else " None is saved yet: `%aihubmix save NAME`."
    raise UsageError(f"No saved prompt named {name!r}.{hint}")


def list_prompts() -> list[tuple[SavedPrompt, bool]]:
    """Every saved prompt, with True for one hidden by a prompt of the same name in the notebook folder."""
    found: list[tuple[SavedPrompt, bool]] = []
    seen: set[str] = set()
    for where, folder in _places():
        for path in sorted((folder / "prompts").glob("*.md")):
            name = path.stem
            try:
                options, template = parse_file(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, ValueError) as exc:
                options, template = {"description": f"(unreadable: {exc})"}, ""
            found.append((SavedPrompt(name, options, template, path, where), name in seen))
            seen.add(name)
    return found


def save_prompt(name: str, options: dict, template: str, *, user: bool = False, keys: Iterable[str] = ()) -> Path:
    check_name(name)
    text = render_file(options, template)
    _refuse_key(text, f"prompt {name!r}", keys)
    folder = (user_dir() if user else project_dir()) / "prompts"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.md"
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"Cannot save the prompt in {folder}: {exc}") from None
    return path


def parse_file(text: str) -> tuple[dict, str]:
    """(front matter options, template) of a prompt file; ValueError for malformed front matter."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        return {}, text.strip("\n")
    try:
        end = next(index for index in range(1, len(lines)) if lines[index].strip() == "---")
    except StopIteration:
        raise ValueError("the front matter has no closing '---' line") from None
    options: dict = {}
    key = None
    for number, line in enumerate(lines[1:end], start=2):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        item = re.fullmatch(r"\s+-\s+(.*)", line)
        if item and key is not None and isinstance(options.get(key), list):
            options[key].append(_scalar(item.group(1)))
            continue
        match = re.fullmatch(r"([A-Za-z][\w-]*)\s*:\s*(.*)", line)
        if not match:
            raise ValueError(f"line {number} of the front matter is not 'option: value': {line.strip()!r}")
        key, value = match.group(1), match.group(2).strip()
        options[key] = [] if value == "" else _scalar(value)
    return options, "\n".join(lines[end + 1:]).strip("\n")


def render_file(options: dict, template: str) -> str:
    lines = ["---"] + [f"{key}: {_render(value)}" for key, value in options.items()] + ["---"]
    return "\n".join(lines) + "\n" + template.strip("\n") + "\n"


def _scalar(value: str):
    try:
        return json.loads(value)
    except ValueError:
        pass
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value[1:-1].replace("''", "'")
    if value.lower() in ("yes", "on"):
        return True
    if value.lower() in ("no", "off"):
        return False
    if value.startswith("[") and value.endswith("]"):  # [a.png, b.png] without quotes
        return [_scalar(part.strip()) for part in value[1:-1].split(",") if part.strip()]
    return value


def _render(value) -> str:
    if isinstance(value, bool) or value is None or isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return json.dumps(list(value), ensure_ascii=False)
    text = str(value)
    if _PLAIN.fullmatch(text) and text == text.strip() and _scalar(text) == text:
        return text
    return json.dumps(text, ensure_ascii=False)


def _long_options(parser: Any) -> dict[str, Any]:
    """long option name (without --) -> its argparse action."""
    return {option[2:]: action for action in parser._actions for option in action.option_strings
            if option.startswith("--")}


def options_from_args(args, parser) -> dict:
    """The options of a parsed `%%aihubmix` line that differ from their defaults, as front matter."""
    defaults = vars(parser.parse_args([]))
    options = {}
    for key, action in _long_options(parser).items():
        if key in NOT_SAVED:
            continue
        value = getattr(args, action.dest, None)
        if value is None or value == defaults.get(action.dest):
            continue
        options[key] = list(value) if isinstance(value, list) else value
    return options


def argv_from_options(options: dict, parser, source: str) -> list[str]:
    """Front matter options -> argv for the `%%aihubmix` parser; UsageError naming `source` if one is wrong."""
    actions = _long_options(parser)
    argv: list[str] = []
    for key, value in options.items():
        if key == "description":
            continue
        action = actions.get(key)
        if action is None or key in NOT_SAVED:
            raise UsageError(f"{source}: {key!r} is not an option a saved prompt can have "
                             f"(use the long names of `%%aihubmix?`, such as model, system, temperature).")
        option = f"--{key}"
        if action.nargs == 0:  # a flag
            if value is True:
                argv.append(option)
            elif value not in (False, None):
                raise UsageError(f"{source}: {key} is a flag; write `{key}: true` or leave it out.")
        elif isinstance(value, list):
            if type(action).__name__ != "_AppendAction":
                raise UsageError(f"{source}: {key} takes one value, not a list.")
            for item in value:
                argv += [option, str(item)]
        elif value is not None:
            argv += [option, str(value)]
    return argv


def _refuse_key(text: str, what: str, keys: Iterable[str]) -> None:
    if any(key and key in text for key in keys):
        raise UsageError(f"The {what} would contain the API key, so it was not saved.")


# -- aliases -------------------------------------------------------------------------------------------


def read_aliases(folder: Path) -> dict[str, str]:
    path = folder / "aliases.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise UsageError(f"The model aliases in {path} cannot be read: {exc}") from None
    if not isinstance(data, dict):
        raise UsageError(f"The model aliases in {path} must be a JSON object of alias: model id.")
    return {str(name): str(model) for name, model in data.items()}


def alias_table() -> list[tuple[str, str, str, bool]]:
    """(alias, model, where, hidden) for every alias; the notebook folder's first."""
    rows, seen = [], set()
    for where, folder in _places():
        for name, model in sorted(read_aliases(folder).items()):
            rows.append((name, model, where, name in seen))
            seen.add(name)
    return rows


def load_aliases() -> dict[str, str]:
    """alias -> model id, the notebook folder's winning over the personal ones."""
    merged: dict[str, str] = {}
    for _, folder in reversed(_places()):
        merged.update(read_aliases(folder))
    return merged


def resolve_model(name: str | None, aliases: dict[str, str] | None = None) -> str | None:
    if not name:
        return name
    aliases = load_aliases() if aliases is None else aliases
    return aliases.get(name, name)


def write_aliases(folder: Path, aliases: dict[str, str], keys: Iterable[str] = ()) -> Path:
    path = folder / "aliases.json"
    text = json.dumps(dict(sorted(aliases.items())), indent=2, ensure_ascii=False) + "\n"
    _refuse_key(text, "alias file", keys)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"Cannot write the aliases to {path}: {exc}") from None
    return path


def alias_rows(needle: str = "") -> list[tuple[str, str]]:
    """(alias, model) of the aliases in force whose name or model contains `needle`, for `%aihubmix models`."""
    try:
        aliases = load_aliases()
    except UsageError:
        return []
    return [(name, model) for name, model in sorted(aliases.items())
            if needle in name.lower() or needle in model.lower()]




