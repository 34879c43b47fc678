"""Live display: O(n) bytes, throttled repaints, immediate first token, one final rendering."""

from __future__ import annotations

import json
import re

import pytest

from aihubmix_magic import last_response
from aihubmix_magic.notebook.display import NotebookView


def tokenize(text: str) -> list[str]:
    """Word plus its following whitespace, as the simulator streams it."""
    return re.findall(r"\S+\s*|\s+", text)


class CountingPublisher:
    """Records display messages like a frontend would receive them."""

    def __init__(self):
        self.messages: list[tuple[str, dict, str | None]] = []

    def show(self, data, display_id=None, metadata=None):
        self.messages.append(("show", data, display_id))

    def update(self, data, display_id):
        self.messages.append(("update", data, display_id))

    def clear(self):
        self.messages.append(("clear", {}, None))

    @property
    def bytes(self) -> int:
        return sum(len(json.dumps(data, ensure_ascii=False).encode()) for _, data, _ in self.messages)

    def visible(self) -> list[str]:
        shown: dict[str, str] = {}
        order: list[str] = []
        for kind, data, display_id in self.messages:
            if kind == "clear":
                shown, order = {}, []
                continue
            key = display_id or f"anon{len(order)}"
            if kind == "show":
                order.append(key)
            shown[key] = data.get("text/markdown", "")
        return [shown[k] for k in order]


def feed_at_rate(view: NotebookView, tokens: list[str], rate: float | None, start: float = 100.0) -> float:
    """Feed tokens with a synthetic clock: `rate` tokens/s, or all at once (None)."""
    now = start
    for token in tokens:
        if rate:
            now += 1 / rate
        view.feed("text", token, now)
        view.tick(now)
    return now


def long_answer(words: int) -> str:
    paragraphs, rest, n = [], words, 0
    while rest > 0:
        size = min(rest, 40 + (n * 17) % 40)
        paragraphs.append(" ".join(f"word{i}" for i in range(size)) + ".")
        if n % 5 == 4:
            paragraphs.append("```python\n" + "\n".join(f"x{i} = {i}" for i in range(8)) + "\n```")
        rest -= size
        n += 1
    return "## Title\n\n" + "\n\n".join(paragraphs)


@pytest.mark.parametrize("rate", [200, 50, None])
def test_bytes_stay_linear_in_the_answer(rate):
    text = long_answer(20_000)
    publisher = CountingPublisher()
    view = NotebookView(publisher)
    tokens = tokenize(text)
    end = feed_at_rate(view, tokens, rate)
    view.paint(end + 1)
    streamed = publisher.bytes
    assert "".join(tokens) == text
    assert streamed / len(text.encode()) < 3, f"{streamed} bytes sent for {len(text)} characters"
    if rate:
        seconds = len(tokens) / rate
        assert view.paints <= seconds * 10 + 2, "at most about 10 repaints a second"


def test_what_is_shown_is_the_answer_so_far_and_complete_at_the_end():
    text = long_answer(600)
    publisher = CountingPublisher()
    view = NotebookView(publisher, max_tail=300)
    now, received = 0.0, ""
    for token in tokenize(text):
        now += 0.005
        received += token
        view.feed("text", token, now)
        view.tick(now)
        shown = "".join(publisher.visible()).replace("\n```\n```python\n", "\n")
        assert received.startswith(shown)
    view.paint(now + 1)
    assert "".join(publisher.visible()).replace("\n```\n```python\n", "\n") == text


def test_first_token_after_quiet_is_painted_at_once_and_fast_streams_are_held():
    publisher = CountingPublisher()
    view = NotebookView(publisher)
    view.feed("text", "Hello", 10.0)
    assert view.paints == 1 and publisher.visible() == ["Hello"]
    view.feed("text", " wor", 10.005)  # 5 ms later: held back for the throttle
    assert view.paints == 1 and view.deadline == pytest.approx(10.1)
    view.tick(10.05)
    assert view.paints == 1
    view.tick(10.1)
    assert view.paints == 2 and publisher.visible() == ["Hello wor"]
    view.feed("text", "ld", 10.3)  # after 200 ms of quiet: at once
    assert view.paints == 3 and publisher.visible() == ["Hello world"]


def test_slow_streams_paint_every_token():
    publisher = CountingPublisher()
    view = NotebookView(publisher)
    feed_at_rate(view, ["a "] * 50, rate=20)
    assert view.paints == 50


def test_finished_blocks_are_sent_once():
    publisher = CountingPublisher()
    view = NotebookView(publisher)
    paragraphs = [f"Paragraph {i} " + "text " * 30 for i in range(10)]
    end = feed_at_rate(view, tokenize("\n\n".join(paragraphs)), rate=200)
    view.paint(end + 1)
    for paragraph in paragraphs[:-2]:
        finals = [data["text/markdown"] for kind, data, _ in publisher.messages
                  if data.get("text/markdown", "").startswith(paragraph.strip())]
        assert finals, paragraph
        # the tail display showed it growing; once frozen it is never sent again in later displays
        assert all(not f.startswith(paragraphs[-1]) for f in finals)
    assert len(publisher.visible()) >= 5


def test_forced_cut_inside_code_keeps_the_fence():
    publisher = CountingPublisher()
    view = NotebookView(publisher, max_tail=200)
    code = "```python\n" + "".join(f"value_{i} = {i}\n" for i in range(60)) + "```\n"
    end = feed_at_rate(view, tokenize(code), rate=100)
    view.paint(end + 1)
    blocks = publisher.visible()
    assert len(blocks) > 2
    assert all(block.startswith("```") and block.rstrip().endswith("```") for block in blocks[:-1])


def test_magic_path_bytes_and_single_final_rendering(ip):
    ip.run_cell_magic("aihubmix", "-m gpt-4o-mini", "words=20000 with a heading and code")
    answer = last_response().text
    sent = sum(len(json.dumps(m["data"], ensure_ascii=False).encode()) for m in ip.display_pub.messages
               if "data" in m)
    assert sent / len(answer.encode()) < 3
    outputs = ip.display_pub.outputs()
    assert [o.get("text/markdown") for o in outputs][0] == answer
    assert len(outputs) == 2  # the answer and its footer


def test_reasoning_is_shown_above_the_answer(ip):
    ip.run_cell_magic("aihubmix", "-m claude-sonnet-4-5-think", "hello")
    outputs = [o.get("text/markdown", "") for o in ip.display_pub.outputs()]
    assert outputs[0].startswith("<details><summary>Reasoning</summary>")
    assert outputs[1] == last_response().text
    assert last_response().reasoning.split()[0] in outputs[0]


def test_consume_paints_while_a_fast_stream_arrives(sim):
    """Tokens 20 ms apart never make a quiet gap: the painter must still look at them every interval."""
    from aihubmix_magic import Client
    from aihubmix_magic.notebook.display import consume
    from tests.conftest import TEST_KEY

    publisher = CountingPublisher()
    view = NotebookView(publisher)
    with Client(TEST_KEY, sim.base_url) as client:
        response = client.chat("words=40", model="sim-tps-50", stream=True)
        consume(response, view)
    assert response.status == "completed"
    updates = [data["text/markdown"] for kind, data, _ in publisher.messages if kind in ("show", "update")]
    assert len(updates) >= 5, "the answer was shown only at the end"
    assert len(set(updates)) == len(updates), "each repaint shows more text"
