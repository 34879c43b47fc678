"""MCP tool calls: what `--mcp` adds to a call of the official SDK.

A cell's thread calls an MCP tool through `McpServers`: the call is handed to the background event loop
(`run_coroutine_threadsafe`), the SDK's session sends it to the server, the result becomes text and the
thread waits for it. The baseline is the SDK alone: the same session's `call_tool`, awaited back to back
inside the event loop, on the same server process (examples/reviews_server.py, over stdio), so the two
differ only by our layer. Calls alternate in blocks between the two, and the medians are compared.

Target: a call through `McpServers` takes at most 2x the SDK's own in-loop call (median over 500 calls
each; quick mode: 20): the hop to the loop and back is two thread wake-ups, about 2 ms on a busy machine,
against a few ms for the call itself and hundreds for the model's request around it. Also shown, without a verdict: the time to start a server (spawn, initialize, tools/list) and
what a later cell pays to reuse it (the ping that checks it is alive, and reading mcp.json).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, Result, median

NAME = "mcp"
TITLE = "MCP tool calls"
SERVER = ROOT / "examples" / "reviews_server.py"


async def sdk_calls(hub: object, count: int) -> list[float]:
    """`count` calls of the SDK's `call_tool` on the hub's own session, timed inside the event loop."""
    session = hub._connections["reviews"].session  # type: ignore[attr-defined]
    times = []
    for _ in range(count):
        start = time.perf_counter()
        await session.call_tool("product_ratings", {})
        times.append(time.perf_counter() - start)
    return times


def run(quick: bool = False) -> list[Result]:
    import importlib.util

    if importlib.util.find_spec("mcp") is None:
        return [Result(TITLE, "MCP tool calls", "not installed", "—", "—", None,
                       "pip install 'aihubmix-magic[mcp]'")]
    from aihubmix_magic.session.mcp import McpServers

    calls = 20 if quick else 500
    blocks = 4 if quick else 10
    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder) / "mcp.json"
        config.write_text(json.dumps({"mcpServers": {"reviews": {"command": sys.executable, "args": [str(SERVER)]}}}))
        saved = os.environ.get("AIHUBMIX_CONFIG_DIR")
        os.environ["AIHUBMIX_CONFIG_DIR"] = folder
        cwd = os.getcwd()
        os.chdir(folder)  # no notebook folder config: only the one above
        hub = McpServers()
        try:
            start = time.perf_counter()
            (tool,) = [t for t in hub.tools(["reviews"]) if t.name == "product_ratings"]
            started = time.perf_counter() - start
            assert tool.function is not None
            ours: list[float] = []
            theirs: list[float] = []
            per_block = max(1, calls // blocks)
            for _ in range(blocks):
                for _ in range(per_block):
                    begin = time.perf_counter()
                    tool.function()
                    ours.append(time.perf_counter() - begin)
                theirs.extend(hub._wait(sdk_calls(hub, per_block), 600))
            reuse = []
            for _ in range(5 if quick else 20):
                begin = time.perf_counter()
                hub.tools(["reviews"])
                reuse.append(time.perf_counter() - begin)
        finally:
            hub.close()
            os.chdir(cwd)
            if saved is None:
                os.environ.pop("AIHUBMIX_CONFIG_DIR", None)
            else:
                os.environ["AIHUBMIX_CONFIG_DIR"] = saved
    ratio = median(ours) / median(theirs)
    count = len(ours)
    return [
        Result(TITLE, f"a tool call through McpServers vs the SDK's own call_tool (median of {count:,} each, stdio)",
               f"{median(ours) * 1000:.2f} ms vs {median(theirs) * 1000:.2f} ms", f"{ratio:.2f}x", "<= 2x",
               ratio <= 2.0),
        Result(TITLE, "starting a server: spawn, initialize, tools/list (once per kernel)",
               f"{started:.2f} s", f"{started:.2f} s", "—", None),
        Result(TITLE, "a later cell reusing it: mcp.json read, ping, tools named",
               f"{median(reuse) * 1000:.2f} ms", f"{median(reuse) * 1000:.2f} ms", "—", None),
    ]


if __name__ == "__main__":
    for result in run(quick="--quick" in sys.argv):
        print(result)
