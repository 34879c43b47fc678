"""A minimal loopback HTTP server that replays pre-rendered SSE bytes, as fast as it can or paced.

Run as a separate process by `_common.ReplayServer`, so its cost never shares a GIL with the client
being measured. Standard library only.

    python benchmarks/_replay_server.py DIR [--tps N]

DIR holds `chat.sse` and/or `responses.sse`: the SSE events of one streamed answer, exactly as the
simulator wrote them (each event ends with a blank line). Every POST to a path ending in
`/chat/completions` or `/responses` gets the matching body, one HTTP/1.1 chunk per event (as the
simulator and real gateways frame it), on a keep-alive connection; `GET .../models` gets a tiny list.

- Full speed (no `--tps`): the whole chunked body is pre-rendered once and written with one `sendall`,
  so the server's cost per event is zero and the client's cost is what is measured.
- `--tps N`: each event that carries text is written 1/N s after the previous one, and the
  `time.monotonic()` of each such write is recorded. `GET /_timestamps` returns (and clears) those times as JSON.
  On Linux `time.monotonic()` is CLOCK_MONOTONIC, the same clock in every process, so the client can
  compare its own times with them.

The first line printed on stdout is the port.
"""

from __future__ import annotations

import argparse
import json
import socket
import socketserver
import sys
import threading
import time
from pathlib import Path


def split_events(body: bytes) -> list[bytes]:
    """The events of an SSE body, each with its terminating blank line."""
    return [event + b"\n\n" for event in body.split(b"\n\n") if event.strip()]


def chunked(events: list[bytes]) -> bytes:
    return b"".join(b"%X\r\n%b\r\n" % (len(event), event) for event in events) + b"0\r\n\r\n"


def carries_text(event: bytes) -> bool:
    return b'"content":"' in event and b'"content":""' not in event or b"output_text.delta" in event


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def handle(self) -> None:
        while True:
            request_line = self.rfile.readline()
            if not request_line:
                return
            length = 0
            while True:
                line = self.rfile.readline()
                if line in (b"\r\n", b"\n", b""):
                    break
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            if length:
                self.rfile.read(length)
            method, path = request_line.split()[:2]
            path = path.split(b"?")[0].rstrip(b"/")
            if path.endswith(b"/_timestamps"):
                with self.server.lock:
                    body = json.dumps(self.server.timestamps).encode()
                    self.server.timestamps = []
                self._send_plain(body)
            elif path.endswith(b"/models"):
                self._send_plain(b'{"object":"list","data":[{"id":"gpt-4o-mini","object":"model",'
                                 b'"created":1626777600,"owned_by":"OpenAI"}]}')
            else:
                endpoint = "responses" if path.endswith(b"/responses") else "chat"
                self._stream(endpoint)

    def _send_plain(self, body: bytes) -> None:
        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%b"
                         % (len(body), body))

    def _stream(self, endpoint: str) -> None:
        head = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
                b"Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n")
        server = self.server
        if not server.tps:
            self.connection.sendall(head + server.rendered[endpoint])
            return
        self.connection.sendall(head)
        interval = 1.0 / server.tps
        stamps = []
        for event in server.events[endpoint]:
            if carries_text(event):
                time.sleep(interval)  # at least 1/tps between two text events, even after a late wake-up
                stamps.append(time.monotonic())
            self.connection.sendall(b"%X\r\n%b\r\n" % (len(event), event))
        self.connection.sendall(b"0\r\n\r\n")
        with server.lock:
            server.timestamps.extend(stamps)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, events: dict[str, list[bytes]], tps: float) -> None:
        self.events = events
        self.rendered = {name: chunked(value) for name, value in events.items()}
        self.tps = tps
        self.lock = threading.Lock()
        self.timestamps: list[float] = []
        super().__init__(("127.0.0.1", 0), _Handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--tps", type=float, default=0.0)
    args = parser.parse_args(argv)
    events = {path.stem: split_events(path.read_bytes()) for path in args.directory.glob("*.sse")}
    server = _Server(events, args.tps)
    print(server.server_address[1], flush=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sys.stdin.read()  # serve until the parent closes our stdin (or dies)
    server.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
