"""Conversations: `%%aihubmix -c` continues the previous exchange, `--thread NAME` keeps a named one.

Without `-c` or `--thread` a cell stands alone: it sends only its own prompt, and afterwards it is "the
previous exchange" that the next `-c` continues (the default thread starts over from it). `-c` adds to the
default thread; `--thread NAME` adds to thread NAME (created on first use) and leaves the default alone.

What is sent:
- chat: the thread's messages (user, assistant, …) and then the new user message;
- responses: the same list as `input` items (stateless: works on every model, nothing stored upstream);
- responses with `--store`: `store: true`, and when the previous turn has a stored response id, only the
  new input with `previous_response_id`.

Only answers that arrived (status completed or incomplete) join a thread. A failed or interrupted
exchange is left out, so that the next `-c` asks again from the same point.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from IPython.core.error import UsageError

__all__ = ["DEFAULT_THREAD", "Thread", "Turn", "get", "history_markdown", "keep", "names", "reset", "responses"]

DEFAULT_THREAD = "default"


@dataclass
class Turn:
    """One exchange: what the user sent (text, or content parts with images) and the answer."""

    content: str | list
    response: object  # a Response

    @property
    def answer(self) -> str:
        return str(self.response)


@dataclass
class Thread:
    name: str
    turns: list[Turn] = field(default_factory=list)

    def messages(self, content: str | list, endpoint: str) -> list[dict]:
        """The whole conversation so far plus the new user content, for chat `messages` or responses `input`."""
        messages: list[dict] = []
        for turn in self.turns:
            messages.append(_user(turn.content, endpoint))
            messages.append(_assistant(turn, endpoint))
        messages.append(_user(content, endpoint))
        return messages

    def request(self, content: str | list, endpoint: str, *, store: bool = False) -> tuple[str | list[dict], dict]:
        """(the prompt, or messages / input items; extra body fields) for the next turn."""
        extra: dict = {}
        if endpoint == "responses" and store:
            extra["store"] = True
            previous = self.turns[-1].response if self.turns else None
            previous_id = getattr(previous, "id", None)
            if previous_id and getattr(previous, "request", {}).get("store") is True:
                extra["previous_response_id"] = previous_id
                return [_user(content, endpoint)], extra
        if not self.turns and isinstance(content, str):
            return content, extra
        return self.messages(content, endpoint), extra

    def add(self, content: str | list, response) -> bool:
        """Keep the exchange if its answer arrived; True if it was kept."""
        if getattr(response, "status", None) not in ("completed", "incomplete"):
            return False
        self.turns.append(Turn(content, response))
        return True


_threads: dict[str, Thread] = {}


def _assistant(turn: Turn, endpoint: str) -> dict:
    """The answer as an assistant message; on chat, Claude's `reasoning_details` go back unchanged."""
    message = {"role": "assistant", "content": turn.answer}
    raw = getattr(turn.response, "raw", None) or {}
    if endpoint == "chat" and raw.get("choices"):
        details = ((raw["choices"][0] or {}).get("message") or {}).get("reasoning_details")
        if details:
            message["reasoning_details"] = details
    return message


def _user(content: str | list, endpoint: str) -> dict:
    """A user message; content parts are stored in chat's shape and converted for the responses endpoint."""
    if isinstance(content, list):
        content = [_part(part, endpoint) for part in content]
    return {"role": "user", "content": content}


def _part(part: dict, endpoint: str) -> dict:
    kind = part.get("type")
    if endpoint == "responses":
        if kind == "text":
            return {"type": "input_text", "text": part["text"]}
        if kind == "image_url":
            return {"type": "input_image", "image_url": part["image_url"]["url"]}
    else:
        if kind == "input_text":
            return {"type": "text", "text": part["text"]}
        if kind == "input_image":
            return {"type": "image_url", "image_url": {"url": part["image_url"]}}
    return part


def get(name: str | None = None, *, create: bool = True) -> Thread | None:
    name = name or DEFAULT_THREAD
    if name not in _threads and create:
        _threads[name] = Thread(name)
    return _threads.get(name)


def keep(thread: Thread) -> None:
    """Register `thread` under its name: a cell without -c/--thread becomes the previous exchange."""
    _threads[thread.name] = thread


def reset(name: str | None = None) -> str:
    name = name or DEFAULT_THREAD
    thread = _threads.pop(name, None)
    if thread is None:
        return f"No thread named {name!r}; nothing to forget."
    count = len(thread.turns)
    return f"Thread {name!r} forgotten ({count} exchange{'s' * (count != 1)})."


def responses(name: str | None = None) -> list | None:
    """The answers of thread NAME (default: the default thread), oldest first; None if there is none."""
    thread = _threads.get(name or DEFAULT_THREAD)
    return None if thread is None else [turn.response for turn in thread.turns]


def names() -> list[str]:
    return sorted(_threads)


def history_markdown(name: str | None = None) -> str:
    name = name or DEFAULT_THREAD
    thread = _threads.get(name)
    if thread is None or not thread.turns:
        known = ", ".join(repr(n) for n in names() if _threads[n].turns) or "none yet"
        raise UsageError(f"Thread {name!r} is empty (threads with exchanges: {known}).")
    blocks = [f"### Thread `{name}` · {len(thread.turns)} exchange{'s' * (len(thread.turns) != 1)}"]
    for number, turn in enumerate(thread.turns, 1):
        model = getattr(turn.response, "model", "") or "?"
        blocks.append(f"**{number}. You**\n\n{_content_text(turn.content)}")
        blocks.append(f"**{number}. {model}**\n\n{turn.answer}")
    return "\n\n---\n\n".join(blocks)


def _content_text(content: str | list) -> str:
    if isinstance(content, str):
        return content
    texts = [part.get("text", "") for part in content if part.get("type") in ("text", "input_text")]
    images = sum(1 for part in content if part.get("type") in ("image_url", "input_image"))
    note = f"\n\n*({images} image{'s' * (images != 1)})*" if images else ""
    return "\n".join(texts) + note
