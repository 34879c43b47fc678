"""An OpenAI-compatible AiHubMix gateway on loopback, with simulated answers and faults on demand.

Standard library only. Tests, examples, benchmarks and the demo mode talk to it over a real socket,
with our own client or with the official ``openai`` SDK::

    with Simulator() as simulator:
        client = openai.OpenAI(base_url=simulator.base_url, api_key="sk-test")

or from a shell: ``python -m aihubmix_magic.simulator --port 8765``.

Endpoints: ``GET /v1/models``, ``POST /v1/chat/completions`` and ``POST /v1/responses``, streamed or
not, framed as the recorded OpenAI streams are (see the project's PROTOCOL.md). Every ``/v1`` request
needs ``Authorization: Bearer <key>``. Nothing ever leaves the machine.

Also AiHubMix's public model catalog ``GET /api/v1/models`` (prices per 1M tokens and capabilities for
every model in ``MODELS``, plus ``sim-free`` at price 0, ``sim-cached`` with a cache_read price and
``sim-unpriced`` without prices; the
catalog's query filters work), and the account endpoints ``/v1/dashboard/billing/subscription``,
``/dashboard/billing/usage``, ``/dashboard/billing/remain`` and ``/api/status``, with faults of their own
(``Simulator(catalog=..., billing=...)``, ``CATALOG_FAULTS``, ``BILLING_FAULTS``).

The answer is deterministic Markdown derived from the model name and the last user message. Words in
that message act as directives: ``heading``, ``bold``, ``code``, ``list``/``bullet``, ``table``,
``json`` and ``words=N`` (N filler words, for long answers). Images are counted, ``max_tokens`` /
``max_output_tokens`` truncate, and thinking models (``-think``, ``deepseek-reasoner``, ``o4-mini``,
or a reasoning effort in the request) stream a short reasoning text first.

Faults are chosen by the model name; every fault model starts with ``sim-`` and any other ``sim-``
name (``sim-echo``) is a normal model. ``FAULT_MODELS`` (and ``--help``) lists them all:

* HTTP errors: ``sim-400``, ``sim-401``, ``sim-403``, ``sim-404``, ``sim-unknown-model``, ``sim-503``,
  ``sim-429``, ``sim-500``, ``sim-flaky-429-N``, ``sim-flaky-500-N``, ``sim-retry-after-S``,
  ``sim-html``, ``sim-html-200``, ``sim-408``, ``sim-409``, ``sim-flaky-408-N``, ``sim-flaky-409-N``,
  ``sim-retry-after-ms-N``, ``sim-retry-after-date-S``, ``sim-should-retry-N``, ``sim-500-no-retry``,
  ``sim-400-echo-headers``, ``sim-echo-headers`` (both quote the Authorization header back).
* Broken 200 answers: ``sim-200-error``, ``sim-null-choices``, ``sim-garbage``, ``sim-bad-json``.
* Broken streams: ``sim-drop-K``, ``sim-stall-K``, ``sim-error-event``, ``sim-error-event-flat``,
  ``sim-failed``, ``sim-incomplete``.
* Timing: ``sim-slow``, ``sim-tps-N``, ``sim-latency-MS``.
* Rate limits: ``Simulator(rate_limit=10.0)`` (``--rate-limit 10``) puts one token bucket of 10 requests a
  second (a burst of ``rate_limit_burst``, default one second's worth) in front of the two generation
  endpoints, for every model and key: a request over it gets HTTP 429 at once, with ``retry-after-ms``
  (when the next token comes) and ``retry-after`` (the same, rounded up to whole seconds). With
  ``rate_limit_headers=True`` (``--rate-limit-headers``) every answer also carries OpenAI's
  ``x-ratelimit-limit-requests``, ``x-ratelimit-remaining-requests`` and ``x-ratelimit-reset-requests``
  (the time until the bucket is full again, e.g. ``1.5s``). ``rate_limited`` counts the 429s sent.
* Valid but unusual framing: ``sim-crlf``, ``sim-cr``, ``sim-comments``, ``sim-multiline``,
  ``sim-no-done``, ``sim-with-done``, ``sim-no-event-lines``, ``sim-no-usage``,
  ``sim-usage-in-finish``, ``sim-empty-output``, ``sim-unknown-events``, ``sim-tools``,
  ``sim-chunked-utf8``.
* Tools: when a request offers functions (``tools``), every normal model calls the first one with
  arguments filled in from its schema and, once the result is sent back, answers with it
  (``sim-tool-call`` does only that); ``sim-parallel-tools`` calls several at once; ``sim-tools-forever``
  never stops calling (for a step limit). Arguments stream split across chunks.
* Web search: ``web_search_options`` (chat) or a ``web_search`` tool (responses) gives an answer that
  cites two sources (``url_citation`` annotations); ``sim-no-web`` refuses it with HTTP 400.
"""

from __future__ import annotations

from .account import BILLING_FAULTS, CATALOG_FAULTS, CATALOG_MODELS
from .data import FAULT_MODELS, MODELS, RecordedRequest
from .gateway import Simulator, main

__all__ = ["BILLING_FAULTS", "CATALOG_FAULTS", "CATALOG_MODELS", "FAULT_MODELS", "MODELS", "RecordedRequest",
           "Simulator", "main"]
