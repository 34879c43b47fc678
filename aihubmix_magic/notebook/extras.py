"""What a prompt cell gets from saved prompts, model aliases and `--context`, in one object per magics
instance, so that `_magics.py` only calls it:

    args, cell = self._extras.before(args, line, cell)   # -p NAME, aliases, remembered for `save`
    prompt = self._extras.add_context(args, prompt)      # --context: the kernel objects described
    view = self._extras.view(view)                       # "Context sent (≈ N tokens)" above the answer

It also records the last failed cell for `%aihubmix fix` and `--context error` (see _fix.FailureRecorder).
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

from IPython.core.error import UsageError

from ..session.settings import settings
from .failures import FailureRecorder

if TYPE_CHECKING:  # loaded when a cell first needs them: %load_ext stays light
    from .context import Context

__all__ = ["HeaderPublisher", "PromptExtras"]


class HeaderPublisher:
    """A display publisher that shows a header first and shows it again after every clear, so the context
    block stays above the live answer and above its final rendering."""

    def __init__(self, inner, header: dict) -> None:
        self.inner = inner
        self.header = header
        self.inner.show(header, None)

    def show(self, data: dict, display_id: str | None = None, metadata: dict | None = None) -> None:
        self.inner.show(data, display_id, metadata=metadata)

    def update(self, data: dict, display_id: str) -> None:
        self.inner.update(data, display_id)

    def clear(self) -> None:
        self.inner.clear()
        self.inner.show(self.header, None)


class PromptExtras:
    """Per-kernel state of issue 14's features: the previous cell (for `save`), the pending context block,
    the failure recorder."""

    def __init__(self, magics) -> None:
        self.magics = magics
        self.last_cell: tuple[dict, str] | None = None  # (options as front matter, template)
        self.failures = FailureRecorder(getattr(magics, "shell", None))
        self._context: Context | None = None

    def close(self) -> None:
        self.failures.close()

    # -- before anything is sent -----------------------------------------------------------------------
    def before(self, args, line: str, cell: str):
        """`-p NAME`: the saved options (the line's win) and template (+ the cell's text); remember the cell
        for `%aihubmix save`; resolve model aliases. Returns (args, cell)."""
        from ..store.prompts import argv_from_options, load_prompt, options_from_args
        from .context import parse_names

        self._context = None
        parser = self.magics.aihubmix.parser
        if args.prompt is not None:
            saved = load_prompt(args.prompt)
            source = f"Saved prompt {saved.name!r} ({saved.path})"
            argv = argv_from_options(saved.options, parser, source)
            try:
                args = parser.parse_args(argv + shlex.split(line))  # later options win: the line's
            except UsageError as exc:
                raise UsageError(f"{source}: {exc}") from None
            extra = cell.strip("\n")
            cell = saved.template + (f"\n\n{extra}" if extra.strip() else "")
        self.last_cell = (options_from_args(args, parser), cell)
        if args.context and args.over is not None:
            raise UsageError("--context does not go with --over: each item is sent on its own; put what the "
                             "items need into the template.")
        parse_names(args.context)  # a malformed --context is a UsageError before anything else
        self.resolve_models(args)
        return args, cell

    @staticmethod
    def runs_saved_prompt(line: str) -> bool:
        """A line magic `%aihubmix -p NAME [options]`: a saved prompt run with no extra text."""
        words = line.split()
        return bool(words) and words[0].startswith("-") and any(
            word in ("-p", "--prompt") or word.startswith("--prompt=") for word in words)

    def resolve_models(self, args) -> None:
        """Model aliases: -m, --compare, and the default model when it is an alias."""
        from ..store.prompts import load_aliases

        aliases = load_aliases()
        if not aliases:
            return
        if args.model:
            args.model = aliases.get(args.model, args.model)
        elif settings.model in aliases and not getattr(args, "compare", None):
            args.model = aliases[settings.model]  # the default model is an alias (`%aihubmix use fast`)
        if getattr(args, "compare", None):
            args.compare = ",".join(aliases.get(m.strip(), m.strip()) for m in args.compare.split(","))

    # -- the prompt ------------------------------------------------------------------------------------
    def add_context(self, args, prompt: str) -> str:
        """--context: append the described objects; the block above the answer shows what was added."""
        from .context import parse_names

        names = parse_names(args.context)
        if not names:
            return prompt
        prompt = self.context_for(names, prompt)
        if getattr(args, "compare", None) is not None:  # compare paints its own grid: show the block now
            self._show_now()
        return prompt

    def context_for(self, names: list[str], prompt: str, *, failure=None) -> str:
        if not names:
            return prompt
        from .context import build_context

        context = build_context(names, self.magics.shell, settings.context_max_tokens, failure=failure,
                                recorder=self.failures)
        self._context = context
        return context.add_to(prompt)

    def _show_now(self) -> None:
        context, self._context = self._context, None
        if context is None:
            return
        from .live import display_mode

        if display_mode() == "notebook":
            from IPython.display import display

            display(context.display_data(), raw=True)
        else:
            print(context.summary_line() + "\n")

    # -- the display -----------------------------------------------------------------------------------
    def view(self, view):
        """The view of a prompt cell, with the pending context block above the answer."""
        from .display import NotebookView, TerminalView

        context, self._context = self._context, None
        if context is None:
            return view
        if isinstance(view, NotebookView):
            view.publisher = HeaderPublisher(view.publisher, context.display_data())
        elif isinstance(view, TerminalView):
            view.stream.write(context.summary_line() + "\n\n")
        return view
