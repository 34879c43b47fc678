"""Asking the user whether a tool call may run: a widget prompt in a notebook, a y/n question in a terminal,
and nobody (the call is skipped) where nobody can answer.

    answer = ask(run, where="notebook")   # "run", "skip", "always" (for the rest of the cell) or "timeout"

**How a notebook cell waits for a click.** A cell's code runs on the kernel's main thread, and that thread
is also the one that handles the messages from the frontend, so a cell that simply waits never sees the
click. ipykernel 7 has *subshells* (JEP 91): threads with their own event loop that handle shell messages
while the main thread is busy, and it routes a widget's comm messages to the subshell its
`_reply_subshell_for` names. So the prompt's buttons are sent to a subshell of our own (created once per
kernel through the shell channel thread's control socket, as a `create_subshell_request` does): the
click is handled there and sets an event the cell waits on, in short slices so that an interrupt (■)
stops it at once. Nothing else changes hands: the execute requests of "Run all" stay queued for the main
thread, untouched. (jupyter-ui-poll, the package that does this for older kernels, re-enters the
kernel's `do_one_iteration()`, which ipykernel 7 no longer has, so it would wait forever here.)

**When no click arrives.** Some frontends show the buttons but never deliver their clicks (widget messages
lost between the page and the kernel). After `HINT_AFTER` seconds without an answer a line under the buttons
says what to do: interrupt (■) and run the cell again with `--yes`, or reload the page. It is a plain
output, not a widget, so it shows even where widgets are broken. `settings.approval_timeout` (seconds; off
by default) skips the call once that long has passed ("timeout": the step says so).

Where that is not available (an older ipykernel, another kernel), the prompt is a line of text read with
`input()`, which every Jupyter frontend that allows stdin shows as a text box. A frontend that cannot
answer (nbclient, papermill: `allow_stdin` off) cannot click a button either: the call is skipped.
"""

from __future__ import annotations

import html
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["HINT_AFTER", "Answer", "ask", "default_asker", "nobody_can_answer"]

Answer = str  # "run" | "skip" | "always" | "timeout"
_WAIT_SLICE = 0.1  # seconds between looks at the event: an interrupt is taken at once
HINT_AFTER = 20.0  # seconds without a click before the line that says what to do appears


def nobody_can_answer(where: str) -> bool:
    """True when no one can answer a prompt: a kernel whose frontend does not allow stdin (nbclient,
    papermill), or a terminal / script whose stdin is not interactive."""
    kernel = _kernel()
    if kernel is not None:
        return not getattr(kernel, "_allow_stdin", False)
    stdin = sys.stdin
    try:
        return stdin is None or not stdin.isatty()
    except (AttributeError, ValueError):
        return True


def ask(summary: str, detail: str, *, where: str) -> Answer:
    """Ask whether the call `summary` (e.g. `get_weather(city='Paris')`) may run. `where` is "notebook" or
    "terminal". Returns "run", "skip", "always", or "timeout" (the buttons waited `settings.approval_timeout`
    seconds). KeyboardInterrupt goes on up."""
    if where == "notebook" and _kernel() is not None:
        waiter = _subshell_waiter()
        if waiter is not None:
            return _ask_with_buttons(summary, detail, waiter)
    return _ask_with_input(summary)


def _kernel() -> Any:
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return getattr(shell, "kernel", None)


# -- a line of text ----------------------------------------------------------------------------------
def _ask_with_input(summary: str) -> Answer:
    while True:
        try:
            reply = input(f"Run {summary}? [y]es / [n]o / [a]lways for this cell: ")
        except EOFError:
            return "skip"
        reply = reply.strip().lower()
        if reply in ("y", "yes"):
            return "run"
        if reply in ("n", "no", ""):
            return "skip"
        if reply in ("a", "always"):
            return "always"


# -- buttons in a notebook ---------------------------------------------------------------------------
class _SubshellWaiter:
    """Routes the comm messages of a widget to a subshell of ours, where they are handled while the main
    thread waits (ipykernel >= 7.4)."""

    def __init__(self, kernel: Any, subshell_id: str) -> None:
        self.kernel = kernel
        self.subshell_id = subshell_id

    def route(self, widget: Any) -> None:
        """Send `widget`'s comm messages from the frontend to the subshell. Call it once the widget is built
        and before it is shown (a click may come at once); the comm resets the route whenever it publishes
        from the main thread, so nothing may change the widget while the cell waits."""
        comm = getattr(widget, "comm", None)
        if comm is not None:
            comm._reply_subshell_id = self.subshell_id


_waiter: _SubshellWaiter | None = None
_waiter_lock = threading.Lock()


def _subshell_waiter() -> _SubshellWaiter | None:
    """The kernel's subshell for prompts (created on first use), or None where subshells cannot do it."""
    global _waiter
    kernel = _kernel()
    with _waiter_lock:
        if _waiter is not None and _waiter.kernel is kernel:
            return _waiter
        try:
            import comm as comm_module

            if not getattr(kernel, "_supports_kernel_subshells", False):
                return None
            probe = comm_module.create_comm  # ipykernel's comms route by `_reply_subshell_for` (7.4+)
            from ipykernel.comm.comm import BaseComm

            if probe is None or not hasattr(BaseComm, "_reply_subshell_for"):
                return None
            socket = kernel.shell_channel_thread.manager.control_to_shell_channel.from_socket
            socket.send_json({"type": "create"})
            if not socket.poll(5000):
                return None
            reply = socket.recv_json()
        except Exception:  # an ipykernel without subshells, or one whose insides differ: ask with input()
            return None
        if not isinstance(reply, dict) or reply.get("status") != "ok" or not reply.get("subshell_id"):
            return None
        _waiter = _SubshellWaiter(kernel, str(reply["subshell_id"]))
        return _waiter


def _ask_with_buttons(summary: str, detail: str, waiter: _SubshellWaiter) -> Answer:
    import ipywidgets as widgets
    from IPython.display import display

    chosen: list[Answer] = []
    event = threading.Event()

    def choose(answer: Answer) -> Callable[[Any], None]:
        def on_click(button: Any) -> None:  # runs on the subshell's thread: only record the answer
            if not chosen:
                chosen.append(answer)
            event.set()
        return on_click

    label = widgets.HTML(f"<b>Run this tool?</b> <code>{html.escape(summary)}</code>"
                         + (f"<br><small>{html.escape(detail)}</small>" if detail else ""))
    buttons = []
    for text, answer, style in (("Run", "run", "success"), ("Skip", "skip", ""),
                                ("Always for this cell", "always", "info")):
        button = widgets.Button(description=text, button_style=style,
                                layout=widgets.Layout(width="auto"))
        button.on_click(choose(answer))
        buttons.append(button)
    prompt = widgets.VBox([label, widgets.HBox(buttons)])
    prompt.add_class("aihubmix-approval")
    for button in buttons:  # before the prompt is shown: a click may come at once
        waiter.route(button)
    display(prompt)
    try:
        if not _wait_for_click(event):
            return "timeout"
    finally:
        prompt.close()
        for button in buttons:
            button.close()
        label.close()
    return chosen[0] if chosen else "skip"


def _wait_for_click(event: threading.Event) -> bool:
    """Wait for a button's click (True), or `settings.approval_timeout` seconds (False); after `HINT_AFTER`
    seconds, show the line that says what to do if the buttons do not respond."""
    from IPython.display import display

    from ..session.settings import settings

    timeout = settings.approval_timeout
    started = time.monotonic()
    hinted = False
    while not event.wait(_WAIT_SLICE):
        waited = time.monotonic() - started
        if timeout is not None and waited >= timeout:
            return False
        if not hinted and waited >= HINT_AFTER:
            display(_hint(timeout), raw=True)  # the cell's outputs are cleared once the call is decided
            hinted = True
    return True


def _hint(timeout: float | None) -> dict[str, str]:
    text = ("No answer yet. If the buttons do not respond, interrupt the kernel (■) and run the cell again with "
            "--yes (every call runs without asking), or reload the page.")
    if timeout is not None:
        text += f" Without an answer the call is skipped after {timeout:g} s (settings.approval_timeout)."
    shown = html.escape(text).replace("--yes", "<code>--yes</code>").replace(
        "settings.approval_timeout", "<code>settings.approval_timeout</code>")
    return {"text/html": f'<div class="aihubmix-approval-hint"><small>{shown}</small></div>', "text/plain": text}


def default_asker() -> Any:
    """The prompt for tool calls where someone can answer it (buttons in a notebook, a y/n question in a
    terminal), else None: the calls are skipped."""
    from .live import display_mode

    where = display_mode()
    if nobody_can_answer(where):
        return None

    def ask_person(call: Any, signature: str) -> str:
        return ask(signature, "", where=where)
    return ask_person
