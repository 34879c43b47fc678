"""One scenario of the answer-size-cap row, in a fresh process: a loopback server answers with 1 GiB of
zeros sent as about 1 MB of gzip, and this process asks it through the public API. Prints JSON: the
scenario, the error's class and message (or none), and the process's peak resident set in MB
(VmHWM, else `ru_maxrss`: the interpreter, the imports and the server thread included).

    python benchmarks/_answer_bomb.py batch|client|stream|cell|baseline [SIZE_MB]

`baseline`: the same process and server with a small answer (what the imports alone cost).
"""

from __future__ import annotations

import json
import os
import sys
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import peak_rss_mb  # noqa: E402 - benchmarks/ is on the path when run as a script

from tests.hostile import HostileServer, gzip_bomb  # noqa: E402

KEY = "sk-bench-0123456789abcdefghijkl"
CHAT = b'{"id":"c","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"fine"},"finish_reason":"stop"}]}'



def main(scenario: str, size_mb: int) -> dict:
    os.environ["AIHUBMIX_API_KEY"] = KEY
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):  # loopback: never through a proxy
        os.environ.pop(name, None)
    if scenario == "baseline":
        body = zlib.compress(CHAT)
        kind = b"application/json"
    else:
        body = gzip_bomb(size_mb << 20)
        kind = b"text/event-stream" if scenario == "stream" else b"application/json"
    encoding = b"deflate" if scenario == "baseline" else b"gzip"
    head = (b"HTTP/1.1 200 OK\r\nContent-Type: " + kind + b"\r\nContent-Encoding: " + encoding
            + b"\r\nContent-Length: %d\r\n\r\n" % len(body))

    def script(number: int, request: bytes) -> list[bytes]:
        return [head] + [body[start:start + 65536] for start in range(0, len(body), 65536)]

    error: BaseException | None = None
    with HostileServer(script) as server:
        from aihubmix_magic import AihubmixError, Client, batch, last_response, settings

        settings.base_url = server.base_url
        settings.max_retries = 0
        if scenario == "batch" or scenario == "baseline":
            results = batch(["x"], model="m", progress=False, resume=False)
            error = results[0].error
        elif scenario in ("client", "stream"):
            with Client(KEY, server.base_url, max_retries=0) as client:
                try:
                    client.chat("x", model="m", stream=scenario == "stream").text  # noqa: B018
                except AihubmixError as exc:
                    error = exc
        elif scenario == "cell":
            from IPython.core.interactiveshell import InteractiveShell

            shell = InteractiveShell.instance()
            shell.run_line_magic("load_ext", "aihubmix_magic")
            shell.run_cell("%%aihubmix -m m\nhi")
            error = last_response().error
        else:
            raise SystemExit(f"unknown scenario {scenario!r}")
    peak = peak_rss_mb()
    return {"scenario": scenario, "error": type(error).__name__ if error else None,
            "message": str(error) if error else "", "peak_mb": round(peak, 1)}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1024)))
