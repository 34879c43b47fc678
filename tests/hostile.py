"""A hostile HTTP server on loopback for the tests: a raw socket that answers each request with exactly the
bytes a test scripts (malformed heads, odd framings, a gzip bomb, extra bytes after an answer), and
records what it was sent. Not the simulator: nothing in it is HTTP-correct on purpose."""

from __future__ import annotations

import socket
import struct
import threading
import zlib
from collections.abc import Callable, Iterable

Script = Callable[[int, bytes], "bytes | Iterable[bytes]"]  # (request number from 0, request) -> answer


def json_answer(body: bytes = b'{"choices":[{"message":{"role":"assistant","content":"fine"}}]}', *,
                head: bytes = b"") -> bytes:
    """A good JSON answer (`head`: extra header lines, each ending in CRLF)."""
    return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
            + head + b"\r\n" + body)


def gzip_bomb(size: int = 1 << 30) -> bytes:
    """`size` bytes of zeros (a whole number of MiB), gzip-compressed: 1 GiB is about 1 MB. Each MiB is
    compressed once, after a full flush (no history, so every MiB compresses to the same bytes), and
    repeated; the trailer's CRC and length are computed as gzip's would be."""
    zeros = bytes(1 << 20)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    first = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    assert first == block, "a full flush should make each MiB compress alike"
    count = size >> 20
    crc = 0
    for _ in range(count):
        crc = zlib.crc32(zeros, crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    return header + block * count + compressor.flush() + struct.pack("<II", crc, size & 0xFFFFFFFF)


class HostileServer:
    """`with HostileServer(script) as server:` … `server.base_url`, `server.requests` (each POST's
    bytes; a GET gets an empty list), `server.connections`. `script(n, request)` gives the bytes of the n-th answer (or pieces of
    it); the connection stays open for the next request unless `close` (or the client closes it)."""

    def __init__(self, script: Script, *, close: bool = False) -> None:
        self.script = script
        self.close_after = close
        self.requests: list[bytes] = []
        self.request_connections: list[int] = []  # the connection (numbered from 1) each POST came on
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> HostileServer:
        thread = threading.Thread(target=self._accept, name="hostile-server", daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            thread = threading.Thread(target=self._serve, args=(connection, self.connections), daemon=True)
            thread.start()

    def _serve(self, connection: socket.socket, number_of_connection: int) -> None:
        buffer = b""
        with connection:
            connection.settimeout(10)
            try:
                while True:
                    while b"\r\n\r\n" not in buffer:
                        data = connection.recv(65536)
                        if not data:
                            return
                        buffer += data
                    head, _, buffer = buffer.partition(b"\r\n\r\n")
                    length = 0
                    for line in head.split(b"\r\n")[1:]:
                        name, _, value = line.partition(b":")
                        if name.strip().lower() == b"content-length":
                            length = int(value)
                    while len(buffer) < length:
                        data = connection.recv(65536)
                        if not data:
                            return
                        buffer += data
                    request, buffer = head + b"\r\n\r\n" + buffer[:length], buffer[length:]
                    if request.startswith(b"GET "):  # the model catalog or list a cell or batch may ask for
                        connection.sendall(json_answer(b'{"success":true,"object":"list","data":[]}'))
                        continue
                    with self._lock:
                        number = len(self.requests)
                        self.requests.append(request)
                        self.request_connections.append(number_of_connection)
                    answer = self.script(number, request)
                    for piece in [answer] if isinstance(answer, bytes) else answer:
                        connection.sendall(piece)
                    if self.close_after:
                        return
            except OSError:  # the client gave up on us: expected for the hostile cases
                return
