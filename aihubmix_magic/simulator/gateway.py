"""`Simulator`: start the server on a free loopback port, point a client at it, read what it received."""

from __future__ import annotations

import argparse
import textwrap
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import ssl

from .account import BILLING_FAULTS, CATALOG_FAULTS
from .data import FAULT_MODELS, MODELS, RecordedRequest
from .server import _Server

# --- public API ------------------------------------------------------------------------------------


class Simulator:
    """An AiHubMix-like gateway on a loopback port, serving from a background thread.

    ``api_key=None`` accepts any non-empty bearer token; ``delay`` is the time between streamed
    tokens and ``latency`` the time before each response starts, in seconds; ``unknown_model_status`` is
    the HTTP status of the answer to a model it does not know (400; AiHubMix also uses 404 and 503).
    ``rate_limit`` (requests a second, None: no limit) puts a token bucket of ``rate_limit_burst`` tokens
    (default: one second's worth, at least 1) in front of the generation endpoints: over it, HTTP 429 with
    ``retry-after-ms`` and ``retry-after``; ``rate_limit_headers`` adds ``x-ratelimit-*`` headers to every
    answer. The statistics (``requests``, ``connections_opened``, ``disconnects``, ``rate_limited``) are
    thread-safe and cleared by ``reset()``, which also fills the bucket again; they count the API
    (``/v1/models``, chat, responses, and any unknown path), while ``account_requests`` and
    ``account_connections`` count the catalog, billing and status requests and the connections they opened
    (a connection counts once, from its first request). ``catalog`` picks how ``GET /api/v1/models``
    answers (``CATALOG_FAULTS``: ok, down, slow, not-json, wrong-shape, unsuccessful; ``slow`` waits
    ``catalog_delay`` seconds) and ``billing`` how the billing endpoints do (``BILLING_FAULTS``: ok, down,
    partial, quota-units). ``ssl_context`` (a server-side ``ssl.SSLContext`` with its certificate loaded)
    serves HTTPS instead of HTTP, for tests of TLS clients.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        api_key: str | None = None,
        delay: float = 0.0,
        latency: float = 0.0,
        unknown_model_status: int = 400,
        catalog: str = "ok",
        catalog_delay: float = 3.0,
        billing: str = "ok",
        rate_limit: float | None = None,
        rate_limit_burst: float | None = None,
        rate_limit_headers: bool = False,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.ssl_context = ssl_context
        if catalog not in CATALOG_FAULTS or billing not in BILLING_FAULTS:
            raise ValueError(f"catalog must be one of {', '.join(CATALOG_FAULTS)} and billing one of "
                             f"{', '.join(BILLING_FAULTS)}")
        self.catalog = catalog
        self.catalog_delay = catalog_delay
        self.billing = billing
        self.unknown_model_status = unknown_model_status
        if rate_limit is not None and not rate_limit > 0:
            raise ValueError(f"rate_limit must be a positive number of requests a second, not {rate_limit!r}")
        self.rate_limit = rate_limit
        self.rate_limit_burst = rate_limit_burst if rate_limit_burst is not None else max(1.0, rate_limit or 1.0)
        self.rate_limit_headers = rate_limit_headers
        self.rate_limited = 0
        self._tokens = self.rate_limit_burst
        self._tokens_at = time.monotonic()
        self.host = host
        self.port = port
        self.api_key = api_key
        self.delay = delay
        self.latency = latency
        self.requests: list[RecordedRequest] = []
        self.connections_opened = 0
        self.account_requests: list[RecordedRequest] = []  # catalog, billing and status requests
        self.account_connections = 0  # connections whose first request was one of those
        self.disconnects: list[tuple[float, str]] = []
        self.disconnected = threading.Event()
        self._lock = threading.Lock()
        self._flaky_counts: dict[str, int] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        state = "running" if self._server is not None else "stopped"
        return f"<Simulator {self.base_url} {state}>"

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{host}:{self.port}/v1"

    @property
    def request_count(self) -> int:
        return len(self.requests)

    def start(self) -> Simulator:
        """Listen and serve in a daemon thread; with ``port=0`` the port is chosen now."""
        if self._server is None:
            self._server = _Server((self.host, self.port), self)
            self.port = self._server.server_address[1]
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"aihubmix-simulator-{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket and every open connection."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join()

    def reset(self) -> None:
        """Clear the statistics and the ``sim-flaky-*`` counters."""
        with self._lock:
            self.requests.clear()
            self.disconnects.clear()
            self.connections_opened = 0
            self.account_requests.clear()
            self.account_connections = 0
            self._flaky_counts.clear()
            self.disconnected.clear()
            self.rate_limited = 0
            self._tokens = self.rate_limit_burst
            self._tokens_at = time.monotonic()

    def wait_for_disconnect(self, timeout: float | None = None) -> bool:
        """Wait until a client leaves in the middle of a stream; False if ``timeout`` passes first."""
        return self.disconnected.wait(timeout)

    def _record(self, request: RecordedRequest, account: bool = False) -> None:
        with self._lock:
            (self.account_requests if account else self.requests).append(request)

    def _count_connection(self, account: bool = False) -> None:
        with self._lock:
            if account:
                self.account_connections += 1
            else:
                self.connections_opened += 1

    def _record_disconnect(self, path: str) -> None:
        with self._lock:
            self.disconnects.append((time.monotonic(), path))
            self.disconnected.set()

    def _take_token(self) -> tuple[bool, float, tuple[tuple[str, str], ...]]:
        """Take a token from the rate-limit bucket: (allowed, seconds until the next token, headers to send)."""
        rate = self.rate_limit or 1.0
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.rate_limit_burst, self._tokens + (now - self._tokens_at) * rate)
            self._tokens_at = now
            allowed = self._tokens >= 1.0
            if allowed:
                self._tokens -= 1.0
            else:
                self.rate_limited += 1
            wait = max(0.0, (1.0 - self._tokens) / rate)
            headers: tuple[tuple[str, str], ...] = ()
            if self.rate_limit_headers:
                full = (self.rate_limit_burst - self._tokens) / rate
                headers = (("x-ratelimit-limit-requests", f"{self.rate_limit_burst:g}"),
                           ("x-ratelimit-remaining-requests", str(int(self._tokens))),
                           ("x-ratelimit-reset-requests", f"{full:.3f}s"))
        return allowed, wait, headers

    def _take_flaky_turn(self, model: str, failures: int) -> bool:
        """Count a request for a ``sim-flaky-*`` model; True while it is one of the first ``failures``."""
        with self._lock:
            count = self._flaky_counts.get(model, 0)
            self._flaky_counts[model] = count + 1
        return count < failures


def _fault_help() -> str:
    width = max(map(len, FAULT_MODELS)) + 2
    models = textwrap.fill(
        ", ".join(MODELS), width=100, initial_indent="  ", subsequent_indent="  ", break_on_hyphens=False
    )
    lines = [
        "models:",
        models,
        "",
        "fault models (any other sim-* name answers normally; a missing N or S is 1):",
    ]
    lines += [f"  {name.ljust(width)}{description}" for name, description in FAULT_MODELS.items()]
    lines += ["", "model catalog (GET /api/v1/models; --catalog, or ?fault= on its URL):"]
    lines += [f"  {name.ljust(width)}{description}" for name, description in CATALOG_FAULTS.items()]
    lines += ["", "billing endpoints (/v1/dashboard/billing/subscription, /dashboard/billing/usage, "
              "/dashboard/billing/remain, /api/status; --billing):"]
    lines += [f"  {name.ljust(width)}{description}" for name, description in BILLING_FAULTS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the simulator from the command line until Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="python -m aihubmix_magic.simulator",
        description="An OpenAI-compatible AiHubMix gateway on loopback that simulates answers and faults.",
        epilog=_fault_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default: any free port)")
    parser.add_argument(
        "--delay", type=float, default=0.0, help="seconds between streamed tokens (default: 0)"
    )
    parser.add_argument(
        "--latency", type=float, default=0.0, help="seconds before each response (default: 0)"
    )
    parser.add_argument("--api-key", help="the only key to accept (default: any non-empty key)")
    parser.add_argument("--catalog", choices=list(CATALOG_FAULTS), default="ok",
                        help="how GET /api/v1/models answers (default: %(default)s)")
    parser.add_argument("--billing", choices=list(BILLING_FAULTS), default="ok",
                        help="how the billing endpoints answer (default: %(default)s)")
    parser.add_argument("--rate-limit", type=float, metavar="R",
                        help="at most R requests a second (a token bucket); over it: HTTP 429 with retry-after")
    parser.add_argument("--rate-limit-burst", type=float, metavar="B", help="the bucket's size (default: R, at least 1)")
    parser.add_argument("--rate-limit-headers", action="store_true",
                        help="send x-ratelimit-limit/remaining/reset-requests with every answer")
    args = parser.parse_args(argv)
    with Simulator(
        args.host, args.port, api_key=args.api_key, delay=args.delay, latency=args.latency,
        catalog=args.catalog, billing=args.billing, rate_limit=args.rate_limit,
        rate_limit_burst=args.rate_limit_burst, rate_limit_headers=args.rate_limit_headers,
    ) as simulator:
        print(f"AiHubMix simulator on {simulator.base_url} (answers are simulated)", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0
