"""Interrupting a real kernel (jupyter_client, ipykernel) while `%%aihubmix` streams.

The simulator runs in this test process; the kernel reaches it over loopback. The test interrupts the
kernel mid-stream and checks, from the server's side, that the HTTP connection is closed at once.
"""

from __future__ import annotations

import queue
import re
import time

import pytest
from jupyter_client import KernelManager

from tests.conftest import TEST_KEY

ANSI = re.compile(r"\x1b\[[0-9;]*m")
CLOSED_WITHIN = 1.0  # seconds, the bound


@pytest.fixture
def kernel(sim, tmp_path):
    km = KernelManager(kernel_name="python3")
    km.start_kernel(cwd=str(tmp_path))
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        setup = (
            "%load_ext aihubmix_magic\n"
            "from aihubmix_magic import settings\n"
            f"settings.base_url = {sim.base_url!r}\n"
            f"settings.set_key({TEST_KEY!r})\n"
            "settings.display = 'notebook'\n"
        )
        reply = kc.execute_interactive(setup, timeout=60)
        assert reply["content"]["status"] == "ok"
        yield km, kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def iter_iopub(kc, msg_id: str, timeout: float, what: str):
    """The iopub messages of one execution as they come; AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        assert time.monotonic() < deadline, f"{what} within {timeout} s"
        try:
            msg = kc.get_iopub_msg(timeout=1)
        except queue.Empty:
            continue
        if msg["parent_header"].get("msg_id") == msg_id:
            yield msg


def messages_until_idle(kc, msg_id: str, timeout: float = 30.0) -> list[dict]:
    """The iopub messages of one execution, up to its idle status."""
    collected = []
    for msg in iter_iopub(kc, msg_id, timeout, "no idle status"):
        collected.append(msg)
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return collected


def final_outputs(messages: list[dict]) -> list[dict]:
    """What the cell shows at the end: clear_output(wait) and display updates applied, as a frontend does."""
    shown: list[dict] = []
    pending_clear = False
    for msg in messages:
        kind, content = msg["msg_type"], msg["content"]
        if kind == "clear_output":
            if content.get("wait"):
                pending_clear = True
            else:
                shown = []
            continue
        if kind not in ("display_data", "stream", "error", "execute_result", "update_display_data"):
            continue
        if kind == "update_display_data":
            display_id = content.get("transient", {}).get("display_id")
            for output in shown:
                if output.get("display_id") == display_id:
                    output["data"] = content["data"]
            continue
        if pending_clear:
            shown, pending_clear = [], False
        shown.append({"type": kind, "display_id": content.get("transient", {}).get("display_id"), **content})
    return shown


@pytest.mark.kernel
@pytest.mark.parametrize("endpoint", ["chat", "responses"])
def test_interrupt_closes_the_connection_at_once_and_keeps_the_partial_answer(kernel, sim, endpoint):
    km, kc = kernel
    sim.reset()
    msg_id = kc.execute(f"%%aihubmix -m sim-tps-20 -e {endpoint}\nwords=3000")  # 150 s if left alone
    seen: list[dict] = []
    for msg in iter_iopub(kc, msg_id, 60, "the answer never started"):  # until answer text is on screen
        seen.append(msg)
        data = msg["content"].get("data", {})
        if "sim-tps-20" in data.get("text/markdown", ""):
            break
    time.sleep(0.5)  # about 10 more tokens
    assert not sim.disconnected.is_set()
    started = time.monotonic()
    km.interrupt_kernel()
    closed = sim.wait_for_disconnect(timeout=10)
    took = time.monotonic() - started
    print(f"closed {took:.3f} s after the interrupt")
    assert closed, "the server never saw the client leave"
    assert took < CLOSED_WITHIN, f"the connection was closed {took:.2f} s after the interrupt"
    messages = seen + messages_until_idle(kc, msg_id)
    reply = kc.get_shell_msg(timeout=30)
    assert reply["parent_header"]["msg_id"] == msg_id
    assert reply["content"]["status"] == "error" and reply["content"]["ename"] == "StreamInterruptedError"

    outputs = final_outputs(messages)
    errors = [o for o in outputs if o["type"] == "error"]
    assert len(errors) == 1
    (line,) = errors[0]["traceback"]  # one line, not a traceback
    line = ANSI.sub("", line)
    assert line.startswith("StreamInterruptedError: Interrupted") and "\n" not in line
    assert not [o for o in outputs if o["type"] == "stream" and "Traceback" in o.get("text", "")]
    markdown = [o["data"]["text/markdown"] for o in outputs if "text/markdown" in o.get("data", {})]
    answer, footer = markdown  # one rendering of the partial answer, then the footer
    assert answer.startswith("*Simulated answer from sim-tps-20.*")
    assert "interrupted" in footer and f"({len(answer):,} characters kept)" in footer
    assert sim.request_count == 1

    printed: list[str] = []

    def hook(msg):
        if msg["msg_type"] == "stream":
            printed.append(msg["content"]["text"])

    check = kc.execute_interactive("r = last_response()\nprint(r.status, len(r.text), r.error is None)",
                                   timeout=30, output_hook=hook)
    assert check["content"]["status"] == "ok"
    assert "".join(printed).split() == ["cancelled", str(len(answer)), "True"]


@pytest.mark.kernel
@pytest.mark.parametrize("line", ["-m sim-stall-2 --no-stream", "-m sim-retry-after-30"])
def test_interrupt_before_the_answer_arrives_is_one_line_too(kernel, sim, line):
    """Waiting for a slow non-streamed answer, or between retries: the same one line, no traceback."""
    km, kc = kernel
    sim.reset()
    msg_id = kc.execute(f"%%aihubmix {line}\nhi")
    deadline = time.monotonic() + 30
    while sim.request_count == 0:  # the request reached the server: the kernel is now waiting
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.3)
    km.interrupt_kernel()
    if "stall" in line:  # the abandoned request's connection is closed, as the server sees it
        assert sim.wait_for_disconnect(timeout=5)
    messages = messages_until_idle(kc, msg_id)
    reply = kc.get_shell_msg(timeout=30)
    assert reply["content"]["status"] == "error" and reply["content"]["ename"] == "StreamInterruptedError"
    outputs = final_outputs(messages)
    errors = [o for o in outputs if o["type"] == "error"]
    assert len(errors) == 1 and len(errors[0]["traceback"]) == 1
    assert ANSI.sub("", errors[0]["traceback"][0]).startswith("StreamInterruptedError: Interrupted before")
    assert [o for o in outputs if o["type"] != "error"] == []  # no note left behind
    assert sim.request_count == 1
