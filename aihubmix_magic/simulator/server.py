"""The HTTP server: routes, canned faults (a 502 page, a sign-in page, bodies that are not JSON), the request
handler and the threading server it runs in."""

from __future__ import annotations

import dataclasses
import email.utils
import json
import math
import socket
import socketserver
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    pass

from .account import _ACCOUNT_ROUTES, _serve_account
from .data import _HTML_502, _OWNERS, _PROXY_SIGN_IN, _STALL_LIMIT, RecordedRequest
from .events import _ChunkedWriter, _Event, _Framing, _iter_chat_events, _ResponsesEvents, _wait_for_eof
from .reading import _tokenize
from .replies import (
    _aihubmix_error,
    _Canned,
    _chat_completion,
    _incorrect_model_error,
    _invalid_token_error,
    _json_canned,
    _openai_error,
    _Reply,
    _response_json,
    _trace_id,
    _upstream_error,
)
from .tooling import _Fault, _wants_web_search


def _null_answer(endpoint: str, model: str) -> dict:
    created = int(time.time())
    if endpoint == "chat":
        usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        return {
            "id": "chatcmpl-simnull",
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": None,
            "usage": usage,
        }
    usage = {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
    return {
        "id": "resp_simnull",
        "object": "response",
        "created_at": created,
        "status": "completed",
        "model": model,
        "output": None,
        "usage": usage,
    }


def _canned_fault(name: str, number: int, model: str, endpoint: str, stream: bool) -> _Canned | None:
    """The fixed reply that fault ``name`` gives instead of an answer, or None."""
    too_many = _aihubmix_error(f"The {model} model Too many requests; please try again later.")
    if name == "401":
        return _json_canned(401, _invalid_token_error())
    if name == "403":
        message = f"insufficient_user_quota (tid: {_trace_id()})"
        return _json_canned(403, _aihubmix_error(message, code="insufficient_user_quota"))
    if name == "404":
        message = f"The model `{model}` does not exist or you do not have access to it."
        return _json_canned(404, _openai_error(message, "model_not_found"))
    if name == "unknown-model":
        return _json_canned(400, _incorrect_model_error())
    if name == "400":
        return _json_canned(400, _aihubmix_error(f"bad channel id (tid: {_trace_id()})"))
    if name == "503":
        return _json_canned(503, _incorrect_model_error())
    if name == "429":
        return _json_canned(429, too_many, (("retry-after-ms", "20"),))
    if name == "retry-after":
        return _json_canned(429, too_many, (("retry-after", str(number)),))
    if name == "retry-after-ms":
        return _json_canned(429, too_many, (("retry-after-ms", str(number)),))
    if name == "retry-after-date":
        when = email.utils.formatdate(time.time() + number, usegmt=True)
        return _json_canned(429, too_many, (("retry-after", when),))
    if name == "408":
        return _json_canned(408, _aihubmix_error("Request Timeout"))
    if name == "409":
        return _json_canned(409, _aihubmix_error("Conflict: a concurrent request is being processed"))
    if name == "should-retry":
        return _json_canned(400, _aihubmix_error("temporarily rejected"), (("x-should-retry", "true"),))
    if name == "500-no-retry":
        return _json_canned(500, _upstream_error("upstream error"), (("x-should-retry", "false"),))
    if name == "html-200":
        return _Canned(200, _PROXY_SIGN_IN.encode(), "text/html; charset=utf-8")
    if name == "500":
        return _json_canned(500, _upstream_error("upstream error"))
    if name == "html":
        return _Canned(502, _HTML_502.encode(), "text/html")
    if name == "200-error":
        body = _aihubmix_error(f"get_adaptor_failed (tid: {_trace_id()})")
        return _json_canned(200, {**body, "type": "error"})
    if name == "null-choices":
        return _json_canned(200, _null_answer(endpoint, model))
    if stream:
        return None
    if name == "garbage":
        return _Canned(200, b"this is not json <<<", "text/plain")
    if name == "bad-json":
        return _Canned(200, b'{"id": "chatcmpl-sim", "choices": [{', "application/json")
    if name in ("error-event", "error-event-flat") or (name == "failed" and endpoint == "chat"):
        return _json_canned(500, _upstream_error("upstream stream error"))
    return None


_ROUTES = {
    ("GET", "/v1/models"): "models",
    ("POST", "/v1/chat/completions"): "chat",
    ("POST", "/v1/responses"): "responses",
}
_INVALID_JSON = object()
_BAD_JSON_EVENT = _Event(None, '{"choices": [')


def _parse_body(raw: bytes) -> Any:
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return _INVALID_JSON


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "AiHubMixSimulator/1.0"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: no request lines in test output or in a notebook's log."""

    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    @property
    def _simulator(self) -> Any:  # the Simulator (main.py) that started this server
        return self.server.simulator

    def _handle(self) -> None:
        try:
            length = max(0, int(self.headers.get("Content-Length") or 0))
        except ValueError:
            length = 0
        body = _parse_body(self.rfile.read(length))
        headers = {name.lower(): value for name, value in self.headers.items()}
        recorded_body = None if body is _INVALID_JSON else body
        path = urlsplit(self.path).path.rstrip("/")
        account = (self.command, path) in _ACCOUNT_ROUTES  # catalog, billing, status: statistics of their own
        if not getattr(self, "_connection_counted", False):  # a connection counts from its first request
            self._connection_counted = True
            self._simulator._count_connection(account=account)
        self._simulator._record(
            RecordedRequest(self.command, self.path, headers, recorded_body, time.monotonic()), account=account
        )
        route = _ROUTES.get((self.command, path))
        self._rate_headers: tuple[tuple[str, str], ...] = ()
        if route in ("chat", "responses") and self._simulator.rate_limit and self._is_authorized():
            allowed, wait, self._rate_headers = self._simulator._take_token()
            if not allowed:  # over the limit: a 429 at once, as a gateway's limiter answers
                message = _aihubmix_error("Too many requests; please try again later.")
                retry = (("retry-after-ms", str(max(1, math.ceil(wait * 1000)))),
                         ("retry-after", str(max(1, math.ceil(wait)))))
                self._send(_json_canned(429, message, retry))
                return
        if self._simulator.latency and not account:
            time.sleep(self._simulator.latency)
        if path.startswith("/v1/") and not self._is_authorized():
            self._send(_json_canned(401, _invalid_token_error()))
            return
        if (self.command, path) in _ACCOUNT_ROUTES:
            _serve_account(self, _ACCOUNT_ROUTES[(self.command, path)])
        elif route is None:
            self._send(_json_canned(404, _openai_error(f"Invalid URL ({self.command} {path})")))
        elif route == "models":
            self._send(_json_canned(200, _models_list()))
        else:
            self._generate(route, body)

    def _is_authorized(self) -> bool:
        scheme, _, token = self.headers.get("Authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return False
        return self._simulator.api_key is None or token == self._simulator.api_key

    def _generate(self, endpoint: str, body: Any) -> None:
        if not isinstance(body, dict):
            message = "We could not parse the JSON body of your request: it must be a JSON object."
            self._send(_json_canned(400, _openai_error(message)))
            return
        model = body.get("model")
        if not isinstance(model, str) or not model:
            self._send(_json_canned(400, _openai_error("you must provide a model parameter")))
            return
        if model not in _OWNERS and not model.startswith("sim-"):
            self._send(_json_canned(self._simulator.unknown_model_status, _incorrect_model_error()))
            return
        fault = _Fault.parse(model)
        stream = body.get("stream") is True
        if fault.name == "latency":
            time.sleep(fault.number / 1000)
        name = fault.name
        if name in ("flaky-429", "flaky-500", "flaky-408", "flaky-409", "should-retry"):
            failing = self._simulator._take_flaky_turn(model, fault.number)
            name = (name if name == "should-retry" else name[len("flaky-") :]) if failing else ""
        canned = _canned_fault(name, fault.number, model, endpoint, stream)
        if name == "no-web" and _wants_web_search(endpoint, body):
            message = f"The model {model} does not support web_search (tid: {_trace_id()})"
            canned = _json_canned(400, _aihubmix_error(message))
        if name == "400-echo-headers":  # a debugging proxy that quotes the request back
            headers = "; ".join(f"{key}: {value}" for key, value in self.headers.items())
            canned = _json_canned(400, _openai_error(f"Bad request. Headers received: {headers}"))
        if canned is not None:
            self._send(canned)
        elif name in ("drop", "stall") and not stream:
            if name == "stall":
                self._stall()
            self._abort()
        else:
            reply = _Reply.build(endpoint, body, fault)
            if name == "echo-headers":  # like httpbin's /headers: the answer is the request's headers
                lines = "\n".join(f"{key}: {value}" for key, value in self.headers.items())
                reply = dataclasses.replace(reply, tokens=tuple(_tokenize("Headers received:\n\n" + lines)))
            if stream:
                self._stream(reply, fault)
            else:
                self._send(
                    _json_canned(
                        200, _chat_completion(reply) if endpoint == "chat" else _response_json(reply)
                    )
                )

    def _send(self, canned: _Canned) -> None:
        self.send_response(canned.status)
        self.send_header("Content-Type", canned.content_type)
        self.send_header("Content-Length", str(len(canned.body)))
        for name, value in (*canned.headers, *getattr(self, "_rate_headers", ())):
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(canned.body)

    def _stream(self, reply: _Reply, fault: _Fault) -> None:
        framing = _Framing(fault.name)
        events = _iter_chat_events(reply) if reply.endpoint == "chat" else _ResponsesEvents(reply)
        delay = fault.token_delay if fault.token_delay is not None else self._simulator.delay
        junk_after = 3 if fault.name == "bad-json" else -1
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        for name, value in self._rate_headers:
            self.send_header(name, value)
        self.end_headers()
        writer = _ChunkedWriter(self.wfile, 7 if fault.name == "chunked-utf8" else None)
        tokens_sent = 0
        try:
            for event in events:
                if event.is_token:
                    if tokens_sent == junk_after:
                        writer.write(framing.frame(_BAD_JSON_EVENT))
                    if delay:
                        time.sleep(delay)
                    tokens_sent += 1
                writer.write(framing.frame(event))
            if reply.ending == "stall":
                self._stall()
            if reply.ending in ("drop", "stall"):
                self._abort()
            else:
                writer.close()
        except ConnectionError:
            self._client_left()

    def _stall(self) -> None:
        """Send nothing until the client goes away (a disconnect), the simulator stops, or 120 s pass."""
        if _wait_for_eof(self.connection, self.server.stopping, _STALL_LIMIT):
            self._client_left()

    def _client_left(self) -> None:
        self.close_connection = True
        self._simulator._record_disconnect(self.path)

    def _abort(self) -> None:
        """Cut the connection without finishing the response."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _models_list() -> dict:
    return {
        "object": "list",
        "data": [
            {"id": model, "object": "model", "created": 1626777600, "owned_by": owner}
            for model, owner in _OWNERS.items()
        ],
    }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], simulator: Any) -> None:  # the Simulator (main.py)
        self.simulator = simulator
        self.ssl_context = simulator.ssl_context
        self.stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name, which can take seconds on an offline machine
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def get_request(self) -> tuple[Any, Any]:
        connection, address = self.socket.accept()
        if self.ssl_context is not None:  # the handshake happens on the first read, in the handler's thread
            connection = self.ssl_context.wrap_socket(connection, server_side=True, do_handshake_on_connect=False)
        return connection, address

    def process_request(self, request: Any, client_address: Any) -> None:
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client going away is not an error
            super().handle_error(request, client_address)

    def close_connections(self) -> None:
        """End the stalls and the idle keep-alive connections, so that their threads finish."""
        self.stopping.set()
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
