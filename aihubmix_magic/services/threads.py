"""Conversations: `%%aihubmix -c` continues the previous exchange, `--thread NAME` keeps a named one.

Without `-c` or `--thread` a cell stands alone: it sends only its own prompt, and afterwards it is "the
previous exchange" that the next `-c` continues (the default thread starts over from it). `-c` adds to the
default thread; `--thread NAME` adds to thread NAME (created on first use) and leaves the default alone.

What is sent (the `Request` a thread prepares, see `Thread.prepare`):
- chat: the thread's messages (user, assistant, …) and then the new user message;
- responses: the same list as `input` items (stateless: works on every model, nothing stored upstream);
- responses with `--store`: `store: true`, and when the previous turn has a stored response id, only the
  new input with `previous_response_id`.

Only answers that arrived (status completed or incomplete) join a thread. A failed or interrupted
exchange is left out, so that the next `-c` asks again from the same point. The threads of a kernel live
in its session (`_session.Session.threads`).

Threads survive a restart: every exchange is logged (`_log.py`), and a thread this kernel does not know yet
is read from the log's turns of that name when a cell (or `history`, `export --thread`) first names it;
`reset NAME` also ends it in the log, so that no later kernel continues it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from IPython.core.error import UsageError

from ..core.protocol import user_message
from ..core.request import DEFAULT_THREAD, Request

__all__ = ["DEFAULT_THREAD", "Thread", "Threads", "Turn"]


@dataclass
class Turn:
    """One exchange: what the user sent (text, or content parts with images) and the answer."""

    content: str | list[dict[str, Any]]
    response: Any  # a Response

    @property
    def answer(self) -> str:
        return str(self.response)


@dataclass
class Thread:
    name: str
    turns: list[Turn] = field(default_factory=list)

    def messages(self, endpoint: str) -> list[dict[str, Any]]:
        """The whole conversation so far, for chat `messages` or responses `input`."""
        messages: list[dict[str, Any]] = []
        for turn in self.turns:
            messages.append(user_message(turn.content, endpoint))
            messages.append(_assistant(turn, endpoint))
        return messages

    def prepare(self, request: Request, *, name: str | None) -> Request:
        """`request` (one new turn) as the next turn of this thread: its history, or with `store` on the
        responses endpoint the previous stored response's id. `name`: the thread named on the cell
        (None: the cell stands alone)."""
        if request.store:
            previous = self.turns[-1].response if self.turns else None
            previous_id = getattr(previous, "id", None)
            if previous_id and getattr(previous, "request", {}).get("store") is True:
                return request.replace(thread=name, previous_response_id=previous_id)
        return request.replace(thread=name, history=tuple(self.messages(request.endpoint)))

    def add(self, content: str | list[dict[str, Any]], response: Any) -> bool:
        """Keep the exchange if its answer arrived; True if it was kept."""
        if getattr(response, "status", None) not in ("completed", "incomplete"):
            return False
        self.turns.append(Turn(content, response))
        return True


def _assistant(turn: Turn, endpoint: str) -> dict[str, Any]:
    """The answer as an assistant message; on chat, Claude's `reasoning_details` go back unchanged."""
    message: dict[str, Any] = {"role": "assistant", "content": turn.answer}
    raw = getattr(turn.response, "raw", None) or {}
    if endpoint == "chat" and raw.get("choices"):
        details = ((raw["choices"][0] or {}).get("message") or {}).get("reasoning_details")
        if details:
            message["reasoning_details"] = details
    return message


class Threads(dict[str, Thread]):
    """A session's conversation threads by name. `history(name)`: the turns an earlier kernel logged, as
    (content, Response), for a thread this kernel does not know yet; `end(name)`: make the log forget it
    (the session passes the log's functions; without them, threads live as long as the kernel)."""

    def __init__(self, history: Callable[[str], list[tuple[Any, Any]]] | None = None,
                 end: Callable[[str], int] | None = None) -> None:
        super().__init__()
        self._history = history
        self._end = end

    def get_or_create(self, name: str | None = None) -> Thread:
        name = name or DEFAULT_THREAD
        if name not in self:
            self[name] = self._from_log(name) or Thread(name)
        return self[name]

    def _from_log(self, name: str) -> Thread | None:
        """Thread NAME as the log has it (an earlier kernel's), registered here; None if the log has no turns."""
        if self._history is None:
            return None
        turns = [Turn(content, response) for content, response in self._history(name)]
        if not turns:
            return None
        self[name] = Thread(name, turns)
        return self[name]

    def _known(self, name: str) -> Thread | None:
        thread = super().get(name)
        return thread if thread is not None else self._from_log(name)

    def keep(self, thread: Thread) -> None:
        """Register `thread` under its name: a cell without -c/--thread becomes the previous exchange."""
        self[thread.name] = thread

    def reset(self, name: str | None = None) -> str:
        name = name or DEFAULT_THREAD
        thread = self.pop(name, None)
        logged = self._end(name) if self._end is not None else 0  # no later kernel continues it either
        if thread is None and not logged:
            return f"No thread named {name!r}; nothing to forget."
        count = len(thread.turns) if thread is not None else logged
        return f"Thread {name!r} forgotten ({count} exchange{'s' * (count != 1)})."

    def responses(self, name: str | None = None) -> list[Any] | None:
        """The answers of thread NAME (default: the default thread), oldest first; None if there is none."""
        thread = self._known(name or DEFAULT_THREAD)
        return None if thread is None else [turn.response for turn in thread.turns]

    def holding(self, response: Any) -> str | None:
        """The name of the thread that holds `response`, or None."""
        for name, thread in self.items():
            if any(turn.response is response for turn in thread.turns):
                return name
        return None

    def names(self) -> list[str]:
        return sorted(self)

    def history_markdown(self, name: str | None = None) -> str:
        name = name or DEFAULT_THREAD
        thread = self._known(name)
        if thread is None or not thread.turns:
            known = ", ".join(repr(n) for n in self.names() if self[n].turns) or "none yet"
            raise UsageError(f"Thread {name!r} is empty (threads with exchanges: {known}).")
        blocks = [f"### Thread `{name}` · {len(thread.turns)} exchange{'s' * (len(thread.turns) != 1)}"]
        for number, turn in enumerate(thread.turns, 1):
            model = getattr(turn.response, "model", "") or "?"
            blocks.append(f"**{number}. You**\n\n{_content_text(turn.content)}")
            blocks.append(f"**{number}. {model}**\n\n{turn.answer}")
        return "\n\n---\n\n".join(blocks)


def _content_text(content: str | list[dict[str, Any]]) -> str:
    if isinstance(content, str):
        return content
    texts = [part.get("text", "") for part in content if part.get("type") in ("text", "input_text")]
    images = sum(1 for part in content if part.get("type") in ("image_url", "input_image"))
    note = f"\n\n*({images} image{'s' * (images != 1)})*" if images else ""
    return "\n".join(texts) + note
