"""`%%aihubmix` (prompt a model) and `%aihubmix` (key, config, models, use, demo, help)."""

from __future__ import annotations

import argparse
import keyword
import shlex
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments
from traitlets import link

from ..core.exceptions import AihubmixError, InvalidRequestError, StreamInterruptedError
from ..core.protocol import DEFAULT_THREAD, ENDPOINTS, FORMATS, REASONING_EFFORTS
from ..session import state as _session
from ..session.settings import SETTING_NAMES, SettingTraits, settings
from .commands import Subcommands
from .extras import PromptExtras

if TYPE_CHECKING:  # the cell's machinery is imported when a cell first runs: %load_ext stays light
    from ..core.request import Request
    from ..core.response import Response
    from .live import LiveView

__all__ = ["AihubmixMagics", "show_error"]


def _prompt_options(func):
    """The options of a prompt cell, shared by every cell mode."""
    decorators = [
        magic_arguments(),
        argument("-m", "--model", help="model id (default: settings.model)"),
        argument("-e", "--endpoint", choices=ENDPOINTS, help="chat (default) or responses"),
        argument("-s", "--system", help="system prompt (instructions on the responses endpoint)"),
        argument("-t", "--temperature", type=float, help="sampling temperature, 0 to 2"),
        argument("--top-p", type=float, help="nucleus sampling, 0 to 1"),
        argument("--max-tokens", type=int, help="longest answer in tokens (max_output_tokens on responses)"),
        argument("-r", "--reasoning-effort", choices=REASONING_EFFORTS, help="reasoning effort"),
        argument("--no-stream", action="store_true", help="wait for the whole answer instead of streaming"),
        argument("-o", "--out", metavar="VAR", help="also store the Response in the variable VAR"),
        argument("-c", "--continue", dest="continue_", action="store_true",
                 help="continue the previous exchange (without -c or --thread every cell stands alone)"),
        argument("--thread", metavar="NAME", help="continue (or start) the conversation thread NAME"),
        argument("--store", action="store_true",
                 help="responses endpoint: store the answer upstream and continue with previous_response_id"),
        argument("-f", "--format", choices=FORMATS,
                 help="markdown (default), text, code (into a new cell), json, html or math"),
        argument("--schema", metavar="VAR", help="structured JSON output: a JSON Schema dict or a pydantic "
                 "model class in the namespace (implies -f json)"),
        argument("--image", action="append", metavar="PATH|URL|VAR",
                 help="send an image with the prompt: a file, an http(s) URL, or a PIL image / matplotlib "
                 "figure variable (repeatable)"),
        argument("--compare", metavar="MODEL,MODEL,…",
                 help="send the prompt to several models at once and show the answers side by side; "
                 "last_response() is then a Comparison"),
        argument("--no-template", action="store_true",
                 help="send the cell as it is; by default {name}, {obj.attr}, {rows[0]}, {In[3]}, {Out[3]} and "
                 "{Err} are filled in from the namespace ({{name}} gives a literal {name}; other braces, as "
                 "in code or JSON, are left alone)"),
        argument("--over", metavar="EXPR", help="batch: the cell is a template sent once per item of EXPR (a list, "
                 "a Series such as df.column, a DataFrame, any iterable, or the path of a .jsonl/.csv/.parquet "
                 "file); {} is the item, {column} a DataFrame row's or a file row's field; "
                 "the answers go to -o VAR (a list of Response, or a Series of texts) and are shown as a table"),
        argument("--concurrency", type=int, metavar="N", help="with --over: requests in flight at once (default 8)"),
        argument("--estimate", action="store_true",
                 help="with --over: show the projected cost (from the model catalog's prices) and send nothing"),
        argument("--rpm", type=float, metavar="N", help="with --over: send at most N requests a minute"),
        argument("--tpm", type=float, metavar="N", help="with --over: send at most about N tokens a minute"),
        argument("--background", action="store_true",
                 help="with --over: run the batch in the background and return at once: the job (a BatchJob: "
                 "done(), wait(), cancel(), results, summary) goes to -o VAR or is the cell's result, and its "
                 "progress bar keeps updating here while other cells run"),
        argument("--no-resume", action="store_true",
                 help="with --over: no journal (by default the answers are journaled as they arrive, and the "
                 "same cell run again after an interrupt or a crash sends only the items not yet answered)"),
        argument("--cache", action="store_true",
                 help="answer from the local response cache if this exact request was answered before, and store "
                 "the answer in it (`%%aihubmix cache on` does it for every cell)"),
        argument("-p", "--prompt", metavar="NAME",
                 help="run the saved prompt NAME (`%%aihubmix save NAME`): its options and template, with the "
                 "cell's text appended; options on this line win"),
        argument("--context", action="append", metavar="NAME[,NAME…]",
                 help="describe notebook objects in the prompt: a DataFrame's shape, dtypes, nulls, describe() "
                 "and first rows; an array's shape and values; a function's signature and docstring; "
                 "cells:N for the last N code cells; error for the last traceback (repeatable; capped by "
                 "settings.context_max_tokens)"),
        argument("--tools", action="append", metavar="NAME[,NAME…]",
                 help="Python functions in the namespace that the model may call (repeatable); each call is "
                 "shown and waits for approval (buttons in a notebook, y/n in a terminal); the loop goes on "
                 "until the model answers in text"),
        argument("--mcp", action="append", metavar="NAME[,NAME…]",
                 help="the tools of these MCP servers (from .aihubmix/mcp.json, then the personal config folder) "
                 "may be called, with the same approval as --tools (repeatable; combinable with --tools; "
                 "`%%aihubmix mcp` lists them); needs pip install 'aihubmix-magic[mcp]'"),
        argument("--yes", action="store_true", help="with --tools/--mcp: run every call without asking"),
        argument("--max-steps", type=int, metavar="N",
                 help="with --tools/--mcp: at most N steps of tool calls (default 8), then one line says so"),
        argument("--web", action="store_true",
                 help="web search, the hosted tool: {\"type\": \"web_search\"} on responses, web_search_options "
                 "on chat; the cited sources are listed under the answer"),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


@magics_class
class AihubmixMagics(Magics, SettingTraits, Subcommands):
    """Magics for AiHubMix. Every setting is configurable: `%config AihubmixMagics.model = "gpt-4o"`."""

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self.session = _session.current()  # history, threads, demo mode, the shared client
        configured = self.config.get(type(self).__name__, {})
        self._links = []
        for name in SETTING_NAMES:  # one source of truth: these traits mirror `settings`
            if name in configured:
                setattr(settings, name, getattr(self, name))
            self._links.append(link((settings, name), (self, name)))
        self._extras = PromptExtras(self)

    @property
    def _shell(self) -> Any:
        """The IPython shell (always set: the magics are registered on one)."""
        assert self.shell is not None
        return self.shell

    def unlink(self) -> None:
        for pair in self._links:
            pair.unlink()
        self._links = []
        self._extras.close()

    @_prompt_options
    @line_cell_magic
    def aihubmix(self, line: str, cell: str | None = None):
        """Prompt a model on AiHubMix: the cell below the `%%aihubmix` line is the prompt.

        Every cell stands alone (no memory of earlier cells) unless -c/--continue or --thread NAME says
        otherwise. The answer is streamed into the output as Markdown, with a footer
        (model · endpoint · tokens · first token · tokens/s · time). `last_response()` returns it.

        The cell is a template: {name}, {obj.attr}, {rows[0]}, {d['k']}, {In[3]}, {Out[3]}, {Err} are filled
        in from the namespace (a DataFrame as a Markdown table); {{name}} is a literal {name}; any other
        braces (code, JSON) are sent as they are; --no-template turns it off.

        As a line magic: %aihubmix key | config | models [FILTER] | use MODEL | demo [auto|off] |
        history [NAME] | reset [NAME] | help  (`%aihubmix help` lists them all)
        """
        if cell is None and self._extras.runs_saved_prompt(line):  # `%aihubmix -p NAME [options]`
            cell = ""
        if cell is None:
            return self._subcommand(line)
        args = _parse_options(self.aihubmix, line)
        args, cell = self._extras.before(args, line, cell)  # -p NAME, model aliases; remembered for `save`
        if args.out is not None and not (args.out.isidentifier() and not keyword.iskeyword(args.out)):
            raise UsageError(f"-o/--out needs a Python variable name, not {args.out!r}.")
        batch_only = [flag for flag, given in (("--concurrency", args.concurrency is not None), ("--rpm", args.rpm is not None),
                                               ("--tpm", args.tpm is not None), ("--no-resume", args.no_resume),
                                               ("--background", args.background),
                                               ("--estimate", args.estimate)) if given]
        if batch_only and args.over is None:
            raise UsageError(f"{', '.join(batch_only)} goes with --over EXPR (a batch); a single cell sends one request.")
        prompt = cell.strip()
        if not prompt:
            raise UsageError("The cell is empty: write the prompt on the lines below %%aihubmix.")
        from ..services.threads import Thread
        from .formats import OutputFormat
        from .images import image_urls
        from .templates import render_template

        base = self._request(args, prompt)  # every option checked once, before anything is sent
        tools = self._tools(args)
        if tools or args.mcp:
            flag = "--tools" if tools else "--mcp"
            if args.compare is not None:
                raise UsageError(f"{flag} does not go with --compare: each model would run the tools.")
            if args.over is not None and not args.yes:
                raise UsageError(f"--over with {flag} needs --yes: nobody can approve every call of a batch.")
            tools = tools + self._mcp_tools(args, tools)  # the servers start here (McpError: nothing is sent)
            base = base.replace(tools=tools)
        if args.over is not None:
            return self._over(args, base)
        namespace = self._shell.user_ns
        if not args.no_template:
            prompt = render_template(prompt, namespace, max_rows=settings.template_max_rows)
        prompt = self._extras.add_context(args, prompt)  # --context NAME,…: described after the prompt
        images = tuple(image_urls(args.image, namespace))
        if args.compare is not None:
            return self._compare(args, base.replace(prompt=prompt, images=images))
        output = OutputFormat.from_options(args.format, args.schema, namespace)
        if args.store and base.endpoint != "responses":
            raise UsageError("--store works with the responses endpoint only: add -e responses.")
        request = base.replace(prompt=prompt, images=images, format=output.name, schema=output.schema,
                               schema_name=output.schema_name, store=args.store)
        standalone = not (args.continue_ or args.thread)
        threads = self.session.threads
        thread = Thread(DEFAULT_THREAD) if standalone else threads.get_or_create(args.thread)
        request = thread.prepare(request, name=None if standalone else thread.name)
        present = lambda answer: output.present(answer, self._shell)  # noqa: E731
        if tools:
            from ..core.protocol import DEFAULT_MAX_STEPS
            from .toolcell import run_tool_cell

            response = run_tool_cell(self, request, approve=True if args.yes else None,
                                     max_steps=args.max_steps or DEFAULT_MAX_STEPS, out=args.out, cache=args.cache,
                                     present=present, status=self._status_line)
        else:
            response = self._prompt(request, out=args.out, cache=args.cache, present=present)
        if thread.add(request.user_content(), response) and standalone:
            threads.keep(thread)
        return None

    # -- a prompt cell -----------------------------------------------------------------------------------
    def _tools(self, args: argparse.Namespace) -> tuple[Any, ...]:
        """--tools NAME,…: the functions from the namespace, described (UsageError naming what is wrong;
        nothing is sent). --yes and --max-steps need --tools."""
        names = [name.strip() for group in args.tools or () for name in group.split(",") if name.strip()]
        if args.tools is not None and not names:
            raise UsageError("--tools needs the names of functions, e.g. --tools get_weather,query_df")
        if args.mcp is not None and not _mcp_names(args):
            raise UsageError("--mcp needs the names of MCP servers from mcp.json, e.g. --mcp notes,search")
        if not names and args.mcp:
            if args.max_steps is not None and args.max_steps < 1:
                raise UsageError(f"--max-steps must be 1 or more, not {args.max_steps}")
            return ()
        if not names:
            if args.yes:
                raise UsageError("--yes goes with --tools: it runs the tool calls without asking.")
            if args.max_steps is not None:
                raise UsageError("--max-steps goes with --tools.")
            return ()
        if args.max_steps is not None and args.max_steps < 1:
            raise UsageError(f"--max-steps must be 1 or more, not {args.max_steps}")
        from ..core.exceptions import ToolDefinitionError
        from ..core.tools import describe_tools

        namespace = self._shell.user_ns
        functions = []
        for name in dict.fromkeys(names):
            if not name.isidentifier():
                raise UsageError(f"--tools {name}: not a name of a Python function.")
            if name not in namespace:
                raise UsageError(f"--tools {name}: there is no {name} in the notebook (define the function first).")
            if not callable(namespace[name]):
                raise UsageError(f"--tools {name}: {name} is a {type(namespace[name]).__name__}, not a function.")
            functions.append(namespace[name])
        try:
            return describe_tools(functions)
        except ToolDefinitionError as exc:
            raise UsageError(f"--tools: {exc}") from None

    def _mcp_tools(self, args: argparse.Namespace, taken: tuple[Any, ...]) -> tuple[Any, ...]:
        """--mcp NAME,…: the servers' tools (started on first use, kept for the kernel's life), named apart
        from the --tools functions."""
        names = _mcp_names(args)
        if not names:
            return ()
        from ..session.mcp import mcp_tools

        return tuple(mcp_tools(*names, taken=[tool.name for tool in taken]))

    def _request(self, args: argparse.Namespace, prompt: str) -> Request:
        """The settings, overridden by this cell's options, as a typed request; bad values raise UsageError
        (nothing is sent)."""
        from ..core.request import Request

        if args.model is not None and not args.model.strip() or args.model is None and not settings.model.strip():
            raise UsageError("No model: use -m MODEL or `%aihubmix use MODEL`.")
        try:
            return Request.from_settings(
                settings, prompt=prompt, model=args.model, endpoint=args.endpoint, system=args.system,
                temperature=args.temperature, top_p=args.top_p, max_tokens=args.max_tokens,
                reasoning_effort=args.reasoning_effort, stream=False if args.no_stream else None,
                web_search=True if getattr(args, "web", False) else None,
                max_steps=getattr(args, "max_steps", None)
                if getattr(args, "tools", None) or getattr(args, "mcp", None) else None)
        except InvalidRequestError as exc:
            raise UsageError(f"--{exc.field.replace('_', '-')}: {exc.reason}") from None

    def _view(self) -> LiveView:
        from .display import NotebookView, TerminalView
        from .live import display_mode

        view = NotebookView() if display_mode() == "notebook" else TerminalView()
        return self._extras.view(view)  # with the "Context sent" block of --context above the answer

    def _prompt(self, request: Request, *, out: str | None = None, cache: bool = False,
                present: Callable[[Response], list[dict[str, Any]] | None] | None = None,
                kind: str = "cell") -> Response:
        """Send the request, stream the answer into the cell; return the Response.
        `present(response)`: display data in place of the Markdown answer. `kind`: what the log calls it."""
        from ..services import catalog as _catalog
        from ..services import cost as _cost
        from .display import consume

        _cost.check_budget()  # BudgetExceededError before anything is sent
        self._notes = self._warn(_catalog.request_warnings_for(request, budget_set=settings.budget is not None))
        client = self.session.client(cache=cache)
        view = self._view()
        retries: list[str] = []

        def on_retry(number: int, delay: float, reason: str) -> None:
            retries.append(reason)
            view.note(f"retrying in {delay:.1f} s ({reason})")

        try:
            response = client.send(request, on_retry=on_retry)
        except AihubmixError as exc:
            view.clear_note()  # a "retrying in N s" note must not outlive the call
            if exc.response is not None:
                self._keep(exc.response, out)
                from ..session import log as _log

                _log.record([exc.response], kind)  # a failed exchange is logged too, with its error
            raise
        except KeyboardInterrupt:  # while connecting, waiting for the first byte, or between retries
            view.clear_note()
            raise StreamInterruptedError("Interrupted before the answer arrived: the request was abandoned and "
                                         "nothing was received.") from None
        self._keep(response, out)
        status = self._status_line(retries)
        try:
            if response.stream and not response.done:
                consume(response, view)
        except KeyboardInterrupt:
            view.finish(response, status)
            self._finished(response, kind)
            raise StreamInterruptedError(
                f"Interrupted: the stream was stopped; the {len(str(response)):,} characters received are kept "
                "in last_response()."
            ) from None
        except AihubmixError:
            view.finish(response, status)
            self._finished(response, kind)
            raise
        view.finish(response, status, present(response) if present is not None else None)
        self._finished(response, kind)
        return response

    def _finished(self, response: Response, kind: str = "cell") -> None:
        """Tell the control panel's status line (through `settings.last_call`) that a call ended, and write
        the exchange to the log (`kind`: cell or fix)."""
        from ..services import cost as _cost
        from ..session import log as _log
        from .display import footer_text

        _cost.record(response)  # this session's spend (before the status line shows it)
        _log.record([response], kind)
        settings.last_call = footer_text(response)
        self._warn(getattr(self, "_notes", []), again=True)
        self._notes = []

    def _warn(self, notes: list[str], *, again: bool = False) -> list[str]:
        """Show one line per warning (the request goes anyway). In a notebook they are shown again under the
        footer once the answer is complete, as drawing it clears the cell."""
        from .live import display_mode, show_notes

        if again and display_mode() != "notebook":
            return notes
        show_notes(notes)
        return notes

    def _over(self, args: argparse.Namespace, base: Request) -> Any:
        """`%%aihubmix --over EXPR`: the cell is a template, sent once per item by `batch()`."""
        from ..core.exceptions import BatchInputError
        from .batch import batch, check_template, results_table

        conflicts = [flag for flag, given in (("-c", args.continue_), ("--thread", args.thread), ("--store", args.store),
                                              ("--image", args.image), ("--schema", args.schema),
                                              ("-f", args.format)) if given]
        if conflicts:
            raise UsageError(f"--over cannot be combined with {', '.join(conflicts)}: each item is sent on its own.")
        if args.concurrency is not None and args.concurrency < 1:
            raise UsageError(f"--concurrency must be 1 or more, not {args.concurrency}")
        for flag, value in (("--rpm", args.rpm), ("--tpm", args.tpm)):
            if value is not None and not 0 < value < float("inf"):
                raise UsageError(f"{flag} must be a positive number (a limit per minute), not {value:g}")
        try:
            items = eval(args.over, self._shell.user_ns)  # the user's own expression, as %timeit evaluates one
        except Exception as exc:
            raise UsageError(f"--over {args.over}: {type(exc).__name__}: {exc}") from None
        template = base.text
        try:
            check_template(template, items)
            # batch() shows the catalog's notes on the model before sending, as a cell does
            results = batch(items, model=base.model, endpoint=base.endpoint, concurrency=args.concurrency or 8,
                            template=template, system=base.system, temperature=base.temperature,
                            top_p=base.top_p, max_tokens=base.max_tokens, reasoning_effort=base.reasoning_effort,
                            cache=True if args.cache else None, estimate=args.estimate, rpm=args.rpm,
                            tpm=args.tpm, resume=not args.no_resume, web_search=base.web_search or None,
                            wait=not args.background,
                            **({"tools": list(base.tools), "approve": True, "max_steps": args.max_steps}
                               if base.tools else {}))
        except BatchInputError as exc:
            raise UsageError(f"--over {args.over}: {exc}") from None
        if args.out:
            self._shell.user_ns[args.out] = results
        from IPython.display import display

        if args.background and not args.estimate:  # a BatchJob: its progress bar is above, it goes on
            return None if args.out else results
        if args.estimate:  # a CostEstimate: nothing was sent
            display({"text/markdown": results._repr_markdown_(), "text/plain": str(results)}, raw=True)
            return None
        display(results_table(results, out=args.out, items=items, template=template), raw=True)
        return None

    def _compare(self, args: argparse.Namespace, request: Request) -> None:
        """--compare: the same prompt to several models at once, in columns (see _compare.py)."""
        from ..services import catalog as _catalog
        from ..services import cost as _cost
        from .compare import parse_models, run_comparison
        from .live import display_mode

        models = parse_models(args.compare)
        clashes = [flag for flag, used in (("-m", args.model), ("-c", args.continue_), ("--thread", args.thread),
                                           ("--store", args.store), ("-f", args.format not in (None, "markdown")),
                                           ("--schema", args.schema)) if used]
        if clashes:
            raise UsageError(f"--compare does not go with {', '.join(clashes)}: it names the models itself and "
                             "shows Markdown answers of single cells.")
        _cost.check_budget()  # BudgetExceededError before anything is sent
        requests = [request.replace(model=model) for model in models]
        self._warn([note for each in requests for note in _catalog.request_warnings_for(
            each, budget_set=settings.budget is not None)])
        try:
            run_comparison(requests, client=self.session.client(), notebook=display_mode() == "notebook",
                           status_line=self._status_line([]), keep=lambda comparison: self._keep(comparison, args.out))
        finally:
            _cost.record(self.session.last_response())  # the Comparison kept before sending: each answer's cost
        return None

    def _status_line(self, retries: list[str]) -> str | None:
        parts = []
        if retries:
            parts.append(f"{len(retries)} retr{'y' if len(retries) == 1 else 'ies'}")
        if settings.demo:
            parts.append("simulated")
        return " · ".join(parts) or None

    def _keep(self, response: Any, out: str | None) -> None:
        self.session.record(response)
        if out:
            self._shell.user_ns[out] = response

    # -- %aihubmix SUBCOMMAND ----------------------------------------------------------------------------


def _parse_options(magic: Any, line: str) -> argparse.Namespace:
    """Like magic_arguments' parse_argstring, but with shell quoting: -s "Be brief." loses its quotes."""
    try:
        argv = shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"Cannot read the options: {exc} (check the quotes).") from None
    return magic.parser.parse_args(argv)


def _mcp_names(args: argparse.Namespace) -> list[str]:
    return [name.strip() for group in getattr(args, "mcp", None) or () for name in group.split(",") if name.strip()]


def show_error(shell: Any, etype: type[BaseException], value: BaseException, tb: Any,
               tb_offset: int | None = None) -> list[str]:
    """Our errors are shown as one line, never as a traceback of our internals."""
    stb = [f"\x1b[0;31m{etype.__name__}\x1b[0m: {value}"]
    shell._showtraceback(etype, value, stb)
    return stb
