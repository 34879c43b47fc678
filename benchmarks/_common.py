"""What the benchmark rows share: the Result they report, alternated timing, and the replay server."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
KEY = "sk-bench-0123456789abcdefghijklmnop"


@dataclass
class Result:
    """One line of the table.

    `measured` is what was measured, as text (e.g. "0.41 s vs 0.33 s"); `value` the number compared
    with the target (a ratio, usually, against a baseline measured in the same run); `passed` is
    True/False, or None when there is no verdict (a baseline that is not installed, an informative line).
    """

    row: str
    name: str
    measured: str
    value: str
    target: str
    passed: bool | None
    note: str = ""

    @property
    def verdict(self) -> str:
        return {True: "PASS", False: "FAIL", None: "—"}[self.passed]


def median(values: list[float]) -> float:
    return statistics.median(values)


def alternate(candidates: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Time each callable `repeats` times, alternating them (a, b, c, a, b, c, …): load that comes and
    goes on a shared machine then hits every candidate alike. Returns the seconds of each run."""
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, function in candidates.items():
            start = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - start)
    return times


def request_body(endpoint: str, prompt: str, model: str = "gpt-4o-mini") -> dict:
    if endpoint == "chat":
        return {"model": model, "messages": [{"role": "user", "content": prompt}], "stream": True,
                "stream_options": {"include_usage": True}}
    return {"model": model, "input": prompt, "stream": True, "store": False}


def capture_sse(prompt: str, directory: Path, endpoints: tuple[str, ...] = ("chat", "responses")) -> dict[str, bytes]:
    """Ask the project's simulator for one streamed answer per endpoint and save the SSE bytes exactly
    as it sent them, so every client below reads the same bytes."""
    from aihubmix_magic.simulator import Simulator

    bodies = {}
    with Simulator() as simulator, httpx.Client(timeout=120) as http:
        for endpoint in endpoints:
            path = "/chat/completions" if endpoint == "chat" else "/responses"
            response = http.post(simulator.base_url + path, json=request_body(endpoint, prompt),
                                 headers={"Authorization": f"Bearer {KEY}"})
            response.raise_for_status()
            bodies[endpoint] = response.content
            (directory / f"{endpoint}.sse").write_bytes(response.content)
    return bodies


class ReplayServer:
    """`_replay_server.py` in its own process, replaying the simulator's answer to `prompt`."""

    def __init__(self, prompt: str, *, tps: float = 0.0, endpoints: tuple[str, ...] = ("chat", "responses")) -> None:
        self.prompt = prompt
        self.tps = tps
        self._tmp = tempfile.TemporaryDirectory(prefix="aihubmix-bench-")
        self.bodies = capture_sse(prompt, Path(self._tmp.name), endpoints)
        command = [sys.executable, str(HERE / "_replay_server.py"), self._tmp.name]
        if tps:
            command += ["--tps", str(tps)]
        self._process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        port = int(self._process.stdout.readline())
        self.base_url = f"http://127.0.0.1:{port}/v1"

    def timestamps(self) -> list[float]:
        """The server's monotonic time of each text event it wrote since the last call (paced mode)."""
        return httpx.get(self.base_url + "/_timestamps").json()

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.stdin.close()
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._tmp.cleanup()

    def __enter__(self) -> ReplayServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def text_events(body: bytes, endpoint: str) -> int:
    """How many events of an SSE body carry answer text (the "chunks" of the stream)."""
    marker = b'"content":"' if endpoint == "chat" else b"response.output_text.delta"
    count = 0
    for event in body.split(b"\n\n"):
        if marker in event and b'"content":""' not in event:
            count += 1
    return count


def machine() -> str:
    import platform

    return f"{os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()} {platform.machine()}"


def peak_rss_mb() -> float:
    """This process's peak resident set in MB: VmHWM (it starts again at exec, where `ru_maxrss` keeps the
    high-water mark of the parent that forked it, e.g. a large pytest), else `ru_maxrss`."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
