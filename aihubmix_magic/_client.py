"""Client: the sync driver, one pooled httpx.Client for /v1/chat/completions, /v1/responses and /v1/models.

Usable without IPython:

    from aihubmix_magic import Client
    client = Client()                         # AIHUBMIX_API_KEY, AIHUBMIX_BASE_URL from the environment
    print(client.chat("Say hi", model="gpt-4o-mini").text)
    for delta in client.respond("Say hi", model="gpt-4o-mini", stream=True):
        print(delta, end="")

It only sends, waits and reads: the body, the retry decision and the error mapping are the protocol
core's (`_protocol.py`), shared with the async driver that `batch()` uses. The key goes only into the
Authorization header of requests to the configured base URL, and is masked in everything read back.
"""

from __future__ import annotations

import json
import os
import socket
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from . import _protocol as protocol
from ._exceptions import AihubmixError, APIResponseError, MissingKeyError
from ._protocol import (
    DEFAULT_BASE_URL,
    DEFAULT_MAX_STEPS,
    ENDPOINT_PATHS,
    Failure,
    Redactor,
    has_runnable_tools,
    mask_key,
)
from ._request import Request, check_extra_body
from ._response import Response
from ._sse import SSEDecoder
from ._streams import DONE, accumulator_for
from ._types import quote

__all__ = ["Client", "RetryCallback"]

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
    ) -> None:
        self._api_key = api_key if api_key is not None else os.environ.get("AIHUBMIX_API_KEY") or None
        self.base_url = base_url or os.environ.get("AIHUBMIX_BASE_URL") or DEFAULT_BASE_URL
        self.max_retries = max_retries
        self.app_code = app_code
        self._model_ids: list[str] | None = None
        self.cache: Any = None  # a ResponseCache (see _cache.py) when answers may come from / go to the cache
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            limits=httpx.Limits(max_keepalive_connections=8, keepalive_expiry=120.0),
            follow_redirects=False,
        )

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

    @property
    def api_key(self) -> str | None:
        return self._api_key

    @api_key.setter
    def api_key(self, key: str | None) -> None:
        self._api_key = key or None

    def set_timeout(self, timeout: float, connect_timeout: float = 10.0) -> None:
        self._http.timeout = httpx.Timeout(timeout, connect=connect_timeout)

    @property
    def timeout(self) -> httpx.Timeout:
        return self._http.timeout

    def __repr__(self) -> str:
        return f"<Client base_url={self.base_url!r} key={mask_key(self._api_key)}>"

    def close(self) -> None:
        self._http.close()

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
        from ._toolloop import Approver, run_tool_loop

        def send_and_read(step_request: Request) -> Response:
            response = self._send_one(step_request, on_retry=on_retry)
            response.text  # noqa: B018 - a streamed step is read whole before its tools run
            if response.status == "failed" and response.error is not None:
                raise response.error
            return response

        approver = Approver(approve=approve, ask=default_asker() if approve is None else None)
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
        try:
            content = response.read()
        except httpx.TransportError as exc:
            raise self._transport(exc, "models").error from exc
        finally:
            response.close()
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
            return response
        try:
            content = http_response.read()
        except httpx.TransportError as exc:
            raise self._transport(exc, "read").error from exc
        finally:
            http_response.close()
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
        retries = 0
        while True:
            if retries:
                headers["x-stainless-retry-count"] = str(retries)
            failure: Failure
            try:
                response = self._http.send(self._http.build_request(method, url, content=content, headers=headers),
                                           stream=True)
            except httpx.TransportError as exc:
                failure = self._transport(exc, "send")
            else:
                if response.status_code < 400:
                    return response
                try:
                    response.read()
                except httpx.HTTPError:
                    pass
                finally:
                    response.close()
                failure = protocol.status_failure(
                    response.status_code, response.headers, response.content, base_url=self.base_url,
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
        headers = {"Authorization": f"Bearer {self._api_key}", "Accept": "application/json, text/event-stream"}
        if self.app_code:
            headers["APP-Code"] = self.app_code
        return headers

    def _redactor(self) -> Redactor:
        return Redactor(self._api_key)

    def _transport(self, exc: Exception, phase: str) -> Failure:
        return protocol.transport_failure(exc, phase=phase, base_url=self.base_url, redactor=self._redactor(),
                                          read_timeout=self._http.timeout.read)

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
            # no content coding (the usual case for SSE) and a body still to read: iter_raw() gives the
            # same bytes as iter_bytes() without its decoder and chunker layers (a quarter of the
            # transport's cost per event); a body already read (e.g. a mock transport) needs iter_bytes()
            encoding = response.headers.get("content-encoding", "identity").strip().lower()
            raw = encoding in ("", "identity") and not response.is_stream_consumed
            chunks = response.iter_raw() if raw else response.iter_bytes()

            def events() -> Iterator[Any]:
                for chunk in chunks:
                    yield from decoder.feed(chunk)
                yield from decoder.flush()  # a last event without its blank line still counts

            for event in events():
                data = event.data
                if secret is not None and secret in data:  # a server that echoes the key: mask it
                    data = redactor.redact(data)
                if data[:6] == b"[DONE]":
                    yield DONE
                    for _ in chunks:  # read to the end: the connection goes back to the pool
                        pass
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


def default_asker() -> Any:
    """The prompt for tool calls where someone can answer it (buttons in a notebook, a y/n question in a
    terminal), else None: the calls are skipped."""
    from . import _approval
    from ._live import display_mode

    where = display_mode()
    if _approval.nobody_can_answer(where):
        return None

    def ask(call: Any, signature: str) -> str:
        return _approval.ask(signature, "", where=where)
    return ask


def _shutdown(response: httpx.Response) -> None:
    """Shut the response's socket down (from any thread): a blocked read returns and the server sees EOF."""
    stream = response.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    if sock is not None:
        sock.shutdown(socket.SHUT_RDWR)
