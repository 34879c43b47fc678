"""The async driver: one pooled `httpx.AsyncClient` that sends typed requests, for `batch()`.

It only sends, waits and reads, as the sync `Client` does, and takes every decision from the protocol
core (`_protocol.py`): the body, the retry rule (so an unknown model is asked once, here as in a cell),
the error mapping. Answers are not streamed. A failed request becomes a Response with status "failed"
and `.error` set, so one bad item does not stop the others.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import json
import os
import ssl
import time
from typing import TYPE_CHECKING, Any

import httpx

from . import _protocol as protocol
from ._exceptions import AihubmixError
from ._protocol import ENDPOINT_PATHS, Failure
from ._response import Response

if TYPE_CHECKING:
    from ._client import Client
    from ._request import Request

__all__ = ["AsyncDriver"]

HTTP2 = importlib.util.find_spec("h2") is not None


class AsyncDriver:
    """Sends requests with the settings (key, base URL, timeouts, retries) of a sync `Client`."""

    def __init__(self, client: Client, *, connections: int) -> None:
        self.client = client
        self.retries = 0  # retries taken over all requests
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections,
                              keepalive_expiry=30.0)
        verify = _ssl_context(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
        self._http = httpx.AsyncClient(http2=HTTP2, timeout=client.timeout, limits=limits, verify=verify,
                                       follow_redirects=False)

    async def __aenter__(self) -> AsyncDriver:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._http.aclose()

    async def send(self, request: Request, body: dict[str, Any] | None = None) -> Response:
        """One request, not streamed; a failure is recorded in the Response, never raised."""
        body = body if body is not None else protocol.request_body(request)
        body.pop("stream", None)
        body.pop("stream_options", None)
        response = Response(endpoint=request.endpoint, request=body, stream=False, spec=request)
        try:
            content, content_type = await self._send(ENDPOINT_PATHS[request.endpoint], body)
            protocol.complete(response, protocol.parse_json(content, content_type, base_url=self.client.base_url,
                                                            redactor=self.client._redactor()))
        except AihubmixError as exc:
            response.status = "failed"
            response.error = exc
            response.elapsed = time.perf_counter() - response._started
            exc.response = response
        return response

    async def _send(self, path: str, body: dict[str, Any]) -> tuple[bytes, str]:
        """POST with the core's retry rule; return the 2xx body and its content type (or raise)."""
        client = self.client
        headers = client._headers()
        headers["Content-Type"] = "application/json"
        content = json.dumps(body, ensure_ascii=False).encode()
        url = client.base_url + path
        model = str(body.get("model", ""))
        retries = 0
        while True:
            if retries:
                headers["x-stainless-retry-count"] = str(retries)
            failure: Failure
            try:
                response = await self._http.send(self._http.build_request("POST", url, content=content,
                                                                            headers=headers), stream=True)
            except httpx.TransportError as exc:
                failure = client._transport(exc, "send")
            else:
                try:
                    data = await response.aread()
                except httpx.TransportError as exc:
                    if response.status_code < 400:
                        raise client._transport(exc, "read").error from exc
                    data = b""
                finally:
                    await response.aclose()
                if response.status_code < 400:
                    return data, response.headers.get("content-type", "")
                failure = protocol.status_failure(
                    response.status_code, response.headers, data, base_url=client.base_url,
                    path=response.request.url.path, model=model, redactor=client._redactor(),
                    suggest=client.suggest)  # an unknown model: the id list is fetched once, then cached
            delay = protocol.retry_delay(failure, retries, client.max_retries)
            if delay is None:
                raise failure.error
            retries += 1
            self.retries += 1
            await asyncio.sleep(delay)


@functools.lru_cache(maxsize=4)
def _ssl_context(cert_file: str | None, cert_dir: str | None) -> ssl.SSLContext:
    """httpx's default context (certifi, or SSL_CERT_FILE / SSL_CERT_DIR), built once instead of per batch:
    building it costs about 20 ms, a tenth of a round of requests at 200 ms latency."""
    return httpx.create_ssl_context()
