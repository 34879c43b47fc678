"""Row 1, stream cost: one answer of 50,000 chunks from a loopback server that sends as fast as it can.

The simulator's answer to `words=50000` (one token per word) is captured once per endpoint and replayed
by `_replay_server.py` in its own process, pre-rendered, with one `sendall`: the server's cost per
chunk is nil, and every client reads exactly the same bytes. Per endpoint:

(a) raw httpx + json.loads, the floor: `iter_raw()` (httpx's cheapest read: no decoder or chunker layer),
    split on blank lines, json.loads each data line, keep the text
(b) the official openai SDK, `stream=True`, iterating its typed chunks / events
(c) our Client: `for delta in client.chat(..., stream=True)` (or `client.respond`)
(d) the whole magic path in a real kernel: jupyter_client starts an ipykernel, runs `%load_ext
    aihubmix_magic`, then a `%%aihubmix` cell; this process is the frontend, reads iopub until the kernel
    is idle, and counts and sizes the display messages. Timed from sending the cell to the idle status.

Targets: (c) <= 1.5x (a); (d) <= 2x (a); (b) / (c) and (b) / (d) >= 10. Medians of 3 alternated runs
(t, a, b, c, d, t, a, …); t is httpx alone, reading the body with no parsing at all.
"""

from __future__ import annotations

import json

import httpx
from _common import KEY, ReplayServer, Result, alternate, median, request_body, text_events

NAME = "stream"
TITLE = "1. Stream cost"
PATHS = {"chat": "/chat/completions", "responses": "/responses"}


def raw_floor(http: httpx.Client, url: str, endpoint: str) -> str:
    """The least a client can do: bytes -> events -> json.loads -> text."""
    body = request_body(endpoint, "bench")
    loads = json.loads
    parts: list[str] = []
    with http.stream("POST", url + PATHS[endpoint], json=body, headers={"Authorization": f"Bearer {KEY}"}) as r:
        rest = b""
        for chunk in r.iter_raw():  # the cheapest read httpx offers (no content coding here)
            events = (rest + chunk).split(b"\n\n")
            rest = events.pop()
            for event in events:
                data = event[event.find(b"data: ") + 6:]
                if data == b"[DONE]":
                    continue
                obj = loads(data)
                if endpoint == "chat":
                    choices = obj["choices"]
                    if choices:
                        content = choices[0]["delta"].get("content")
                        if content:
                            parts.append(content)
                elif obj["type"] == "response.output_text.delta":
                    parts.append(obj["delta"])
    return "".join(parts)


def transport_only(http: httpx.Client, url: str, endpoint: str) -> int:
    """httpx alone, no parsing at all: `iter_raw()` to the end (what every client above pays)."""
    size = 0
    with http.stream("POST", url + PATHS[endpoint], json=request_body(endpoint, "bench"),
                     headers={"Authorization": f"Bearer {KEY}"}) as r:
        for chunk in r.iter_raw():
            size += len(chunk)
    return size


def openai_sdk(sdk, endpoint: str) -> str:
    parts: list[str] = []
    if endpoint == "chat":
        stream = sdk.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "bench"}],
                                             stream=True, stream_options={"include_usage": True})
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                parts.append(chunk.choices[0].delta.content)
    else:
        stream = sdk.responses.create(model="gpt-4o-mini", input="bench", stream=True, store=False)
        for event in stream:
            if event.type == "response.output_text.delta":
                parts.append(event.delta)
    return "".join(parts)


def our_client(client, endpoint: str) -> str:
    if endpoint == "chat":
        response = client.chat("bench", model="gpt-4o-mini", stream=True)
    else:
        response = client.respond("bench", model="gpt-4o-mini", stream=True)
    parts = [delta for delta in response]
    return "".join(parts)


class Kernel:
    """A real ipykernel driven through jupyter_client, this process being the frontend."""

    def __init__(self, base_url: str) -> None:
        from jupyter_client.manager import start_new_kernel

        self.manager, self.client = start_new_kernel(kernel_name="python3", env=_kernel_env(base_url))
        self.execute("%load_ext aihubmix_magic")

    def execute(self, code: str, timeout: float = 600) -> dict:
        """Run `code`; return the iopub traffic it caused: message counts by type and content bytes."""
        msg_id = self.client.execute(code, store_history=False)
        stats = {"messages": 0, "display_messages": 0, "display_bytes": 0, "wire_bytes": 0, "errors": [],
                 "outputs": []}
        while True:
            msg = self.client.get_iopub_msg(timeout=timeout)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind = msg["msg_type"]
            if kind == "status":
                if msg["content"]["execution_state"] == "idle":
                    break
                continue
            if kind == "execute_input":
                continue
            stats["messages"] += 1
            wire = len(json.dumps(msg["content"])) + len(json.dumps(msg["header"], default=str)) \
                + len(json.dumps(msg["parent_header"], default=str)) + len(json.dumps(msg["metadata"]))
            stats["wire_bytes"] += wire
            if kind in ("display_data", "update_display_data"):
                stats["display_messages"] += 1
                stats["display_bytes"] += len(msg["content"]["data"].get("text/markdown", "").encode())
                stats["outputs"].append(msg)
            elif kind == "clear_output":
                stats["outputs"].append(msg)
            elif kind == "error":
                stats["errors"].append(msg["content"]["evalue"])
            elif kind == "stream":
                stats["outputs"].append(msg)
        reply = self.client.get_shell_msg(timeout=timeout)
        if reply["content"]["status"] != "ok":
            stats["errors"].append(reply["content"].get("evalue", reply["content"]["status"]))
        return stats

    def close(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


def _kernel_env(base_url: str) -> dict:
    import os

    env = dict(os.environ)
    env.update(AIHUBMIX_API_KEY=KEY, AIHUBMIX_BASE_URL=base_url, JUPYTER_PLATFORM_DIRS="1")
    return env


def magic_cell(endpoint: str) -> str:
    return f"%%aihubmix -m gpt-4o-mini -e {endpoint}\nbench"


def measure(endpoint: str, server: ReplayServer, http, sdk, client, kernel: Kernel, repeats: int) -> list[Result]:
    chunks = text_events(server.bodies[endpoint], endpoint)
    expected = raw_floor(http, server.base_url, endpoint)
    assert openai_sdk(sdk, endpoint) == expected, "the SDK read a different answer"
    assert our_client(client, endpoint) == expected, "our Client read a different answer"
    traffic = kernel.execute(magic_cell(endpoint))  # warm-up, and a check that it works
    if traffic["errors"]:
        raise RuntimeError(f"the magic failed in the kernel: {traffic['errors']}")
    times = alternate({
        "t": lambda: transport_only(http, server.base_url, endpoint),
        "a": lambda: raw_floor(http, server.base_url, endpoint),
        "b": lambda: openai_sdk(sdk, endpoint),
        "c": lambda: our_client(client, endpoint),
        "d": lambda: traffic.update(kernel.execute(magic_cell(endpoint))),
    }, repeats)
    t, a, b, c, d = (median(times[name]) for name in "tabcd")
    sizes = f"{chunks:,} chunks, {len(server.bodies[endpoint]) / 1e6:.1f} MB"
    answer_bytes = len(expected.encode())
    shown = traffic["display_bytes"] / answer_bytes
    return [
        Result(TITLE, f"{endpoint}: (a) raw httpx iter_raw + json.loads", f"{a:.3f} s ({sizes})", "1.00x", "floor", None),
        Result(TITLE, f"{endpoint}: httpx transport alone (iter_raw, no parsing) / (a)",
               f"{t:.3f} s vs {a:.3f} s", f"{t / a:.2f}x", "info", None, "a share every client pays"),
        Result(TITLE, f"{endpoint}: (c) Client / (a)", f"{c:.3f} s vs {a:.3f} s", f"{c / a:.2f}x",
               "<= 1.5x", c / a <= 1.5),
        Result(TITLE, f"{endpoint}: (d) magic in kernel / (a)", f"{d:.3f} s vs {a:.3f} s",
               f"{d / a:.2f}x", "<= 2x", d / a <= 2.0),
        Result(TITLE, f"{endpoint}: (d) display traffic on iopub / answer bytes",
               f"{traffic['display_messages']} display messages, {traffic['display_bytes']:,} B "
               f"for {answer_bytes:,} B", f"{shown:.2f}x", "<= 3x (row 2, real path)", shown <= 3,
               "full speed, real kernel"),
        Result(TITLE, f"{endpoint}: (b) openai SDK / (a)", f"{b:.3f} s vs {a:.3f} s", f"{b / a:.1f}x",
               "info", None),
        Result(TITLE, f"{endpoint}: (b) SDK / (c) Client", f"{b:.3f} s vs {c:.3f} s", f"{b / c:.1f}x",
               ">= 10x", b / c >= 10),
        Result(TITLE, f"{endpoint}: (b) SDK / (d) magic", f"{b:.3f} s vs {d:.3f} s", f"{b / d:.1f}x",
               ">= 10x", b / d >= 10),
    ]


def run(quick: bool = False) -> list[Result]:
    import openai

    from aihubmix_magic import Client

    words = 500 if quick else 50_000
    repeats = 1 if quick else 3
    results: list[Result] = []
    with ReplayServer(f"words={words}") as server:
        http = httpx.Client(timeout=600)
        sdk = openai.OpenAI(base_url=server.base_url, api_key=KEY, max_retries=0)
        client = Client(KEY, server.base_url)
        kernel = Kernel(server.base_url)
        try:
            for endpoint in ("chat", "responses"):
                results += measure(endpoint, server, http, sdk, client, kernel, repeats)
        finally:
            kernel.close()
            client.close()
            sdk.close()
            http.close()
    return results
