"""The tool loop: send, run the calls the model asks for (with approval), send the results back, until
the model answers in text or the step limit is reached.

The messages that go back are the protocol core's (`_protocol.follow_up`); this module only decides and
runs. It is driven by a `send(request) -> Response` function, so the same loop serves a cell (which
streams each turn into the cell), `Client.chat/respond(..., tools=[f, g])` and, as `arun_tool_loop`, the
async driver of `batch()` (where the tools run on a helper thread, one at a time).

    response = run_tool_loop(request, send, approver=Approver(approve=True), max_steps=8)
    response.steps            # every step: the model's answer and the calls it asked for
    response.usage            # the sum over every step

An interrupt (KeyboardInterrupt) during a tool, a prompt or between steps stops at once: the steps so far
are kept on the last answer, whose status becomes "cancelled", and the interrupt goes on up with it as
`ToolLoopInterrupted.response`.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .protocol import DEFAULT_MAX_STEPS, follow_up
from .tools import Tool, parse_arguments, run_call
from .types import Step, ToolCall, ToolRun, Usage

if TYPE_CHECKING:
    from .request import Request
    from .response import Response

__all__ = ["DEFAULT_MAX_STEPS", "Approver", "ToolLoopInterrupted", "arun_tool_loop", "max_steps_line",
           "run_tool_loop", "summary_line"]

Approve = bool | Callable[[ToolCall], bool] | None
Ask = Callable[[ToolCall, str], str]  # (call, its signature) -> "run" | "skip" | "always"


class ToolLoopInterrupted(KeyboardInterrupt):
    """KeyboardInterrupt during a tool loop, carrying the answer so far (status "cancelled", steps kept)."""

    def __init__(self, response: Response) -> None:
        super().__init__()
        self.response = response


@dataclass
class Approver:
    """Who decides whether a call runs: `approve=True` runs every call, False none, a callable decides per
    call (`approve(call) -> bool`), None asks through `ask` (a prompt), or skips every call when `ask` is
    None (nobody can answer). "Always for this cell" turns asking off for the rest of the loop."""

    approve: Approve = None
    ask: Ask | None = None
    always: bool = field(default=False, init=False)

    def decide(self, call: ToolCall, signature: str) -> tuple[bool, str | None]:
        """(approved, a note for the step or None)."""
        if self.approve is True or self.always:
            return True, None
        if self.approve is False:
            return False, None
        if callable(self.approve):
            try:
                return bool(self.approve(call)), None
            except Exception as exc:
                from .tools import one_line

                return False, f"the approval function failed: {one_line(exc)}"
        if self.ask is None:
            return False, "nobody could be asked: no interactive frontend"
        answer = self.ask(call, signature)
        if answer == "timeout":  # settings.approval_timeout passed without a click
            return False, "no answer within the approval timeout"
        if answer == "always":
            self.always = True
        return answer in ("run", "always"), None


class _Steps:
    """The loop's state: the steps so far, the usage summed, the last answer."""

    def __init__(self, request: Request, max_steps: int, scrub: Callable[[str], str]) -> None:
        self.tools = {tool.name: tool for tool in request.tools if isinstance(tool, Tool)}
        self.request = request
        self.max_steps = max_steps
        self.scrub = scrub
        self.steps: list[Step] = []
        self.usage: Usage | None = None
        self.last: Response | None = None

    def add_usage(self, response: Response) -> None:
        self.last = response
        if response.usage is not None:
            self.usage = response.usage if self.usage is None else self.usage + response.usage

    def wants_tools(self, response: Response) -> bool:
        return bool(response.status == "completed" and response.tool_calls and self.tools)

    def finish(self, response: Response, *, status: str | None = None) -> Response:
        """Put the steps and the summed usage on the final answer."""
        if status is not None:
            response = copy.copy(response)
            response.status = status
        response.steps = list(self.steps)
        if self.usage is not None:
            response.usage = self.usage
        if response.tool_calls and self.steps and len(self.steps) >= self.max_steps and status is None \
                and response.status == "completed" and self.tools:
            response.status = "incomplete"
            response.finish_reason = "max_steps"
        return response

    def run(self, call: ToolCall, approver: Approver) -> ToolRun:
        tool = self.tools.get(call.name)
        arguments, problem = parse_arguments(call, tool)
        shown = ToolRun(id=call.id, name=call.name, arguments=arguments)
        approved, note = approver.decide(call, self.scrub(shown.signature()))
        # the step's time is the tool's own, not the time the prompt waited
        run = run_call(call, tool, approved=approved, scrub=self.scrub, arguments=arguments, problem=problem)
        run.note = note
        return run


def run_tool_loop(request: Request, send: Callable[[Request], Response], *, approver: Approver,
                  max_steps: int = DEFAULT_MAX_STEPS, scrub: Callable[[str], str] = str,
                  on_call: Callable[[Step, ToolRun], None] | None = None,
                  before_calls: Callable[[Step], None] | None = None) -> Response:
    """Send `request` and go on while the model asks for tools (at most `max_steps` steps).

    `send` sends one request and returns the complete answer (it raises what sending raises).
    `before_calls(step)` is called when a step starts (its calls not yet run), `on_call(step, run)` after
    each call. Returns the final answer, with `.steps` and the summed `.usage`; when the limit stops it, its
    status is "incomplete" and its finish reason "max_steps"."""
    from .exceptions import AihubmixError

    state = _Steps(request, max_steps, scrub)
    current = request
    response = send(current)
    try:
        while True:
            state.add_usage(response)
            if not state.wants_tools(response) or len(state.steps) >= max_steps:
                return state.finish(response)
            step = Step(len(state.steps) + 1, response)
            state.steps.append(step)
            if before_calls is not None:
                before_calls(step)
            for call in response.tool_calls:
                run = state.run(call, approver)
                step.calls.append(run)
                if on_call is not None:
                    on_call(step, run)
            current = follow_up(current, response, step.calls)
            response = send(current)
    except KeyboardInterrupt as exc:
        partial = getattr(exc, "response", None)  # a follow-up interrupted while it streamed
        if partial is not None and partial is not state.last:
            state.add_usage(partial)
        answer = state.last if state.last is not None else response
        raise ToolLoopInterrupted(state.finish(answer, status="cancelled")) from None
    except AihubmixError as exc:  # a later step failed: its Response keeps the steps so far
        if exc.response is not None and exc.response is not state.last:
            state.add_usage(exc.response)
            exc.response.steps = list(state.steps)
            if state.usage is not None:
                exc.response.usage = state.usage
        raise


async def arun_tool_loop(request: Request, send: Callable[[Request], Awaitable[Response]], *,
                         approver: Approver, max_steps: int = DEFAULT_MAX_STEPS,
                         scrub: Callable[[str], str] = str,
                         run_in_thread: Callable[[Callable[[], ToolRun]], Awaitable[ToolRun]]) -> Response:
    """The same loop for the async driver: `send` is a coroutine function, and each call runs through
    `run_in_thread` (so a slow tool does not stop the other requests). A failed answer ends the loop as it
    is (its status "failed", the steps so far kept)."""
    state = _Steps(request, max_steps, scrub)
    current = request
    response = await send(current)
    while True:
        state.add_usage(response)
        if not state.wants_tools(response) or len(state.steps) >= max_steps:
            return state.finish(response)
        step = Step(len(state.steps) + 1, response)
        state.steps.append(step)
        for call in response.tool_calls:
            step.calls.append(await run_in_thread(_bind(state.run, call, approver)))
        current = follow_up(current, response, step.calls)
        response = await send(current)


def _bind(function: Callable[[ToolCall, Approver], ToolRun], call: ToolCall,
          approver: Approver) -> Callable[[], ToolRun]:
    return lambda: function(call, approver)


def summary_line(response: Response) -> str | None:
    """The footer's part about tools: "2 steps · 3 tool calls", or None without steps."""
    if not response.steps:
        return None
    calls = sum(len(step.calls) for step in response.steps)
    steps = len(response.steps)
    return f"{steps} step{'s' * (steps != 1)} · {calls} tool call{'s' * (calls != 1)}"


def max_steps_line(response: Response, max_steps: int) -> str | None:
    """The one line that says the step limit stopped the loop (None if it did not)."""
    if response.finish_reason != "max_steps":
        return None
    wanted = ", ".join(sorted({call.name for call in response.tool_calls}))
    return (f"Stopped after {max_steps} step{'s' * (max_steps != 1)} (--max-steps {max_steps}): the model still "
            f"wanted to call {wanted}.")

