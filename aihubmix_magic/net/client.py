"""Client: the sync driver, one pooled httpx.Client for /v1/chat/completions, /v1/responses and /v1/models.

Usable without IPython:

    from aihubmix_magic import Client
    client = Client()                         # AIHUBMIX_API_KEY, AIHUBMIX_BASE_URL from the environment
    print(client.chat("Say hi", model="gpt-4o-mini").text)
    for delta in client.respond("Say hi", model="gpt-4o-mini", stream=True):
        print(delta, end="")

It only sends, waits and reads: the body, the retry decision and the error mapping are the protocol
core's (`_protocol.py`), shared with the async driver that `batch()` uses. The key goes only into the
Authorization header of requests to the configured base URL, and is masked in everything read back; a
key or base URL with a control character in it is refused before anything is sent.

Bodies are read from the raw stream and decoded here (`_bodies.BodyDecoder`), under the size cap
`max_answer_bytes` (`settings.max_answer_bytes`): a whole body (an answer, an error answer, the model
list) once decoded; a stream, which is read as it comes and not kept, on its text and on any one event
(and any one decoded piece), so memory stays bounded by the cap either way. Whether a request
goes through a proxy from the environment is `_proxy.proxy_for`'s decision, the same as a batch's.
"""

from __future__ import annotations

import functools
import json
import os
import socket
import ssl
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from ..core import protocol
from ..core.exceptions import AihubmixError, AnswerTooLargeError, APIResponseError, MissingKeyError
from ..core.protocol import (
    DEFAULT_BASE_URL,
    DEFAULT_MAX_STEPS,
    ENDPOINT_PATHS,
    Failure,
    Redactor,
    has_runnable_tools,
    mask_key,
    validate_header_value,
    validate_key,
)
from ..core.request import Request, check_extra_body
from ..core.response import Response
from ..core.sse import SSEDecoder
from ..core.streams import DONE, accumulator_for
from ..core.types import quote
from .bodies import (
    ACCEPT_ENCODING,
    DEFAULT_MAX_ANSWER_BYTES,
    BodyDecoder,
    ContentDecodingError,
    framing_problem,
)
from .proxy import proxy_for

__all__ = ["Client", "RetryCallback", "ssl_context"]

RetryCallback = Callable[[int, float, str], None]  # (retry number, delay in seconds, reason)


class Client:
    """A connection to AiHubMix (or any OpenAI-compatible server), reused for every call."""

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        timeout: float = 300.0,
        connect_timeout: float = 10.0,
        max_retries: int = 2,
        app_code: str | None = None,
        max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES,
    ) -> None:
        if api_key is not None:
            self.api_key = api_key
        else:
            self.api_key = validate_key(os.environ.get("AIHUBMIX_API_KEY"), source="AIHUBMIX_API_KEY")
        self._http: httpx.Client | None = None
        self._proxy: str | None = None
        self._timeout = httpx.Timeout(timeout, connect=connect_timeout)
        self.base_url = base_url or os.environ.get("AIHUBMIX_BASE_URL") or DEFAULT_BASE_URL
        self.max_retries = max_retries
        self.app_code = app_code
        self.max_answer_bytes = max_answer_bytes  # the longest answer kept, in bytes once decoded
        self._model_ids: list[str] | None = None
        self.cache: Any = None  # a ResponseCache (see _cache.py) when answers may come from / go to the cache

    # -- settings ----------------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return self._base_url

    @base_url.setter
    def base_url(self, url: str) -> None:
        url = protocol.validate_base_url(url)
        if not url.startswith("https://") and not protocol.is_loopback(url):
            warnings.warn(
                f"Base URL {url} is not HTTPS: the API key would travel unencrypted.", UserWarning, stacklevel=3
            )
        self._base_url = url
        self._model_ids = None
        self._route()

    def _route(self) -> None:
        """Follow `proxy_for`'s decision for the base URL as the environment says now (a batch decides
        anew each time too): a new pool when it changed."""
        proxy = proxy_for(self._base_url)
        if self._http is None or proxy != self._proxy:
            if self._http is not None:
                self._http.close()
            self._proxy = proxy
            self._http = self._new_http(proxy)

    def _new_http(self, proxy: str | None) -> httpx.Client:
        """The pool for `proxy` (None: direct). httpx's own reading of the environment is off: the route is
        `proxy_for`'s, and the certificates httpx would trust (certifi, or SSL_CERT_FILE / SSL_CERT_DIR)."""
        return httpx.Client(
            timeout=self._timeout,
            limits=httpx.Limits(max_keepalive_connections=8, keepalive_expiry=120.0),
            follow_redirects=False,
            trust_env=False,
            proxy=proxy,
            verify=ssl_context(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"), None),
        )

    @property
    def api_key(self) -> str | None:
        return self._api_key

    @api_key.setter
    def api_key(self, key: str | None) -> None:
        """ConfigurationError for a key with a control character (CR, LF, NUL…): nothing is sent with it."""
        self._api_key = validate_key(key, source="Client(api_key=…)")

    def set_timeout(self, timeout: float, connect_timeout: float = 10.0) -> None:
        self._timeout = self._pool.timeout = httpx.Timeout(timeout, connect=connect_timeout)

    @property
    def timeout(self) -> httpx.Timeout:
        return self._timeout

    @property
    def _pool(self) -> httpx.Client:
        assert self._http is not None
        return self._http

    def __repr__(self) -> str:
        return f"<Client base_url={self.base_url!r} key={mask_key(self._api_key)}>"

    def close(self) -> None:
        self._pool.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- endpoints ---------------------------------------------------------------------------------------
    def chat(
        self,
        messages: str | list[dict[str, Any]],
        *,
        model: str,
        system: str | None = None,
        stream: bool = False,
        temperature: float | None = None,
        top_p: float | None = None,
        max_tokens: int | None = None,
        reasoning_effort: str | None = None,
        on_retry: RetryCallback | None = None,
        tools: list[Any] | None = None,
        approve: Any = None,
        max_steps: int = DEFAULT_MAX_STEPS,
        web_search: bool = False,
        extra_body: dict[str, Any] | None = None,
        **unknown: object,
    ) -> Response:
        """POST /v1/chat/completions. `messages` is a prompt string or a list of chat messages.

        `tools=[f, g]`: Python functions the model may call (see `send`); `web_search=True` adds the hosted
        web search (`web_search_options`). Any other body field goes in `extra_body={...}` (as the SDK's);
        an unknown keyword is a TypeError, before anything is sent."""
        extra = check_extra_body("Client.chat()", extra_body, unknown)
        request = Request(model=model, prompt=messages if isinstance(messages, str) else tuple(messages),
                          endpoint="chat", system=system, stream=stream, temperature=temperature, top_p=top_p,
                          max_tokens=max_tokens, reasoning_effort=reasoning_effort, extra=extra,
                          tools=tuple(tools or ()), web_search=web_search)
        return self.send(request, on_retry=on_retry, approve=approve, max_steps=max_steps)

    def respond(
        self,
        input: str | list[dict[str, Any]],
        *,
        model: str,
        instructions: str | None = None,
        stream: bool = False,
        temperature: float | None = None,
        top_p: float | None = None,
        max_output_tokens: int | None = None,
        reasoning_effort: str | None = None,
        store: bool = False,
        on_retry: RetryCallback | None = None,
        tools: list[Any] | None = None,
        approve: Any = None,
        max_steps: int = DEFAULT_MAX_STEPS,
        web_search: bool = False,
        previous_response_id: str | None = None,
        extra_body: dict[str, Any] | None = None,
        **unknown: object,
    ) -> Response:
        """POST /v1/responses. Stateless by default (`store: false`, the whole input sent each time).

        `tools=[f, g]`: Python functions the model may call (see `send`); `web_search=True` adds the hosted
        `{"type": "web_search"}` tool. Any other body field goes in `extra_body={...}` (as the SDK's); an
        unknown keyword is a TypeError, before anything is sent."""
        extra = check_extra_body("Client.respond()", extra_body, unknown)
        previous = previous_response_id
        request = Request(model=model, prompt=input if isinstance(input, str) else tuple(input),
                          endpoint="responses", system=instructions, stream=stream, temperature=temperature,
                          top_p=top_p, max_tokens=max_output_tokens, reasoning_effort=reasoning_effort,
                          store=store, previous_response_id=previous, extra=extra, tools=tuple(tools or ()),
                          web_search=web_search)
        return self.send(request, on_retry=on_retry, approve=approve, max_steps=max_steps)

    def send(self, request: Request, *, on_retry: RetryCallback | None = None, approve: Any = None,
             max_steps: int = DEFAULT_MAX_STEPS) -> Response:
        """Send a typed request (streamed if `request.stream`); the Response keeps it as `.spec`.

        When the request offers Python functions (`tools`), the tool loop runs: each call the model asks
        for runs here once approved, its result goes back, until the model answers in text or `max_steps`
        steps were taken. `approve`: True runs every call, False none, a callable `approve(call) -> bool`
        decides; None (the default) asks (a y/n question; in a notebook, buttons), and skips the call where
        nobody can answer. Each step is read whole; the final answer has `.steps` and the summed usage."""
        if not has_runnable_tools(request):
            return self._send_one(request, on_retry=on_retry)
        from ..core import hooks
        from ..core.toolloop import Approver, run_tool_loop

        def send_and_read(step_request: Request) -> Response:
            response = self._send_one(step_request, on_retry=on_retry)
            response.text  # noqa: B018 - a streamed step is read whole before its tools run
            if response.status == "failed" and response.error is not None:
                raise response.error
            return response

        approver = Approver(approve=approve, ask=hooks.default_asker() if approve is None else None)
        return run_tool_loop(request, send_and_read, approver=approver, max_steps=max_steps,
                             scrub=self._redactor().mask)

    def _send_one(self, request: Request, *, on_retry: RetryCallback | None = None) -> Response:
        body = protocol.request_body(request)
        cache = self.cache
        if cache is not None:
            hit = cache.get(request.endpoint, self.base_url, body, spec=request)
            if hit is not None:
                return hit
        response = Response(endpoint=request.endpoint, request=body, stream=request.stream, spec=request)
        if cache is not None:
            base_url = self.base_url
            response._on_done = lambda done: cache.put(done, base_url)
        try:
            return self._answer(response, ENDPOINT_PATHS[request.endpoint], body, on_retry=on_retry)
        except AihubmixError as exc:
            if response.status == "in_progress":
                response.status = "failed"
                response.error = exc
                response.elapsed = time.perf_counter() - response._started
            exc.response = response
            raise

    def models(self) -> list[dict[str, Any]]:
        """GET /v1/models: the models this key may use, as the server describes them."""
        response = self._send("GET", "/models", None, on_retry=None)
        content = self._read(response, "models")
        body = self._parse_json(content, response)
        data = body.get("data") if isinstance(body, dict) else body
        if not isinstance(data, list):
            raise APIResponseError("The model list has no `data` array.", body=body)
        models = [m for m in data if isinstance(m, dict) and m.get("id")]
        self._model_ids = sorted(str(m["id"]) for m in models)
        return models

    def model_ids(self, *, refresh: bool = False) -> list[str]:
        if self._model_ids is None or refresh:
            self.models()
        return list(self._model_ids or [])

    def suggest(self, model: str) -> list[str]:
        """Close model ids for an unknown `model` (from /v1/models, fetched once); [] if that fails."""
        try:
            return protocol.close_suggestions(model, self.model_ids())
        except AihubmixError:
            return []

    # -- the request -------------------------------------------------------------------------------------
    def _answer(self, response: Response, path: str, body: dict[str, Any], *,
                on_retry: RetryCallback | None) -> Response:
        http_response = self._send("POST", path, body, on_retry=on_retry, model=str(body.get("model", "")))
        is_sse = http_response.headers.get("content-type", "").startswith("text/event-stream")
        if response.stream and is_sse:
            response._accumulator = accumulator_for(response.endpoint)
            response._source = self._iter_events(http_response)
            response._close = http_response.close
            response._abort = lambda: _shutdown(http_response)
            response._max_text = self.max_answer_bytes
            return response
        content = self._read(http_response, "read")
        protocol.complete(response, self._parse_json(content, http_response))
        if response.status == "failed" and response.error is not None:  # e.g. a responses body with status failed
            raise response.error  # as the same answer streamed would (the Response is attached by send)
        return response

    def _send(self, method: str, path: str, body: dict[str, Any] | None, *, on_retry: RetryCallback | None,
              model: str = "") -> httpx.Response:
        """Send with retries; return an open 2xx response (the caller reads and closes it)."""
        headers = self._headers()
        content = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            content = json.dumps(body, ensure_ascii=False).encode()
        url = self.base_url + path
        self._route()
        retries = 0
        while True:
            if retries:
                headers["x-stainless-retry-count"] = str(retries)
            failure: Failure
            try:
                response = self._pool.send(self._pool.build_request(method, url, content=content, headers=headers),
                                           stream=True)
            except httpx.TransportError as exc:
                failure = self._transport(exc, "send")
            else:
                problem = framing_problem(response.headers)  # type: ignore[arg-type]
                if problem is not None:
                    _shutdown(response)
                    response.close()
                    raise self._transport(httpx.RemoteProtocolError(problem), "read").error
                if response.status_code < 400:
                    return response
                try:
                    said = self._read(response, "read")
                except AnswerTooLargeError:
                    raise  # never retried
                except AihubmixError:
                    said = b""
                failure = protocol.status_failure(
                    response.status_code, response.headers, said, base_url=self.base_url,
                    path=response.request.url.path, model=model, redactor=self._redactor(), suggest=self.suggest)
            delay = protocol.retry_delay(failure, retries, self.max_retries)
            if delay is None:
                raise failure.error
            retries += 1
            if on_retry is not None:
                on_retry(retries, delay, protocol.retry_reason(failure.error))
            time.sleep(delay)

    def _headers(self) -> dict[str, str]:
        """The headers of every request (the key only here); MissingKeyError if there is no key."""
        if not self._api_key:
            raise MissingKeyError()
        headers = {"Authorization": f"Bearer {self._api_key}", "Accept": "application/json, text/event-stream",
                   "Accept-Encoding": ACCEPT_ENCODING}
        if self.app_code:
            headers["APP-Code"] = validate_header_value("app_code", self.app_code)
        return headers

    def _redactor(self) -> Redactor:
        return Redactor(self._api_key)

    def _transport(self, exc: Exception, phase: str) -> Failure:
        return protocol.transport_failure(exc, timeout=isinstance(exc, httpx.TimeoutException), phase=phase,
                                          base_url=self.base_url, redactor=self._redactor(),
                                          read_timeout=self._timeout.read)

    def _read(self, response: httpx.Response, phase: str) -> bytes:
        """The whole body, decoded under the cap, and the response closed. AnswerTooLargeError past
        `max_answer_bytes` (the connection is dropped: the rest is never read); our error for a body that
        broke off or does not decode."""
        pieces = []
        try:
            for piece in self._iter_decoded(response):
                pieces.append(piece)
            if _bytes_after_answer(response):
                _shutdown(response)  # the stale bytes go with the connection
                raise httpx.RemoteProtocolError("the server sent bytes after its answer")
        except AnswerTooLargeError:
            _shutdown(response)
            raise
        except httpx.TransportError as exc:
            raise self._transport(exc, phase).error from exc
        finally:
            response.close()
        return b"".join(pieces)

    def _iter_decoded(self, response: httpx.Response, *, whole: bool = True) -> Iterator[bytes]:
        """The body's decoded pieces, as they come, under the cap (`whole=False`, a stream: in pieces of
        at most a MiB, see `BodyDecoder.iter_feed`). A body httpx already read (a mock transport) is taken
        as httpx decoded it, and still counted."""
        if response.is_stream_consumed:
            decoder = BodyDecoder(None, self.max_answer_bytes)
            chunks = response.iter_bytes()
        else:
            try:
                decoder = BodyDecoder(response.headers.get("content-encoding"), self.max_answer_bytes)
            except ContentDecodingError as exc:
                raise APIResponseError(f"The answer from {self.base_url} cannot be read: {exc}") from None
            chunks = response.iter_raw()
        try:
            for chunk in chunks:
                if whole:
                    piece = decoder.feed(chunk)
                    if piece:
                        yield piece
                else:
                    yield from decoder.iter_feed(chunk)
            piece = decoder.flush()
        except ContentDecodingError as exc:
            raise APIResponseError(f"The answer from {self.base_url} cannot be read: {exc}") from None
        if piece:
            yield piece

    def _parse_json(self, content: bytes, response: httpx.Response) -> object:
        return protocol.parse_json(content, response.headers.get("content-type", ""), base_url=self.base_url,
                                   redactor=self._redactor())

    def _iter_events(self, response: httpx.Response) -> Iterator[dict[str, Any]]:
        """Decoded JSON events; `[DONE]` becomes DONE. After it the body is read to its end, so the
        connection goes back to the pool instead of being closed."""
        decoder = SSEDecoder()
        loads = json.loads
        redactor = self._redactor()
        secret = redactor.key.encode() if redactor.key else None
        try:
            # the raw stream, decoded and counted here (`_iter_decoded`): without a content coding (the
            # usual case for SSE) each piece is passed on as it came, no decoder or chunker layer between
            chunks = self._iter_decoded(response, whole=False)
            limit = self.max_answer_bytes

            def events() -> Iterator[Any]:
                for chunk in chunks:
                    yield from decoder.feed(chunk)
                    if decoder.pending > limit:  # one event longer than the cap: not held any further
                        raise AnswerTooLargeError(limit)
                yield from decoder.flush()  # a last event without its blank line still counts

            for event in events():
                data = event.data
                if secret is not None and secret in data:  # a server that echoes the key: mask it
                    data = redactor.redact(data)
                if data[:6] == b"[DONE]":
                    yield DONE
                    for _ in chunks:  # read to the end: the connection goes back to the pool
                        pass
                    if _bytes_after_answer(response):
                        _shutdown(response)  # not back to the pool: the stale bytes go with the connection
                    return
                if not data:
                    continue
                try:
                    yield loads(data)
                except ValueError:
                    raise APIResponseError(
                        f"The stream sent data that is not JSON: {quote(redactor.scrub(data.decode('utf-8', 'replace')))}"
                    ) from None
        except httpx.TransportError as exc:
            raise self._transport(exc, "stream").error from None
        except AnswerTooLargeError:
            _shutdown(response)
            raise


def _shutdown(response: httpx.Response) -> None:
    """Shut the response's socket down (from any thread): a blocked read returns and the server sees EOF."""
    stream = response.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:  # already closed
            pass


def _bytes_after_answer(response: httpx.Response) -> bool:
    """Whether the server sent bytes behind the answer just read, which httpcore would take for the
    next request's answer (it only checks a connection's socket, not what h11 holds already). The check
    reads httpcore's h11 state; where that chain is absent (a mock transport), it says no."""
    stream: Any = response.stream  # httpx's bound stream → its transport's → httpcore's pool's → h11's
    for name in ("_stream", "_httpcore_stream", "_stream"):
        stream = getattr(stream, name, None)
    state = getattr(getattr(stream, "_connection", None), "_h11_state", None)
    trailing = getattr(state, "trailing_data", None)
    return bool(trailing and trailing[0])


@functools.lru_cache(maxsize=4)
def ssl_context(cert_file: str | None, cert_dir: str | None, alpn: tuple[str, ...] | None) -> ssl.SSLContext:
    """httpx's default context (certifi, or SSL_CERT_FILE / SSL_CERT_DIR), built once and shared (building
    it costs about 20 ms): the sync client's pool and every batch lane's connection. `alpn`: the protocols
    a lane offers (httpx's transports set their own on the context they are given)."""
    context = httpx.create_ssl_context()
    if alpn:
        context.set_alpn_protocols(list(alpn))
    return context
