"""Client: one pooled httpx.Client for /v1/chat/completions, /v1/responses and /v1/models.

Usable without IPython:

    from aihubmix_magic import Client
    client = Client()                         # AIHUBMIX_API_KEY, AIHUBMIX_BASE_URL from the environment
    print(client.chat("Say hi", model="gpt-4o-mini").text)
    for delta in client.respond("Say hi", model="gpt-4o-mini", stream=True):
        print(delta, end="")

Retries follow the official SDK (PROTOCOL.md §4): connect errors, timeouts before any answer, and HTTP
408/409/429/5xx, with `retry-after-ms` / `retry-after` honoured up to 60 s, else exponential backoff with
jitter; not a 503 that names an unknown model (AiHubMix sends those), which no wait can fix. Nothing is
retried once a 2xx answer has started. The key goes only into the Authorization header
of requests to the configured base URL, and is scrubbed from every error message.
"""

from __future__ import annotations

import difflib
import email.utils
import ipaddress
import json
import os
import random
import re
import socket
import time
import warnings
from collections.abc import Callable, Iterator
from http import HTTPStatus
from urllib.parse import urlsplit

import httpx

from ._exceptions import (
    AihubmixError,
    APIConnectionError,
    APIResponseError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    InternalServerError,
    MissingKeyError,
    ModelNotFoundError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
)
from ._response import Response
from ._sse import SSEDecoder
from ._streams import DONE, accumulator_for, check_body

__all__ = [
    "ENDPOINT_PATHS",
    "Client",
    "DEFAULT_BASE_URL",
    "chat_body",
    "complete_from_json",
    "mask_key",
    "responses_body",
    "retry_decision",
    "retry_delay",
    "sanitize_body",
    "validate_base_url",
]

DEFAULT_BASE_URL = "https://aihubmix.com/v1"
ENDPOINT_PATHS = {"chat": "/chat/completions", "responses": "/responses"}
RETRY_STATUSES = frozenset({408, 409, 429}) | frozenset(range(500, 600))
MAX_RETRY_AFTER = 60.0

RetryCallback = Callable[[int, float, str], None]  # (retry number, delay in seconds, reason)


def mask_key(key: str | None) -> str:
    """`sk-…abcd`: enough to recognise a key, never enough to use it."""
    if not key:
        return "(not set)"
    if len(key) <= 12:
        return "…" + key[-2:]
    prefix = key[:3] if key.startswith("sk-") else ""
    return f"{prefix}…{key[-4:]}"


def validate_base_url(url: str) -> str:
    """Return the URL without a trailing slash, or raise ConfigurationError (nothing is sent)."""
    url = (url or "").strip()
    problem = ConfigurationError(f"Base URL {url!r} is not an http(s) URL, e.g. {DEFAULT_BASE_URL}")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number from 0 to 65535
        httpx.URL(url)
    except (ValueError, httpx.InvalidURL):
        raise problem from None
    if parts.scheme not in ("http", "https") or not parts.hostname or not url.isprintable() or " " in url:
        raise problem
    return url.rstrip("/")


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
        self.cache = None  # a ResponseCache (see _cache.py) when answers may come from / go to the cache
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
        url = validate_base_url(url)
        if not url.startswith("https://") and not is_loopback(url):
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
        messages: str | list[dict],
        *,
        model: str,
        system: str | None = None,
        stream: bool = False,
        temperature: float | None = None,
        top_p: float | None = None,
        max_tokens: int | None = None,
        reasoning_effort: str | None = None,
        on_retry: RetryCallback | None = None,
        **extra: object,
    ) -> Response:
        """POST /v1/chat/completions. `messages` is a prompt string or a list of chat messages."""
        body = chat_body(messages, model=model, system=system, stream=stream, temperature=temperature,
                         top_p=top_p, max_tokens=max_tokens, reasoning_effort=reasoning_effort, **extra)
        return self._call("chat", ENDPOINT_PATHS["chat"], body, stream=stream, on_retry=on_retry)

    def respond(
        self,
        input: str | list[dict],
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
        **extra: object,
    ) -> Response:
        """POST /v1/responses. Stateless by default (`store: false`, the whole input sent each time)."""
        body = responses_body(input, model=model, instructions=instructions, stream=stream,
                              temperature=temperature, top_p=top_p, max_output_tokens=max_output_tokens,
                              reasoning_effort=reasoning_effort, store=store, **extra)
        return self._call("responses", ENDPOINT_PATHS["responses"], body, stream=stream, on_retry=on_retry)

    def models(self) -> list[dict]:
        """GET /v1/models: the models this key may use, as the server describes them."""
        response = self._send("GET", "/models", None, on_retry=None)
        try:
            content = response.read()
        except httpx.TimeoutException as exc:
            raise APITimeoutError(f"No model list from {self.base_url} within the read timeout.") from exc
        except httpx.TransportError as exc:
            raise APIConnectionError(f"The connection to {self.base_url} broke: {self._scrub(exc)}") from exc
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

    # -- the request -------------------------------------------------------------------------------------
    def _call(self, endpoint: str, path: str, body: dict, *, stream: bool, on_retry: RetryCallback | None) -> Response:
        sanitize_body(body)
        cache = self.cache
        if cache is not None:
            hit = cache.get(endpoint, self.base_url, body)
            if hit is not None:
                return hit
        response = Response(endpoint=endpoint, request=body, stream=stream)
        if cache is not None:
            response._on_done = lambda done: cache.put(done, self.base_url)
        try:
            return self._answer(response, path, body, stream=stream, on_retry=on_retry)
        except AihubmixError as exc:
            if response.status == "in_progress":
                response.status = "failed"
                response.error = exc
                response.elapsed = time.perf_counter() - response._started
            exc.response = response
            raise

    def _answer(self, response: Response, path: str, body: dict, *, stream: bool,
                on_retry: RetryCallback | None) -> Response:
        endpoint = response.endpoint
        http_response = self._send("POST", path, body, on_retry=on_retry, model=str(body.get("model", "")))
        is_sse = http_response.headers.get("content-type", "").startswith("text/event-stream")
        if stream and is_sse:
            response._accumulator = accumulator_for(endpoint)
            response._source = self._iter_events(http_response)
            response._close = http_response.close
            response._abort = lambda: _shutdown(http_response)
            return response
        try:
            content = http_response.read()
        except httpx.TimeoutException as exc:
            raise APITimeoutError(f"No answer from {self.base_url} within the read timeout.") from exc
        except httpx.TransportError as exc:
            raise APIConnectionError(f"The connection to {self.base_url} broke: {self._scrub(exc)}") from exc
        finally:
            http_response.close()
        complete_from_json(response, self._parse_json(content, http_response))
        if response.status == "failed" and response.error is not None:  # e.g. a responses body with status failed
            raise response.error  # as the same answer streamed would (the Response is attached by _call)
        return response

    def _send(
        self, method: str, path: str, body: dict | None, *, on_retry: RetryCallback | None, model: str = ""
    ) -> httpx.Response:
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
            error: AihubmixError
            retry_after: float | None = None
            should_retry: bool
            try:
                response = self._http.send(self._http.build_request(method, url, content=content, headers=headers),
                                           stream=True)
            except httpx.TimeoutException as exc:
                error = APITimeoutError(f"{self.base_url} did not answer in time ({type(exc).__name__}).")
                should_retry = True
            except httpx.TransportError as exc:
                error = APIConnectionError(f"Cannot reach {self.base_url}: {self._scrub(exc) or type(exc).__name__}")
                should_retry = True
            else:
                if response.status_code < 400:
                    return response
                try:
                    response.read()
                except httpx.HTTPError:
                    pass
                finally:
                    response.close()
                should_retry, retry_after = retry_decision(response)
                error = self._status_error(response, model)
                if isinstance(error, ModelNotFoundError) and response.headers.get("x-should-retry") != "true":
                    should_retry = False  # a 503 that names an unknown model: it stays unknown, do not wait
            if not should_retry or retries >= self.max_retries:
                raise error
            delay = retry_delay(retry_after, retries)
            retries += 1
            if on_retry is not None:
                on_retry(retries, delay, _reason(error))
            time.sleep(delay)

    def _headers(self) -> dict[str, str]:
        """The headers of every request (the key only here); MissingKeyError if there is no key."""
        if not self._api_key:
            raise MissingKeyError()
        headers = {"Authorization": f"Bearer {self._api_key}", "Accept": "application/json, text/event-stream"}
        if self.app_code:
            headers["APP-Code"] = self.app_code
        return headers

    def _iter_events(self, response: httpx.Response) -> Iterator[dict]:
        """Decoded JSON events; `[DONE]` becomes DONE. After it the body is read to its end, so the
        connection goes back to the pool instead of being closed."""
        decoder = SSEDecoder()
        loads = json.loads
        secret = self._api_key.encode() if self._api_key else None
        masked = mask_key(self._api_key).encode()
        try:
            # no content coding (the usual case for SSE) and a body still to read: iter_raw() gives the
            # same bytes as iter_bytes() without its decoder and chunker layers (a quarter of the
            # transport's cost per event); a body already read (e.g. a mock transport) needs iter_bytes()
            encoding = response.headers.get("content-encoding", "identity").strip().lower()
            raw = encoding in ("", "identity") and not response.is_stream_consumed
            chunks = response.iter_raw() if raw else response.iter_bytes()

            def events() -> Iterator:
                for chunk in chunks:
                    yield from decoder.feed(chunk)
                yield from decoder.flush()  # a last event without its blank line still counts

            for event in events():
                data = event.data
                if secret is not None and secret in data:  # a server that echoes the key: mask it
                    data = data.replace(secret, masked)
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
                        f"The stream sent data that is not JSON: {_quote(self._scrub(data.decode('utf-8', 'replace')))}"
                    ) from None
        except httpx.TimeoutException:
            raise APITimeoutError(
                f"The stream from {self.base_url} stalled: no data within the read timeout "
                f"({self._http.timeout.read:g} s)."
            ) from None
        except httpx.TransportError as exc:
            raise APIConnectionError(
                f"The connection to {self.base_url} broke mid-stream ({type(exc).__name__})."
            ) from None

    # -- errors ------------------------------------------------------------------------------------------
    def _redact(self, content: bytes) -> bytes:
        """The bytes with the key masked: whatever a server echoes, the key goes no further than the header."""
        if self._api_key and self._api_key.encode() in content:
            return content.replace(self._api_key.encode(), mask_key(self._api_key).encode())
        return content

    def _scrub(self, text: object) -> str:
        text = " ".join(str(text).split())
        if self._api_key:
            text = text.replace(self._api_key, mask_key(self._api_key))
        return text

    def _parse_json(self, content: bytes, response: httpx.Response) -> object:
        content = self._redact(content)  # also for the batch client, which reads its own bodies
        try:
            return json.loads(content)
        except ValueError:
            kind = response.headers.get("content-type", "no content type")
            text = content.decode("utf-8", "replace")
            if "html" in kind.lower() or text.lstrip()[:1] == "<":  # a proxy, firewall or sign-in page
                what = (f"{self.base_url} answered with an HTML page, not JSON (is a proxy or a sign-in page in "
                        f"the way?)")
            else:
                what = f"The server's answer is not JSON ({kind})"
            raise APIResponseError(f"{what}: {_quote(self._scrub(text))}", body=content[:2000]) from None

    def _status_error(self, response: httpx.Response, model: str) -> APIStatusError:
        status = response.status_code
        text = self._redact(response.content).decode("utf-8", "replace")
        try:
            body: object = json.loads(text)
        except ValueError:
            body = None
        server_message = ""
        if isinstance(body, dict):
            error = body.get("error", body)
            if isinstance(error, dict):
                server_message = str(error.get("message") or error.get("code") or error.get("type") or "")
                if error.get("code") and str(error["code"]) not in server_message:
                    server_message += f" ({error['code']})"
            elif isinstance(error, str):
                server_message = error
        if not server_message:
            server_message = _quote(text) if text.strip() else response.reason_phrase
        server_message = self._scrub(server_message)
        said = f"(server said: {server_message})"
        kwargs = {"status_code": status, "body": body if body is not None else text[:2000],
                  "server_message": server_message}
        if status in (400, 404, 503) and _names_unknown_model(server_message):
            suggestions = self._suggest(model)
            hint = f" Did you mean: {', '.join(suggestions)}?" if suggestions else ""
            return ModelNotFoundError(
                f"Unknown model {model!r} (HTTP {status}): this key cannot use it or it does not exist.{hint} "
                f"See `%aihubmix models`. {said}",
                model=model, suggestions=suggestions, **kwargs,
            )
        if status == 401:
            return AuthenticationError(
                f"401 Unauthorized from {self.base_url}: the API key was rejected; set a valid one with "
                f"`%aihubmix key`. {said}", **kwargs)
        if status == 403:
            if "quota" in server_message.lower():
                return PermissionDeniedError(
                    f"403 Forbidden: the account's quota is used up (insufficient_user_quota); top up on "
                    f"aihubmix.com. {said}", **kwargs)
            return PermissionDeniedError(
                f"403 Forbidden: this key may not use {model or 'this endpoint'}, or the account or IP is "
                f"not allowed. {said}", **kwargs)
        if status == 429:
            return RateLimitError(f"429 Too Many Requests for {model or self.base_url}: wait and try again. {said}",
                                  **kwargs)
        if status >= 500:
            return InternalServerError(f"HTTP {status} from {self.base_url}: the server or the upstream model "
                                       f"failed. {said}", **kwargs)
        if status == 400:
            return BadRequestError(f"400 Bad Request: {server_message}", **kwargs)
        if status == 404:
            return NotFoundError(f"404 Not Found at {response.request.url.path}: {server_message}", **kwargs)
        return APIStatusError(f"HTTP {status} from {self.base_url}: {server_message}", **kwargs)

    def _suggest(self, model: str) -> list[str]:
        try:
            ids = self.model_ids()
        except AihubmixError:
            return []
        close = difflib.get_close_matches(model, ids, n=3, cutoff=0.5)
        if not close:
            close = difflib.get_close_matches(model.lower(), [i.lower() for i in ids], n=3, cutoff=0.3)
            close = [i for i in ids if i.lower() in close]
        return close


def _shutdown(response: httpx.Response) -> None:
    """Shut the response's socket down (from any thread): a blocked read returns and the server sees EOF."""
    stream = response.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    if sock is not None:
        sock.shutdown(socket.SHUT_RDWR)


def _put(body: dict, **params: object) -> None:
    body.update({k: v for k, v in params.items() if v is not None})


# -- shared by Client and the async batch client (_batch.py) -------------------------------------------
def chat_body(messages: str | list[dict], *, model: str, system: str | None = None, stream: bool = False,
              temperature: float | None = None, top_p: float | None = None, max_tokens: int | None = None,
              reasoning_effort: str | None = None, **extra: object) -> dict:
    """The JSON body of POST /v1/chat/completions."""
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    if system:
        messages = [{"role": "system", "content": system}, *messages]
    body: dict = {"model": model, "messages": messages}
    _put(body, temperature=temperature, top_p=top_p, max_tokens=max_tokens, reasoning_effort=reasoning_effort)
    body.update({k: v for k, v in extra.items() if v is not None})
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def responses_body(input: str | list[dict], *, model: str, instructions: str | None = None, stream: bool = False,
                   temperature: float | None = None, top_p: float | None = None,
                   max_output_tokens: int | None = None, reasoning_effort: str | None = None,
                   store: bool = False, **extra: object) -> dict:
    """The JSON body of POST /v1/responses."""
    body: dict = {"model": model, "input": input}
    _put(body, instructions=instructions, temperature=temperature, top_p=top_p,
         max_output_tokens=max_output_tokens)
    if reasoning_effort:
        body["reasoning"] = {"effort": reasoning_effort}
    body["store"] = store
    body.update({k: v for k, v in extra.items() if v is not None})
    if stream:
        body["stream"] = True
    return body


def sanitize_body(body: dict) -> dict:
    """AiHubMix's "Empty Tools Fix": `tools: []` goes, and `tool_choice` with it."""
    if body.get("tools") == []:
        body.pop("tools")
        body.pop("tool_choice", None)
    return body


def complete_from_json(response: Response, body_json: object) -> Response:
    """Fill a non-streamed Response from the server's JSON (APIResponseError if it is not an answer)."""
    response._set_final(check_body(response.endpoint, body_json))
    response.time_to_first_token = response.elapsed = time.perf_counter() - response._started
    if response._on_done is not None:
        response._on_done(response)
    return response


def retry_decision(response: httpx.Response) -> tuple[bool, float | None]:
    """For an HTTP error answer: (retry it?, the server's delay in seconds or None), per PROTOCOL §4."""
    should_retry = response.status_code in RETRY_STATUSES
    header = response.headers.get("x-should-retry")
    if header in ("true", "false"):
        should_retry = header == "true"
    return should_retry, _retry_after(response.headers)


def retry_delay(retry_after: float | None, retries_taken: int) -> float:
    """The server's delay if it gave one in range, else exponential backoff with jitter."""
    return retry_after if retry_after is not None else _backoff(retries_taken)


_MODEL_ERROR = re.compile(
    r"incorrect model|model[_ ]not[_ ]found|does not exist|unknown model|invalid model|no such model|"
    r"not (?:a )?(?:valid|supported) model|permission to use this model",
    re.IGNORECASE,
)


def _names_unknown_model(message: str) -> bool:
    return bool(_MODEL_ERROR.search(message))


def _quote(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text[:limit] + ("…" if len(text) > limit else "")


def _reason(error: AihubmixError) -> str:
    if isinstance(error, APIStatusError):
        message = error.server_message
        if message.lstrip().startswith("<"):  # an HTML error page: its tags would render in the cell's note
            try:
                message = HTTPStatus(error.status_code).phrase
            except ValueError:
                message = ""
        return f"{error.status_code} {message}"[:80].rstrip()
    if isinstance(error, APITimeoutError):
        return "timed out"
    if isinstance(error, APIConnectionError):
        return "cannot connect"
    return type(error).__name__


def _retry_after(headers: httpx.Headers) -> float | None:
    """The server's wish, if it is within (0, 60] seconds; else None (use backoff)."""
    delay: float | None = None
    if "retry-after-ms" in headers:
        try:
            delay = float(headers["retry-after-ms"]) / 1000
        except ValueError:
            delay = None
    if delay is None and "retry-after" in headers:
        value = headers["retry-after"]
        try:
            delay = float(value)
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value)
                delay = when.timestamp() - time.time()
            except (TypeError, ValueError):
                delay = None
    if delay is not None and 0 < delay <= MAX_RETRY_AFTER:
        return delay
    return None


def _backoff(retries_taken: int) -> float:
    return min(0.5 * 2**retries_taken, 8.0) * (1 - 0.25 * random.random())
