"""Background batches in a real kernel (jupyter_client, ipykernel): a job runs while other cells run, its
progress bar keeps updating after its cell returned, an interrupt of another cell leaves it alone, the
magic form, and a kernel restart that resumes into the same output file. The simulator runs in this test
process; the kernel reaches it over loopback."""

from __future__ import annotations

import json
import queue
import time

import pytest
from jupyter_client import KernelManager

from tests.conftest import TEST_KEY

pytestmark = pytest.mark.kernel


def _setup(kc, sim) -> None:
    code = ("%load_ext aihubmix_magic\n"
            "from aihubmix_magic import settings, batch\n"
            f"settings.base_url = {sim.base_url!r}\n"
            f"settings.set_key({TEST_KEY!r})\n"
            "settings.display = 'notebook'\n")
    reply = kc.execute_interactive(code, timeout=60)
    assert reply["content"]["status"] == "ok"


@pytest.fixture
def kernel(sim, tmp_path):
    km = KernelManager(kernel_name="python3")
    km.start_kernel(cwd=str(tmp_path))
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        _setup(kc, sim)
        yield km, kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


ALL_IOPUB: list[dict] = []  # every iopub message the tests read, in order


def run(kc, code: str, timeout: float = 60) -> tuple[dict, list[dict]]:
    """Execute `code`; its reply and every iopub message seen until it went idle (other cells' included)."""
    msg_id = kc.execute(code)
    seen = []
    deadline = time.monotonic() + timeout
    while True:
        assert time.monotonic() < deadline, f"{code!r} did not finish in {timeout} s"
        try:
            msg = kc.get_iopub_msg(timeout=1)
        except queue.Empty:
            continue
        seen.append(msg)
        ALL_IOPUB.append(msg)
        if (msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "status"
                and msg["content"]["execution_state"] == "idle"):
            break
    reply = kc.get_shell_msg(timeout=30)
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = kc.get_shell_msg(timeout=30)
    return reply, seen


def value_of(kc, expression: str):
    reply, seen = run(kc, f"import json as _json; print(_json.dumps({expression}))")
    assert reply["content"]["status"] == "ok", reply["content"]
    out = "".join(m["content"]["text"] for m in seen if m["msg_type"] == "stream"
                  and m["parent_header"]["msg_id"] == reply["parent_header"]["msg_id"])
    return json.loads(out.strip().splitlines()[-1])


def test_a_job_runs_while_other_cells_run_and_its_bar_keeps_updating(kernel, sim):
    km, kc = kernel
    prompts = [f"question {n}" for n in range(40)]
    reply, seen = run(kc, f"job = batch({prompts!r}, model='sim-latency-100', concurrency=2, wait=False)\njob")
    assert reply["content"]["status"] == "ok"
    bars = [m["content"]["data"]["state"] for m in seen if m["msg_type"] == "comm_open"
            and m["content"]["data"]["state"].get("_model_name") == "IntProgressModel"]
    assert len(bars) == 1 and bars[0]["max"] == 40
    results = [m for m in seen if m["msg_type"] == "execute_result"]
    assert "BatchJob running" in results[0]["content"]["data"]["text/plain"]

    ALL_IOPUB.clear()  # from here on: after the job's cell returned
    started = time.monotonic()  # a cell while the job runs answers at once
    reply, _ = run(kc, "%%aihubmix -m sim-echo\nhello there")
    took = time.monotonic() - started
    assert reply["content"]["status"] == "ok" and took < 5
    assert value_of(kc, "job.done()") is False

    # an interrupt of another cell does not touch the job
    msg_id = kc.execute("import time; time.sleep(30)")
    time.sleep(1.0)
    km.interrupt_kernel()
    deadline = time.monotonic() + 30
    while True:
        reply = kc.get_shell_msg(timeout=30)
        if reply["parent_header"].get("msg_id") == msg_id:
            break
        assert time.monotonic() < deadline
    assert reply["content"]["status"] == "error" and reply["content"]["ename"] == "KeyboardInterrupt"
    summary = value_of(kc, "[len(job.wait(timeout=60)), job.summary.ok, job.summary.partial]")
    assert summary == [40, 40, False]
    assert sim.request_count == 41  # the 40 items and the cell

    # the bar got updates after its cell had returned (the frontend repaints it where it was displayed)
    updates = []
    while True:
        try:
            ALL_IOPUB.append(kc.get_iopub_msg(timeout=0.5))
        except queue.Empty:
            break
    for msg in ALL_IOPUB:
        if msg["msg_type"] == "comm_msg" and msg["content"]["data"].get("method") == "update":
            state = msg["content"]["data"]["state"]
            if "value" in state and isinstance(state["value"], int):
                updates.append(state["value"])
    assert updates and updates[-1] == 40 and len(set(updates)) > 2


def test_the_magic_form_and_cancel(kernel, sim):
    km, kc = kernel
    reply, seen = run(kc, "items = [f'row {n}' for n in range(60)]")
    reply, seen = run(kc, "%%aihubmix -m sim-latency-100 --over items --concurrency 2 --background -o job\n"
                          "Label {}")
    assert reply["content"]["status"] == "ok"
    assert not [m for m in seen if m["msg_type"] == "execute_result"]  # the job went to -o job
    assert value_of(kc, "type(job).__name__") == "BatchJob"
    time.sleep(1.0)
    run(kc, "job.cancel()")
    done = value_of(kc, "[job.wait(timeout=30) is not None, job.done(), job.summary.partial, "
                        "job.summary.ok, job.summary.cancelled]")
    assert done[:3] == [True, True, True] and 0 < done[3] < 60 and done[3] + done[4] == 60
    reply, seen = run(kc, "%%aihubmix -m sim-echo --over items[:3] --background\nLabel {}")
    shown = [m["content"]["data"]["text/plain"] for m in seen if m["msg_type"] == "execute_result"]
    assert shown and "BatchJob" in shown[0]


def test_a_kernel_restart_resumes_into_the_same_output_file(kernel, sim, tmp_path):
    km, kc = kernel
    out = tmp_path / "answers.jsonl"
    call = (f"batch((f'question {{n}}' for n in range(80)), model='sim-latency-100', concurrency=2, "
            f"out={str(out)!r}")
    reply, _ = run(kc, f"job = {call}, wait=False)")
    assert reply["content"]["status"] == "ok"
    deadline = time.monotonic() + 60
    while not out.exists() or len(out.read_text().splitlines()) < 8:
        assert time.monotonic() < deadline, "nothing was written"
        time.sleep(0.05)
    km.restart_kernel(now=False)  # a shutdown: atexit cancels the job, what finished is kept
    kc.wait_for_ready(timeout=60)
    sent_before = sim.request_count
    written = len(out.read_text().splitlines())
    assert 8 <= written < 80
    time.sleep(0.5)
    assert sim.request_count == sent_before  # the job stopped with its kernel
    _setup(kc, sim)
    sim.reset()
    summary = value_of(kc, f"[(s := {call})).ok, s.resumed, s.partial]")
    assert summary[0] == 80 and summary[2] is False
    assert summary[1] >= written and sim.request_count == 80 - summary[1]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(row["position"] for row in rows) == list(range(80))  # each item once
